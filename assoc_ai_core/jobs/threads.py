"""Thread and sender memory: a reply usually belongs where the message it answers was sorted.

The state file already knows, for every message the job decided, its key (the
Message-ID), its category, how that category came about (routed by the model
with its probability, or put there by a person, which the state records as a
correction) and when.  A reply names the messages it answers in
``In-Reply-To`` and ``References``; the nearest one the state knows is its
*parent*.  Mail that names none (old exports such as Enron's, some web mail)
finds its parent by subject when it says it is a reply (``Re:``): each decided
message's topic is stored as a keyed hash (table ``thread_topics``, made on
first use), never as text.  Erasure tombstones a message (its key becomes a
keyed hash) and deletes its topic row, so no reply finds it any more.

The rule is careful, because a naive one loses precision (``bench/threads.py``
measures every variant on devT, Enron and devA):

* the parent counts only when a person sorted it, or the model routed it on
  its own at or above the auto-routing threshold (a message still waiting in
  review, or routed by this very rule below the threshold, says nothing, and
  no older ancestor is asked instead);
* the reply takes the parent's category only when the model's own probability
  for it is not far below its best and not small (:class:`ThreadRule`); a
  reply whose text clearly points elsewhere keeps the model's decision.

A sender's earlier categories (by keyed sender hash) are read the same way
(:meth:`ThreadMemory.sender_history`); the bench measures them as a prior and
as a rule, and the job does not use them to decide.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from assoc_ai_core.ext.subject import strip_tags
from assoc_ai_core.jobs.state import MessageRecord, SenderPrivacy, StateStore

__all__ = ["PERSON", "AUTO", "Earlier", "ThreadRule", "thread_references", "subject_topic", "topic_key",
           "earlier_from_record", "takes_parent", "ThreadMemory", "MAX_REFERENCES"]

PERSON = "person"
AUTO = "auto"

#: a hostile References header may list thousands of ids; a real thread's nearest ancestors are its last ones
MAX_REFERENCES = 20
_MSGID = re.compile(r"<([^<>\s]{1,998})>")


@dataclass(frozen=True)
class Earlier:
    """What the state remembers of one earlier message: its category and who or what put it there."""

    key: str
    category: str
    how: str  # PERSON or AUTO
    probability: float | None = None
    decided_at: str | None = None

    @property
    def date(self) -> datetime | None:
        """When it was decided, or None when unknown."""
        try:
            return datetime.fromisoformat(self.decided_at) if self.decided_at else None
        except ValueError:
            return None


@dataclass(frozen=True)
class ThreadRule:
    """How far the thread may overrule the model.

    ``max_gap``: the model's best probability minus its probability for the
    parent's category may be at most this (0.2: the parent's category must be
    within 20 points of the model's favourite).  ``min_probability``: the
    model's probability for the parent's category must reach this at least
    (0.3: the thread may tip a close call, never lift a category the model
    hardly considers).  The defaults are what ``bench/threads.py`` measured
    best on devT and Enron (and checked on devA).
    ``auto_parent_margin``: an automatically routed parent counts only when its
    probability reached the threshold plus this margin.
    """

    max_gap: float = 0.2
    min_probability: float = 0.3
    auto_parent_margin: float = 0.0


def thread_references(headers: Mapping[str, str]) -> list[str]:
    """The Message-IDs a message answers, nearest first: ``In-Reply-To``, then ``References`` from its end.

    Brackets are taken off, as in the state's keys; at most :data:`MAX_REFERENCES`.
    """
    found: list[str] = []
    for name in ("in-reply-to", "references"):
        ids = _MSGID.findall(str(headers.get(name, "") or ""))
        found += ids[:1] if name == "in-reply-to" else ids[::-1]
    return list(dict.fromkeys(found))[:MAX_REFERENCES]


_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|rif|fw|fwd|tr|wg)\s*(?:\[\d{1,4}\])?\s*:\s*)+", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"\b(?:re|aw|sv|rif)\b", re.IGNORECASE)
_TOPIC_CHARS = 300  # past this a subject is its own topic anyway; bounds the hashing of hostile subjects


def subject_topic(subject: str, tags: Sequence[str] = ()) -> tuple[str, bool]:
    """A subject's topic (without the job's ``[#Tag]``, ``Re:``/``Fwd:``/``TR:`` prefixes, case and extra spaces)
    and whether the subject says it is a reply (``Re:``, ``AW:``, ``SV:``).

    For mail that names no parent in its headers (old exports, some web mail):
    a reply then finds its thread by topic.
    """
    text = strip_tags(subject or "", tags)[:_TOPIC_CHARS]
    match = _PREFIX.match(text)
    reply = bool(match and _REPLY_PREFIX.search(match.group(0)))
    rest = text[match.end():] if match else text
    return " ".join(rest.lower().split()), reply


def topic_key(privacy: SenderPrivacy, topic: str) -> str:
    """The keyed hash a topic is stored as (the subject itself is never stored)."""
    return privacy.hash("thread-topic\x00" + topic) if topic else ""


def earlier_from_record(record: MessageRecord) -> Earlier | None:
    """What a decided message says about its thread, or None (in review and never sorted, erased, failed).

    A person's move is recorded as a correction, which sets the effective
    category: that wins over whatever the model had said.
    """
    if record.status == "erased":
        return None
    effective = record.effective_category
    if effective and (record.decision != "auto" or effective != record.category):
        return Earlier(record.key, effective, PERSON, None, record.decided_at)
    if record.decision == "auto" and record.category and effective == record.category:
        return Earlier(record.key, record.category, AUTO, record.probability, record.decided_at)
    return None


def takes_parent(scores: Mapping[str, float], parent: Earlier, rule: ThreadRule, threshold: float) -> bool:
    """Whether a reply with the model's ``scores`` goes where its ``parent`` went.

    ``threshold`` is the model's auto-routing threshold for the parent's
    category: an automatically routed parent below it (routed by this rule, or
    under an older model) does not count.
    """
    if parent.category not in scores:
        return False  # a category the model no longer knows: the thread cannot vouch for it
    if parent.how == AUTO and (parent.probability is None
                               or parent.probability < threshold + rule.auto_parent_margin):
        return False
    own = float(scores[parent.category])
    best = max(float(v) for v in scores.values())
    return own >= rule.min_probability and best - own <= rule.max_gap


class ThreadMemory:
    """Parents and sender histories read from the state file, plus the decisions of the page being decided.

    ``dry_run``: a simulation may lean on earlier simulated decisions; a real
    run only on real ones.  ``tags``: the job's ``[#Tag]`` subject marks,
    left out of topics.  Without ``privacy`` there is no topic nor sender
    memory (both are keyed hashes), only the headers' references.
    """

    def __init__(self, state: StateStore, instance: str, *, privacy: SenderPrivacy | None = None,
                 dry_run: bool = False, tags: Sequence[str] = ()) -> None:
        self.state = state
        self.instance = instance
        self.privacy = privacy
        self.dry_run = dry_run
        self.tags = tuple(tags)
        # the page's own automatic decisions: by key, and by topic hash (None: decided, waiting in review)
        self._page: dict[str, Earlier | None] = {}
        self._page_topics: dict[str, Earlier | None] = {}

    def topic_of(self, subject: str) -> tuple[str, bool]:
        """The keyed hash of a subject's topic (``""`` when none or without privacy), and whether it is a reply."""
        topic, reply = subject_topic(subject, self.tags)
        return (topic_key(self.privacy, topic) if self.privacy is not None else ""), reply

    def remember(self, key: str, subject: str, earlier: Earlier | None) -> None:
        """A message of the page just decided (``earlier`` None when it went to review): a later reply in the same
        page may find it, and its topic is stored for the replies of later pages."""
        self._page[key] = earlier
        topic, _reply = self.topic_of(subject)
        if topic:
            self._page_topics[topic] = earlier
            self.state.record_thread_topic(self.instance, key, topic)

    def parent_of(self, headers: Mapping[str, str], subject: str = "") -> Earlier | None:
        """What the thread says about a message: its parent as :class:`Earlier`, or None.

        The parent is the nearest message named in ``In-Reply-To`` /
        ``References`` that the job has decided; when the headers name none it
        knows, and the subject says it is a reply, the latest decided message
        with the same topic.  The nearest parent decides: when it still waits
        in review, no older one is asked instead (the thread may have changed
        topic).
        """
        refs = thread_references(headers)
        if refs:
            stored = self.state.thread_records(self.instance, refs, dry_run=self.dry_run)
            for ref in refs:
                if ref in self._page:
                    return self._page[ref]
                record = stored.get(ref)
                if record is not None:
                    return earlier_from_record(record)
        topic, reply = self.topic_of(subject)
        if not (topic and reply):
            return None
        if topic in self._page_topics:
            return self._page_topics[topic]
        record = self.state.topic_record(self.instance, topic, dry_run=self.dry_run)
        return earlier_from_record(record) if record is not None else None

    def sender_history(self, sender: str) -> Counter[str]:
        """The categories of this sender's earlier sorted mail (by keyed hash), as counts."""
        if self.privacy is None or not sender:
            return Counter()
        records = self.state.sender_records(self.instance, self.privacy.hash(sender), dry_run=self.dry_run)
        return Counter(e.category for r in records if (e := earlier_from_record(r)) is not None)
