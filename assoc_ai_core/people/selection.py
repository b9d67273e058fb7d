"""Who to contact for an appeal: the people whose expected gift is worth more than the contact costs.

For each person: expected net = P(gives) × expected gift − cost per contact,
with P from a trained propensity model (:mod:`assoc_ai_core.people.tasks`)
and the expected gift from the gamma-gamma model
(:mod:`assoc_ai_core.people.value`).  Everyone with a positive expected net
is selected, best first; a budget caps the number of contacts.  The summary
sets the selection's expected net against contacting everyone, the
fundraiser's usual default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Selection", "select_by_expected_net", "select_people", "realised_net"]


@dataclass
class Selection:
    """The ranked people (``frame``: person_id, probability, expected_gift, expected_net, selected) and its totals."""

    frame: pd.DataFrame
    cost: float
    budget: int | None
    expected_net_selected: float
    expected_net_everyone: float
    n_selected: int
    n_total: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready totals (no person-level rows)."""
        return {"cost": self.cost, "budget": self.budget, "n_selected": self.n_selected, "n_total": self.n_total,
                "expected_net_selected": round(self.expected_net_selected, 2),
                "expected_net_everyone": round(self.expected_net_everyone, 2), "notes": list(self.notes)}

    def summary(self, lang: str | None = None) -> str:
        """Two lines: how many are selected and the expected net, against contacting everyone."""
        sel, every = _money(self.expected_net_selected, lang), _money(self.expected_net_everyone, lang)
        gain = _money(self.expected_net_selected - self.expected_net_everyone, lang, signed=True)
        cost = _money(self.cost, lang)
        return tr(
            f"{self.n_selected} personne(s) sélectionnée(s) sur {self.n_total} (coût {cost} par contact).\n"
            f"Net attendu de la sélection : {sel} ; en contactant tout le monde : {every} (écart {gain}).",
            f"{self.n_selected} of {self.n_total} people selected (cost {cost} per contact).\n"
            f"Expected net of the selection: {sel}; contacting everyone: {every} (difference {gain}).",
            lang,
        )


def _money(value: float, lang: str | None, *, signed: bool = False) -> str:
    """``12 345,67`` in French, ``12,345.67`` in English (no currency sign: the export's currency is not known)."""
    from assoc_ai_core.i18n import current_lang

    text = f"{value:+,.2f}" if signed else f"{value:,.2f}"
    if (lang or current_lang()) == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def select_by_expected_net(
    person_ids: Any, probability: Any, expected_gift: Any, *, cost: float, budget: int | None = None,
) -> Selection:
    """Rank people by expected net and select those above zero (at most ``budget`` of them)."""
    pd = _pandas()
    if cost < 0 or not np.isfinite(cost):
        raise DataError(tr("Le coût par contact doit être un nombre positif ou nul.",
                           "The cost per contact must be a number of zero or more."))
    if budget is not None and budget < 0:
        raise DataError(tr("Le budget (nombre de contacts) doit être positif ou nul.",
                           "The budget (number of contacts) must be zero or more."))
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    v = np.maximum(np.asarray(expected_gift, dtype=float), 0.0)
    net = p * v - cost
    frame = pd.DataFrame({"person_id": [str(i) for i in person_ids], "probability": p, "expected_gift": v,
                          "expected_net": net})
    frame = frame.sort_values("expected_net", ascending=False, kind="stable").reset_index(drop=True)
    chosen = frame["expected_net"].to_numpy() > 0
    notes = []
    if budget is not None and int(chosen.sum()) > budget:
        chosen[budget:] = False
    elif budget is not None and int(chosen.sum()) < budget:
        # contacting more would lose money on average: the budget is a ceiling, not a target
        notes.append(tr(f"Seules {int(chosen.sum())} personnes ont un net attendu positif : le budget de {budget} "
                        "n'est pas atteint.",
                        f"Only {int(chosen.sum())} people have a positive expected net: the budget of {budget} "
                        "is not used up.", None))
    frame["selected"] = chosen
    return Selection(frame=frame, cost=float(cost), budget=budget,
                     expected_net_selected=float(frame.loc[chosen, "expected_net"].sum()),
                     expected_net_everyone=float(frame["expected_net"].sum()), n_selected=int(chosen.sum()),
                     n_total=int(len(frame)), notes=notes)


def realised_net(amounts: Any, selected: Any, cost: float) -> float:
    """What a selection actually raised once the appeal is over: gifts of the selected minus their contact cost."""
    a = np.nan_to_num(np.asarray(amounts, dtype=float), nan=0.0)
    s = np.asarray(selected, dtype=bool)
    return float(np.round(a[s].sum() - cost * s.sum(), 2))


def select_people(
    model: Any, data: Any, *, cost: float, value_model: Any = None, budget: int | None = None, as_of: Any = None,
    fiscal_year_start: str | None = None,
) -> Selection:
    """Score ``data`` with a propensity ``model`` and select by expected net.

    Without ``value_model`` a gamma-gamma model is fitted on the gifts made
    before the scoring date (so no gift after it is used).  ``fiscal_year_start``
    places the fiscal-year flags of the feature table.
    """
    from assoc_ai_core.people.dataset import load_people
    from assoc_ai_core.people.features import as_timestamp, build_features
    from assoc_ai_core.people.tasks import data_end, get_task
    from assoc_ai_core.people.value import GiftValueModel

    spec = get_task(model.task)
    if not spec.positive_is_outcome:
        raise DataError(tr(
            f"La tâche « {spec.name} » ne prédit pas un don : la sélection par net attendu demande un modèle "
            "donor-propensity ou lapsed-reactivation.",
            f"Task '{spec.name}' does not predict a gift: selection by expected net needs a donor-propensity or "
            "lapsed-reactivation model."))
    people = load_people(data)
    frames = people.frames()
    t = as_timestamp(as_of) if as_of is not None else data_end(frames)
    feats = build_features(frames, t, fiscal_year_start=fiscal_year_start)
    population = feats[np.asarray(spec.population(feats), dtype=bool)]
    if not len(population):
        raise DataError(tr("Personne à sélectionner à cette date.", "Nobody to select at this date."))
    if value_model is None:
        value_model = GiftValueModel().fit(feats)
    probability = model.predict_proba(population)[:, 1]
    selection = select_by_expected_net(population.index, probability, value_model.predict(population), cost=cost,
                                       budget=budget)
    selection.frame.attrs["as_of"] = t.date().isoformat()
    return selection


def _pandas() -> Any:
    from assoc_ai_core.people.dataset import require_pandas

    return require_pandas()
