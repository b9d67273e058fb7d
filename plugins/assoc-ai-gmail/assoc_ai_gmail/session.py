"""The Gmail session: credentials, the API client with its retrying caller, and the label book.

Folders are labels; :class:`GmailSession` knows them by name and id, creates
missing ones and sends every API request through :class:`~.calls.ApiCaller`
(retries, throttling, assoc-ai errors).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import google_auth_httplib2
import googleapiclient.discovery
import httplib2
from googleapiclient.http import BatchHttpRequest

from assoc_ai_core.errors import ConfigError, ConnectorError
from assoc_ai_core.ext.connectors import MailboxConnector
from assoc_ai_core.i18n import tr

from . import credentials as creds_mod
from .calls import ApiCaller, GmailBadRequest, GmailConflict, GmailNotFound, QuotaPacer
from .config import GmailConfig
from .labels import LabelBook, check_label_name, parents_first

log = logging.getLogger(__name__)

DEFAULT_API_ROOT = "https://gmail.googleapis.com/"


class GmailSession(MailboxConnector):
    """One Gmail mailbox through the Gmail API: connection and labels (no mail handling here)."""

    config: GmailConfig

    def __init__(self, config: GmailConfig, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Store the config; no network until :meth:`open` or the first call.

        ``sleep`` and ``clock`` are seams for tests and benchmarks (a fake clock that sleeping moves forward).
        """
        super().__init__(config)
        self._sleep = sleep
        self._clock = clock
        #: paces every request under Gmail's per-user rate; lives as long as the connector (across reconnects)
        self.pacer = QuotaPacer(clock=clock, sleep=sleep)
        self._service: Any = None
        self._http: Any = None
        self._calls: ApiCaller | None = None
        self._labels = LabelBook(tag_prefix=config.label_prefix)
        self._labels_loaded = False
        self.email_address: str = ""
        self.opened_at: tuple[str, float] = ("", 0.0)
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
            pacer=self.pacer,
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
        #: the mailbox's history point when it was opened, and when (reused instead of asking again at once)
        self.opened_at = (str(profile.get("historyId", "")), self._clock())

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
        if lid is not None and self._labels.adopt_spelling(lid, name):
            log.warning(
                tr(f"Gmail : le libellé « {self._labels.real_name(lid)} » existe déjà avec d'autres majuscules que "
                   f"« {name} » dans la configuration ; il est utilisé et rapporté sous le nom « {name} ».",
                   f"Gmail: label '{self._labels.real_name(lid)}' already exists with other capitals than "
                   f"'{name}' in the configuration; it is used, and reported as '{name}'."))
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
