"""The mail classifier: cleaning → TF-IDF words + characters + meta tokens → logistic regression.

Why this model: it learns from a handful of examples per category, trains in
seconds on a laptop, and its weights *are* the explanation (a word's push
toward a category is its TF-IDF value times its coefficient), so what we show
a volunteer is exactly what the model computed.

Probabilities are calibrated by temperature scaling fitted on out-of-fold
predictions (one number, so the ranking of categories and the explanations
are unchanged), and the same out-of-fold predictions choose the review
threshold that reaches the target precision on auto-routed mail.
"""

from __future__ import annotations

import hashlib
import platform
import re
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.mail.cleaning import TextCleaner
from assoc_ai_core.mail.ngrams import CharNgramIndex, WordNgramIndex
from assoc_ai_core.mail.parsing import message_from_text
from assoc_ai_core.mail.stopwords import ENGLISH_STOP_WORDS, FRENCH_STOP_WORDS
from assoc_ai_core.persistence import FORMAT_VERSION
from assoc_ai_core.records.mail import Message, Prediction

META_WEIGHT = 0.25
HISTORY_WEIGHT = 0.3
# (meta, history) block weights tried by the cross-validated search.  How much the correspondents and
# the quoted thread say about a category differs between mailboxes: a shared info@ box whose replies
# quote other topics wants them light; a person filing threads by project wants them heavy.
BLOCK_WEIGHTS = ((META_WEIGHT, HISTORY_WEIGHT), (META_WEIGHT, 1.0), (0.5, 1.0))
BLOCK_SEARCH_FROM = 1000
LARGE = 5000
DOCS_PER_BATCH = 2000  # documents counted at once by the numpy n-gram path
CHAR_NGRAMS_UP_TO = 10_000  # training sets above this size get a lighter cross-validated search
PRECISION_LEVELS = (0.90, 0.95, 0.98)
WORD_TOKEN = r"(?u)\b\w[\w-]*\w\b"


