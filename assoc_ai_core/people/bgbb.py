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

:func:`repeat_giving_table` builds that summary from a gifts export with
yearly (fiscal-year) opportunities, and :func:`holdout_check` compares the
gifts the model expected over later years with the gifts that came.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, logsumexp

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BGBB", "bgbb_log_likelihood", "fit_bgbb", "repeat_giving_table", "read_summary_table", "holdout_check",
           "fit_table"]


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
    best = result
    # Nelder-Mead stops on a simplex size; a gradient polish from there reaches the optimum other fitters report
    polish = minimize(objective, result.x, method="BFGS", options={"gtol": 1e-7})
    if polish.success and polish.fun <= result.fun:
        best = polish
    a, b, g, d = np.exp(best.x)
    return BGBB(float(a), float(b), float(g), float(d), float(-best.fun))


# ------------------------------------------------------------------ inputs from a gifts export
def _fiscal_index(dates: pd.Series, fiscal_year_start: tuple[int, int]) -> pd.Series:
    """The fiscal year of each date, named by the calendar year it starts in."""
    month, day = fiscal_year_start
    before_start = (dates.dt.month < month) | ((dates.dt.month == month) & (dates.dt.day < day))
    return (dates.dt.year - before_start.astype(int)).astype(int)


def _year_end(value: Any, fiscal_year_start: tuple[int, int], what: tuple[str, str]) -> int:
    """The fiscal year that ends on ``value``; a date that is not the last day of a fiscal year is refused."""
    from assoc_ai_core.people.dataset import require_pandas
    from assoc_ai_core.people.features import as_timestamp

    pd = require_pandas()
    day = as_timestamp(value)
    nxt = day + pd.Timedelta(days=1)
    month, dom = fiscal_year_start
    if (nxt.month, nxt.day) != (month, dom):
        raise DataError(tr(
            f"{what[0]} ({day.date()}) doit être le dernier jour d'un exercice (les exercices commencent le "
            f"{dom:02d}/{month:02d} : la veille d'un {dom:02d}/{month:02d}).",
            f"{what[1]} ({day.date()}) must be the last day of a fiscal year (fiscal years start on "
            f"{month:02d}-{dom:02d}: the day before a {month:02d}-{dom:02d})."))
    return int(day.year) - int((day.month, day.day) < (month, dom))


def repeat_giving_table(
    gifts: pd.DataFrame, calibration_end: Any, holdout_end: Any = None, *,
    fiscal_year_start: str | int | tuple[int, int] | None = None,
) -> pd.DataFrame:
    """One row per donor: BG/BB inputs over fiscal years, and what happened in the holdout years.

    A donor's first fiscal year with a gift is their acquisition; each later
    fiscal year up to ``calibration_end`` is an opportunity to give again.
    ``frequency`` counts the opportunities with at least one gift,
    ``recency`` is the last such opportunity (0: none), ``periods`` the
    number of opportunities.  With ``holdout_end``: ``holdout_periods`` (the
    fiscal years after the calibration, up to that date) and
    ``holdout_gifts`` (those with a gift).  ``gifts`` is the ``gift`` frame
    of :meth:`PeopleData.frames` (refunds netted, zero amounts left out);
    donors first seen after ``calibration_end`` are not in the table.
    """
    from assoc_ai_core.people.dataset import require_pandas
    from assoc_ai_core.people.features import parse_fiscal_year_start

    pd = require_pandas()
    fy = parse_fiscal_year_start(fiscal_year_start)
    last_cal = _year_end(calibration_end, fy, ("La fin de la calibration", "The calibration end"))
    g = gifts[gifts["date"].notna()]
    years = pd.DataFrame({"person_id": g["person_id"].astype(str), "year": _fiscal_index(g["date"], fy)})
    years = years.drop_duplicates()
    first = years.groupby("person_id")["year"].min()
    first = first[first <= last_cal]
    years = years[years["person_id"].isin(first.index)]
    offset = years["year"] - years["person_id"].map(first)
    cal = years[(offset > 0) & (years["year"] <= last_cal)].assign(k=offset)
    table = pd.DataFrame(index=first.index)
    table.index.name = "person_id"
    table["frequency"] = cal.groupby("person_id")["k"].size().reindex(table.index).fillna(0).astype(int)
    table["recency"] = cal.groupby("person_id")["k"].max().reindex(table.index).fillna(0).astype(int)
    table["periods"] = (last_cal - first).astype(int)
    if holdout_end is not None:
        last_hold = _year_end(holdout_end, fy, ("La fin de la période de vérification", "The holdout end"))
        if last_hold <= last_cal:
            raise DataError(tr("La période de vérification doit finir après la calibration.",
                               "The holdout must end after the calibration."))
        hold = years[(years["year"] > last_cal) & (years["year"] <= last_hold)]
        table["holdout_periods"] = int(last_hold - last_cal)
        table["holdout_gifts"] = hold.groupby("person_id").size().reindex(table.index).fillna(0).astype(int)
    if not len(table):
        raise DataError(tr("Aucun donateur avant la fin de la calibration.", "No donor before the calibration end."))
    return table


