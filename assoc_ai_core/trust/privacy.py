"""Personal data: what the access and erasure requests share, and pseudonymised storage by default.

Where assoc-ai keeps something about a person (all under the association's control):

* the triage **state file** (SQLite): decisions about each message (sender as a
  keyed hash and a pseudonym, the raw address only when configured), the
  action journal, corrections with their pseudonymised text, acknowledgements;
* the **model files**: a model's vocabulary may hold words of the mail it learnt
  from (a surname in a signature, for example);
* **people files** listed in ``[privacy] people_files`` (score tables, feature
  tables written by ``assoc-ai people``).

:func:`assoc_ai_core.trust.access.export_person` gathers all of it for an
access request (JSON + HTML).  :func:`assoc_ai_core.trust.erasure.erase_person`
removes it: the person's decisions keep only a de-identified tombstone (a keyed
hash of the message key, so the same mail is never handled twice), their
corrections and acknowledgements are deleted, mentions of the address or the
full name in other people's free text, in model vocabularies and in people
files are blanked — by identity, never by substring (:class:`Identity`) — and
the file is vacuumed, its WAL truncated and its bytes checked
(:func:`verify_erased`) so no old copy survives on disk.  The erasure
is recorded without the personal data; the keyed hash of the address is kept
in a suppression list so retraining leaves out any of the person's mail still
in the mailbox (:func:`drop_erased`), and every model version is marked for
retraining.

This module holds what both need: the configuration (:func:`load_trust_config`),
who the person is (:class:`Identity`), the people files, and the job lock.
:func:`apply_retention` (deletes or pseudonymises stored text older than
``[privacy] retention_days_text``; the triage job calls
:func:`retention_for_job` on every run) lives in
:mod:`assoc_ai_core.jobs.retention` and is importable from here too.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import logging
import os
import re
import sqlite3
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError, DataError, ModelError, TransientError
from assoc_ai_core.ext.config import load_config
from assoc_ai_core.files import acquire_lock, release_lock
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.retention import (
    PRIVACY_KEYS,
    PrivacyPolicy,
    RetentionResult,
    apply_retention,
    clear_retrain_marks,
    drop_erased,
    ensure_schema,
    erased_hashes,
    map_json_text,
    models_to_retrain,
    policy_of,
    retention_for_job,
    split_config,
)
from assoc_ai_core.jobs.settings import TriageSettings

log = logging.getLogger(__name__)

ERASED = "<ERASED>"


@dataclass(frozen=True)
class TrustConfig:
    """A configuration file read for the trust features: triage settings plus the trust sections."""

    settings: Any  # TriageSettings
    privacy: PrivacyPolicy
    sections: Mapping[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """A top-level section (``monitor``, ``acknowledgement``) as a dict (empty when absent)."""
        value = self.sections.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(tr(f"[{name}] doit être une section.", f"[{name}] must be a section."))
        return dict(value)


def load_trust_config(path: str | os.PathLike[str]) -> TrustConfig:
    """Read ``path``: triage settings, ``[privacy]`` policy, and the other sections."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(tr(f"Fichier de configuration introuvable : {p}. Donnez --config FICHIER.",
                             f"Configuration file not found: {p}. Pass --config FILE."))
    data = load_config(p)
    triage_data, ours = split_config(data)
    settings = TriageSettings.from_mapping(triage_data, base_dir=p.resolve().parent, config_path=p)
    return TrustConfig(settings, PrivacyPolicy.from_mapping(ours, base_dir=p.resolve().parent), data)


def text_for_storage(text: str, *, names: Iterable[str] = (), policy: PrivacyPolicy | None = None) -> str:
    """What to store of a text: pseudonymised, unless ``[privacy] store_raw_text = true``."""
    from assoc_ai_core.mail.pseudonymise import pseudonymise

    if policy is not None and policy.store_raw_text:
        return text
    return pseudonymise(text, names=[n for n in names if n])