class CompactTfidfVectorizer(TfidfVectorizer):
    """TfidfVectorizer whose vocabulary is saved as one array of terms.

    A character n-gram vocabulary has tens of thousands of entries; saved as a
    dict, each entry becomes a node of the skops file (tens of megabytes, slow
    to load).  As a numpy string array it is one compact block.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: saving must not strip the live model
        state.pop("_ngram_index", None)  # rebuilt from the vocabulary on first use
        vocab = state.pop("vocabulary_", None)
        if vocab is not None:
            terms = [""] * len(vocab)
            for term, i in vocab.items():
                terms[i] = term
            state["_vocabulary_terms"] = np.asarray(terms, dtype=str)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        terms = state.pop("_vocabulary_terms", None)
        if terms is not None:
            state["vocabulary_"] = {str(t): i for i, t in enumerate(terms.tolist())}
        super().__setstate__(state)

    def _fast_index(self) -> CharNgramIndex | WordNgramIndex | None:
        """The numpy index of the fitted vocabulary (None: scikit-learn's own path)."""
        vocab = getattr(self, "vocabulary_", None)
        if self.binary or not isinstance(vocab, dict) or self.input != "content":
            return None
        cached = self.__dict__.get("_ngram_index")
        if cached is None or cached[0] is not vocab:  # built once per fitted vocabulary
            index: CharNgramIndex | WordNgramIndex | None = None
            if self.analyzer == "char_wb":
                index = CharNgramIndex.build(vocab, self.ngram_range)
            elif self.analyzer == "word":
                index = WordNgramIndex.build(vocab, self.ngram_range, self.get_stop_words())
            cached = (vocab, index)
            self._ngram_index = cached
        return cached[1]

    def transform(self, raw_documents: Any) -> Any:
        """TF-IDF matrix of documents; n-grams are counted by :mod:`~assoc_ai_core.mail.ngrams`."""
        index = self._fast_index()
        if index is None or isinstance(raw_documents, str):
            return super().transform(raw_documents)
        check_is_fitted(self, msg="The TF-IDF vectorizer is not fitted")
        preprocess = self.build_preprocessor()
        tokenize = self.build_tokenizer()
        docs = raw_documents if isinstance(raw_documents, (list, tuple, np.ndarray)) else list(raw_documents)
        parts = []
        # A few thousand documents at a time: the token lists of a 100,000-message batch would not fit.
        for start in range(0, len(docs), DOCS_PER_BATCH):
            chunk = docs[start : start + DOCS_PER_BATCH]
            if isinstance(index, CharNgramIndex):
                parts.append(index.counts([preprocess(self.decode(doc)) for doc in chunk], self.dtype))
            else:
                parts.append(index.counts([tokenize(preprocess(self.decode(doc))) for doc in chunk], self.dtype))
        counts = parts[0] if len(parts) == 1 else (
            sp.vstack(parts, format="csr") if parts else index.counts([], self.dtype))
        if get_config().get("sparse_interface", "spmatrix") != "sparray":
            counts = sp.csr_matrix(counts)
        return self._tfidf.transform(counts, copy=False)


class OptionalTfidfVectorizer(CompactTfidfVectorizer):
    """A TF-IDF block that may find nothing to learn (e.g. no reply quotes history in the training mail).

    It then contributes one column of zeros (scikit-learn's ColumnTransformer
    refuses empty blocks) instead of stopping the training.
    """

    def fit(self, raw_documents: Any, y: Any = None) -> OptionalTfidfVectorizer:
        """Fit, or remember that the documents held no term."""
        self.fit_transform(raw_documents)
        return self

    def fit_transform(self, raw_documents: Any, y: Any = None) -> Any:
        """Fit and transform; an all-empty block gives zero columns."""
        docs = list(raw_documents)
        try:
            out = super().fit_transform(docs)
            self.is_empty_ = False
            return out
        except ValueError:
            self.is_empty_ = True
            return sp.csr_matrix((len(docs), 1), dtype=np.float32)

    def transform(self, raw_documents: Any) -> Any:
        """Transform (a zero column when nothing was learnt)."""
        if getattr(self, "is_empty_", False):
            return sp.csr_matrix((len(list(raw_documents)), 1), dtype=np.float32)
        return super().transform(raw_documents)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Term names (none when nothing was learnt)."""
        if getattr(self, "is_empty_", False):
            return np.asarray(["(none)"], dtype=object)
        return super().get_feature_names_out(input_features)


def build_features(
    n_samples: int, *, char_ngrams: bool = True, max_features: int | None = None,
    embeddings: str | None = None, embedding_weight: float = 1.0, n_classes: int = 2,
    meta_weight: float = META_WEIGHT, history_weight: float = HISTORY_WEIGHT,
) -> ColumnTransformer:
    """The feature step: word 1–2-grams, character 3–5-grams and meta tokens, each TF-IDF.

    ``min_df`` grows with the data so a five-example category keeps its rare
    words while a 100,000-message mailbox does not keep every typo.
    """
    min_df = 1 if n_samples < 2000 else 2
    # A linear model keeps one weight per feature and category: with many categories
    # the vocabulary is capped so the model stays within a small machine's memory.
    cap = max_features or int(max(15_000, min(200_000, 3_000_000 / max(n_classes, 1))))
    # Word pairs are worth their cost on a small mailbox; on a large one counting every pair
    # before pruning would dominate the memory of training.
    word_ngrams = (1, 2) if n_samples <= LARGE else (1, 1)
    stop = sorted(FRENCH_STOP_WORDS | ENGLISH_STOP_WORDS)
    transformers: list[tuple[str, Any, int]] = [
        ("word", CompactTfidfVectorizer(
            sublinear_tf=True, ngram_range=word_ngrams, min_df=min_df, max_df=0.8 if n_samples >= 50 else 1.0,
            token_pattern=WORD_TOKEN, stop_words=stop, max_features=cap, dtype=np.float32,
        ), 0),
    ]
    if char_ngrams:
        transformers.append(("char", CompactTfidfVectorizer(
            sublinear_tf=True, analyzer="char_wb", ngram_range=(3, 5), min_df=min_df, strip_accents="unicode",
            max_features=cap, dtype=np.float32,
        ), 2))
    # A correspondent seen once in a large mailbox teaches nothing general; in a small one it may.
    transformers.append(("meta", CompactTfidfVectorizer(
        token_pattern=r"\S+", lowercase=False, sublinear_tf=True, min_df=min_df, max_features=cap,
        dtype=np.float32), 1))
    # Quoted history is context: it often names the thread's topic, sometimes another one.  Its
    # vocabulary repeats the new text's, so a third of the cap keeps the thread words that matter.
    transformers.append(("history", OptionalTfidfVectorizer(
        sublinear_tf=True, min_df=min_df, token_pattern=WORD_TOKEN, stop_words=stop, max_features=cap // 3,
        dtype=np.float32), 3))
    weights = {"meta": meta_weight, "history": history_weight}
    if embeddings:
        from assoc_ai_core.mail.embeddings import SentenceEmbedder

        transformers.append(("semantic", SentenceEmbedder(model=embeddings), 0))
        weights["semantic"] = embedding_weight
    # Meta tokens are few per message, so after normalisation each would weigh as
    # much as the strongest word; a quarter weight keeps them as hints, not verdicts.
    return ColumnTransformer(transformers, sparse_threshold=1.0, transformer_weights=weights)


class MailClassifier(ClassifierMixin, BaseEstimator):
    """Learn an association's mail categories; predict with a calibrated probability and a decision.

    Parameters
    ----------
    target_precision : float
        Precision that mail routed automatically must reach; the review
        threshold is chosen from cross-validation to meet it.
    classifier : {"svm", "logreg"}
        Linear SVM (one-vs-rest, light on memory with many categories) or
        multinomial logistic regression.  Either way the scores are turned
        into probabilities by a softmax whose temperature is fitted on
        out-of-fold predictions.
    C_grid : tuple of float or None
        Inverse regularisation strengths tried by the cross-validated search
        (None: a small grid suited to the classifier).
    cv : int
        Number of folds (fewer when a category has fewer examples).
    char_ngrams : bool
        Add character n-grams (robust to typos and missing accents); used up
        to ``CHAR_NGRAMS_UP_TO`` training messages, where they matter.
    keep_signature : bool
        Passed to :class:`~assoc_ai_core.mail.cleaning.TextCleaner`.
    pseudonymize : bool
        Replace e-mails, phones, IBANs, postal addresses and the sender's name
        by placeholders before learning (default): the model file then holds
        no such personal data in its vocabulary.
    class_weight : str or None
        ``"balanced"`` helps small categories in skewed mailboxes.
    embeddings : str or None
        ``"use-multilingual"`` adds multilingual sentence embeddings (needs the
        ``semantic`` extra): better with few examples and mixed languages,
        slower.
    embedding_weight : float
        Weight of the embedding block against the word blocks.
    block_weights : tuple of (float, float) or None
        Candidate (meta tokens, quoted history) block weights for the
        cross-validated search (None: ``BLOCK_WEIGHTS`` from ``BLOCK_SEARCH_FROM``
        training messages, the first pair alone below).  The chosen pair is
        ``block_weights_``.
    label_names : bool or None
        Learn from the categories' names too: each name (its last folder,
        split at capitals, dashes and underscores) is one more short training
        example of its category.  A volunteer who named a folder "Bénévolat"
        said what it holds; with a few examples per category this counts.
        These examples are never scored in the cross-validation.  None (the
        default): up to ``LARGE`` training messages.
    random_state : int
        Seed of the fold shuffling and of the linear SVM's solver, so that
        training twice on the same mail gives the same model.
    """

    def __init__(
        self,
        target_precision: float = 0.95,
        classifier: str = "svm",
        C_grid: tuple[float, ...] | None = None,
        cv: int = 5,
        char_ngrams: bool = True,
        keep_signature: bool = False,
        pseudonymize: bool = True,
        class_weight: str | None = "balanced",
        embeddings: str | None = None,
        embedding_weight: float = 1.0,
        block_weights: tuple[tuple[float, float], ...] | None = None,
        label_names: bool | None = None,
        random_state: int = 0,
    ) -> None:
        self.target_precision = target_precision
        self.classifier = classifier
        self.C_grid = C_grid
        self.cv = cv
        self.char_ngrams = char_ngrams
        self.keep_signature = keep_signature
        self.pseudonymize = pseudonymize
        self.class_weight = class_weight
        self.embeddings = embeddings
        self.embedding_weight = embedding_weight
        self.block_weights = block_weights
        self.label_names = label_names
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(self, X: Sequence[Message | str], y: Sequence[str], *, progress: Any = None) -> MailClassifier:
        """Clean, search C by cross-validation, calibrate, choose the threshold, refit on everything."""
        if not 0.5 <= float(self.target_precision) < 1.0:
            raise ValueError(tr("La précision visée doit être entre 0,5 et 0,999.",
                                "Target precision must be between 0.5 and 0.999."))
        y = np.asarray([str(v) for v in y], dtype=object)
        if len(X) != len(y):
            raise DataError(f"{len(X)} messages but {len(y)} labels")
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise DataError(tr(
                "Il faut au moins deux catégories pour apprendre (une seule trouvée). "
                "Vérifiez que chaque dossier de catégorie contient des messages.",
                "At least two categories are needed to learn (only one found). "
                "Check that each category folder holds messages.",
            ))
        rare = [str(c) for c, k in zip(classes, counts) if k < 2]
        if len(rare) == len(classes):
            raise DataError(tr(
                "Chaque catégorie a besoin d'au moins 2 exemples (5 ou plus conseillés).",
                "Each category needs at least 2 examples (5 or more advised).",
            ))
        if rare:  # a folder with one mail must not block training; it is learnt, and said to be weak
            warnings.warn(tr(
                f"Catégories avec un seul exemple (peu fiables, ajoutez-en) : {', '.join(rare)}",
                f"Categories with a single example (unreliable, add more): {', '.join(rare)}",
            ), stacklevel=2)
        cleaner = TextCleaner(keep_signature=self.keep_signature, pseudonymize=self.pseudonymize)
        cleaned = cleaner.fit(X).transform(X)
        # The categories' names, as extra training rows after the messages (never in a test fold).
        # With thousands of messages a name is one row among thousands; on the 15,000 Enron messages in
        # 196 folders (many named "misc", "notes", "sent") it cost a point of F1, so large sets go without.
        use_names = self.label_names if self.label_names is not None else len(y) <= LARGE
        names = _distinctive_names([label_text(c) for c in classes], cleaned[:, 0]) if use_names else []
        named = np.flatnonzero([bool(t) for t in names])
        # The name once, as the body: written as subject and body too it made pairs like "presse presse"
        # that topped the model's terms in the report.
        extra_rows = cleaner.transform([message_from_text(names[i]) for i in named]) \
            if len(named) else np.empty((0, cleaned.shape[1]), dtype=object)
        extra_y = classes[named].astype(object)
        extra_idx = np.arange(len(y), len(y) + len(named))
        all_rows, all_y = np.concatenate([cleaned, extra_rows]), np.concatenate([y, extra_y])
        if progress is not None:
            progress.update(1)
        n = len(y)
        self._n_classes = len(classes)
        # Large mailboxes: fewer folds and one C; the search matters with little data, not with lots.
        cv = self.cv if n <= LARGE else min(self.cv, 3)
        n_splits = int(max(2, min(cv, counts.min() if n < 100 else cv)))
        folds = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state).split(cleaned, y)) \
            if counts.min() >= n_splits else list(self._loose_folds(y, n_splits))
        full_grid = tuple(self.C_grid or ((0.1, 0.4, 1.5) if self.classifier == "svm" else (5.0, 20.0, 80.0)))
        grid = full_grid if n <= LARGE else full_grid[len(full_grid) // 2:][:1]
        # Below BLOCK_SEARCH_FROM messages the cross-validated scores of the block weights differ by
        # noise (devA: choosing among them cost a point of F1), so small mailboxes keep the defaults.
        block_grid = tuple(self.block_weights or (
            BLOCK_WEIGHTS[:1] if n < BLOCK_SEARCH_FROM else BLOCK_WEIGHTS if n <= LARGE else BLOCK_WEIGHTS[::2]))
        candidates = [(C, w) for w in block_grid for C in grid]
        # float32: with hundreds of categories these score tables are the largest arrays of the search.
        oofs = {cand: np.full((n, len(classes)), -1e9, dtype=np.float32) for cand in candidates}
        # One fold at a time: its features are built once, every candidate is tried on them, then they
        # are dropped, so memory holds a single fold's matrices whatever the number of folds.  Block
        # weights only scale columns, so the blocks are built at weight 1 and rescaled per candidate.
        for tr_idx, te_idx in folds:
            present = np.unique(y[tr_idx])
            if len(present) < 2:  # tiny data: this fold saw one category only, no opinion on its test part
                for oof in oofs.values():
                    oof[np.ix_(te_idx, np.searchsorted(classes, present))] = 0.0
                continue
            feats = self._features(n, meta_weight=1.0, history_weight=1.0)
            tr_idx = np.concatenate([tr_idx, extra_idx])
            Xtr = feats.fit_transform(all_rows[tr_idx])
            Xte = feats.transform(cleaned[te_idx])
            for w in block_grid:
                # float64 directly: the classifier would otherwise make its own float64 copy beside ours.
                scale = sp.diags(_block_scale(feats, Xtr.shape[1], w).astype(np.float64))
                Xtr_w, Xte_w = (Xtr @ scale).tocsr(), (Xte @ scale).tocsr()
                for C in grid:
                    clf = self._make_clf(C).fit(Xtr_w, all_y[tr_idx])
                    cols = np.searchsorted(classes, clf.classes_)
                    scores = clf.decision_function(Xte_w)
                    if scores.ndim == 1:  # binary: decision is the score of classes_[1] against classes_[0]
                        scores = np.column_stack([-scores / 2, scores / 2])
                    oofs[(C, w)][np.ix_(te_idx, cols)] = scores
                del Xtr_w, Xte_w
            del feats, Xtr, Xte
            if progress is not None:
                progress.update(1)
        scored = [(f1_score(y, classes[oof.argmax(1)], average="macro"), cand) for cand, oof in oofs.items()]
        # First best: on ties the default block weights and the smallest C win.
        best_score, (self.C_, self.block_weights_) = max(scored, key=lambda sc: sc[0])
        oof = oofs[(self.C_, self.block_weights_)].astype(np.float64)
        del oofs
        self.temperature_ = _fit_temperature(oof, np.searchsorted(classes, y))
        proba = _softmax(oof / self.temperature_)
        pred = classes[proba.argmax(1)]
        conf = proba.max(1)
        del oof, proba  # (n × categories) tables: freed before the final fit, the peak of training
        correct = pred == y
        self.threshold_, self.expected_auto_share_, achieved = _threshold_for(conf, correct, self.target_precision)
        curve = coverage_curve(conf, correct)
        meta_w, history_w = self.block_weights_
        self.pipeline_ = Pipeline([
            ("clean", cleaner),
            ("features", self._features(n, meta_weight=meta_w, history_weight=history_w)),
            ("clf", self._make_clf(self.C_)),
        ])
        X_all = self.pipeline_.named_steps["features"].fit_transform(all_rows)
        # The classifier works in float64: converting first and dropping the float32 matrix keeps one
        # copy in memory during the fit instead of two.
        X_all = X_all.astype(np.float64)
        self.pipeline_.named_steps["clf"].fit(X_all, all_y)
        del X_all
        if progress is not None:
            progress.update(1)
        self.classes_ = self.pipeline_.named_steps["clf"].classes_
        digest = hashlib.sha256()
        for text, label in zip(cleaned[:, 0], y):
            digest.update(str(label).encode() + b"\x00" + str(text).encode("utf-8", "surrogatepass") + b"\x01")
        import sklearn

        from assoc_ai_core import __version__

        per_class = {
            str(c): {"examples": int(k)} for c, k in zip(classes, counts)
        }
        self.metadata_ = {
            "format_version": FORMAT_VERSION,
            "assoc_ai_version": __version__,
            "sklearn_version": sklearn.__version__,
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "n_train": int(n),
            "train_sha256": digest.hexdigest(),
            "labels": [str(c) for c in classes],
            "per_class": per_class,
            "rare_categories": rare,
            "C": float(self.C_),
            "block_weights": {"meta": float(meta_w), "history": float(history_w)},
            "label_names": bool(len(named)),
            "temperature": float(self.temperature_),
            "cv_folds": int(n_splits),
            "cv_accuracy": float(accuracy_score(y, pred)),
            "cv_macro_f1": float(f1_score(y, pred, average="macro")),
            "target_precision": float(self.target_precision),
            "threshold": float(self.threshold_),
            "expected_auto_share": float(self.expected_auto_share_),
            "cv_auto_precision": float(achieved),
            "coverage_at_precision": {f"{p:.2f}": float(_threshold_for(conf, correct, p)[1]) for p in PRECISION_LEVELS},
            "coverage_curve": curve,
        }
        dates = [m.date for m in X if isinstance(m, Message) and m.date is not None]
        if dates:
            self.metadata_["data_period"] = [min(dates).isoformat(), max(dates).isoformat()]
        return self

    @staticmethod
    def _loose_folds(y: np.ndarray, n_splits: int):  # noqa: ANN205 - generator of index pairs
        rng = np.random.default_rng(0)
        order = rng.permutation(len(y))
        fold_of = np.empty(len(y), dtype=int)
        for label in np.unique(y):  # deal each category round-robin so every fold sees most of them
            idx = order[y[order] == label]
            fold_of[idx] = np.arange(len(idx)) % n_splits
        for k in range(n_splits):
            yield np.where(fold_of != k)[0], np.where(fold_of == k)[0]

    def _features(self, n_total: int, *, meta_weight: float, history_weight: float) -> ColumnTransformer:
        # Character n-grams rescue small mailboxes (typos, accents, few examples); a large one has
        # words enough, and they would multiply its memory several times.
        char = self.char_ngrams and n_total <= CHAR_NGRAMS_UP_TO
        return build_features(n_total, char_ngrams=char, embeddings=self.embeddings,
                              embedding_weight=self.embedding_weight, n_classes=self._n_classes,
                              meta_weight=meta_weight, history_weight=history_weight)

    def _make_clf(self, C: float) -> Any:
        if self.classifier == "svm":
            return LinearSVC(C=C, class_weight=self.class_weight, max_iter=2000, random_state=self.random_state)
        return _QuietLogisticRegression(C=C, max_iter=300, class_weight=self.class_weight, solver="lbfgs", tol=1e-3)

    # -------------------------------------------------------------- predict
    def decision_function(self, X: Sequence[Message | str] | np.ndarray) -> np.ndarray:
        """Calibrated logits (class scores divided by the fitted temperature)."""
        check_is_fitted(self, "pipeline_")
        scores = self.pipeline_.decision_function(X)
        if scores.ndim == 1:
            scores = np.column_stack([-scores / 2, scores / 2])
        return scores / self.temperature_

    def predict_proba(self, X: Sequence[Message | str] | np.ndarray) -> np.ndarray:
        """Calibrated probability of each category (columns follow ``classes_``)."""
        return _softmax(self.decision_function(X))

    def predict(self, X: Sequence[Message | str] | np.ndarray) -> np.ndarray:
        """Most probable category of each message."""
        return self.classes_[self.predict_proba(X).argmax(1)]

    def transform_clean(self, X: Sequence[Message | str]) -> np.ndarray:
        """The cleaning step alone (used to clean once and reuse)."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.named_steps["clean"].transform(X)

    def predictions(self, X: Sequence[Message | str], keys: Sequence[str] | None = None) -> list[Prediction]:
        """Full :class:`Prediction` records, with decision ``auto`` or ``review``."""
        proba = self.predict_proba(X) if len(X) else np.zeros((0, len(self.classes_)))
        out = []
        for i, row in enumerate(proba):
            order = np.argsort(-row)
            top, second = order[0], order[1] if len(order) > 1 else order[0]
            p = float(row[top])
            decision = "auto" if p >= self.threshold_ else "review"
            key = keys[i] if keys is not None else (X[i].key if isinstance(X[i], Message) else str(i))
            reason = "" if decision == "auto" else tr(
                f"confiance {p:.0%} sous le seuil {self.threshold_:.0%}",
                f"confidence {p:.0%} below threshold {self.threshold_:.0%}",
            )
            out.append(Prediction(
                key=key, label=str(self.classes_[top]), probability=p,
                runner_up=str(self.classes_[second]), runner_up_probability=float(row[second]),
                decision=decision, scores={str(c): float(v) for c, v in zip(self.classes_, row)}, reason=reason,
            ))
        return out


