"""Calibration and the review threshold: from out-of-fold scores to "sure enough to route alone".

The classifier's scores become probabilities by a softmax whose temperature is
fitted on out-of-fold predictions (one number, so the ranking of categories
and the explanations are unchanged).  The same predictions choose the lowest
confidence at which automatically routed mail still reaches the precision the
association asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PRECISION_LEVELS", "Calibration", "calibrate", "softmax", "fit_temperature", "threshold_for",
    "coverage_at_precision", "coverage_curve",
]

PRECISION_LEVELS = (0.90, 0.95, 0.98)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a (messages × categories) score table."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def fit_temperature(logits: np.ndarray, y_idx: np.ndarray) -> float:
    """Temperature minimising the log-loss of out-of-fold predictions (1-D search)."""
    best_t, best_loss = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.05), np.log(20.0), 60)):
        p = softmax(logits / t)
        loss = -np.mean(np.log(np.clip(p[np.arange(len(y_idx)), y_idx], 1e-12, None)))
        if loss < best_loss:
            best_t, best_loss = float(t), loss
    return best_t


def threshold_for(conf: np.ndarray, correct: np.ndarray, target: float) -> tuple[float, float, float]:
    """Lowest confidence threshold whose auto-routed share keeps precision ≥ target.

    Returns (threshold, share auto-routed, precision reached).  When no
    threshold reaches the target everything goes to review (threshold above 1).
    """
    order = np.argsort(-conf, kind="stable")
    c = correct[order].astype(float)
    prec = np.cumsum(c) / np.arange(1, len(c) + 1)
    ok = np.where(prec >= target)[0]
    if len(ok) == 0:
        return 1.01, 0.0, 0.0
    k = int(ok.max())
    threshold = float(conf[order][k])
    share = float(np.mean(conf >= threshold))
    reached = float(np.mean(correct[conf >= threshold]))
    return threshold, share, reached


def coverage_at_precision(conf: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """Share of mail that could be routed automatically at each of ``PRECISION_LEVELS`` ("0.90": share)."""
    return {f"{p:.2f}": float(threshold_for(conf, correct, p)[1]) for p in PRECISION_LEVELS}


def coverage_curve(conf: np.ndarray, correct: np.ndarray, points: int = 41) -> list[dict[str, float]]:
    """Share auto-routed and its precision for thresholds from 0 to 1 (for the report)."""
    out = []
    for t in np.linspace(0, 1, points):
        mask = conf >= t
        share = float(mask.mean()) if len(conf) else 0.0
        prec = float(correct[mask].mean()) if mask.any() else 1.0
        out.append({"threshold": float(t), "coverage": share, "precision": prec})
    return out


@dataclass(frozen=True)
class Calibration:
    """What the out-of-fold predictions of the chosen candidate say about the model."""

    temperature: float
    threshold: float
    expected_auto_share: float
    auto_precision: float
    predicted: np.ndarray  # out-of-fold category of each training message
    confidence: np.ndarray  # its calibrated probability
    correct: np.ndarray  # whether it was right


def category_thresholds(cal: Calibration, classes: np.ndarray, target: float, *, min_count: int = 30) -> np.ndarray:
    """One threshold per category (aligned with ``classes``): the lowest at which that category's own out-of-fold
    auto-routed mail keeps ``target`` precision; the global threshold where fewer than ``min_count`` messages were
    predicted in the category (too few to tell)."""
    out = np.full(len(classes), cal.threshold, dtype=np.float64)
    for i, c in enumerate(classes):
        mask = cal.predicted == c
        if int(mask.sum()) >= min_count:
            out[i] = threshold_for(cal.confidence[mask], cal.correct[mask], target)[0]
    return out


def calibrate(oof: np.ndarray, classes: np.ndarray, y: np.ndarray, target_precision: float) -> Calibration:
    """Fit the temperature on out-of-fold scores, then the threshold reaching ``target_precision``."""
    temperature = fit_temperature(oof, np.searchsorted(classes, y))
    proba = softmax(oof / temperature)
    predicted = classes[proba.argmax(1)]
    confidence = proba.max(1)
    del proba  # a (messages × categories) table: freed before the final fit, the peak of training
    correct = predicted == y
    threshold, share, reached = threshold_for(confidence, correct, target_precision)
    return Calibration(temperature, threshold, share, reached, predicted, confidence, correct)
