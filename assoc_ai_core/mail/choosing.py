"""Which mail to ask a person about next, when few or no mails are sorted yet (the labelling page).

Two ideas, measured by ``bench/label_choice.py``:

* **uncertain first**: once a model exists, the mail whose two most probable
  categories are closest (smallest margin of ``predict_proba``) teaches it the
  most; a mail it already routes with confidence teaches it little;
* **diverse**: two near-identical mails teach hardly more than one, so each
  choice is weighed by its distance (TF-IDF cosine) to every mail already
  seen.  Before a model exists, this is all there is, tempered by how
  *typical* a mail is (its similarity to the mailbox's centroid): the first
  questions cover the common kinds of mail before the odd ones.

The same module estimates what the page shows as progress: the share of mail
that would be routed automatically at the target precision, from the model's
own cross-validation on the labels given so far.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from assoc_ai_core.mail.stopwords import ENGLISH_STOP_WORDS, FRENCH_STOP_WORDS, WORD_TOKEN
from assoc_ai_core.records.mail import Message

__all__ = [
    "text_space", "uncertainty", "choose_mail", "model_ready", "expected_auto_share", "MIN_PER_CATEGORY",
    "SHORTLIST_FACTOR", "LABEL_COLUMNS", "read_labels_csv", "labels_csv_text", "apply_labels",
]

MIN_PER_CATEGORY = 2  # what MailClassifier needs of at least two categories to learn at all
SHORTLIST_FACTOR = 5  # the most uncertain mails, this many per choice, are the ones weighed for diversity
SHORTLIST_MIN = 20
LABEL_COLUMNS = ("key", "path", "category", "labelled_at")


def text_space(texts: Sequence[str]) -> sp.csr_matrix:
    """Rows of L2-normalised TF-IDF word vectors of ``texts`` (the cleaned mails): the space distances live in.

    A space of its own, not the model's features: it exists before any model
    does, and stays the same while the model changes under it.
    """
    stop = sorted(FRENCH_STOP_WORDS | ENGLISH_STOP_WORDS)
    vec = TfidfVectorizer(sublinear_tf=True, token_pattern=WORD_TOKEN, stop_words=stop, min_df=1,
                          dtype=np.float32)
    try:
        matrix = vec.fit_transform([t or "" for t in texts])
    except ValueError:  # no word at all in any text (empty mails): every mail is as far as any other
        matrix = sp.csr_matrix((len(texts), 1), dtype=np.float32)
    return sp.csr_matrix(matrix)


def uncertainty(proba: np.ndarray) -> np.ndarray:
    """1 − margin between the two most probable categories of each row (1: a coin toss, 0: certain)."""
    if proba.ndim != 2 or proba.shape[1] < 2:
        return np.ones(proba.shape[0] if proba.ndim else 0)
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    out: np.ndarray = 1.0 - (top2[:, 0] - top2[:, 1])
    return out


def _nearest_seen(space: sp.csr_matrix, seen: Sequence[int]) -> np.ndarray:
    """For each mail, its cosine similarity to the closest mail already seen (0 when none was)."""
    n = space.shape[0]
    if not seen:
        return np.zeros(n)
    sims = space @ space[list(seen)].T
    return np.asarray(sims.max(axis=1).todense()).ravel().clip(0.0, 1.0)


def _typicality(space: sp.csr_matrix) -> np.ndarray:
    """Each mail's cosine similarity to the mailbox's average mail (plus a floor, so none is worth zero)."""
    centroid = np.asarray(space.mean(axis=0)).ravel()
    norm = float(np.linalg.norm(centroid)) or 1.0
    out: np.ndarray = np.asarray(space @ (centroid / norm)).ravel().clip(0.0, None) + 1e-3
    return out


def choose_mail(space: sp.csr_matrix, seen: Collection[int], *, proba: np.ndarray | None = None, k: int = 1,
                seed: int = 0, density: float = 0.0) -> list[int]:
    """The ``k`` mails (row indices of ``space``) to ask about next, best first; never one in ``seen``.

    ``seen``: mails labelled or skipped already.  ``proba``: the current
    model's ``predict_proba`` for every row (None before a model exists).
    With a model, the ``SHORTLIST_FACTOR × k`` most uncertain mails are
    weighed by uncertainty × distance to what was seen; without one, every
    mail by typicality × distance.  ``density``: with a model, weigh
    uncertainty by typicality to this power too (0: not at all), so an odd
    mail the model is unsure of does not pass before a common one.  Each pick
    counts as seen for the next, so the ``k`` are diverse among themselves
    too.  ``seed`` only breaks ties.
    """
    n = space.shape[0]
    seen_list = sorted({int(i) for i in seen if 0 <= int(i) < n})
    free = np.ones(n, dtype=bool)
    free[seen_list] = False
    if not free.any() or k <= 0:
        return []
    # A tiny random jitter, fixed by the seed, breaks ties without letting file order decide.
    jitter = np.random.default_rng(seed).random(n) * 1e-9
    if proba is not None:
        worth = uncertainty(np.asarray(proba, dtype=np.float64))
        if density:
            worth = worth * _typicality(space) ** density
        size = max(SHORTLIST_MIN, SHORTLIST_FACTOR * k)
        candidates = np.where(free)[0]
        order = np.argsort(-(worth[candidates] + jitter[candidates]), kind="stable")
        pool = np.zeros(n, dtype=bool)
        pool[candidates[order[:size]]] = True
    else:
        worth = _typicality(space)
        pool = free.copy()
    nearest = _nearest_seen(space, seen_list)
    picked: list[int] = []
    while len(picked) < k and pool.any():
        score = np.where(pool, worth * (1.0 - nearest) + jitter, -np.inf)
        best = int(np.argmax(score))
        picked.append(best)
        pool[best] = False
        row = np.asarray((space @ space[best].T).todense()).ravel().clip(0.0, 1.0)
        nearest = np.maximum(nearest, row)
    return picked


def model_ready(labels: Sequence[str]) -> bool:
    """True when the labels given can train a model: two categories or more with ``MIN_PER_CATEGORY`` each."""
    counts = Counter(lab for lab in labels if lab)
    return sum(1 for c in counts.values() if c >= MIN_PER_CATEGORY) >= 2


def expected_auto_share(model: Any) -> float:
    """Share of mail routed automatically at the model's target precision, as its cross-validation estimates it.

    The model's training already computed it: out-of-fold probabilities of
    the labelled mail, the lowest confidence at which the out-of-fold
    precision still reaches the target, and the share of labelled mail that
    clears it (``expected_auto_share_``).
    """
    return float(getattr(model, "expected_auto_share_", 0.0) or 0.0)


def read_labels_csv(text: str) -> list[dict[str, str]]:
    """Rows of a labels CSV written by the labelling page (``LABEL_COLUMNS``); rows without a category dropped."""
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        clean = {c: (row.get(c) or "").strip() for c in LABEL_COLUMNS}
        if clean["category"] and (clean["key"] or clean["path"]):
            rows.append(clean)
    return rows


def labels_csv_text(rows: Sequence[Mapping[str, str]]) -> str:
    """A labels CSV (header ``LABEL_COLUMNS``) holding ``rows``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(LABEL_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in LABEL_COLUMNS})
    return out.getvalue()


def apply_labels(messages: Sequence[Message], root: str | os.PathLike[str],
                 rows: Sequence[Mapping[str, str]]) -> list[Message]:
    """``messages`` with the categories of a labels CSV's ``rows`` (see :func:`read_labels_csv`).

    A row finds its message by key, else by path relative to ``root`` (the
    folder that was sorted); the last row of a message wins, as the page
    appends a new row when a label is given again.  Messages no row names keep
    their own label (a category folder's, or none).
    """
    by_key: dict[str, str] = {}
    by_path: dict[str, str] = {}
    for row in rows:
        if row.get("key"):
            by_key[row["key"]] = row["category"]
        if row.get("path"):
            by_path[row["path"]] = row["category"]
    base = Path(root).resolve()
    out = []
    for msg in messages:
        category = by_key.get(msg.key)
        if category is None and msg.source:
            try:
                category = by_path.get(Path(msg.source).resolve().relative_to(base).as_posix())
            except ValueError:
                category = None
        out.append(replace(msg, label=category) if category else msg)
    return out
