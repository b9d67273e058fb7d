"""The contract between assoc-ai and the systems it reads and acts on.

A plugin registers connector *classes* (see :mod:`assoc_ai_core.ext.hookspecs`); the
host builds one from configuration (``Connector.Config``) and calls its methods.
Building a connector never does I/O: ``open()`` (or ``with``) connects.

Mailbox connectors speak in :class:`MailRef` (where a message is now) and raw
RFC 822 bytes; parsing and cleaning stay in the core so every mailbox is read
the same way.  Actions must be idempotent (moving a message already in its
target folder, or tagging a subject already tagged, does nothing): together
with the host's intent/done journal this is what makes a killed run safe to
start again.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

from assoc_ai_core.errors import CapabilityError, UnknownConnectorError
from assoc_ai_core.ext.headers import header_date
from assoc_ai_core.i18n import tr


# Not StrEnum: str() and f-strings of a member stay "Capability.READ", as plugins and messages already expect.
class Capability(str, Enum):  # noqa: UP042
    """What a connector can do; the host checks before asking."""

    READ = "read"
    MOVE = "move"
    LABEL = "label"
    TAG_SUBJECT = "tag_subject"
    CREATE_FOLDER = "create_folder"
    FORWARD = "forward"
    WATCH = "watch"
    WRITE_SCORES = "write_scores"


@dataclass(frozen=True, slots=True)
class MailRef:
    """Where one message is: the connector's own id in one folder, plus its stable key.

    ``uid`` is whatever the connector needs to find the message again (IMAP UID,
    Gmail or Graph message id, file path); ``key`` is the stable key used by the
    audit trail (normally the Message-ID), identical across folders and servers.
    """

    folder: str
    uid: str
    key: str


@dataclass(frozen=True, slots=True)
class FetchedMail:
    """A message as fetched: where it is and its raw bytes."""

    ref: MailRef
    raw: bytes


@dataclass(frozen=True)
class Page:
    """One page of new mail, and the cursor to store once the page is handled.

    ``resync`` is True when the connector lost its place (IMAP UIDVALIDITY
    changed, Gmail history too old, Graph delta 410) and is replaying a folder:
    the host must then skip every message whose key it already handled.
    """

    messages: list[FetchedMail]
    cursor: Mapping[str, Any]
    resync: bool = False


class Connector(ABC):
    """Base of every connector.

    Subclasses set ``id`` (a lower-case slug), ``Config`` (a frozen dataclass;
    secret fields typed :class:`assoc_ai_core.ext.config.Secret`) and
    ``capabilities``.  ``__init__`` stores the config only.
    """

    id: ClassVar[str]
    kind: ClassVar[str] = "generic"
    Config: ClassVar[type]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    description: ClassVar[str] = ""

    def __init__(self, config: Any) -> None:
        self.config = config

    # Optional steps, not abstract: a connector with nothing to connect (local files) keeps these no-ops.
    def open(self) -> None:  # noqa: B027
        """Connect and authenticate; raise AuthError or ConnectorError."""

    def close(self) -> None:  # noqa: B027
        """Release connections; safe to call twice and never raises."""

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def require(self, capability: Capability) -> None:
        """Raise CapabilityError when this connector lacks ``capability``."""
        if capability not in self.capabilities:
            raise CapabilityError(
                tr(
                    f"Le connecteur « {self.id} » ne sait pas faire : {capability.value}. "
                    "Retirez cette action de la configuration.",
                    f"Connector '{self.id}' cannot do: {capability.value}. "
                    "Remove this action from the configuration.",
                ),
                connector_id=self.id,
            )


class MailboxConnector(Connector):
    """A mailbox: read new mail incrementally, act on messages, see where they are."""

    kind: ClassVar[str] = "mailbox"

    @abstractmethod
    def list_folders(self) -> list[str]:
        """Names of the folders (or labels) of the mailbox, ``/``-separated when nested."""

    @abstractmethod
    def fetch_new(self, folder: str, cursor: Mapping[str, Any] | None, *, page_size: int = 100) -> Iterator[Page]:
        """Yield pages of mail that arrived in ``folder`` since ``cursor`` (all of it when None)."""

    @abstractmethod
    def fetch_all(self, folder: str) -> Iterator[FetchedMail]:
        """Yield every message of ``folder`` (used to train from mail volunteers sorted)."""

    def cursor_at_now(self, folder: str) -> Mapping[str, Any] | None:
        """A cursor for ``folder`` placed after the mail it holds now; None when the connector cannot place one.

        :meth:`fetch_new` from this cursor yields only mail that arrives later
        (IMAP: UIDNEXT with UIDVALIDITY; Gmail: the profile's historyId;
        Graph: a delta link taken now).  The host asks for it on a job's first
        run, so a new job never acts on years of backlog; old mail is read only
        by the explicit backlog command (:meth:`fetch_since`).  With None, the
        host reads the folder with :meth:`fetch_new` from no cursor and leaves
        every message already there alone.
        """
        return None

    def fetch_since(self, folder: str, since: datetime) -> Iterator[FetchedMail]:
        """Yield the messages of ``folder`` received on or after ``since`` (an aware datetime), oldest first if possible.

        Used by the backlog command.  This default reads :meth:`fetch_all` and
        keeps messages whose ``Date`` header is not before ``since`` (undated
        mail is kept); connectors whose server can search by date override it.
        """
        for fetched in self.fetch_all(folder):
            sent = header_date(fetched.raw)
            if sent is None or sent >= since:
                yield fetched

    @abstractmethod
    def locate(self, refs: Sequence[MailRef]) -> dict[str, list[MailRef]]:
        """Map each ref's key to where that message is now (empty list: deleted)."""

    def ensure_folder(self, name: str) -> None:
        """Create ``name`` (and its parents) if missing."""
        self.require(Capability.CREATE_FOLDER)

    def move(self, ref: MailRef, folder: str) -> MailRef:
        """Move a message to ``folder`` and return its new ref; no-op if already there."""
        self.require(Capability.MOVE)
        raise CapabilityError("move", connector_id=self.id)  # pragma: no cover - require() raised

    def add_label(self, ref: MailRef, label: str) -> None:
        """Attach a label or keyword to a message; no-op if already present."""
        self.require(Capability.LABEL)

    def move_many(self, refs: Sequence[MailRef], folder: str) -> dict[str, MailRef]:
        """Move several messages to ``folder``; return each moved message's key -> its new ref.

        The host calls it with the messages of one page that go to the same
        folder.  Same contract as :meth:`move`, message by message: idempotent,
        no-op for a message already in ``folder``.  A message that cannot be
        found is left out of the result; on an exception any subset may have
        been moved.  In both cases the host retries the messages concerned one
        by one with :meth:`move`.  This default calls :meth:`move` for each
        ref; connectors whose server can move a set in one request override it.
        """
        self.require(Capability.MOVE)
        return {ref.key: self.move(ref, folder) for ref in refs}

    def add_label_many(self, refs: Sequence[MailRef], label: str) -> None:
        """Attach ``label`` to several messages (idempotent, like :meth:`add_label`).

        Raise when any message could not be labelled (the others may have
        been): the host then retries each message with :meth:`add_label`.
        This default calls :meth:`add_label` for each ref.
        """
        self.require(Capability.LABEL)
        for ref in refs:
            self.add_label(ref, label)

    def tag_subject(self, ref: MailRef, tag: str) -> MailRef:
        """Prefix the subject with ``tag`` (e.g. ``[#Adhésion]``); no-op if already tagged."""
        self.require(Capability.TAG_SUBJECT)
        raise CapabilityError("tag_subject", connector_id=self.id)  # pragma: no cover

    def remove_label(self, ref: MailRef, label: str) -> None:
        """Take ``label`` off a message (a person corrected the job's category); no-op when it is not there.

        The default does nothing: a connector that can label and unlabel overrides it.
        """

    def untag_subject(self, ref: MailRef, tag: str) -> MailRef:
        """Take ``tag`` out of the subject (the job's wrong ``[#Tag]`` after a correction) and return where the
        message is; no-op when the subject does not carry it.  The default does nothing and returns ``ref``."""
        return ref

    def forward(self, ref: MailRef, raw: bytes, to: str) -> None:
        """Forward natively (Gmail, Graph); connectors without it use the host's SMTP."""
        self.require(Capability.FORWARD)


