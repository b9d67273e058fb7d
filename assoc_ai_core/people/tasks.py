"""People tasks: who will give, which members will not renew, which lapsed donors may come back.

Each task says *who* is scored (the population on a date) and *what* is
predicted (the outcome in the following months).  Training follows a strict
chronological protocol:

1. the **test date** is the latest date whose outcome window is complete
   (data end minus the horizon);
2. the **training dates** are earlier snapshots, every ``step_months``, whose
   outcome windows end before the test date — so no outcome used in
   training overlaps the test period;
3. the model is fitted on the training snapshots, calibrated on folds
   grouped by person, and measured on the test snapshot (AUC, Brier,
   calibration, lift, fairness, permutation importance);
4. the model kept for use is then refitted on every snapshot up to the test
   date, and scores people as of the end of the data.

A **campaign** (``as_of`` given: "who answered the appeal sent on that
day?") is learned from that one snapshot instead: the past snapshots hold
other seasons and other appeals, whose response rates say little about this
one, so a model learned on them is calibrated to their rate, not to the
campaign's.  Its check is cross-validated (out-of-fold probabilities over
folds of people), and the model kept is refitted on the whole snapshot.

People flagged ``do_not_profile`` are neither learned from nor scored.
Volunteer–mission matching lives in :mod:`assoc_ai_core.people.matching`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from assoc_ai_core import __version__
from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.people.dataset import PeopleData, load_people, require_pandas
from assoc_ai_core.people.features import BY_NAME, as_timestamp, build_features, membership_starts
from assoc_ai_core.people.metrics import (
    best_threshold,
    calibration_bins,
    classification_metrics,
    lift_table,
    threshold_metrics,
)
from assoc_ai_core.people.model import Explanation, PeopleModel
from assoc_ai_core.records.people import Score

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TaskSpec", "TASKS", "get_task", "snapshot_dates", "build_examples", "train_people_model", "latest_period_examples",
    "evaluate_people_model", "predict_people", "explain_person", "scores_from_predictions", "data_end", "data_start",
]


@dataclass(frozen=True)
class TaskSpec:
    """A scoring task: its population on a date, its outcome, its features and how to name it."""

    name: str
    fr: str
    en: str
    features: tuple[str, ...]
    population: Callable[[pd.DataFrame], pd.Series]
    outcome: Callable[[dict[str, pd.DataFrame], pd.Timestamp, pd.Timestamp], set[str]]
    positive_is_outcome: bool = True  # False: the probability is that the outcome does NOT happen (churn)
    aliases: tuple[str, ...] = ()


def _one_off_givers(frames: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp) -> set[str]:
    g = frames["gift"]
    window = g[(g["date"] >= start) & (g["date"] < end) & ~g["recurring"].eq(True)]
    return set(window["person_id"].astype(str))


def _any_givers(frames: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp) -> set[str]:
    g = frames["gift"]
    return set(g.loc[(g["date"] >= start) & (g["date"] < end), "person_id"].astype(str))


def _renewers(frames: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp) -> set[str]:
    m = membership_starts(frames["membership"])
    return set(m.loc[(m["start"] >= start) & (m["start"] < end), "person_id"].astype(str))


# "never_gave" stays out of the donor model: months_since_last_gift already says it (ten years), and two features
# carrying one fact split its weight into opposite signs that would confuse the explanations.
# Likewise "months_since_first_gift" (0 for people who never gave) would double "months_known" for donors.
_GIVING = ("gifts_12m", "gifts_24m", "amount_total", "amount_last", "months_since_last_gift", "giving_years", "lybunt", "first_year_donor", "upgrade", "downgrade", "recurring_active")
_ENGAGEMENT = ("member_this_year", "member_years", "events_12m", "volunteer_hours_12m", "months_known")

TASKS: dict[str, TaskSpec] = {
    "donor-propensity": TaskSpec(
        "donor-propensity", "probabilité de donner dans la période", "probability of giving in the period",
        _GIVING + _ENGAGEMENT,
        population=lambda f: f.index.notna(),
        outcome=_one_off_givers,
        aliases=("propensity", "donor"),
    ),
    "membership-churn": TaskSpec(
        "membership-churn", "risque de ne pas renouveler l'adhésion", "risk of not renewing the membership",
        ("member_seasons", "member_streak", "member_years", "months_since_membership", "last_fee", "gifts_12m",
         "amount_total", "months_since_last_gift", "recurring_active", "events_12m", "cancellations_12m",
         "volunteer_hours_12m", "months_known", "has_email"),
        population=lambda f: f["member_this_year"] > 0,
        outcome=_renewers,
        positive_is_outcome=False,
        aliases=("churn", "membership-renewal", "renewal"),
    ),
    "lapsed-reactivation": TaskSpec(
        "lapsed-reactivation", "probabilité qu'un donateur perdu redonne", "probability a lapsed donor gives again",
        ("gifts_total", "amount_total", "amount_max", "months_since_last_gift", "months_since_first_gift",
         "giving_years", "sybunt", "member_this_year", "member_lapsed", "events_12m", "volunteer_hours_12m",
         "months_known"),
        population=lambda f: (f["never_gave"] == 0) & (f["gifts_12m"] == 0) & (f["recurring_gifts_12m"] == 0),
        outcome=_any_givers,
        aliases=("reactivation", "lapsed"),
    ),
}
_MATCHING = "volunteer-matching"  # trained by assoc_ai_core.people.matching


def get_task(name: str) -> TaskSpec:
    """The task called ``name`` (or an alias); the error lists the tasks."""
    for spec in TASKS.values():
        if name == spec.name or name in spec.aliases:
            return spec
    known = ", ".join([*TASKS, _MATCHING])
    raise DataError(tr(f"Tâche inconnue « {name} ». Tâches : {known}.", f"Unknown task '{name}'. Tasks: {known}."))


_DATED = (("gift", "date"), ("participation", "date"), ("volunteer_hours", "date"), ("membership", "start"))


def _record_dates(frames: dict[str, pd.DataFrame], extreme: str) -> list[pd.Timestamp]:
    """The ``"min"`` or ``"max"`` date of each dated record type that has any."""
    pd = require_pandas()
    stamps = [getattr(frames[t][c], extreme)() for t, c in _DATED if len(frames[t])]
    return [s for s in stamps if s is not None and not pd.isna(s)]


def data_end(frames: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The day after the latest dated record: outcomes are known up to (not including) this day."""
    pd = require_pandas()
    stamps = _record_dates(frames, "max")
    if not stamps:
        raise DataError(tr("Aucune date dans les données (dons, adhésions, événements...).",
                           "No dates in the data (gifts, memberships, events...)."))
    return as_timestamp(max(stamps)) + pd.Timedelta(days=1)


