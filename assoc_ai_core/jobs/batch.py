"""Label and move plans of a page carried out together: one connector call per (action, target), step by step.

The journal is the same as one message at a time — one intent row per message
and step, committed before the action starts, marked done after it — only
written for the whole batch in one transaction per step: the connector acts
once per (kind, target) group (``add_label_many``, ``move_many``), then the
group's steps are marked done with the new locations and the next steps'
intents, then the next step.  A run killed anywhere leaves each message
``pending`` with one open intent, which the next run resumes like any
interrupted message (actions are idempotent, so an intent carried out for part
of a group only is simply done again).  A group whose batch call fails is handed
back to the one-message path, which reports each failure on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.execute import Executor
from assoc_ai_core.jobs.plan import Action, Decision, MessageKey, MessageStatus, Plan, StepStatus

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    """One message of a batch: where it is now and its open intent."""

    decision: Decision
    ref: MailRef
    intent: int | None = None

    @property
    def key(self) -> MessageKey:
        """The message's stable key."""
        return self.decision.key

    @property
    def plan(self) -> Plan:
        """The message's plan of actions."""
        return self.decision.plan


def carry_out(executor: Executor, live: Sequence[InFlight], on_complete: Callable[[Decision], None],
              ) -> list[InFlight]:
    """Carry out the plans of ``live`` (each with its step 0 intent journalled) step by step, as batches.

    ``on_complete`` is called for each message whose plan is complete; returns
    the messages to finish one at a time (a failed batch, a message the
    connector left out, a journal not as expected).
    """
    alone: list[InFlight] = []
    step = 0
    while live:
        acted = _act(executor, live, step, alone)
        live = _commit(executor, acted, step, alone)
        for item, _ in acted:
            executor.tick("done", item.plan[step].kind)
        for item, _ in acted:
            if step + 1 == len(item.plan):
                on_complete(item.decision)
        step += 1
    return alone


def _act(executor: Executor, live: Sequence[InFlight], step: int, alone: list[InFlight],
         ) -> list[tuple[InFlight, MailRef]]:
    """Step ``step`` of every message, one connector call per (kind, target); what was done, and where."""
    groups: dict[tuple[Action, str], list[InFlight]] = {}
    for item in live:
        groups.setdefault((item.plan[step].kind, item.plan[step].target), []).append(item)
    acted: list[tuple[InFlight, MailRef]] = []
    for (kind, target), items in groups.items():
        for _ in items:
            executor.tick("intent", kind)
        try:
            moved = executor.act_many(kind, target, [item.ref for item in items])
        except Exception as exc:  # one bad message must not fail the group: retried one by one
            log.warning(tr(
                f"Action groupée {kind} sur {len(items)} message(s) impossible ({type(exc).__name__}) : "
                "reprise message par message.",
                f"Batched {kind} of {len(items)} message(s) failed ({type(exc).__name__}): "
                "retrying message by message."))
            alone.extend(items)
            continue
        for item in items:
            new_ref = moved.get(item.key)
            if new_ref is None:
                alone.append(item)
                continue
            executor.actions += 1
            executor.tick("act", kind)
            acted.append((item, new_ref))
    return acted


def _commit(executor: Executor, acted: Sequence[tuple[InFlight, MailRef]], step: int, alone: list[InFlight],
            ) -> list[InFlight]:
    """One transaction: the steps done, the new locations, the next steps' intents; the messages going on."""
    state, instance = executor.state, executor.instance
    following: list[InFlight] = []
    with state.transaction():
        for item, new_ref in acted:
            if item.intent is not None:
                state.finish_action(item.intent, StepStatus.DONE, folder=new_ref.folder, uid=new_ref.uid)
            state.set_location(instance, item.key, new_ref.folder, new_ref.uid)
            item.ref = new_ref
            if step + 1 == len(item.plan):
                state.set_message_status(instance, item.key, MessageStatus.DONE)
                continue
            item.intent = executor.journal_next(item.key, item.plan, step + 1, new_ref)
            (following if item.intent is not None else alone).append(item)
    return following


__all__ = ["InFlight", "carry_out"]
