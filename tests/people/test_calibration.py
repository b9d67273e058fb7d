"""Calibration end to end: a campaign's probabilities match its response rate, and the report says when not.

The association below gives steadily all year (a few percent of donors a
month) and runs one appeal, on 1 March 2022, to which a quarter of its donors
answer — more often the recent and frequent ones.  A model learned on the
past months is calibrated to the past months' rate; the campaign model must
be calibrated to the appeal's.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest

APPEAL = date(2022, 3, 1)


@pytest.fixture(scope="module")
def appeal_data():
    from assoc_ai_core.people.dataset import PeopleData
    from assoc_ai_core.records.people import Gift, Person

    rng = np.random.default_rng(11)
    data = PeopleData()
    k = 0
    for i in range(1200):
        pid = f"A{i:04d}"
        first = int(rng.integers(0, 60))  # months after January 2017
        rate = rng.gamma(1.0, 0.04)
        months = [m for m in range(first, 62) if m == first or rng.random() < rate]
        data.persons.append(Person("test", pid, created=datetime(2017 + first // 12, first % 12 + 1, 1)))
        for m in months:
            k += 1
            data.gifts.append(Gift("test", f"G{k}", pid, float(rng.integers(10, 80)),
                                   date(2017 + m // 12, m % 12 + 1, int(rng.integers(1, 28)))))
        recency = 62 - max(months)
        logit = -0.6 + 0.8 * np.log1p(len(months)) - 0.08 * recency
        if rng.random() < 1 / (1 + np.exp(-logit)):
            k += 1
            data.gifts.append(Gift("test", f"G{k}", pid, 50.0, date(2022, 3, int(rng.integers(2, 28)))))
    k += 1  # the export was taken at the end of March: the appeal's month is complete
    data.gifts.append(Gift("test", f"G{k}", "A0000", 20.0, date(2022, 3, 31)))
    return data


def test_campaign_model_is_calibrated_out_of_fold(appeal_data):
    from assoc_ai_core.people.tasks import train_people_model

    model = train_people_model(appeal_data, "donor-propensity", horizon_months=1, as_of=APPEAL, importance=False,
                               fairness_attributes=())
    ev = model.metadata_["evaluation"]
    m = ev["metrics"]
    assert ev["protocol"]["kind"] == "campaign"
    assert 0.15 < m["base_rate"] < 0.45
    assert abs(m["mean_prediction"] - m["base_rate"]) < 0.02
    assert m["roc_auc"] > 0.65
    # the model kept scores the appeal's population at its rate, not at the past months' rate
    p = model.predict_proba(_snapshot(appeal_data))[:, 1]
    assert p.mean() == pytest.approx(m["base_rate"], abs=0.02)


def test_past_months_give_the_wrong_rate(appeal_data):
    """What the review saw: trained on the months before, the appeal's rate is badly under-predicted."""
    from assoc_ai_core.people.tasks import train_people_model

    model = train_people_model(appeal_data, "donor-propensity", horizon_months=1, importance=False,
                               fairness_attributes=())
    m = model.metadata_["evaluation"]["metrics"]
    assert m["mean_prediction"] < m["base_rate"] - 0.08


def test_an_unfinished_campaign_is_refused(appeal_data):
    from assoc_ai_core.errors import DataError
    from assoc_ai_core.people.tasks import train_people_model

    with pytest.raises(DataError):
        train_people_model(appeal_data, "donor-propensity", horizon_months=3, as_of=APPEAL)


def test_report_shows_reliability_and_the_gap(appeal_data):
    from assoc_ai_core.people.report import calibration_in_the_large, render_people_report

    bins = [{"predicted": 0.05, "observed": 0.1, "n": 200}, {"predicted": 0.2, "observed": 0.4, "n": 100}]
    ev = {"task": "donor-propensity", "calibration": bins,
          "metrics": {"n": 748, "base_rate": 0.238, "mean_prediction": 0.107, "roc_auc": 0.7, "brier": 0.18,
                      "average_precision": 0.44}}
    page = render_people_report(ev, lang="en")
    assert "<svg" in page and "<polyline" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "mean probability 10.7" in page and "23.8" in page and "beyond chance" in page
    text, off = calibration_in_the_large({"n": 748, "base_rate": 0.238, "mean_prediction": 0.232}, "en")
    assert not off and "-0.6 points" in text
    text, off = calibration_in_the_large({"n": 748, "base_rate": 0.238, "mean_prediction": 0.107}, "fr")
    assert off and "points" in text


def _snapshot(data):
    import pandas as pd

    from assoc_ai_core.people.features import build_features

    return build_features(data, pd.Timestamp(APPEAL))
