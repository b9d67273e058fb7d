"""Checks against known answers on small data in tests/fixtures/people (see its README).

The same checks on the real public sets (UCI blood donors, the BG/BB repeat-giving matrix, the KDD Cup 98 answer
key) live in ``bench/people_benchmarks.py``: those sets sit in the shared data folder beside the repository and may not be shipped in the repository.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

TRUE_BGBB = (1.20, 0.75, 0.66, 2.78)  # the published parameters the fixture counts were computed from


@pytest.fixture(scope="module")
def people_fixtures(fixtures_dir):
    return fixtures_dir / "people"


def test_blood_donors_five_fold(people_fixtures):
    from sklearn.model_selection import StratifiedKFold

    from assoc_ai_core.people.metrics import classification_metrics
    from assoc_ai_core.people.model import PeopleModel

    d = pd.read_csv(people_fixtures / "blood_donors.csv")
    assert len(d) == 240 and int(d.donated_again.sum()) == 91
    X = pd.DataFrame({"months_since_last_gift": d.recency_months, "gifts_total": d.frequency_times,
                      "months_since_first_gift": d.time_months})
    y = d.donated_again.to_numpy()
    p = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        model = PeopleModel(task="donor-propensity", log_features=("gifts_total",)).fit(X.iloc[train], y[train])
        p[test] = model.predict_proba(X.iloc[test])[:, 1]
        base, contrib = model.contributions(X.iloc[test])
        np.testing.assert_allclose(base + contrib.sum(axis=1), np.log(p[test] / (1 - p[test])), atol=1e-6)
    m = classification_metrics(y, p)
    assert m["roc_auc"] >= 0.75  # the rows were drawn from a logistic rule on recency and log(1 + frequency)
    assert m["brier"] < y.mean() * (1 - y.mean())
    assert abs(m["mean_prediction"] - m["base_rate"]) < 0.02
    exp = model.explain(X.iloc[:1], lang="fr")[0]
    assert "dernier don il y a 2 mois" in exp.sentence


def test_bgbb_likelihood_is_a_probability_over_every_history(people_fixtures):
    from assoc_ai_core.people.bgbb import bgbb_log_likelihood

    d = pd.read_csv(people_fixtures / "bgbb_expected_counts.csv")
    # The likelihood is that of one sequence of gifts; C(t_x - 1, x - 1) sequences share each (x, t_x).
    total = sum((math.comb(t - 1, x - 1) if x else 1) * math.exp(bgbb_log_likelihood(TRUE_BGBB, [x], [t], [n]))
                for x, t, n in zip(d.frequency, d.recency, d.periods, strict=True))
    assert total == pytest.approx(1.0, abs=1e-9)


def test_bgbb_recovers_the_parameters_its_counts_come_from(people_fixtures):
    from assoc_ai_core.people.bgbb import bgbb_log_likelihood, fit_bgbb

    d = pd.read_csv(people_fixtures / "bgbb_expected_counts.csv")
    assert int(d.weights.sum()) == 11105 and len(d) == 22
    args = (d.frequency, d.recency, d.periods, d.weights)
    fit = fit_bgbb(*args)
    assert fit.params == pytest.approx(TRUE_BGBB, abs=0.01)
    assert fit.log_likelihood >= bgbb_log_likelihood(TRUE_BGBB, *args) - 1e-6
    alive = fit.p_alive([6, 1, 0], [6, 1, 0], [6, 6, 6])
    assert alive[0] > 0.9 > alive[1] and alive[2] < 0.2
    assert fit.expected_gifts(5, [6], [6], [6])[0] == pytest.approx(3.75, abs=0.01)


def test_net_profit_on_a_hand_checked_answer_key(people_fixtures):
    from assoc_ai_core.people.metrics import net_profit

    d = pd.read_csv(people_fixtures / "mailing_answer_key.csv")
    assert len(d) == 12 and int(d.TARGET_B.sum()) == 4 and d.TARGET_D.sum() == pytest.approx(41.0)
    assert net_profit(d.TARGET_D, np.ones(len(d), dtype=bool)) == pytest.approx(41.0 - 12 * 0.68, abs=0.005)
    assert net_profit(d.TARGET_D, d.TARGET_B == 1) == pytest.approx(41.0 - 4 * 0.68, abs=0.005)
    # a responder whose gift is below the cost of the letter is better left out
    assert net_profit(d.TARGET_D, d.TARGET_D > 0.68) == pytest.approx(40.5 - 3 * 0.68, abs=0.005)
    assert net_profit(d.TARGET_D, np.zeros(len(d), dtype=bool)) == 0
