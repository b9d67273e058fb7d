"""One auto-routing threshold per category: what training writes, what prediction uses, what loading refuses."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from assoc_ai_core.errors import ModelError
from assoc_ai_core.mail.thresholds import Calibration, category_thresholds
from assoc_ai_core.persistence import load_model, save_model


def test_a_category_gets_its_own_threshold_only_with_enough_messages() -> None:
    classes = np.array(["A", "B"])
    # A: 40 predictions, right above 0.6 and wrong below; B: 10 predictions (too few: the global threshold)
    conf = np.concatenate([np.linspace(0.3, 0.99, 40), np.linspace(0.5, 0.9, 10)])
    predicted = np.array(["A"] * 40 + ["B"] * 10)
    correct = np.concatenate([conf[:40] >= 0.6, np.ones(10, dtype=bool)])
    cal = Calibration(1.0, 0.8, 0.5, 0.95, predicted, conf, correct)
    per = category_thresholds(cal, classes, 0.95)
    assert 0.58 < per[0] < 0.62 and per[1] == 0.8


def test_prediction_uses_the_category_threshold(trained_model) -> None:
    model = copy.deepcopy(trained_model)
    text = "Je souhaite adhérer à l'association pour l'année."
    [pred] = model.predictions([text])
    k = list(model.classes_).index(pred.label)
    model.category_thresholds_ = np.full(len(model.classes_), 1.01)
    assert model.predictions([text])[0].decision == "review"
    model.category_thresholds_[k] = max(1e-6, pred.probability - 0.01)
    assert model.predictions([text])[0].decision == "auto"


@pytest.mark.parametrize("bad", [np.array([0.5]), np.array([np.nan] * 6), np.full(6, 2.0), "0.5"])
def test_a_file_with_bad_category_thresholds_is_refused(trained_model, tmp_path: Path, bad) -> None:
    model = copy.deepcopy(trained_model)
    model.category_thresholds_ = bad if not isinstance(bad, np.ndarray) or bad.size != 6 else bad[: len(
        model.classes_)]
    path = save_model(model, tmp_path / "m.skops")
    with pytest.raises(ModelError):
        load_model(path)
