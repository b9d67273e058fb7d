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
from assoc_ai_core.mail.pseudonymise import pseudonymise
from assoc_ai_core.mail.thresholds import coverage_at_precision, coverage_curve
from assoc_ai_core.records.mail import Message

__all__ = ["chronological_split", "evaluate"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def chronological_split(messages: Sequence[Message], test_size: float = 0.3) -> tuple[list[Message], list[Message]]:
    """Oldest ``1 - test_size`` of the messages for training, newest for testing (undated count as oldest)."""
    if not 0 < test_size < 1:
        raise DataError(tr("test_size doit être entre 0 et 1.", "test_size must be between 0 and 1."))
    order = sorted(messages, key=lambda m: (m.date or _EPOCH, m.key))
    cut = int(round(len(order) * (1 - test_size)))
    return order[:cut], order[cut:]


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
    (precision/recall/f1/support), ``confusion`` (labels + matrix),
    ``coverage_at_precision`` (share of mail that could be auto-routed while
    keeping 90/95/98 % precision on this data), ``at_threshold`` (what the
    model's own review threshold gives here) and the worst ``mistakes`` with
    their explanations.
    """
    from assoc_ai_core.mail.explain import explain

    given: Sequence[str | None] = labels if labels is not None else [
        m.label if isinstance(m, Message) else None for m in messages]
    pairs = [(m, lab) for m, lab in zip(messages, given, strict=False)
             if lab is not None and not (isinstance(m, Message) and m.error)]
    if not pairs:
        raise DataError(tr(
            "Aucun message étiqueté à évaluer (les dossiers donnent les catégories).",
            "No labelled message to evaluate (folders give the categories).",
        ))
    msgs = [m for m, _ in pairs]
    y = np.asarray([str(lab) for _, lab in pairs], dtype=object)
    cleaned = model.transform_clean(msgs)
    proba = model.predict_proba(cleaned)
    classes = np.asarray([str(c) for c in model.classes_], dtype=object)
    pred = classes[proba.argmax(1)]
    conf = proba.max(1)
    correct = pred == y
    all_labels = sorted(set(classes) | set(y))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=all_labels, zero_division=0)
    per_class = {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, lab in enumerate(all_labels)
    }
    auto = conf >= model.threshold_
    result: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=sorted(set(y)), average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion": {"labels": all_labels, "matrix": confusion_matrix(y, pred, labels=all_labels).tolist()},
        "coverage_at_precision": coverage_at_precision(conf, correct),
        "at_threshold": {
            "threshold": float(model.threshold_),
            "target_precision": float(model.target_precision),
            "auto_share": float(auto.mean()),
            "auto_precision": float(correct[auto].mean()) if auto.any() else None,
            "review_share": float(1 - auto.mean()),
        },
        "coverage_curve": coverage_curve(conf, correct),
        "unknown_labels": sorted(set(y) - set(classes)),
        "model": {k: model.metadata_.get(k) for k in ("trained_at", "n_train", "labels", "cv_macro_f1", "expected_auto_share")},
    }
    wrong = np.where(~correct)[0]
    worst = wrong[np.argsort(-conf[wrong])][:mistakes]
    result["mistakes"] = []
    for i in worst:
        m = msgs[i]
        exp = explain(model, m, lang=lang)
        result["mistakes"].append({
            "source": getattr(m, "source", None) or getattr(m, "key", str(i)),
            "subject": pseudonymise(getattr(m, "subject", "") or "")[:120],
            "true": str(y[i]),
            "predicted": str(pred[i]),
            "probability": float(conf[i]),
            "explanation": exp.sentence,
            "toward": [[t, round(w, 3)] for t, w in exp.toward[:6]],
        })
    return result