class PseudonymisingFilter(logging.Filter):
    """A logging filter that pseudonymises e-mail addresses and phone numbers in log records.

    ``logging.getLogger("assoc_ai_core").addFilter(PseudonymisingFilter())``
    keeps addresses out of logs even when a message text slips into one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message in place; never drops a record."""
        from assoc_ai_core.mail.pseudonymise import pseudonymise

        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's business, not ours
            return True
        record.msg, record.args = pseudonymise(message), ()
        return True


@contextlib.contextmanager
def job_lock(state_path: Path) -> Iterator[None]:
    """Hold the triage job's lock (erasure and retention must not race a run)."""
    fd = acquire_lock(state_path.with_name(state_path.name + ".lock"))
    if fd is None:
        raise TransientError(tr(
            f"Un tri est en cours sur {state_path} : réessayez dans quelques minutes.",
            f"A triage run is using {state_path}: try again in a few minutes.",
        ))
    try:
        yield
    finally:
        release_lock(fd)


def _fold(text: str) -> str:
    """Lower-case, accents removed (how identifiers are compared)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


# Name words are matched whole, never inside another word: "Ève" must not hit "Evenement", "Val" not "uidvalidity".
_NAME_WORD = re.compile(r"[^\W\d_]+")
_NAME_GAP = r"[\s\-'’.]+"  # what may stand between the words of a name: "Marie-Hélène", "Le  Bihan", "J. Dupont"


@functools.lru_cache(maxsize=32)
def _alternatives(email: str, sequences: tuple[tuple[str, ...], ...], words: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for every way of naming the person, anchored on word (and address) boundaries."""
    parts = [r"(?<!\w)" + _NAME_GAP.join(re.escape(w) for w in seq) + r"(?!\w)"
             for seq in sorted(set(sequences) | {(w,) for w in words}, key=lambda s: -sum(map(len, s)))]
    if email:
        parts.insert(0, r"(?<![\w.+%-])" + re.escape(email) + r"(?![\w-]|\.\w)")
    return re.compile("|".join(parts)) if parts else None


@dataclass(frozen=True)
class Identity:
    """Who the person is: the address and their names (as given by the requester).

    By default the person is found by identity only: the address (whole,
    case-folded) and each full name as a whole-word sequence (in its order or
    with the last word first, "Kerhervé Gwendoline").  Single name words are
    matched (whole words again) only with ``words=True``, for text known to
    come from the person's own mail: a surname alone in anybody else's text may
    well be somebody else's.
    """

    email: str = ""
    names: tuple[str, ...] = ()

    def _name_words(self) -> list[tuple[str, ...]]:
        return [seq for name in self.names if (seq := tuple(_NAME_WORD.findall(_fold(name))))]

    def sequences(self) -> tuple[tuple[str, ...], ...]:
        """The folded word sequences of each name of two words or more: as given, and with its last word first.

        A name of one word ("Paul") names too many people to be looked for in
        anybody's text; it only counts with ``words=True``.
        """
        out = [form for seq in self._name_words() if len(seq) > 1 for form in (seq, (seq[-1], *seq[:-1]))]
        return tuple(dict.fromkeys(out))

    def words(self) -> tuple[str, ...]:
        """Each folded name word of three letters or more."""
        return tuple(dict.fromkeys(w for seq in self._name_words() for w in seq if len(w) >= 3))

    def pattern(self, *, words: bool = False) -> re.Pattern[str] | None:
        """The compiled pattern (on folded text) of every mention; None when there is nothing to look for."""
        return _alternatives(_fold(self.email), self.sequences(), self.words() if words else ())

    def matcher(self, *, words: bool = False) -> Callable[[str], bool]:
        """Fast test: does a text mention the person?"""
        pattern = self.pattern(words=words)
        if pattern is None:
            return lambda _text: False
        return lambda text: bool(text) and pattern.search(_fold(text)) is not None

    def blank(self, text: str, *, words: bool = False) -> str:
        """``text`` with every mention of the person replaced by ``<ERASED>`` (unchanged when none)."""
        pattern = self.pattern(words=words)
        if not text or pattern is None:
            return text
        folded = _fold(text)
        if pattern.search(folded) is None:
            return text
        if len(folded) != len(text):  # a character that folds to several: work on the folded text
            text = folded
        out, pos = [], 0
        for m in pattern.finditer(folded):
            out.append(text[pos:m.start()])
            out.append(ERASED)
            pos = m.end()
        out.append(text[pos:])
        return "".join(out)

    def blank_json(self, value: Any, *, words: bool = False) -> Any:
        """``value`` (JSON data) with every mention blanked in its texts; keys are structure and stay."""
        return map_json_text(value, lambda text: self.blank(text, words=words))

    def needles(self) -> list[bytes]:
        """Byte forms of the address and full names, to look for in files after an erasure."""
        forms = {self.email.lower(), _fold(self.email)} if self.email else set()
        for name in self.names:
            plain = " ".join(name.split()).lower()
            if " " in plain:  # a one-word name is not looked for (see sequences)
                forms |= {plain, _fold(plain)}
        forms |= {" ".join(seq) for seq in self.sequences()}
        return sorted({f.encode("utf-8") for f in forms if len(f) >= 3})


