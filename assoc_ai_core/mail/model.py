"""The mail classifier: cleaning → TF-IDF words + characters + meta tokens → a linear model.

Why this model: it learns from a handful of examples per category, trains in
seconds on a laptop, and its weights *are* the explanation (a word's push
toward a category is its TF-IDF value times its coefficient), so what we show
a volunteer is exactly what the model computed.

Training is a few named steps: clean the messages and add the categories'
names (:mod:`~assoc_ai_core.mail.label_names`), choose C and the block weights
by cross-validation (:mod:`~assoc_ai_core.mail.search`), calibrate the
probabilities and the review threshold on the out-of-fold predictions
(:mod:`~assoc_ai_core.mail.thresholds`), refit on everything, and record what
was done (:mod:`~assoc_ai_core.mail.metadata`).

The classes saved inside a model file (the vectorizers, the classifier) stay
in this module: their import path is what the file records and what
:data:`assoc_ai_core.persistence.TRUSTED_TYPES` trusts.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import percent, tr
from assoc_ai_core.mail.cleaning import SenderKey, TextCleaner, address_terms, legacy_address_terms
from assoc_ai_core.mail.label_names import name_rows
from assoc_ai_core.mail.metadata import TrainingChoices, training_metadata
from assoc_ai_core.mail.model_checks import loaded_model_problems
from assoc_ai_core.mail.ngrams import CharNgramIndex, WordNgramIndex
from assoc_ai_core.mail.search import (
    HISTORY_WEIGHT,
    LARGE,
    META_WEIGHT,
    TrainingRows,
    best_candidate,
    out_of_fold_scores,
    plan_search,
    two_columns,
)
from assoc_ai_core.mail.stopwords import ENGLISH_STOP_WORDS, FRENCH_STOP_WORDS, WORD_TOKEN
from assoc_ai_core.mail.thresholds import calibrate, softmax
from assoc_ai_core.mail.thresholds import category_thresholds as per_category_thresholds
from assoc_ai_core.records.mail import Message, Prediction

__all__ = [
    "MailClassifier", "build_features", "CompactTfidfVectorizer", "OptionalTfidfVectorizer", "DOCS_PER_BATCH",
    "CHAR_NGRAMS_UP_TO", "AddressForgetting",
]

DOCS_PER_BATCH = 2000  # documents counted at once by the numpy n-gram path
CHAR_NGRAMS_UP_TO = 10_000  # above this many training messages, words alone (see MailClassifier._features)


def _tick(progress: Any) -> None:
    """One step done, for the caller's progress bar (if any)."""
    if progress is not None:
        progress.update(1)


class CompactTfidfVectorizer(TfidfVectorizer):  # type: ignore[misc]  # scikit-learn ships no type information
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
        names: np.ndarray = super().get_feature_names_out(input_features)
        return names


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


class MailClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type information
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
        cross-validated search (None: ``BLOCK_WEIGHTS`` of
        :mod:`~assoc_ai_core.mail.search` from ``BLOCK_SEARCH_FROM`` training
        messages, the first pair alone below).  The chosen pair is
        ``block_weights_``.
    label_names : bool or None
        Learn from the categories' names too: each name (its last folder,
        split at capitals, dashes and underscores) is one more short training
        example of its category.  A volunteer who named a folder "Bénévolat"
        said what it holds; with a few examples per category this counts.
        These examples are never scored in the cross-validation.  None (the
        default): up to ``LARGE`` (:mod:`~assoc_ai_core.mail.search`) training messages.
    random_state : int
        Seed of the fold shuffling and of the linear SVM's solver, so that
        training twice on the same mail gives the same model.
    category_thresholds : bool
        One auto-routing threshold per category (``category_thresholds_``),
        each the lowest at which that category's out-of-fold mail keeps the
        target precision, for categories with 30 or more out-of-fold
        predictions.  Off by default: on the stream benchmark it routed less
        mail on devA, devT and Wikit (``docs/benchmarks.md``).

    Sender and recipient tokens
    ---------------------------
    The installation's :class:`~assoc_ai_core.mail.cleaning.SenderKey` is an
    argument of :meth:`fit` and of every method that cleans messages
    (``sender_key=``), never a parameter or attribute: a model file cannot hold
    it.  Trained with a key, the model learns keyed sender/recipient tokens and
    records the key's fingerprint (``sender_key_id_``); trained without one, it
    learns no such token (``sender_key_id_`` is None).  Given no key or another
    key than the one it was trained with, a model warns once and leaves those
    tokens out rather than scoring with tokens that match nothing.
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
        category_thresholds: bool = False,
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
        self.category_thresholds = category_thresholds

    # ------------------------------------------------------------------ fit
    def fit(self, X: Sequence[Message | str], y: Sequence[str], *, progress: Any = None,
            sender_key: SenderKey | None = None) -> MailClassifier:
        """Clean, search C by cross-validation, calibrate, choose the threshold, refit on everything.

        ``sender_key``: the installation's key for sender and recipient tokens
        (None: the model learns none); only its fingerprint is kept.
        """
        labels = self._checked_labels(X, y)
        classes, counts = np.unique(labels, return_counts=True)
        cleaner = TextCleaner(keep_signature=self.keep_signature, pseudonymize=self.pseudonymize)
        self.sender_key_id_ = sender_key.fingerprint if sender_key is not None else None
        rows = self._training_rows(cleaner, X, labels, classes, sender_key)
        _tick(progress)
        n = len(labels)
        self._n_classes = len(classes)
        plan = plan_search(labels, counts, cv=self.cv, C_grid=self.C_grid, classifier=self.classifier,
                           block_weights=self.block_weights, random_state=self.random_state)
        oofs = out_of_fold_scores(
            rows, plan, make_features=lambda: self._features(n, meta_weight=1.0, history_weight=1.0),
            make_clf=self._make_clf, progress=progress)
        self.C_, self.block_weights_ = best_candidate(oofs, labels, classes)
        oof = oofs[(self.C_, self.block_weights_)].astype(np.float64)
        del oofs
        cal = calibrate(oof, classes, labels, self.target_precision)
        del oof  # the (messages × categories) tables are freed before the final fit, the peak of training
        self.temperature_, self.threshold_ = cal.temperature, cal.threshold
        self.category_thresholds_ = (per_category_thresholds(cal, classes, self.target_precision)
                                     if self.category_thresholds else None)
        self.expected_auto_share_ = cal.expected_auto_share
        self._fit_final(cleaner, rows, n)
        _tick(progress)
        self.classes_ = self.pipeline_.named_steps["clf"].classes_
        choices = TrainingChoices(C=self.C_, block_weights=self.block_weights_, n_splits=plan.n_splits,
                                  label_names=len(rows.extra_idx) > 0, target_precision=self.target_precision,
                                  sender_key_id=self.sender_key_id_)
        self.metadata_ = training_metadata(X, labels, rows.cleaned, choices, cal)
        return self

    def _checked_labels(self, X: Sequence[Message | str], y: Sequence[str]) -> np.ndarray:
        """The categories as an array of strings, once the training set is known to be learnable."""
        if not 0.5 <= float(self.target_precision) < 1.0:
            raise ValueError(tr("La précision visée doit être entre 0,5 et 0,999.",
                                "Target precision must be between 0.5 and 0.999."))
        labels = np.asarray([str(v) for v in y], dtype=object)
        if len(X) != len(labels):
            raise DataError(f"{len(X)} messages but {len(labels)} labels")
        classes, counts = np.unique(labels, return_counts=True)
        if len(classes) < 2:
            raise DataError(tr(
                "Il faut au moins deux catégories pour apprendre (une seule trouvée). "
                "Vérifiez que chaque dossier de catégorie contient des messages.",
                "At least two categories are needed to learn (only one found). "
                "Check that each category folder holds messages.",
            ))
        rare = [str(c) for c, k in zip(classes, counts, strict=True) if k < 2]
        if len(rare) == len(classes):
            raise DataError(tr(
                "Chaque catégorie a besoin d'au moins 2 exemples (5 ou plus conseillés).",
                "Each category needs at least 2 examples (5 or more advised).",
            ))
        if rare:  # a folder with one mail must not block training; it is learnt, and said to be weak
            warnings.warn(tr(
                f"Catégories avec un seul exemple (peu fiables, ajoutez-en) : {', '.join(rare)}",
                f"Categories with a single example (unreliable, add more): {', '.join(rare)}",
            ), stacklevel=3)
        return labels

    def _training_rows(self, cleaner: TextCleaner, X: Sequence[Message | str], labels: np.ndarray,
                       classes: np.ndarray, sender_key: SenderKey | None) -> TrainingRows:
        """The cleaned messages, then the categories' names as extra rows (never in a test fold)."""
        cleaned = cleaner.fit(X).transform(X, sender_key=sender_key)
        # With thousands of messages a name is one row among thousands; on the 15,000 Enron messages in
        # 196 folders (many named "misc", "notes", "sent") it cost a point of F1, so large sets go without.
        use_names = self.label_names if self.label_names is not None else len(labels) <= LARGE
        if use_names:
            extra_rows, extra_y = name_rows(cleaner, classes, cleaned)
        else:
            extra_rows, extra_y = np.empty((0, cleaned.shape[1]), dtype=object), classes[:0].astype(object)
        return TrainingRows(
            cleaned=cleaned, y=labels, classes=classes,
            all_rows=np.concatenate([cleaned, extra_rows]), all_y=np.concatenate([labels, extra_y]),
            extra_idx=np.arange(len(labels), len(labels) + len(extra_y)),
        )

    def _fit_final(self, cleaner: TextCleaner, rows: TrainingRows, n: int) -> None:
        """The model that is kept: the chosen C and block weights, fitted on every row."""
        meta_w, history_w = self.block_weights_
        self.pipeline_ = Pipeline([
            ("clean", cleaner),
            ("features", self._features(n, meta_weight=meta_w, history_weight=history_w)),
            ("clf", self._make_clf(self.C_)),
        ])
        X_all = self.pipeline_.named_steps["features"].fit_transform(rows.all_rows)
        # The classifier works in float64: converting first and dropping the float32 matrix keeps one
        # copy in memory during the fit instead of two.
        X_all = X_all.astype(np.float64)
        clf = self.pipeline_.named_steps["clf"]
        clf.fit(X_all, rows.all_y)
        # float32 weights: half the model file and half the job's memory for them; the scores move by
        # about 1e-7, far below what changes a decision
        clf.coef_ = np.ascontiguousarray(clf.coef_, dtype=np.float32)

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
    def decision_function(self, X: Sequence[Message | str] | np.ndarray, *,
                          sender_key: SenderKey | None = None) -> np.ndarray:
        """Calibrated logits (class scores divided by the fitted temperature); ``X`` messages or cleaned rows."""
        check_is_fitted(self, "pipeline_")
        rows = X if isinstance(X, np.ndarray) and X.ndim == 2 else self.transform_clean(X, sender_key=sender_key)
        logits: np.ndarray = two_columns(self.pipeline_.decision_function(rows)) / self.temperature_
        return logits

    def predict_proba(self, X: Sequence[Message | str] | np.ndarray, *,
                      sender_key: SenderKey | None = None) -> np.ndarray:
        """Calibrated probability of each category (columns follow ``classes_``)."""
        return softmax(self.decision_function(X, sender_key=sender_key))

    def predict(self, X: Sequence[Message | str] | np.ndarray, *, sender_key: SenderKey | None = None) -> np.ndarray:
        """Most probable category of each message."""
        labels: np.ndarray = self.classes_[self.predict_proba(X, sender_key=sender_key).argmax(1)]
        return labels

    def transform_clean(self, X: Sequence[Message | str] | np.ndarray, *,
                        sender_key: SenderKey | None = None) -> np.ndarray:
        """The cleaning step alone (used to clean once and reuse), with the sender tokens this model can use.

        ``sender_key`` is used only when it is the key the model was trained
        with; otherwise the model warns once and sender/recipient tokens are
        left out (see the class's notes).
        """
        check_is_fitted(self, "pipeline_")
        cleaned: np.ndarray = self.pipeline_.named_steps["clean"].transform(
            X, sender_key=self._usable_key(sender_key))
        return cleaned

    def _usable_key(self, sender_key: SenderKey | None) -> SenderKey | None:
        """``sender_key`` when it is the training key; None (and a warning, once per model) otherwise."""
        if not hasattr(self, "sender_key_id_"):
            # Trained before tokens were keyed: its unkeyed tokens identify people and are never made again.
            self._warn_once("legacy", tr(
                "Ce modèle date d'avant les jetons d'expéditeur à clé : ses jetons d'expéditeurs et de "
                "destinataires sont ignorés. Ré-entraînez-le pour qu'il ne permette plus d'identifier qui écrit.",
                "This model predates keyed sender tokens: its sender and recipient tokens are ignored. Retrain it "
                "so that it no longer tells who wrote."))
            return None
        expected = self.sender_key_id_
        if expected is None:
            return None  # learnt no sender token: a key would only make tokens that match nothing
        if sender_key is None:
            self._warn_once("missing", tr(
                "Modèle entraîné avec une clé d'expéditeurs, aucune clé donnée : expéditeurs et destinataires "
                "ignorés (--key-file ou [privacy] key_file).",
                "Model trained with a sender key, none given: senders and recipients ignored (--key-file or "
                "[privacy] key_file)."))
            return None
        if sender_key.fingerprint != expected:
            self._warn_once("mismatch", tr(
                "La clé d'expéditeurs donnée n'est pas celle de l'entraînement : expéditeurs et destinataires "
                "ignorés. Donnez la clé de l'installation qui a entraîné ce modèle, ou ré-entraînez-le.",
                "The sender key given is not the one the model was trained with: senders and recipients ignored. "
                "Give the key of the installation that trained this model, or retrain it."))
            return None
        return sender_key

    def _warn_once(self, reason: str, message: str) -> None:
        """Warn about this model's sender tokens the first time ``reason`` applies (a job predicts page after page)."""
        seen = _WARNED.setdefault(self, set())
        if reason not in seen:
            seen.add(reason)
            warnings.warn(message, stacklevel=2)  # points at this module: the CLI shows ours as plain lines

    def threshold_of(self, index: int) -> float:
        """The confidence the category ``classes_[index]`` needs to be routed automatically."""
        per = getattr(self, "category_thresholds_", None)
        return float(per[index]) if per is not None else float(self.threshold_)

    def predictions(self, X: Sequence[Message | str] | np.ndarray, keys: Sequence[str] | None = None, *,
                    sender_key: SenderKey | None = None) -> list[Prediction]:
        """Full :class:`Prediction` records, with decision ``auto`` or ``review``."""
        proba = self.predict_proba(X, sender_key=sender_key) if len(X) else np.zeros((0, len(self.classes_)))
        out = []
        for i, row in enumerate(proba):
            order = np.argsort(-row)
            top, second = order[0], order[1] if len(order) > 1 else order[0]
            p = float(row[top])
            cut = self.threshold_of(int(top))
            decision = "auto" if p >= cut else "review"
            item = X[i]
            key = keys[i] if keys is not None else (item.key if isinstance(item, Message) else str(i))
            reason = "" if decision == "auto" else tr(
                f"confiance {percent(p, 'fr')} sous le seuil {percent(cut, 'fr')}",
                f"confidence {percent(p, 'en')} below threshold {percent(cut, 'en')}",
            )
            out.append(Prediction(
                key=key, label=str(self.classes_[top]), probability=p,
                runner_up=str(self.classes_[second]), runner_up_probability=float(row[second]),
                decision=decision, scores={str(c): float(v) for c, v in zip(self.classes_, row, strict=True)},
                reason=reason,
            ))
        return out

    # ------------------------------------------------------------ erasure
    def forget_addresses(self, addresses: Iterable[str], sender_key: SenderKey | None) -> AddressForgetting:
        """Remove the sender/recipient tokens of ``addresses`` from the vocabulary and the coefficients.

        Each token found leaves the meta vocabulary (its column kept, renamed to
        a string no tokenizer produces) and its coefficients are set to zero, so
        the file no longer holds the token and the model no longer weighs it.
        A model whose tokens were made with another key (or none given) cannot
        have them found: it is reported as needing retraining.  Models trained
        before keyed tokens hold unkeyed ones, found without a key.
        """
        terms, needs_retraining = self._address_terms_held(addresses, sender_key)
        if not terms:
            return AddressForgetting(0, needs_retraining)
        features = self.pipeline_.named_steps["features"]
        vectorizer = features.named_transformers_["meta"]
        vocab = vectorizer.vocabulary_
        found = [vocab.pop(term) for term in terms]
        for index in found:
            vocab[f"\x00erased{index}"] = index  # a NUL never comes out of a tokenizer
        vectorizer.__dict__.pop("_ngram_index", None)  # its lookup table was built from the old vocabulary
        clf = self.pipeline_.named_steps["clf"]
        start = features.output_indices_["meta"].start
        for index in found:
            clf.coef_[:, start + index] = 0.0
        return AddressForgetting(len(found), False)

    def address_tokens_held(self, addresses: Iterable[str], sender_key: SenderKey | None) -> int | None:
        """How many sender/recipient tokens of ``addresses`` the model holds (None: its key is not the one given)."""
        terms, unknown = self._address_terms_held(addresses, sender_key)
        return None if unknown else len(terms)

    def _address_terms_held(self, addresses: Iterable[str], sender_key: SenderKey | None) -> tuple[list[str], bool]:
        """(the meta-vocabulary terms of ``addresses``, whether tokens of another key may hide some)."""
        check_is_fitted(self, "pipeline_")
        addresses = [a for a in addresses if a and a.strip()]
        legacy = not hasattr(self, "sender_key_id_")
        if not legacy and self.sender_key_id_ is None:
            return [], False
        if not legacy and (sender_key is None or sender_key.fingerprint != self.sender_key_id_):
            return [], True
        vocab = getattr(self.pipeline_.named_steps["features"].named_transformers_["meta"], "vocabulary_", None)
        if not isinstance(vocab, dict):
            return [], False
        terms = {t for a in addresses for t in (legacy_address_terms(a) if legacy or sender_key is None
                                                 else address_terms(a, sender_key))}
        return sorted(terms & vocab.keys()), False

    # ------------------------------------------------------------ on load
    def validate_loaded(self) -> list[str]:
        """What a loaded model holds outside what :meth:`fit` writes (empty: nothing); called on load.

        The rules are in :func:`assoc_ai_core.mail.model_checks.loaded_model_problems`.
        """
        return loaded_model_problems(self)


# Models already warned about their sender tokens, and why; weak, so a model dropped is forgotten here too.
_WARNED: weakref.WeakKeyDictionary[MailClassifier, set[str]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class AddressForgetting:
    """What :meth:`MailClassifier.forget_addresses` did: tokens removed, and whether only retraining can do it."""

    removed: int
    needs_retraining: bool


class _QuietLogisticRegression(LogisticRegression):  # type: ignore[misc]  # scikit-learn ships no type information
    """LogisticRegression whose convergence warnings are silenced.

    With a loose tolerance and TF-IDF features lbfgs stops close enough to the
    optimum for ranking; the warning would only alarm volunteers.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _QuietLogisticRegression:
        """Fit as LogisticRegression does, without the convergence warning."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            super().fit(X, y, sample_weight=sample_weight)
        return self
