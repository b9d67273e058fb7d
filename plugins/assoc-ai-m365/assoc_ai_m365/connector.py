"""The Microsoft 365 mailbox connector (Microsoft Graph v1.0).

What each contract method does on Graph:

=================  ===============================================================
``list_folders``   walk ``/mailFolders`` and ``childFolders`` (display paths)
``fetch_new``      ``/mailFolders/{id}/messages/delta?changeType=created``; the
                   cursor is the ``@odata.nextLink``/``deltaLink``; 410 (or
                   ``syncStateNotFound``) restarts the folder with ``resync``
``fetch_all``      ``/mailFolders/{id}/messages`` then ``/messages/{id}/$value``
``locate``         ``/messages?$filter=internetMessageId eq '<…>'`` (all folders)
``ensure_folder``  ``POST /mailFolders`` / ``/childFolders`` per missing level
``move``           ``POST /messages/{id}/move`` (Graph gives the moved copy a new id)
``add_label``      an Outlook **category**: created once in
                   ``/outlook/masterCategories`` with a colour, then
                   ``PATCH /messages/{id}`` ``categories``
``forward``        ``POST /sendMail`` with a MIME message carrying the original
                   and ``Auto-Submitted: auto-forwarded`` (see :mod:`.forwarding`)
=================  ===============================================================

``tag_subject`` is not offered: Graph lets a client change ``subject`` only
while ``isDraft`` is true (v1.0 *Update message*), and re-creating a received
message to change its subject would give it a new id, date and thread.  Use
categories, which Outlook shows as coloured tags.

Why ``changeType=created``: every update (read, category, flag) of a message
would otherwise come back in the next delta round as a "change", and the
triage job would see its own labels as new mail.  A message moved *into* the
folder is a new item there, so it is reported like new mail, as IMAP does.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import email.utils
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError
from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef, Page
from assoc_ai_core.i18n import tr
from assoc_ai_core.mail.parsing import decode_header, stable_key

from .auth import TokenProvider
from .config import CONNECTOR_ID, M365Config
from .folders import FolderTree, same_folder
from .forwarding import build_forward, forward_message_id
from .graph import GraphClient, GraphHTTPError, GraphOutcomeUnknown

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


def _q(graph_id: str) -> str:
    return quote(graph_id, safe="")


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def key_of(raw: bytes) -> str:
    """The audit key the core computes for ``raw`` (``parse_message(raw).key``), from the headers only."""
    try:
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        message_id = decode_header(headers.get("message-id"))
    except Exception:  # the core's parser falls back to the digest too
        message_id = ""
    return stable_key(message_id, raw)


class M365Connector(MailboxConnector):
    """A Microsoft 365 / Exchange Online mailbox through Microsoft Graph."""

    id: ClassVar[str] = CONNECTOR_ID
    Config: ClassVar[type] = M365Config
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.READ, Capability.MOVE, Capability.LABEL, Capability.CREATE_FOLDER, Capability.FORWARD}
    )
    description: ClassVar[str] = (
        "Microsoft 365 / Exchange Online via Microsoft Graph: folders, Outlook categories, move, forward, delta sync"
    )

    def __init__(self, config: M365Config) -> None:
        super().__init__(config)
        self.config: M365Config = config
        self._tokens: TokenProvider | None = None
        self._graph: GraphClient | None = None
        self._folders: FolderTree | None = None
        self._master_categories: dict[str, str] | None = None
        self._categories_writable = True
        self._spelling: dict[str, str] = {}
        self.skipped: list[Skipped] = []

    def __repr__(self) -> str:
        return f"M365Connector(mailbox={self.config.mailbox!r})"

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Sign in and check the mailbox can be read (AuthError / ConnectorError otherwise)."""
        if self._graph is not None:
            return
        tokens = TokenProvider(self.config)
        graph = GraphClient(self.config, tokens)
        try:
            folders = FolderTree(graph, self._spelling)
            folders.inbox_id()
        except BaseException:
            graph.close()
            tokens.close()
            raise
        self._tokens, self._graph, self._folders = tokens, graph, folders

    def close(self) -> None:
        """Save a rotated token cache and close the HTTP session; safe twice, never raises."""
        tokens, graph = self._tokens, self._graph
        self._tokens = self._graph = self._folders = None
        self._master_categories = None
        try:
            if tokens is not None:
                tokens.close()
        except Exception:  # closing must not hide the error that made us close
            log.warning("m365: could not save the token cache", exc_info=True)
        try:
            if graph is not None:
                graph.close()
        except Exception:
            log.debug("m365: error while closing the HTTP session", exc_info=True)

    @property
    def graph(self) -> GraphClient:
        """The Graph client (opens the connection on first use)."""
        if self._graph is None:
            self.open()
        assert self._graph is not None
        return self._graph

    @property
    def folders(self) -> FolderTree:
        """The folder tree of the mailbox (opens the connection on first use)."""
        if self._folders is None:
            self.open()
        assert self._folders is not None
        return self._folders

    @property
    def stats(self) -> dict[str, int]:
        """Counters of the current session: requests, retries, throttled, token_renewals."""
        return dict(self._graph.stats) if self._graph is not None else {}

    # ------------------------------------------------------------------ reading
    def list_folders(self) -> list[str]:
        """Display paths of every folder (``Inbox`` for the Inbox, ``/`` between levels)."""
        return self.folders.paths()

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
                        self.graph.user_url(f"/mailFolders/{_q(folder_id)}/messages/delta"),
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
            self.graph.user_url(f"/mailFolders/{_q(folder_id)}/messages"),
            params={"$select": "id", "$top": 100},
        )
        for item in listing:
            fetched = self._fetch_item(folder_path, item)
            if fetched is not None:
                yield fetched

    def _fetch_item(self, folder: str, item: Mapping[str, Any]) -> FetchedMail | None:
        uid = str(item["id"])
        try:
            resp = self.graph.request("GET", self.graph.user_url(f"/messages/{_q(uid)}/$value"), ok=(200,))
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
        return FetchedMail(ref=MailRef(folder=folder, uid=uid, key=key_of(raw)), raw=raw)

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
                        "$filter": f"internetMessageId eq {_odata_string('<' + ref.key + '>')}",
                        "$select": _LOCATE_FIELDS,
                    },
                )
            )
        # No Message-ID: the only handle is the Graph id, which survives everything but a move.
        try:
            item = self.graph.get_json(self.graph.user_url(f"/messages/{_q(ref.uid)}"), params={"$select": _LOCATE_FIELDS})
            return [item]
        except GraphHTTPError as exc:
            if exc.status == 404:
                return []
            raise

    # ------------------------------------------------------------------ actions
    def ensure_folder(self, name: str) -> None:
        """Create ``name`` (and its parents) if missing."""
        self.require(Capability.CREATE_FOLDER)
        self.folders.ensure(name)

    def move(self, ref: MailRef, folder: str) -> MailRef:
        """Move a message to ``folder`` (created if missing) and return its new ref; no-op if already there."""
        self.require(Capability.MOVE)
        target_id = self.folders.ensure(folder)
        target_path = self.folders.path_of(target_id)
        if same_folder(ref.folder, target_path):
            return ref
        try:
            moved = self.graph.send_json(
                "POST", self.graph.user_url(f"/messages/{_q(ref.uid)}/move"), {"destinationId": target_id}, ok=(200, 201)
            )
        except GraphHTTPError as exc:
            if exc.status != 404:
                raise
            return self._already_moved(ref, target_path)
        return MailRef(folder=target_path, uid=str(moved["id"]), key=ref.key)

    def _already_moved(self, ref: MailRef, target_path: str) -> MailRef:
        # The id is gone: an interrupted run may have moved it already; find it by its key.
        where = self.locate([ref]).get(ref.key, [])
        for found in where:
            if same_folder(found.folder, target_path):
                return found
        if where:
            raise ConnectorError(
                tr(
                    f"Le message n'est plus dans « {ref.folder} » mais dans « {where[0].folder} » "
                    "(déplacé par quelqu'un) : il n'est pas déplacé à nouveau.",
                    f"The message is no longer in '{ref.folder}' but in '{where[0].folder}' "
                    "(moved by someone): it is not moved again.",
                ),
                connector_id=CONNECTOR_ID,
            )
        raise ConnectorError(
            tr("Le message a été supprimé de la boîte.", "The message was deleted from the mailbox."),
            connector_id=CONNECTOR_ID,
        )

    def add_label(self, ref: MailRef, label: str) -> None:
        """Give the message the Outlook category ``label`` (created once with its colour); no-op if present."""
        self.require(Capability.LABEL)
        label = label.strip()
        if not label or "," in label:
            raise ConfigError(
                tr(
                    f"Nom de catégorie Outlook invalide : {label!r} (vide ou avec une virgule).",
                    f"Invalid Outlook category name: {label!r} (empty or with a comma).",
                )
            )
        name = self._ensure_category(label)
        uid = ref.uid
        for _ in range(3):
            try:
                item = self.graph.get_json(self.graph.user_url(f"/messages/{_q(uid)}"), params={"$select": "categories"})
            except GraphHTTPError as exc:
                if exc.status != 404:
                    raise
                where = self.locate([ref]).get(ref.key, [])
                if not where:
                    raise ConnectorError(
                        tr("Le message a été supprimé de la boîte.", "The message was deleted from the mailbox."),
                        connector_id=CONNECTOR_ID,
                    ) from None
                uid = where[0].uid
                continue
            current = list(item.get("categories") or [])
            if any(c.casefold() == name.casefold() for c in current):
                return
            etag = item.get("@odata.etag")
            try:
                self.graph.request(
                    "PATCH",
                    self.graph.user_url(f"/messages/{_q(uid)}"),
                    json={"categories": current + [name]},
                    headers={"If-Match": etag} if etag else None,
                    ok=(200, 204),
                )
                return
            except GraphHTTPError as exc:
                if exc.status != 412:  # 412: changed since we read it (a person edited it): read again
                    raise
        raise ConnectorError(
            tr(
                "La catégorie n'a pas pu être ajoutée : le message change sans cesse.",
                "The category could not be added: the message keeps changing.",
            ),
            connector_id=CONNECTOR_ID,
        )

    def _ensure_category(self, label: str) -> str:
        """The master-list spelling of ``label``, creating it with a colour on first use."""
        if self._master_categories is None:
            self._master_categories = {}
            if self._categories_writable:
                try:
                    for cat in self.graph.iter_collection(self.graph.user_url("/outlook/masterCategories")):
                        name = str(cat.get("displayName", ""))
                        self._master_categories[name.casefold()] = name
                except AuthError:
                    self._no_master_list()
        known = self._master_categories.get(label.casefold())
        if known is not None or not self._categories_writable:
            return known or label
        try:
            created = self.graph.send_json(
                "POST",
                self.graph.user_url("/outlook/masterCategories"),
                {"displayName": label, "color": self.config.color_for(label)},
                ok=(200, 201),
            )
            name = str(created.get("displayName", label))
        except GraphHTTPError as exc:
            if exc.status != 409:
                raise
            name = label  # created meanwhile by a person or another run
        except AuthError:
            self._no_master_list()
            return label
        self._master_categories[label.casefold()] = name
        return name

    def _no_master_list(self) -> None:
        # Without MailboxSettings.ReadWrite categories still work on messages, only without a colour.
        self._categories_writable = False
        log.warning(
            tr(
                "m365 : pas d'accès à la liste des catégories (permission MailboxSettings.ReadWrite) ; "
                "les catégories seront ajoutées sans couleur.",
                "m365: no access to the category list (MailboxSettings.ReadWrite permission); "
                "categories will be added without a colour.",
            )
        )

    def forward(self, ref: MailRef, raw: bytes, to: str) -> None:
        """Send ``raw`` to ``to`` as an attachment, marked ``Auto-Submitted: auto-forwarded``; once per (message, recipient)."""
        self.require(Capability.FORWARD)
        _, address = email.utils.parseaddr(to)
        if "@" not in address or " " in address:
            raise ConfigError(
                tr(
                    f"Adresse de transfert invalide : {to!r}. Mettez une adresse complète, ex. bureau@asso.org.",
                    f"Invalid forward address: {to!r}. Give a full address, e.g. board@asso.org.",
                )
            )
        mailbox = self.config.mailbox if "@" in self.config.mailbox else ""
        fwd_id = forward_message_id(ref.key, address, mailbox)
        already = list(
            self.graph.iter_collection(
                self.graph.user_url("/messages"),
                params={"$filter": f"internetMessageId eq {_odata_string(fwd_id)}", "$select": "id"},
            )
        )
        if already:
            log.info("m365: forward already sent (found in Sent Items); not sent again")
            return
        mime = build_forward(raw, key=ref.key, to=address, mailbox=mailbox)
        try:
            self.graph.request(
                "POST",
                self.graph.user_url("/sendMail"),
                data=base64.b64encode(mime),
                headers={"Content-Type": "text/plain"},
                ok=(202,),
                repeatable=False,
            )
        except GraphOutcomeUnknown as exc:
            raise _forward_error(str(exc), maybe_sent=True) from None
        except GraphHTTPError as exc:
            # A clear refusal (bad MIME, unknown recipient...): nothing was sent.
            raise _forward_error(str(exc), maybe_sent=False) from None


def _forward_error(message: str, *, maybe_sent: bool) -> ConnectorError:
    """The core's ForwardError, so the triage journal records a maybe-sent forward as *uncertain* (never resent)."""
    from assoc_ai_core.jobs.forwarding import ForwardError

    err = ForwardError(message, maybe_sent=maybe_sent)
    err.connector_id = CONNECTOR_ID
    return err
