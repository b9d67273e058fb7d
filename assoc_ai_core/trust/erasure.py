"""Erasure requests: remove everything assoc-ai keeps about one person (a dry run lists what would change).

The person is found by identity, never by substring (see
:class:`~assoc_ai_core.trust.privacy.Identity`): their address (exact,
case-folded), its keyed hashes, and their full names as whole-word sequences,
looked for only in the free-text columns listed in :data:`FREE_TEXT_COLUMNS` —
never in categories, folders, configuration keys, cursors or other structure.

In order: people files (the person's rows deleted, mentions elsewhere
blanked), model files (vocabulary terms and records, and the person's keyed
sender/recipient tokens: dropped from the vocabulary and their coefficients
zeroed, or, when the model's tokens were made with another key, the version
marked for retraining), then the state file —
decisions kept as tombstones holding only a keyed hash of the message key (so
the same mail is never decided again), their journal re-keyed, corrections and
acknowledgements deleted, mentions in other rows blanked, the erasure recorded
without personal data — and finally VACUUM, a truncating WAL checkpoint and a
check of the bytes on disk (:func:`~assoc_ai_core.trust.privacy.verify_erased`).  A person found
nowhere changes nothing, byte for byte.
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

from assoc_ai_core.api import SenderKey, load_sender_key
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
    verify_erased,
)

__all__ = ["ErasureReport", "erase_person", "scrub_model_vocabulary", "FREE_TEXT_COLUMNS"]

log = logging.getLogger(__name__)

# The only state-file columns where words of a person can stand in others' rows; everything else is structure.
FREE_TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("explanation", "reason"),
    "corrections": ("text",),
    "actions": ("detail",),
    "runs": ("message",),
}


@dataclass
class ErasureReport:
    """What an erasure removed (counts and places only: the report itself holds no personal data).

    ``changes`` lists every change, one entry per row, cell, file or model
    version (tables, columns, row ids, paths, versions), in a dry run too.
    """

    decisions: int = 0
    corrections: int = 0
    acknowledgements: int = 0
    texts_blanked: int = 0
    people_rows: int = 0
    model_terms: int = 0
    sender_tokens: int = 0
    models_marked: list[str] = field(default_factory=list)
    erasure_id: int | None = None
    applied: bool = False
    changes: list[dict[str, Any]] = field(default_factory=list)
    verified: bool = False

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
            f"des modèles, dont {self.sender_tokens} jeton(s) d'expéditeur ou de destinataire ; modèles à "
            f"ré-entraîner : {', '.join(self.models_marked) or '—'}.",
            f"{head}: {self.decisions} decision(s) anonymised, {self.corrections} correction(s) and "
            f"{self.acknowledgements} acknowledgement(s) deleted, {self.texts_blanked} text(s) blanked, "
            f"{self.people_rows} people-data row(s) deleted, {self.model_terms} term(s) removed from models, "
            f"{self.sender_tokens} of them sender or recipient tokens; "
            f"models to retrain: {', '.join(self.models_marked) or '—'}.", lang) + "".join(
            "\n  - " + line for line in _change_lines(self.changes, lang))


def _change_lines(changes: Sequence[Mapping[str, Any]], lang: str | None) -> list[str]:
    """One line per place that changes (file, model version, table and column with its row ids)."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    lines = []
    for c in changes:
        if "file" in c:
            lines.append(tr(f"{c['file']} : {c['rows_deleted']} ligne(s) supprimée(s), {c['cells_blanked']} "
                            "cellule(s) masquée(s)", f"{c['file']}: {c['rows_deleted']} row(s) deleted, "
                            f"{c['cells_blanked']} cell(s) blanked", lang))
        elif "model" in c:
            tokens = c.get("sender_tokens_removed", 0)
            retrain = c.get("sender_tokens_need_retraining", False)
            lines.append(tr(f"modèle {c['model']} : {c['terms_removed']} terme(s) retiré(s), dont {tokens} jeton(s) "
                            "d'expéditeur ou de destinataire"
                            + (" ; jetons faits avec une autre clé : à ré-entraîner" if retrain else ""),
                            f"model {c['model']}: {c['terms_removed']} term(s) removed, {tokens} of them sender or "
                            "recipient tokens" + ("; tokens made with another key: to retrain" if retrain else ""),
                            lang))
        else:
            rowid = c.get("rowid")
            rows.setdefault((c["table"], c.get("column", ""), c["change"]), []).append(
                "" if rowid is None else str(rowid))
    for (table, column, change), ids in sorted(rows.items()):
        where = f"{table}.{column}" if column else table
        listed = ", ".join(i for i in ids if i)
        lines.append(tr(f"{where} : {change} × {len(ids)}", f"{where}: {change} × {len(ids)}", lang)
                     + (f" (rowid {listed})" if listed else ""))
    return lines


@dataclass
class _StatePlan:
    """What the state file holds about the person, found before anything is written."""

    keys: set[tuple[str, str]] = field(default_factory=set)
    corrections: list[int] = field(default_factory=list)
    acknowledgements: list[str] = field(default_factory=list)
    cells: list[tuple[str, str, int, str]] = field(default_factory=list)  # table, column, rowid, new value

    def __bool__(self) -> bool:
        return bool(self.keys or self.corrections or self.acknowledgements or self.cells)


