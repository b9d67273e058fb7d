"""Personal data: access requests, erasure, retention, pseudonymised storage by default.

Where assoc-ai keeps something about a person (all under the association's control):

* the triage **state file** (SQLite): decisions about each message (sender as a
  keyed hash and a pseudonym, the raw address only when configured), the
  action journal, corrections with their pseudonymised text, acknowledgements;
* the **model files**: a model's vocabulary may hold words of the mail it learnt
  from (a surname in a signature, for example);
* **people files** listed in ``[privacy] people_files`` (score tables, feature
  tables written by ``assoc-ai people``).

:func:`export_person` gathers all of it for an access request (JSON + HTML).
:func:`erase_person` removes it: the person's decisions keep only a
de-identified tombstone (so the same message is never handled twice), their
corrections and acknowledgements are deleted, every remaining text in the
state file, model vocabularies and people files that mentions the address or
the name is blanked, and the file is vacuumed and its WAL truncated so no old
copy survives on disk.  The erasure is recorded without the personal data;
the keyed hash of the address is kept in a suppression list so retraining
leaves out any of the person's mail still in the mailbox
(:func:`drop_erased`), and every model version is marked for retraining.

:func:`apply_retention` deletes or pseudonymises stored text older than
``[privacy] retention_days_text``; the triage job calls
:func:`retention_for_job` on every run.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError, DataError, TransientError
from assoc_ai_core.ext.config import load_config
from assoc_ai_core.files import try_lock, unlock
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.registry import ModelRegistry
from assoc_ai_core.jobs.retention import (
    PRIVACY_KEYS,
    PrivacyPolicy,
    RetentionResult,
    apply_retention,
    clear_retrain_marks,
    drop_erased,
    ensure_schema,
    erased_hashes,
    iso_utc,
    json_or_none,
    models_to_retrain,
    policy_of,
    retention_for_job,
    sender_privacy,
    split_config,
    utc_now,
)
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageSettings

log = logging.getLogger(__name__)

ERASED = "<ERASED>"
#: keys this module adds to ``[privacy]`` (stripped before the triage settings check them)
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
    lock_path = state_path.with_name(state_path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not try_lock(fd):
            raise TransientError(tr(
                f"Un tri est en cours sur {state_path} : réessayez dans quelques minutes.",
                f"A triage run is using {state_path}: try again in a few minutes.",
            )) from None
        yield
    finally:
        with contextlib.suppress(OSError):
            unlock(fd)
        os.close(fd)


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


def _check_email(email: str) -> str:
    email = (email or "").strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise DataError(tr(f"Adresse e-mail invalide : {email!r} (exemple : marie@exemple.fr).",
                           f"Invalid e-mail address: {email!r} (example: marie@example.org)."))
    return email


# ============================================================================ people files
def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write_csv_atomic(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


_ID_COLUMNS = ("person_id", "id", "contact_id")
_EMAIL_COLUMNS = ("email", "e-mail", "mail", "courriel", "adresse_email")


def _people_matches(policy: PrivacyPolicy, *, email: str = "", person_id: str = "") -> tuple[dict[str, list[dict[str, str]]], set[str], set[str]]:
    """Rows of each people file about the person; also the ids and addresses learnt on the way."""
    ids = {person_id} if person_id else set()
    emails = {email} if email else set()
    tables: dict[Path, tuple[list[str], list[dict[str, str]]]] = {}
    for path in policy.people_files:
        if not path.is_file():
            log.warning(tr(f"Fichier de personnes absent : {path} ([privacy] people_files).",
                           f"People file missing: {path} ([privacy] people_files)."))
            continue
        if path.suffix.lower() != ".csv":
            raise ConfigError(tr(f"{path} : seuls les fichiers CSV sont pris en charge dans [privacy] people_files.",
                                 f"{path}: only CSV files are supported in [privacy] people_files."))
        tables[path] = _read_csv(path)
    # two passes: an address found next to an id in one file finds the scores keyed by that id in another
    for _ in range(2):
        for columns, rows in tables.values():
            id_cols = [c for c in columns if c.lower() in _ID_COLUMNS]
            mail_cols = [c for c in columns if c.lower() in _EMAIL_COLUMNS]
            for row in rows:
                if any((row.get(c) or "").strip().lower() in emails for c in mail_cols) or \
                        any((row.get(c) or "").strip() in ids for c in id_cols):
                    ids |= {(row.get(c) or "").strip() for c in id_cols if (row.get(c) or "").strip()}
                    emails |= {(row.get(c) or "").strip().lower() for c in mail_cols if (row.get(c) or "").strip()}
    found: dict[str, list[dict[str, str]]] = {}
    for path, (columns, rows) in tables.items():
        id_cols = [c for c in columns if c.lower() in _ID_COLUMNS]
        mail_cols = [c for c in columns if c.lower() in _EMAIL_COLUMNS]
        hits = [r for r in rows if any((r.get(c) or "").strip() in ids for c in id_cols)
                or any((r.get(c) or "").strip().lower() in emails for c in mail_cols)]
        if hits:
            found[str(path)] = hits
    return found, ids, emails


# ============================================================================ export
def _mail_records(state: Any, privacy: Any, email: str) -> list[Any]:
    return state.audit(sender_hash=privacy.hash(email), sender_raw=email)


def _ack_rows(state: Any, sender_hash: str) -> list[dict[str, Any]]:
    try:
        rows = state.execute("SELECT * FROM acknowledgements WHERE sender_hash=?", (sender_hash,)).fetchall()
    except sqlite3.OperationalError:  # the acknowledgement feature never ran
        return []
    return [{k: r[k] for k in r.keys() if k != "sender_hash"} for r in rows]


def export_person(config: TrustConfig, *, email: str | None = None, person_id: str | None = None) -> dict[str, Any]:
    """Everything stored about one person (by address, or by CRM id) as JSON-ready data."""

    if not email and not person_id:
        raise DataError(tr("Donnez --email ADRESSE ou --person ID.", "Pass --email ADDRESS or --person ID."))
    email = _check_email(email) if email else ""
    settings = config.settings
    people, ids, emails = _people_matches(config.privacy, email=email, person_id=person_id or "")
    if email:
        emails.add(email)
    decisions: list[dict[str, Any]] = []
    acknowledgements: list[dict[str, Any]] = []
    versions: set[str] = set()
    if settings.state_path.is_file() and emails:
        privacy = sender_privacy(settings)
        with StateStore(settings.state_path) as state:
            corrections: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for c in state.corrections():
                corrections.setdefault((c["instance"], c["key"]), []).append(c)
            for address in sorted(emails):
                for r in _mail_records(state, privacy, address):
                    versions.add(r.model_version or "")
                    decisions.append({
                        "decided_at": r.decided_at, "message_key": r.key, "mailbox": r.instance,
                        "decision": r.decision, "category": r.category, "probability": r.probability,
                        "runner_up": r.runner_up, "runner_up_probability": r.runner_up_probability,
                        "reason": r.reason, "explanation": r.explanation, "model_version": r.model_version,
                        "received_in": r.source_folder, "now_in": r.current_folder, "status": r.status,
                        "simulation": r.dry_run, "sender_as_stored": r.sender_raw or r.sender_pseudo,
                        "actions": [{"kind": a.kind, "target": a.target, "status": a.status,
                                     "at": a.done_at or a.created_at} for a in state.actions_for(r.instance, r.key)],
                        "corrections": [
                            {"from_category": c["from_category"], "to_category": c["to_category"],
                             "detected_at": c["detected_at"], "stored_text": json_or_none(c["text"])}
                            for c in corrections.get((r.instance, r.key), [])],
                    })
                acknowledgements += _ack_rows(state, privacy.hash(address))
    registry = ModelRegistry(settings.models_dir)
    models = {}
    for v in sorted(x for x in versions if x):
        info = registry.info(v) if re.match(r"^v\d{4,}$", v) else {}
        meta = info.get("model_metadata", {}) if info else {}
        models[v] = {"created_at": info.get("created_at"), "source": info.get("source"),
                     "trained_at": meta.get("trained_at"), "categories": meta.get("labels"),
                     "n_train": info.get("n_train", meta.get("n_train")),
                     "evaluation": info.get("evaluation")}
    return {
        "generated_at": iso_utc(utc_now()),
        "request": {"email": email or None, "person_id": person_id or None},
        "what_is_kept": tr(
            "Décisions de tri sur les messages reçus de cette adresse (catégorie, probabilité, explication, "
            "version du modèle, actions), corrections faites par l'équipe (texte pseudonymisé), accusés de "
            "réception envoyés, et lignes des fichiers de données de personnes.",
            "Sorting decisions on mail received from this address (category, probability, explanation, model "
            "version, actions), corrections made by the team (pseudonymised text), acknowledgements sent, and "
            "rows of people-data files."),
        "mail_decisions": sorted(decisions, key=lambda d: (d["decided_at"], d["message_key"])),
        "acknowledgements": acknowledgements,
        "model_versions": models,
        "people_data": people,
        "people_ids": sorted(ids),
    }


def export_html(data: Mapping[str, Any], *, lang: str | None = None) -> str:
    """A readable page of an export (self-contained, escaped)."""
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    t = lambda fr, en: tr(fr, en, lang)  # noqa: E731 - local shorthand for the template
    page = env.from_string(_EXPORT_TEMPLATE)
    return page.render(d=data, t=t, lang=lang or "fr", dumps=lambda v: json.dumps(v, ensure_ascii=False, indent=1))


_EXPORT_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<title>{{ t("Données personnelles conservées par assoc-ai", "Personal data kept by assoc-ai") }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem;vertical-align:top;text-align:left}
pre{white-space:pre-wrap;margin:0;font-size:.85em}</style></head><body>
<h1>{{ t("Données personnelles conservées par assoc-ai", "Personal data kept by assoc-ai") }}</h1>
<p>{{ t("Produit le", "Generated on") }} {{ d.generated_at }} —
{% if d.request.email %}{{ d.request.email }}{% endif %}{% if d.request.person_id %} ({{ d.request.person_id }}){% endif %}</p>
<p>{{ d.what_is_kept }}</p>
<h2>{{ t("Messages triés", "Mail sorted") }} ({{ d.mail_decisions|length }})</h2>
{% if d.mail_decisions %}<table><tr><th>{{ t("Date", "Date") }}</th><th>{{ t("Décision", "Decision") }}</th>
<th>{{ t("Catégorie", "Category") }}</th><th>{{ t("Pourquoi", "Why") }}</th><th>{{ t("Modèle", "Model") }}</th>
<th>{{ t("Actions et corrections", "Actions and corrections") }}</th></tr>
{% for m in d.mail_decisions %}<tr><td>{{ m.decided_at }}</td><td>{{ m.decision }}</td>
<td>{{ m.category or "—" }}{% if m.probability is not none %} ({{ "%.0f"|format(m.probability * 100) }} %){% endif %}</td>
<td>{% if m.explanation and m.explanation.sentence %}{{ m.explanation.sentence }}{% endif %}{% if m.reason %}<br>{{ m.reason }}{% endif %}</td>
<td>{{ m.model_version or "—" }}</td>
<td>{% for a in m.actions %}{{ a.kind }} → {{ a.target }} ({{ a.status }})<br>{% endfor %}
{% for c in m.corrections %}{{ t("correction", "correction") }} {{ c.from_category or "—" }} → {{ c.to_category }}<br>{% endfor %}</td></tr>
{% endfor %}</table>{% else %}<p>{{ t("Aucun.", "None.") }}</p>{% endif %}
<h2>{{ t("Accusés de réception envoyés", "Acknowledgements sent") }}</h2>
{% if d.acknowledgements %}<pre>{{ dumps(d.acknowledgements) }}</pre>{% else %}<p>{{ t("Aucun.", "None.") }}</p>{% endif %}
<h2>{{ t("Versions de modèle concernées", "Model versions involved") }}</h2>
{% if d.model_versions %}<pre>{{ dumps(d.model_versions) }}</pre>{% else %}<p>{{ t("Aucune.", "None.") }}</p>{% endif %}
<h2>{{ t("Données de personnes (CRM, scores)", "People data (CRM, scores)") }}</h2>
{% for path, rows in d.people_data.items() %}<h3>{{ path }}</h3><table>
<tr>{% for k in rows[0].keys() %}<th>{{ k }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for v in r.values() %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>{{ t("Aucune.", "None.") }}</p>{% endfor %}
</body></html>
"""


