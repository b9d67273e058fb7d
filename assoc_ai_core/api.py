"""The volunteer's API: ``clean``, ``train``, ``predict``, ``explain``, ``evaluate`` on plain lists.

>>> from assoc_ai_core import train, predict
>>> model = train(["je veux adhérer", "cotisation 2025", "adhésion couple",
...                "stand au festival", "inscription à la visite", "programme de la fête"],
...               ["Adhésion"] * 3 + ["Événement"] * 3)  # doctest: +SKIP
>>> predict(model, ["comment adhérer ?"])[0].label  # doctest: +SKIP
'Adhésion'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.mail.cleaning import clean
from assoc_ai_core.mail.evaluate import evaluate
from assoc_ai_core.mail.explain import Explanation, explain, explain_many, explain_model
from assoc_ai_core.mail.model import MailClassifier
from assoc_ai_core.mail.parsing import message_from_text, parse_message
from assoc_ai_core.mail.pseudonymise import pseudonymise
from assoc_ai_core.mail.sources import load_dataset
from assoc_ai_core.records.mail import Message, Prediction

__all__ = [
    "clean", "train", "predict", "explain", "explain_many", "explain_model", "evaluate",
    "load_dataset", "parse_message", "pseudonymise", "MailClassifier", "Explanation", "Message", "Prediction",
]


def _as_messages(items: Sequence[Message | str]) -> list[Message]:
    return [message_from_text(i) if isinstance(i, str) else i for i in items]


def train(
    messages: Sequence[Message | str],
    labels: Sequence[str] | None = None,
    *,
    target_precision: float = 0.95,
    progress: Any = None,
    **params: Any,
) -> MailClassifier:
    """Fit a :class:`MailClassifier` on messages (or texts) and their categories.

    ``labels`` default to each message's ``label`` (the folder it was sorted
    into).  Unreadable messages are left out.  Extra keyword arguments are
    :class:`MailClassifier` parameters.
    """
    msgs = _as_messages(messages)
    if labels is None:
        labels = [m.label for m in msgs]
    pairs = [(m, l) for m, l in zip(msgs, labels) if l and m.error is None]
    if not pairs:
        raise DataError(tr(
            "Aucun message étiqueté : rangez les messages dans un dossier par catégorie, ou donnez les étiquettes.",
            "No labelled message: put messages in one folder per category, or pass the labels.",
        ))
    model = MailClassifier(target_precision=target_precision, **params)
    return model.fit([m for m, _ in pairs], [l for _, l in pairs], progress=progress)


# Parser defects that mean part of the message may be missing: a person must look.
SERIOUS_DEFECTS = frozenset({
    "CloseBoundaryNotFoundDefect", "StartBoundaryNotFoundDefect", "MultipartInvariantViolationDefect",
    "NoBoundaryInMultipartDefect", "MissingHeaderBodySeparatorDefect",
})


def predict(model: MailClassifier, messages: Sequence[Message | str], *, cleaned: Any = None) -> list[Prediction]:
    """Category, calibrated probability, runner-up and decision (``auto``/``review``) per message.

    A message that could not be read gets decision ``review`` with the reason;
    so does a truncated or malformed one, even when its text was salvaged.
    ``cleaned`` is ``model.transform_clean`` of the readable messages, when
    the caller already has it (it is then not computed twice).
    """
    msgs = _as_messages(messages)
    readable = [m for m in msgs if m.error is None]
    if readable and cleaned is None:
        cleaned = model.transform_clean(readable)
    preds = iter(model.predictions(cleaned, keys=[m.key for m in readable]) if readable else [])
    out: list[Prediction] = []
    for m in msgs:
        if m.error is None:
            pred = next(preds)
            serious = sorted(SERIOUS_DEFECTS.intersection(m.defects))
            if serious and pred.decision == "auto":
                pred = replace(pred, decision="review", reason=tr(
                    f"message tronqué ou mal formé ({', '.join(serious)}) : une partie peut manquer",
                    f"truncated or malformed message ({', '.join(serious)}): part of it may be missing",
                ))
            out.append(pred)
        else:
            out.append(Prediction(key=m.key, label=None, probability=0.0, runner_up=None,
                                  runner_up_probability=0.0, decision="review", reason=m.error))
    return out


__all__ = ["clean", "train", "predict", "explain", "explain_many", "explain_model", "evaluate", "Explanation"]
