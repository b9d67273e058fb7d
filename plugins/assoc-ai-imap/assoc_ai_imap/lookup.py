"""Finding messages by key (Message-ID, or a digest for mail without one) in IMAP folders.

UIDs change when a message moves, so the host names messages by key;
these helpers turn keys back into UIDs with as few round trips as they can:
one SEARCH per few keys, one header FETCH per folder for many keys, a cached
per-folder index while STATUS shows the folder unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient import exceptions as imap_exc

from assoc_ai_core.errors import ConnectorError
from assoc_ai_core.ext.connectors import Capability, MailRef
from assoc_ai_core.ext.subject import MARKER_HEADER, key_from_head, marker_search_value, message_key
from assoc_ai_core.i18n import tr

from .errors import CONNECTOR_ID
from .folders import INBOX
from .session import ImapSession
from .settings import KEY_SEARCH_CHUNK, LOCATE_SEARCH_LIMIT

T = TypeVar("T")

DELETED = b"\\Deleted"
_UNSEARCHABLE = re.compile(r'[(){%*"\\\]\s]')
HEADER_ITEM = f"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID {MARKER_HEADER.upper()})]"


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def header_part(item: Mapping[bytes, Any]) -> bytes:
    """The header bytes of a FETCH item, whatever spelling the server echoes the section in."""
    for name, value in item.items():
        if isinstance(name, bytes) and name.upper().startswith(b"BODY[HEADER") and value is not None:
            return bytes(value)
    return b""


def uid_set(text: bytes) -> list[int]:
    out: list[int] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        out.extend(range(int(low), int(high or low) + 1))
    return out


def _any_of(criteria: Sequence[list[Any]]) -> list[Any]:
    """One SEARCH key matching any of ``criteria``: a balanced tree of ORs (shallow, whatever their number)."""
    if len(criteria) == 1:
        return criteria[0]
    middle = len(criteria) // 2
    return ["OR", _any_of(criteria[:middle]), _any_of(criteria[middle:])]


class KeyLookup(ImapSession):
    """Key → UID lookups in the selected folder or across folders, and :meth:`locate`."""

    def _find_by_key(self, client: IMAPClient, key: str) -> list[int]:
        """UIDs in the selected folder whose key is ``key`` (messages flagged \\Deleted left out)."""
        if key.startswith("sha256:"):
            marker = client.search(["HEADER", MARKER_HEADER, marker_search_value(key)])
            keyless = client.search(["NOT", "HEADER", "Message-ID", ""])
            candidates = sorted(set(marker) | set(keyless))
            if not candidates:
                return []
            response = client.fetch(candidates, ["BODY.PEEK[]", "FLAGS"])
            return sorted(uid for uid, item in response.items()
                          if DELETED not in item.get(b"FLAGS", ())
                          and message_key(bytes(item.get(b"BODY[]", b""))) == key)
        if _UNSEARCHABLE.search(key) or not key.isascii():
            return self._index_folder(client, {key}).get(key, [])
        candidates = client.search(["HEADER", "Message-ID", key])
        if not candidates:
            return []
        response = client.fetch(candidates, [HEADER_ITEM, "FLAGS"])
        return sorted(uid for uid, item in response.items()
                      if DELETED not in item.get(b"FLAGS", ())
                      and key_from_head(header_part(item)) == key)

    def _index_folder(self, client: IMAPClient, keys: set[str]) -> dict[str, list[int]]:
        """Key → UIDs for the wanted ``keys`` in the selected folder, from one header FETCH."""
        index = self._build_index(client, with_digests=any(k.startswith("sha256:") for k in keys))
        return {k: index[k] for k in keys if k in index}

    def _build_index(self, client: IMAPClient, *, with_digests: bool) -> dict[str, list[int]]:
        """Key → UIDs of every message of the selected folder (``\\Deleted`` ones left out)."""
        found: dict[str, list[int]] = {}
        uids = client.search(["NOT", "DELETED"])
        needs_body: list[int] = []
        for chunk in chunks(sorted(uids), 1000):
            for uid, item in client.fetch(chunk, [HEADER_ITEM]).items():
                key = key_from_head(header_part(item))
                if key is None:
                    needs_body.append(uid)
                else:
                    found.setdefault(key, []).append(uid)
        if needs_body and with_digests:  # rare: mail without a usable Message-ID is keyed by its bytes
            for chunk in chunks(needs_body, 100):
                for uid, item in client.fetch(chunk, ["BODY.PEEK[]"]).items():
                    found.setdefault(message_key(bytes(item.get(b"BODY[]", b""))), []).append(uid)
        return {k: sorted(v) for k, v in found.items()}

    def _cached_index(self, client: IMAPClient, server: str, *, with_digests: bool) -> dict[str, list[int]]:
        """The folder's key index, rebuilt only when STATUS shows the folder changed.

        The job asks ``locate`` about its recent decisions in chunks; without
        this cache each chunk would read every header of every folder again.
        """
        items = [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY"]
        if "CONDSTORE" in self._server_caps:
            items.append(b"HIGHESTMODSEQ")  # also catches \\Deleted flags set without an expunge
        status = client.folder_status(server, items)
        validator = tuple(status.get(item) for item in items)
        cached = self._indexes.get(server)
        if cached is not None and cached[0] == validator and (cached[1] or not with_digests):
            return cached[2]
        self._select(client, server, fresh=True)
        index = self._build_index(client, with_digests=with_digests)
        self._indexes[server] = (validator, with_digests, index)
        return index

    def _current_uid(self, client: IMAPClient, ref: MailRef) -> int | None:
        """The UID of ``ref`` in the selected folder: its own UID if still there, else found by key."""
        if ref.uid.isdigit():
            uid = int(ref.uid)
            response = client.fetch([uid], ["FLAGS"])
            if uid in response and DELETED not in response[uid].get(b"FLAGS", ()):
                return uid
        found = self._find_by_key(client, ref.key) if ref.key else []
        return found[0] if found else None

    def locate(self, refs: Sequence[MailRef]) -> dict[str, list[MailRef]]:
        """Where each message is now, by key (Message-ID), across the folders to watch.

        Looks in ``locate_folders`` when configured, else in every selectable
        folder (the refs' own folders first).  An empty list means the message
        is nowhere to be found (deleted).
        """
        self.require(Capability.READ)
        keys = {ref.key for ref in refs if ref.key}
        result: dict[str, list[MailRef]] = {key: [] for key in keys}
        if not keys:
            return result
        if self.config.locate_folders:
            folders = list(dict.fromkeys([*(r.folder for r in refs), *self.config.locate_folders]))
        else:
            folders = list(dict.fromkeys([*(r.folder for r in refs), *self.list_folders()]))
        for folder in folders:
            server = self.server_name(folder)

            def run(client: IMAPClient, server: str = server) -> dict[str, list[int]]:
                if server not in self._existing_folders(client) and server != INBOX:
                    if not client.folder_exists(server):
                        return {}
                if len(keys) > LOCATE_SEARCH_LIMIT:
                    index = self._cached_index(client, server, with_digests=any(k.startswith("sha256:") for k in keys))
                    return {key: index[key] for key in keys if key in index}
                self._select(client, server, fresh=True)
                return {key: uids for key in keys if (uids := self._find_by_key(client, key))}

            for key, uids in self._read("locate", run).items():
                result[key].extend(MailRef(folder, str(uid), key) for uid in uids)
        return result

    def _missing(self, ref: MailRef) -> ConnectorError:
        return ConnectorError(tr(
            f"IMAP : le message {ref.key} n'est plus dans {ref.folder} (déplacé ou supprimé par quelqu'un). "
            "Il est laissé tel quel.",
            f"IMAP: message {ref.key} is no longer in {ref.folder} (moved or deleted by someone). "
            "It is left as it is.",
        ), connector_id=CONNECTOR_ID)

    @staticmethod
    def _on_set(client: IMAPClient, command: Callable[[], T]) -> T:
        """Run a command on a UID set, once more if someone else expunged part of the set meanwhile.

        A server answers ``NO [EXPUNGEISSUED]`` (Dovecot: doing nothing) when
        the set names a message another session removed that this session has
        not been told about yet; by then it has been told, so the second try
        simply skips that message, which the caller then reports as missing.
        """
        try:
            return command()
        except imap_exc.IMAPClientError as exc:
            if isinstance(exc, imap_exc.IMAPClientAbortError) or "EXPUNGEISSUED" not in str(exc).upper():
                raise
        client.noop()
        return command()

    def _find_keys_in(self, client: IMAPClient, server: str, keys: Sequence[str], *,
                      back_to: str | None = None) -> dict[str, list[int]]:
        """Key -> UIDs in another folder for several keys at once, then select ``back_to`` again."""
        wanted = [key for key in dict.fromkeys(keys) if key]
        if not wanted:
            return {}
        self._select(client, server, fresh=True)
        try:
            return self._find_keys(client, wanted)
        finally:
            if back_to is not None:
                self._select(client, back_to)

    def _find_keys(self, client: IMAPClient, keys: Sequence[str]) -> dict[str, list[int]]:
        """Key -> UIDs in the selected folder (``\\Deleted`` left out), OR-ing the keys in a few SEARCHes."""
        found: dict[str, list[int]] = {}
        plain = [k for k in keys if k.isascii() and not k.startswith("sha256:") and not _UNSEARCHABLE.search(k)]
        searchable = set(plain)
        for key in keys:
            if key not in searchable and (uids := self._find_by_key(client, key)):
                found[key] = uids
        for chunk in chunks(plain, KEY_SEARCH_CHUNK):
            candidates = client.search(_any_of([["HEADER", "Message-ID", key] for key in chunk]))
            if not candidates:
                continue
            wanted = set(chunk)
            for uid, item in client.fetch(candidates, [HEADER_ITEM, "FLAGS"]).items():
                key = key_from_head(header_part(item))
                if key in wanted and DELETED not in item.get(b"FLAGS", ()):
                    found.setdefault(key, []).append(uid)
        return {key: sorted(uids) for key, uids in found.items()}

    def _find_in(self, client: IMAPClient, server: str, key: str, *, back_to: str | None = None) -> list[int]:
        """UIDs of ``key`` in another folder, then select ``back_to`` again."""
        return self._find_keys_in(client, server, [key], back_to=back_to).get(key, [])
