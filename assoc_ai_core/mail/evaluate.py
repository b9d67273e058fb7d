"""How well a model sorts mail it has not seen: metrics, coverage at precision, mistakes.

The honest protocol for mail is chronological (train on older mail, test on
newer): categories drift, senders change.  :func:`chronological_split` does it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.mail.metadata import DIGESTS_KEY, message_digests, train_digest, unpack_digests
from assoc_ai_core.mail.pseudonymise import pseudonymise
from assoc_ai_core.mail.thresholds import coverage_at_precision, coverage_curve
from assoc_ai_core.records.mail import Message

__all__ = ["chronological_split", "evaluate", "training_overlap"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def chronological_split(messages: Sequence[Message], test_size: float = 0.3) -> tuple[list[Message], list[Message]]:
    """Oldest ``1 - test_size`` of the messages for training, newest for testing (undated count as oldest)."""
    if not 0 < test_size < 1:
        raise DataError(tr("test_size doit être entre 0 et 1.", "test_size must be between 0 and 1."))
    order = sorted(messages, key=lambda m: (m.date or _EPOCH, m.key))
    cut = int(round(len(order) * (1 - test_size)))
    return order[:cut], order[cut:]


def training_overlap(
    model: Any, messages: Sequence[Message | str], cleaned: np.ndarray, y: np.ndarray,
) -> tuple[str, dict[str, Any]]:
    """Whether ``messages`` were seen at training: ``(evaluated_on, {"n", "share", "method"})``.

    A model stores a digest of each training message; one saved before that
    only has the fingerprint of its whole training set, which tells "exactly
    the training data" and nothing else, so any other set is ``"unknown"``.
    """
    meta = getattr(model, "metadata_", {}) or {}
    total = len(messages)
    packed = meta.get(DIGESTS_KEY)
    if isinstance(packed, str):
        k = int(np.isin(message_digests(messages), unpack_digests(packed)).sum())
        where = "held_out" if k == 0 else "training_data" if k == total else "partly_training_data"
        return where, {"n": k, "share": k / total if total else 0.0, "method": "digests"}
    fingerprint = meta.get("train_sha256")
    if fingerprint and len(cleaned) == total and train_digest(cleaned[:, 0], y) == fingerprint:
        return "training_data", {"n": total, "share": 1.0, "method": "fingerprint"}
    return "unknown", {"n": None, "share": None, "method": None}


def evaluate(
    model: Any,
    messages: Sequence[Message | str],
    labels: Sequence[str] | None = None,
    *,
    mistakes: int = 10,
    lang: str | None = None,
) -> dict[str, Any]:
    """Score ``model`` on labelled messages.

    Returns a JSON-ready dict with ``accuracy``, ``macro_f1``, ``per_class``
    (precision/recall/f1/support and ``predicted``, how many messages the
    model put there), ``n_correct``, ``confusion`` (labels + matrix),
    ``coverage_at_precision`` (share of mail that could be auto-routed while
    keeping 90/95/98 % precision on this data), ``at_threshold`` (what the
    model's own review threshold gives here, with ``n_auto``,
    ``n_auto_correct`` and ``n_review`` counts) and the worst ``mistakes`` with
    their explanations.  ``evaluated_on`` says whether the messages were
    ``"held_out"``, ``"training_data"``, ``"partly_training_data"`` or
    ``"unknown"`` (a model saved without per-message digests), and
    ``training_overlap`` how many were seen at training (``n``, ``share``).
    """
    msgs, y = _labelled_pairs(messages, labels)
    cleaned = model.transform_clean(msgs)
    evaluated_on, overlap = training_overlap(model, msgs, cleaned, y)
    proba = model.predict_proba(cleaned)
    classes = np.asarray([str(c) for c in model.classes_], dtype=object)
    pred = classes[proba.argmax(1)]
    conf = proba.max(1)
    correct = pred == y
    all_labels = sorted(set(classes) | set(y))
    result: dict[str, Any] = {
        "n": int(len(y)),
        "n_correct": int(correct.sum()),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=sorted(set(y)), average="macro", zero_division=0)),
        "per_class": _per_class(y, pred, all_labels),
        "confusion": {"labels": all_labels, "matrix": confusion_matrix(y, pred, labels=all_labels).tolist()},
        "coverage_at_precision": coverage_at_precision(conf, correct),
        "at_threshold": _at_threshold(model, conf, correct),
        "coverage_curve": coverage_curve(conf, correct),
        "unknown_labels": sorted(set(y) - set(classes)),
        "evaluated_on": evaluated_on,
        "training_overlap": overlap,
        "model": {k: model.metadata_.get(k) for k in ("trained_at", "n_train", "labels", "cv_macro_f1", "expected_auto_share")},
    }
    result["mistakes"] = _worst_mistakes(model, msgs, y, pred, conf, mistakes, lang)
    return result


def _labelled_pairs(messages: Sequence[Message | str], labels: Sequence[str] | None) -> tuple[list[Message | str], np.ndarray]:
    """The readable messages that have a category, and their categories."""
    given: Sequence[str | None] = labels if labels is not None else [
        m.label if isinstance(m, Message) else None for m in messages]
    pairs = [(m, lab) for m, lab in zip(messages, given, strict=False)
             if lab is not None and not (isinstance(m, Message) and m.error)]
    if not pairs:
        raise DataError(tr(
            "Aucun message étiqueté à évaluer (les dossiers donnent les catégories).",
            "No labelled message to evaluate (folders give the categories).",
        ))
    return [m for m, _ in pairs], np.asarray([str(lab) for _, lab in pairs], dtype=object)


def _per_class(y: np.ndarray, pred: np.ndarray, all_labels: list[str]) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and the counts they rest on (``support`` true, ``predicted`` chosen) per category."""
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=all_labels, zero_division=0)
    return {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
              "predicted": int((pred == lab).sum())}
        for i, lab in enumerate(all_labels)
    }


def _at_threshold(model: Any, conf: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """What the model's own review threshold gives on this mail, as shares and as counts."""
    auto = conf >= model.threshold_
    return {
        "threshold": float(model.threshold_),
        "target_precision": float(model.target_precision),
        "auto_share": float(auto.mean()),
        "auto_precision": float(correct[auto].mean()) if auto.any() else None,
        "review_share": float(1 - auto.mean()),
        "n_auto": int(auto.sum()),
        "n_auto_correct": int((auto & correct).sum()),
        "n_review": int((~auto).sum()),
    }


def _worst_mistakes(model: Any, msgs: Sequence[Message | str], y: np.ndarray, pred: np.ndarray, conf: np.ndarray,
                    mistakes: int, lang: str | None) -> list[dict[str, Any]]:
    """The ``mistakes`` most confident wrong predictions, each with its explanation."""
    from assoc_ai_core.mail.explain import explain

    wrong = np.where(pred != y)[0]
    worst = wrong[np.argsort(-conf[wrong])][:mistakes]
    out = []
    for i in worst:
        m = msgs[i]
        exp = explain(model, m, lang=lang)
        out.append({
            "source": getattr(m, "source", None) or getattr(m, "key", str(i)),
            "subject": pseudonymise(getattr(m, "subject", "") or "")[:120],
            "true": str(y[i]),
            "predicted": str(pred[i]),
            "probability": float(conf[i]),
            "explanation": exp.sentence,
            "toward": [[t, round(w, 3)] for t, w in exp.toward[:6]],
        })
    return out
