"""The job's vocabulary: decisions, plans of mailbox actions, and the journal's statuses.

The enums are ``str``-valued and their values are exactly what the state file
and the audit trail hold (``auto``, ``move``, ``done``…), so a decision or a
step is written as it always was; only the code handling them is typed.
A :class:`Plan` is the ordered list of :class:`Step` the job carries out for
one message: label, subject tag, forward(s), move — the move last, so until it
is done the message is still where the next run will find it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType

from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailRef
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.settings import CategorySettings
from assoc_ai_core.records.mail import Message

#: a message's stable key (normally its Message-ID), the same in every folder and run; the job keys messages by it
MessageKey = NewType("MessageKey", str)


def key_of(fetched: FetchedMail) -> MessageKey:
    """The stable key of a fetched message."""
    return MessageKey(fetched.ref.key)


#: joins a reused Message-ID and the digest that tells the second message apart (never in a real Message-ID)
REUSED = "#reused-"


def reused_key(key: str, identity: str) -> MessageKey:
    """The state's key for a different message that reuses ``key`` as its Message-ID."""
    return MessageKey(f"{key}{REUSED}{identity[:12]}")


def log_key(key: str) -> str:
    """How the log names a message: a short digest of its key, shown again by ``assoc-ai audit`` (column ``ref``).

    A Message-ID often holds an address or a name; the log must not, yet an
    administrator must be able to match a log line with its audit row.
    """
    return "m-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def mailbox_key(key: str) -> str:
    """The key the mailbox knows a message by (a reused Message-ID's state key without its suffix)."""
    return key.partition(REUSED)[0]


def for_mailbox(ref: MailRef) -> MailRef:
    """``ref`` as the connector must see it: with the Message-ID the mailbox holds."""
    key = mailbox_key(ref.key)
    return ref if key == ref.key else MailRef(ref.folder, ref.uid, key)


def from_mailbox(ref: MailRef, key: str) -> MailRef:
    """A connector's answer about ``key``'s message, with the state's key back on it."""
    return ref if ref.key == key else MailRef(ref.folder, ref.uid, key)


class DecisionKind(StrEnum):
    """What the job decided: route it (``auto``), ask a person (``review``), or it could not read it (``error``)."""

    AUTO = "auto"
    REVIEW = "review"
    ERROR = "error"


class Action(StrEnum):
    """One kind of mailbox action in a plan."""

    LABEL = "label"
    TAG = "tag"
    MOVE = "move"
    FORWARD = "forward"


#: actions a connector can apply to many messages in one call (``add_label_many``, ``move_many``)
BATCHED_ACTIONS = frozenset({Action.LABEL, Action.MOVE})


class StepStatus(StrEnum):
    """A journal row's status: ``intent`` before the action, then how it ended."""

    INTENT = "intent"
    DONE = "done"
    SKIPPED = "skipped"
    UNCERTAIN = "uncertain"  # a forward that may have gone out: never sent again
    REFUSED = "refused"
    FAILED = "failed"  # retried on the next run
    WOULD = "would"  # dry run


#: statuses after which a step is never attempted again
SETTLED = frozenset({StepStatus.DONE, StepStatus.SKIPPED, StepStatus.UNCERTAIN, StepStatus.REFUSED})


class MessageStatus(StrEnum):
    """Where a decided message stands."""

    PENDING = "pending"  # decided, plan not complete: the next run resumes it
    DONE = "done"
    WOULD = "would"  # decided in a dry run
    LOST = "lost"  # gone from the mailbox before its plan was complete


@dataclass(frozen=True)
class Step:
    """One action of a plan; ``skip`` says why it is recorded without being carried out."""

    kind: Action
    target: str
    category: str | None = None  # forwards name the category in the forwarded mail
    skip: str | None = None

    def to_record(self) -> dict[str, str]:
        """The step as the state file stores it (plain strings, keys only when set)."""
        row = {"kind": self.kind.value, "target": self.target}
        if self.category is not None:
            row["category"] = self.category
        if self.skip is not None:
            row["skip"] = self.skip
        return row

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> Step:
        """A step read back from the state file."""
        return cls(Action(row["kind"]), str(row["target"]), row.get("category"), row.get("skip") or None)


