"""assoc-ai core: learn an association's own mail categories, classify, explain, hand doubt to a human.

Public API::

    from assoc_ai_core import clean, train, predict, explain, explain_model, evaluate
    from assoc_ai_core import load_dataset, parse_message, save_model, load_model, hookimpl
    from assoc_ai_core import MailClassifier, Explanation, Message, Prediction, AssocAIError

The mail functions come from :mod:`assoc_ai_core.api`, which has a few more
(reading folders, the HTML report, explaining a prediction).

Names are resolved on first use, so ``import assoc_ai_core`` (and ``assoc-ai
--help``) does not import scikit-learn, numpy or pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "clean": "assoc_ai_core.api",
    "train": "assoc_ai_core.api",
    "predict": "assoc_ai_core.api",
    "explain": "assoc_ai_core.api",
    "explain_many": "assoc_ai_core.api",
    "explain_model": "assoc_ai_core.api",
    "evaluate": "assoc_ai_core.api",
    "load_dataset": "assoc_ai_core.api",
    "parse_message": "assoc_ai_core.api",
    "pseudonymise": "assoc_ai_core.api",
    "save_model": "assoc_ai_core.persistence",
    "load_model": "assoc_ai_core.persistence",
    "hookimpl": "assoc_ai_core.ext.hookspecs",
    "Message": "assoc_ai_core.records",
    "Prediction": "assoc_ai_core.records",
    "MailClassifier": "assoc_ai_core.api",
    "Explanation": "assoc_ai_core.api",
    "AssocAIError": "assoc_ai_core.errors",
}

# Written out (not built from _EXPORTS) so that linters and type checkers read it; a test checks both agree.
__all__ = [
    "__version__",
    "clean", "train", "predict", "explain", "explain_many", "explain_model", "evaluate",
    "load_dataset", "parse_message", "pseudonymise", "save_model", "load_model", "hookimpl",
    "Message", "Prediction", "MailClassifier", "Explanation", "AssocAIError",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines a public name on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'assoc_ai_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """The public names, for ``dir()`` and completion, though most are not imported yet."""
    return sorted(__all__)


if TYPE_CHECKING:  # static checkers see the real names
    from assoc_ai_core.api import (
        Explanation,
        MailClassifier,
        clean,
        evaluate,
        explain,
        explain_many,
        explain_model,
        load_dataset,
        parse_message,
        predict,
        pseudonymise,
        train,
    )
    from assoc_ai_core.errors import AssocAIError
    from assoc_ai_core.ext.hookspecs import hookimpl
    from assoc_ai_core.persistence import load_model, save_model
    from assoc_ai_core.records import Message, Prediction
