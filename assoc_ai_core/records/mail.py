"""Plain data passed between the parts of assoc-ai: messages and predictions.

Frozen dataclasses, so a record can be logged, compared and sent to another
process without surprises.  People data (donors, members) lives in
:mod:`assoc_ai_core.people`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment's name and type; the content itself is never kept."""

    filename: str
    content_type: str
    size: int = 0


@dataclass(frozen=True)
class Message:
    """One e-mail as assoc-ai sees it after parsing.

    ``key`` is stable across runs and servers: the Message-ID when there is one,
    else a digest of the raw bytes.  ``label`` is the category when known (the
    folder a volunteer filed it in).  ``defects`` lists what the parser had to
    work around; ``error`` is set when the message could not be read at all, in
    which case it must go to human review with that reason.
    """

    key: str
    subject: str = ""
    sender: str = ""
    sender_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: datetime | None = None
    text: str = ""
    html: bool = False
    attachments: tuple[Attachment, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    label: str | None = None
    source: str | None = None
    defects: tuple[str, ...] = ()
    error: str | None = None

    @property
    def message_id(self) -> str:
        """The Message-ID header without angle brackets, or ``""``."""
        return self.headers.get("message-id", "").strip().strip("<>")

    @property
    def sender_domain(self) -> str:
        """Domain part of the sender address, lower-cased."""
        return self.sender.rpartition("@")[2].lower() if "@" in self.sender else ""

    @property
    def is_automated(self) -> bool:
        """True for auto-replies, bounces and list mail (RFC 3834 and common practice)."""
        h = self.headers
        auto = h.get("auto-submitted", "no").strip().lower()
        if auto and auto != "no":
            return True
        if h.get("precedence", "").strip().lower() in ("bulk", "list", "junk", "auto_reply"):
            return True
        if any(k in h for k in ("list-id", "list-unsubscribe", "x-autoreply", "x-autorespond")):
            return True
        local = self.sender.partition("@")[0].lower()
        return local in ("mailer-daemon", "postmaster") or local.startswith(("noreply", "no-reply", "ne-pas-repondre", "nepasrepondre"))


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model says about one message.

    ``decision`` is ``"auto"`` when the probability reaches the model's review
    threshold (the mail may be acted on automatically) and ``"review"`` when a
    human should look; ``reason`` says why a message went to review.
    """

    key: str
    label: str | None
    probability: float
    runner_up: str | None
    runner_up_probability: float
    decision: str
    scores: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
