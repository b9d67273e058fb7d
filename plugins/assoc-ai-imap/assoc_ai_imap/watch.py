"""Waiting for mail: IMAP IDLE on the first folder, STATUS every few seconds on the others."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient

from assoc_ai_core.ext.connectors import Capability

from .session import ImapSession
from .settings import IDLE_RENEW_SECONDS

_CHANGE_RESPONSES = {b"EXISTS", b"EXPUNGE", b"FETCH", b"RECENT"}


class Watching(ImapSession):
    """``wait_for_changes`` (Capability.WATCH, the server's IDLE)."""

    def wait_for_changes(self, folders: Sequence[str] | str | float | None = None, timeout: float = 60.0) -> bool:
        """Wait up to ``timeout`` seconds for new or removed mail in ``folders``; True if any.

        The first folder is watched with IMAP IDLE (instant); the others, if
        any, are compared by STATUS every few seconds.  Called as
        ``wait_for_changes(["INBOX"], 300)`` or ``wait_for_changes(300)`` (the
        configured ``folder``).  Needs Capability.WATCH (the server's IDLE);
        without it the host polls.
        """
        if isinstance(folders, (int, float)) and not isinstance(folders, bool):
            folders, timeout = None, float(folders)
        if isinstance(folders, str):
            folders = [folders]
        self._need(Capability.WATCH)
        names = [self.server_name(f) for f in (folders or [self.config.folder])]
        watched, others = names[0], list(dict.fromkeys(n for n in names[1:] if n != names[0]))
        chunk = 2.0 if others else 30.0  # STATUS of the other folders is cheap; IDLE renewed every 30 s

        def snapshot(client: IMAPClient) -> dict[str, tuple[Any, Any]]:
            out = {}
            for name in others:
                status = client.folder_status(name, [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY"])
                out[name] = (status.get(b"MESSAGES"), status.get(b"UIDNEXT"), status.get(b"UIDVALIDITY"))
            return out

        def changed_in(responses: Any) -> bool:
            return any(isinstance(r, tuple) and any(p in _CHANGE_RESPONSES for p in r if isinstance(p, bytes))
                       for r in responses or ())

        def run(client: IMAPClient) -> bool:
            self._select(client, watched, fresh=True)
            before = snapshot(client)
            deadline = time.monotonic() + max(0.0, float(timeout))
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                client.idle()
                changed = False
                try:
                    started = time.monotonic()
                    while not changed and time.monotonic() - started < min(chunk, IDLE_RENEW_SECONDS):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        changed = changed_in(client.idle_check(timeout=min(left, chunk)))
                finally:
                    _, pending = client.idle_done()
                if changed or changed_in(pending):
                    return True
                if others and snapshot(client) != before:
                    return True

        return self._call("wait_for_changes", run)