def write_export(data: Mapping[str, Any], output_dir: str | os.PathLike[str], *, lang: str | None = None) -> tuple[Path, Path]:
    """Write ``access-request-<date>-<n>.json`` and ``.html`` in ``output_dir``; returns both paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"access-request-{utc_now().strftime('%Y%m%d-%H%M%S')}"
    n = 0
    while (out / f"{stem}{'-' + str(n) if n else ''}.json").exists():
        n += 1
    stem = f"{stem}{'-' + str(n) if n else ''}"
    jpath, hpath = out / f"{stem}.json", out / f"{stem}.html"
    for path, text in ((jpath, json.dumps(data, ensure_ascii=False, indent=1, default=str)),
                       (hpath, export_html(data, lang=lang))):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner only
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    return jpath, hpath


# ============================================================================ erasure
@dataclass
class ErasureReport:
    """What an erasure removed (counts only: the report itself holds no personal data)."""

    decisions: int = 0
    corrections: int = 0
    acknowledgements: int = 0
    texts_blanked: int = 0
    people_rows: int = 0
    model_terms: int = 0
    models_marked: list[str] = field(default_factory=list)
    erasure_id: int | None = None
    applied: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)

    def summary(self, lang: str | None = None) -> str:
        """One paragraph for people."""
        head = tr("Effacement effectué" if self.applied else "Simulation (rien n'est effacé ; ajoutez --yes)",
                  "Erasure done" if self.applied else "Dry run (nothing erased; add --yes)", lang)
        return tr(
            f"{head} : {self.decisions} décision(s) anonymisée(s), {self.corrections} correction(s) et "
            f"{self.acknowledgements} accusé(s) de réception supprimés, {self.texts_blanked} texte(s) masqué(s), "
            f"{self.people_rows} ligne(s) de données de personnes supprimée(s), {self.model_terms} terme(s) retiré(s) "
            f"des modèles ; modèles à ré-entraîner : {', '.join(self.models_marked) or '—'}.",
            f"{head}: {self.decisions} decision(s) anonymised, {self.corrections} correction(s) and "
            f"{self.acknowledgements} acknowledgement(s) deleted, {self.texts_blanked} text(s) blanked, "
            f"{self.people_rows} people-data row(s) deleted, {self.model_terms} term(s) removed from models; "
            f"models to retrain: {', '.join(self.models_marked) or '—'}.", lang)


def _user_tables(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]


def _blank_everywhere(db: sqlite3.Connection, identity: Identity, *, apply: bool) -> int:
    """Blank every text cell of every table that mentions the person; returns how many cells."""
    match = identity.matcher()
    count = 0
    for table in _user_tables(db):
        columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
        for col in columns:
            rows = db.execute(f'SELECT rowid, "{col}" FROM "{table}" WHERE typeof("{col}")=\'text\'').fetchall()
            for rowid, value in rows:
                if match(value):
                    count += 1
                    if apply:
                        db.execute(f'UPDATE "{table}" SET "{col}"=? WHERE rowid=?', (identity.blank(value), rowid))
    return count


def scrub_model_vocabulary(model: Any, identity: Identity) -> int:
    """Replace every vocabulary term that mentions the person by an unmatchable placeholder; returns how many.

    The column keeps its index (and weights), but no text can produce it any more,
    so the model behaves as if the word had never been seen; it is still marked
    for retraining.
    """
    match = identity.matcher()
    count = 0
    pipeline = getattr(model, "pipeline_", None)
    if pipeline is None:
        return 0
    features = pipeline.named_steps.get("features")
    for _name, vectorizer, _cols in getattr(features, "transformers_", []):
        vocab = getattr(vectorizer, "vocabulary_", None)
        if not isinstance(vocab, dict):
            continue
        hits = [term for term in vocab if match(term)]
        for term in hits:
            index = vocab.pop(term)
            vocab[f"\x00erased{index}"] = index  # a NUL never comes out of a tokenizer
        count += len(hits)
        stop = getattr(vectorizer, "stop_words_", None)
        if isinstance(stop, set):
            dropped = {w for w in stop if match(w)}
            stop -= dropped
            count += len(dropped)
    return count


def _model_files(settings: Any) -> list[tuple[str, Path]]:

    registry = ModelRegistry(settings.models_dir)
    files = [(v.version, v.path) for v in registry.list()]
    if settings.model_path is not None and settings.model_path.is_file():
        files.append((f"file:{settings.model_path.name}", settings.model_path))
    return files


def _scrub_json_file(path: Path, identity: Identity, *, apply: bool) -> int:
    if not path.is_file():
        return 0
    text = path.read_text(encoding="utf-8")
    if not identity.matcher()(text):
        return 0
    if apply:
        data = json.loads(text)

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return identity.blank(v)
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, dict):
                return {identity.blank(k): walk(x) for k, x in v.items()}
            return v

        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(walk(data), ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, path)
    return 1


def erase_person(config: TrustConfig, *, email: str, names: Sequence[str] = (), apply: bool = False) -> ErasureReport:
    """Erase everything stored about ``email`` (and ``names``); with ``apply=False`` only count.

    Order: people files, model files, then the state file (whose erasure record
    is the last thing written), then VACUUM and a truncating WAL checkpoint so
    the old pages are gone from disk too.
    """
    from assoc_ai_core.persistence import load_model, save_model

    email = _check_email(email)
    settings = config.settings
    report = ErasureReport(applied=apply)
    people, ids, emails = _people_matches(config.privacy, email=email)
    identity = Identity(email, tuple(n for n in names if n and n.strip()))
    extra_emails = sorted(emails - {email})
    with contextlib.ExitStack() as stack:
        if settings.state_path.is_file():
            stack.enter_context(job_lock(settings.state_path))
        # people files
        for path in config.privacy.people_files:
            if str(path) not in people:
                continue
            columns, rows = _read_csv(path)
            keep = [r for r in rows
                    if not any((r.get(c) or "").strip() in ids for c in columns if c.lower() in _ID_COLUMNS)
                    and not any((r.get(c) or "").strip().lower() in emails for c in columns if c.lower() in _EMAIL_COLUMNS)]
            report.people_rows += len(rows) - len(keep)
            if apply:
                keep = [{k: identity.blank(v) if isinstance(v, str) else v for k, v in r.items()} for r in keep]
                _write_csv_atomic(path, columns, keep)
        # model files: vocabulary and records
        marked: list[str] = []
        for version, path in _model_files(settings):
            marked.append(version)
            try:
                model = load_model(path)
            except Exception as exc:  # an unreadable model cannot hold readable terms for us to find
                log.warning(tr(f"Modèle {version} illisible, non nettoyé : {type(exc).__name__}",
                               f"Model {version} unreadable, not cleaned: {type(exc).__name__}"))
                continue
            n = scrub_model_vocabulary(model, identity)
            report.model_terms += n
            if n and apply:
                save_model(model, path)
            report.texts_blanked += _scrub_json_file(path.with_suffix(".json"), identity, apply=apply)
        report.models_marked = marked
        # state file
        if settings.state_path.is_file():
            privacy = sender_privacy(settings)
            hashes = [privacy.hash(a) for a in [email, *extra_emails]]
            with StateStore(settings.state_path) as state:
                if apply:
                    ensure_schema(state)
                    state.execute("PRAGMA secure_delete=ON")
                with state.transaction() as db:
                    keys: set[tuple[str, str]] = set()
                    for address, h in zip([email, *extra_emails], hashes):
                        for r in state.audit(sender_hash=h, sender_raw=address):
                            keys.add((r.instance, r.key))
                    report.decisions = len(keys)
                    for instance, key in keys:
                        n = db.execute("SELECT COUNT(*) FROM corrections WHERE instance=? AND key=?",
                                       (instance, key)).fetchone()[0]
                        report.corrections += n
                        if apply:
                            db.execute("DELETE FROM corrections WHERE instance=? AND key=?", (instance, key))
                            # a de-identified tombstone: the same mail is never handled twice
                            db.execute(
                                "UPDATE messages SET sender_pseudo=NULL, sender_hash=NULL, sender_raw=NULL,"
                                " explanation=NULL, reason=?, updated_at=? WHERE instance=? AND key=?",
                                ("erased", iso_utc(utc_now()), instance, key))
                    try:
                        for h in hashes:
                            report.acknowledgements += db.execute(
                                "SELECT COUNT(*) FROM acknowledgements WHERE sender_hash=?", (h,)).fetchone()[0]
                            if apply:
                                db.execute("DELETE FROM acknowledgements WHERE sender_hash=?", (h,))
                    except sqlite3.OperationalError:
                        pass  # no acknowledgement table: the feature never ran
                    report.texts_blanked += _blank_everywhere(db, identity, apply=apply)
                    if apply:
                        cur = db.execute(
                            "INSERT INTO privacy_erasures (erased_at, subject_hash, decisions, corrections,"
                            " texts_blanked, people_rows, model_terms, models_marked) VALUES (?,?,?,?,?,?,?,?)",
                            (iso_utc(utc_now()), hashes[0], report.decisions, report.corrections, report.texts_blanked,
                             report.people_rows, report.model_terms, json.dumps(marked)))
                        report.erasure_id = int(cur.lastrowid)
                        for h in hashes[1:]:  # further addresses found in the people files
                            db.execute("INSERT INTO privacy_erasures (erased_at, subject_hash) VALUES (?, ?)",
                                       (iso_utc(utc_now()), h))
                        for version in marked:
                            db.execute("INSERT OR IGNORE INTO privacy_retrain_marks (model, erasure_id, marked_at)"
                                       " VALUES (?,?,?)", (version, report.erasure_id, iso_utc(utc_now())))
                if apply:
                    state.execute("VACUUM")
                    state.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if apply:
        log.info(tr(f"Effacement n° {report.erasure_id} enregistré.", f"Erasure #{report.erasure_id} recorded."))
    return report


__all__ = [
    "PrivacyPolicy", "TrustConfig", "Identity", "ErasureReport", "RetentionResult", "PseudonymisingFilter",
    "load_trust_config", "policy_of", "split_config", "export_person", "export_html", "write_export",
    "erase_person", "scrub_model_vocabulary", "drop_erased", "erased_hashes", "models_to_retrain",
    "clear_retrain_marks", "apply_retention", "retention_for_job", "text_for_storage", "ensure_schema",
    "PRIVACY_KEYS", "ERASED",
]
