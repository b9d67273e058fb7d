"""The Microsoft 365 mailbox connector (Microsoft Graph v1.0).

What each contract method does on Graph:

=================  ===============================================================
``list_folders``   walk ``/mailFolders`` and ``childFolders`` (display paths)
``fetch_new``      ``/mailFolders/{id}/messages/delta?changeType=created``; the
                   cursor is the ``@odata.nextLink``/``deltaLink``; 410 (or
                   ``syncStateNotFound``) restarts the folder with ``resync``
``fetch_all``      ``/mailFolders/{id}/messages`` then ``/messages/{id}/$value``
``locate``         one listing by reception date, then ``$batch`` lookups by
                   immutable id / Message-ID (see :mod:`.reading`)
``ensure_folder``  ``POST /mailFolders`` / ``/childFolders`` per missing level
``move``           ``GET`` where it is (a message a person filed elsewhere is
                   never pulled back), then ``POST /messages/{id}/move``
                   (immutable ids: the id stays); ``move_many`` does both
                   20 to a ``$batch``
``add_label``      an Outlook **category**: created once in
                   ``/outlook/masterCategories`` with a colour, then
                   ``PATCH /messages/{id}`` ``categories`` (``If-Match``; 409 and
                   412 read again); ``add_label_many``: 20 to a ``$batch``
``forward``        ``POST /sendMail`` with a MIME message carrying the original
                   and ``Auto-Submitted: auto-forwarded`` (see :mod:`.forwarding`);
                   over Graph's 4 MB request limit: a MIME draft, the original
                   through ``attachments/createUploadSession`` (chunks), then
                   ``POST /messages/{id}/send``
=================  ===============================================================

``tag_subject`` is not offered: Graph lets a client change ``subject`` only
while ``isDraft`` is true (v1.0 *Update message*), and re-creating a received
message to change its subject would give it a new id, date and thread.  Use
categories, which Outlook shows as coloured tags.

The connector is built in layers: :mod:`.mailbox` (sign-in, Graph client, folders),
:mod:`.reading` (delta sync, ``locate``), and here the actions.
"""

from __future__ import annotations

import base64
import email.utils
import logging
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from assoc_ai_core.errors import AuthError, CapabilityError, ConfigError, ConnectorError, ForwardError
from assoc_ai_core.ext.connectors import Capability, MailRef
from assoc_ai_core.ext.http import parse_retry_after
from assoc_ai_core.i18n import tr

from .config import CONNECTOR_ID, M365Config
from .folders import same_folder
from .forwarding import build_forward, forward_message_id
from .graph import RETRYABLE_STATUS, GraphAccessDenied, GraphHTTPError, GraphOutcomeUnknown, graph_error
from .mailbox import odata_string, quote_id
from .reading import Location, M365Reading, Skipped

__all__ = ["Location", "M365Connector", "Skipped"]

log = logging.getLogger(__name__)

# Graph refuses requests over 4 MB; the MIME of a forward travels base64-encoded (4/3 larger), plus headers.
SEND_LIMIT = 4 * 1024 * 1024 - 64 * 1024
UPLOAD_CHUNK = 3 * 1024 * 1024  # under the 4 MB a chunk may hold
_ACTION_OF = {Capability.MOVE: "move", Capability.LABEL: "label", Capability.CREATE_FOLDER: "move",
              Capability.FORWARD: "forward"}