@dataclass
class ConnectorRegistry:
    """Connector classes registered by plugins, by id."""

    _classes: dict[str, type[Connector]] = field(default_factory=dict)
    _origin: dict[str, str] = field(default_factory=dict)

    def add(self, cls: type[Connector], *, plugin: str = "") -> None:
        """Register a connector class (not an instance)."""
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise TypeError(f"{cls!r} is not a Connector subclass")
        cid = getattr(cls, "id", "")
        if not cid or not cid.replace("_", "").isalnum() or cid != cid.lower():
            raise ValueError(f"connector id must be a lower-case slug, got {cid!r}")
        if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
            raise TypeError(f"{cls.__name__}.Config must be a dataclass")
        if cid in self._classes and self._classes[cid] is not cls:
            raise ValueError(f"connector id {cid!r} already registered by {self._origin[cid]}")
        self._classes[cid] = cls
        self._origin[cid] = plugin or cls.__module__

    add_mailbox = add
    add_crm = add

    def get(self, connector_id: str) -> type[Connector]:
        """The class registered under ``connector_id``; the error lists known ids."""
        try:
            return self._classes[connector_id]
        except KeyError:
            known = ", ".join(sorted(self._classes)) or "-"
            raise UnknownConnectorError(
                tr(
                    f"Connecteur inconnu « {connector_id} ». Connecteurs installés : {known}. "
                    f"Installez le plugin qui le fournit (pip install assoc-ai-{connector_id}).",
                    f"Unknown connector '{connector_id}'. Installed connectors: {known}. "
                    f"Install the plugin that provides it (pip install assoc-ai-{connector_id}).",
                )
            ) from None

    def ids(self) -> list[str]:
        """Sorted ids of every registered connector."""
        return sorted(self._classes)

    def origin(self, connector_id: str) -> str:
        """The plugin (or module) that registered ``connector_id``."""
        return self._origin[connector_id]
