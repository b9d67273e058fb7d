"""From a page of parsed messages to decisions: predictions and explanations computed as one batch.

A message that cannot be read, or that the model cannot classify, goes to the
review folder with the reason; so does one the model would route to a
category without a ``[categories.<Name>]`` section, or with too little
confidence.  One odd message never costs the page: when the batch fails, the
page is classified (or explained) one message at a time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assoc_ai_core.ext.connectors import Capability, FetchedMail
from assoc_ai_core.i18n import percent, tr
from assoc_ai_core.jobs.budget import OverBudget, ReadingBudget
from assoc_ai_core.jobs.plan import (
    Decision,
    DecisionKind,
    MessageKey,
    category_plan,
    key_of,
    log_key,
    review_label,
    review_plan,
)
from assoc_ai_core.jobs.settings import TriageSettings
from assoc_ai_core.jobs.state import StateStore, now_iso
from assoc_ai_core.jobs.threads import AUTO, Earlier, ThreadMemory, ThreadRule, takes_parent
from assoc_ai_core.records.mail import Message, Prediction

log = logging.getLogger(__name__)

#: how far a reply's thread may overrule the model (tuned on devT and Enron, checked on devA: bench/threads.py)
THREAD_RULE = ThreadRule()


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
                sender_key: Any = None, memory: ThreadMemory | None = None) -> list[Decision]:
    """One decision per message of ``todo``, in order (keys are unique within a page).

    With a ``budget``, each message is cleaned on its own within the time
    limit (a message over it goes to review with the reason).  With ``[triage]
    threads``, a reply may then follow its thread (:func:`follow_threads`,
    reading ``memory``, or the state file when none is given).
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
    if settings.threads:
        decisions = follow_threads(model, decisions, output.predictions, settings=settings,
                                   capabilities=capabilities, memory=memory)
    return decisions


def follow_threads(model: Any, decisions: Sequence[Decision], predictions: Mapping[MessageKey, Prediction], *,
                   settings: TriageSettings, capabilities: Collection[Capability], memory: ThreadMemory | None = None,
                   rule: ThreadRule = THREAD_RULE) -> list[Decision]:
    """The page's decisions, where a reply goes where its thread went when the model does not disagree.

    The parent is read from ``memory`` (or from the state file when none is
    given) and from the messages earlier in the page.  Each decided message's
    topic is stored (a keyed hash) for the replies that name no parent in
    their headers.  A failure to read the thread leaves the model's decisions
    as they are: the thread is a help, never a reason to stop.
    """
    own: StateStore | None = None
    try:
        if memory is None:
            own = StateStore(settings.state_path, key_file=settings.key_file)
            memory = ThreadMemory(own, settings.instance, privacy=own.privacy(), dry_run=settings.dry_run,
                                  tags=[c.tag for c in settings.categories.values() if c.tag])
        out: list[Decision] = []
        for d in decisions:
            pred = predictions.get(d.key)
            if pred is not None and d.decision is not DecisionKind.ERROR:
                d = thread_decision(model, d, pred, memory, settings=settings, capabilities=capabilities, rule=rule)
            routed = d.decision is DecisionKind.AUTO and d.category
            memory.remember(d.key, d.message.subject,
                            Earlier(d.key, str(d.category), AUTO, d.probability, now_iso()) if routed else None)
            out.append(d)
        return out
    except Exception as exc:  # the model's own decisions stand
        log.warning(tr(f"Fils de discussion non lus ({type(exc).__name__}) : décisions du modèle seul.",
                       f"Threads not read ({type(exc).__name__}): the model's decisions alone."))
        return list(decisions)
    finally:
        if own is not None:
            own.close()


def _threshold(model: Any, category: str) -> float:
    """The probability ``category`` needs to be routed automatically by the model."""
    classes = [str(c) for c in getattr(model, "classes_", [])]
    if category in classes and hasattr(model, "threshold_of"):
        return float(model.threshold_of(classes.index(category)))
    return float(getattr(model, "threshold_", 1.0))


def thread_decision(model: Any, d: Decision, pred: Prediction, memory: ThreadMemory, *, settings: TriageSettings,
                    capabilities: Collection[Capability], rule: ThreadRule = THREAD_RULE) -> Decision:
    """``d`` routed to its thread's category when :func:`~assoc_ai_core.jobs.threads.takes_parent` allows it.

    The new decision stays automated and says why: its reason and its
    explanation name the thread (the parent by its log reference, never its
    Message-ID), the date and the category; the model's own choice is kept in
    the explanation.
    """
    parent = memory.parent_of(d.message.headers, d.message.subject)
    if parent is None or parent.category not in settings.categories:
        return d
    if d.decision is DecisionKind.AUTO and d.category == parent.category:
        return d  # the model routed it there on its own: the thread adds nothing to say
    if not takes_parent(pred.scores, parent, rule, _threshold(model, parent.category)):
        return d
    from assoc_ai_core.mail.explain import thread_sentence

    category = parent.category
    when = parent.date
    p = float(pred.scores[category])
    reason = thread_sentence(category, when.date() if when else None)
    explanation = dict(d.explanation) if isinstance(d.explanation, dict) else {}
    if "sentence" in explanation:
        explanation["model_sentence"] = explanation["sentence"]
    explanation["sentence"] = reason + tr(f" (modèle : {percent(p, 'fr')} pour {category}).",
                                          f" (model: {percent(p, 'en')} for {category}).")
    explanation["thread"] = {
        "rule": "thread", "parent": log_key(parent.key), "category": category, "sorted_by": parent.how,
        "parent_probability": parent.probability, "parent_date": when.date().isoformat() if when else None,
        "model_category": pred.label, "model_probability": round(float(pred.probability), 4),
        "model_decision": d.decision.value,
    }
    if pred.label != category:
        runner, runner_p = pred.label, float(pred.probability)
    else:
        runner, runner_p = pred.runner_up, float(pred.runner_up_probability)
    return Decision(d.fetched, d.message, DecisionKind.AUTO, category=category, probability=p, runner_up=runner,
                    runner_up_probability=runner_p, explanation=explanation, reason=reason,
                    plan=category_plan(settings.categories[category], d.message, capabilities))


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


__all__ = ["PageModelOutput", "unconfigured_categories", "decide_page", "run_model", "clean_within_budget", "explain_page",
           "explain_one", "decision_from", "follow_threads", "thread_decision", "THREAD_RULE"]
