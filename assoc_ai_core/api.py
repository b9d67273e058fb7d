"""The volunteer's API: ``clean``, ``train``, ``predict``, ``explain``, ``evaluate`` on plain lists.

This module is the mail layer's public face: the command line and the other
layers above use these names, never the modules of :mod:`assoc_ai_core.mail`
directly.  Everything in ``__all__`` is public and kept stable.

>>> from assoc_ai_core import train, predict
>>> model = train(["je veux adhérer", "cotisation 2025", "adhésion couple",
...                "stand au festival", "inscription à la visite", "programme de la fête"],
...               ["Adhésion"] * 3 + ["Événement"] * 3)  # doctest: +SKIP
>>> predict(model, ["comment adhérer ?"])[0].label  # doctest: +SKIP
'Adhésion'

Who wrote and to whom are learnt only as tokens keyed with the installation's
secret, a :class:`SenderKey` given explicitly as ``sender_key=`` to
:func:`train` and to every function that cleans for a model (:func:`predict`,
:func:`explain`, :func:`explain_many`, :func:`explain_prediction`,
:func:`evaluate`).  It is never stored in the model (only its fingerprint).
Without a key, no sender or recipient token is made: the model learns from the
text and the other meta tokens (domains, attachments, language…).  A model
given no key or another key than its training one warns once and leaves those
tokens out.  :func:`clean` returns texts only and needs no key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.mail.choosing import (  # --- labelling (helper) ---
    apply_labels,
    choose_mail,
    expected_auto_share,
    labels_csv_text,
    model_ready,
    read_labels_csv,
    text_space,
    uncertainty,
)
from assoc_ai_core.mail.cleaning import SenderKey, clean
from assoc_ai_core.mail.embeddings import available as _embeddings_available
from assoc_ai_core.mail.evaluate import chronological_split
from assoc_ai_core.mail.evaluate import evaluate as _evaluate
from assoc_ai_core.mail.explain import Explanation, explain_model, reason_lines, sentence
from assoc_ai_core.mail.explain import explain_many as _explain_many
from assoc_ai_core.mail.model import MailClassifier
from assoc_ai_core.mail.parsing import TRUNCATION_DEFECTS, message_from_text, parse_message
from assoc_ai_core.mail.pseudonymise import pseudonymise
from assoc_ai_core.mail.report import write_report
from assoc_ai_core.mail.sources import Dataset, iter_messages, load_dataset
from assoc_ai_core.records.mail import Message, Prediction

__all__ = [
    # learn, decide, explain, measure
    "clean", "train", "predict", "explain", "explain_many", "explain_prediction", "explain_model", "reason_lines", "evaluate",
    "chronological_split", "write_report", "semantic_available", "default_embeddings", "load_sender_key",
    # read mail
    "load_dataset", "iter_messages", "parse_message", "message_from_text", "pseudonymise",
    # the types these functions take and give
    "MailClassifier", "Explanation", "Dataset", "Message", "Prediction", "SenderKey", "SERIOUS_DEFECTS",
    # --- labelling (helper) ---: which mail to ask about, the progress estimate, the labels file
    "choose_mail", "text_space", "uncertainty", "model_ready", "expected_auto_share", "read_labels_csv",
    "labels_csv_text", "apply_labels",
]

# Parser defects that mean part of the message may be missing: a person must look.
# (a message cut at a reading cap was classified on what was read: a person checks the rest)
SERIOUS_DEFECTS = frozenset({
    "CloseBoundaryNotFoundDefect", "StartBoundaryNotFoundDefect", "MultipartInvariantViolationDefect",
    "NoBoundaryInMultipartDefect", "MissingHeaderBodySeparatorDefect",
}) | TRUNCATION_DEFECTS


def _as_messages(items: Sequence[Message | str]) -> list[Message]:
    return [message_from_text(i) if isinstance(i, str) else i for i in items]


def train(
    messages: Sequence[Message | str],
    labels: Sequence[str] | None = None,
    *,
    target_precision: float = 0.95,
    progress: Any = None,
    sender_key: SenderKey | None = None,
    **params: Any,
) -> MailClassifier:
    """Fit a :class:`MailClassifier` on messages (or texts) and their categories.

    ``labels`` default to each message's ``label`` (the folder it was sorted
    into).  Unreadable messages are left out.  ``sender_key``: the
    installation's key for sender and recipient tokens (None: none learnt).
    Extra keyword arguments are :class:`MailClassifier` parameters.
    """
    msgs = _as_messages(messages)
    given: Sequence[str | None] = labels if labels is not None else [m.label for m in msgs]
    pairs = [(m, lab) for m, lab in zip(msgs, given, strict=False) if lab and m.error is None]
    if not pairs:
        raise DataError(tr(
            "Aucun message étiqueté : rangez les messages dans un dossier par catégorie, ou donnez les étiquettes.",
            "No labelled message: put messages in one folder per category, or pass the labels.",
        ))
    model = MailClassifier(target_precision=target_precision, **params)
    return model.fit([m for m, _ in pairs], [lab for _, lab in pairs], progress=progress, sender_key=sender_key)


def load_sender_key(path: str | os.PathLike[str], *, create: bool = False) -> SenderKey:
    """The installation's key for sender and recipient tokens, read from ``path`` (the job's key file format).

    ``create``: write a random key there when the file is missing (mode 0600).
    """
    return SenderKey.from_file(path, create=create)


def predict(model: MailClassifier, messages: Sequence[Message | str], *, cleaned: Any = None,
            sender_key: SenderKey | None = None) -> list[Prediction]:
    """Category, calibrated probability, runner-up and decision (``auto``/``review``) per message.

    A message that could not be read gets decision ``review`` with the reason;
    so does a truncated or malformed one, even when its text was salvaged.
    ``cleaned`` is ``model.transform_clean`` of the readable messages, when
    the caller already has it (it is then not computed twice).
    ``sender_key``: the key the model was trained with (see the module's notes).
    """
    msgs = _as_messages(messages)
    readable = [m for m in msgs if m.error is None]
    if readable and cleaned is None:
        cleaned = model.transform_clean(readable, sender_key=sender_key)
    preds = iter(model.predictions(cleaned, keys=[m.key for m in readable]) if readable else [])
    out: list[Prediction] = []
    for m in msgs:
        if m.error is None:
            out.append(_review_if_damaged(m, next(preds)))
        else:
            out.append(Prediction(key=m.key, label=None, probability=0.0, runner_up=None,
                                  runner_up_probability=0.0, decision="review", reason=m.error))
    return out


def _review_if_damaged(message: Message, pred: Prediction) -> Prediction:
    """The prediction, sent to review when the parser says part of the message may be missing."""
    serious = sorted(SERIOUS_DEFECTS.intersection(message.defects))
    if not serious or pred.decision != "auto":
        return pred
    return replace(pred, decision="review", reason=tr(
        f"message tronqué ou mal formé ({', '.join(serious)}) : une partie peut manquer",
        f"truncated or malformed message ({', '.join(serious)}): part of it may be missing",
    ))


def explain(model: MailClassifier, message: Message | str, *, top_k: int = 8, lang: str | None = None,
            sender_key: SenderKey | None = None) -> Explanation:
    """Explain the model's decision on one message (or text), in French or English."""
    return explain_many(model, [message], top_k=top_k, lang=lang, sender_key=sender_key)[0]


def explain_many(model: MailClassifier, messages: Sequence[Message | str], *, top_k: int = 8,
                 lang: str | None = None, cleaned: Any = None, sender_key: SenderKey | None = None,
                 ) -> list[Explanation]:
    """Explain many messages at once: cleaned (with ``sender_key``) and turned into features once, as a batch.

    ``cleaned`` is ``model.transform_clean(messages, sender_key=…)`` when the caller already has it.
    """
    if cleaned is None and messages:
        cleaned = model.transform_clean(_as_messages(messages), sender_key=sender_key)
    return _explain_many(model, messages, top_k=top_k, lang=lang, cleaned=cleaned)


def evaluate(model: MailClassifier, messages: Sequence[Message | str], labels: Sequence[str] | None = None, *,
             mistakes: int = 10, lang: str | None = None, sender_key: SenderKey | None = None) -> dict[str, Any]:
    """Score ``model`` on labelled messages (see :func:`assoc_ai_core.mail.evaluate.evaluate` for the result).

    ``sender_key``: the key the model was trained with, used for every message
    evaluated and every mistake explained.
    """
    return _evaluate(_KeyedCleaning(model, sender_key), messages, labels, mistakes=mistakes, lang=lang)


class _KeyedCleaning:
    """``model`` for one call, its cleaning done with ``sender_key``: the evaluation cleans inside the mail layer.

    Lives only as long as the call; it is never saved (and the persistence layer would refuse its type).
    """

    def __init__(self, model: MailClassifier, sender_key: SenderKey | None) -> None:
        self._model = model
        self._sender_key = sender_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def transform_clean(self, X: Sequence[Message | str]) -> Any:
        """The model's cleaning with the key of this call."""
        return self._model.transform_clean(X, sender_key=self._sender_key)


def explain_prediction(
    model: MailClassifier, message: Message | str, prediction: Prediction, *, top_k: int = 8, lang: str | None = None,
    sender_key: SenderKey | None = None,
) -> Explanation:
    """The explanation of ``prediction`` (from :func:`predict`), agreeing with its decision.

    The model alone may be confident while :func:`predict` still sent the
    message to review (a truncated message): the explanation then says
    "to be checked" too, with the prediction's reason in its sentence.
    """
    exp = explain(model, message, top_k=top_k, lang=lang, sender_key=sender_key)
    if prediction.decision == "review" and exp.decision == "auto":
        exp.decision = "review"
        exp.sentence = sentence(exp, lang=lang) + f" ({prediction.reason})"
    return exp


def semantic_available() -> bool:
    """True when the ``semantic`` extra (multilingual sentence embeddings) is installed."""
    return _embeddings_available()


# Up to this many training messages, sentence embeddings raise the share of mail nobody touches on every stream
# measured (devA 16 -> 32 %, devT 35 -> 46 %, Wikit 73 -> 79 %, five Enron users); on 20 Newsgroups (11,314
# training messages) words alone are better (accuracy 0.847 against 0.831).  docs/benchmarks.md.
SEMANTIC_UP_TO = 2000


def default_embeddings(n_messages: int) -> str | None:
    """The embeddings ``assoc-ai train`` uses when not told: sentence meaning for a small mailbox, when installed."""
    return "use-multilingual" if _embeddings_available() and n_messages <= SEMANTIC_UP_TO else None
