"""Erasure requests: remove everything assoc-ai keeps about one person (a dry run only counts).

In order: people files (the person's rows deleted, mentions elsewhere
blanked), model files (vocabulary terms and records), then the state file —
decisions kept as de-identified tombstones so the same message is never
handled twice, corrections and acknowledgements deleted, every other mention
blanked, the erasure recorded without personal data and every model marked for
retraining — and finally VACUUM and a truncating WAL checkpoint so the old
pages are gone from disk too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assoc_ai_core.files import atomic_write
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.registry import ModelRegistry
from assoc_ai_core.jobs.retention import ensure_schema, iso_utc, sender_privacy, utc_now
from assoc_ai_core.jobs.state import StateStore, inserted_id
from assoc_ai_core.persistence import load_model, save_model
from assoc_ai_core.trust.privacy import (
    Identity,
    PrivacyPolicy,
    TrustConfig,
    check_email,
    job_lock,
    people_matches,
    read_csv,
    row_mentions,
)

__all__ = ["ErasureReport", "erase_person", "scrub_model_vocabulary"]

log = logging.getLogger(__name__)


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


def erase_person(config: TrustConfig, *, email: str, names: Sequence[str] = (), apply: bool = False) -> ErasureReport:
    """Erase everything stored about ``email`` (and ``names``); with ``apply=False`` only count.

    Order: people files, model files, then the state file (whose erasure record
    is the last thing written), then VACUUM and a truncating WAL checkpoint so
    the old pages are gone from disk too.
    """
    email = check_email(email)
    settings = config.settings
    report = ErasureReport(applied=apply)
    people, ids, emails = people_matches(config.privacy, email=email)
    identity = Identity(email, tuple(n for n in names if n and n.strip()))
    with contextlib.ExitStack() as stack:
        if settings.state_path.is_file():
            stack.enter_context(job_lock(settings.state_path))
        _erase_people_files(config.privacy, people, ids, emails, identity, report)
        _scrub_models(settings, identity, report)
        if settings.state_path.is_file():
            # further addresses found in the people files come after the one asked about
            _erase_from_state(settings, [email, *sorted(emails - {email})], identity, report)
    if apply:
        log.info(tr(f"Effacement n° {report.erasure_id} enregistré.", f"Erasure #{report.erasure_id} recorded."))
    return report


# ============================================================================ people files
def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, text.getvalue())


def _erase_people_files(policy: PrivacyPolicy, people: Mapping[str, Any], ids: set[str], emails: set[str],
                        identity: Identity, report: ErasureReport) -> None:
    """Delete the person's rows from the people files and blank their mentions in the rows kept."""
    for path in policy.people_files:
        if str(path) not in people:
            continue
        columns, rows = read_csv(path)
        keep = [r for r in rows if not row_mentions(r, columns, ids, emails)]
        report.people_rows += len(rows) - len(keep)
        if report.applied:
            keep = [{k: identity.blank(v) if isinstance(v, str) else v for k, v in r.items()} for r in keep]
            _write_csv(path, columns, keep)


# ============================================================================ models
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
        atomic_write(path, json.dumps(identity.blank_json(json.loads(text)), ensure_ascii=False, indent=2))
    return 1


def _scrub_models(settings: Any, identity: Identity, report: ErasureReport) -> None:
    """Scrub the vocabulary and the record of every model version; all of them are marked for retraining."""
    for version, path in _model_files(settings):
        report.models_marked.append(version)
        try:
            model = load_model(path)
        except Exception as exc:  # an unreadable model cannot hold readable terms for us to find
            log.warning(tr(f"Modèle {version} illisible, non nettoyé : {type(exc).__name__}",
                           f"Model {version} unreadable, not cleaned: {type(exc).__name__}"))
            continue
        n = scrub_model_vocabulary(model, identity)
        report.model_terms += n
        if n and report.applied:
            save_model(model, path)
        report.texts_blanked += _scrub_json_file(path.with_suffix(".json"), identity, apply=report.applied)


# ============================================================================ state file
def _erase_from_state(settings: Any, addresses: Sequence[str], identity: Identity, report: ErasureReport) -> None:
    """Tombstone the decisions, delete corrections and acknowledgements, blank the rest, record the erasure."""
    privacy = sender_privacy(settings)
    hashes = [privacy.hash(a) for a in addresses]
    with StateStore(settings.state_path) as state:
        if report.applied:
            ensure_schema(state)
            state.execute("PRAGMA secure_delete=ON")
        with state.transaction() as db:
            keys = {(r.instance, r.key) for address, h in zip(addresses, hashes, strict=True)
                    for r in state.audit(sender_hash=h, sender_raw=address)}
            _erase_decisions(db, keys, report)
            _erase_acknowledgements(db, hashes, report)
            report.texts_blanked += _blank_everywhere(db, identity, apply=report.applied)
            if report.applied:
                _record_erasure(db, hashes, report)
        if report.applied:
            state.execute("VACUUM")
            state.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _erase_decisions(db: sqlite3.Connection, keys: set[tuple[str, str]], report: ErasureReport) -> None:
    report.decisions = len(keys)
    for instance, key in keys:
        report.corrections += db.execute("SELECT COUNT(*) FROM corrections WHERE instance=? AND key=?",
                                         (instance, key)).fetchone()[0]
        if report.applied:
            db.execute("DELETE FROM corrections WHERE instance=? AND key=?", (instance, key))
            # a de-identified tombstone: the same mail is never handled twice
            db.execute(
                "UPDATE messages SET sender_pseudo=NULL, sender_hash=NULL, sender_raw=NULL,"
                " explanation=NULL, reason=?, updated_at=? WHERE instance=? AND key=?",
                ("erased", iso_utc(utc_now()), instance, key))


def _erase_acknowledgements(db: sqlite3.Connection, hashes: Sequence[str], report: ErasureReport) -> None:
    try:
        for h in hashes:
            report.acknowledgements += db.execute(
                "SELECT COUNT(*) FROM acknowledgements WHERE sender_hash=?", (h,)).fetchone()[0]
            if report.applied:
                db.execute("DELETE FROM acknowledgements WHERE sender_hash=?", (h,))
    except sqlite3.OperationalError:
        pass  # no acknowledgement table: the feature never ran


def _record_erasure(db: sqlite3.Connection, hashes: Sequence[str], report: ErasureReport) -> None:
    """The erasure record (counts and keyed hashes only) and a retraining mark on every model."""
    now = iso_utc(utc_now())
    report.erasure_id = inserted_id(db.execute(
        "INSERT INTO privacy_erasures (erased_at, subject_hash, decisions, corrections,"
        " texts_blanked, people_rows, model_terms, models_marked) VALUES (?,?,?,?,?,?,?,?)",
        (now, hashes[0], report.decisions, report.corrections, report.texts_blanked,
         report.people_rows, report.model_terms, json.dumps(report.models_marked))))
    for h in hashes[1:]:  # further addresses found in the people files
        db.execute("INSERT INTO privacy_erasures (erased_at, subject_hash) VALUES (?, ?)", (now, h))
    for version in report.models_marked:
        db.execute("INSERT OR IGNORE INTO privacy_retrain_marks (model, erasure_id, marked_at)"
                   " VALUES (?,?,?)", (version, report.erasure_id, now))


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
