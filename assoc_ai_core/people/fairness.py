"""Does the model treat groups of people alike?  Rates per declared gender, age band and place (fairlearn).

For each attribute, :func:`fairness_report` computes with fairlearn's
``MetricFrame``, at the model's threshold: how many people of each group
would be selected (selection rate), how many of those who really act would
be found (true-positive rate), how many of the others would be selected
anyway (false-positive rate) and the error rate; then the largest gap
between groups for each measure.  A gap above ``bound`` raises a warning
for a person to look at — it is a prompt to check, not a verdict.

Groups smaller than ``min_group_size`` are shown but left out of the gaps:
their rates are too noisy to compare.  Gender is used only here, never as
a model input, and only as the person declared it.

Whether a gap could be chance is judged with Fisher's exact test on the two
groups at the ends of the gap (the counts behind each rate: for the
true-positive rate, the people who really acted), its p-value multiplied by
the number of pairs of groups that could have produced the largest gap
(Bonferroni).  An exact test, because a rate computed on 2 people is 0 % or
100 % and a normal approximation would call 2 of 2 against 0 of 2 certain
(Fisher: p = 0.33).  The warning gives the counts and the p-value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from assoc_ai_core.i18n import decimal, percent, tr
from assoc_ai_core.people.cleaning import department_of, fold

if TYPE_CHECKING:
    import pandas as pd

    from assoc_ai_core.people.dataset import PeopleData

__all__ = [
    "fairness_report", "FairnessReport", "AttributeFairness", "sensitive_attributes", "age_band", "normalize_gender",
    "METRICS", "UNKNOWN", "CHANCE_LEVEL",
]

METRICS = ("selection_rate", "true_positive_rate", "false_positive_rate", "error_rate")
_LABELS = {
    "selection_rate": ("taux de sélection", "selection rate"),
    "true_positive_rate": ("taux de vrais positifs", "true-positive rate"),
    "false_positive_rate": ("taux de faux positifs", "false-positive rate"),
    "error_rate": ("taux d'erreur", "error rate"),
}
UNKNOWN = "?"
CHANCE_LEVEL = 0.05  # a corrected p-value below this is "rarely chance alone"


def _error_rate(y_true: Any, y_pred: Any) -> float:
    """Share of wrong decisions."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    return float((yt != yp).mean()) if len(yt) else float("nan")


def age_band(birth_year: Any, year: int) -> str:
    """``<30``, ``30-49``, ``50-69`` or ``70+`` at ``year``; ``?`` when unknown."""
    try:
        age = year - int(birth_year)
    except (TypeError, ValueError):
        return UNKNOWN
    if age < 0 or age > 120:
        return UNKNOWN
    return "<30" if age < 30 else "30-49" if age < 50 else "50-69" if age < 70 else "70+"


def normalize_gender(value: Any) -> str:
    """``F``, ``M``, another declared value as written, or ``?`` when not declared (civilités understood)."""
    text = fold(str(value or "")).strip(". ")
    if text in ("f", "femme", "female", "woman", "mme", "madame", "mlle", "mademoiselle", "ms", "mrs", "miss"):
        return "F"
    if text in ("m", "h", "homme", "male", "man", "monsieur", "mr", "m."):
        return "M"
    return UNKNOWN if not text else str(value).strip()


def _counts(metric: str, group: str, yt: np.ndarray, yp: np.ndarray, groups: np.ndarray) -> tuple[int, int]:
    """(people counted in the rate's numerator, people in its denominator) for one group."""
    mask = groups == group
    if metric == "true_positive_rate":
        mask = mask & (yt == 1)
    elif metric == "false_positive_rate":
        mask = mask & (yt == 0)
    hits = (yp[mask] != yt[mask]) if metric == "error_rate" else (yp[mask] == 1)
    return int(hits.sum()), int(mask.sum())