def data_start(frames: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The earliest dated record."""
    return as_timestamp(min(_record_dates(frames, "min")))


def snapshot_dates(
    frames: dict[str, pd.DataFrame], horizon_months: int = 12, *, step_months: int = 6, min_history_months: int = 12,
) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """Training dates (oldest first) and the test date of the chronological protocol."""
    pd = require_pandas()
    end, start = data_end(frames), data_start(frames)
    test = end - pd.DateOffset(months=horizon_months)
    earliest = start + pd.DateOffset(months=min_history_months)
    train, t = [], test - pd.DateOffset(months=horizon_months)
    while t >= earliest:
        train.append(t)
        t = t - pd.DateOffset(months=step_months)
    if not train:
        months = int(round((end - start).days / 30.4375))
        need = 2 * horizon_months + min_history_months
        raise DataError(
            tr(
                f"Historique trop court : {months} mois de données, il en faut au moins {need} pour un horizon de "
                f"{horizon_months} mois (apprendre sur le passé, vérifier sur la dernière période). "
                "Réduisez l'horizon (`assoc-ai people train … --horizon 6`) ou ajoutez des années d'historique.",
                f"History too short: {months} months of data, at least {need} are needed for a {horizon_months}-month "
                "horizon (learn on the past, check on the latest period). Reduce the horizon (`assoc-ai people train … --horizon 6`) or add "
                "years of history.",
            )
        )
    return sorted(train), test


def build_examples(
    frames: dict[str, pd.DataFrame], spec: TaskSpec, dates: Sequence[pd.Timestamp], horizon_months: int,
) -> tuple[pd.DataFrame, pd.Series]:
    """Features and 0/1 outcomes of the task's population at each date (index: as_of, person_id)."""
    pd = require_pandas()
    parts, labels = [], []
    for t in dates:
        feats = build_features(frames, t)
        feats = feats[np.asarray(spec.population(feats), dtype=bool)]
        happened = spec.outcome(frames, t, t + pd.DateOffset(months=horizon_months))
        y = feats.index.isin(list(happened)).astype(int)
        if not spec.positive_is_outcome:
            y = 1 - y
        feats = feats.assign(as_of=t).set_index("as_of", append=True).reorder_levels(["as_of", "person_id"])
        parts.append(feats)
        labels.append(pd.Series(y, index=feats.index, name="outcome"))
    if not parts:
        return pd.DataFrame(), pd.Series(dtype=int)
    return pd.concat(parts), pd.concat(labels)


def _new_model(spec: TaskSpec, kind: str, random_state: int) -> PeopleModel:
    """An unfitted model for ``spec``: its features, counts and amounts entered as log(1 + x)."""
    feats = list(spec.features)
    log_features = tuple(n for n in feats if n in BY_NAME and BY_NAME[n].log)
    return PeopleModel(task=spec.name, features=feats, log_features=log_features, kind=kind, random_state=random_state)


def _check_examples(spec: TaskSpec, X: pd.DataFrame, y: pd.Series, where: str) -> None:
    if len(X) < 20 or y.nunique() < 2 or min(int(y.sum()), int(len(y) - y.sum())) < 5:
        raise DataError(
            tr(
                f"{spec.name} : trop peu d'exemples pour {where} ({len(X)} personnes, {int(y.sum())} cas positifs). "
                "Il faut au moins 20 personnes et 5 cas de chaque sorte ; ajoutez de l'historique ou réduisez l'horizon.",
                f"{spec.name}: too few examples for {where} ({len(X)} people, {int(y.sum())} positive cases). "
                "At least 20 people and 5 cases of each kind are needed; add history or reduce the horizon.",
            )
        )


def train_people_model(
    data: Any,
    task: str,
    *,
    horizon_months: int = 12,
    step_months: int = 6,
    kind: str = "logistic",
    fairness_attributes: Sequence[str] = ("gender", "age_band", "department"),
    fairness_bound: float = 0.1,
    importance: bool = True,
    random_state: int = 0,
    as_of: Any = None,
) -> PeopleModel:
    """Train, measure chronologically, then refit on all complete periods; ``metadata_`` holds the evaluation.

    With ``as_of``, learn the response to one campaign instead: the outcome
    in the ``horizon_months`` after that day, checked by cross-validation.
    """
    spec = get_task(task)
    people = load_people(data)
    frames = people.frames()
    if as_of is not None:
        return _train_campaign(people, frames, spec, as_timestamp(as_of), horizon_months, kind=kind,
                               fairness_attributes=fairness_attributes, fairness_bound=fairness_bound,
                               random_state=random_state)
    train_dates, test_date = snapshot_dates(frames, horizon_months, step_months=step_months)
    all_dates = [*train_dates, test_date]
    X_all, y_all = build_examples(frames, spec, all_dates, horizon_months)
    in_test = X_all.index.get_level_values("as_of") == test_date
    X_train, y_train, X_test, y_test = X_all[~in_test], y_all[~in_test], X_all[in_test], y_all[in_test]
    _check_examples(spec, X_train, y_train, tr("apprendre", "training"))
    trial = _new_model(spec, kind, random_state).fit(X_train, y_train.to_numpy(),
                                                     groups=X_train.index.get_level_values("person_id"))
    threshold = best_threshold(y_train.to_numpy(), trial.predict_proba(X_train)[:, 1])
    trial.threshold_ = threshold
    evaluation = _measure(trial, spec, people, X_test, y_test, test_date, threshold,
                          fairness_attributes=fairness_attributes, fairness_bound=fairness_bound, importance=importance)
    evaluation["protocol"] = {
        "kind": "chronological", "horizon_months": horizon_months, "step_months": step_months,
        "train_as_of": [d.date().isoformat() for d in train_dates], "test_as_of": test_date.date().isoformat(),
        "n_train": int(len(X_train)),
    }
    final = _new_model(spec, kind, random_state).fit(X_all, y_all.to_numpy(),
                                                     groups=X_all.index.get_level_values("person_id"))
    final.threshold_ = threshold
    final.metadata_ = _metadata(final, spec, horizon_months, data_end(frames), all_dates, len(X_all), evaluation)
    return final


def _train_campaign(
    people: PeopleData, frames: dict[str, pd.DataFrame], spec: TaskSpec, when: pd.Timestamp, horizon_months: int, *,
    kind: str, fairness_attributes: Sequence[str], fairness_bound: float, random_state: int, folds: int = 5,
) -> PeopleModel:
    """One snapshot, out-of-fold check, then the model refitted on the whole snapshot."""
    pd = require_pandas()
    from sklearn.model_selection import StratifiedKFold

    end = data_end(frames)
    if when + pd.DateOffset(months=horizon_months) > end:
        raise DataError(tr(
            f"La période suivant le {when.date()} ({horizon_months} mois) n'est pas finie dans les données "
            f"(dernière date : {(end - pd.Timedelta(days=1)).date()}) : les réponses ne sont pas toutes connues.",
            f"The {horizon_months}-month period after {when.date()} is not over in the data (last date: "
            f"{(end - pd.Timedelta(days=1)).date()}): not every response is known yet."))
    X, y = build_examples(frames, spec, [when], horizon_months)
    _check_examples(spec, X, y, tr("apprendre", "training"))
    yt = y.to_numpy()
    n_folds = max(2, min(folds, int(yt.sum()), int(len(yt) - yt.sum())))
    oof = np.zeros(len(yt))
    for train, test in StratifiedKFold(n_folds, shuffle=True, random_state=random_state).split(X, yt):
        fold_model = _new_model(spec, kind, random_state).fit(X.iloc[train], yt[train])
        oof[test] = fold_model.predict_proba(X.iloc[test])[:, 1]
    threshold = best_threshold(yt, oof)
    final = _new_model(spec, kind, random_state).fit(X, yt)
    final.threshold_ = threshold
    evaluation: dict[str, Any] = {
        "task": spec.name, "as_of": when.date().isoformat(), "metrics": classification_metrics(yt, oof),
        "calibration": calibration_bins(yt, oof), "lift": lift_table(yt, oof),
        "at_threshold": threshold_metrics(yt, oof, threshold), "weights": final.global_weights(),
        "protocol": {"kind": "campaign", "as_of": when.date().isoformat(), "horizon_months": horizon_months,
                     "folds": n_folds, "n_train": int(len(X))},
        "excluded_do_not_profile": sum(1 for person in people.persons if person.do_not_profile),
    }
    if fairness_attributes and len(np.unique(yt)) == 2:
        from assoc_ai_core.people.fairness import fairness_report, sensitive_attributes

        attrs = sensitive_attributes(people, X.index.get_level_values("person_id"), when, fairness_attributes)
        evaluation["fairness"] = fairness_report(yt, oof, attrs, threshold=threshold, bound=fairness_bound).to_dict()
    final.metadata_ = _metadata(final, spec, horizon_months, end, [when], len(X), evaluation)
    return final


def _metadata(model: PeopleModel, spec: TaskSpec, horizon_months: int, end: pd.Timestamp,
              dates: Sequence[pd.Timestamp], n_examples: int, evaluation: dict[str, Any]) -> dict[str, Any]:
    """What a trained model file says about itself: version, data, protocol, threshold and evaluation."""
    import sklearn

    trained_at = datetime.now(UTC)
    digest = hashlib.sha256(f"{spec.name}|{trained_at.isoformat()}|{n_examples}".encode()).hexdigest()[:8]
    return {
        "kind": "people",
        "task": spec.name,
        "model_version": f"{spec.name}-{trained_at:%Y%m%d}-{digest}",
        "trained_at": trained_at.isoformat(),
        "assoc_ai_version": __version__,
        "sklearn_version": sklearn.__version__,
        "people_format_version": 1,
        "horizon_months": horizon_months,
        "data_end": end.date().isoformat(),
        "snapshots": [d.date().isoformat() for d in dates],
        "n_examples": int(n_examples),
        "features": list(spec.features),
        "threshold": model.threshold_,
        "weights": model.global_weights(),
        "evaluation": evaluation,
    }


def _measure(
    model: PeopleModel, spec: TaskSpec, people: PeopleData, X: pd.DataFrame, y: pd.Series, as_of: pd.Timestamp,
    threshold: float, *, fairness_attributes: Sequence[str], fairness_bound: float, importance: bool,
) -> dict[str, Any]:
    """The measures of ``model`` on one snapshot: discrimination, calibration, lift, importance and fairness."""
    yt = y.to_numpy()
    out: dict[str, Any] = {"task": spec.name, "as_of": as_of.date().isoformat()}
    if not len(X):
        out["metrics"] = classification_metrics([], [])
        return out
    p = model.predict_proba(X)[:, 1]
    out["metrics"] = classification_metrics(yt, p)
    out["calibration"] = calibration_bins(yt, p)
    out["lift"] = lift_table(yt, p)
    out["at_threshold"] = threshold_metrics(yt, p, threshold)
    out["weights"] = model.global_weights()
    if importance and len(np.unique(yt)) == 2:
        from sklearn.inspection import permutation_importance

        result = permutation_importance(model, X, yt, scoring="roc_auc", n_repeats=3, random_state=0)
        imp = {name: float(result.importances_mean[j]) for j, name in enumerate(X.columns)}
        out["permutation_importance"] = dict(sorted(((k, v) for k, v in imp.items() if k in model.features_),
                                                    key=lambda kv: -kv[1]))
    if fairness_attributes and len(np.unique(yt)) == 2:
        from assoc_ai_core.people.fairness import fairness_report, sensitive_attributes

        attrs = sensitive_attributes(people, X.index.get_level_values("person_id"), as_of, fairness_attributes)
        out["fairness"] = fairness_report(yt, p, attrs, threshold=threshold, bound=fairness_bound).to_dict()
    out["excluded_do_not_profile"] = sum(1 for person in people.persons if person.do_not_profile)
    return out


def latest_period_examples(model: PeopleModel, data: Any) -> tuple[PeopleData, pd.DataFrame, pd.Series, pd.Timestamp]:
    """The people, features and outcomes of ``model``'s task on the latest complete period of ``data``.

    That period starts one horizon before the end of the data, so its
    outcomes are all known; returns (people, features, outcomes, its start).
    """
    pd = require_pandas()
    spec = get_task(model.task)
    people = load_people(data)
    frames = people.frames()
    horizon = int(model.metadata_.get("horizon_months", 12))
    when = data_end(frames) - pd.DateOffset(months=horizon)
    X, y = build_examples(frames, spec, [when], horizon)
    return people, X, y, when


def evaluate_people_model(model: PeopleModel, data: Any, *, lang: str | None = None) -> dict[str, Any]:
    """Measure a trained model on ``data`` at the latest complete period, beside its own chronological test.

    When that period was part of the model's training, ``in_sample`` is True
    and the figures are optimistic: the honest ones are in ``chronological``.
    """
    people, X, y, test_date = latest_period_examples(model, data)
    threshold = float(getattr(model, "threshold_", 0.5))
    result = _measure(model, get_task(model.task), people, X, y, test_date, threshold,
                      fairness_attributes=("gender", "age_band", "department"), fairness_bound=0.1, importance=True)
    snapshots = model.metadata_.get("snapshots", [])
    result["in_sample"] = bool(snapshots) and test_date.date().isoformat() <= max(snapshots)
    result["chronological"] = model.metadata_.get("evaluation", {})
    result["model_version"] = model.metadata_.get("model_version", "")
    return result


def _scoring_frame(model: PeopleModel, data: Any, as_of: Any) -> tuple[PeopleData, pd.DataFrame, pd.Timestamp]:
    spec = get_task(model.task)
    people = load_people(data)
    frames = people.frames()
    t = as_timestamp(as_of) if as_of is not None else data_end(frames)
    feats = build_features(frames, t)
    feats = feats[np.asarray(spec.population(feats), dtype=bool)]
    return people, feats, t


def predict_people(
    model: PeopleModel, data: Any, *, as_of: Any = None, lang: str | None = None, top_k: int = 3,
) -> pd.DataFrame:
    """Score the task's population as of ``as_of`` (default: end of the data), best first, with explanations."""
    pd = require_pandas()
    people, feats, t = _scoring_frame(model, data, as_of)
    if not len(feats):
        return pd.DataFrame(columns=["person_id", "probability", "selected", "explanation"])
    explanations = model.explain(feats, top_k=top_k, lang=lang, as_of_year=t.year)
    threshold = float(getattr(model, "threshold_", 0.5))
    frame = pd.DataFrame({
        "person_id": [e.person_id for e in explanations],
        "probability": [round(e.probability, 4) for e in explanations],
        "selected": [e.probability >= threshold for e in explanations],
        "explanation": [e.sentence for e in explanations],
    })
    frame.attrs["as_of"] = t.date().isoformat()
    frame.attrs["excluded_do_not_profile"] = sum(1 for p in people.persons if p.do_not_profile)
    return frame.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


def explain_person(
    model: PeopleModel, data: Any, person_id: str, *, as_of: Any = None, lang: str | None = None, top_k: int = 6,
) -> Explanation:
    """The explanation of one person's score; clear errors for unknown or opted-out people."""
    people, feats, t = _scoring_frame(model, data, as_of)
    match = [p for p in people.persons if p.source_id == str(person_id)]
    if not match:
        raise DataError(tr(f"Personne inconnue : {person_id}.", f"Unknown person: {person_id}."))
    if match[-1].do_not_profile:
        raise DataError(
            tr(f"{person_id} s'est opposé(e) au profilage : aucun score n'est calculé pour cette personne.",
               f"{person_id} objected to profiling: no score is computed for this person.")
        )
    if str(person_id) not in feats.index:
        spec = get_task(model.task)
        raise DataError(
            tr(f"{person_id} n'entre pas dans la population de la tâche « {spec.name} » ({spec.fr}) à cette date.",
               f"{person_id} is not in the population of task '{spec.name}' ({spec.en}) at this date.")
        )
    row = feats.loc[[str(person_id)]]
    return model.explain(row, top_k=top_k, lang=lang, as_of_year=t.year)[0]


def scores_from_predictions(model: PeopleModel, predictions: pd.DataFrame, *, source: str = "") -> list[Score]:
    """Turn :func:`predict_people` rows into :class:`Score` records ready for ``write_scores``."""
    version = str(getattr(model, "metadata_", {}).get("model_version", ""))
    now = datetime.now(UTC)
    return [
        Score(person_id=str(r.person_id), task=model.task, probability=float(r.probability), explanation=str(r.explanation),
              model_version=version, scored_at=now, source=source)
        for r in predictions.itertuples(index=False)
    ]
