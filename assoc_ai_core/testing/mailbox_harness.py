"""What every check of the mailbox kit stands on: the harness, failures and skips, small helpers.

A check fails with :class:`AssertionError` (message starting ``[conformance]``)
and skips with :class:`CheckSkipped` when the connector does not declare what
the check needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef, Page


class CheckSkipped(Exception):
    """The connector legitimately cannot be checked here (capability not declared)."""


@dataclass
class MailboxHarness:
    """How the kit reaches one fresh mailbox of the connector under test.

    ``make`` builds a new, independent connector instance over that mailbox
    (not opened); ``deliver(folder, raw)`` puts a message in as a mail server
    would.  ``section`` is the ``[mailbox]`` table (with ``connector = id``)
    that builds the same connector from configuration, used by the check that
    runs the job in a subprocess and kills it; ``env`` holds the environment
    that subprocess needs (secret references).  ``secret_values`` are secrets
    that must never appear in a ``repr``.
    """

    make: Callable[[], MailboxConnector]
    deliver: Callable[[str, bytes], None]
    inbox: str = "INBOX"
    section: Mapping[str, Any] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secret_values: Sequence[str] = ()


class RecordingForwarder:
    """A forwarder that only counts what it was asked to send (the kit checks 'at most once')."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.path = Path(path) if path else None

    def send(self, raw: bytes, to: str, *, category: str, key: str, subject: str = "") -> str:
        """Record the forward (to a file too, fsynced, when one was given)."""
        self.sent.append((key, to))
        if self.path is not None:
            # an append-only log, read back after a SIGKILL: each line must be on disk before we return
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps([key, to]) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return f"<fwd-{len(self.sent)}@kit>"

    def counts(self) -> dict[str, int]:
        """Forwards per message key (from the file when there is one)."""
        items = self.sent
        if self.path is not None and self.path.exists():
            items = [tuple(json.loads(line)) for line in self.path.read_text(encoding="utf-8").splitlines() if line]
        out: dict[str, int] = {}
        for key, _ in items:
            out[key] = out.get(key, 0) + 1
        return out


def fail(message: str) -> AssertionError:
    """The error a check raises (marked as a conformance failure)."""
    return AssertionError("[conformance] " + message)


def expect(condition: Any, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise fail(message)


def require(conn: MailboxConnector | type[MailboxConnector], *caps: Capability) -> None:
    """Skip the check when the connector does not declare every one of ``caps``."""
    missing = [c.value for c in caps if c not in conn.capabilities]
    if missing:
        raise CheckSkipped(f"{conn.id} does not declare {', '.join(missing)}")


def opened(harness: MailboxHarness) -> MailboxConnector:
    """A new connector over the harness's mailbox, opened (the caller closes it)."""
    conn = harness.make()
    conn.open()
    return conn


@contextlib.contextmanager
def connected(harness: MailboxHarness, *caps: Capability) -> Iterator[MailboxConnector]:
    """An opened connector, closed on the way out; skips when it does not declare ``caps``."""
    conn = opened(harness)
    try:
        require(conn, *caps)
        yield conn
    finally:
        conn.close()


def deliver_all(harness: MailboxHarness, raws: Sequence[bytes]) -> None:
    """Deliver every message of ``raws`` to the inbox, in order."""
    for raw in raws:
        harness.deliver(harness.inbox, raw)


def drain(conn: MailboxConnector, folder: str, cursor: Mapping[str, Any] | None,
          page_size: int = 100) -> tuple[list[FetchedMail], Mapping[str, Any] | None, list[Page]]:
    """Every page ``fetch_new`` yields from ``cursor``: (messages, last cursor, pages)."""
    mails: list[FetchedMail] = []
    pages = list(conn.fetch_new(folder, cursor, page_size=page_size))
    for page in pages:
        mails.extend(page.messages)
        cursor = page.cursor
    return mails, cursor, pages


def find_ref(conn: MailboxConnector, folder: str, key: str) -> MailRef:
    """The ref of message ``key`` in ``folder``, read with ``fetch_all``."""
    for fetched in conn.fetch_all(folder):
        if fetched.ref.key == key:
            return fetched.ref
    raise fail(f"message {key} not found in {folder!r} by fetch_all")


def key_of(raw: bytes) -> str:
    """The audit key the core gives ``raw``."""
    from assoc_ai_core.mail.parsing import parse_message

    return parse_message(raw).key


def mailbox_census(conn: MailboxConnector) -> dict[str, list[tuple[str, bytes]]]:
    """Every message of every folder, by key: [(folder, raw), ...]."""
    out: dict[str, list[tuple[str, bytes]]] = {}
    for folder in conn.list_folders():
        for fetched in conn.fetch_all(folder):
            out.setdefault(fetched.ref.key, []).append((folder, fetched.raw))
    return out


class IOWatch:
    """Records file and network I/O while armed (``sys.addaudithook`` cannot be removed, so it is armed on demand)."""

    _installed = False
    armed = threading.local()
    _EVENTS = ("open", "socket.connect", "socket.getaddrinfo", "socket.bind", "os.mkdir", "os.rename", "os.remove",
               "os.rmdir", "os.listdir", "os.scandir", "subprocess.Popen", "shutil.copyfile", "os.truncate")

    @classmethod
    def install(cls) -> None:
        """Install the audit hook once per process."""
        if not cls._installed:
            sys.addaudithook(cls._hook)
            cls._installed = True

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        seen = getattr(cls.armed, "events", None)
        if seen is None or event not in cls._EVENTS:
            return
        if event == "open":
            path = str(args[0]) if args and args[0] is not None else ""
            # imports and lazy module loading are not the connector talking to its mailbox
            if path.endswith((".py", ".pyc", ".so", ".pth")) or "__pycache__" in path or path.startswith(
                    (sys.prefix, sys.base_prefix, "/usr/lib", "/usr/share", "/etc/ssl", "/proc", "/dev")):
                return
            if isinstance(args[0], int):
                return
        seen.append((event, str(args[:2])[:200]))
