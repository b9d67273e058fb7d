"""The beta-geometric/beta-binomial (BG/BB) model of repeat giving (Fader, Hardie & Shang, 2010).

For donors who may give at each of ``n`` yearly opportunities: while
"alive", a donor gives with probability ``p`` at each opportunity
(``p ~ Beta(alpha, beta)`` across donors) and may drop out for good after
each one with probability ``theta`` (``theta ~ Beta(gamma, delta)``).  From a
donor's frequency ``x`` (repeat gifts) and recency ``t_x`` (opportunity of the
last gift) the model says how likely they are to still be a donor and how many
gifts to expect next — a population-level complement to the per-person
classifiers, fitted with SciPy by maximum likelihood on the
recency/frequency summary (one row per pattern, weighted by its count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, logsumexp

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr

__all__ = ["BGBB", "bgbb_log_likelihood", "fit_bgbb"]


def _individual_loglik(params: Sequence[float], x: np.ndarray, t_x: np.ndarray, n: np.ndarray) -> np.ndarray:
    a, b, g, d = params
    base_ab, base_gd = betaln(a, b), betaln(g, d)
    # alive through all n opportunities
    terms = [betaln(a + x, b + n - x) - base_ab + betaln(g, d + n) - base_gd]
    # or dropped out after opportunity t_x + i, for i = 0 .. n - t_x - 1
    max_gap = int(np.max(n - t_x)) if len(n) else 0
    for i in range(max_gap):
        valid = i <= n - t_x - 1
        term = betaln(a + x, b + t_x - x + i) - base_ab + betaln(g + 1, d + t_x + i) - base_gd
        terms.append(np.where(valid, term, -np.inf))
    return np.asarray(logsumexp(np.vstack(terms), axis=0), dtype=float)


def bgbb_log_likelihood(params: Sequence[float], frequency: Sequence[int], recency: Sequence[int],
                        periods: Sequence[int], weights: Sequence[float] | None = None) -> float:
    """Total log-likelihood of (alpha, beta, gamma, delta) on a recency/frequency summary."""
    x, t_x, n = (np.asarray(v, dtype=float) for v in (frequency, recency, periods))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    return float(np.sum(w * _individual_loglik(params, x, t_x, n)))


@dataclass(frozen=True)
class BGBB:
    """Fitted BG/BB parameters and their log-likelihood."""

    alpha: float
    beta: float
    gamma: float
    delta: float
    log_likelihood: float

    @property
    def params(self) -> tuple[float, float, float, float]:
        """(alpha, beta, gamma, delta)."""
        return (self.alpha, self.beta, self.gamma, self.delta)

    def p_alive(self, frequency: Sequence[int], recency: Sequence[int], periods: Sequence[int]) -> np.ndarray:
        """Probability each donor is still "alive" (may give again) after the last opportunity."""
        a, b, g, d = self.params
        x, t_x, n = (np.asarray(v, dtype=float) for v in (frequency, recency, periods))
        alive = betaln(a + x, b + n - x) - betaln(a, b) + betaln(g, d + n + 1) - betaln(g, d)
        return np.asarray(np.exp(alive - _individual_loglik(self.params, x, t_x, n)), dtype=float)

    def expected_gifts(self, future: int, frequency: Sequence[int], recency: Sequence[int],
                       periods: Sequence[int]) -> np.ndarray:
        """Expected number of gifts in the next ``future`` opportunities, per donor.

        Sum over the coming opportunities of P(still alive then and giving |
        history): each term is the likelihood of the history extended by one
        gift at that opportunity, divided by the likelihood of the history.
        """
        a, b, g, d = self.params
        x, t_x, n = (np.asarray(v, dtype=float) for v in (frequency, recency, periods))
        give = betaln(a + x + 1, b + n - x) - betaln(a, b)
        log_l = _individual_loglik(self.params, x, t_x, n)
        total = np.zeros_like(x)
        for k in range(1, future + 1):
            total += np.exp(give + betaln(g, d + n + k) - betaln(g, d) - log_l)
        return total


def fit_bgbb(frequency: Sequence[int], recency: Sequence[int], periods: Sequence[int],
             weights: Sequence[float] | None = None, *, start: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> BGBB:
    """Maximum-likelihood BG/BB fit (parameters kept positive through a log transform)."""
    x = np.asarray(frequency, dtype=float)
    if not len(x):
        raise DataError(tr("Aucun donateur à modéliser.", "No donors to model."))
    if np.any(np.asarray(recency) > np.asarray(periods)) or np.any(x > np.asarray(recency)):
        raise DataError(tr("Données incohérentes : il faut fréquence ≤ récence ≤ nombre d'occasions.",
                           "Inconsistent data: frequency ≤ recency ≤ number of opportunities is required."))

    def objective(log_params: np.ndarray) -> float:
        return -bgbb_log_likelihood(np.exp(log_params), frequency, recency, periods, weights)

    result = minimize(objective, np.log(np.asarray(start, dtype=float)), method="Nelder-Mead",
                      options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 4000, "maxfev": 8000})
    a, b, g, d = np.exp(result.x)
    return BGBB(float(a), float(b), float(g), float(d), float(-result.fun))
