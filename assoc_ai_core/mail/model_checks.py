"""Checks a loaded mail model must pass: a file of trusted types can still carry harmful values.

Kept apart from :mod:`~assoc_ai_core.mail.model` so the rules read in one place; the model calls them from
:meth:`~assoc_ai_core.mail.model.MailClassifier.validate_loaded`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from assoc_ai_core.i18n import tr
from assoc_ai_core.mail.cleaning import FINGERPRINT_HEX
from assoc_ai_core.mail.stopwords import WORD_TOKEN

__all__ = ["loaded_model_problems", "LOADABLE_TOKEN_PATTERNS"]


def loaded_model_problems(model: Any) -> list[str]:
    """What a loaded mail model holds outside what ``fit`` writes (empty: nothing).

    A file of trusted types can still carry harmful values.  Rules: ``threshold_`` finite with
    0 < threshold ≤ 1.01 (a probability; 1.01 is what training writes when no cut-off reaches the target
    precision: everything to review); ``temperature_`` finite and > 0; each vectorizer's ``token_pattern``
    in :data:`LOADABLE_TOKEN_PATTERNS`, analyzer ``word``, ``char`` or ``char_wb``, n-grams within 1 to 5,
    no custom tokenizer or preprocessor; ``sender_key_id_`` absent (a model from before keyed sender tokens),
    None or a key fingerprint (``FINGERPRINT_HEX`` lower-case hex digits).
    """
    threshold, temperature = getattr(model, "threshold_", None), getattr(model, "temperature_", None)
    problems = [] if 0.0 < _finite(threshold) <= 1.01 else [
        tr(f"seuil {threshold!r} hors de ]0 ; 1,01]", f"threshold {threshold!r} outside (0, 1.01]")]
    per = getattr(model, "category_thresholds_", None)
    if per is not None:
        values = np.asarray(per, dtype=np.float64) if isinstance(per, np.ndarray | list | tuple) else None
        classes = getattr(model, "classes_", None)
        if (values is None or values.ndim != 1 or classes is None or len(values) != len(classes)
                or not np.all(np.isfinite(values)) or not np.all((values > 0.0) & (values <= 1.01))):
            problems.append(tr("seuils par catégorie invalides (un par catégorie, dans ]0 ; 1,01])",
                               "per-category thresholds invalid (one per category, within (0, 1.01])"))
    key_id = getattr(model, "sender_key_id_", None)
    if key_id is not None and not (isinstance(key_id, str) and _FINGERPRINT.fullmatch(key_id)):
        problems.append(tr(f"empreinte de clé d'expéditeurs {str(key_id)[:40]!r} invalide",
                           f"sender key fingerprint {str(key_id)[:40]!r} invalid"))
    if not _finite(temperature) > 0.0:
        problems.append(tr(f"température {temperature!r} non positive", f"temperature {temperature!r} not positive"))
    features = dict(getattr(getattr(model, "pipeline_", None), "steps", [])).get("features")
    for attr in ("transformers", "transformers_"):  # as declared and as fitted
        for name, vec, *_ in getattr(features, attr, None) or []:
            if not isinstance(vec, TfidfVectorizer):
                continue
            ngrams = tuple(vec.ngram_range) if isinstance(vec.ngram_range, (tuple, list)) else ()
            if (vec.token_pattern not in LOADABLE_TOKEN_PATTERNS or vec.analyzer not in ("word", "char", "char_wb")
                    or len(ngrams) != 2 or not all(isinstance(k, (int, np.integer)) for k in ngrams)
                    or not 1 <= ngrams[0] <= ngrams[1] <= 5 or vec.tokenizer or vec.preprocessor):
                shown = f"{str(vec.token_pattern)[:60]!r}, {vec.analyzer!r}, {vec.ngram_range!r}"
                problems.append(tr(f"{name} : motif de mots, analyseur ou n-grammes refusés ({shown})",
                                   f"{name}: token pattern, analyzer or n-grams refused ({shown})"))
    return problems


_FINGERPRINT = re.compile(rf"[0-9a-f]{{{FINGERPRINT_HEX}}}")

# The token patterns build_features writes, plus scikit-learn's default that the character vectorizer keeps unused.
# the word pattern of models written before "don't" was kept whole: an association's live model must still load
WORD_TOKEN_BEFORE_CONTRACTIONS = r"(?u)\b\w[\w-]*\w\b"
LOADABLE_TOKEN_PATTERNS = frozenset({WORD_TOKEN, WORD_TOKEN_BEFORE_CONTRACTIONS, r"\S+", r"(?u)\b\w\w+\b"})


def _finite(value: Any) -> float:
    """``value`` as a float when it is a finite real number, else NaN (which fails every comparison)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return float(value) if ok and np.isfinite(value) else float("nan")