@dataclass(frozen=True)
class Plan:
    """The ordered steps the job carries out for one message."""

    steps: tuple[Step, ...] = ()

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __getitem__(self, index: int) -> Step:
        return self.steps[index]

    @property
    def batchable(self) -> bool:
        """Plans made only of labels and moves are carried out a page at a time; tags and forwards one by one."""
        return all(step.kind in BATCHED_ACTIONS and step.skip is None for step in self.steps)

    def to_records(self) -> list[dict[str, str]]:
        """The plan as the state file stores it."""
        return [step.to_record() for step in self.steps]

    @classmethod
    def from_records(cls, rows: Sequence[Mapping[str, Any]]) -> Plan:
        """A plan read back from the state file."""
        return cls(tuple(Step.from_record(row) for row in rows))

    def describe(self) -> str:
        """``kind:target, …`` for a log line (``-`` when empty)."""
        return ", ".join(f"{s.kind.value}:{s.target}" for s in self.steps) or "-"


@dataclass(frozen=True)
class Decision:
    """What the job decided for one fetched message, and the plan of mailbox actions."""

    fetched: FetchedMail
    message: Message
    decision: DecisionKind
    category: str | None = None
    probability: float | None = None
    runner_up: str | None = None
    runner_up_probability: float | None = None
    explanation: Any = None
    reason: str | None = None
    plan: Plan = field(default_factory=Plan)

    @property
    def key(self) -> MessageKey:
        """The message's stable key."""
        return key_of(self.fetched)

    def audit_record(self, *, instance: str, model_version: str | None, dry_run: bool) -> dict[str, Any]:
        """The audit fields observers receive (``decision_recorded``): never the message text."""
        return {"instance": instance, "key": self.key, "decision": self.decision.value, "category": self.category,
                "probability": self.probability, "runner_up": self.runner_up, "reason": self.reason,
                "model_version": model_version, "dry_run": dry_run, "actions": [s.kind.value for s in self.plan]}

    def would(self) -> dict[str, Any]:
        """What a dry run reports for this message (``triage run --dry-run --json``)."""
        date = self.message.date.isoformat() if self.message.date is not None else None
        return {"key": self.key, "decision": self.decision.value, "category": self.category,
                "probability": self.probability, "reason": self.reason, "date": date,
                "actions": [{"kind": s.kind.value, "target": s.target} for s in self.plan]}


# ============================================================================ planning
def review_label(kind: str, guess: str | None = None) -> str:
    """The label that tells the person in the mail client why a message waits for them.

    One of a few fixed labels (so a mailbox does not fill with labels):
    ``unsure`` (with the model's best guess, one label per category),
    ``unreadable`` or ``no_rule``.
    """
    if kind == "unsure" and guess:
        return tr(f"Doute : {guess} ?", f"Unsure: {guess}?")
    if kind == "no_rule" and guess:
        return tr(f"Sans règle : {guess}", f"No rule: {guess}")
    return tr("Illisible", "Unreadable")


def review_plan(review_folder: str, capabilities: Collection[Capability], label: str | None = None) -> Plan:
    """Send a message to a person: move it to the review folder (or label it, for a connector that cannot move).

    With ``label`` (see :func:`review_label`) and a connector that labels, the
    reason is shown on the message too, where the person reads it.
    """
    if Capability.MOVE in capabilities:
        if label and Capability.LABEL in capabilities:
            return Plan((Step(Action.LABEL, label), Step(Action.MOVE, review_folder)))
        return Plan((Step(Action.MOVE, review_folder),))
    if Capability.LABEL in capabilities:
        return Plan((Step(Action.LABEL, review_folder),))
    return Plan()


def category_plan(category: CategorySettings, message: Message, capabilities: Collection[Capability]) -> Plan:
    """The category's actions the connector can do, in order: label, tag, forward(s), move."""
    steps: list[Step] = []
    if category.label and Capability.LABEL in capabilities:
        steps.append(Step(Action.LABEL, category.label))
    if category.tag and Capability.TAG_SUBJECT in capabilities:
        steps.append(Step(Action.TAG, category.tag))
    if category.forward:
        from assoc_ai_core.jobs.forwarding import should_forward

        ok, why = should_forward(message)
        steps += [Step(Action.FORWARD, address, category.name, None if ok else why) for address in category.forward]
    if category.folder and Capability.MOVE in capabilities:
        steps.append(Step(Action.MOVE, category.folder))
    return Plan(tuple(steps))


__all__ = ["MessageKey", "key_of", "log_key", "REUSED", "reused_key", "mailbox_key", "for_mailbox", "from_mailbox", "DecisionKind", "Action", "BATCHED_ACTIONS", "StepStatus", "SETTLED",
           "MessageStatus", "Step", "Plan", "Decision", "review_plan", "review_label",
           "category_plan"]