def _chance(metric: str, rows: list[dict[str, Any]], yt: np.ndarray, yp: np.ndarray,
            groups: np.ndarray) -> dict[str, Any] | None:
    """Fisher's exact test between the highest and lowest compared groups, Bonferroni-corrected over the pairs."""
    from scipy.stats import fisher_exact

    valid = [r for r in rows if r[metric] is not None]
    if len(valid) < 2:
        return None
    hi = max(valid, key=lambda r: r[metric])
    lo = min(valid, key=lambda r: r[metric])
    a, n1 = _counts(metric, hi["group"], yt, yp, groups)
    b, n2 = _counts(metric, lo["group"], yt, yp, groups)
    if not n1 or not n2:
        return None
    pairs = len(valid) * (len(valid) - 1) // 2
    p = float(fisher_exact([[a, n1 - a], [b, n2 - b]], alternative="two-sided")[1])
    return {"high": hi["group"], "low": lo["group"], "high_counts": [a, n1], "low_counts": [b, n2],
            "test": "fisher_exact", "pairs": pairs, "p_value": p, "p_corrected": min(1.0, p * pairs)}


def _p_text(p: float, lang: str) -> str:
    return ("< " + decimal(0.001, 3, lang)) if p < 0.001 else "= " + decimal(p, 3 if p < 0.01 else 2, lang)


def sensitive_attributes(
    people: PeopleData, ids: Iterable[str], as_of: Any, attributes: Sequence[str] = ("gender", "age_band", "department"),
) -> pd.DataFrame:
    """The group of each person for each attribute (``gender``, ``age_band``, ``department``, ``city``)."""
    import pandas as pd

    year = pd.Timestamp(as_of).year
    by_id = {p.source_id: p for p in people.persons}
    rows = []
    for pid in ids:
        p = by_id.get(str(pid))
        row: dict[str, str] = {}
        for attr in attributes:
            if p is None:
                row[attr] = UNKNOWN
            elif attr == "gender":
                row[attr] = normalize_gender(p.gender)
            elif attr == "age_band":
                row[attr] = age_band(p.birth_year, year) if p.birth_year else (p.age_band or UNKNOWN)
            elif attr == "department":
                row[attr] = department_of(p.postcode) or UNKNOWN
            elif attr in ("city", "commune"):
                row[attr] = p.city.strip().title() or UNKNOWN
            else:
                row[attr] = str(p.raw.get(attr, UNKNOWN)) if p.raw else UNKNOWN
        rows.append(row)
    return pd.DataFrame(rows, columns=list(attributes))


@dataclass
class AttributeFairness:
    """One attribute's table of rates by group, the gaps, and the warnings raised."""

    attribute: str
    groups: list[dict[str, Any]]
    gaps: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    chance: dict[str, dict[str, Any]] = field(default_factory=dict)  # per measure: the exact test behind the gap


@dataclass
class FairnessReport:
    """Fairness of a model's decisions at a threshold, attribute by attribute."""

    threshold: float
    bound: float
    min_group_size: int
    attributes: list[AttributeFairness] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """Every warning, all attributes together."""
        return [w for a in self.attributes for w in a.warnings]

    def largest_gaps(self) -> list[tuple[str, str, float]]:
        """(attribute, measure, gap), largest first."""
        gaps = [(a.attribute, m, g) for a in self.attributes for m, g in a.gaps.items()]
        return sorted(gaps, key=lambda t: -t[2])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "threshold": self.threshold, "bound": self.bound, "min_group_size": self.min_group_size,
            "attributes": {a.attribute: {"groups": a.groups, "gaps": a.gaps, "chance": a.chance, "warnings": a.warnings}
                           for a in self.attributes},
            "warnings": self.warnings,
        }


