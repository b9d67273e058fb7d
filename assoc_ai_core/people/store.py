"""Saving and loading people models with skops (no pickle), through :mod:`assoc_ai_core.persistence`.

The people models hold a few scikit-learn types beyond those of the mail
model; they are listed here, reviewed by hand, and passed as ``trusted`` so a
tampered file holding anything else is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ModelError
from assoc_ai_core.i18n import tr

__all__ = ["PEOPLE_TRUSTED_TYPES", "save_people_model", "load_people_model", "is_people_model"]

# Beyond skops' own defaults, only these appear in a people model (checked by tests/people/test_store.py).
PEOPLE_TRUSTED_TYPES: tuple[str, ...] = (
    "assoc_ai_core.people.model.PeopleModel",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "numpy.float64",
    "numpy.int64",
    "numpy.dtype",
    "builtins.slice",
)


def save_people_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write a people model (``.skops``) atomically."""
    from assoc_ai_core.persistence import save_model

    return save_model(model, path)


def load_people_model(path: str | os.PathLike[str]) -> Any:
    """Load a people model, refusing any type outside the reviewed lists."""
    from assoc_ai_core.people.model import PeopleModel
    from assoc_ai_core.persistence import load_model

    model = load_model(path, trusted=PEOPLE_TRUSTED_TYPES)
    if not isinstance(model, PeopleModel):
        raise ModelError(tr(f"{path} n'est pas un modèle de données de personnes.", f"{path} is not a people-data model."))
    return model


def is_people_model(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a model file written for a people task (reads only its metadata)."""
    from assoc_ai_core.persistence import read_metadata

    try:
        meta = read_metadata(path)
    except Exception:  # not a model, unreadable, missing: simply not ours
        return False
    return meta.get("kind") == "people" or str(meta.get("model_class", "")).startswith("assoc_ai_core.people.")
