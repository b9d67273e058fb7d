"""Reading mail: new messages by UID since the cursor, whole folders, one message."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from imapclient import IMAPClient

from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailRef, Page
from assoc_ai_core.ext.subject import message_key
from assoc_ai_core.i18n import tr

from .lookup import KeyLookup, chunks
from .settings import FETCH_CHUNK, PAGE_SIZE

log = logging.getLogger(__name__)


class Reading(KeyLookup):
    """``fetch_new``, ``fetch_all`` and ``fetch_raw``: bodies are read with BODY.PEEK (unread mail stays unread)."""

    def fetch_new(self, folder: str, cursor: Mapping[str, Any] | None, *, page_size: int = PAGE_SIZE) -> Iterator[Page]:
        """Yield pages of mail that arrived in ``folder`` since ``cursor`` ({uidvalidity, last_uid}).

        When the folder's UIDVALIDITY differs from the cursor's, the whole
        folder is read again with ``Page.resync=True``; keys (Message-ID) let
        the host skip what it already handled.  Bodies are fetched with
        ``BODY.PEEK`` so unread mail stays unread.
        """
        self.require(Capability.READ)
        server = self.server_name(folder)
        info = self._read("fetch_new", lambda c: self._select(c, server, fresh=True))
        uidvalidity = int(info[b"UIDVALIDITY"])
        last_uid, resync = 0, False
        if cursor:
            if int(cursor.get("uidvalidity", -1)) == uidvalidity:
                last_uid = int(cursor.get("last_uid", 0))
            else:
                resync = True
                log.warning(tr(
                    f"IMAP : le dossier {folder} a changé d'identité (UIDVALIDITY) ; relecture complète, les "
                    "messages déjà traités seront reconnus et ignorés.",
                    f"IMAP: folder {folder} changed identity (UIDVALIDITY); reading it again, messages already "
                    "handled will be recognised and skipped.",
                ))

        def search(client: IMAPClient) -> list[int]:
            self._select(client, server, uidvalidity=uidvalidity)
            # mail a person flagged \Deleted is on its way out: left alone, never labelled or moved
            found = client.search(["UID", f"{last_uid + 1}:*", "NOT", "DELETED"])
            return sorted(uid for uid in found if uid > last_uid)  # "n:*" always matches the last message

        uids = self._read("fetch_new", search)
        for chunk in chunks(uids, max(1, page_size)):
            data = self._read("fetch_new", lambda c, chunk=chunk: self._fetch_bodies(c, server, uidvalidity, chunk))
            messages = [
                FetchedMail(MailRef(folder, str(uid), message_key(raw)), raw)
                for uid in chunk if (raw := data.get(uid)) is not None
            ]
            yield Page(messages=messages, cursor={"uidvalidity": uidvalidity, "last_uid": chunk[-1]}, resync=resync)

    def _fetch_bodies(self, client: IMAPClient, server: str, uidvalidity: int | None, uids: list[int]) -> dict[int, bytes]:
        self._select(client, server, uidvalidity=uidvalidity)
        response = client.fetch(uids, ["BODY.PEEK[]"])
        return {uid: bytes(item[b"BODY[]"]) for uid, item in response.items() if b"BODY[]" in item}

    def cursor_at_now(self, folder: str) -> Mapping[str, Any] | None:
        """A cursor just before the folder's UIDNEXT: only mail delivered afterwards is new."""
        self.require(Capability.READ)
        server = self.server_name(folder)
        info = self._read("fetch_new", lambda c: self._select(c, server, fresh=True))
        uidvalidity = int(info[b"UIDVALIDITY"])
        uidnext = info.get(b"UIDNEXT")
        if uidnext is None:  # a server that does not announce it on SELECT (rare): ask for it

            def status(client: IMAPClient) -> Any:
                return client.folder_status(server, [b"UIDNEXT"]).get(b"UIDNEXT")

            uidnext = self._read("fetch_new", status)
        return {"uidvalidity": uidvalidity, "last_uid": max(0, int(uidnext) - 1)}

    def fetch_since(self, folder: str, since: datetime) -> Iterator[FetchedMail]:
        """Messages of ``folder`` delivered on or after ``since``'s day (IMAP SEARCH SINCE, by internal date)."""
        self.require(Capability.READ)
        server = self.server_name(folder)

        def search(client: IMAPClient) -> tuple[int, list[int]]:
            info = self._select(client, server, fresh=True)
            return int(info[b"UIDVALIDITY"]), sorted(client.search(["SINCE", since.date(), "NOT", "DELETED"]))

        uidvalidity, uids = self._read("fetch_all", search)
        yield from self._bodies(folder, server, uidvalidity, uids)

    def fetch_all(self, folder: str) -> Iterator[FetchedMail]:
        """Yield every message of ``folder`` (to train on mail volunteers already sorted)."""
        self.require(Capability.READ)
        server = self.server_name(folder)

        def search(client: IMAPClient) -> tuple[int, list[int]]:
            info = self._select(client, server, fresh=True)
            return int(info[b"UIDVALIDITY"]), sorted(client.search(["NOT", "DELETED"]))

        uidvalidity, uids = self._read("fetch_all", search)
        yield from self._bodies(folder, server, uidvalidity, uids)

    def _bodies(self, folder: str, server: str, uidvalidity: int, uids: list[int]) -> Iterator[FetchedMail]:
        """The messages ``uids`` of ``folder``, fetched a chunk at a time (those gone meanwhile left out)."""
        for chunk in chunks(uids, FETCH_CHUNK):
            data = self._read("fetch_all", lambda c, chunk=chunk: self._fetch_bodies(c, server, uidvalidity, chunk))
            for uid in chunk:
                raw = data.get(uid)
                if raw is not None:
                    yield FetchedMail(MailRef(folder, str(uid), message_key(raw)), raw)

    def fetch_raw(self, ref: MailRef) -> bytes | None:
        """The raw bytes of one message, or None when it is no longer there."""
        server = self.server_name(ref.folder)

        def run(client: IMAPClient) -> bytes | None:
            self._select(client, server)
            uid = self._current_uid(client, ref)
            return None if uid is None else self._fetch_bodies(client, server, None, [uid]).get(uid)

        return self._read("fetch", run)
