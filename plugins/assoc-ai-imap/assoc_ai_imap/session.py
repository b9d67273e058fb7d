"""The IMAP session: connecting, logging in, selecting folders, and the error boundary.

Every server operation goes through :meth:`ImapSession._call`, which opens
the connection when needed, turns library exceptions into assoc-ai errors and
drops a broken connection; reads go through :meth:`ImapSession._read`,
which also retries transient failures (tenacity) on a fresh connection.
Writes are not retried here: each is idempotent, so the host's journal can
simply run them again.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient import exceptions as imap_exc
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from assoc_ai_core.errors import (
    AssocAIError,
    AuthError,
    CapabilityError,
    ConnectorError,
    MissingSecretError,
    TransientError,
)
from assoc_ai_core.ext.connectors import Capability, MailboxConnector
from assoc_ai_core.i18n import tr

from .config import ImapConfig
from .errors import CONNECTOR_ID, is_connection_broken, translate
from .folders import INBOX, FolderNames

log = logging.getLogger(__name__)
T = TypeVar("T")


class MailboxChangedError(TransientError):
    """A folder's UIDVALIDITY changed during a run: stop; the next run resynchronises."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) and not isinstance(exc, MailboxChangedError)


class ImapSession(MailboxConnector):
    """One logged-in IMAP connection and the folder names of its server (no mail handling here)."""

    def __init__(self, config: ImapConfig) -> None:
        super().__init__(config)
        self.config: ImapConfig = config
        self._client: IMAPClient | None = None
        self._selected: str | None = None
        self._select_info: dict[bytes, Any] = {}
        self._names: FolderNames | None = None
        self._folders: set[str] | None = None
        self._server_caps: frozenset[str] = frozenset()
        self._indexes: dict[str, tuple[tuple[Any, ...], bool, dict[str, list[int]]]] = {}

    # ------------------------------------------------------------------ connection

    def open(self) -> None:
        """Connect, secure the connection and log in (retried on transient failures)."""
        self._read("connect", lambda client: None)

    def check(self) -> None:
        """Connect and log in, raising AuthError or ConnectorError when that fails."""
        self.open()

    def close(self) -> None:
        """Log out; safe to call twice and never raises."""
        client, self._client = self._client, None
        self._selected = None
        if client is None:
            return
        try:
            client.logout()
        except Exception as exc:  # the connection may already be gone; closing must not fail
            log.debug("IMAP logout failed (%s); closing the socket", type(exc).__name__)
            with suppress(Exception):
                client.shutdown()

    @property
    def server_capabilities(self) -> frozenset[str]:
        """Capabilities the server announced after login (empty before ``open()``)."""
        return self._server_caps

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.ca_file or None)
        if not self.config.verify_tls:  # only reachable for 127.0.0.1 (checked in ImapConfig)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> IMAPClient:
        cfg = self.config
        if cfg.tls == "none" or not cfg.verify_tls:
            log.warning(tr(
                f"IMAP {cfg.host} : connexion sans chiffrement vérifié (autorisé seulement sur cette machine).",
                f"IMAP {cfg.host}: connection without verified encryption (allowed on this machine only).",
            ))
        context = self._ssl_context() if cfg.tls != "none" else None
        client = IMAPClient(cfg.host, port=cfg.effective_port, ssl=cfg.tls == "ssl", ssl_context=context,
                            timeout=cfg.timeout)
        try:
            imap = getattr(client, "_imap", None)
            if imap is not None:
                imap.debug = 0  # imaplib's protocol trace would copy message bodies into the logs
            client.normalise_times = False  # keep INTERNALDATE time zones when copying a message
            if cfg.tls == "starttls":
                if not client.has_capability("STARTTLS"):
                    raise CapabilityError(tr(
                        f"IMAP {cfg.host} : le serveur ne propose pas STARTTLS. Utilisez tls = \"ssl\" (port 993).",
                        f"IMAP {cfg.host}: the server does not offer STARTTLS. Use tls = \"ssl\" (port 993).",
                    ), connector_id=CONNECTOR_ID)
                client.starttls(context)
            self._login(client)
            caps = frozenset(c.decode("ascii", "replace").upper() if isinstance(c, bytes) else str(c).upper()
                             for c in client.capabilities())
            self._server_caps = caps
            self._names = self._detect_names(client, caps)
        except BaseException:
            with suppress(Exception):
                client.shutdown()
            raise
        self.capabilities = self._effective_capabilities(caps)  # type: ignore[misc]
        self._selected = None
        log.debug("IMAP connected to %s:%s as %s", cfg.host, cfg.effective_port, "***")
        return client

    def _login(self, client: IMAPClient) -> None:
        cfg = self.config
        token = cfg.oauth2_token
        if token is None and cfg.password is None:  # nothing configured: plugins may provide either
            token = self._secret_from_hooks("oauth2_token")
        if token is not None:
            value = token.get() if hasattr(token, "get") else str(token)
            try:
                if cfg.oauth2_mechanism == "OAUTHBEARER":
                    client.oauthbearer_login(cfg.username, value)
                else:
                    client.oauth2_login(cfg.username, value, mech=cfg.oauth2_mechanism)
            except imap_exc.LoginError as exc:
                err = translate(exc, action="login", host=cfg.host)
                if not isinstance(err, AuthError):
                    raise err from exc
                raise AuthError(tr(
                    f"IMAP {cfg.host} : jeton OAuth2 refusé pour {cfg.username} (expiré ou révoqué ?). "
                    "Renouvelez-le avec l'outil ou le plugin qui le fournit (voir docs/imap.md, XOAUTH2).",
                    f"IMAP {cfg.host}: OAuth2 token refused for {cfg.username} (expired or revoked?). "
                    "Renew it with the tool or plugin that provides it (see docs/imap.md, XOAUTH2).",
                ), connector_id=CONNECTOR_ID) from exc
            return
        password = cfg.password or self._secret_from_hooks("password")
        if password is None:
            raise MissingSecretError(tr(
                "IMAP : aucun secret pour se connecter. Ajoutez password = { env = \"...\" } "
                "(mot de passe d'application) ou oauth2_token = { file = \"...\" }, ou installez un plugin qui "
                "fournit le jeton.",
                "IMAP: no secret to log in with. Add password = { env = \"...\" } (app password) "
                "or oauth2_token = { file = \"...\" }, or install a plugin that provides the token.",
            ))
        client.login(cfg.username, password.get() if hasattr(password, "get") else str(password))

    def _secret_from_hooks(self, field: str) -> Any:
        """Ask plugins (``resolve_secret`` hook) each time we connect: tokens expire, a plugin renews them."""
        from assoc_ai_core.ext.plugins import secret_from_plugins

        return secret_from_plugins(self.id, field)

    def _detect_names(self, client: IMAPClient, caps: frozenset[str]) -> FolderNames:
        separator, prefix = self.config.separator, ""
        if "NAMESPACE" in caps:
            personal = client.namespace().personal or ()
            if personal:
                ns_prefix, ns_sep = personal[0]
                prefix = ns_prefix or ""
                separator = separator or (ns_sep if isinstance(ns_sep, str) else (ns_sep or b"/").decode())
        if separator is None:
            listed = client.list_folders("", "")
            delim = listed[0][1] if listed else b"/"
            separator = (delim.decode() if isinstance(delim, bytes) else delim) or "/"
        return FolderNames(separator=separator, prefix=prefix)

    @staticmethod
    def _effective_capabilities(caps: frozenset[str]) -> frozenset[Capability]:
        found = {Capability.READ, Capability.CREATE_FOLDER, Capability.LABEL}
        if "MOVE" in caps or "UIDPLUS" in caps:
            found.add(Capability.MOVE)
        if "UIDPLUS" in caps:
            found.add(Capability.TAG_SUBJECT)
        if "IDLE" in caps:
            found.add(Capability.WATCH)
        return frozenset(found)

    def _drop(self) -> None:
        client, self._client = self._client, None
        self._selected = None
        if client is not None:
            with suppress(Exception):
                client.shutdown()

    def _call(self, action: str, fn: Callable[[IMAPClient], T]) -> T:
        """Run ``fn`` with a logged-in client; translate errors; drop a broken connection."""
        try:
            if self._client is None:
                self._client = self._connect()
            return fn(self._client)
        except ConnectorError as err:
            if is_connection_broken(err):
                self._drop()
            raise
        except AssocAIError:
            raise
        except Exception as exc:
            err = translate(exc, action=action, host=self.config.host)
            if is_connection_broken(err):
                self._drop()
            raise err from exc

    def _read(self, action: str, fn: Callable[[IMAPClient], T]) -> T:
        """Like :meth:`_call`, retried with back-off on a new connection when the failure is transient."""
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.config.retries + 1),
            wait=wait_exponential(multiplier=self.config.retry_wait, max=30),
            before_sleep=self._note_retry,
            reraise=True,
        )
        return retrying(self._call, action, fn)

    def _note_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(tr(
            f"IMAP {self.config.host} : nouvel essai n°{state.attempt_number} après une erreur passagère "
            f"({type(exc).__name__}).",
            f"IMAP {self.config.host}: retry #{state.attempt_number} after a transient error ({type(exc).__name__}).",
        ))

    # ------------------------------------------------------------------ folders

    def _need(self, capability: Capability) -> None:
        """Connect first (capabilities depend on the server), then check ``capability``."""
        if self._client is None:
            self.open()
        self.require(capability)

    @property
    def names(self) -> FolderNames:
        """How host folder names map to this server's (known after ``open()``)."""
        if self._names is None:
            self.open()
        assert self._names is not None
        return self._names

    def server_name(self, folder: str) -> str:
        """The server's name for the host folder ``folder`` (``IA/Adhésion`` → ``INBOX.IA.Adhésion``...)."""
        return self.names.to_server(folder)

    def _select(self, client: IMAPClient, server_name: str, *, uidvalidity: int | None = None,
                fresh: bool = False) -> dict[bytes, Any]:
        """Select ``server_name`` unless it already is; ``fresh`` selects again to see others' changes."""
        if fresh or self._selected != server_name:
            self._selected = None
            try:
                self._select_info = client.select_folder(server_name)
            except imap_exc.IMAPClientError as exc:
                if isinstance(exc, imap_exc.IMAPClientAbortError) or client.folder_exists(server_name):
                    raise
                raise ConnectorError(tr(
                    f"IMAP {self.config.host} : le dossier « {self.names.to_host(server_name)} » n'existe pas. "
                    "Vérifiez son nom (assoc-ai les affiche avec / entre les niveaux).",
                    f"IMAP {self.config.host}: folder '{self.names.to_host(server_name)}' does not exist. "
                    "Check its name (assoc-ai shows them with / between levels).",
                ), connector_id=CONNECTOR_ID) from exc
            self._selected = server_name
        if uidvalidity is not None and int(self._select_info[b"UIDVALIDITY"]) != uidvalidity:
            raise MailboxChangedError(tr(
                f"IMAP {self.config.host} : le dossier {server_name} a été recréé pendant le traitement "
                "(UIDVALIDITY). Relancez : il sera relu sans rien traiter deux fois.",
                f"IMAP {self.config.host}: folder {server_name} was recreated during the run (UIDVALIDITY). "
                "Run again: it will be read again without handling anything twice.",
            ), connector_id=CONNECTOR_ID)
        return self._select_info

    def _existing_folders(self, client: IMAPClient) -> set[str]:
        if self._folders is None:
            self._folders = {name for flags, _, name in client.list_folders()
                             if b"\\nonexistent" not in {f.lower() for f in flags}}
        return self._folders

    def list_folders(self) -> list[str]:
        """Selectable folders of the mailbox, ``/``-separated, INBOX first."""
        def run(client: IMAPClient) -> list[str]:
            out = []
            for flags, _, name in client.list_folders():
                lowered = {f.lower() for f in flags}
                if b"\\noselect" in lowered or b"\\nonexistent" in lowered:
                    continue
                out.append(self.names.to_host(name))
            return sorted(set(out), key=lambda n: (n != INBOX, n.lower()))
        return self._read("list_folders", run)

    def ensure_folder(self, name: str) -> None:
        """Create ``name`` and its missing parents, and subscribe them (no-op when present)."""
        self.require(Capability.CREATE_FOLDER)
        target = self.server_name(name)
        if target == INBOX:
            return

        def run(client: IMAPClient) -> None:
            existing = self._existing_folders(client)
            if target in existing:
                return
            try:
                client.create_folder(target)
                created = [target]
            except Exception as exc:  # some servers refuse to create parents implicitly
                if client.folder_exists(target):
                    created = []
                else:
                    log.debug("CREATE failed (%s); creating the parent folders first", type(exc).__name__)
                    created = []
                    for level in self.names.lineage(target):
                        if level not in existing and not client.folder_exists(level):
                            client.create_folder(level)
                            created.append(level)
            for level in self.names.lineage(target):
                if level in created or level == target:
                    with suppress(Exception):  # subscribing is a courtesy for mail clients, not required
                        client.subscribe_folder(level)
            existing.update(self.names.lineage(target))
            log.info("IMAP folder ready: %s", name)

        self._call("ensure_folder", run)
