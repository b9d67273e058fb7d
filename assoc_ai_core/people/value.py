"""How much a donor is likely to give, when they give: the gamma-gamma spend model.

Fundraisers price a mailing with "expected gift = probability of giving ×
typical gift".  The typical gift of a donor is best guessed from their own
past gifts, but one gift of 500 € says less than ten of 50 €: the
gamma-gamma model (Fader, Hardie & Lee 2005, the spend half of the usual
customer-lifetime-value models) answers exactly that.  Each donor's gifts
vary around their own mean ``1 / nu`` (gamma with shape ``p``), and those
means vary across donors (``nu`` gamma with shape ``q`` and scale ``gamma``);
the expected next gift is a weighted mean of the donor's own average and the
file's average, the weight growing with the number of gifts.  Three
parameters, fitted by maximum likelihood, no feature to choose, and a donor
with no gift gets the file's average — which is why it is chosen here over a
regression on log amounts (which needs features, drifts towards the median
rather than the mean, and needs a retransformation bias correction).

Input: one row per donor with ``frequency`` (gifts counted) and
``monetary`` (their mean amount), or a feature table from
:func:`assoc_ai_core.people.features.build_features` (``gifts_total`` and
``amount_total``) — see :func:`value_inputs`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr

__all__ = ["GiftValueModel", "value_inputs", "save_value_model", "load_value_model", "VALUE_MODEL",
           "VALUE_TRUSTED_TYPES"]

VALUE_MODEL = "assoc_ai_core.people.value.GiftValueModel"
# The fitted model holds three floats and plain Python values only; nothing else is accepted on load.
VALUE_TRUSTED_TYPES: tuple[str, ...] = (VALUE_MODEL,)


def value_inputs(table: Any) -> tuple[np.ndarray, np.ndarray]:
    """(frequency, mean gift) per row of ``table``: columns ``frequency``/``monetary`` or ``gifts_total``/``amount_total``."""
    cols = set(getattr(table, "columns", ()))
    if {"frequency", "monetary"} <= cols:
        x = np.asarray(table["frequency"], dtype=float)
        m = np.asarray(table["monetary"], dtype=float)
    elif {"gifts_total", "amount_total"} <= cols:
        x = np.asarray(table["gifts_total"], dtype=float)
        total = np.asarray(table["amount_total"], dtype=float)
        m = np.divide(total, x, out=np.zeros_like(total), where=x > 0)
    else:
        raise DataError(tr(
            "Le modèle de montant attend les colonnes frequency et monetary (ou gifts_total et amount_total).",
            "The gift-value model expects the columns frequency and monetary (or gifts_total and amount_total)."))
    x = np.nan_to_num(x, nan=0.0)
    m = np.nan_to_num(m, nan=0.0)
    return x, m


def _neg_log_likelihood(log_params: np.ndarray, x: np.ndarray, m: np.ndarray) -> float:
    from scipy.special import gammaln

    p, q, g = np.exp(log_params)
    ll = (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(g) + (p * x - 1) * np.log(m)
          + p * x * np.log(x) - (p * x + q) * np.log(g + m * x))
    return float(-np.sum(ll))


class GiftValueModel(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type hints
    """Gamma-gamma model of the amount a donor gives, when they give.

    ``fit(X)`` takes a table (see :func:`value_inputs`); donors with no gift
    are ignored for fitting.  ``predict(X)`` is the expected gift of each
    row: for a donor with ``x`` gifts averaging ``m``,
    ``(gamma + m x) p / (p x + q - 1)``; for ``x = 0``, the file's mean gift.
    """

    def __init__(self, min_donors: int = 10) -> None:
        self.min_donors = min_donors

    def fit(self, X: Any, y: Any = None) -> GiftValueModel:
        """Fit (p, q, gamma) by maximum likelihood on the donors of ``X`` with at least one positive gift."""
        from scipy.optimize import minimize

        x, m = value_inputs(X)
        keep = (x >= 1) & (m > 0)
        x, m = x[keep], m[keep]
        if len(x) < self.min_donors:
            raise DataError(tr(
                f"Trop peu de donateurs pour apprendre les montants ({len(x)}, il en faut {self.min_donors}).",
                f"Too few donors to learn gift amounts ({len(x)}, {self.min_donors} are needed)."))
        # moments of the mean gifts give a start close to the optimum, so the search does not wander
        mean, var = float(np.mean(m)), float(np.var(m)) or 1.0
        q0 = max(2.5, mean ** 2 / var + 2.0)
        start = np.log([1.0, q0, mean * (q0 - 1.0)])
        result = minimize(_neg_log_likelihood, start, args=(x, m), method="Nelder-Mead",
                          options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 8000, "maxfev": 16000})
        polish = minimize(_neg_log_likelihood, result.x, args=(x, m), method="BFGS", options={"gtol": 1e-6})
        best = polish if polish.success and polish.fun <= result.fun else result
        p, q, g = (float(v) for v in np.exp(best.x))
        if q <= 1.0:
            raise DataError(tr(
                "Montants trop dispersés pour le modèle gamma-gamma (paramètre q ≤ 1 : la moyenne n'existe pas).",
                "Gift amounts too spread out for the gamma-gamma model (parameter q ≤ 1: no finite mean)."))
        self.p_, self.q_, self.gamma_ = p, q, g
        self.log_likelihood_ = float(-best.fun)
        self.n_donors_ = int(len(x))
        self.mean_gift_ = float(np.mean(m))
        return self

    @property
    def population_mean_(self) -> float:
        """Expected gift of a donor the model knows nothing about: ``p gamma / (q - 1)``."""
        check_is_fitted(self, "p_")
        return float(self.p_ * self.gamma_ / (self.q_ - 1.0))

    def predict(self, X: Any) -> np.ndarray:
        """Expected gift of each row (the population mean for rows without a gift)."""
        check_is_fitted(self, "p_")
        x, m = value_inputs(X)
        x = np.where(m > 0, x, 0.0)
        out = (self.gamma_ + m * x) * self.p_ / (self.p_ * x + self.q_ - 1.0)
        return np.asarray(out, dtype=float)

    def params(self) -> dict[str, float]:
        """The fitted parameters, for reports."""
        check_is_fitted(self, "p_")
        return {"p": self.p_, "q": self.q_, "gamma": self.gamma_, "population_mean": self.population_mean_}

    def validate_loaded(self) -> list[str]:
        """Problems with a loaded model's parameters (empty: none)."""
        problems = []
        for name in ("p_", "q_", "gamma_"):
            v = getattr(self, name, None)
            if not isinstance(v, float) or not math.isfinite(v) or v <= 0:
                problems.append(tr(f"paramètre {name} invalide", f"invalid parameter {name}"))
        if isinstance(getattr(self, "q_", None), float) and self.q_ <= 1.0:
            problems.append(tr("q ≤ 1", "q ≤ 1"))
        return problems


def save_value_model(model: GiftValueModel, path: str | os.PathLike[str]) -> Path:
    """Write a fitted gift-value model (skops, no pickle), atomically."""
    from datetime import UTC, datetime

    from assoc_ai_core import __version__
    from assoc_ai_core.persistence import save_model

    check_is_fitted(model, "p_")
    model.metadata_ = {"kind": "people-value", "model": "gamma-gamma", "assoc_ai_version": __version__,
                       "trained_at": datetime.now(UTC).isoformat(), "n_donors": model.n_donors_, **model.params()}
    return save_model(model, path)


def load_value_model(path: str | os.PathLike[str]) -> GiftValueModel:
    """Load a gift-value model, refusing any other type or invalid parameters."""
    from assoc_ai_core.persistence import load_model

    model: GiftValueModel = load_model(path, trusted=VALUE_TRUSTED_TYPES, expected=VALUE_MODEL)
    return model
