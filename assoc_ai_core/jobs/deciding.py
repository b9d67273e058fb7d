"""From a page of parsed messages to decisions: predictions and explanations computed as one batch.

A message that cannot be read, or that the model cannot classify, goes to the
review folder with the reason; so does one the model would route to a
category without a ``[categories.<Name>]`` section, or with too little
confidence.  One odd message never costs the page: when the batch fails, the
page is classified (or explained) one message at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from assoc_ai_core.ext.connectors import Capability, FetchedMail
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.budget import OverBudget, ReadingBudget
from assoc_ai_core.jobs.plan import (
    Decision,
    DecisionKind,
    MessageKey,
    category_plan,
    key_of,
    review_label,
    review_plan,
)
from assoc_ai_core.jobs.settings import TriageSettings
from assoc_ai_core.records.mail import Message, Prediction


@dataclass
class PageModelOutput:
    """What the model said about the readable messages of a page, by message key."""

    predictions: dict[MessageKey, Prediction] = field(default_factory=dict)
    failures: dict[MessageKey, str] = field(default_factory=dict)
    explanations: dict[MessageKey, Any] = field(default_factory=dict)


def unconfigured_categories(model: Any, settings: TriageSettings) -> list[str]:
    """Categories the model knows that have no ``[categories.<Name>]`` section (their mail goes to review)."""
    return [str(c) for c in getattr(model, "classes_", []) if str(c) not in settings.categories]


def decide_page(model: Any, todo: Sequence[tuple[FetchedMail, Message]], *, settings: TriageSettings,
                capabilities: Collection[Capability], budget: ReadingBudget | None = None,
                sender_key: Any = None) -> list[Decision]:
    """One decision per message of ``todo``, in order (keys are unique within a page).

    With a ``budget``, each message is cleaned on its own within the time
    limit (a message over it goes to review with the reason).
    """
    output = run_model(model, [(key_of(f), m) for f, m in todo if m.error is None], budget=budget,
                       sender_key=sender_key)
    labels = settings.review_labels
    unreadable = review_plan(settings.review_folder, capabilities, review_label("unreadable") if labels else None)
    decisions: list[Decision] = []
    for fetched, msg in todo:
        key = key_of(fetched)
        if msg.error is not None:
            decisions.append(Decision(fetched, msg, DecisionKind.ERROR, plan=unreadable, reason=tr(
                f"message illisible : {msg.error}", f"unreadable message: {msg.error}")))
        elif key in output.failures:
            decisions.append(Decision(fetched, msg, DecisionKind.ERROR, plan=unreadable, reason=tr(
                f"classement impossible : {output.failures[key]}", f"cannot classify: {output.failures[key]}")))
        else:
            explanation = output.explanations.get(key)
            if explanation is None:
                explanation = explain_one(model, msg, sender_key)
            decisions.append(decision_from(fetched, msg, output.predictions[key], explanation,
                                           settings=settings, capabilities=capabilities))
    return decisions


#: messages turned into features together: n-gram lists and score tables of a whole page of long mail
#: would double the job's memory for no gain in speed
MODEL_CHUNK = 25


def run_model(model: Any, readable: Sequence[tuple[MessageKey, Message]], *,
              budget: ReadingBudget | None = None, sender_key: Any = None) -> PageModelOutput:
    """Predictions and explanations of a page, :data:`MODEL_CHUNK` messages at a time (see :func:`_run_chunk`)."""
    output = PageModelOutput()
    for start in range(0, len(readable), MODEL_CHUNK):
        part = _run_chunk(model, readable[start:start + MODEL_CHUNK], budget=budget, sender_key=sender_key)
        output.predictions.update(part.predictions)
        output.failures.update(part.failures)
        output.explanations.update(part.explanations)
    return output


def _run_chunk(model: Any, readable: Sequence[tuple[MessageKey, Message]], *,
               budget: ReadingBudget | None = None, sender_key: Any = None) -> PageModelOutput:
    """Predictions and explanations of a few messages, cleaned once; message by message when the batch fails."""
    output = PageModelOutput()
    if budget is not None:
        readable, cleaned = clean_within_budget(model, readable, budget, output.failures, sender_key)
    if not readable:
        return output
    from assoc_ai_core.api import predict

    msgs = [m for _, m in readable]
    if budget is None:
        try:
            cleaned = model.transform_clean(msgs, sender_key=sender_key)  # once for the page: predictions and explanations
        except Exception:  # one odd message must not stop the page: the fallbacks below go one by one
            cleaned = None
    output.explanations = explain_page(model, readable, cleaned, sender_key)
    try:
        output.predictions = dict(zip((k for k, _ in readable), predict(model, msgs, cleaned=cleaned,
                                                                             sender_key=sender_key), strict=True))
    except Exception:  # one bad message must not stop the page: retry one by one
        for key, msg in readable:
            try:
                output.predictions[key] = predict(model, [msg], sender_key=sender_key)[0]
            except Exception as exc:
                output.failures[key] = f"{type(exc).__name__}: {exc}"
    return output


def clean_within_budget(model: Any, readable: Sequence[tuple[MessageKey, Message]], budget: ReadingBudget,
                        failures: dict[MessageKey, str], sender_key: Any = None,
                        ) -> tuple[list[tuple[MessageKey, Message]], Any]:
    """Clean each message alone within the budget; the ones that fit, and their cleaned rows stacked (or None).

    A message over the time limit, or whose cleaning fails, gets its reason in ``failures``.
    """
    import numpy as np

    kept: list[tuple[MessageKey, Message]] = []
    rows: list[Any] = []
    for key, msg in readable:
        try:
            with budget.reading(key):
                rows.append(model.transform_clean([msg], sender_key=sender_key))
        except OverBudget:
            failures[key] = budget.over_reason()
            continue
        except Exception as exc:  # this message only: the others are still classified
            failures[key] = f"{type(exc).__name__}: {exc}"
            continue
        kept.append((key, msg))
    return kept, (np.concatenate(rows) if rows else None)


def explain_page(model: Any, readable: Sequence[tuple[MessageKey, Message]], cleaned: Any = None,
                 sender_key: Any = None) -> dict[MessageKey, Any]:
    """Explanations of a page of messages, computed as one batch (empty when the batch fails)."""
    try:
        from assoc_ai_core.api import explain_many

        exps = explain_many(model, [m for _, m in readable], cleaned=cleaned, sender_key=sender_key)
        return {key: exp.to_dict() for (key, _), exp in zip(readable, exps, strict=True)}
    except Exception:  # fall back to one by one, so one odd message cannot cost the page's reasons
        return {}


def explain_one(model: Any, msg: Message, sender_key: Any = None) -> Any:
    """One message's explanation; its failure is recorded instead (an explanation never blocks triage)."""
    try:
        from assoc_ai_core.api import explain

        exp = explain(model, msg, sender_key=sender_key)
        return exp.to_dict() if hasattr(exp, "to_dict") else dataclasses.asdict(exp)
    except Exception as exc:  # an explanation is a courtesy: its failure must not block triage
        return {"error": f"{type(exc).__name__}: {exc}"}


