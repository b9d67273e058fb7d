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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from assoc_ai_core.i18n import percent, tr
from assoc_ai_core.people.cleaning import department_of, fold

if TYPE_CHECKING:
    import pandas as pd

    from assoc_ai_core.people.dataset import PeopleData

__all__ = [
    "fairness_report", "FairnessReport", "AttributeFairness", "sensitive_attributes", "age_band", "normalize_gender",
    "METRICS", "UNKNOWN",
]

METRICS = ("selection_rate", "true_positive_rate", "false_positive_rate", "error_rate")
_LABELS = {
    "selection_rate": ("taux de sélection", "selection rate"),
    "true_positive_rate": ("taux de vrais positifs", "true-positive rate"),
    "false_positive_rate": ("taux de faux positifs", "false-positive rate"),
    "error_rate": ("taux d'erreur", "error rate"),
}
UNKNOWN = "?"


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


def _noise(metric: str, rows: list[dict[str, Any]], yt: np.ndarray, yp: np.ndarray, groups: np.ndarray) -> float:
    """How large the gap between the highest and lowest group could be by chance (95 %, all pairs considered)."""
    valid = [r for r in rows if r[metric] is not None]
    if len(valid) < 2:
        return float("inf")
    hi = max(valid, key=lambda r: r[metric])
    lo = min(valid, key=lambda r: r[metric])

    def denominator(group: str) -> int:
        mask = groups == group
        if metric == "true_positive_rate":
            return int((yt[mask] == 1).sum())
        if metric == "false_positive_rate":
            return int((yt[mask] == 0).sum())
        return int(mask.sum())

    var = 0.0
    for r in (hi, lo):
        n = denominator(r["group"])
        if n == 0:
            return float("inf")
        var += r[metric] * (1 - r[metric]) / n
    # the largest of many pairwise gaps is large by chance alone: Bonferroni over the pairs of groups
    from scipy.stats import norm

    pairs = len(valid) * (len(valid) - 1) / 2
    return float(norm.ppf(1 - 0.025 / pairs)) * float(np.sqrt(var))


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
            "attributes": {a.attribute: {"groups": a.groups, "gaps": a.gaps, "warnings": a.warnings} for a in self.attributes},
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
            if gap <= bound:
                continue
            fr, en = _LABELS[m]
            noise = _noise(m, compared, yt, yp, groups)
            if gap > noise:
                tail = tr("au-delà de ce que le hasard expliquerait.", "beyond what chance would explain.", lang)
            else:
                tail = tr("mais compatible avec le hasard vu la taille des groupes.",
                          "but within chance given the size of the groups.", lang)
            item.warnings.append(tr(
                f"{attr} : écart de {percent(gap, 'fr')} sur le {fr} entre groupes (limite {percent(bound, 'fr')}), {tail} "
                "Regardez si des données ou des facteurs pénalisent un groupe avant d'utiliser ces scores.",
                f"{attr}: gap of {percent(gap, 'en')} in {en} between groups (bound {percent(bound, 'en')}), {tail} "
                "Check whether data or factors penalise a group before using these scores.",
                lang,
            ))
        report.attributes.append(item)
    return report
