"""The categories' own names as training examples.

A volunteer who named a folder "Bénévolat" said what it holds; with a few
examples per category this counts.  Each name (its last folder, split at
capitals, dashes and underscores) becomes one more short training row of its
category, added after the messages so it is never scored in the
cross-validation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from assoc_ai_core.mail.parsing import message_from_text
from assoc_ai_core.mail.stopwords import WORD_TOKEN

__all__ = ["NAME_WORD_MAX_DF", "label_text", "distinctive_names", "name_rows"]

NAME_WORD_MAX_DF = 0.25


def label_text(label: str) -> str:
    """A category's own name as words: "QuestionGenerale" → "Question Generale", "Dons/recus_fiscaux" → "recus fiscaux".

    In a folder path only the last folder names the category: its parents are
    shared with their other sub-folders, so they would pull toward one of them.
    """
    name = re.split(r"[/\\]", str(label).rstrip("/\\"))[-1]
    text = re.sub(r"(?<=[a-zà-ÿ])(?=[A-ZÀ-Þ])", " ", name)
    return " ".join(re.sub(r"[_\-.]+", " ", text).split())


def distinctive_names(names: list[str], texts: Sequence[str] | np.ndarray) -> list[str]:
    """Category names without the words found in more than ``NAME_WORD_MAX_DF`` of the messages.

    A name is one short row, so each of its words weighs a lot; a word that
    most mail holds ("enron" in a folder "enron_t_s" of an Enron employee, the
    association's own name) would pull everything toward that category.
    """
    words = {w.lower() for n in names for w in n.split()}
    if not words or not len(texts):
        return names
    token = re.compile(WORD_TOKEN)
    seen: dict[str, int] = dict.fromkeys(words, 0)
    for text in texts:
        for w in words.intersection(token.findall(str(text).lower())):
            seen[w] += 1
    common = {w for w, k in seen.items() if k > NAME_WORD_MAX_DF * len(texts)}
    return [" ".join(w for w in n.split() if w.lower() not in common) for n in names]


def name_rows(cleaner: Any, classes: np.ndarray, cleaned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cleaned rows of the categories' names, and their categories (names left empty are skipped).

    ``cleaner`` is the fitted :class:`~assoc_ai_core.mail.cleaning.TextCleaner`
    that cleaned the messages into ``cleaned``.
    """
    names = distinctive_names([label_text(c) for c in classes], cleaned[:, 0])
    named = np.flatnonzero([bool(t) for t in names])
    # The name once, as the body: written as subject and body too it made pairs like "presse presse"
    # that topped the model's terms in the report.
    rows = cleaner.transform([message_from_text(names[i]) for i in named]) \
        if len(named) else np.empty((0, cleaned.shape[1]), dtype=object)
    return rows, classes[named].astype(object)
