"""Saving and loading people models with skops (no pickle), through :mod:`assoc_ai_core.persistence`.

The people models hold a few scikit-learn types beyond those of the mail
model; they are listed here, reviewed by hand, and passed as ``trusted`` so a
tampered file holding anything else is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from assoc_ai_core.i18n import tr

__all__ = [
    "PEOPLE_TRUSTED_TYPES", "save_people_model", "load_people_model", "people_model_problems", "is_people_model",
]

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
    """Load a people model, refusing any type outside the reviewed lists, another root class or bad parameters."""
    from assoc_ai_core.persistence import PEOPLE_MODEL, load_model

    return load_model(path, trusted=PEOPLE_TRUSTED_TYPES, expected=PEOPLE_MODEL, check=people_model_problems)


def people_model_problems(model: Any) -> list[str]:
    """What a loaded people model holds outside what training writes (empty: nothing).

    The rule for ``threshold_``: a finite number in [0, 1].  Unlike the mail
    threshold, 0 can be honest here (isotonic calibration gives 0 to some
    people, and the F1-best cut-off may then be 0) and nothing is done
    automatically on it: it only splits a list into "likely" and "unlikely".
    """
    import math

    problems: list[str] = []
    threshold = getattr(model, "threshold_", 0.5)
    if not isinstance(threshold, (int, float)) or not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
        problems.append(tr(f"seuil {threshold!r} hors de [0, 1]", f"threshold {threshold!r} outside [0, 1]"))
    if getattr(model, "kind", "logistic") not in ("logistic", "boosting"):
        problems.append(tr(f"type de modèle inconnu {model.kind!r}", f"unknown model kind {model.kind!r}"))
    return problems


def is_people_model(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a model file written for a people task (reads only its metadata)."""
    from assoc_ai_core.persistence import read_metadata

    try:
        meta = read_metadata(path)
    except Exception:  # not a model, unreadable, missing: simply not ours
        return False
    return meta.get("kind") == "people" or str(meta.get("model_class", "")).startswith("assoc_ai_core.people.")
