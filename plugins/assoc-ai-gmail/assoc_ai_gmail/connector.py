"""The Gmail connector: Gmail labels as folders, through the official Gmail API client.

Folders are labels (``"INBOX"`` is the inbox; ``IA/Adhésion`` is a nested
label).  Moving a message adds the target label and removes the source one
(for the inbox: archives it).  Gmail cannot change a received message, so
there is no subject tagging: a label shows the category instead.

The connector is built in layers: :mod:`.session` (credentials, API client,
labels), :mod:`.reading` (listings, history sync, ``locate``), and here the
actions (move, label, forward).
"""
from __future__ import annotations

import io
import logging
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

from assoc_ai_core.errors import CapabilityError, ConfigError, ConnectorError, ForwardError, TransientError
from assoc_ai_core.ext.connectors import Capability, MailRef
from assoc_ai_core.i18n import tr

from .calls import (
    SCOPE_REASONS,
    GmailBadRequest,
    GmailNotFound,
    error_reasons,
    rejected_before_processing,
    status_of,
)
from .config import GmailConfig
from .forwarding import build_forward
from .labels import check_label_name
from .reading import GmailReading
from .settings import BATCH_MODIFY_MAX_IDS, MAX_SEND_BYTES

__all__ = ["GmailConfig", "GmailConnector"]

log = logging.getLogger(__name__)


