"""Saving and loading models without pickle.

Models are written with skops, which stores the *structure* of scikit-learn
objects and refuses, on load, any type not on a trusted list: opening a model
file received from elsewhere cannot run code.  Our own classes are trusted by
name below; anything else makes :func:`load_model` stop with
:class:`~assoc_ai_core.errors.UntrustedModelError`.

A small ``assoc_ai.json`` member is added to the skops zip so a model's
versions can be read (and compatibility checked) before the model is built.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import IncompatibleModelError, ModelError, UntrustedModelError
from assoc_ai_core.files import atomic_write, private_dir
from assoc_ai_core.i18n import tr

META_MEMBER = "assoc_ai.json"

# Types our models contain beyond skops' defaults; reviewed by hand, extend with care.
TRUSTED_TYPES: tuple[str, ...] = (
    "assoc_ai_core.mail.model.MailClassifier",
    "assoc_ai_core.mail.model._QuietLogisticRegression",
    "assoc_ai_core.mail.model.CompactTfidfVectorizer",
    "assoc_ai_core.mail.model.OptionalTfidfVectorizer",
    "assoc_ai_core.mail.cleaning.TextCleaner",
    "assoc_ai_core.mail.embeddings.SentenceEmbedder",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.CountVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "builtins.frozenset",
    "numpy.float32",
    "numpy.float64",
    "numpy.int64",
    "numpy.dtype",
    "builtins.slice",
)


# The model-file format: bumped when a saved model can no longer be read by this code.
FORMAT_VERSION = 1


def _format_version() -> int:
    return FORMAT_VERSION


def save_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` (``.skops``) atomically, mode 0600, and return the path.

    A folder created for it is mode 0700: a model's vocabulary can hold words
    of the mail it learnt from.
    """
    import skops.io as sio

    target = Path(path)
    private_dir(target.parent)
    meta = dict(getattr(model, "metadata_", {}) or {})
    meta.setdefault("format_version", _format_version())
    meta["model_class"] = f"{type(model).__module__}.{type(model).__qualname__}"
    buffer = io.BytesIO()  # built in memory so the file on disk is only ever complete
    sio.dump(model, buffer)
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr(META_MEMBER, json.dumps(meta, ensure_ascii=False, indent=1, default=str))
    return atomic_write(target, buffer.getvalue())


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata stored beside a model, without building the model."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(tr(
            f"Modèle introuvable : {p}. Entraînez-en un avec « assoc-ai train DONNÉES -o {p} ».",
            f"Model not found: {p}. Train one with 'assoc-ai train DATA -o {p}'.",
        ))
    try:
        with zipfile.ZipFile(p) as zf:
            meta = json.loads(zf.read(META_MEMBER).decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ModelError(tr(
            f"{p} n'est pas un modèle assoc-ai ({exc}).",
            f"{p} is not an assoc-ai model ({exc}).",
        )) from exc
    if not isinstance(meta, dict):
        raise ModelError(tr(
            f"{p} n'est pas un modèle assoc-ai (métadonnées illisibles).",
            f"{p} is not an assoc-ai model (unreadable metadata).",
        ))
    return meta


def load_model(path: str | os.PathLike[str], *, trusted: Sequence[str] = ()) -> Any:
    """Load a model saved by :func:`save_model`, refusing untrusted types.

    ``trusted`` adds type names you have reviewed (e.g. a plugin's own
    transformer).  Raises :class:`UntrustedModelError` listing the types that
    were refused, and :class:`IncompatibleModelError` for a model written by
    an incompatible version.
    """
    import skops.io as sio

    p = Path(path)
    meta = read_metadata(p)
    ours = _format_version()
    theirs = int(meta.get("format_version", 0) or 0)
    if theirs != ours:
        raise IncompatibleModelError(tr(
            f"{p} a été écrit par assoc-ai {meta.get('assoc_ai_version', '?')} (format {theirs}) ; "
            f"cette version lit le format {ours}. Ré-entraînez le modèle (assoc-ai train ...) "
            "ou installez la version qui l'a créé.",
            f"{p} was written by assoc-ai {meta.get('assoc_ai_version', '?')} (format {theirs}); "
            f"this version reads format {ours}. Retrain the model (assoc-ai train ...) "
            "or install the version that made it.",
        ))
    allowed = set(TRUSTED_TYPES) | set(trusted)
    untrusted = [t for t in sio.get_untrusted_types(file=p) if t not in allowed]
    if untrusted:
        raise UntrustedModelError(tr(
            f"{p} contient des types non approuvés : {', '.join(untrusted)}. "
            "Ne chargez ce fichier que si vous en connaissez l'origine (paramètre trusted=).",
            f"{p} holds untrusted types: {', '.join(untrusted)}. "
            "Load it only if you know where it comes from (trusted= parameter).",
        ))
    try:
        model = sio.load(p, trusted=sorted(allowed | set(sio.get_untrusted_types(file=p))))
    except Exception as exc:  # a structure this version cannot rebuild
        raise IncompatibleModelError(tr(
            f"Impossible de reconstruire {p} (écrit avec scikit-learn {meta.get('sklearn_version', '?')}) : {exc}. "
            "Ré-entraînez le modèle avec cette version.",
            f"Cannot rebuild {p} (written with scikit-learn {meta.get('sklearn_version', '?')}): {exc}. "
            "Retrain the model with this version.",
        )) from exc
    return model