def check_email(email: str) -> str:
    """The address trimmed and lower-cased; :class:`DataError` when it is not an address."""
    email = (email or "").strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise DataError(tr(f"Adresse e-mail invalide : {email!r} (exemple : marie@exemple.fr).",
                           f"Invalid e-mail address: {email!r} (example: marie@example.org)."))
    return email


# ============================================================================ people files
_ID_COLUMNS = ("person_id", "id", "contact_id")
_EMAIL_COLUMNS = ("email", "e-mail", "mail", "courriel", "adresse_email")

PeopleTable = tuple[list[str], list[dict[str, str]]]


def read_csv(path: Path) -> PeopleTable:
    """A people file's columns and rows."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _cells(row: Mapping[str, str | None], columns: Sequence[str], names: Sequence[str]) -> list[str]:
    """The non-empty, trimmed cells of ``row`` in the columns whose (lower-case) name is one of ``names``."""
    return [cell for c in columns if c.lower() in names if (cell := (row.get(c) or "").strip())]


def row_mentions(row: Mapping[str, str | None], columns: Sequence[str], ids: set[str], emails: set[str]) -> bool:
    """Whether a people-file row is about the person: one of their ids, or one of their addresses."""
    return (any(cell in ids for cell in _cells(row, columns, _ID_COLUMNS))
            or any(cell.lower() in emails for cell in _cells(row, columns, _EMAIL_COLUMNS)))


def _people_tables(policy: PrivacyPolicy) -> dict[Path, PeopleTable]:
    tables: dict[Path, PeopleTable] = {}
    for path in policy.people_files:
        if not path.is_file():
            log.warning(tr(f"Fichier de personnes absent : {path} ([privacy] people_files).",
                           f"People file missing: {path} ([privacy] people_files)."))
            continue
        if path.suffix.lower() != ".csv":
            raise ConfigError(tr(f"{path} : seuls les fichiers CSV sont pris en charge dans [privacy] people_files.",
                                 f"{path}: only CSV files are supported in [privacy] people_files."))
        tables[path] = read_csv(path)
    return tables


def people_matches(policy: PrivacyPolicy, *, email: str = "",
                   person_id: str = "") -> tuple[dict[str, list[dict[str, str]]], set[str], set[str]]:
    """Rows of each people file about the person; also the ids and addresses learnt on the way."""
    ids = {person_id} if person_id else set()
    emails = {email} if email else set()
    tables = _people_tables(policy)
    # two passes: an address found next to an id in one file finds the scores keyed by that id in another
    for _ in range(2):
        for columns, rows in tables.values():
            for row in rows:
                if row_mentions(row, columns, ids, emails):
                    ids |= set(_cells(row, columns, _ID_COLUMNS))
                    emails |= {cell.lower() for cell in _cells(row, columns, _EMAIL_COLUMNS)}
    found: dict[str, list[dict[str, str]]] = {}
    for path, (columns, rows) in tables.items():
        hits = [r for r in rows if row_mentions(r, columns, ids, emails)]
        if hits:
            found[str(path)] = hits
    return found, ids, emails


# ============================================================================ after an erasure: the bytes on disk
def _file_blobs(path: Path) -> list[bytes]:
    """A file's bytes, and each member's when it is a zip (skops models are compressed zips)."""
    if not path.is_file():
        return []
    blobs = [path.read_bytes()]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            blobs += [zf.read(n) for n in zf.namelist()]
    return blobs


def files_mentioning(paths: Iterable[Path], identity: Identity) -> list[Path]:
    """Which of ``paths`` still hold the person's address or full name, in their bytes (case-insensitive)."""
    needles = identity.needles()
    return [p for p in paths if any(n in blob.lower() for blob in _file_blobs(p) for n in needles)]


