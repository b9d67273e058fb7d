"""Reading mail from Graph: delta sync of new mail, whole folders, and where each message is now.

Starting from now: :meth:`M365Reading.cursor_at_now` reads the server's
clock (the ``Date`` of one small request) and the first ``fetch_new`` then
opens the folder's delta round with ``$filter=receivedDateTime ge`` that
time (the one filter Graph's message delta accepts), so the first run reads
no backlog and costs one request, whatever the folder holds.  The filter
stays in every later delta link and is kept across a 410 resync.

Where decided messages are now (``locate``), in a number of requests that
does not grow with the number of messages asked about: ids are immutable (a
person moving a message does not change it), one listing of the whole
mailbox by reception date (``/messages?$filter=receivedDateTime ge …``,
1000 per page, only ``id``, ``parentFolderId``, ``categories`` and
``internetMessageId``) answers for everything received within
``locate_window_days``; messages not in it (older, or stored with a
pre-immutable id) are looked up by id, then by Message-ID, 20 per
``$batch``.  The listing is kept for the run (the host asks 200 messages at
a time) and dropped as soon as the connector changes the mailbox.

Why ``changeType=created``: every update (read, category, flag) of a message
would otherwise come back in the next delta round as a "change", and the
triage job would see its own labels as new mail.  A message moved *into* the
folder is a new item there, so it is reported like new mail, as IMAP does.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
SMALL_LOCATE = 20  # up to one batch: looked up directly, no mailbox listing
_SWEEP_TTL = 300.0  # seconds a mailbox listing answers locate() (one run's correction check)


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
        self._sweep: _Sweep | None = None

    def forget_locations(self) -> None:
        """Drop the listing ``locate`` answers from (called after every change the connector makes)."""
        self._sweep = None

    def cursor_at_now(self, folder: str) -> Mapping[str, Any] | None:
        """A cursor after the mail ``folder`` holds now: its delta starts at the server's present time."""
        folder_id = self.folders.resolve(folder)
        folder_path = self.folders.path_of(folder_id)
        resp = self.graph.request("GET", self.graph.user_url(f"/mailFolders/{quote_id(folder_id)}"),
                                  params={"$select": "id"}, ok=(200,))
        # The server's clock, not ours: receivedDateTime is stamped by Exchange, a skewed host would miss mail.
        stamped = email.utils.parsedate_to_datetime(resp.headers["Date"]) if resp.headers.get("Date") else None
        now = (stamped or datetime.now(UTC)).astimezone(UTC)
        return {"folder": folder_path, "folder_id": folder_id, "since": _iso(now)}

    def fetch_since(self, folder: str, since: datetime) -> Iterator[FetchedMail]:
        """Yield the messages of ``folder`` received on or after ``since``, oldest first (a dated listing)."""
        folder_id = self.folders.resolve(folder)
        folder_path = self.folders.path_of(folder_id)
        when = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        listing = self.graph.iter_collection(
            self.graph.user_url(f"/mailFolders/{quote_id(folder_id)}/messages"),
            params={"$filter": f"receivedDateTime ge {_iso(when)}", "$orderby": "receivedDateTime asc",
                    "$select": "id,receivedDateTime", "$top": 100},
        )
        for item in listing:
            fetched = self._fetch_item(folder_path, item)
            if fetched is not None:
                yield fetched

    def fetch_new(self, folder: str, cursor: Mapping[str, Any] | None, *, page_size: int = 100) -> Iterator[Page]:
        """Yield pages of mail that arrived in ``folder`` since ``cursor`` (all of it when None)."""
        folder_id = self.folders.resolve(folder)
        folder_path = self.folders.path_of(folder_id)
        page_size = max(1, min(int(page_size), 1000))
        headers = {"Prefer": f"odata.maxpagesize={page_size}"}
        link: str | None = None
        resync = False
        since: str | None = None
        if cursor:
            saved = cursor.get("link")
            saved_since = cursor.get("since")
            if cursor.get("folder_id") == folder_id and isinstance(saved_since, str) and _valid_iso(saved_since):
                since = saved_since
            if cursor.get("folder_id") == folder_id and isinstance(saved, str) and saved.startswith(
                self.config.graph_origin + "/"
            ):
                link = saved
            elif since is not None and saved is None:
                pass  # placed by cursor_at_now: the first round starts at that time
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
                    params = {"changeType": "created", "$select": _DELTA_FIELDS}
                    if since is not None:
                        params["$filter"] = f"receivedDateTime ge {since}"
                    body = self.graph.get_json(
                        self.graph.user_url(f"/mailFolders/{quote_id(folder_id)}/messages/delta"),
                        params=params,
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
            if since is not None:
                new_cursor["since"] = since
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
        wanted: dict[str, MailRef] = {}
        for ref in refs:
            wanted.setdefault(ref.key, ref)
        found: dict[str, list[dict[str, Any]]] = {}
        fresh = self._sweep is not None and time.monotonic() - self._sweep.made <= _SWEEP_TTL
        if len(wanted) > SMALL_LOCATE or fresh:  # the host's last chunk is often small: the listing answers it too
            sweep = self._listing()
            for key, ref in wanted.items():
                items = sweep.find(ref)
                if items:
                    found[key] = items
        missing = [ref for key, ref in wanted.items() if key not in found]
        found.update(self._look_up(missing))
        return {
            key: [
                Location(
                    ref=MailRef(folder=self.folders.path_of(str(item.get("parentFolderId", ""))), uid=str(item["id"]),
                                key=key),
                    categories=tuple(item.get("categories") or ()),
                )
                for item in found.get(key, [])
            ]
            for key in wanted
        }

    def _listing(self) -> _Sweep:
        if self._sweep is None or time.monotonic() - self._sweep.made > _SWEEP_TTL:
            since = datetime.now(UTC) - timedelta(days=self.config.locate_window_days)
            items = self.graph.iter_collection(
                self.graph.user_url("/messages"),
                params={"$filter": f"receivedDateTime ge {_iso(since)}", "$select": _LOCATE_FIELDS, "$top": 1000},
            )
            self._sweep = _Sweep.of(items)
        return self._sweep

    def _look_up(self, refs: Sequence[MailRef]) -> dict[str, list[dict[str, Any]]]:
        """Where ``refs`` are, by id then by Message-ID, 20 to a ``$batch`` (empty list: deleted)."""
        out: dict[str, list[dict[str, Any]]] = {}
        if not refs:
            return out
        answers = self.graph.batch([("GET", f"/messages/{quote_id(ref.uid)}") for ref in refs], select=_LOCATE_FIELDS)
        by_mid: list[MailRef] = []
        for ref, (status, body) in zip(refs, answers, strict=True):
            if status == 200 and body.get("id"):
                out[ref.key] = [body]
            elif status in (400, 404):  # 400: an id of another format (or damaged): try the Message-ID
                out[ref.key] = []
                if ref.key and not ref.key.startswith("sha256:"):
                    by_mid.append(ref)
            else:
                raise self.graph.batch_error(status, body)
        if by_mid:
            query = [("GET", "/messages?$filter=" + quote_filter(f"internetMessageId eq {odata_string('<' + r.key + '>')}"))
                     for r in by_mid]
            for ref, (status, body) in zip(by_mid, self.graph.batch(query, select=_LOCATE_FIELDS), strict=True):
                if status != 200:
                    raise self.graph.batch_error(status, body)
                out[ref.key] = list(body.get("value") or [])
        return out

    def categories(self, ref: MailRef) -> list[str]:
        """The Outlook categories a message has now (empty when it is gone)."""
        found = self.locate_detailed([ref]).get(ref.key, [])
        for loc in found:
            if loc.ref.uid == ref.uid:
                return list(loc.categories)
        return list(found[0].categories) if found else []


@dataclass
class _Sweep:
    """One listing of the mailbox by reception date: items by id and by Message-ID."""

    made: float
    by_id: dict[str, dict[str, Any]]
    by_mid: dict[str, list[dict[str, Any]]]

    @classmethod
    def of(cls, items: Iterator[dict[str, Any]]) -> _Sweep:
        """Index ``items`` (each with id, parentFolderId, categories, internetMessageId)."""
        by_id: dict[str, dict[str, Any]] = {}
        by_mid: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            by_id[str(item["id"])] = item
            mid = str(item.get("internetMessageId") or "")
            if mid:
                by_mid.setdefault(mid, []).append(item)
        return cls(made=time.monotonic(), by_id=by_id, by_mid=by_mid)

    def find(self, ref: MailRef) -> list[dict[str, Any]]:
        """Every copy of ``ref``'s message in the listing: by its id, and by its Message-ID when it has one."""
        items = [self.by_id[ref.uid]] if ref.uid in self.by_id else []
        if ref.key and not ref.key.startswith("sha256:"):
            items += [i for i in self.by_mid.get("<" + ref.key + ">", []) if i is not (items[0] if items else None)]
        return items


def _iso(when: datetime) -> str:
    """``2026-01-31T08:00:00Z``: the form Graph's ``$filter`` on dates accepts."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _valid_iso(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def quote_filter(expr: str) -> str:
    """A ``$filter`` expression made safe inside a batch sub-request URL."""
    from urllib.parse import quote

    return quote(expr, safe="'@")