class _QuietLogisticRegression(LogisticRegression):
    """LogisticRegression whose convergence warnings are silenced.

    With a loose tolerance and TF-IDF features lbfgs stops close enough to the
    optimum for ranking; the warning would only alarm volunteers.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _QuietLogisticRegression:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return super().fit(X, y, sample_weight=sample_weight)


def label_text(label: str) -> str:
    """A category's own name as words: "QuestionGenerale" → "Question Generale", "Dons/recus_fiscaux" → "recus fiscaux".

    In a folder path only the last folder names the category: its parents are
    shared with their other sub-folders, so they would pull toward one of them.
    """
    name = re.split(r"[/\\]", str(label).rstrip("/\\"))[-1]
    text = re.sub(r"(?<=[a-zà-ÿ])(?=[A-ZÀ-Þ])", " ", name)
    return " ".join(re.sub(r"[_\-.]+", " ", text).split())


NAME_WORD_MAX_DF = 0.25


def _distinctive_names(names: list[str], texts: Sequence[str]) -> list[str]:
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


def _block_scale(feats: ColumnTransformer, width: int, weights: tuple[float, float]) -> np.ndarray:
    """Per-column factors giving the meta and history blocks of fitted features the given weights."""
    scale = np.ones(width, dtype=np.float32)
    for name, w in zip(("meta", "history"), weights):
        block = feats.output_indices_.get(name)
        if block is not None:
            scale[block] = w
    return scale


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_temperature(logits: np.ndarray, y_idx: np.ndarray) -> float:
    """Temperature minimising the log-loss of out-of-fold predictions (1-D search)."""
    best_t, best_loss = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.05), np.log(20.0), 60)):
        p = _softmax(logits / t)
        loss = -np.mean(np.log(np.clip(p[np.arange(len(y_idx)), y_idx], 1e-12, None)))
        if loss < best_loss:
            best_t, best_loss = float(t), loss
    return best_t


def _threshold_for(conf: np.ndarray, correct: np.ndarray, target: float) -> tuple[float, float, float]:
    """Lowest confidence threshold whose auto-routed share keeps precision ≥ target.

    Returns (threshold, share auto-routed, precision reached).  When no
    threshold reaches the target everything goes to review (threshold above 1).
    """
    order = np.argsort(-conf, kind="stable")
    c = correct[order].astype(float)
    prec = np.cumsum(c) / np.arange(1, len(c) + 1)
    ok = np.where(prec >= target)[0]
    if len(ok) == 0:
        return 1.01, 0.0, 0.0
    k = int(ok.max())
    threshold = float(conf[order][k])
    share = float(np.mean(conf >= threshold))
    reached = float(np.mean(correct[conf >= threshold]))
    return threshold, share, reached


def coverage_curve(conf: np.ndarray, correct: np.ndarray, points: int = 41) -> list[dict[str, float]]:
    """Share auto-routed and its precision for thresholds from 0 to 1 (for the report)."""
    out = []
    for t in np.linspace(0, 1, points):
        mask = conf >= t
        share = float(mask.mean()) if len(conf) else 0.0
        prec = float(correct[mask].mean()) if mask.any() else 1.0
        out.append({"threshold": float(t), "coverage": share, "precision": prec})
    return out

