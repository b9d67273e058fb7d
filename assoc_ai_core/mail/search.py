"""Choosing the regularisation C and the block weights by cross-validation.

Each candidate (C, meta and history block weights) is scored on the same
folds; its out-of-fold scores are kept, because the winner's are what the
temperature and the review threshold are then fitted on
(:mod:`~assoc_ai_core.mail.thresholds`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

__all__ = [
    "META_WEIGHT", "HISTORY_WEIGHT", "BLOCK_WEIGHTS", "BLOCK_SEARCH_FROM", "LARGE", "Candidate", "Fold", "TrainingRows",
    "SearchPlan", "plan_search", "loose_folds", "block_scale", "two_columns", "out_of_fold_scores",
    "best_candidate",
]

META_WEIGHT = 0.25
HISTORY_WEIGHT = 0.3
# (meta, history) block weights tried by the cross-validated search.  How much the correspondents and
# the quoted thread say about a category differs between mailboxes: a shared info@ box whose replies
# quote other topics wants them light; a person filing threads by project wants them heavy.
BLOCK_WEIGHTS = ((META_WEIGHT, HISTORY_WEIGHT), (META_WEIGHT, 1.0), (0.5, 1.0))
BLOCK_SEARCH_FROM = 1000
LARGE = 5000

Candidate = tuple[float, tuple[float, float]]  # (C, (meta weight, history weight))
Fold = tuple[np.ndarray, np.ndarray]  # (train indices, test indices)


@dataclass(frozen=True)
class TrainingRows:
    """The cleaned training messages, and the extra rows (category names) that are never tested on."""

    cleaned: np.ndarray  # one row per message, as TextCleaner gives it
    y: np.ndarray  # the message's category
    classes: np.ndarray  # sorted categories
    all_rows: np.ndarray  # the messages, then the extra rows
    all_y: np.ndarray
    extra_idx: np.ndarray  # positions of the extra rows in all_rows


@dataclass(frozen=True)
class SearchPlan:
    """The folds and the candidates a training set of this size is searched with."""

    n_splits: int
    folds: list[Fold]
    grid: tuple[float, ...]
    block_grid: tuple[tuple[float, float], ...]

    @property
    def candidates(self) -> list[Candidate]:
        """Every (C, block weights) pair, default block weights first: they win ties."""
        return [(C, w) for w in self.block_grid for C in self.grid]


def loose_folds(y: np.ndarray, n_splits: int) -> Iterator[Fold]:
    """Folds for categories too small to stratify: each category dealt round-robin, so every fold sees most."""
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    fold_of = np.empty(len(y), dtype=int)
    for label in np.unique(y):
        idx = order[y[order] == label]
        fold_of[idx] = np.arange(len(idx)) % n_splits
    for k in range(n_splits):
        yield np.where(fold_of != k)[0], np.where(fold_of == k)[0]


def plan_search(
    y: np.ndarray, counts: np.ndarray, *, cv: int, C_grid: tuple[float, ...] | None, classifier: str,
    block_weights: tuple[tuple[float, float], ...] | None, random_state: int,
) -> SearchPlan:
    """Folds and candidates: the full search on small data, a light one on a large mailbox."""
    n = len(y)
    # Large mailboxes: fewer folds and one C; the search matters with little data, not with lots.
    cv = cv if n <= LARGE else min(cv, 3)
    n_splits = int(max(2, min(cv, counts.min() if n < 100 else cv)))
    if counts.min() >= n_splits:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        folds = list(splitter.split(np.zeros((n, 1)), y))
    else:
        folds = list(loose_folds(y, n_splits))
    full_grid = tuple(C_grid or ((0.1, 0.4, 1.5) if classifier == "svm" else (5.0, 20.0, 80.0)))
    grid = full_grid if n <= LARGE else full_grid[len(full_grid) // 2:][:1]
    # Below BLOCK_SEARCH_FROM messages the cross-validated scores of the block weights differ by
    # noise (devA: choosing among them cost a point of F1), so small mailboxes keep the defaults.
    block_grid = tuple(block_weights or (
        BLOCK_WEIGHTS[:1] if n < BLOCK_SEARCH_FROM else BLOCK_WEIGHTS if n <= LARGE else BLOCK_WEIGHTS[::2]))
    return SearchPlan(n_splits, folds, grid, block_grid)


def block_scale(feats: ColumnTransformer, width: int, weights: tuple[float, float]) -> np.ndarray:
    """Per-column factors giving the meta and history blocks of fitted features the given weights."""
    scale = np.ones(width, dtype=np.float32)
    for name, w in zip(("meta", "history"), weights, strict=True):
        block = feats.output_indices_.get(name)
        if block is not None:
            scale[block] = w
    return scale


def two_columns(scores: np.ndarray) -> np.ndarray:
    """One score column per category, also for two categories.

    With two categories a linear model gives one score, for ``classes_[1]``
    against ``classes_[0]``; split evenly it becomes the two columns a softmax
    expects.
    """
    if scores.ndim == 1:
        return np.column_stack([-scores / 2, scores / 2])
    return scores


def _score_fold(
    rows: TrainingRows, fold: Fold, plan: SearchPlan, oofs: dict[Candidate, np.ndarray],
    make_features: Callable[[], ColumnTransformer], make_clf: Callable[[float], Any],
) -> None:
    """Fill every candidate's out-of-fold scores on one fold's test part."""
    tr_idx, te_idx = fold
    # Block weights only scale columns, so the blocks are built at weight 1 and rescaled per candidate.
    feats = make_features()
    tr_idx = np.concatenate([tr_idx, rows.extra_idx])
    Xtr = feats.fit_transform(rows.all_rows[tr_idx])
    Xte = feats.transform(rows.cleaned[te_idx])
    for w in plan.block_grid:
        # float64 directly: the classifier would otherwise make its own float64 copy beside ours.
        scale = sp.diags(block_scale(feats, Xtr.shape[1], w).astype(np.float64))
        Xtr_w, Xte_w = (Xtr @ scale).tocsr(), (Xte @ scale).tocsr()
        for C in plan.grid:
            clf = make_clf(C).fit(Xtr_w, rows.all_y[tr_idx])
            cols = np.searchsorted(rows.classes, clf.classes_)
            oofs[(C, w)][np.ix_(te_idx, cols)] = two_columns(clf.decision_function(Xte_w))
        del Xtr_w, Xte_w


def out_of_fold_scores(
    rows: TrainingRows, plan: SearchPlan, *, make_features: Callable[[], ColumnTransformer],
    make_clf: Callable[[float], Any], progress: Any = None,
) -> dict[Candidate, np.ndarray]:
    """Each candidate's scores of every message, from the model of the folds that did not see it.

    One fold at a time: its features are built once, every candidate is tried
    on them, then they are dropped, so memory holds a single fold's matrices
    whatever the number of folds.
    """
    n = len(rows.y)
    # float32: with hundreds of categories these score tables are the largest arrays of the search.
    oofs = {cand: np.full((n, len(rows.classes)), -1e9, dtype=np.float32) for cand in plan.candidates}
    for fold in plan.folds:
        present = np.unique(rows.y[fold[0]])
        if len(present) < 2:  # tiny data: this fold saw one category only, no opinion on its test part
            for oof in oofs.values():
                oof[np.ix_(fold[1], np.searchsorted(rows.classes, present))] = 0.0
            continue
        _score_fold(rows, fold, plan, oofs, make_features, make_clf)
        if progress is not None:
            progress.update(1)
    return oofs


def best_candidate(oofs: dict[Candidate, np.ndarray], y: np.ndarray, classes: np.ndarray) -> Candidate:
    """The candidate with the best out-of-fold macro-F1; on ties the first (default weights, smallest C)."""
    scored = [(f1_score(y, classes[oof.argmax(1)], average="macro"), cand) for cand, oof in oofs.items()]
    return max(scored, key=lambda sc: sc[0])[1]
