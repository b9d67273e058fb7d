"""Subject tags on IMAP: a tagged copy is appended, confirmed, and only then the original deleted."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from imapclient import IMAPClient

from assoc_ai_core.errors import ConnectorError
from assoc_ai_core.ext.connectors import Capability, MailRef
from assoc_ai_core.ext.subject import (
    MARKER_HEADER,
    is_tagged,
    marker_search_value,
    original_key,
    tag_subject_bytes,
    without_tag_bytes,
)
from assoc_ai_core.i18n import tr

from .actions import Actions
from .errors import CONNECTOR_ID
from .lookup import DELETED, header_part

log = logging.getLogger(__name__)

_UNSETTABLE_FLAGS = {b"\\recent"}
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)


class SubjectTagging(Actions):
    """``tag_subject`` (needs UIDPLUS): one message at a time, found again by its marker after a crash."""

    def tag_subject(self, ref: MailRef, tag: str) -> MailRef:
        """Prefix the subject with ``tag`` (e.g. ``[#Adhésion]``) and return the tagged message's ref.

        IMAP messages cannot be edited: a modified copy is appended (same flags
        and date, a marker header naming the original), confirmed, and only
        then the original is deleted by UID.  Already tagged: nothing is done.
        After a crash between the two steps, the copy is found and only the
        original is removed.
        """
        self._need(Capability.TAG_SUBJECT)
        if not tag.strip():
            raise ValueError("tag must not be empty")
        tagged = self._rewrite(ref, "tag_subject", lambda head: is_tagged(head, tag),
                               lambda raw: tag_subject_bytes(raw, tag, ref.key, mark=True))
        log.info("IMAP tagged one message's subject in %s", ref.folder)
        return tagged

    def untag_subject(self, ref: MailRef, tag: str) -> MailRef:
        """Take ``tag`` out of the subject (after a person's correction), the way :meth:`tag_subject` puts it in."""
        self._need(Capability.TAG_SUBJECT)
        if not tag.strip():
            raise ValueError("tag must not be empty")
        return self._rewrite(ref, "untag_subject", lambda head: not is_tagged(head, tag),
                             lambda raw: without_tag_bytes(raw, tag, ref.key, mark=True))

    def _rewrite(self, ref: MailRef, op: str, done: Callable[[bytes], bool],
                 rewrite: Callable[[bytes], bytes]) -> MailRef:
        """Replace a message by ``rewrite`` of it unless ``done`` already holds (append, confirm, then delete)."""
        server = self.server_name(ref.folder)

        def run(client: IMAPClient) -> MailRef:
            info = self._select(client, server, fresh=True)
            uid = self._current_uid(client, ref)
            item: dict[bytes, Any] = {}
            if uid is not None:
                item = client.fetch([uid], ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]).get(uid, {})
                raw = bytes(item.get(b"BODY[]", b""))
                if done(raw):
                    return MailRef(ref.folder, str(uid), ref.key)
            copy_uid = self._tagged_copy(client, ref.key, done, exclude=uid)
            if copy_uid is not None:  # a previous run appended the copy and stopped before deleting
                if uid is not None:
                    self._expunge_uid(client, uid)
                return MailRef(ref.folder, str(copy_uid), ref.key)
            if uid is None:
                raise self._missing(ref)
            new_raw = rewrite(raw)
            allowed = {f.lower() for f in info.get(b"PERMANENTFLAGS", ())}
            flags = [f for f in item.get(b"FLAGS", ())
                     if f.lower() not in _UNSETTABLE_FLAGS and (f.startswith(b"\\") or b"\\*" in allowed
                                                                 or f.lower() in allowed)]
            response = client.append(server, new_raw, flags=flags, msg_time=item.get(b"INTERNALDATE"))
            copy_uid = self._confirm_append(client, response, ref.key, done, exclude=uid)
            if copy_uid is None:
                raise ConnectorError(tr(
                    f"IMAP {self.config.host} : la copie étiquetée n'a pas été retrouvée après l'envoi ; "
                    "l'original est conservé.",
                    f"IMAP {self.config.host}: the tagged copy could not be found after appending it; "
                    "the original is kept.",
                ), connector_id=CONNECTOR_ID)
            self._expunge_uid(client, uid)
            return MailRef(ref.folder, str(copy_uid), ref.key)

        return self._call(op, run)

    def _tagged_copy(self, client: IMAPClient, key: str, done: Callable[[bytes], bool], *,
                     exclude: int | None) -> int | None:
        """UID of a copy of ``key`` in the selected folder (our marker) whose header block already satisfies ``done``."""
        if not key:
            return None
        found = client.search(["HEADER", MARKER_HEADER, marker_search_value(key)],
                              charset=None if key.isascii() else "UTF-8")
        candidates = [u for u in found if u != exclude]
        if not candidates:
            return None
        response = client.fetch(candidates, ["BODY.PEEK[HEADER]", "FLAGS"])
        for uid in sorted(response):
            item = response[uid]
            head = header_part(item)
            if (DELETED not in item.get(b"FLAGS", ()) and original_key(head) == key
                    and done(head)):
                return uid
        return None

    def _confirm_append(self, client: IMAPClient, response: Any, key: str, done: Callable[[bytes], bool], *,
                        exclude: int | None) -> int | None:
        """The new message's UID: from APPENDUID (UIDPLUS) checked by a FETCH, else found by its marker."""
        match = _APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
        if match and int(match.group(1)) == int(self._select_info.get(b"UIDVALIDITY", -1)):
            uid = int(match.group(2))
            if uid in client.fetch([uid], ["FLAGS"]):
                return uid
        client.noop()  # lets the server announce the new message before searching for it
        return self._tagged_copy(client, key, done, exclude=exclude)