def erase_person(config: TrustConfig, *, email: str, names: Sequence[str] = (), apply: bool = False) -> ErasureReport:
    """Erase everything stored about ``email`` (and ``names``); with ``apply=False`` only list what would change.

    Raises :class:`~assoc_ai_core.errors.TransientError` (exit 75) when the
    bytes on disk still hold the person afterwards (a reader kept a
    transaction open and the checkpoint could not complete): run it again.
    """
    email = check_email(email)
    settings = config.settings
    report = ErasureReport(applied=apply)
    people, ids, emails = people_matches(config.privacy, email=email)
    addresses = [email, *sorted(emails - {email})]  # further addresses found in the people files come after
    identity = Identity(email, tuple(n for n in names if n and n.strip()))
    has_state = settings.state_path.is_file()
    with contextlib.ExitStack() as stack:
        if has_state:
            stack.enter_context(job_lock(settings.state_path))
        plan = _find_in_state(settings, addresses, identity) if has_state else _StatePlan()
        _erase_people_files(config.privacy, people, ids, emails, identity, report)
        # a model trained on the person's own mail may hold their name words alone, not just their full name
        models = _scrub_models(settings, identity, report, wrote=bool(plan.keys), addresses=addresses)
        if has_state:
            _erase_from_state(settings, addresses, plan, report)
        if apply:
            verify_erased(settings.state_path if has_state else None, models, identity)
            report.verified = True
    if apply and report.erasure_id is not None:
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
        blanked = [{k: identity.blank(v) if isinstance(v, str) else v for k, v in r.items()} for r in keep]
        cells = sum(a[k] != b[k] for a, b in zip(keep, blanked, strict=True) for k in a)
        report.people_rows += len(rows) - len(keep)
        report.texts_blanked += cells
        report.changes.append({"file": str(path), "rows_deleted": len(rows) - len(keep), "cells_blanked": cells})
        if report.applied:
            _write_csv(path, columns, blanked)


# ============================================================================ models
def scrub_model_vocabulary(model: Any, identity: Identity, *, words: bool = False) -> int:
    """Replace every vocabulary term that names the person by an unmatchable placeholder; returns how many.

    A term names the person when it holds their address or full name as whole
    words, or (``words=True``, for models that learnt from the person's own
    mail) one of their name words as a whole word — never as part of another
    word.  The column keeps its index (and weights), but no text can produce
    it any more, so the model behaves as if the word had never been seen.
    """
    match = identity.matcher(words=words)
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


def _scrub_record(path: Path, identity: Identity, *, words: bool, apply: bool) -> bool:
    """Blank the person in the texts of a model's record (``vNNNN.json``); keys are structure and stay."""
    if not path.is_file():
        return False
    data = json.loads(path.read_text(encoding="utf-8"))
    cleaned = identity.blank_json(data, words=words)
    if cleaned == data:
        return False
    if apply:
        atomic_write(path, json.dumps(cleaned, ensure_ascii=False, indent=2))
    return True


def _job_sender_key(settings: Any) -> SenderKey | None:
    """The job's key, which made the sender/recipient tokens of the models it trained (None: no key file)."""
    try:
        return load_sender_key(settings.key_file) if settings.key_file.is_file() else None
    except (OSError, ValueError) as exc:
        log.warning(tr(f"Clé d'expéditeurs illisible : {type(exc).__name__}", f"Sender key unreadable: {type(exc).__name__}"))
        return None


def _scrub_models(settings: Any, identity: Identity, report: ErasureReport, *, wrote: bool,
                  addresses: Sequence[str] = ()) -> list[Path]:
    """Scrub the vocabulary, sender tokens and record of every model version; returns the model files.

    When the person wrote, every version may have learnt from their mail and is
    marked for retraining; otherwise only the versions that named them, held
    their tokens, or hold tokens of another key (which cannot be looked for).
    """
    paths = []
    sender_key = _job_sender_key(settings) if addresses else None
    for version, path in _model_files(settings):
        paths.append(path)
        try:
            model = load_model(path)
        except Exception as exc:  # an unreadable model cannot hold readable terms for us to find
            log.warning(tr(f"Modèle {version} illisible, non nettoyé : {type(exc).__name__}",
                           f"Model {version} unreadable, not cleaned: {type(exc).__name__}"))
            continue
        n = scrub_model_vocabulary(model, identity, words=wrote)
        forget = getattr(model, "forget_addresses", None)
        tokens = forget(addresses, sender_key) if callable(forget) and addresses else None
        k = tokens.removed if tokens is not None else 0
        retrain = bool(tokens is not None and tokens.needs_retraining)
        record = _scrub_record(path.with_suffix(".json"), identity, words=wrote, apply=report.applied)
        if (n or k) and report.applied:
            if version.startswith("file:"):
                save_model(model, path)
            else:  # through the registry, which records the new digest (it refuses files changed behind its back)
                ModelRegistry(settings.models_dir).replace(version, model)
        report.model_terms += n + k
        report.sender_tokens += k
        report.texts_blanked += record
        if n or k or record or wrote or retrain:
            report.models_marked.append(version)
            report.changes.append({"model": version, "terms_removed": n + k, "sender_tokens_removed": k,
                                   "sender_tokens_need_retraining": retrain, "record_blanked": record})
    return paths


