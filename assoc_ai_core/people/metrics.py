"""Measures of a scoring model: discrimination, calibration, lift and gains, mailing profit.

Plain NumPy/scikit-learn; every function takes true 0/1 outcomes and
predicted probabilities (or scores) and returns JSON-ready numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["classification_metrics", "calibration_bins", "lift_table", "net_profit", "best_threshold", "threshold_metrics"]


def classification_metrics(y: ArrayLike, p: ArrayLike) -> dict[str, Any]:
    """ROC AUC, average precision, Brier score, log loss, base rate and mean prediction."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    yt, pp = np.asarray(y, dtype=int), np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    both = len(np.unique(yt)) == 2
    return {
        "n": int(len(yt)),
        "positives": int(yt.sum()),
        "base_rate": float(yt.mean()) if len(yt) else 0.0,
        "mean_prediction": float(pp.mean()) if len(pp) else 0.0,
        "roc_auc": float(roc_auc_score(yt, pp)) if both else None,
        "average_precision": float(average_precision_score(yt, pp)) if both else None,
        "brier": float(brier_score_loss(yt, pp)) if len(yt) else None,
        "log_loss": float(log_loss(yt, pp, labels=[0, 1])) if len(yt) else None,
    }


def calibration_bins(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> list[dict[str, float]]:
    """Reliability table on equal-count bins: mean predicted vs observed rate, and count."""
    yt, pp = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if not len(yt):
        return []
    order = np.argsort(pp, kind="stable")
    out = []
    for chunk in np.array_split(order, min(n_bins, len(order))):
        if len(chunk):
            out.append({"predicted": float(pp[chunk].mean()), "observed": float(yt[chunk].mean()), "n": int(len(chunk))})
    return out


def lift_table(y: ArrayLike, p: ArrayLike, n_groups: int = 10) -> list[dict[str, float]]:
    """Cumulative gains and lift by decile of score (best first)."""
    yt, pp = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    total, n = yt.sum(), len(yt)
    if not n:
        return []
    order = np.argsort(-pp, kind="stable")
    rate = total / n if n else 0.0
    out, seen, hits = [], 0, 0.0
    for chunk in np.array_split(order, min(n_groups, n)):
        seen += len(chunk)
        hits += yt[chunk].sum()
        out.append({
            "share_contacted": seen / n,
            "share_of_positives": float(hits / total) if total else 0.0,
            "rate": float(yt[chunk].mean()) if len(chunk) else 0.0,
            "lift": float(yt[chunk].mean() / rate) if rate and len(chunk) else 0.0,
            "cumulative_lift": float((hits / seen) / rate) if rate else 0.0,
        })
    return out


def net_profit(amounts: ArrayLike, mailed: ArrayLike, cost: float = 0.68) -> float:
    """Mailing net profit: gifts of mailed people minus the cost of each mailing (KDD Cup 98 rule)."""
    a, m = np.asarray(amounts, dtype=float), np.asarray(mailed, dtype=bool)
    return float(np.round(a[m].sum() - cost * m.sum(), 2))


def best_threshold(y: ArrayLike, p: ArrayLike) -> float:
    """The probability cut-off that maximises F1 (ties: the higher cut-off)."""
    from sklearn.metrics import precision_recall_curve

    yt, pp = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if len(np.unique(yt)) < 2:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(yt, pp)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.nanargmax(f1[:-1])) if len(thresholds) else 0
    return float(thresholds[best]) if len(thresholds) else 0.5


def threshold_metrics(y: ArrayLike, p: ArrayLike, threshold: float) -> dict[str, float]:
    """Selection rate, precision, recall (TPR), false-positive rate and error rate at ``threshold``."""
    yt, sel = np.asarray(y, dtype=int), np.asarray(p, dtype=float) >= threshold
    tp = int((sel & (yt == 1)).sum())
    fp = int((sel & (yt == 0)).sum())
    pos, neg = int((yt == 1).sum()), int((yt == 0).sum())
    return {
        "threshold": float(threshold),
        "selection_rate": float(sel.mean()) if len(yt) else 0.0,
        "precision": tp / int(sel.sum()) if sel.sum() else 0.0,
        "recall": tp / pos if pos else 0.0,
        "false_positive_rate": fp / neg if neg else 0.0,
        "error_rate": float((sel != (yt == 1)).mean()) if len(yt) else 0.0,
    }
