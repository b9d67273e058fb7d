"""Saving and loading models without pickle.

Models are written with skops, which stores the *structure* of scikit-learn
objects and refuses, on load, any type not on a trusted list: opening a model
file received from elsewhere cannot run code.  Our own classes are trusted by
name below; anything else makes :func:`load_model` stop with
:class:`~assoc_ai_core.errors.UntrustedModelError`.

A small ``assoc_ai.json`` member is added to the skops zip so a model's
versions can be read (and compatibility checked) before the model is built.

A file is checked before anything is built from it (:func:`read_model_file`):
it is read once into memory (so what is checked is what is built), every zip
member's size is bounded from the zip directory and again while it is read,
``schema.json`` and ``assoc_ai.json`` must be there, no array may hold
pickled objects, and the skops protocol must be one this install reads.  Once
built, the root object must be the expected class (:data:`MAIL_MODEL`,
:data:`PEOPLE_MODEL`) and, when its class offers ``validate_loaded()``, its
parameters must pass it.  Every refusal is a :class:`~assoc_ai_core.errors.ModelError`
(exit code 7).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import IncompatibleModelError, ModelError, UntrustedModelError
from assoc_ai_core.files import atomic_write, private_dir
from assoc_ai_core.i18n import tr

log = logging.getLogger(__name__)

__all__ = [
    "META_MEMBER", "SCHEMA_MEMBER", "TRUSTED_TYPES", "FORMAT_VERSION", "MAIL_MODEL", "PEOPLE_MODEL",
    "MAX_META_BYTES", "MAX_SCHEMA_BYTES", "MAX_MODEL_BYTES", "MAX_INFLATION", "ModelFile",
    "save_model", "read_metadata", "read_model_file", "build_model", "load_model",
]

META_MEMBER = "assoc_ai.json"
SCHEMA_MEMBER = "schema.json"

# Root classes a model file may hold, by the name the file records.
MAIL_MODEL = "assoc_ai_core.mail.model.MailClassifier"
PEOPLE_MODEL = "assoc_ai_core.people.model.PeopleModel"
_KINDS = {
    MAIL_MODEL: ("un modèle de courrier (MailClassifier)", "a mail model (MailClassifier)"),
    PEOPLE_MODEL: ("un modèle de données de personnes (PeopleModel)", "a people-data model (PeopleModel)"),
}

# Size limits, checked from the zip directory before a member is read and again while reading it.  The
# metadata of a 100,000-message model is a few megabytes and its skops schema under one (the vocabularies
# are arrays, not schema nodes); the whole model, arrays included, stays far below the total.
MAX_META_BYTES = 32 << 20
MAX_SCHEMA_BYTES = 64 << 20
MAX_MODEL_BYTES = 4 << 30
# save_model stores members uncompressed (ratio 1); a file inflating far beyond its own size is a zip bomb.
MAX_INFLATION = 100

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


# ============================================================================ reading a file safely
def _not_a_model(p: Path, why: str, why_en: str) -> ModelError:
    return ModelError(tr(f"{p} n'est pas un modèle assoc-ai ({why}).", f"{p} is not an assoc-ai model ({why_en})."))


def _missing(p: Path) -> ModelError:
    return ModelError(tr(
        f"Modèle introuvable : {p}. Entraînez-en un avec « assoc-ai train DONNÉES -o {p} ».",
        f"Model not found: {p}. Train one with 'assoc-ai train DATA -o {p}'.",
    ))


def _read_member(zf: zipfile.ZipFile, name: str, limit: int, p: Path) -> bytes:
    """One member, refused when the zip directory or the inflated bytes exceed ``limit``."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _not_a_model(p, f"« {name} » absent", f"no '{name}' inside") from None
    too_big = _not_a_model(p, f"« {name} » dépasse {limit >> 20} Mio", f"'{name}' exceeds {limit >> 20} MiB")
    if info.file_size > limit:
        raise too_big
    out = bytearray()
    with zf.open(info) as fh:
        while chunk := fh.read(1 << 20):
            out += chunk
            if len(out) > limit:  # the directory lied about the size
                raise too_big
    return bytes(out)