def _state_files(state_path: Path) -> list[Path]:
    return [state_path, state_path.with_name(state_path.name + "-wal")]


def _compact_state(state_path: Path) -> bool:
    """VACUUM and a truncating WAL checkpoint on a connection of its own; False when a reader kept it from ending."""
    db = sqlite3.connect(state_path, isolation_level=None, timeout=2.0)  # a reader is not waited for long
    try:
        db.execute("PRAGMA secure_delete=ON")
        db.execute("VACUUM")
        busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()
    return not busy


def verify_erased(state_path: Path | None, model_paths: Sequence[Path], identity: Identity) -> None:
    """After an erasure: the person's address and names must be gone from the state file, its WAL and the models.

    The state file is vacuumed and its WAL truncated first, only when its bytes
    still hold the person (a person found nowhere changes nothing).  Raises
    :class:`TransientError` (exit 75) when another program held a read
    transaction and old copies stay on disk, :class:`DataError` (exit 4) when
    the person is still in a structural column (a forwarding address),
    :class:`ModelError` (exit 7) when a model file still names the person:
    nothing is reported as done.
    """
    if state_path is not None and files_mentioning(_state_files(state_path), identity):
        if _compact_state(state_path) and files_mentioning(_state_files(state_path), identity):
            raise DataError(tr(
                f"Effacement incomplet : {state_path} contient encore l'adresse ou le nom hors des textes libres "
                "(une adresse de transfert de la configuration ?). Changez la configuration puis relancez.",
                f"Erasure incomplete: {state_path} still holds the address or name outside free text (a forwarding "
                "address from the configuration?). Change the configuration, then run the erasure again."))
        if files_mentioning(_state_files(state_path), identity):
            raise TransientError(tr(
                f"Effacement incomplet : un autre programme lit {state_path} (une transaction reste ouverte) et "
                "d'anciennes copies des données de la personne restent sur le disque. Fermez-le (assoc-ai audit, "
                "sqlite3…) puis relancez la même commande d'effacement.",
                f"Erasure incomplete: another program is reading {state_path} (a transaction is open) and old "
                "copies of the person's data remain on disk. Close it (assoc-ai audit, sqlite3…) and run the "
                "same erasure command again."))
    left = files_mentioning(model_paths, identity)
    if left:
        raise ModelError(tr(
            f"Effacement incomplet : {', '.join(map(str, left))} nomme encore la personne (modèle illisible ?). "
            "Ré-entraînez sans ses messages ou supprimez ce fichier, puis relancez l'effacement.",
            f"Erasure incomplete: {', '.join(map(str, left))} still names the person (unreadable model?). "
            "Retrain without their mail or delete that file, then run the erasure again."))


__all__ = [
    "PrivacyPolicy", "TrustConfig", "Identity", "RetentionResult", "PseudonymisingFilter", "load_trust_config",
    "policy_of", "split_config", "drop_erased", "erased_hashes", "models_to_retrain", "clear_retrain_marks",
    "apply_retention", "retention_for_job", "text_for_storage", "ensure_schema", "PRIVACY_KEYS", "ERASED",
    "job_lock", "check_email", "read_csv", "row_mentions", "people_matches", "PeopleTable", "verify_erased",
    "files_mentioning",
]
