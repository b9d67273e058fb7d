"""The IMAP mailbox connector.

Every server operation goes through :meth:`ImapConnector._call`, which opens
the connection when needed, turns library exceptions into assoc-ai errors and
drops a broken connection; reads go through :meth:`ImapConnector._read`,
which also retries transient failures (tenacity) on a fresh connection.
Writes are not retried here: each is idempotent, so the host's journal can
simply run them again.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any, ClassVar, TypeVar

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
from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef, Page
from assoc_ai_core.i18n import tr

from . import headers
from .config import ImapConfig
from .errors import CONNECTOR_ID, is_connection_broken, translate
from .folders import INBOX, FolderNames
from .keywords import to_keyword
from .settings import (
    BATCH_CHUNK,
    FETCH_CHUNK,
    IDLE_RENEW_SECONDS,
    KEY_SEARCH_CHUNK,
    LOCATE_SEARCH_LIMIT,
    MARKER_HEADER,
    PAGE_SIZE,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DELETED = b"\\Deleted"
_UNSETTABLE_FLAGS = {b"\\recent"}
_CHANGE_RESPONSES = {b"EXISTS", b"EXPUNGE", b"FETCH", b"RECENT"}
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
_UNSEARCHABLE = re.compile(r'[(){%*"\\\]\s]')
_HEADER_ITEM = f"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID {MARKER_HEADER.upper()})]"


class MailboxChangedError(TransientError):
    """A folder's UIDVALIDITY changed during a run: stop; the next run resynchronises."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) and not isinstance(exc, MailboxChangedError)


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def _header_part(item: Mapping[bytes, Any]) -> bytes:
    """The header bytes of a FETCH item, whatever spelling the server echoes the section in."""
    for name, value in item.items():
        if isinstance(name, bytes) and name.upper().startswith(b"BODY[HEADER") and value is not None:
            return bytes(value)
    return b""


def _uid_set(text: bytes) -> list[int]:
    out: list[int] = []
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        out.extend(range(int(low), int(high or low) + 1))
    return out


def _any_of(criteria: Sequence[list[Any]]) -> list[Any]:
    """One SEARCH key matching any of ``criteria``: a balanced tree of ORs (shallow, whatever their number)."""
    if len(criteria) == 1:
        return criteria[0]
    middle = len(criteria) // 2
    return ["OR", _any_of(criteria[:middle]), _any_of(criteria[middle:])]