_SUMMARY_NAMES = {"frequency": ("frequency", "x", "frequence"), "recency": ("recency", "t_x", "tx", "recence"),
                  "periods": ("periods", "n", "n_periods", "opportunities"), "weights": ("weights", "weight", "count", "n_donors"),
                  "holdout_gifts": ("holdout_gifts", "x_star", "holdout_frequency"),
                  "holdout_periods": ("holdout_periods", "n_star")}


def read_summary_table(frame: pd.DataFrame) -> pd.DataFrame | None:
    """The aggregated (frequency, recency, periods[, weights]) form with our column names, or None if it is not one."""
    lower = {str(c).strip().lower(): c for c in frame.columns}
    renamed = {}
    for name, synonyms in _SUMMARY_NAMES.items():
        for s in synonyms:
            if s in lower:
                renamed[lower[s]] = name
                break
    if not {"frequency", "recency", "periods"} <= set(renamed.values()):
        return None
    out = frame.rename(columns=renamed)[list(dict.fromkeys(renamed.values()))].copy()
    for c in out.columns:
        out[c] = out[c].astype(float)
    if "weights" not in out.columns:
        out["weights"] = 1.0
    return out


def fit_table(table: pd.DataFrame) -> BGBB:
    """Fit BG/BB on a table of :func:`repeat_giving_table` or :func:`read_summary_table` (patterns weighted by count)."""
    grouped = table.groupby(["frequency", "recency", "periods"], as_index=False)
    counts = grouped["weights"].sum() if "weights" in table.columns else grouped.size().rename(columns={"size": "weights"})
    return fit_bgbb(counts["frequency"], counts["recency"], counts["periods"], counts["weights"])


def holdout_check(fit: BGBB, table: pd.DataFrame, holdout_periods: int | None = None) -> dict[str, Any]:
    """Expected repeat gifts over the holdout per row, and predicted against actual, in total and by frequency.

    ``holdout_periods`` overrides the table's own column (needed for the
    aggregated form, which has no dates).  ``actual`` is absent when the
    table has no ``holdout_gifts``.
    """
    n_star = table["holdout_periods"] if holdout_periods is None and "holdout_periods" in table.columns else None
    if n_star is None and holdout_periods is None:
        raise DataError(tr("Indiquez la période de vérification (nombre d'années ou date de fin).",
                           "Give the holdout period (number of years or end date)."))
    futures = np.full(len(table), holdout_periods) if n_star is None else np.asarray(n_star, dtype=int)
    w = np.asarray(table["weights"], dtype=float) if "weights" in table.columns else np.ones(len(table))
    expected = np.zeros(len(table))
    for k in np.unique(futures):
        rows = futures == k
        expected[rows] = fit.expected_gifts(int(k), table["frequency"].to_numpy()[rows],
                                            table["recency"].to_numpy()[rows], table["periods"].to_numpy()[rows])
    has_actual = "holdout_gifts" in table.columns
    actual = np.asarray(table["holdout_gifts"], dtype=float) if has_actual else np.full(len(table), np.nan)
    groups = []
    freq = np.asarray(table["frequency"], dtype=int)
    for x in np.unique(freq):
        rows = freq == x
        entry = {"frequency": int(x), "donors": float(w[rows].sum()), "predicted": float((w * expected)[rows].sum())}
        if has_actual:
            entry["actual"] = float((w * actual)[rows].sum())
        groups.append(entry)
    out: dict[str, Any] = {"holdout_periods": sorted(int(k) for k in np.unique(futures)), "donors": float(w.sum()),
                           "predicted_total": float((w * expected).sum()), "by_frequency": groups,
                           "expected": expected}
    if has_actual:
        out["actual_total"] = float((w * actual).sum())
    return out
