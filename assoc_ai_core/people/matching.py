"""Volunteer–mission matching: rank volunteers for a mission by skills, availability and place, and say why.

Each (volunteer, mission) pair is described by a few plain measures — share
of the mission's skills the volunteer has shown, same town or département,
days of the week they usually come, recent activity.  With enough history
(volunteers who took past missions), a calibrated :class:`PeopleModel`
learns how much each measure matters; missions are split chronologically
(older missions to learn, the latest quarter to check).  Without history,
transparent default weights rank the pairs.  Either way every ranking
comes with its factors.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from assoc_ai_core import __version__
from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.people.cleaning import department_of, fold, split_list
from assoc_ai_core.people.dataset import PeopleData, load_people, require_pandas
from assoc_ai_core.people.features import NEVER_MONTHS, as_timestamp
from assoc_ai_core.people.metrics import classification_metrics
from assoc_ai_core.people.model import Explanation, Factor, PeopleModel, describe_factor, sentence
from assoc_ai_core.records.people import VolunteerMission

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TASK", "PAIR_FEATURES", "volunteer_profiles", "pair_features", "train_matching", "rank_volunteers",
    "DEFAULT_WEIGHTS", "DEFAULT_INTERCEPT",
]

TASK = "volunteer-matching"
PAIR_FEATURES = ("skill_match", "skill_any", "same_postcode", "same_department", "weekday_match",
                 "hours_12m", "missions_done", "months_since_volunteering")
# Log-odds per unit, used when there is too little history to learn them; chosen so skills weigh most.
DEFAULT_WEIGHTS = {"skill_match": 3.0, "skill_any": 0.8, "same_postcode": 1.0, "same_department": 0.8,
                   "weekday_match": 1.0, "hours_12m": 0.3, "missions_done": 0.3, "months_since_volunteering": -0.02}
DEFAULT_INTERCEPT = -3.5
_LOG_FEATURES = ("hours_12m", "missions_done")  # counts: the model and the default weights see log(1 + x)
_RAW_SKILL_KEYS = ("competences", "skills", "savoir faire", "competence")
# Column titles (folded) of a volunteer's declared end of availability in a people export.
_RAW_AVAILABLE_UNTIL = ("disponible jusqu", "fin de disponibilite", "fin disponibilite", "indisponible a partir",
                        "available until", "availability end", "available to")


def _skills_from_raw(raw: Any) -> set[str]:
    out: set[str] = set()
    for key, value in (raw or {}).items():
        if any(k in fold(str(key)) for k in _RAW_SKILL_KEYS):
            out |= {fold(s) for s in split_list(value)}
    return out


def available_until(raw: Any) -> Any:
    """The last day a volunteer said they are available (a people-export column such as "Disponible jusqu'au"), or None."""
    from assoc_ai_core.people.cleaning import parse_date

    for key, value in (raw or {}).items():
        if any(k in fold(str(key)) for k in _RAW_AVAILABLE_UNTIL):
            found = parse_date(value)
            if found is not None:
                return found
    return None


def volunteer_profiles(people: PeopleData, as_of: Any, *, available_on: Any = None) -> pd.DataFrame:
    """One row per volunteer known at ``as_of``: skills, usual weekdays, place, hours, missions, recency.

    A volunteer whose declared availability ended before ``available_on``
    (default ``as_of``) is left out.
    """
    pd = require_pandas()
    t = as_timestamp(as_of)
    needed = as_timestamp(available_on).normalize() if available_on is not None else t.normalize()
    y1 = t - pd.DateOffset(years=1)
    rows: dict[str, dict[str, Any]] = {}
    persons = {p.source_id: p for p in people.persons if not p.do_not_profile}
    for pid, p in list(persons.items()):
        until = available_until(p.raw)
        if until is not None and pd.Timestamp(until) < needed:
            del persons[pid]
    for p in persons.values():
        declared = _skills_from_raw(p.raw)
        if declared:
            rows[p.source_id] = {"skills": set(declared), "days": set(), "missions": set(), "hours_12m": 0.0, "last": None}
    for h in people.hours:
        pid = str(h.person_id)
        when = pd.Timestamp(h.date)
        if pid not in persons or when >= t:
            continue
        row = rows.setdefault(pid, {"skills": set(), "days": set(), "missions": set(), "hours_12m": 0.0, "last": None})
        row["skills"] |= {fold(s) for s in h.skills}
        row["days"].add(when.weekday())
        row["missions"].add(str(h.mission))
        if when >= y1:
            row["hours_12m"] += float(h.hours)
        row["last"] = when if row["last"] is None or when > row["last"] else row["last"]
    out = []
    for pid, row in rows.items():
        p = persons[pid]
        since = NEVER_MONTHS if row["last"] is None else min(NEVER_MONTHS, (t - row["last"]).days / 30.4375)
        out.append({"person_id": pid, "skills": frozenset(row["skills"]), "days": frozenset(row["days"]),
                    "missions": frozenset(row["missions"]), "postcode": p.postcode, "department": department_of(p.postcode),
                    "hours_12m": row["hours_12m"], "missions_done": float(len(row["missions"])),
                    "months_since_volunteering": since})
    frame = pd.DataFrame(out, columns=["person_id", "skills", "days", "missions", "postcode", "department", "hours_12m",
                                       "missions_done", "months_since_volunteering"])
    return frame.set_index("person_id")


def pair_features(mission: VolunteerMission, profiles: pd.DataFrame) -> pd.DataFrame:
    """The :data:`PAIR_FEATURES` of every volunteer in ``profiles`` for ``mission``."""
    pd = require_pandas()
    wanted = {fold(s) for s in mission.skills}
    days = set(mission.weekdays)
    m_dep = department_of(mission.postcode)
    rows = []
    for pid, v in profiles.iterrows():
        shared = len(wanted & v["skills"])
        if days and v["days"]:
            weekday = len(days & v["days"]) / len(days)
        else:
            weekday = 0.5  # unknown on one side: neither for nor against
        rows.append({
            "person_id": pid,
            "skill_match": shared / len(wanted) if wanted else 0.5,
            "skill_any": float(shared > 0),
            "same_postcode": float(bool(mission.postcode) and v["postcode"] == mission.postcode),
            "same_department": float(bool(m_dep) and v["department"] == m_dep),
            "weekday_match": weekday,
            "hours_12m": float(v["hours_12m"]),
            "missions_done": float(v["missions_done"]),
            "months_since_volunteering": float(v["months_since_volunteering"]),
        })
    frame = pd.DataFrame(rows, columns=["person_id", *PAIR_FEATURES])
    return frame.set_index("person_id")


def _mission_dates(people: PeopleData) -> dict[str, pd.Timestamp]:
    pd = require_pandas()
    first: dict[str, Any] = {}
    for h in people.hours:
        key = str(h.mission)
        when = pd.Timestamp(h.date)
        if key not in first or when < first[key]:
            first[key] = when
    for m in people.missions:
        if m.start is not None:
            first[m.source_id] = min(first.get(m.source_id, pd.Timestamp(m.start)), pd.Timestamp(m.start))
    return first


def _mission_by_id(people: PeopleData, mission_id: str) -> VolunteerMission:
    for m in people.missions:
        if m.source_id == str(mission_id) or fold(m.title) == fold(str(mission_id)):
            return m
    known = ", ".join(m.source_id for m in people.missions[:20]) or "-"
    raise DataError(tr(f"Mission inconnue : {mission_id}. Missions : {known}.", f"Unknown mission: {mission_id}. Missions: {known}."))


def _examples(people: PeopleData, missions: list[VolunteerMission], starts: dict[str, Any]) -> tuple[pd.DataFrame, pd.Series]:
    pd = require_pandas()
    takers: dict[str, set[str]] = {}
    for h in people.hours:
        takers.setdefault(str(h.mission), set()).add(str(h.person_id))
    parts, labels = [], []
    for m in missions:
        t = starts[m.source_id]
        pairs = pair_features(m, volunteer_profiles(people, t))
        if not len(pairs):
            continue
        y = pairs.index.isin(list(takers.get(m.source_id, ()))).astype(int)
        pairs = pairs.assign(mission=m.source_id).set_index("mission", append=True)
        parts.append(pairs)
        labels.append(pd.Series(y, index=pairs.index))
    if not parts:
        return pd.DataFrame(columns=list(PAIR_FEATURES)), pd.Series(dtype=int)
    return pd.concat(parts), pd.concat(labels)


def _new_model(random_state: int) -> PeopleModel:
    return PeopleModel(task=TASK, features=list(PAIR_FEATURES), log_features=_LOG_FEATURES, random_state=random_state)


def train_matching(data: Any, *, test_share: float = 0.25, random_state: int = 0) -> PeopleModel:
    """Learn the weight of each matching factor from past missions; evaluation on the latest missions."""
    people = load_people(data)
    starts = _mission_dates(people)
    missions = sorted((m for m in people.missions if m.source_id in starts), key=lambda m: starts[m.source_id])
    if len(missions) < 4:
        raise DataError(
            tr(f"Il faut au moins 4 missions avec des heures de bénévolat pour apprendre ({len(missions)} trouvées). "
               "Sans historique, « assoc-ai people match » classe avec des poids par défaut.",
               f"At least 4 missions with volunteer hours are needed to learn ({len(missions)} found). "
               "Without history, 'assoc-ai people match' ranks with default weights.")
        )
    cut = max(1, int(round(len(missions) * (1 - test_share))))
    X_train, y_train = _examples(people, missions[:cut], starts)
    X_test, y_test = _examples(people, missions[cut:], starts)
    if y_train.nunique() < 2 or int(y_train.sum()) < 5:
        raise DataError(tr("Trop peu de bénévoles ont pris des missions passées pour apprendre.",
                           "Too few volunteers took past missions to learn from."))
    trial = _new_model(random_state).fit(X_train, y_train.to_numpy(), groups=X_train.index.get_level_values("mission"))
    evaluation: dict[str, Any] = {"task": TASK, "protocol": {"kind": "chronological", "train_missions": cut,
                                                              "test_missions": len(missions) - cut}}
    if len(X_test):
        p = trial.predict_proba(X_test)[:, 1]
        evaluation["metrics"] = classification_metrics(y_test.to_numpy(), p)
        evaluation["hit_rate_at_5"] = _hit_rate(X_test, y_test, p, 5)
    X_all, y_all = _examples(people, missions, starts)
    final = _new_model(random_state).fit(X_all, y_all.to_numpy(), groups=X_all.index.get_level_values("mission"))
    final.threshold_ = 0.5
    now = datetime.now(UTC)
    final.metadata_ = {
        "kind": "people", "task": TASK, "model_version": f"{TASK}-{now:%Y%m%d%H%M}", "trained_at": now.isoformat(),
        "assoc_ai_version": __version__, "features": list(PAIR_FEATURES), "weights": final.global_weights(),
        "evaluation": evaluation, "n_examples": int(len(X_all)), "people_format_version": 1,
    }
    return final


def _hit_rate(X: pd.DataFrame, y: pd.Series, p: np.ndarray, k: int) -> float:
    """Share of missions where at least one real taker is among the top ``k`` ranked volunteers."""
    frame = X.assign(p=p, y=y.to_numpy())
    hits, total = 0, 0
    for _, group in frame.groupby(level="mission"):
        if group["y"].sum() == 0:
            continue
        total += 1
        hits += int(group.nlargest(k, "p")["y"].sum() > 0)
    return hits / total if total else float("nan")


def rank_volunteers(
    data: Any, mission_id: str, *, model: PeopleModel | None = None, as_of: Any = None, top_k: int = 10,
    lang: str | None = None,
) -> list[Explanation]:
    """The ``top_k`` volunteers for a mission, best first, each with a probability-like score and factors."""
    people = load_people(data)
    mission = _mission_by_id(people, mission_id)
    today = as_timestamp(as_of) if as_of is not None else as_timestamp(datetime.now(UTC).date())
    if mission.end is not None and as_timestamp(mission.end) < today.normalize():
        raise DataError(tr(
            f"La mission « {mission.title or mission.source_id} » est terminée (fin le {mission.end:%d/%m/%Y}) : "
            "aucun bénévole n'est proposé. Choisissez une mission en cours ou à venir, ou donnez --as-of pour "
            "revoir un classement passé.",
            f"Mission '{mission.title or mission.source_id}' is over (ended {mission.end:%Y-%m-%d}): no volunteer is "
            "proposed. Choose a current or coming mission, or give --as-of to look at a past ranking.", lang))
    t = as_timestamp(as_of) if as_of is not None else (as_timestamp(mission.start) if mission.start else today)
    # a volunteer must still be available on the later of the reference day and the mission's first day
    pairs = pair_features(mission, volunteer_profiles(people, t, available_on=max(t, today)))
    if not len(pairs):
        return []
    if model is not None:
        exps = model.explain(pairs, top_k=3, lang=lang)
    else:
        exps = _default_explanations(pairs, lang)
    exps.sort(key=lambda e: -e.probability)
    return exps[:top_k]


def _default_explanations(pairs: pd.DataFrame, lang: str | None) -> list[Explanation]:
    out = []
    for pid, row in pairs.iterrows():
        contributions = {}
        for name, w in DEFAULT_WEIGHTS.items():
            x = math.log1p(row[name]) if name in _LOG_FEATURES else float(row[name])
            contributions[name] = w * x
        logit = DEFAULT_INTERCEPT + sum(contributions.values())
        ordered = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))
        factors = [Factor(n, float(row[n]), c, describe_factor(n, float(row[n]), lang)) for n, c in ordered[:3] if abs(c) >= 0.05]
        exp = Explanation(person_id=str(pid), task=TASK, probability=1 / (1 + math.exp(-logit)),
                          baseline=1 / (1 + math.exp(-DEFAULT_INTERCEPT)), factors=factors)
        exp.sentence = sentence(exp, lang)
        out.append(exp)
    return out
