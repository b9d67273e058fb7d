"""assoc-ai core: learn an association's own mail categories, classify, explain, hand doubt to a human.

Public API::

    from assoc_ai_core import clean, train, predict, explain, explain_model, evaluate
    from assoc_ai_core import load_dataset, parse_message, save_model, load_model, hookimpl
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import clean, evaluate, explain, explain_many, explain_model, predict, train  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .parsing import parse_message  # noqa: E402
from .persistence import load_model, save_model  # noqa: E402
from .pseudonymise import pseudonymise  # noqa: E402
from .records import Message, Prediction  # noqa: E402
from .sources import load_dataset  # noqa: E402

__all__ = [
    "__version__", "clean", "train", "predict", "explain", "explain_many", "explain_model", "evaluate",
    "load_dataset", "parse_message", "save_model", "load_model", "pseudonymise",
    "hookimpl", "Message", "Prediction",
]
