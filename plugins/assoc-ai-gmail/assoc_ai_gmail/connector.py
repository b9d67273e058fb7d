"""The Gmail connector: Gmail labels as folders, through the official Gmail API client.

Folders are labels (``"INBOX"`` is the inbox; ``IA/Adhésion`` is a nested
label).  Moving a message adds the target label and removes the source one
(for the inbox: archives it).  Gmail cannot change a received message, so
there is no subject tagging: a label shows the category instead.

New mail is read incrementally from ``users.history.list`` (the cursor is the
last ``historyId``); when Gmail has forgotten that point (HTTP 404) the folder
is listed again and pages are flagged ``resync`` so the host skips what it
already handled.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import google_auth_httplib2
import googleapiclient.discovery
import httplib2
from googleapiclient.http import BatchHttpRequest

from assoc_ai_core.errors import CapabilityError, ConfigError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef, Page
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.forwarding import ForwardError
from assoc_ai_core.mail.parsing import parse_message

from . import credentials as creds_mod
from .calls import ApiCaller, GmailBadRequest, GmailConflict, GmailNotFound, rejected_before_processing
from .forwarding import build_forward
from .history import Arrivals
from .labels import LabelBook, check_label_name, parents_first
from .settings import BATCH_MODIFY_MAX_IDS, HISTORY_TYPES, LIST_MAX_RESULTS, TRASH

log = logging.getLogger(__name__)

DEFAULT_API_ROOT = "https://gmail.googleapis.com/"


@dataclass(frozen=True)
class GmailConfig:
    """Settings of one Gmail mailbox (section ``[mailbox]`` with ``connector = "gmail"``).

    Authenticate with **one** of:

    * ``token`` — reference to the file written by ``assoc-ai gmail auth``,
      e.g. ``token = { file = "/var/lib/assoc-ai/gmail-token.json" }``;
    * ``token_keyring`` — the name given to ``assoc-ai gmail auth --keyring``;
    * ``service_account_file`` + ``subject`` — a Workspace service account with
      domain-wide delegation, acting as the mailbox ``subject``.

    ``label_prefix`` starts the name of the labels :meth:`GmailConnector.add_label`
    attaches (``Adhésion`` -> ``#Adhésion``): on Gmail every label is also a
    folder, and the prefix is what keeps these *tags* apart from the labels
    that say where a message is filed.  An empty prefix makes them folders too.

    ``api_endpoint`` and ``auth_endpoint`` (the OAuth 2.0 token URL) default to
    Google's; set them only for a proxy or a test server.
    """

    token: Secret | None = None
    token_keyring: str | None = None
    service_account_file: str | None = None
    subject: str | None = None
    user_id: str = "me"
    label_prefix: str = "#"
    api_endpoint: str | None = None
    auth_endpoint: str | None = None
    timeout_seconds: float = 60.0
    max_retries: int = 5
    batch_size: int = 20
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    def __post_init__(self) -> None:
        ways = [w for w, v in (("token", self.token), ("token_keyring", self.token_keyring),
                               ("service_account_file", self.service_account_file)) if v]
        if len(ways) > 1:
            raise ValueError(
                tr(f"choisissez une seule façon de se connecter à Gmail, pas {', '.join(ways)}.",
                   f"choose one way to sign in to Gmail, not {', '.join(ways)}.")
            )
        if self.timeout_seconds <= 0 or self.max_retries < 0 or self.backoff_max_seconds < 0:
            raise ValueError(
                tr("timeout_seconds doit être > 0, max_retries et backoff_max_seconds >= 0.",
                   "timeout_seconds must be > 0, max_retries and backoff_max_seconds >= 0.")
            )
        if not 1 <= self.batch_size <= 100:
            raise ValueError(tr("batch_size doit être entre 1 et 100 (Gmail conseille 50 au plus).",
                                "batch_size must be between 1 and 100 (Gmail advises 50 at most)."))


class GmailConnector(MailboxConnector):
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

    def __init__(self, config: GmailConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        """Store the config; no network until :meth:`open` or the first call."""
        super().__init__(config)
        self._sleep = sleep
        self._service: Any = None
        self._http: Any = None
        self._calls: ApiCaller | None = None
        self._labels = LabelBook(tag_prefix=config.label_prefix)
        self._labels_loaded = False
        self.email_address: str = ""
        #: Messages skipped during the last fetch (gone between list and get): ``{"uid", "folder", "reason"}``.
        self.skipped: list[dict[str, str]] = []

    # -- connection ---------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return "mailbox"  # the configuration section the triage job builds this connector from

    def _credentials(self) -> Any:
        creds = self._base_credentials()
        if self.config.auth_endpoint:
            creds = creds.with_token_uri(self.config.auth_endpoint)
        return creds

    def _base_credentials(self) -> Any:
        cfg = self.config
        if cfg.service_account_file:
            return creds_mod.service_account_credentials(cfg.service_account_file, cfg.subject, where=self._where)
        if cfg.token is not None:
            return creds_mod.user_credentials_from_json(cfg.token.get(), where=f"{self._where}.token")
        if cfg.token_keyring:
            text = creds_mod.read_keyring(cfg.token_keyring, where=self._where)
            return creds_mod.user_credentials_from_json(text, where=f"{self._where}.token_keyring")
        raise ConfigError(
            tr(
                f"[{self._where}] : aucune autorisation Gmail. Lancez « assoc-ai gmail auth --client-secrets "
                'client_secret.json --token gmail-token.json » puis ajoutez token = { file = "gmail-token.json" } '
                "(ou, avec Google Workspace, service_account_file et subject).",
                f"[{self._where}]: no Gmail authorisation. Run `assoc-ai gmail auth --client-secrets "
                'client_secret.json --token gmail-token.json` then add token = { file = "gmail-token.json" } '
                "(or, with Google Workspace, service_account_file and subject).",
            )
        )

    def open(self) -> None:
        """Build the API client and check the authorisation with ``users.getProfile``."""
        if self._service is not None:
            return
        creds = self._credentials()
        self._calls = ApiCaller(
            connector_id=self.id,
            max_retries=self.config.max_retries,
            initial_wait=self.config.backoff_initial_seconds,
            max_wait=self.config.backoff_max_seconds,
            service_account=bool(self.config.service_account_file),
            sleep=self._sleep,
        )
        self._http = google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http(timeout=self.config.timeout_seconds))
        options = {"api_endpoint": self.config.api_endpoint} if self.config.api_endpoint else None
        try:
            self._service = googleapiclient.discovery.build(
                "gmail", "v1", http=self._http, static_discovery=True, cache_discovery=False,
                client_options=options,
            )
        except Exception as exc:  # a broken install or endpoint option; never a raw library error
            self._http = None
            raise ConnectorError(
                tr(f"Client Gmail impossible à construire : {exc}", f"Cannot build the Gmail client: {exc}"),
                connector_id=self.id,
            ) from exc
        try:
            profile = self._call(self._service.users().getProfile(userId=self.config.user_id), "users.getProfile")
        except BaseException:
            self.close()
            raise
        self.email_address = str(profile.get("emailAddress", ""))

    def close(self) -> None:
        """Drop the client and its connections; safe twice, never raises."""
        http, self._service, self._http = self._http, None, None
        self._labels_loaded = False
        if http is not None:
            try:
                http.close()
            except Exception:  # closing must never hide the real outcome of a run
                log.debug("Gmail: error while closing connections", exc_info=True)

    @property
    def calls(self) -> ApiCaller:
        """The retrying caller (opens the connector if needed)."""
        self.open()
        assert self._calls is not None
        return self._calls

    def _users(self) -> Any:
        self.open()
        return self._service.users()

    def _call(self, request: Any, what: str) -> Any:
        assert self._calls is not None
        return self._calls.execute(request, what=what)

    def _new_batch(self, callback: Callable[..., None]) -> BatchHttpRequest:
        # Gmail's documented batch endpoint, on the configured host (the discovery default ignores api_endpoint)
        base = (self.config.api_endpoint or DEFAULT_API_ROOT).rstrip("/")
        return BatchHttpRequest(callback=callback, batch_uri=f"{base}/batch/gmail/v1")

    def _call_many(self, requests: Mapping[str, Any], what: str) -> dict[str, Any]:
        """Many GETs in HTTP batches (one round trip per ``batch_size``); ``{id: body or ConnectorError}``."""
        if not requests:
            return {}
        if len(requests) == 1:  # no batch envelope for a single call
            ((rid, request),) = requests.items()
            try:
                return {rid: self._call(request, what)}
            except (GmailNotFound, GmailBadRequest) as exc:
                return {rid: exc}
        return self.calls.execute_many(self._new_batch, requests, what=what, chunk=self.config.batch_size)

    # -- labels ---------------------------------------------------------------------------------------

    def _load_labels(self, force: bool = False) -> LabelBook:
        if force or not self._labels_loaded:
            answer = self._call(self._users().labels().list(userId=self.config.user_id), "users.labels.list")
            self._labels.reset(answer.get("labels") or [])
            self._labels_loaded = True
        return self._labels

    def _label_id(self, name: str) -> str | None:
        book = self._load_labels()
        lid = book.id_for(name)
        if lid is None:
            lid = self._load_labels(force=True).id_for(name)  # created meanwhile in the Gmail web UI
        return lid

    def _require_label(self, folder: str) -> str:
        lid = self._label_id(folder)
        if lid is None:
            known = ", ".join(self._labels.folders()) or "-"
            raise ConnectorError(
                tr(f"Aucun libellé Gmail « {folder} ». Libellés existants : {known}.",
                   f"No Gmail label '{folder}'. Existing labels: {known}."),
                connector_id=self.id,
            )
        return lid

    def list_folders(self) -> list[str]:
        """INBOX then every user label (nested ones as ``Parent/Child``)."""
        return self._load_labels(force=True).folders()

    def ensure_folder(self, name: str) -> None:
        """Create the label ``name`` and its parents if missing (``IA/Adhésion`` -> ``IA``, ``IA/Adhésion``)."""
        self._ensure_label(name)

    def _ensure_label(self, name: str) -> str:
        name = check_label_name(name)
        lid = self._label_id(name)
        if lid is not None:
            return lid
        for part in parents_first(name):
            if self._labels.id_for(part) is not None:
                continue
            body = {"name": part, "labelListVisibility": "labelShow", "messageListVisibility": "show"}
            try:
                created = self._call(
                    self._users().labels().create(userId=self.config.user_id, body=body), "users.labels.create"
                )
                self._labels.add(created)
                log.info("Gmail: created label %s", part)
            except GmailConflict:
                # created by someone else meanwhile, or same name with other capitals: use that one
                if self._load_labels(force=True).id_for(part) is None:
                    raise
        lid = self._labels.id_for(name)
        assert lid is not None
        return lid

    # -- reading --------------------------------------------------------------------------------------

    def _get_raw_many(self, ids: Sequence[str], folder: str, label_id: str | None) -> list[FetchedMail]:
        """Fetch messages as raw bytes (HTTP batches), in the order given; vanished ones skipped and reported."""
        users = self._users()
        answers = self._call_many(
            {gid: users.messages().get(userId=self.config.user_id, id=gid, format="raw") for gid in ids},
            "users.messages.get",
        )
        out = []
        for gid in ids:
            answer = answers.get(gid)
            if isinstance(answer, (GmailNotFound, GmailBadRequest)):
                self._skip(gid, folder, "deleted before it could be read")
                continue
            if isinstance(answer, Exception):
                raise answer
            if label_id is not None and label_id not in (answer.get("labelIds") or []):
                log.info("Gmail: message %s left %s before it was read; skipped", gid, folder)
                continue
            try:
                raw = base64.urlsafe_b64decode(str(answer.get("raw", "")) + "==")
            except (ValueError, TypeError):
                raw = b""
            if not raw:
                # never dropped silently: an empty body reaches the host, whose parser flags it for review
                log.warning("Gmail: message %s came back without content", gid)
            key = parse_message(raw, source=f"gmail:{gid}").key
            out.append(FetchedMail(MailRef(folder=folder, uid=str(gid), key=key), raw))
        return out

    def _skip(self, gmail_id: str, folder: str, reason: str) -> None:
        self.skipped.append({"uid": str(gmail_id), "folder": folder, "reason": reason})
        log.warning("Gmail: message %s in %s skipped: %s", gmail_id, folder, reason)

    def _list_ids(self, label_id: str, page_size: int, page_token: str | None) -> tuple[list[str], str | None]:
        answer = self._call(
            self._users().messages().list(
                userId=self.config.user_id, labelIds=[label_id], maxResults=page_size,
                pageToken=page_token or None, includeSpamTrash=label_id in ("SPAM", TRASH),
            ),
            "users.messages.list",
        )
        ids = [str(m["id"]) for m in answer.get("messages") or [] if m.get("id")]
        return ids, answer.get("nextPageToken") or None

    def _profile_history_id(self) -> str:
        profile = self._call(self._users().getProfile(userId=self.config.user_id), "users.getProfile")
        return str(profile["historyId"])

    def fetch_all(self, folder: str) -> Iterator[FetchedMail]:
        """Every message carrying the label ``folder`` (newest first, as Gmail lists them)."""
        label_id = self._require_label(folder)
        token: str | None = None
        seen: set[str] = set()
        while True:
            ids, token = self._list_ids(label_id, LIST_MAX_RESULTS, token)
            fresh = [gid for gid in dict.fromkeys(ids) if gid not in seen]
            seen.update(fresh)
            for start in range(0, len(fresh), self.config.batch_size):
                yield from self._get_raw_many(fresh[start: start + self.config.batch_size], folder, label_id)
            if not token:
                return

    def fetch_new(self, folder: str, cursor: Mapping[str, Any] | None, *, page_size: int = 100) -> Iterator[Page]:
        """Pages of mail that entered ``folder`` since ``cursor`` (``{"history_id": ...}``); all of it when None."""
        page_size = max(1, min(int(page_size), LIST_MAX_RESULTS))
        self.skipped = []
        label_id = self._require_label(folder)
        if not cursor or not cursor.get("history_id"):
            yield from self._full_listing(folder, label_id, page_size, start=None, resync=False)
            return
        pending = cursor.get("listing")
        if isinstance(pending, Mapping):  # a full listing was interrupted: go on with it
            yield from self._full_listing(folder, label_id, page_size, start=dict(cursor), resync=bool(pending.get("resync")))
            return
        try:
            yield from self._history_pass(folder, label_id, cursor, page_size)
        except _HistoryExpired:
            log.warning("Gmail: history point %s of %s is too old; listing the folder again",
                        cursor.get("history_id"), folder)
            yield from self._full_listing(folder, label_id, page_size, start=None, resync=True)

    def _full_listing(self, folder: str, label_id: str, page_size: int, *, start: dict[str, Any] | None,
                      resync: bool) -> Iterator[Page]:
        if start is None:
            # taken *before* listing: whatever arrives during the listing shows up in the next history pass
            history_id = self._profile_history_id()
            token: str | None = None
        else:
            history_id = str(start["history_id"])
            token = str(start["listing"].get("page_token") or "") or None
        seen: set[str] = set()
        while True:
            try:
                ids, next_token = self._list_ids(label_id, page_size, token)
            except (GmailBadRequest, GmailNotFound):
                if token is None:
                    raise
                # a page token Gmail no longer accepts: start the listing over, the host skips known keys
                log.warning("Gmail: listing of %s could not resume; starting it over", folder)
                yield from self._full_listing(folder, label_id, page_size, start=None, resync=True)
                return
            fresh = [gid for gid in dict.fromkeys(ids) if gid not in seen]
            seen.update(fresh)
            messages = self._get_raw_many(fresh, folder, label_id)
            if next_token:
                cur: dict[str, Any] = {"history_id": history_id, "listing": {"page_token": next_token, "resync": resync}}
            else:
                # the next history pass may meet messages this listing already returned: flag it as a resync
                cur = {"history_id": history_id, "overlap": True}
            yield Page(messages=messages, cursor=cur, resync=resync)
            if not next_token:
                return
            token = next_token

    def _history_pass(self, folder: str, label_id: str, cursor: Mapping[str, Any], page_size: int) -> Iterator[Page]:
        start = str(cursor["history_id"])
        overlap = bool(cursor.get("overlap"))
        arrivals = Arrivals()
        token: str | None = None
        latest = start
        while True:
            try:
                answer = self._call(
                    self._users().history().list(
                        userId=self.config.user_id, startHistoryId=start, labelId=label_id,
                        historyTypes=list(HISTORY_TYPES), maxResults=LIST_MAX_RESULTS, pageToken=token,
                    ),
                    "users.history.list",
                )
            except GmailNotFound:
                raise _HistoryExpired() from None
            arrivals.add_records(answer.get("history") or [], label_id)
            latest = str(answer.get("historyId") or latest)
            token = answer.get("nextPageToken") or None
            if not token:
                break
        pending = arrivals.pending()
        if not pending:
            if latest != start:  # keep the point fresh so it never gets too old on a quiet folder
                yield Page(messages=[], cursor={"history_id": latest}, resync=False)
            return
        try:
            start_int = int(start)
        except ValueError:
            start_int = 0
        for i in range(0, len(pending), page_size):
            chunk = pending[i: i + page_size]
            messages = self._get_raw_many(chunk, folder, label_id)
            if i + page_size < len(pending):
                point = arrivals.resume_point(pending[i + page_size], start_int)
                cur: dict[str, Any] = {"history_id": str(point)}
                if overlap:
                    cur["overlap"] = True
            else:
                cur = {"history_id": latest}
            yield Page(messages=messages, cursor=cur, resync=overlap)

    def locate(self, refs: Sequence[MailRef]) -> dict[str, list[MailRef]]:
        """Where each message is now: one ref per folder-like label it carries (``[]`` if deleted or trashed).

        Tag labels (``#…``, see ``label_prefix``) are left out: like IMAP keywords they are not a place.
        """
        self._load_labels(force=True)
        found: dict[str, list[MailRef]] = {}
        ids: dict[str, str] = {}
        for ref in refs:
            gmail_id = ref.uid or self._find_by_key(ref.key)
            if gmail_id:
                ids[ref.key] = str(gmail_id)
            else:
                found[ref.key] = []
        users = self._users()
        answers = self._call_many(
            {key: users.messages().get(userId=self.config.user_id, id=gid, format="minimal")
             for key, gid in ids.items()},
            "users.messages.get",
        )
        for key, gid in ids.items():
            answer = answers.get(key)
            if isinstance(answer, (GmailNotFound, GmailBadRequest)):  # deleted, or an id Gmail never issued
                found[key] = []
                continue
            if isinstance(answer, Exception):
                raise answer
            label_ids = answer.get("labelIds") or []
            if TRASH in label_ids:
                found[key] = []
                continue
            found[key] = [MailRef(folder=name, uid=gid, key=key) for name in self._labels.folder_names(label_ids)]
        return found

    def _find_by_key(self, key: str) -> str | None:
        if not key or key.startswith("sha256:"):
            return None
        answer = self._call(
            self._users().messages().list(userId=self.config.user_id, q=f"rfc822msgid:{key}",
                                          includeSpamTrash=True, maxResults=1),
            "users.messages.list",
        )
        ids = [m.get("id") for m in answer.get("messages") or []]
        return str(ids[0]) if ids and ids[0] else None

    # -- acting ---------------------------------------------------------------------------------------

    def _modify(self, gmail_id: str, add: list[str], remove: list[str]) -> None:
        body = {"addLabelIds": add, "removeLabelIds": remove}
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
        """Send ``raw`` to ``to`` with ``users.messages.send``, marked ``Auto-Submitted: auto-forwarded``."""
        if not to or "@" not in to:
            raise ConfigError(
                tr(f"Adresse de transfert invalide : « {to} ».", f"Invalid forwarding address: '{to}'.")
            )
        self.open()
        data = build_forward(raw, to=to, sender=self.email_address or None)
        body = {"raw": base64.urlsafe_b64encode(data).decode("ascii")}
        request = self._users().messages().send(userId=self.config.user_id, body=body)
        try:
            self.calls.execute(request, what="users.messages.send", idempotent=False)
        except TransientError as exc:
            if exc.__cause__ is not None and rejected_before_processing(exc.__cause__):
                raise  # throttled or never reached: nothing was sent, the host may try again later
            # a server error or time-out after sending may hide a success: never send twice
            error = ForwardError(
                tr(f"Le transfert Gmail est peut-être parti malgré l'erreur ({exc}). Il ne sera pas renvoyé "
                   "automatiquement : vérifiez le dossier « Messages envoyés ».",
                   f"The Gmail forward may have gone out despite the error ({exc}). It will not be sent "
                   "again automatically: check the 'Sent' folder."),
                maybe_sent=True,
            )
            error.connector_id = self.id
            raise error from exc


class _HistoryExpired(Exception):
    """Gmail answered 404 to history.list: the stored history id is too old."""