def fairness_report(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    attributes: pd.DataFrame | Mapping[str, Sequence[str]],
    *,
    threshold: float = 0.5,
    bound: float = 0.1,
    min_group_size: int = 20,
    lang: str | None = None,
) -> FairnessReport:
    """Rates by group and largest gaps for each attribute column, with warnings above ``bound``."""
    import pandas as pd
    from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate

    yt = np.asarray(y_true, dtype=int)
    yp = (np.asarray(probabilities, dtype=float) >= threshold).astype(int)
    frame = attributes if isinstance(attributes, pd.DataFrame) else pd.DataFrame(dict(attributes))
    metrics = {"n": count, "selection_rate": selection_rate, "true_positive_rate": true_positive_rate,
               "false_positive_rate": false_positive_rate, "error_rate": _error_rate}
    report = FairnessReport(threshold=float(threshold), bound=float(bound), min_group_size=int(min_group_size))
    for attr in frame.columns:
        groups = frame[attr].fillna(UNKNOWN).astype(str).to_numpy()
        mf = MetricFrame(metrics=metrics, y_true=yt, y_pred=yp, sensitive_features=pd.Series(groups, name=attr))
        table = mf.by_group
        rows: list[dict[str, Any]] = []
        for group, values in table.iterrows():
            rows.append({"group": str(group), "n": int(values["n"]),
                         **{m: (None if pd.isna(values[m]) else float(values[m])) for m in METRICS},
                         "compared": bool(values["n"] >= min_group_size and group != UNKNOWN)})
        big = np.isin(groups, [r["group"] for r in rows if r["compared"]])
        gaps: dict[str, float] = {}
        if len({g for g in groups[big]}) >= 2:
            sub = MetricFrame(metrics={m: metrics[m] for m in METRICS}, y_true=yt[big], y_pred=yp[big],
                              sensitive_features=pd.Series(groups[big], name=attr))
            diff = sub.difference(method="between_groups")
            gaps = {m: float(diff[m]) for m in METRICS if not pd.isna(diff[m])}
        item = AttributeFairness(attribute=str(attr), groups=rows, gaps=gaps)
        compared = [r for r in rows if r["compared"]]
        for m, gap in gaps.items():
            test = _chance(m, compared, yt, yp, groups)
            if test is not None:
                item.chance[m] = test
            if gap <= bound:
                continue
            item.warnings.append(_gap_warning(str(attr), m, gap, bound, test, lang))
        report.attributes.append(item)
    return report


def _gap_warning(attr: str, metric: str, gap: float, bound: float, test: dict[str, Any] | None,
                 lang: str | None) -> str:
    """The warning for a gap above the bound, with the counts and how likely chance alone is."""
    fr, en = _LABELS[metric]
    head_fr = f"{attr} : écart de {percent(gap, 'fr')} sur le {fr} entre groupes (limite {percent(bound, 'fr')})"
    head_en = f"{attr}: gap of {percent(gap, 'en')} in {en} between groups (bound {percent(bound, 'en')})"
    check_fr = "Regardez si des données ou des facteurs pénalisent un groupe avant d'utiliser ces scores."
    check_en = "Check whether data or factors penalise a group before using these scores."
    if test is None:
        return tr(f"{head_fr}. {check_fr}", f"{head_en}. {check_en}", lang)
    (a, n1), (b, n2) = test["high_counts"], test["low_counts"]
    hi, lo = test["high"], test["low"]
    p_fr, p_en = _p_text(test["p_corrected"], "fr"), _p_text(test["p_corrected"], "en")
    basis_fr = (f"« {hi} » {a} sur {n1}, « {lo} » {b} sur {n2} ; test exact de Fisher p {p_fr}"
                + (f", corrigé pour {test['pairs']} paires de groupes" if test["pairs"] > 1 else ""))
    basis_en = (f"'{hi}' {a} of {n1}, '{lo}' {b} of {n2}; Fisher's exact test p {p_en}"
                + (f", corrected for {test['pairs']} pairs of groups" if test["pairs"] > 1 else ""))
    if test["p_corrected"] < CHANCE_LEVEL:
        tail_fr = "un écart aussi grand irait au-delà de ce que le hasard explique d'ordinaire"
        tail_en = "a gap this large is beyond what chance usually explains"
    else:
        tail_fr = ("le hasard peut produire un tel écart avec aussi peu de personnes : il ne prouve pas un "
                   "traitement inégal, ni son absence")
        tail_en = ("chance can produce such a gap with so few people: it proves neither unequal treatment "
                   "nor its absence")
    return tr(f"{head_fr} ({basis_fr}) : {tail_fr}. {check_fr}", f"{head_en} ({basis_en}): {tail_en}. {check_en}", lang)
