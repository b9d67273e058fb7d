"""Volunteer matching, fairness checks and the HTML report."""

from __future__ import annotations

import re

import numpy as np
import pytest

from assoc_ai_core.errors import DataError
from assoc_ai_core.people.dataset import PeopleData
from assoc_ai_core.records.people import Person, VolunteerHours, VolunteerMission


def _small_world() -> PeopleData:
    from datetime import date

    mission = VolunteerMission("t", "M9", "Cuisine solidaire", skills=("cuisine", "accueil"), postcode="35000",
                               start=date(2024, 3, 1), weekdays=(5,))
    persons = [Person("t", "cook", postcode="35000"), Person("t", "far", postcode="13001"),
               Person("t", "optout", postcode="35000", do_not_profile=True),
               Person("t", "declared", postcode="35000", raw={"Compétences": "Cuisine; jardinage"})]
    hours = [VolunteerHours("t", "h1", "cook", "M1", 3, date(2024, 2, 3), skills=("cuisine", "accueil")),  # a Saturday
             VolunteerHours("t", "h2", "far", "M2", 3, date(2024, 2, 5), skills=("informatique",)),
             VolunteerHours("t", "h3", "optout", "M1", 3, date(2024, 2, 3), skills=("cuisine", "accueil"))]
    return PeopleData(persons=persons, missions=[mission], hours=hours)


def test_default_ranking_explains_the_match():
    from assoc_ai_core.people.matching import rank_volunteers

    ranked = rank_volunteers(_small_world(), "M9", lang="fr")
    assert [e.person_id for e in ranked] == ["cook", "declared", "far"]  # the opted-out volunteer is not ranked
    assert "100\u202f% des compétences demandées (+)" in ranked[0].sentence
    assert ranked[0].probability > ranked[1].probability > ranked[2].probability
    with pytest.raises(DataError, match="Mission inconnue"):
        rank_volunteers(_small_world(), "M404")


def test_learned_matching_uses_history(association):
    from assoc_ai_core.people.matching import PAIR_FEATURES, rank_volunteers, train_matching

    model = train_matching(association)
    ev = model.metadata_["evaluation"]
    assert ev["protocol"]["test_missions"] >= 1 and ev["metrics"]["roc_auc"] > 0.6
    assert list(model.features_) == list(PAIR_FEATURES)
    m = association.missions[-1]  # a past mission: ranked as of its first day
    ranked = rank_volunteers(association, m.source_id, model=model, top_k=5, lang="en", as_of=m.start)
    assert len(ranked) == 5 and all(re.match(r"^\d+%: ", e.sentence) for e in ranked)


def test_fairness_flags_a_real_gap_and_ignores_tiny_groups(monkeypatch):
    import pandas as pd

    from assoc_ai_core.people.fairness import fairness_report

    rng = np.random.default_rng(0)
    n = 400
    group = np.where(np.arange(n) < 200, "F", "M")
    y = rng.integers(0, 2, n)
    p = np.where(group == "F", 0.8, 0.2) * y + rng.uniform(0, 0.3, n)  # men's positives are missed
    attrs = pd.DataFrame({"gender": group, "age_band": ["<30"] * 5 + ["30-49"] * (n - 5)})
    report = fairness_report(y, p, attrs, threshold=0.5, bound=0.1, min_group_size=20)
    gender = report.attributes[0]
    assert gender.gaps["true_positive_rate"] > 0.5
    assert any("true" not in w and "vrais positifs" in w and "au-delà" in w for w in gender.warnings)
    age = report.attributes[1]
    assert age.gaps == {} and age.warnings == []  # the 5-person group is shown but not compared
    assert [g["compared"] for g in age.groups] == [True, False]
    fair = fairness_report(y, y * 0.9, attrs[["gender"]], threshold=0.5)
    assert fair.warnings == []
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    assert "true-positive rate" in " ".join(fairness_report(y, p, attrs, threshold=0.5).warnings)


def test_gender_and_age_groups():
    from assoc_ai_core.people.fairness import age_band, normalize_gender

    assert [normalize_gender(v) for v in ("Mme", "M.", "femme", "H", "", None, "non-binaire")] == \
        ["F", "M", "F", "M", "?", "?", "non-binaire"]
    assert [age_band(y, 2024) for y in (2000, 1980, 1960, 1940, None, 1850)] == ["<30", "30-49", "50-69", "70+", "?", "?"]


def test_report_is_self_contained_and_escaped(donor_model, association):
    from assoc_ai_core.people.report import render_people_report
    from assoc_ai_core.people.retention import retention_history

    ev = dict(donor_model.metadata_["evaluation"])
    ev["fairness"] = {"attributes": {"city": {"groups": [{"group": "<script>alert(1)</script>", "n": 30, "selection_rate": 0.1,
                                                          "true_positive_rate": 0.5, "false_positive_rate": 0.1,
                                                          "error_rate": 0.2, "compared": True}],
                                              "gaps": {}, "warnings": []}}, "warnings": ["écart <b>"]}
    page = render_people_report(ev, retention=retention_history(association, years=3), lang="fr")
    assert page.count("<svg") >= 3  # calibration, gains, weights
    assert "<script" not in page and "&lt;script&gt;" in page and "&lt;b&gt;" in page
    assert not re.search(r"(src|href)=\"?https?:", page)  # nothing fetched from the web
    assert "Fidélisation des donateurs" in page and "Calibration" in page
    assert "Cumulative gains" in render_people_report(ev, lang="en")
