"""People models: chronological protocol, calibration, exact explanations, consent, saving without pickle."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, timedelta

import numpy as np
import pytest

from assoc_ai_core.errors import DataError, UntrustedModelError
from assoc_ai_core.people.tasks import (
    build_examples,
    data_end,
    data_start,
    explain_person,
    get_task,
    latest_period_examples,
    predict_people,
    snapshot_dates,
    train_people_model,
)


def test_chronological_protocol_has_no_overlap(association):
    import pandas as pd

    frames = association.frames()
    train, test = snapshot_dates(frames, 12, step_months=6)
    assert train == sorted(train) and len(train) >= 6
    # no outcome window used for learning reaches into the test period
    assert all(t + pd.DateOffset(months=12) <= test for t in train)
    assert test + pd.DateOffset(months=12) == data_end(frames)
    dates = [r.date for r in association.gifts + association.participations + association.hours]
    dates += [m.start for m in association.memberships if m.start]
    assert data_start(frames).date() == min(dates) and data_end(frames).date() == max(dates) + timedelta(days=1)


def test_latest_period_is_the_one_the_model_was_checked_on(donor_model, association):
    people, X, y, when = latest_period_examples(donor_model, association)
    assert when.date().isoformat() == donor_model.metadata_["evaluation"]["as_of"]
    assert set(X.index.get_level_values("as_of")) == {when} and len(X) == len(y) > 100
    assert set(y.unique()) == {0, 1} and people is association


def test_donor_model_ranks_well_and_is_calibrated(donor_model):
    ev = donor_model.metadata_["evaluation"]
    m = ev["metrics"]
    assert ev["protocol"]["kind"] == "chronological" and ev["protocol"]["test_as_of"] not in ev["protocol"]["train_as_of"]
    assert m["roc_auc"] > 0.85
    assert abs(m["mean_prediction"] - m["base_rate"]) < 0.06  # calibrated on the future period
    assert m["brier"] < m["base_rate"] * (1 - m["base_rate"])  # better than always saying the base rate
    assert ev["lift"][0]["lift"] > 2
    assert set(ev["permutation_importance"]) == set(donor_model.features_)
    assert "fairness" in ev and ev["excluded_do_not_profile"] > 0
    assert "gender" not in donor_model.features_  # declared gender is for fairness checks only


def test_explanations_are_exact_contributions(donor_model, association):
    from assoc_ai_core.people.features import build_features

    X = build_features(association, "2024-06-01")
    base, contrib = donor_model.contributions(X)
    p = donor_model.predict_proba(X)[:, 1]
    np.testing.assert_allclose(base + contrib.sum(axis=1), np.log(p / (1 - p)), atol=1e-6)


def test_predictions_explained_in_french_and_english(donor_model, association):
    fr = predict_people(donor_model, association, lang="fr")
    en = predict_people(donor_model, association, lang="en")
    assert list(fr.columns) == ["person_id", "probability", "selected", "explanation"]
    assert fr["probability"].is_monotonic_decreasing
    top = fr.iloc[0]
    assert re.match(r"^\d{1,3}\u202f% : .+ \([+−]\)", top.explanation)
    assert re.match(r"^\d{1,3}%: .+ \([+−]\)", en.iloc[0].explanation)
    assert fr.attrs["as_of"] > "2024-12"


def test_people_who_objected_are_never_scored(donor_model, association):
    opted_out = {p.source_id for p in association.persons if p.do_not_profile}
    assert opted_out
    scored = set(predict_people(donor_model, association)["person_id"])
    assert not scored & opted_out
    with pytest.raises(DataError, match="profilage"):
        explain_person(donor_model, association, sorted(opted_out)[0])
    with pytest.raises(DataError, match="inconnue"):
        explain_person(donor_model, association, "NOBODY")


def test_explain_one_person(donor_model, association):
    frame = predict_people(donor_model, association)
    pid = frame.iloc[0].person_id
    exp = explain_person(donor_model, association, pid, lang="en", top_k=4)
    assert exp.probability == pytest.approx(frame.iloc[0].probability, abs=1e-4)
    assert 1 <= len(exp.factors) <= 4 and exp.exact
    assert exp.factors == sorted(exp.factors, key=lambda f: -abs(f.contribution))
    assert exp.to_dict()["factors"][0]["text"] in exp.sentence


def test_churn_and_reactivation_tasks(association):
    churn = train_people_model(association, "churn", importance=False, fairness_attributes=())
    assert churn.task == "membership-churn"
    assert churn.metadata_["evaluation"]["metrics"]["roc_auc"] > 0.6
    frame = predict_people(churn, association)
    from assoc_ai_core.people.features import build_features

    members = build_features(association, frame.attrs["as_of"])
    assert set(frame.person_id) == set(members.index[members.member_this_year > 0])
    lapsed = train_people_model(association, "lapsed-reactivation", importance=False, fairness_attributes=(), kind="boosting")
    assert lapsed.metadata_["evaluation"]["metrics"]["roc_auc"] > 0.6
    assert not lapsed.explain(build_features(association, "2024-06-01").head(3))[0].exact


def test_outcome_of_churn_is_not_renewing(association):
    import pandas as pd

    frames = association.frames()
    spec = get_task("membership-renewal")
    t = pd.Timestamp("2022-06-01")
    X, y = build_examples(frames, spec, [t], 12)
    renewed = {m.person_id for m in association.memberships if date(2022, 6, 1) <= m.start < date(2023, 6, 1)}
    for (_, pid), churned in y.items():
        assert churned == (pid not in renewed)


def test_clear_errors(association):
    with pytest.raises(DataError, match="Tâche inconnue.*donor-propensity"):
        get_task("guess-the-weather")
    short = dataclasses.replace(association, gifts=[g for g in association.gifts if g.date >= date(2023, 1, 1)],
                                memberships=[], participations=[], hours=[])
    with pytest.raises(DataError, match="Historique trop court.*--horizon"):
        train_people_model(short, "donor-propensity")


def test_saved_with_skops_and_tampering_refused(donor_model, donor_model_path, association, tmp_path):
    from fractions import Fraction

    import skops.io as sio

    from assoc_ai_core.people.store import PEOPLE_TRUSTED_TYPES, is_people_model, load_people_model, save_people_model

    assert is_people_model(donor_model_path) and not is_people_model(tmp_path / "missing.skops")
    loaded = load_people_model(donor_model_path)
    assert loaded.metadata_ == donor_model.metadata_
    assert predict_people(loaded, association).equals(predict_people(donor_model, association))
    assert set(sio.get_untrusted_types(file=donor_model_path)) <= set(PEOPLE_TRUSTED_TYPES)
    tampered = load_people_model(donor_model_path)
    tampered.extra_ = Fraction(1, 3)  # a type nobody reviewed
    save_people_model(tampered, tmp_path / "tampered.skops")
    with pytest.raises(UntrustedModelError, match="fractions.Fraction"):
        load_people_model(tmp_path / "tampered.skops")
