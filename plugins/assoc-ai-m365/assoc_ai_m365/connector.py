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

The connector is built in layers: :mod:`.mailbox` (sign-in, Graph client, folders),
:mod:`.reading` (delta sync, ``locate``), and here the actions.
"""

from __future__ import annotations

import base64
import email.utils
import logging
from typing import ClassVar

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError
from assoc_ai_core.ext.connectors import Capability, MailRef
from assoc_ai_core.i18n import tr

from .config import CONNECTOR_ID, M365Config
from .folders import same_folder
from .forwarding import build_forward, forward_message_id
from .graph import GraphHTTPError, GraphOutcomeUnknown
from .mailbox import odata_string, quote_id
from .reading import Location, M365Reading, Skipped

__all__ = ["Location", "M365Connector", "Skipped"]

log = logging.getLogger(__name__)


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

    def move(self, ref: MailRef, folder: str) -> MailRef:
        """Move a message to ``folder`` (created if missing) and return its new ref; no-op if already there."""
        self.require(Capability.MOVE)
        target_id = self.folders.ensure(folder)
        target_path = self.folders.path_of(target_id)
        if same_folder(ref.folder, target_path):
            return ref
        try:
            moved = self.graph.send_json(
                "POST", self.graph.user_url(f"/messages/{quote_id(ref.uid)}/move"), {"destinationId": target_id}, ok=(200, 201)
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
                params={"$filter": f"internetMessageId eq {odata_string(fwd_id)}", "$select": "id"},
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
    from assoc_ai_core.errors import ForwardError

    err = ForwardError(message, maybe_sent=maybe_sent)
    err.connector_id = CONNECTOR_ID
    return err
