"""Reading mail from Graph: delta sync of new mail, whole folders, and where each message is now.

Why ``changeType=created``: every update (read, category, flag) of a message
would otherwise come back in the next delta round as a "change", and the
triage job would see its own labels as new mail.  A message moved *into* the
folder is a new item there, so it is reported like new mail, as IMAP does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assoc_ai_core.errors import ConnectorError
from assoc_ai_core.ext.connectors import FetchedMail, MailRef, Page
from assoc_ai_core.ext.subject import message_key
from assoc_ai_core.i18n import tr

from .config import CONNECTOR_ID, M365Config
from .graph import GraphHTTPError
from .mailbox import M365Mailbox, odata_string, quote_id

log = logging.getLogger(__name__)

SYNC_RESET_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired", "resyncapplicationrequired"})
_DELTA_FIELDS = "id,parentFolderId,receivedDateTime"
_LOCATE_FIELDS = "id,parentFolderId,categories,internetMessageId"


@dataclass(frozen=True)
class Location:
    """Where a message is now, with its Outlook categories (for corrections)."""

    ref: MailRef
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A message listed by Graph but gone before it could be read (reported, never silent)."""

    folder: str
    uid: str
    reason: str


class M365Reading(M365Mailbox):
    """``fetch_new``, ``fetch_all``, ``locate``: raw MIME from ``/messages/{id}/$value``."""

    def __init__(self, config: M365Config) -> None:
        super().__init__(config)
        self.skipped: list[Skipped] = []

    def fetch_new(self, folder: str, cursor: Mapping[str, Any] | None, *, page_size: int = 100) -> Iterator[Page]:
        """Yield pages of mail that arrived in ``folder`` since ``cursor`` (all of it when None)."""
        folder_id = self.folders.resolve(folder)
        folder_path = self.folders.path_of(folder_id)
        page_size = max(1, min(int(page_size), 1000))
        headers = {"Prefer": f"odata.maxpagesize={page_size}"}
        link: str | None = None
        resync = False
        if cursor:
            saved = cursor.get("link")
            if cursor.get("folder_id") == folder_id and isinstance(saved, str) and saved.startswith(
                self.config.graph_origin + "/"
            ):
                link = saved
            else:
                # Another folder, another server or a damaged cursor: replay this folder, the host skips known keys.
                log.warning("m365: stored cursor does not match folder %s; full resync", folder_path)
                resync = True
        restarted = False
        while True:
            try:
                if link:
                    body = self.graph.get_json(link, headers=headers)
                else:
                    body = self.graph.get_json(
                        self.graph.user_url(f"/mailFolders/{quote_id(folder_id)}/messages/delta"),
                        params={"changeType": "created", "$select": _DELTA_FIELDS},
                        headers=headers,
                    )
            except GraphHTTPError as exc:
                if link and not restarted and (exc.status == 410 or exc.code.lower() in SYNC_RESET_CODES):
                    log.warning("m365: delta state of %s expired (%s); full resync", folder_path, exc.code or exc.status)
                    link, resync, restarted = None, True, True
                    continue
                raise
            next_link = body.get("@odata.nextLink")
            delta_link = body.get("@odata.deltaLink")
            if not next_link and not delta_link:
                raise ConnectorError(
                    tr(
                        "Réponse delta de Graph sans lien de suite : synchronisation interrompue.",
                        "Graph delta answer without a next link: synchronisation stopped.",
                    ),
                    connector_id=CONNECTOR_ID,
                )
            messages = [
                fetched
                for item in body.get("value", [])
                if "@removed" not in item
                for fetched in [self._fetch_item(folder_path, item)]
                if fetched is not None
            ]
            new_cursor = {"folder": folder_path, "folder_id": folder_id, "link": next_link or delta_link}
            if messages or not next_link:
                yield Page(messages=messages, cursor=new_cursor, resync=resync)
            if not next_link:
                return
            link = str(next_link)

    def fetch_all(self, folder: str) -> Iterator[FetchedMail]:
        """Yield every message of ``folder`` (training from mail volunteers sorted by hand)."""
        folder_id = self.folders.resolve(folder)
        folder_path = self.folders.path_of(folder_id)
        listing = self.graph.iter_collection(
            self.graph.user_url(f"/mailFolders/{quote_id(folder_id)}/messages"),
            params={"$select": "id", "$top": 100},
        )
        for item in listing:
            fetched = self._fetch_item(folder_path, item)
            if fetched is not None:
                yield fetched

    def _fetch_item(self, folder: str, item: Mapping[str, Any]) -> FetchedMail | None:
        uid = str(item["id"])
        try:
            resp = self.graph.request("GET", self.graph.user_url(f"/messages/{quote_id(uid)}/$value"), ok=(200,))
        except GraphHTTPError as exc:
            if exc.status == 404:
                # Deleted or moved between the listing and now: report it, the next run sees it where it went.
                self.skipped.append(Skipped(folder=folder, uid=uid, reason="deleted or moved before it could be read"))
                log.warning("m365: message %s in %s vanished before it could be read; skipped", uid[-12:], folder)
                return None
            raise
        raw = resp.content
        # The key comes from the MIME headers, exactly as the core computes it, not from Graph's
        # internetMessageId (Exchange invents one for mail that arrived without a Message-ID).
        return FetchedMail(ref=MailRef(folder=folder, uid=uid, key=message_key(raw)), raw=raw)

    # ------------------------------------------------------------------ corrections
    def locate(self, refs: Sequence[MailRef]) -> dict[str, list[MailRef]]:
        """Map each ref's key to where that message is now (empty list: deleted)."""
        return {key: [loc.ref for loc in locs] for key, locs in self.locate_detailed(refs).items()}

    def locate_detailed(self, refs: Sequence[MailRef]) -> dict[str, list[Location]]:
        """Like :meth:`locate`, with each copy's Outlook categories."""
        out: dict[str, list[Location]] = {}
        for ref in refs:
            if ref.key in out:
                continue
            out[ref.key] = [
                Location(
                    ref=MailRef(
                        folder=self.folders.path_of(str(item.get("parentFolderId", ""))), uid=str(item["id"]), key=ref.key
                    ),
                    categories=tuple(item.get("categories") or ()),
                )
                for item in self._find(ref)
            ]
        return out

    def categories(self, ref: MailRef) -> list[str]:
        """The Outlook categories a message has now (empty when it is gone)."""
        found = self.locate_detailed([ref]).get(ref.key, [])
        for loc in found:
            if loc.ref.uid == ref.uid:
                return list(loc.categories)
        return list(found[0].categories) if found else []

    def _find(self, ref: MailRef) -> list[dict[str, Any]]:
        if ref.key and not ref.key.startswith("sha256:"):
            return list(
                self.graph.iter_collection(
                    self.graph.user_url("/messages"),
                    params={
                        "$filter": f"internetMessageId eq {odata_string('<' + ref.key + '>')}",
                        "$select": _LOCATE_FIELDS,
                    },
                )
            )
        # No Message-ID: the only handle is the Graph id, which survives everything but a move.
        try:
            item = self.graph.get_json(self.graph.user_url(f"/messages/{quote_id(ref.uid)}"), params={"$select": _LOCATE_FIELDS})
            return [item]
        except GraphHTTPError as exc:
            if exc.status == 404:
                return []
            raise