def _json_object(raw: bytes, p: Path, name: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _not_a_model(p, f"« {name} » illisible : {exc}", f"unreadable '{name}': {exc}") from exc
    if not isinstance(value, dict):
        raise _not_a_model(p, "métadonnées illisibles" if name == META_MEMBER else f"« {name} » n'est pas un objet",
                           "unreadable metadata" if name == META_MEMBER else f"'{name}' is not an object")
    return value


def _open_zip(source: Path | bytes, p: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _not_a_model(p, str(exc) or type(exc).__name__, str(exc) or type(exc).__name__) from exc


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata stored beside a model, without building the model (read with a size limit)."""
    p = Path(path)
    if not p.is_file():
        raise _missing(p)
    with _open_zip(p, p) as zf:
        try:
            raw = _read_member(zf, META_MEMBER, MAX_META_BYTES, p)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # corrupt member (CRC, truncation)
            raise _not_a_model(p, str(exc), str(exc)) from exc
    return _json_object(raw, p, META_MEMBER)


@dataclass(frozen=True)
class ModelFile:
    """A model file read once into memory and checked, not yet built."""

    path: Path
    data: bytes = field(repr=False)
    schema: dict[str, Any] = field(repr=False)
    metadata: dict[str, Any]

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the file's bytes (what a model registry records)."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def root_class(self) -> str:
        """Full name of the object the file holds at its root, as the file records it."""
        return f"{self.schema.get('__module__', '?')}.{self.schema.get('__class__', '?')}"


def _check_arrays(zf: zipfile.ZipFile, p: Path) -> None:
    """Refuse arrays of Python objects (pickle inside) and arrays whose header promises more than the data."""
    import numpy as np

    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        try:
            with zf.open(info) as fh:
                major, _minor = np.lib.format.read_magic(fh)
                if major not in (1, 2):  # np.save writes 3.0 only for non-Latin-1 field names, which we never have
                    raise ValueError(f"npy format {major}")
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _fortran, dtype = read_header(fh)
                header_end = fh.tell()
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise _not_a_model(p, f"tableau {info.filename} illisible : {exc}",
                               f"unreadable array {info.filename}: {exc}") from exc
        if dtype.hasobject:
            raise UntrustedModelError(tr(
                f"{p} contient un tableau d'objets Python ({info.filename}) : il faudrait pickle pour le lire, "
                "ce qui peut exécuter du code. Fichier refusé ; n'utilisez que des modèles écrits par assoc-ai.",
                f"{p} holds an array of Python objects ({info.filename}): reading it needs pickle, which can run "
                "code. File refused; use only models written by assoc-ai.",
            ))
        if math.prod(shape) * dtype.itemsize != info.file_size - header_end:  # Python ints: no overflow
            raise _not_a_model(p, f"tableau {info.filename} tronqué ou gonflé", f"array {info.filename} truncated or padded")


def _check_protocol(schema: dict[str, Any], p: Path) -> None:
    from skops.io._protocol import PROTOCOL

    theirs = schema.get("protocol")
    if not isinstance(theirs, int) or theirs > PROTOCOL:
        import skops

        raise IncompatibleModelError(tr(
            f"{p} a été écrit par skops {schema.get('_skops_version', '?')} (protocole {theirs}) ; "
            f"skops {skops.__version__} installé ici lit jusqu'au protocole {PROTOCOL}. "
            "Mettez skops à jour (pip install -U skops) ou ré-entraînez le modèle ici.",
            f"{p} was written by skops {schema.get('_skops_version', '?')} (protocol {theirs}); "
            f"skops {skops.__version__} installed here reads up to protocol {PROTOCOL}. "
            "Upgrade skops (pip install -U skops) or retrain the model here.",
        ))


def read_model_file(path: str | os.PathLike[str], *, data: bytes | None = None) -> ModelFile:
    """Read a model file into memory and check its structure, without building anything.

    ``data``: the file's bytes when the caller already read them (e.g. to
    check a digest first).  Raises :class:`ModelError` (exit 7) for a missing,
    oversized, malformed or pickle-carrying file, :class:`IncompatibleModelError`
    for a newer skops protocol or model format.
    """
    p = Path(path)
    if data is None:
        if not p.is_file():
            raise _missing(p)
        if p.stat().st_size > MAX_MODEL_BYTES:  # checked before reading it into memory
            raise _not_a_model(p, f"plus de {MAX_MODEL_BYTES >> 30} Gio", f"over {MAX_MODEL_BYTES >> 30} GiB")
        data = p.read_bytes()
    if len(data) > MAX_MODEL_BYTES:
        raise _not_a_model(p, f"plus de {MAX_MODEL_BYTES >> 30} Gio", f"over {MAX_MODEL_BYTES >> 30} GiB")
    with _open_zip(data, p) as zf:
        inflated = sum(i.file_size for i in zf.infolist())
        if inflated > MAX_MODEL_BYTES or inflated > MAX_INFLATION * len(data):
            raise _not_a_model(
                p, f"{inflated >> 20} Mio une fois décompressé, plus de {MAX_INFLATION} fois sa taille ou de "
                f"{MAX_MODEL_BYTES >> 30} Gio", f"{inflated >> 20} MiB once inflated, over {MAX_INFLATION} times "
                f"its size or {MAX_MODEL_BYTES >> 30} GiB")
        try:
            meta = _json_object(_read_member(zf, META_MEMBER, MAX_META_BYTES, p), p, META_MEMBER)
            schema = _json_object(_read_member(zf, SCHEMA_MEMBER, MAX_SCHEMA_BYTES, p), p, SCHEMA_MEMBER)
            _check_arrays(zf, p)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # corrupt member (CRC, truncation)
            raise _not_a_model(p, str(exc), str(exc)) from exc
    _check_protocol(schema, p)
    _check_format(meta, p)
    return ModelFile(p, data, schema, meta)


def _check_format(meta: dict[str, Any], p: Path) -> None:
    ours = _format_version()
    try:
        theirs = int(meta.get("format_version", 0) or 0)
    except (TypeError, ValueError):
        theirs = -1
    if theirs != ours:
        raise IncompatibleModelError(tr(
            f"{p} a été écrit par assoc-ai {meta.get('assoc_ai_version', '?')} (format {theirs}) ; "
            f"cette version lit le format {ours}. Ré-entraînez le modèle (assoc-ai train ...) "
            "ou installez la version qui l'a créé.",
            f"{p} was written by assoc-ai {meta.get('assoc_ai_version', '?')} (format {theirs}); "
            f"this version reads format {ours}. Retrain the model (assoc-ai train ...) "
            "or install the version that made it.",
        ))


def _warn_if_newer(meta: dict[str, Any], p: Path) -> None:
    """One warning line when the file claims a newer assoc-ai or scikit-learn than the installed one.

    Logged, not a Python warning: the command line and the scheduled job show
    log records as one line each, where a warning would add its source line.
    """
    import sklearn
    from packaging.version import InvalidVersion, Version

    from assoc_ai_core import __version__

    for key, name, installed in (("assoc_ai_version", "assoc-ai", __version__),
                                 ("sklearn_version", "scikit-learn", sklearn.__version__)):
        try:
            newer = Version(str(meta[key])) > Version(installed)
        except (KeyError, InvalidVersion):
            continue
        if newer:
            log.warning(tr(
                f"{p.name} a été écrit par {name} {meta[key]}, plus récent que {installed} installé ici : "
                "mettez à jour ou vérifiez ses prédictions.",
                f"{p.name} was written by {name} {meta[key]}, newer than {installed} installed here: "
                "upgrade or check its predictions.",
            ))


# ============================================================================ building the model
def _check_root(file: ModelFile, expected: str) -> None:
    if file.root_class != expected:
        fr, en = _KINDS.get(expected, (expected, expected))
        raise ModelError(tr(
            f"{file.path} contient un objet {file.root_class}, pas {fr} : seuls les fichiers écrits par "
            "assoc-ai (assoc-ai train) se chargent ici.",
            f"{file.path} holds a {file.root_class} object, not {en}: only files written by assoc-ai "
            "(assoc-ai train) load here.",
        ))


def _untrusted(file: ModelFile, allowed: set[str]) -> list[str]:
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(data=file.data)
    except Exception as exc:  # skops could not walk the schema: a node type this version does not know
        raise IncompatibleModelError(tr(
            f"{file.path} : structure illisible par cette version de skops ({exc}). "
            "Mettez skops à jour ou ré-entraînez le modèle ici.",
            f"{file.path}: structure this version of skops cannot read ({exc}). "
            "Upgrade skops or retrain the model here.",
        )) from exc
    return [t for t in found if t not in allowed]


def _validate(model: Any, file: ModelFile, check: Callable[[Any], Sequence[str]] | None) -> None:
    """Refuse parameters outside what our own training writes (``check``, or the class's ``validate_loaded``)."""
    validate = check or getattr(type(model), "validate_loaded", None)
    problems = list(validate(model)) if callable(validate) else []
    if problems:
        raise ModelError(tr(
            f"{file.path} refusé, paramètres hors de ce qu'assoc-ai écrit : {' ; '.join(problems)}. "
            "Ré-entraînez le modèle.",
            f"{file.path} refused, parameters outside what assoc-ai writes: {'; '.join(problems)}. "
            "Retrain the model.",
        ))


def build_model(file: ModelFile, *, trusted: Sequence[str] = (), expected: str = MAIL_MODEL,
                check: Callable[[Any], Sequence[str]] | None = None) -> Any:
    """Build the object of a checked :class:`ModelFile`: trusted types only, the ``expected`` root class,
    parameters validated (by ``check``, else by the class's ``validate_loaded()``: each returns the problems)."""
    import skops.io as sio

    allowed = set(TRUSTED_TYPES) | set(trusted)
    untrusted = _untrusted(file, allowed)
    if untrusted:
        raise UntrustedModelError(tr(
            f"{file.path} contient des types non approuvés : {', '.join(untrusted)}. "
            "Ne chargez ce fichier que si vous en connaissez l'origine (paramètre trusted=).",
            f"{file.path} holds untrusted types: {', '.join(untrusted)}. "
            "Load it only if you know where it comes from (trusted= parameter).",
        ))
    _check_root(file, expected)
    _warn_if_newer(file.metadata, file.path)
    try:
        model = sio.loads(file.data, trusted=sorted(allowed))  # every type the file holds is in ``allowed`` now
    except Exception as exc:  # a structure this version cannot rebuild
        raise IncompatibleModelError(tr(
            f"Impossible de reconstruire {file.path} (écrit avec scikit-learn "
            f"{file.metadata.get('sklearn_version', '?')}) : {exc}. Ré-entraînez le modèle avec cette version.",
            f"Cannot rebuild {file.path} (written with scikit-learn "
            f"{file.metadata.get('sklearn_version', '?')}): {exc}. Retrain the model with this version.",
        )) from exc
    if f"{type(model).__module__}.{type(model).__qualname__}" != expected:  # the schema said otherwise
        raise ModelError(tr(f"{file.path} ne contient pas {_KINDS.get(expected, (expected,))[0]}.",
                            f"{file.path} does not hold {_KINDS.get(expected, ('', expected))[1]}."))
    _validate(model, file, check)
    return model


def load_model(path: str | os.PathLike[str], *, trusted: Sequence[str] = (), expected: str = MAIL_MODEL,
               check: Callable[[Any], Sequence[str]] | None = None) -> Any:
    """Load a model saved by :func:`save_model`, refusing untrusted types.

    ``trusted`` adds type names you have reviewed (e.g. a plugin's own
    transformer); ``expected`` is the class the file must hold at its root
    (:data:`MAIL_MODEL` by default, :data:`PEOPLE_MODEL` for people data);
    ``check`` returns what is wrong with the built model's parameters (default:
    the class's own ``validate_loaded()``, when it has one).
    Raises :class:`UntrustedModelError` listing the types that were refused,
    :class:`IncompatibleModelError` for a model written by an incompatible
    version, and :class:`ModelError` for a malformed file, another root class
    or refused parameters.  A file claiming a newer assoc-ai or scikit-learn
    loads, with one warning line in the log (``assoc_ai_core.persistence``).
    """
    return build_model(read_model_file(path), trusted=trusted, expected=expected, check=check)
