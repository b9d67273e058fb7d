"""What the job keeps and forgets: the ``[privacy]`` policy, retention of stored text, the suppression list.

The triage job applies the retention policy on every run and leaves erased
people out of training; :mod:`assoc_ai_core.trust.privacy` (above this layer)
records erasures here and reads the same tables.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.config import load_config
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.state import SenderPrivacy, StateStore
from assoc_ai_core.mail.pseudonymise import pseudonymise

log = logging.getLogger(__name__)

PRIVACY_KEYS = {"retention_days_text", "retention_action", "store_raw_text", "people_files"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS privacy_erasures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    erased_at TEXT NOT NULL,
    subject_hash TEXT NOT NULL,
    decisions INTEGER NOT NULL DEFAULT 0,
    corrections INTEGER NOT NULL DEFAULT 0,
    texts_blanked INTEGER NOT NULL DEFAULT 0,
    people_rows INTEGER NOT NULL DEFAULT 0,
    model_terms INTEGER NOT NULL DEFAULT 0,
    models_marked TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS privacy_erasures_hash ON privacy_erasures (subject_hash);
CREATE TABLE IF NOT EXISTS privacy_retrain_marks (
    model TEXT NOT NULL,
    erasure_id INTEGER NOT NULL,
    marked_at TEXT NOT NULL,
    cleared_at TEXT,
    cleared_by TEXT,
    PRIMARY KEY (model, erasure_id)
);
CREATE TABLE IF NOT EXISTS privacy_retention_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    applied_at TEXT NOT NULL,
    action TEXT NOT NULL,
    cutoff TEXT NOT NULL,
    corrections INTEGER NOT NULL DEFAULT 0,
    decisions INTEGER NOT NULL DEFAULT 0
)
"""


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def iso_utc(dt: datetime) -> str:
    """``dt`` as an ISO 8601 UTC timestamp to the second."""
    return dt.astimezone(UTC).isoformat(timespec="seconds")


# ============================================================================ settings
@dataclass(frozen=True)
class PrivacyPolicy:
    """The ``[privacy]`` keys of this module (the triage job reads the others).

    ``retention_days_text``: days after which stored text (correction text,
    explanations, raw sender addresses) is deleted or pseudonymised (None:
    kept).  ``retention_action``: ``"pseudonymise"`` (training keeps working)
    or ``"delete"``.  ``store_raw_text``: keep raw text where a feature offers
    it (off: pseudonymised).  ``people_files``: CSV files of people data the
    library wrote (scores, feature tables), covered by export and erasure.
    """

    retention_days_text: int | None = None
    retention_action: str = "pseudonymise"
    store_raw_text: bool = False
    people_files: tuple[Path, ...] = ()

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = ".") -> PrivacyPolicy:
        """Check the ``[privacy]`` section; errors name the key and the fix."""
        days = section.get("retention_days_text")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
            raise ConfigError(tr("[privacy] retention_days_text doit être un nombre entier de jours (1 ou plus).",
                                 "[privacy] retention_days_text must be a whole number of days (1 or more)."))
        action = section.get("retention_action", "pseudonymise")
        if action in ("pseudonymize",):
            action = "pseudonymise"
        if action not in ("delete", "pseudonymise"):
            raise ConfigError(tr('[privacy] retention_action : "delete" ou "pseudonymise".',
                                 '[privacy] retention_action: "delete" or "pseudonymise".'))
        raw = section.get("store_raw_text", False)
        if not isinstance(raw, bool):
            raise ConfigError(tr("[privacy] store_raw_text : true ou false.", "[privacy] store_raw_text: true or false."))
        files = section.get("people_files", [])
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise ConfigError(tr("[privacy] people_files : une liste de chemins de fichiers CSV.",
                                 "[privacy] people_files: a list of CSV file paths."))
        base = Path(base_dir)
        paths = tuple(p if p.is_absolute() else base / p for p in (Path(f).expanduser() for f in files))
        return cls(days, action, raw, paths)