class ImapConnector(MailboxConnector):
    """Any IMAP mailbox: read new mail by UID, move, label with keywords, tag subjects.

    Building the connector does no I/O; ``open()`` (or ``with``) connects and
    narrows ``capabilities`` to what the server offers (MOVE or UIDPLUS for
    moves, UIDPLUS for subject tags, IDLE for ``wait_for_changes``).
    """

    id: ClassVar[str] = "imap"
    Config: ClassVar[type] = ImapConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.READ, Capability.MOVE, Capability.LABEL, Capability.TAG_SUBJECT,
        Capability.CREATE_FOLDER, Capability.WATCH,
    })
    description: ClassVar[str] = "IMAP mailbox (any provider) / boîte aux lettres IMAP (tout fournisseur)"

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
        try:
            from assoc_ai_core.ext.plugins import load_plugins

            value = load_plugins().hook.resolve_secret(connector_id=self.id, field=field)
        except AssocAIError:
            raise
        except Exception as exc:  # a broken secret provider must not look like a bad password
            log.warning("resolve_secret hook failed for imap.%s: %s", field, type(exc).__name__)
            return None
        if value is None:
            return None
        from assoc_ai_core.ext.config import Secret

        return value if isinstance(value, Secret) else Secret(str(value))

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

    # ------------------------------------------------------------------ reading

    def fetch_new(self, folder: str, cursor: Mapping[str, Any] | None, *, page_size: int = PAGE_SIZE) -> Iterator[Page]:
        """Yield pages of mail that arrived in ``folder`` since ``cursor`` ({uidvalidity, last_uid}).

        When the folder's UIDVALIDITY differs from the cursor's, the whole
        folder is read again with ``Page.resync=True``; keys (Message-ID) let
        the host skip what it already handled.  Bodies are fetched with
        ``BODY.PEEK`` so unread mail stays unread.
        """
        self.require(Capability.READ)
        server = self.server_name(folder)
        info = self._read("fetch_new", lambda c: self._select(c, server, fresh=True))
        uidvalidity = int(info[b"UIDVALIDITY"])
        last_uid, resync = 0, False
        if cursor:
            if int(cursor.get("uidvalidity", -1)) == uidvalidity:
                last_uid = int(cursor.get("last_uid", 0))
            else:
                resync = True
                log.warning(tr(
                    f"IMAP : le dossier {folder} a changé d'identité (UIDVALIDITY) ; relecture complète, les "
                    "messages déjà traités seront reconnus et ignorés.",
                    f"IMAP: folder {folder} changed identity (UIDVALIDITY); reading it again, messages already "
                    "handled will be recognised and skipped.",
                ))

        def search(client: IMAPClient) -> list[int]:
            self._select(client, server, uidvalidity=uidvalidity)
            found = client.search(["UID", f"{last_uid + 1}:*"])
            return sorted(uid for uid in found if uid > last_uid)  # "n:*" always matches the last message

        uids = self._read("fetch_new", search)
        for chunk in _chunks(uids, max(1, page_size)):
            data = self._read("fetch_new", lambda c, chunk=chunk: self._fetch_bodies(c, server, uidvalidity, chunk))
            messages = [
                FetchedMail(MailRef(folder, str(uid), headers.message_key(raw)), raw)
                for uid in chunk if (raw := data.get(uid)) is not None
            ]
            yield Page(messages=messages, cursor={"uidvalidity": uidvalidity, "last_uid": chunk[-1]}, resync=resync)

    def _fetch_bodies(self, client: IMAPClient, server: str, uidvalidity: int | None, uids: list[int]) -> dict[int, bytes]:
        self._select(client, server, uidvalidity=uidvalidity)
        response = client.fetch(uids, ["BODY.PEEK[]"])
        return {uid: bytes(item[b"BODY[]"]) for uid, item in response.items() if b"BODY[]" in item}

    def fetch_all(self, folder: str) -> Iterator[FetchedMail]:
        """Yield every message of ``folder`` (to train on mail volunteers already sorted)."""
        self.require(Capability.READ)
        server = self.server_name(folder)

        def search(client: IMAPClient) -> tuple[int, list[int]]:
            info = self._select(client, server, fresh=True)
            return int(info[b"UIDVALIDITY"]), sorted(client.search(["NOT", "DELETED"]))

        uidvalidity, uids = self._read("fetch_all", search)
        for chunk in _chunks(uids, FETCH_CHUNK):
            data = self._read("fetch_all", lambda c, chunk=chunk: self._fetch_bodies(c, server, uidvalidity, chunk))
            for uid in chunk:
                raw = data.get(uid)
                if raw is not None:
                    yield FetchedMail(MailRef(folder, str(uid), headers.message_key(raw)), raw)

    def fetch_raw(self, ref: MailRef) -> bytes | None:
        """The raw bytes of one message, or None when it is no longer there."""
        server = self.server_name(ref.folder)

        def run(client: IMAPClient) -> bytes | None:
            self._select(client, server)
            uid = self._current_uid(client, ref)
            return None if uid is None else self._fetch_bodies(client, server, None, [uid]).get(uid)

        return self._read("fetch", run)

    # ------------------------------------------------------------------ finding messages

    def _find_by_key(self, client: IMAPClient, key: str) -> list[int]:
        """UIDs in the selected folder whose key is ``key`` (messages flagged \\Deleted left out)."""
        if key.startswith("sha256:"):
            marker = client.search(["HEADER", MARKER_HEADER, headers.marker_search_value(key)])
            keyless = client.search(["NOT", "HEADER", "Message-ID", ""])
            candidates = sorted(set(marker) | set(keyless))
            if not candidates:
                return []
            response = client.fetch(candidates, ["BODY.PEEK[]", "FLAGS"])
            return sorted(uid for uid, item in response.items()
                          if DELETED not in item.get(b"FLAGS", ())
                          and headers.message_key(bytes(item.get(b"BODY[]", b""))) == key)
        if _UNSEARCHABLE.search(key) or not key.isascii():
            return self._index_folder(client, {key}).get(key, [])
        candidates = client.search(["HEADER", "Message-ID", key])
        if not candidates:
            return []
        response = client.fetch(candidates, [_HEADER_ITEM, "FLAGS"])
        return sorted(uid for uid, item in response.items()
                      if DELETED not in item.get(b"FLAGS", ())
                      and headers.key_from_head(_header_part(item)) == key)

    def _index_folder(self, client: IMAPClient, keys: set[str]) -> dict[str, list[int]]:
        """Key → UIDs for the wanted ``keys`` in the selected folder, from one header FETCH."""
        index = self._build_index(client, with_digests=any(k.startswith("sha256:") for k in keys))
        return {k: index[k] for k in keys if k in index}

    def _build_index(self, client: IMAPClient, *, with_digests: bool) -> dict[str, list[int]]:
        """Key → UIDs of every message of the selected folder (``\\Deleted`` ones left out)."""
        found: dict[str, list[int]] = {}
        uids = client.search(["NOT", "DELETED"])
        needs_body: list[int] = []
        for chunk in _chunks(sorted(uids), 1000):
            for uid, item in client.fetch(chunk, [_HEADER_ITEM]).items():
                key = headers.key_from_head(_header_part(item))
                if key is None:
                    needs_body.append(uid)
                else:
                    found.setdefault(key, []).append(uid)
        if needs_body and with_digests:  # rare: mail without a usable Message-ID is keyed by its bytes
            for chunk in _chunks(needs_body, 100):
                for uid, item in client.fetch(chunk, ["BODY.PEEK[]"]).items():
                    found.setdefault(headers.message_key(bytes(item.get(b"BODY[]", b""))), []).append(uid)
        return {k: sorted(v) for k, v in found.items()}

    def _cached_index(self, client: IMAPClient, server: str, *, with_digests: bool) -> dict[str, list[int]]:
        """The folder's key index, rebuilt only when STATUS shows the folder changed.

        The job asks ``locate`` about its recent decisions in chunks; without
        this cache each chunk would read every header of every folder again.
        """
        items = [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY"]
        if "CONDSTORE" in self._server_caps:
            items.append(b"HIGHESTMODSEQ")  # also catches \\Deleted flags set without an expunge
        status = client.folder_status(server, items)
        validator = tuple(status.get(item) for item in items)
        cached = self._indexes.get(server)
        if cached is not None and cached[0] == validator and (cached[1] or not with_digests):
            return cached[2]
        self._select(client, server, fresh=True)
        index = self._build_index(client, with_digests=with_digests)
        self._indexes[server] = (validator, with_digests, index)
        return index

    def _current_uid(self, client: IMAPClient, ref: MailRef) -> int | None:
        """The UID of ``ref`` in the selected folder: its own UID if still there, else found by key."""
        if ref.uid.isdigit():
            uid = int(ref.uid)
            response = client.fetch([uid], ["FLAGS"])
            if uid in response and DELETED not in response[uid].get(b"FLAGS", ()):
                return uid
        found = self._find_by_key(client, ref.key) if ref.key else []
        return found[0] if found else None

    def locate(self, refs: Sequence[MailRef]) -> dict[str, list[MailRef]]:
        """Where each message is now, by key (Message-ID), across the folders to watch.

        Looks in ``locate_folders`` when configured, else in every selectable
        folder (the refs' own folders first).  An empty list means the message
        is nowhere to be found (deleted).
        """
        self.require(Capability.READ)
        keys = {ref.key for ref in refs if ref.key}
        result: dict[str, list[MailRef]] = {key: [] for key in keys}
        if not keys:
            return result
        if self.config.locate_folders:
            folders = list(dict.fromkeys([*(r.folder for r in refs), *self.config.locate_folders]))
        else:
            folders = list(dict.fromkeys([*(r.folder for r in refs), *self.list_folders()]))
        for folder in folders:
            server = self.server_name(folder)

            def run(client: IMAPClient, server: str = server) -> dict[str, list[int]]:
                if server not in self._existing_folders(client) and server != INBOX:
                    if not client.folder_exists(server):
                        return {}
                if len(keys) > LOCATE_SEARCH_LIMIT:
                    index = self._cached_index(client, server, with_digests=any(k.startswith("sha256:") for k in keys))
                    return {key: index[key] for key in keys if key in index}
                self._select(client, server, fresh=True)
                return {key: uids for key in keys if (uids := self._find_by_key(client, key))}

            for key, uids in self._read("locate", run).items():
                result[key].extend(MailRef(folder, str(uid), key) for uid in uids)
        return result

    # ------------------------------------------------------------------ acting

    def _missing(self, ref: MailRef) -> ConnectorError:
        return ConnectorError(tr(
            f"IMAP : le message {ref.key} n'est plus dans {ref.folder} (déplacé ou supprimé par quelqu'un). "
            "Il est laissé tel quel.",
            f"IMAP: message {ref.key} is no longer in {ref.folder} (moved or deleted by someone). "
            "It is left as it is.",
        ), connector_id=CONNECTOR_ID)

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
                source, target = _uid_set(parts[1]), _uid_set(parts[2])
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
                source, target = _uid_set(parts[1]), _uid_set(parts[2])
            except ValueError:  # an odd response only costs a search by key
                continue
            if len(source) == len(target):
                mapping.update(zip(source, target))
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
            for chunk in _chunks(group, BATCH_CHUNK):
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

    @staticmethod
    def _on_set(client: IMAPClient, command: Callable[[], T]) -> T:
        """Run a command on a UID set, once more if someone else expunged part of the set meanwhile.

        A server answers ``NO [EXPUNGEISSUED]`` (Dovecot: doing nothing) when
        the set names a message another session removed that this session has
        not been told about yet; by then it has been told, so the second try
        simply skips that message, which the caller then reports as missing.
        """
        try:
            return command()
        except imap_exc.IMAPClientError as exc:
            if isinstance(exc, imap_exc.IMAPClientAbortError) or "EXPUNGEISSUED" not in str(exc).upper():
                raise
        client.noop()
        return command()

    def _find_keys_in(self, client: IMAPClient, server: str, keys: Sequence[str], *,
                      back_to: str | None = None) -> dict[str, list[int]]:
        """Key -> UIDs in another folder for several keys at once, then select ``back_to`` again."""
        wanted = [key for key in dict.fromkeys(keys) if key]
        if not wanted:
            return {}
        self._select(client, server, fresh=True)
        try:
            return self._find_keys(client, wanted)
        finally:
            if back_to is not None:
                self._select(client, back_to)

    def _find_keys(self, client: IMAPClient, keys: Sequence[str]) -> dict[str, list[int]]:
        """Key -> UIDs in the selected folder (``\\Deleted`` left out), OR-ing the keys in a few SEARCHes."""
        found: dict[str, list[int]] = {}
        plain = [k for k in keys if k.isascii() and not k.startswith("sha256:") and not _UNSEARCHABLE.search(k)]
        searchable = set(plain)
        for key in keys:
            if key not in searchable and (uids := self._find_by_key(client, key)):
                found[key] = uids
        for chunk in _chunks(plain, KEY_SEARCH_CHUNK):
            candidates = client.search(_any_of([["HEADER", "Message-ID", key] for key in chunk]))
            if not candidates:
                continue
            wanted = set(chunk)
            for uid, item in client.fetch(candidates, [_HEADER_ITEM, "FLAGS"]).items():
                key = headers.key_from_head(_header_part(item))
                if key in wanted and DELETED not in item.get(b"FLAGS", ()):
                    found.setdefault(key, []).append(uid)
        return {key: sorted(uids) for key, uids in found.items()}

    def _find_in(self, client: IMAPClient, server: str, key: str, *, back_to: str | None = None) -> list[int]:
        """UIDs of ``key`` in another folder, then select ``back_to`` again."""
        if not key:
            return []
        self._select(client, server, fresh=True)
        try:
            return self._find_by_key(client, key)
        finally:
            if back_to is not None:
                self._select(client, back_to)

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
            for chunk in _chunks(group, BATCH_CHUNK):
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

    def tag_subject(self, ref: MailRef, tag: str) -> MailRef:
        """Prefix the subject with ``tag`` (e.g. ``[#Adhésion]``) and return the tagged message's ref.

        IMAP messages cannot be edited: a modified copy is appended (same flags
        and date, a marker header naming the original), confirmed, and only
        then the original is deleted by UID.  Already tagged: nothing is done.
        After a crash between the two steps, the copy is found and only the
        original is removed.
        """
        self._need(Capability.TAG_SUBJECT)
        if not tag.strip():
            raise ValueError("tag must not be empty")
        server = self.server_name(ref.folder)

        def run(client: IMAPClient) -> MailRef:
            info = self._select(client, server, fresh=True)
            uid = self._current_uid(client, ref)
            item: dict[bytes, Any] = {}
            if uid is not None:
                item = client.fetch([uid], ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]).get(uid, {})
                raw = bytes(item.get(b"BODY[]", b""))
                if headers.has_tag(raw, tag):
                    return MailRef(ref.folder, str(uid), ref.key)
            copy_uid = self._tagged_copy(client, ref.key, tag, exclude=uid)
            if copy_uid is not None:  # a previous run appended the copy and stopped before deleting
                if uid is not None:
                    self._expunge_uid(client, uid)
                return MailRef(ref.folder, str(copy_uid), ref.key)
            if uid is None:
                raise self._missing(ref)
            new_raw = headers.tag_subject_bytes(raw, tag, ref.key)
            allowed = {f.lower() for f in info.get(b"PERMANENTFLAGS", ())}
            flags = [f for f in item.get(b"FLAGS", ())
                     if f.lower() not in _UNSETTABLE_FLAGS and (f.startswith(b"\\") or b"\\*" in allowed
                                                                 or f.lower() in allowed)]
            response = client.append(server, new_raw, flags=flags, msg_time=item.get(b"INTERNALDATE"))
            copy_uid = self._confirm_append(client, response, ref.key, tag, exclude=uid)
            if copy_uid is None:
                raise ConnectorError(tr(
                    f"IMAP {self.config.host} : la copie étiquetée n'a pas été retrouvée après l'envoi ; "
                    "l'original est conservé.",
                    f"IMAP {self.config.host}: the tagged copy could not be found after appending it; "
                    "the original is kept.",
                ), connector_id=CONNECTOR_ID)
            self._expunge_uid(client, uid)
            return MailRef(ref.folder, str(copy_uid), ref.key)

        tagged = self._call("tag_subject", run)
        log.info("IMAP tagged one message's subject in %s", ref.folder)
        return tagged

    def _tagged_copy(self, client: IMAPClient, key: str, tag: str, *, exclude: int | None) -> int | None:
        """UID of a copy of ``key`` in the selected folder whose subject already carries ``tag``."""
        if not key:
            return None
        found = client.search(["HEADER", MARKER_HEADER, headers.marker_search_value(key)],
                              charset=None if key.isascii() else "UTF-8")
        candidates = [u for u in found if u != exclude]
        if not candidates:
            return None
        response = client.fetch(candidates, ["BODY.PEEK[HEADER]", "FLAGS"])
        for uid in sorted(response):
            item = response[uid]
            head = _header_part(item)
            if (DELETED not in item.get(b"FLAGS", ()) and headers.original_key(head) == key
                    and headers.has_tag(head, tag)):
                return uid
        return None

    def _confirm_append(self, client: IMAPClient, response: Any, key: str, tag: str, *, exclude: int | None) -> int | None:
        """The new message's UID: from APPENDUID (UIDPLUS) checked by a FETCH, else found by its marker."""
        match = _APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
        if match and int(match.group(1)) == int(self._select_info.get(b"UIDVALIDITY", -1)):
            uid = int(match.group(2))
            if uid in client.fetch([uid], ["FLAGS"]):
                return uid
        client.noop()  # lets the server announce the new message before searching for it
        return self._tagged_copy(client, key, tag, exclude=exclude)

    # ------------------------------------------------------------------ watching

    def wait_for_changes(self, folders: Sequence[str] | str | float | None = None, timeout: float = 60.0) -> bool:
        """Wait up to ``timeout`` seconds for new or removed mail in ``folders``; True if any.

        The first folder is watched with IMAP IDLE (instant); the others, if
        any, are compared by STATUS every few seconds.  Called as
        ``wait_for_changes(["INBOX"], 300)`` or ``wait_for_changes(300)`` (the
        configured ``folder``).  Needs Capability.WATCH (the server's IDLE);
        without it the host polls.
        """
        if isinstance(folders, (int, float)) and not isinstance(folders, bool):
            folders, timeout = None, float(folders)
        if isinstance(folders, str):
            folders = [folders]
        self._need(Capability.WATCH)
        names = [self.server_name(f) for f in (folders or [self.config.folder])]
        watched, others = names[0], list(dict.fromkeys(n for n in names[1:] if n != names[0]))
        chunk = 2.0 if others else 30.0  # STATUS of the other folders is cheap; IDLE renewed every 30 s

        def snapshot(client: IMAPClient) -> dict[str, tuple[Any, Any]]:
            out = {}
            for name in others:
                status = client.folder_status(name, [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY"])
                out[name] = (status.get(b"MESSAGES"), status.get(b"UIDNEXT"), status.get(b"UIDVALIDITY"))
            return out

        def changed_in(responses: Any) -> bool:
            return any(isinstance(r, tuple) and any(p in _CHANGE_RESPONSES for p in r if isinstance(p, bytes))
                       for r in responses or ())

        def run(client: IMAPClient) -> bool:
            self._select(client, watched, fresh=True)
            before = snapshot(client)
            deadline = time.monotonic() + max(0.0, float(timeout))
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                client.idle()
                changed = False
                try:
                    started = time.monotonic()
                    while not changed and time.monotonic() - started < min(chunk, IDLE_RENEW_SECONDS):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        changed = changed_in(client.idle_check(timeout=min(left, chunk)))
                finally:
                    _, pending = client.idle_done()
                if changed or changed_in(pending):
                    return True
                if others and snapshot(client) != before:
                    return True

        return self._call("wait_for_changes", run)

    def __repr__(self) -> str:
        return f"ImapConnector({self.config.describe()!r})"