class M365Connector(M365Reading):
    """A Microsoft 365 / Exchange Online mailbox through Microsoft Graph."""

    id: ClassVar[str] = CONNECTOR_ID
    Config: ClassVar[type] = M365Config
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.READ, Capability.MOVE, Capability.LABEL, Capability.CREATE_FOLDER, Capability.FORWARD}
    )
    description: ClassVar[str] = (
        "Microsoft 365 / Exchange Online via Microsoft Graph: folders, Outlook categories, move, forward, delta sync"
    )

    def __repr__(self) -> str:
        return f"M365Connector(mailbox={self.config.mailbox!r})"

    def require(self, capability: Capability) -> None:
        """Like the base check, and refuse actions left out of ``actions`` (their permission was not asked for)."""
        super().require(capability)
        action = _ACTION_OF.get(capability)
        if action is not None and action not in self.config.actions:
            raise CapabilityError(
                tr(
                    f"Action « {action} » absente de [mailbox] actions : sa permission Microsoft Graph n'a pas été "
                    "demandée. Ajoutez-la à actions (puis reconnectez-vous en mode délégué).",
                    f"Action '{action}' is not in [mailbox] actions: its Microsoft Graph permission was not asked "
                    "for. Add it to actions (then sign in again in delegated mode).",
                ),
                connector_id=CONNECTOR_ID,
            )

    def move(self, ref: MailRef, folder: str) -> MailRef:
        """Move a message to ``folder`` (created if missing) and return its new ref; no-op if already there."""
        self.require(Capability.MOVE)
        target_id = self.folders.ensure(folder)
        target_path = self.folders.path_of(target_id)
        if same_folder(ref.folder, target_path):
            return ref
        self.forget_locations()
        # The immutable id still opens a message a person filed elsewhere; look first, never pull it back.
        try:
            now_in = self.graph.get_json(self.graph.user_url(f"/messages/{quote_id(ref.uid)}"),
                                         params={"$select": "parentFolderId"}).get("parentFolderId")
        except GraphHTTPError as exc:
            if exc.status != 404:
                raise
            return self._already_moved(ref, target_path)
        if now_in == target_id:
            return MailRef(folder=target_path, uid=ref.uid, key=ref.key)  # an interrupted run moved it already
        if now_in and not same_folder(self.folders.path_of(str(now_in)), ref.folder):
            return self._already_moved(ref, target_path)
        try:
            moved = self.graph.send_json(
                "POST", self.graph.user_url(f"/messages/{quote_id(ref.uid)}/move"), {"destinationId": target_id}, ok=(200, 201)
            )
        except GraphHTTPError as exc:
            if exc.status != 404:
                raise
            return self._already_moved(ref, target_path)
        return MailRef(folder=target_path, uid=str(moved["id"]), key=ref.key)

    def move_many(self, refs: Sequence[MailRef], folder: str) -> dict[str, MailRef]:
        """Move a page's messages to ``folder`` with two ``$batch`` rounds per 20 (where each is, then the moves).

        A message a person filed elsewhere, or one that is gone, is left out:
        the host then tries it alone with :meth:`move`, which says why.
        """
        self.require(Capability.MOVE)
        if len(refs) < 2:
            return {ref.key: self.move(ref, folder) for ref in refs}
        target_id = self.folders.ensure(folder)
        target_path = self.folders.path_of(target_id)
        out = {ref.key: ref for ref in refs if same_folder(ref.folder, target_path)}
        todo = [ref for ref in refs if ref.key not in out]
        if not todo:
            return out
        self.forget_locations()
        where = self.graph.batch([("GET", f"/messages/{quote_id(ref.uid)}") for ref in todo], select="parentFolderId")
        movable: list[MailRef] = []
        for ref, (status, body) in zip(todo, where, strict=True):
            now_in = str(body.get("parentFolderId") or "") if status == 200 else None
            if now_in == target_id:
                out[ref.key] = MailRef(folder=target_path, uid=ref.uid, key=ref.key)
            elif now_in is not None and (not now_in or same_folder(self.folders.path_of(now_in), ref.folder)):
                movable.append(ref)
        moved = self.graph.batch(
            [("POST", f"/messages/{quote_id(ref.uid)}/move", {"destinationId": target_id}) for ref in movable],
            select="id")
        for ref, (status, body) in zip(movable, moved, strict=True):
            if status in (200, 201) and body.get("id"):
                out[ref.key] = MailRef(folder=target_path, uid=str(body["id"]), key=ref.key)
        return out

    def add_label_many(self, refs: Sequence[MailRef], label: str) -> None:
        """Add the category ``label`` to a page's messages: read then ``PATCH`` (with ``If-Match``), 20 to a batch.

        Raises when any message could not be labelled; the host then labels
        each with :meth:`add_label` (which re-reads a message a person edited).
        """
        self.require(Capability.LABEL)
        if len(refs) < 2:
            for ref in refs:
                self.add_label(ref, label)
            return
        label = label.strip()
        if not label or "," in label:
            self.add_label(refs[0], label)  # raises the ConfigError that explains it
        name = self._ensure_category(label)
        self.forget_locations()
        read = self.graph.batch([("GET", f"/messages/{quote_id(ref.uid)}") for ref in refs], select="categories")
        patches: list[tuple[str, str, dict[str, Any]]] = []
        etags: list[dict[str, str] | None] = []
        failed = 0
        for ref, (status, body) in zip(refs, read, strict=True):
            if status != 200:
                failed += 1
                continue
            current = list(body.get("categories") or [])
            if any(c.casefold() == name.casefold() for c in current):
                continue
            patches.append(("PATCH", f"/messages/{quote_id(ref.uid)}", {"categories": current + [name]}))
            etag = body.get("@odata.etag")
            etags.append({"If-Match": str(etag)} if etag else None)
        if patches:
            failed += sum(1 for status, _ in self.graph.batch(patches, select="id", headers=etags)
                          if status not in (200, 204))
        if failed:
            raise ConnectorError(
                tr(f"{failed} message(s) sans la catégorie (modifiés ou supprimés entre-temps) : repris un par un.",
                   f"{failed} message(s) without the category (changed or deleted meanwhile): retried one by one."),
                connector_id=CONNECTOR_ID,
            )

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
        self.forget_locations()
        uid = ref.uid
        for _ in range(3):
            try:
                item = self.graph.get_json(self.graph.user_url(f"/messages/{quote_id(uid)}"), params={"$select": "categories"})
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
                    self.graph.user_url(f"/messages/{quote_id(uid)}"),
                    json={"categories": current + [name]},
                    headers={"If-Match": etag} if etag else None,
                    ok=(200, 204),
                )
                return
            except GraphHTTPError as exc:
                # 412 (stale etag) and 409 ErrorIrresolvableConflict: a person edited it meanwhile; read again.
                if exc.status not in (409, 412):
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
            if self.config.shared_delegated:
                # Graph shares a mailbox's messages with a delegate, never its settings: asking is a certain 403.
                self._categories_writable = False
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
        earlier = list(
            self.graph.iter_collection(
                self.graph.user_url("/messages"),
                params={"$filter": f"internetMessageId eq {odata_string(fwd_id)}", "$select": "id,isDraft"},
            )
        )
        if any(not item.get("isDraft") for item in earlier):
            log.info("m365: forward already sent (found in Sent Items); not sent again")
            return
        for draft in earlier:  # a large forward interrupted before its send: start it again
            self._delete_draft(str(draft["id"]))
        mime = build_forward(raw, key=ref.key, to=address, mailbox=mailbox)
        try:
            if len(mime) * 4 // 3 + 4 > SEND_LIMIT:
                self._send_large(raw, ref.key, address, mailbox)
                return
            try:
                self.graph.request(
                    "POST",
                    self.graph.user_url("/sendMail"),
                    data=base64.b64encode(mime),
                    headers={"Content-Type": "text/plain"},
                    ok=(202,),
                    repeatable=False,
                )
            except GraphHTTPError as exc:
                if exc.status != 413:
                    raise
                # Refused for its size before anything was sent: the same forward by upload session.
                self._send_large(raw, ref.key, address, mailbox)
        except GraphOutcomeUnknown as exc:
            raise _forward_error(str(exc), maybe_sent=True) from None
        except GraphAccessDenied as exc:
            # ErrorSendAsDenied, or Mail.Send not granted: this message's forward is refused, the run goes on.
            raise _forward_error(str(exc), maybe_sent=False, code=403, reason=exc.code) from None
        except GraphHTTPError as exc:
            # A clear refusal (bad MIME, unknown recipient...): nothing was sent.
            raise _forward_error(str(exc), maybe_sent=False, code=exc.status, reason=exc.code) from None

    def _send_large(self, raw: bytes, key: str, to: str, mailbox: str) -> None:
        """A forward over 4 MB: MIME draft without the original, the original by upload session, send."""
        note = build_forward(raw, key=key, to=to, mailbox=mailbox, attach=False)
        draft = self.graph.send_json_raw("POST", self.graph.user_url("/messages"), base64.b64encode(note),
                                         content_type="text/plain")
        draft_id = str(draft["id"])
        try:
            session = self.graph.send_json(
                "POST",
                self.graph.user_url(f"/messages/{quote_id(draft_id)}/attachments/createUploadSession"),
                {"AttachmentItem": {"attachmentType": "file", "name": "message.eml", "size": len(raw),
                                    "contentType": "message/rfc822"}},
                ok=(200, 201),
            )
            self._upload(str(session.get("uploadUrl", "")), raw)
        except BaseException:
            self._delete_draft(draft_id)
            raise
        try:
            self.graph.request("POST", self.graph.user_url(f"/messages/{quote_id(draft_id)}/send"), ok=(202,),
                               repeatable=False)
        except (GraphAccessDenied, GraphHTTPError):
            self._delete_draft(draft_id)  # refused outright: nothing was sent, leave no draft behind
            raise

    def _upload(self, url: str, data: bytes) -> None:
        """PUT ``data`` to an upload session in chunks; the URL carries its own credential (no bearer token)."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConnectorError(
                tr("Graph a renvoyé une adresse de téléversement non https : refusée.",
                   "Graph returned a non-https upload address: refused."),
                connector_id=CONNECTOR_ID,
            )
        offset = 0
        while offset < len(data):
            chunk = data[offset:offset + UPLOAD_CHUNK]
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Range": f"bytes {offset}-{offset + len(chunk) - 1}/{len(data)}"}
            resp = self._put_chunk(url, chunk, headers)
            offset += len(chunk)
            if resp.status_code == 201:
                return
        raise ConnectorError(
            tr("Téléversement de la pièce jointe non confirmé par Graph.", "Graph did not confirm the attachment upload."),
            connector_id=CONNECTOR_ID,
        )

    def _put_chunk(self, url: str, chunk: bytes, headers: dict[str, str]) -> requests.Response:
        graph = self.graph
        for attempt in range(self.config.max_retries + 1):
            graph.stats["requests"] += 1
            try:
                resp = graph.session.put(url, data=chunk, headers=headers, timeout=self.config.timeout)
            except requests.RequestException as exc:
                if attempt == self.config.max_retries:
                    raise ConnectorError(
                        tr(f"Téléversement interrompu ({type(exc).__name__}).",
                           f"Upload interrupted ({type(exc).__name__})."),
                        connector_id=CONNECTOR_ID,
                    ) from exc
                graph._sleep(self.config.retry_backoff * 2 ** attempt)
                continue
            if resp.status_code in (200, 201):
                return resp
            if resp.status_code not in RETRYABLE_STATUS or attempt == self.config.max_retries:
                code, message = graph_error(resp)
                raise graph.error_for(resp.status_code, code, message, "PUT (upload)")
            wait = parse_retry_after(resp.headers.get("Retry-After"))
            wait = self.config.retry_backoff * 2 ** attempt if wait is None else wait
            graph.stats["retries"] += 1
            graph.stats["waited_ms"] += int(wait * 1000)
            graph._sleep(min(wait, self.config.max_retry_wait))
        raise AssertionError("unreachable")  # pragma: no cover

    def _delete_draft(self, draft_id: str) -> None:
        try:
            self.graph.request("DELETE", self.graph.user_url(f"/messages/{quote_id(draft_id)}"), ok=(204, 404))
        except ConnectorError:
            log.warning("m365: an unsent forward draft could not be deleted; it stays in Drafts")


def _forward_error(message: str, *, maybe_sent: bool, code: int | None = None, reason: str = "") -> ForwardError:
    """The core's ForwardError: it affects this message only; a maybe-sent forward is *uncertain* (never resent)."""
    return ForwardError(message, maybe_sent=maybe_sent, transient=False, code=code, reason=reason,
                        connector_id=CONNECTOR_ID)
