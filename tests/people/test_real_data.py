"""Checks on real public data from ../shared: blood donors (UCI), repeat giving (BG/BB), a mailing answer key (KDD Cup 98)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def test_uci_blood_donors_five_fold(shared_dir):
    from sklearn.model_selection import StratifiedKFold

    from assoc_ai_core.people.metrics import classification_metrics
    from assoc_ai_core.people.model import PeopleModel

    d = pd.read_csv(shared_dir / "data" / "uci_blood_transfusion" / "transfusion.csv")
    assert len(d) == 748 and int(d.donated_march_2007.sum()) == 178
    X = pd.DataFrame({"months_since_last_gift": d.recency_months, "gifts_total": d.frequency_times,
                      "months_since_first_gift": d.time_months})
    y = d.donated_march_2007.to_numpy()
    p = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        model = PeopleModel(task="donor-propensity", log_features=("gifts_total",)).fit(X.iloc[train], y[train])
        p[test] = model.predict_proba(X.iloc[test])[:, 1]
        base, contrib = model.contributions(X.iloc[test])
        np.testing.assert_allclose(base + contrib.sum(axis=1), np.log(p[test] / (1 - p[test])), atol=1e-6)
    m = classification_metrics(y, p)
    assert m["roc_auc"] >= 0.75  # the folder's own logistic baseline is 0.752 ± 0.031
    assert m["brier"] < y.mean() * (1 - y.mean())
    assert abs(m["mean_prediction"] - m["base_rate"]) < 0.02
    exp = model.explain(X.iloc[:1], lang="fr")[0]
    assert "dernier don il y a 2 mois" in exp.sentence


def test_bgbb_reproduces_the_published_parameters(shared_dir):
    from assoc_ai_core.people.bgbb import bgbb_log_likelihood, fit_bgbb

    d = pd.read_csv(shared_dir / "data" / "lifetimes_donations_bgbb" / "donations.csv")
    assert int(d.weights.sum()) == 11104
    args = (d.frequency, d.recency, d.periods, d.weights)
    assert bgbb_log_likelihood((1.20, 0.75, 0.66, 2.78), *args) == pytest.approx(-33225.68, abs=0.01)
    fit = fit_bgbb(*args)
    assert fit.params == pytest.approx((1.20, 0.75, 0.66, 2.78), abs=0.01)
    assert fit.log_likelihood >= -33225.60
    alive = fit.p_alive([6, 1, 0], [6, 1, 0], [6, 6, 6])
    assert alive[0] > 0.9 > alive[1] and alive[2] < 0.2
    assert fit.expected_gifts(5, [6], [6], [6])[0] == pytest.approx(3.75, abs=0.01)


def test_kdd98_net_profit_reference_values(shared_dir):
    from assoc_ai_core.people.metrics import net_profit

    d = pd.read_csv(shared_dir / "data" / "kddcup98_valtargt" / "valtargt.txt")
    assert len(d) == 96367 and int(d.TARGET_B.sum()) == 4873
    assert net_profit(d.TARGET_D, np.ones(len(d), dtype=bool)) == pytest.approx(10560.08, abs=0.005)
    assert net_profit(d.TARGET_D, d.TARGET_B == 1) == pytest.approx(72776.00, abs=0.005)
    assert net_profit(d.TARGET_D, np.zeros(len(d), dtype=bool)) == 0
