"""Acting on messages: move (MOVE, or COPY + UID EXPUNGE) and label with keywords, one or many at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from imapclient import IMAPClient

from assoc_ai_core.errors import CapabilityError, ConnectorError
from assoc_ai_core.ext.connectors import Capability, MailRef
from assoc_ai_core.i18n import tr

from .errors import CONNECTOR_ID
from .keywords import to_keyword
from .lookup import DELETED, KeyLookup, chunks, uid_set
from .settings import BATCH_CHUNK

log = logging.getLogger(__name__)
T = TypeVar("T")


class Actions(KeyLookup):
    """``move``, ``move_many``, ``add_label``, ``add_label_many``: idempotent, safe to run again after a crash."""

    @staticmethod
    def _pop_untagged(client: IMAPClient, name: str) -> list[bytes]:
        """Untagged responses such as COPYUID, which imapclient leaves in imaplib's buffer."""
        responses = getattr(getattr(client, "_imap", None), "untagged_responses", None)
        if not isinstance(responses, dict):
            return []
        return list(responses.pop(name, []) or [])

    def _copyuid(self, client: IMAPClient, uid: int) -> int | None:
        for item in reversed(self._pop_untagged(client, "COPYUID")):
            parts = item.split()
            if len(parts) == 3:
                source, target = uid_set(parts[1]), uid_set(parts[2])
                if uid in source and len(source) == len(target):
                    return target[source.index(uid)]
        return None

    def _expunge_uid(self, client: IMAPClient, uid: int) -> None:
        """Delete one message by UID only (UID EXPUNGE): other \\Deleted mail is never touched."""
        client.add_flags([uid], [DELETED], silent=True)
        client.uid_expunge([uid])

    def move(self, ref: MailRef, folder: str) -> MailRef:
        """Move a message to ``folder`` (created if missing) and return where it is now.

        Uses MOVE when the server has it, else COPY + \\Deleted + UID EXPUNGE
        (UIDPLUS).  Running it again after a crash finds the message where it
        went instead of copying it twice.
        """
        self._need(Capability.MOVE)
        if self.server_name(folder) == self.server_name(ref.folder):
            return ref
        self.ensure_folder(folder)
        source, target = self.server_name(ref.folder), self.server_name(folder)
        has_move = "MOVE" in self._server_caps

        def run(client: IMAPClient) -> MailRef:
            self._select(client, source, fresh=not has_move)
            uid = self._current_uid(client, ref) if (not has_move or not ref.uid.isdigit()) else int(ref.uid)
            new_uid: int | None = None
            if uid is not None and has_move:
                self._pop_untagged(client, "COPYUID")
                client.move([uid], target)
                new_uid = self._copyuid(client, uid)
                if new_uid is None and "UIDPLUS" in self._server_caps:
                    uid = None  # nothing moved: the message had already left this folder
            elif uid is not None:
                flags = client.fetch([uid], ["FLAGS"]).get(uid, {}).get(b"FLAGS", ())
                already = [] if DELETED in flags else self._find_in(client, target, ref.key, back_to=source)
                if not already:
                    self._pop_untagged(client, "COPYUID")
                    client.copy([uid], target)
                    new_uid = self._copyuid(client, uid)
                else:
                    new_uid = already[0]
                self._expunge_uid(client, uid)
            if new_uid is None:
                found = self._find_in(client, target, ref.key, back_to=source)
                if not found:
                    raise self._missing(ref)
                new_uid = found[0]
            return MailRef(folder, str(new_uid), ref.key)

        moved = self._move_call(run, folder)
        log.info("IMAP moved one message to %s", folder)
        return moved

    def _move_call(self, run: Callable[[IMAPClient], T], folder: str) -> T:
        """Run a move; when the server says TRYCREATE, create ``folder`` again and retry once."""
        try:
            return self._call("move", run)
        except ConnectorError as err:
            if "TRYCREATE" not in str(err):
                raise
            self._folders = None  # someone deleted the folder since we listed them: create it again
            self.ensure_folder(folder)
            return self._call("move", run)

    def _copyuid_map(self, client: IMAPClient) -> dict[int, int]:
        """Source UID -> new UID from every COPYUID response (UIDPLUS) since the last pop."""
        mapping: dict[int, int] = {}
        for item in self._pop_untagged(client, "COPYUID"):
            parts = item.split()
            if len(parts) != 3:
                continue
            try:
                source, target = uid_set(parts[1]), uid_set(parts[2])
            except ValueError:  # an odd response only costs a search by key
                continue
            if len(source) == len(target):
                mapping.update(zip(source, target, strict=True))
        return mapping

    def move_many(self, refs: Sequence[MailRef], folder: str) -> dict[str, MailRef]:
        """Move several messages to ``folder`` with one command per source folder; return key -> new ref.

        One ``UID MOVE`` of the whole UID set (in chunks of ``BATCH_CHUNK``),
        the new UIDs read from the COPYUID answer; without MOVE, ``UID COPY``
        of the set, then ``\\Deleted`` and ``UID EXPUNGE`` of exactly the
        messages whose copy is confirmed.  A message with no COPYUID entry is
        looked for in ``folder`` by its key (it may have been moved by an
        earlier, killed run).  Messages not found are left out of the result:
        the host retries them one by one with :meth:`move`.
        """
        self._need(Capability.MOVE)
        target = self.server_name(folder)
        result: dict[str, MailRef] = {}
        by_source: dict[str, list[MailRef]] = {}
        for ref in refs:
            if self.server_name(ref.folder) == target:
                result[ref.key] = ref
            else:
                by_source.setdefault(ref.folder, []).append(ref)
        if not by_source:
            return result
        self.ensure_folder(folder)
        for source_folder, group in by_source.items():
            source = self.server_name(source_folder)
            for chunk in chunks(group, BATCH_CHUNK):
                def run(client: IMAPClient, chunk: list[MailRef] = chunk, source: str = source) -> dict[str, MailRef]:
                    return self._move_set(client, chunk, source, target, folder)

                moved = self._move_call(run, folder)
                result.update(moved)
                log.info("IMAP moved %d message(s) to %s", len(moved), folder)
        return result

    def _move_set(self, client: IMAPClient, refs: Sequence[MailRef], source: str, target: str,
                  folder: str) -> dict[str, MailRef]:
        """Move ``refs`` (all in ``source``) to ``target``; key -> new ref for those seen arriving there."""
        has_move = "MOVE" in self._server_caps
        self._select(client, source, fresh=not has_move)
        digits = {int(ref.uid): ref for ref in refs if ref.uid.isdigit()}
        present: dict[int, MailRef] = {}
        if has_move:
            present = digits  # MOVE skips UIDs that are gone; those are looked for in the target below
        elif digits:
            flags = client.fetch(sorted(digits), ["FLAGS"])
            present = {uid: ref for uid, ref in digits.items()
                       if uid in flags and DELETED not in flags[uid].get(b"FLAGS", ())}
        new_uids: dict[int, int] = {}
        already: dict[str, list[int]] = {}
        if present and has_move:
            self._pop_untagged(client, "COPYUID")
            self._on_set(client, lambda: client.move(sorted(present), target))
            new_uids = self._copyuid_map(client)
        elif present:
            # a killed run may have copied some of them already: copying again would duplicate them
            already = self._find_keys_in(client, target, [ref.key for ref in present.values()], back_to=source)
            to_copy = sorted(uid for uid, ref in present.items() if not already.get(ref.key))
            if to_copy:
                self._pop_untagged(client, "COPYUID")
                self._on_set(client, lambda: client.copy(to_copy, target))
                new_uids = self._copyuid_map(client)
        result: dict[str, MailRef] = {}
        unknown: list[MailRef] = [ref for ref in refs if not ref.uid.isdigit() or int(ref.uid) not in present]
        for uid, ref in present.items():
            new_uid = new_uids.get(uid) or (already.get(ref.key) or [None])[0]
            if new_uid is None:
                unknown.append(ref)
            else:
                result[ref.key] = MailRef(folder, str(new_uid), ref.key)
        if unknown:
            found = self._find_keys_in(client, target, [ref.key for ref in unknown], back_to=source)
            for ref in unknown:
                if found.get(ref.key):
                    result[ref.key] = MailRef(folder, str(found[ref.key][0]), ref.key)
        if not has_move:
            # only originals whose copy is known to be in the target are deleted, by UID
            confirmed = sorted(uid for uid, ref in present.items() if ref.key in result)
            if confirmed:
                self._select(client, source)
                client.add_flags(confirmed, [DELETED], silent=True)
                client.uid_expunge(confirmed)
        return result

    def add_label(self, ref: MailRef, label: str) -> None:
        """Add the IMAP keyword for ``label`` (``Adhésion`` → ``$Adhesion``) to a message; idempotent."""
        self.require(Capability.LABEL)
        keyword = to_keyword(label).encode("ascii")
        server = self.server_name(ref.folder)

        def run(client: IMAPClient) -> None:
            self._require_keywords(self._select(client, server), ref.folder, keyword)
            if ref.uid.isdigit():  # one round trip: a non-silent STORE answers only for messages that exist
                stored = client.add_flags([int(ref.uid)], [keyword])
                if int(ref.uid) in stored and DELETED not in stored[int(ref.uid)]:
                    return
            uid = self._current_uid(client, ref)
            if uid is None:
                raise self._missing(ref)
            client.add_flags([uid], [keyword], silent=True)

        self._call("add_label", run)

    def remove_label(self, ref: MailRef, label: str) -> None:
        """Take the IMAP keyword for ``label`` off a message (after a person's correction); idempotent."""
        self.require(Capability.LABEL)
        keyword = to_keyword(label).encode("ascii")
        server = self.server_name(ref.folder)

        def run(client: IMAPClient) -> None:
            self._select(client, server)
            uid = self._current_uid(client, ref)
            if uid is None:
                raise self._missing(ref)
            client.remove_flags([uid], [keyword], silent=True)

        self._call("remove_label", run)

    def add_label_many(self, refs: Sequence[MailRef], label: str) -> None:
        """Add the keyword for ``label`` to several messages: one ``UID STORE +FLAGS`` per folder.

        Messages no longer at their UID are looked for by key in their folder;
        if some cannot be found the others are still labelled, then a
        ConnectorError says how many were missing (the host retries them one
        by one with :meth:`add_label`).
        """
        self.require(Capability.LABEL)
        keyword = to_keyword(label).encode("ascii")
        by_folder: dict[str, list[MailRef]] = {}
        for ref in refs:
            by_folder.setdefault(ref.folder, []).append(ref)
        missing: list[MailRef] = []
        for folder, group in by_folder.items():
            server = self.server_name(folder)
            for chunk in chunks(group, BATCH_CHUNK):
                def run(client: IMAPClient, chunk: list[MailRef] = chunk, server: str = server,
                        folder: str = folder) -> list[MailRef]:
                    return self._label_set(client, chunk, server, folder, keyword)

                missing.extend(self._call("add_label", run))
        if len(missing) == 1:
            raise self._missing(missing[0])
        if missing:
            raise ConnectorError(tr(
                f"IMAP : {len(missing)} messages ne sont plus où ils étaient (déplacés ou supprimés par "
                "quelqu'un) ; ils ne sont pas étiquetés.",
                f"IMAP: {len(missing)} messages are no longer where they were (moved or deleted by someone); "
                "they are not labelled.",
            ), connector_id=CONNECTOR_ID)

    def _require_keywords(self, info: dict, folder: str, keyword: bytes) -> None:
        """Raise CapabilityError when the selected folder cannot store ``keyword`` (PERMANENTFLAGS)."""
        allowed = {f.lower() for f in info.get(b"PERMANENTFLAGS", ())}
        if b"\\*" not in allowed and keyword.lower() not in allowed:
            raise CapabilityError(tr(
                f"IMAP {self.config.host} : le dossier {folder} n'accepte pas de mots-clés personnalisés "
                "(PERMANENTFLAGS sans \\*). Utilisez le déplacement dans un dossier plutôt que les étiquettes.",
                f"IMAP {self.config.host}: folder {folder} does not accept custom keywords "
                "(PERMANENTFLAGS without \\*). Use moving to a folder instead of labels.",
            ), connector_id=CONNECTOR_ID)

    def _label_set(self, client: IMAPClient, refs: Sequence[MailRef], server: str, folder: str,
                   keyword: bytes) -> list[MailRef]:
        """Store ``keyword`` on ``refs`` (all in ``server``); return the refs that could not be found."""
        self._require_keywords(self._select(client, server), folder, keyword)
        digits = {int(ref.uid): ref for ref in refs if ref.uid.isdigit()}
        # a non-silent STORE answers only for messages that exist: one round trip for the usual case
        stored = self._on_set(client, lambda: client.add_flags(sorted(digits), [keyword])) if digits else {}
        rest = [ref for ref in refs if not ref.uid.isdigit() or int(ref.uid) not in stored
                or DELETED in stored[int(ref.uid)]]
        missing: list[MailRef] = []
        for ref in rest:
            uid = self._current_uid(client, ref)
            if uid is None:
                missing.append(ref)
            else:
                client.add_flags([uid], [keyword], silent=True)
        return missing