def decision_from(fetched: FetchedMail, msg: Message, pred: Prediction, explanation: Any, *,
                  settings: TriageSettings, capabilities: Collection[Capability]) -> Decision:
    """The model's prediction as a decision: routed only when confident and the category has a section."""
    category = settings.categories.get(pred.label or "")
    kind = DecisionKind.AUTO if pred.decision == DecisionKind.AUTO else DecisionKind.REVIEW
    reason = pred.reason or None
    label = review_label("unsure", pred.label)
    if kind is DecisionKind.AUTO and category is None:
        kind = DecisionKind.REVIEW
        label = review_label("no_rule", pred.label)
        reason = tr(f"la catégorie « {pred.label} » n'a pas de section [categories] dans la configuration",
                    f"category '{pred.label}' has no [categories] section in the configuration")
    if kind is DecisionKind.AUTO and category is not None:
        plan = category_plan(category, msg, capabilities)
    else:
        kind = DecisionKind.REVIEW
        reason = reason or tr("confiance insuffisante", "confidence too low")
        plan = review_plan(settings.review_folder, capabilities, label if settings.review_labels else None)
    return Decision(fetched, msg, kind, category=pred.label, probability=float(pred.probability),
                    runner_up=pred.runner_up, runner_up_probability=float(pred.runner_up_probability),
                    explanation=explanation, reason=reason, plan=plan)


__all__ = ["PageModelOutput", "unconfigured_categories", "decide_page", "run_model", "clean_within_budget", "explain_page", "explain_one", "decision_from"]