# ============================================================================ state file
def _find_in_state(settings: Any, addresses: Sequence[str], identity: Identity) -> _StatePlan:
    """Read-only: the person's decisions, corrections and acknowledgements, and mentions in others' rows."""
    privacy = sender_privacy(settings)
    plan = _StatePlan()
    with StateStore(settings.state_path, key_file=settings.key_file) as state:
        for address in addresses:
            plan.keys |= {(r.instance, r.key) for r in state.audit(sender_hash=privacy.hash(address),
                                                                   sender_raw=address)}
        plan.keys |= state.participant_keys([privacy.hash(a) for a in addresses])
        for instance, key in sorted(plan.keys):
            plan.corrections += [r[0] for r in state.execute("SELECT id FROM corrections WHERE instance=? AND key=?",
                                                          (instance, key))]
        with contextlib.suppress(sqlite3.OperationalError):  # no acknowledgement table: the feature never ran
            plan.acknowledgements = [h for h in (privacy.hash(a) for a in addresses) if state.execute(
                "SELECT 1 FROM acknowledgements WHERE sender_hash=?", (h,)).fetchone()]
        plan.cells = _mentions_in_free_text(state, identity, plan.keys)
    return plan


def _blank_cell(value: str, identity: Identity) -> str:
    """A free-text cell blanked; JSON cells stay JSON (their texts blanked, their keys kept)."""
    if value[:1] in "{[":
        try:
            data = json.loads(value)
        except ValueError:
            return identity.blank(value)
        cleaned = identity.blank_json(data)
        return value if cleaned == data else json.dumps(cleaned, ensure_ascii=False)
    return identity.blank(value)


def _mentions_in_free_text(db: Any, identity: Identity,
                           keys: set[tuple[str, str]]) -> list[tuple[str, str, int, str]]:
    """Cells of :data:`FREE_TEXT_COLUMNS` in rows not about the person that name them, with their blanked value."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    cells = []
    for table, columns in FREE_TEXT_COLUMNS.items():
        if table not in tables:
            continue
        keyed = table in ("messages", "corrections", "actions")  # their rows of the person's mail go as a whole
        for col in columns:
            sql = f'SELECT rowid, "{col}"{", instance, key" if keyed else ""} FROM "{table}"' \
                  f' WHERE typeof("{col}")=\'text\''
            for row in db.execute(sql):
                if keyed and (row[2], row[3]) in keys:
                    continue
                new = _blank_cell(row[1], identity)
                if new != row[1]:
                    cells.append((table, col, row[0], new))
    return cells


def _erase_from_state(settings: Any, addresses: Sequence[str], plan: _StatePlan, report: ErasureReport) -> None:
    """Tombstone the decisions, delete corrections and acknowledgements, blank mentions, record the erasure."""
    report.decisions = len(plan.keys)
    report.corrections = len(plan.corrections)
    report.acknowledgements = len(plan.acknowledgements)
    report.texts_blanked += len(plan.cells)
    report.changes += [{"table": "messages", "change": "tombstone", "key_hashed": True} for _ in plan.keys]
    report.changes += [{"table": "corrections", "rowid": i, "change": "delete"} for i in plan.corrections]
    report.changes += [{"table": "acknowledgements", "change": "delete"} for _ in plan.acknowledgements]
    report.changes += [{"table": t, "column": c, "rowid": r, "change": "blank"} for t, c, r, _ in plan.cells]
    if not report.applied or not (plan or report.model_terms or report.people_rows or report.texts_blanked):
        return  # nothing about the person: not a byte of the state file changes
    privacy = sender_privacy(settings)
    with StateStore(settings.state_path, key_file=settings.key_file) as state:
        ensure_schema(state)
        state.execute("PRAGMA secure_delete=ON")
        with state.transaction() as db:
            for instance, key in plan.keys:
                state.tombstone_message(instance, key)
            db.executemany("DELETE FROM corrections WHERE id=?", [(i,) for i in plan.corrections])
            if plan.acknowledgements:  # else the table may not exist: the feature never ran
                db.executemany("DELETE FROM acknowledgements WHERE sender_hash=?",
                               [(h,) for h in plan.acknowledgements])
            state.forget_participants([privacy.hash(a) for a in addresses])
            for table, col, rowid, new in plan.cells:
                db.execute(f'UPDATE "{table}" SET "{col}"=? WHERE rowid=?', (new, rowid))
            _record_erasure(db, [privacy.hash(a) for a in addresses], report)


def _record_erasure(db: sqlite3.Connection, hashes: Sequence[str], report: ErasureReport) -> None:
    """The erasure record (counts and keyed hashes only) and a retraining mark on the models affected."""
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