class GmailConnector(GmailReading):
    """Gmail / Google Workspace mailbox through the Gmail API (labels, archive, native forward)."""

    id: ClassVar[str] = "gmail"
    Config: ClassVar[type] = GmailConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.READ, Capability.MOVE, Capability.LABEL, Capability.CREATE_FOLDER, Capability.FORWARD}
    )
    #: Why TAG_SUBJECT is missing: Gmail stores received mail immutably; only labels can change.
    unsupported: ClassVar[dict[str, str]] = {
        Capability.TAG_SUBJECT.value: "Gmail cannot edit a received message; the category is shown as a label.",
    }
    description: ClassVar[str] = (
        "Gmail / Google Workspace via the Gmail API: labels (nested), archive, native forward, incremental "
        "history sync. No subject tagging: Gmail cannot edit received mail, the category is a label."
    )

    # -- acting ---------------------------------------------------------------------------------------

    def _modify(self, gmail_id: str, add: list[str], remove: list[str]) -> None:
        body = {"addLabelIds": add, "removeLabelIds": remove}
        self._forget_changes()
        try:
            self._call(self._users().messages().modify(userId=self.config.user_id, id=gmail_id, body=body),
                       "users.messages.modify")
        except GmailNotFound:
            raise ConnectorError(
                tr(f"Le message Gmail {gmail_id} n'existe plus (supprimé entre-temps).",
                   f"Gmail message {gmail_id} no longer exists (deleted meanwhile)."),
                connector_id=self.id,
            ) from None

    def _batch_modify(self, ids: Sequence[str], add: list[str], remove: list[str]) -> None:
        self._forget_changes()
        for i in range(0, len(ids), BATCH_MODIFY_MAX_IDS):
            body = {"ids": list(ids[i: i + BATCH_MODIFY_MAX_IDS]), "addLabelIds": add, "removeLabelIds": remove}
            self._call(self._users().messages().batchModify(userId=self.config.user_id, body=body),
                       "users.messages.batchModify")

    def _fresh_labels_on_bad_request(self, action: Callable[[], Any]) -> Any:
        """Run ``action``; if Gmail says a label id is invalid (deleted in the web UI), reload labels and retry once."""
        try:
            return action()
        except GmailBadRequest:
            self._labels_loaded = False
            return action()

    def move(self, ref: MailRef, folder: str) -> MailRef:
        """Add label ``folder`` and remove the source label (from INBOX: archive); no-op if already there."""
        return self._fresh_labels_on_bad_request(lambda: self._move(ref, folder))

    def _move(self, ref: MailRef, folder: str) -> MailRef:
        target = self._ensure_label(folder)
        if ref.folder == folder or self._labels.id_for(ref.folder) == target:
            return ref
        source = self._label_id(ref.folder)
        self._modify(ref.uid, [target], [source] if source else [])
        return MailRef(folder=self._labels.name_for(target), uid=ref.uid, key=ref.key)

    def move_many(self, refs: Sequence[MailRef], folder: str) -> dict[str, MailRef]:
        """:meth:`move` for many messages with ``users.messages.batchModify`` (1000 ids per call); key -> new ref."""
        return self._fresh_labels_on_bad_request(lambda: self._move_many(refs, folder))

    def _move_many(self, refs: Sequence[MailRef], folder: str) -> dict[str, MailRef]:
        target = self._ensure_label(folder)
        by_source: dict[str, list[str]] = {}
        for ref in refs:
            if ref.folder != folder and self._labels.id_for(ref.folder) != target:
                by_source.setdefault(ref.folder, []).append(ref.uid)
        for source_name, ids in by_source.items():
            source = self._label_id(source_name)
            self._batch_modify(ids, [target], [source] if source else [])
        name = self._labels.name_for(target)
        return {r.key: MailRef(folder=name, uid=r.uid, key=r.key) for r in refs}

    def tag_label_name(self, label: str) -> str:
        """The Gmail label :meth:`add_label` uses for ``label`` (``Adhésion`` -> ``#Adhésion``)."""
        prefix = self.config.label_prefix
        label = check_label_name(label)
        return label if not prefix or label.startswith(prefix) else prefix + label

    def add_label(self, ref: MailRef, label: str) -> None:
        """Attach the tag label ``#label`` (created if missing); the message stays where it is; no-op if present."""
        name = self.tag_label_name(label)
        self._fresh_labels_on_bad_request(lambda: self._modify(ref.uid, [self._ensure_label(name)], []))

    def add_label_many(self, refs: Sequence[MailRef], label: str) -> None:
        """:meth:`add_label` for many messages with ``users.messages.batchModify``."""
        name = self.tag_label_name(label)
        self._fresh_labels_on_bad_request(
            lambda: self._batch_modify([r.uid for r in refs], [self._ensure_label(name)], []))

    def tag_subject(self, ref: MailRef, tag: str) -> MailRef:
        """Not possible on Gmail: a received message cannot be edited. Always raises CapabilityError."""
        raise CapabilityError(
            tr(
                "Gmail ne permet pas de modifier un message reçu : impossible d'ajouter "
                f"« {tag} » à l'objet. La catégorie est indiquée par un libellé ; retirez l'action "
                "« tag_subject » de la configuration.",
                "Gmail cannot edit a received message: the subject cannot get "
                f"'{tag}'. The category is shown as a label; remove the 'tag_subject' action "
                "from the configuration.",
            ),
            connector_id=self.id,
        )

    def forward(self, ref: MailRef, raw: bytes, to: str) -> None:
        """Send ``raw`` to ``to`` through the upload endpoint of ``users.messages.send`` (up to 35 MB).

        The forward is marked ``Auto-Submitted: auto-forwarded``.  Throttling
        (429, rate-limit 403) raises :class:`TransientError`: nothing was sent,
        the run stops and the next one sends it.  Any other refusal is
        permanent for this message (:class:`ForwardError`, ``transient=False``):
        too big, a bad address, a missing send permission.  A server error or
        a time-out after sending may hide a success: ``maybe_sent``, never sent twice.
        """
        if not to or "@" not in to:
            raise ConfigError(
                tr(f"Adresse de transfert invalide : « {to} ».", f"Invalid forwarding address: '{to}'.")
            )
        self.open()
        data = build_forward(raw, to=to, sender=self.email_address or None)
        if len(data) > MAX_SEND_BYTES:
            mb, limit = len(data) / 1024 / 1024, MAX_SEND_BYTES // 1024 // 1024
            raise ForwardError(
                tr(f"Transfert impossible : le message fait {mb:.1f} Mo avec l'original joint, Gmail en accepte "
                   f"{limit} au plus. Transférez-le à la main (ou envoyez un lien) ; il ne sera pas réessayé.",
                   f"Cannot forward: the message is {mb:.1f} MB with the original attached, Gmail takes at most "
                   f"{limit}. Forward it by hand (or send a link); it will not be tried again."),
                transient=False, reason="too large", connector_id=self.id,
            )
        # the upload endpoint takes the message as it is: no base64 inflation, no JSON body limit
        media = MediaIoBaseUpload(io.BytesIO(data), mimetype="message/rfc822", resumable=False)
        request = self._users().messages().send(userId=self.config.user_id, media_body=media)
        if self.config.api_endpoint:
            # the client moves the upload URL to api_endpoint's host but keeps https: keep the endpoint's scheme
            scheme = urllib.parse.urlsplit(self.config.api_endpoint).scheme or "https"
            request.uri = urllib.parse.urlsplit(request.uri)._replace(scheme=scheme).geturl()
        try:
            self.calls.execute(request, what="users.messages.send", idempotent=False)
        except TransientError as exc:
            if exc.__cause__ is not None and rejected_before_processing(exc.__cause__):
                raise  # throttled or never reached: nothing was sent, the host may try again later
            # a server error or time-out after sending may hide a success: never send twice
            raise ForwardError(
                tr(f"Le transfert Gmail est peut-être parti malgré l'erreur ({exc}). Il ne sera pas renvoyé "
                   "automatiquement : vérifiez le dossier « Messages envoyés ».",
                   f"The Gmail forward may have gone out despite the error ({exc}). It will not be sent "
                   "again automatically: check the 'Sent' folder."),
                maybe_sent=True, connector_id=self.id,
            ) from exc
        except ConnectorError as exc:
            status = status_of(exc.__cause__) if exc.__cause__ is not None else None
            if status is None or status == 401:
                raise  # a refused login stops the run (AuthError): every forward would fail the same way
            raise self._refused(exc, status) from exc

    def _refused(self, exc: ConnectorError, status: int) -> ForwardError:
        """The permanent :class:`ForwardError` for a send Gmail refused with ``status`` (a 4xx)."""
        cause = exc.__cause__
        reasons = error_reasons(cause) if isinstance(cause, HttpError) else set()
        if reasons & SCOPE_REASONS:
            fr = ("l'autorisation Google ne permet pas d'envoyer. Relancez « assoc-ai gmail auth » et acceptez "
                  "l'accès gmail.modify (ou ajoutez ce champ d'application à la délégation du compte de service)")
            en = ("the Google authorisation does not allow sending. Run `assoc-ai gmail auth` again and accept "
                  "gmail.modify access (or add that scope to the service account's delegation)")
        elif status == 413:
            fr, en = "message trop gros pour Gmail", "message too large for Gmail"
        else:
            fr, en = f"Gmail a refusé l'envoi ({exc})", f"Gmail refused to send it ({exc})"
        return ForwardError(
            tr(f"Transfert non fait : {fr}. Il ne sera pas réessayé pour ce message.",
               f"Forward not done: {en}. It will not be tried again for this message."),
            transient=False, code=status, reason=", ".join(sorted(reasons)) or f"HTTP {status}",
            connector_id=self.id,
        )
