"""Retraining with the corrections people made: train a candidate, compare it with the live model, promote or keep.

Above the registry and the triage job in the jobs layer: it reads corrections
from the state store, builds training data from the configured source, and
stores the candidate in the :class:`~assoc_ai_core.jobs.registry.ModelRegistry`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assoc_ai_core.api import predict, train
from assoc_ai_core.errors import ConfigError, ModelError
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.examples import collect_mailbox_examples
from assoc_ai_core.jobs.preflight import build_connector, load_current_model
from assoc_ai_core.jobs.registry import ModelRegistry
from assoc_ai_core.jobs.retention import clear_retrain_marks, drop_erased
from assoc_ai_core.jobs.settings import as_settings
from assoc_ai_core.jobs.state import StateStore, now_iso
from assoc_ai_core.mail.parsing import message_from_text
from assoc_ai_core.mail.sources import load_dataset

__all__ = ["RetrainResult", "correction_examples", "retrain"]


@dataclass
class RetrainResult:
    """What ``retrain`` did: the new version (if any), whether it went live, and why."""

    version: str | None
    promoted: bool
    reason: str
    n_train: int = 0
    n_corrections: int = 0
    n_holdout: int = 0
    candidate_accuracy: float | None = None
    current_accuracy: float | None = None
    current_version: str | None = None

    def summary(self) -> str:
        """One paragraph for people."""
        if self.version is None:
            return self.reason
        cand = f"{self.candidate_accuracy:.0%}" if self.candidate_accuracy is not None else "—"
        cur = f"{self.current_accuracy:.0%}" if self.current_accuracy is not None else "—"
        verdict = tr("mise en service", "now live") if self.promoted else tr("gardée en réserve", "kept aside")
        return tr(
            f"Version {self.version} ({verdict}) : {self.n_train} exemples dont {self.n_corrections} corrections ; "
            f"sur les {self.n_holdout} corrections les plus récentes, candidate {cand}, "
            f"en service ({self.current_version or '—'}) {cur}. {self.reason}",
            f"Version {self.version} ({verdict}): {self.n_train} examples including {self.n_corrections} corrections; "
            f"on the {self.n_holdout} most recent corrections, candidate {cand}, "
            f"live ({self.current_version or '—'}) {cur}. {self.reason}",
        )


def _accuracy(model: Any, messages: list[Any]) -> float:
    preds = predict(model, messages)
    return sum(1 for p, m in zip(preds, messages, strict=True) if p.label == m.label) / len(messages)


def correction_examples(corrections: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Training messages from recorded corrections (latest correction of each message wins), oldest first."""
    latest: dict[str, Mapping[str, Any]] = {}
    for c in corrections:
        if c.get("text"):
            latest.pop(c["key"], None)  # re-insert so the order follows the latest correction
            latest[c["key"]] = c
    out = []
    for key, c in latest.items():
        try:
            data = json.loads(c["text"])
        except (TypeError, ValueError):
            continue
        out.append(message_from_text(str(data.get("text", "")), subject=str(data.get("subject", "")),
                                     label=str(c["to_category"]), key=f"correction:{key}"))
    return out


def _base_examples(settings: Any, *, exclude: set[str]) -> tuple[list[Any], str]:
    """The labelled mail the model learns from besides the corrections, and where it came from.

    ``[training] data`` when configured, else the mailbox's category folders
    (``exclude``: keys not to learn from there).
    """
    if settings.training_data is not None:
        return load_dataset(settings.training_data).labelled(), str(settings.training_data)
    conn = build_connector(settings)
    conn.open()
    try:
        return collect_mailbox_examples(settings, conn, exclude=exclude), "mailbox"
    finally:
        conn.close()


def retrain(config: Any, *, on_stored: Callable[[Any, Path, str], Any] | None = None) -> RetrainResult:
    """Train a candidate on the original data plus corrections; promote it only if it is not worse.

    The most recent corrections (``[training] holdout_share``, at least one)
    are held out: the candidate is trained without them, then candidate and
    live model are scored on them.  The candidate is stored either way (so it
    can be inspected or promoted by hand) and goes live only when its accuracy
    is at least the live model's.
    """
    settings = as_settings(config)
    registry = ModelRegistry(settings.models_dir)
    if not settings.state_path.is_file():
        return RetrainResult(None, False, tr("Pas encore de fichier d'état : lancez d'abord le tri.",
                                             "No state file yet: run the triage first."))
    with StateStore(settings.state_path) as state:
        corrections = state.corrections(settings.instance)
        auto = state.auto_keys(settings.instance)
    examples = correction_examples(corrections)
    if len(examples) < settings.min_corrections:
        return RetrainResult(None, False, tr(
            f"Pas assez de corrections pour ré-entraîner ({len(examples)} sur {settings.min_corrections} nécessaires).",
            f"Not enough corrections to retrain ({len(examples)} of {settings.min_corrections} needed).",
        ), n_corrections=len(examples))
    n_hold = max(1, round(len(examples) * settings.holdout_share))
    holdout, train_corr = examples[-n_hold:], examples[:-n_hold]
    corrected_keys = {m.key.split(":", 1)[1] for m in examples}
    base, source = _base_examples(settings, exclude=auto | corrected_keys)
    # a corrected message now sits in its new category folder: learn it once, from the correction only
    base = [m for m in base if m.key not in corrected_keys]
    base = drop_erased(base, settings)  # people who asked to be forgotten are not learnt again
    candidate = train(base + train_corr, target_precision=settings.target_precision)
    try:
        current, current_version = load_current_model(settings)
    except (ConfigError, ModelError):
        current, current_version = None, None
    cand_acc = _accuracy(candidate, holdout)
    cur_acc = _accuracy(current, holdout) if current is not None else None
    promote = cur_acc is None or cand_acc >= cur_acc
    if not registry.list() and current is not None and current_version and current_version.startswith("file:"):
        # keep the hand-trained model as v0001 so a rollback to it stays possible
        registry.add(current, {"created_at": now_iso(), "source": f"imported {settings.model_path}",
                               "n_train": getattr(current, "metadata_", {}).get("n_train")}, promote=True)
        current_version = registry.current()
    info = {
        "created_at": now_iso(), "source": f"{source} + corrections", "n_train": len(base) + len(train_corr),
        "parent": current_version,
        "evaluation": {"holdout": "most recent corrections", "n_holdout": len(holdout),
                       "candidate_accuracy": cand_acc, "current_accuracy": cur_acc, "promoted": promote},
    }
    version = registry.add(candidate, info, promote=promote)
    clear_retrain_marks(settings, version)
    if on_stored is not None:  # e.g. the model card, written by the layer that owns it
        on_stored(candidate, registry.path(version), version)
    reason = (tr("Elle n'est pas moins bonne que la version en service.", "It is not worse than the live version.")
              if promote and cur_acc is not None else
              tr("Aucun modèle en service : elle le devient.", "No live model: it becomes live.") if promote else
              tr("Elle est moins bonne : la version en service est gardée (assoc-ai model rollback pour choisir).",
                 "It is worse: the live version is kept (assoc-ai model rollback to choose)."))
    return RetrainResult(version, promote, reason, n_train=len(base) + len(train_corr), n_corrections=len(examples),
                         n_holdout=len(holdout), candidate_accuracy=cand_acc, current_accuracy=cur_acc,
                         current_version=current_version)