def split_config(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(mapping the triage settings accept, this module's ``[privacy]`` keys)."""
    data = dict(data)
    privacy = dict(data.get("privacy", {}) or {})
    ours = {k: privacy.pop(k) for k in list(privacy) if k in PRIVACY_KEYS}
    data["privacy"] = privacy
    return data, ours



def policy_of(settings: Any) -> PrivacyPolicy:
    """The privacy policy of the configuration file the triage settings came from (defaults otherwise)."""
    path = getattr(settings, "config_path", None)
    if path is None or not Path(path).is_file():
        return PrivacyPolicy()
    _, ours = split_config(load_config(path))
    return PrivacyPolicy.from_mapping(ours, base_dir=Path(path).resolve().parent)


# ============================================================================ storage helpers
def ensure_schema(state: Any) -> None:
    """Create this module's tables in the state file when missing."""
    with state.transaction() as db:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)



def sender_privacy(settings: Any) -> SenderPrivacy:
    """The keyed sender hashing of the job (its key file must exist)."""
    if not settings.key_file.is_file():
        raise ConfigError(tr(
            f"Clé de pseudonymisation introuvable : {settings.key_file}. Sans elle, impossible de retrouver "
            "les messages d'une personne ([privacy] key_file).",
            f"Pseudonymisation key not found: {settings.key_file}. Without it a person's messages cannot be "
            "found ([privacy] key_file).",
        ))
    return SenderPrivacy.from_key_file(settings.key_file)



def model_sender_key(settings: Any) -> Any:
    """The job's key for the model's sender/recipient tokens: the state's key file, created on first use."""
    from assoc_ai_core.api import load_sender_key

    return load_sender_key(settings.key_file, create=True)


# ============================================================================ after erasure: retraining
def erased_hashes(state: Any) -> set[str]:
    """Keyed hashes of erased addresses (the suppression list)."""
    try:
        return {r[0] for r in state.execute("SELECT subject_hash FROM privacy_erasures")}
    except sqlite3.OperationalError:
        return set()


def drop_erased(messages: Sequence[Any], settings: Any) -> list[Any]:
    """``messages`` without those sent by an erased person (call before training or retraining)."""
    if not settings.state_path.is_file() or not settings.key_file.is_file():
        return list(messages)
    with StateStore(settings.state_path) as state:
        hashes = erased_hashes(state)
    if not hashes:
        return list(messages)
    privacy = sender_privacy(settings)
    return [m for m in messages if privacy.hash(getattr(m, "sender", "") or "") not in hashes]


def models_to_retrain(settings: Any) -> list[str]:
    """Model versions marked by an erasure and not retrained since."""
    if not settings.state_path.is_file():
        return []
    with StateStore(settings.state_path) as state:
        try:
            rows = state.execute("SELECT DISTINCT model FROM privacy_retrain_marks WHERE cleared_at IS NULL"
                                 " ORDER BY model").fetchall()
        except sqlite3.OperationalError:
            return []
    return [r[0] for r in rows]


def clear_retrain_marks(settings: Any, new_version: str) -> int:
    """Record that ``new_version`` was trained after the erasures (call after a retrain); returns marks cleared."""
    if not settings.state_path.is_file():
        return 0
    with StateStore(settings.state_path) as state:
        ensure_schema(state)
        cur = state.execute("UPDATE privacy_retrain_marks SET cleared_at=?, cleared_by=? WHERE cleared_at IS NULL",
                            (iso_utc(utc_now()), new_version))
        return cur.rowcount


# ============================================================================ retention
@dataclass
class RetentionResult:
    """What one application of the retention policy changed."""

    action: str = ""
    cutoff: str | None = None
    corrections: int = 0
    decisions: int = 0

    def summary(self, lang: str | None = None) -> str:
        """One line for people."""
        if self.cutoff is None:
            return tr("Pas de durée de conservation configurée.", "No retention period configured.", lang)
        return tr(f"Conservation ({self.action}) avant {self.cutoff} : {self.corrections} correction(s), "
                  f"{self.decisions} décision(s) traitées.",
                  f"Retention ({self.action}) before {self.cutoff}: {self.corrections} correction(s), "
                  f"{self.decisions} decision(s) processed.", lang)


def map_json_text(value: Any, change: Callable[[str], str], *, keys: bool = False) -> Any:
    """``value`` (JSON data) with ``change`` applied to every text in it, and to the keys of objects with ``keys``."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [map_json_text(v, change, keys=keys) for v in value]
    if isinstance(value, dict):
        return {(change(k) if keys else k): map_json_text(v, change, keys=keys) for k, v in value.items()}
    return value


def _pseudonymise_json(value: Any) -> Any:
    return map_json_text(value, pseudonymise)


def apply_retention(state: Any, policy: PrivacyPolicy, *, now: datetime | None = None) -> RetentionResult:
    """Delete or pseudonymise stored text older than the retention period.

    * corrections: the text is removed (``delete``) or pseudonymised again and
      flagged (``pseudonymise``: the subject/text shape is kept, so retraining
      still learns from it);
    * decisions: the raw sender address is dropped (the keyed hash and the
      pseudonym stay), the explanation is removed or pseudonymised.
    """
    result = RetentionResult(action=policy.retention_action)
    if policy.retention_days_text is None:
        return result
    cutoff = iso_utc((now or utc_now()) - timedelta(days=policy.retention_days_text))
    result.cutoff = cutoff
    ensure_schema(state)
    with state.transaction() as db:
        rows = db.execute("SELECT id, text FROM corrections WHERE detected_at < ? AND text IS NOT NULL",
                          (cutoff,)).fetchall()
        for cid, text in rows:
            if policy.retention_action == "delete":
                db.execute("UPDATE corrections SET text=NULL WHERE id=?", (cid,))
                result.corrections += 1
                continue
            data = json_or_none(text)
            if isinstance(data, dict) and data.get("retention") == "pseudonymised":
                continue
            if not isinstance(data, dict):
                data = {"subject": "", "text": str(data)}
            data = {**_pseudonymise_json({k: v for k, v in data.items() if k in ("subject", "text")}),
                    "retention": "pseudonymised"}
            db.execute("UPDATE corrections SET text=? WHERE id=?", (json.dumps(data, ensure_ascii=False), cid))
            result.corrections += 1
        rows = db.execute(
            "SELECT rowid, explanation, sender_raw FROM messages WHERE decided_at < ? AND "
            "(sender_raw IS NOT NULL OR (explanation IS NOT NULL AND explanation NOT LIKE '%\"retention\"%'))",
            (cutoff,)).fetchall()
        for rowid, explanation, _raw in rows:
            if policy.retention_action == "delete" or explanation is None:
                new = None
            else:
                data = json_or_none(explanation)
                data = _pseudonymise_json(data) if isinstance(data, dict) else {"text": _pseudonymise_json(str(data))}
                data["retention"] = "pseudonymised"
                new = json.dumps(data, ensure_ascii=False)
            db.execute("UPDATE messages SET sender_raw=NULL, explanation=? WHERE rowid=?", (new, rowid))
            result.decisions += 1
        if result.corrections or result.decisions:
            db.execute("INSERT INTO privacy_retention_runs (applied_at, action, cutoff, corrections, decisions)"
                       " VALUES (?,?,?,?,?)", (iso_utc(now or utc_now()), result.action, cutoff, result.corrections,
                                              result.decisions))
    return result


def retention_for_job(settings: Any, state: Any, *, now: datetime | None = None) -> RetentionResult:
    """What the triage job calls on every (non-dry) run: apply the configured retention to its open state."""
    try:
        policy = policy_of(settings)
    except ConfigError as exc:
        log.warning(str(exc))
        return RetentionResult()
    result = apply_retention(state, policy, now=now)
    if result.corrections or result.decisions:
        log.info(result.summary())
    return result


def json_or_none(text: str | None) -> Any:
    """``text`` read as JSON, or the text itself when it is not JSON (empty: None)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


__all__ = [
    "PRIVACY_KEYS", "PrivacyPolicy", "split_config", "policy_of", "ensure_schema", "erased_hashes", "drop_erased",
    "models_to_retrain", "clear_retrain_marks", "RetentionResult", "apply_retention", "retention_for_job",
    "json_or_none", "sender_privacy", "model_sender_key", "utc_now", "iso_utc", "map_json_text",
]
