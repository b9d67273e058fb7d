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
removes it: the person's decisions keep only a de-identified tombstone (so the
same message is never handled twice), their corrections and acknowledgements
are deleted, every remaining text in the state file, model vocabularies and
people files that mentions the address or the name is blanked, and the file is
vacuumed and its WAL truncated so no old copy survives on disk.  The erasure
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
import logging
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError, DataError, TransientError
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


@dataclass(frozen=True)
class Identity:
    """What identifies the person: the address and their names (as given by the requester)."""

    email: str = ""
    names: tuple[str, ...] = ()

    def terms(self) -> list[str]:
        """Strings to look for: the address, its local part, the full names and each name word (3+ letters)."""
        out: list[str] = []
        if self.email:
            out.append(self.email)
            local = self.email.partition("@")[0]
            if len(local) >= 3:
                out.append(local)
        for name in self.names:
            name = " ".join(name.split())
            if name:
                out.append(name)
                out += [w for w in re.findall(r"[\w'’-]{3,}", name)]
        seen: dict[str, str] = {}
        for t in out:
            seen.setdefault(_fold(t), t)
        return sorted(seen, key=len, reverse=True)

    def matcher(self) -> Callable[[str], bool]:
        """Fast test: does a (folded) text mention the person?"""
        terms = self.terms()
        if not terms:
            return lambda _text: False
        pattern = re.compile("|".join(re.escape(t) for t in terms))
        return lambda text: bool(text) and pattern.search(_fold(text)) is not None

    def blank(self, text: str) -> str:
        """``text`` with every mention of the person replaced by ``<ERASED>``."""
        terms = self.terms()
        if not text or not terms:
            return text
        folded = _fold(text)
        if len(folded) != len(text):  # a character that folds to several: work on the folded text
            text = folded
        pattern = re.compile("|".join(re.escape(t) for t in terms))
        out, pos = [], 0
        for m in pattern.finditer(folded):
            out.append(text[pos:m.start()])
            out.append(ERASED)
            pos = m.end()
        out.append(text[pos:])
        return "".join(out)

    def blank_json(self, value: Any) -> Any:
        """``value`` (JSON data) with every mention blanked, in its texts and its keys."""
        return map_json_text(value, self.blank, keys=True)


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


__all__ = [
    "PrivacyPolicy", "TrustConfig", "Identity", "RetentionResult", "PseudonymisingFilter", "load_trust_config",
    "policy_of", "split_config", "drop_erased", "erased_hashes", "models_to_retrain", "clear_retrain_marks",
    "apply_retention", "retention_for_job", "text_for_storage", "ensure_schema", "PRIVACY_KEYS", "ERASED",
    "job_lock", "check_email", "read_csv", "row_mentions", "people_matches", "PeopleTable",
]
