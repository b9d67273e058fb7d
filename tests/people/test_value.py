"""The gift-value (gamma-gamma) model: recovers known parameters, shrinks few-gift donors, saves safely."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest


def _donors(n: int = 3000, p: float = 6.0, q: float = 4.0, g: float = 15.0, seed: int = 0):
    """Donors drawn from the gamma-gamma model itself: each has a mean gift 1/nu, gifts vary around it."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    nu = rng.gamma(q, 1 / g, n)
    x = rng.integers(1, 8, n)
    m = np.array([rng.gamma(p, 1 / v, k).mean() for v, k in zip(nu, x, strict=True)])
    return pd.DataFrame({"frequency": x, "monetary": m})


def test_fit_recovers_the_population_mean_and_orders_donors():
    from assoc_ai_core.people.value import GiftValueModel

    table = _donors()
    model = GiftValueModel().fit(table)
    # the file's mean gift (p * gamma / (q - 1)) is what the model is for; true value 6 * 15 / 3 = 30
    assert model.population_mean_ == pytest.approx(30.0, rel=0.1)
    assert model.q_ > 1
    pred = model.predict(table)
    assert np.corrcoef(pred, table["monetary"])[0, 1] > 0.8


def test_one_gift_is_pulled_towards_the_mean_more_than_ten():
    import pandas as pd

    from assoc_ai_core.people.value import GiftValueModel

    model = GiftValueModel().fit(_donors())
    big = pd.DataFrame({"frequency": [1, 10], "monetary": [500.0, 500.0]})
    one, ten = model.predict(big)
    assert model.population_mean_ < one < ten < 500.0
    nobody = model.predict(pd.DataFrame({"frequency": [0], "monetary": [0.0]}))[0]
    assert nobody == pytest.approx(model.population_mean_)


def test_feature_table_columns_are_accepted():
    import pandas as pd

    from assoc_ai_core.people.value import GiftValueModel

    t = _donors(500)
    feats = pd.DataFrame({"gifts_total": t["frequency"], "amount_total": t["frequency"] * t["monetary"]})
    a = GiftValueModel().fit(t).predict(t)
    b = GiftValueModel().fit(feats).predict(feats)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_too_few_donors_is_a_clear_error():
    import pandas as pd

    from assoc_ai_core.errors import DataError
    from assoc_ai_core.people.value import GiftValueModel

    with pytest.raises(DataError, match="donateurs|donors"):
        GiftValueModel().fit(pd.DataFrame({"frequency": [1, 2], "monetary": [10.0, 20.0]}))


def test_saved_with_skops_and_loaded_back(tmp_path):
    from assoc_ai_core.people.value import GiftValueModel, load_value_model, save_value_model

    table = _donors(800)
    model = GiftValueModel().fit(table)
    path = save_value_model(model, tmp_path / "value.skops")
    with zipfile.ZipFile(path) as zf:
        assert "assoc_ai.json" in zf.namelist()
        assert not any(name.endswith(".pkl") for name in zf.namelist())
    again = load_value_model(path)
    np.testing.assert_allclose(again.predict(table), model.predict(table))


def test_a_people_model_file_is_not_taken_for_a_value_model(donor_model_path):
    from assoc_ai_core.errors import ModelError
    from assoc_ai_core.people.value import load_value_model

    with pytest.raises(ModelError):
        load_value_model(donor_model_path)
