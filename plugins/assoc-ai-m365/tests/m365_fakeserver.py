"""A loopback Microsoft 365 for the tests: Entra ID token endpoints and Microsoft Graph v1.0 mail.

It speaks HTTPS (a throw-away CA made with ``cryptography``; msal only accepts
``https://`` authorities) and follows the request/response shapes of the
published references:

* Entra ID (OAuth 2.0 / OpenID Connect v2.0): ``/{tenant}/v2.0/.well-known/openid-configuration``,
  ``/{tenant}/oauth2/v2.0/token`` (client_credentials, device_code,
  refresh_token grants) and ``/{tenant}/oauth2/v2.0/devicecode``;
* Graph: ``mailFolders`` (+ ``childFolders``, well-known names),
  ``messages`` (``$filter=internetMessageId eq``, ``$select``, ``$top``),
  ``messages/{id}/$value``, ``PATCH`` (``categories``, ``If-Match``),
  ``move``, ``mailFolders/{id}/messages/delta`` (``changeType``,
  ``Prefer: odata.maxpagesize``, ``$skiptoken``/``$deltatoken``),
  ``outlook/masterCategories``, ``sendMail`` (MIME, base64).

Faults are injected per request (status, ``Retry-After``, callbacks run before
a request is served) and tokens can be expired or revoked, so the connector's
real msal + requests code paths are exercised.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import email.utils
import itertools
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TENANT = "contoso-asso.onmicrosoft.com"
TENANT_ID = "9f3c1a52-0d1e-4c4b-9a61-3f5d2b7e8c10"
WELL_KNOWN_FR = {
    "inbox": "Boîte de réception",
    "sentitems": "Éléments envoyés",
    "deleteditems": "Éléments supprimés",
    "drafts": "Brouillons",
    "junkemail": "Courrier indésirable",
    "archive": "Archive",
}


# ---------------------------------------------------------------------------- TLS
def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA certificate and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "assoc-ai test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


# ---------------------------------------------------------------------------- model
def _graph_id(prefix: str = "AAMkAGI2") -> str:
    # Exchange ids are URL-safe base64 with padding; keep the "=" so URL quoting is exercised.
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode() + "AAA="


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str
    well_known: str = ""
    hidden: bool = False


@dataclass
class Msg:
    id: str
    folder_id: str
    raw: bytes
    internet_message_id: str
    subject: str
    sender: str
    received: float
    seq: int
    change_key: str = field(default_factory=lambda: secrets.token_hex(8))
    categories: list[str] = field(default_factory=list)
    is_read: bool = False
    is_draft: bool = False
    changed_seq: int = 0


@dataclass
class Fault:
    """Answer ``status`` (with ``headers``/``body``) to the next ``times`` requests matching method and path."""

    method: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and (self.method in ("*", method)) and re.search(self.path, path) is not None


@dataclass
class Hook:
    """Run ``action(path)`` before serving the next ``times`` requests matching method and path."""

    method: str
    path: str
    action: Callable[[str], None]
    times: int = 1


@dataclass
class Seen:
    """One request as the server saw it (for assertions)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float
    status: int = 0


class FakeMailbox:
    """One Exchange mailbox: folders, messages, master categories."""

    def __init__(self, address: str, counter: Callable[[], int]) -> None:
        self.address = address
        self._next = counter
        self.folders: dict[str, Folder] = {}
        self.messages: dict[str, Msg] = {}
        self.master_categories: list[dict[str, str]] = []
        self.tombstones: list[tuple[int, str, str]] = []  # (seq, folder_id, message id)
        root = Folder(_graph_id("AAMkAGRv"), "Haut de la banque d'informations", "", "msgfolderroot", hidden=True)
        self.folders[root.id] = root
        self.root_id = root.id
        for wk, name in WELL_KNOWN_FR.items():
            f = Folder(_graph_id("AAMkAGZv"), name, root.id, wk)
            self.folders[f.id] = f

    # ---- folders
    def well_known(self, name: str) -> Folder | None:
        return next((f for f in self.folders.values() if f.well_known == name.lower()), None)

    def folder(self, ref: str) -> Folder | None:
        return self.folders.get(ref) or self.well_known(ref)

    def children(self, parent_id: str) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == parent_id]

    def folder_by_path(self, path: str) -> Folder:
        """Test helper: ``"inbox"`` or ``"inbox/IA/Adhésion"`` or ``"IA/Adhésion"`` (creating missing levels)."""
        parts = [p for p in path.split("/") if p]
        current = self.well_known(parts[0]) if self.well_known(parts[0]) else None
        if current is None:
            current = self.folders[self.root_id]
        else:
            parts = parts[1:]
        for name in parts:
            found = next((c for c in self.children(current.id) if c.display_name.casefold() == name.casefold()), None)
            if found is None:
                found = Folder(_graph_id("AAMkAGZv"), name, current.id)
                self.folders[found.id] = found
            current = found
        return current

    # ---- messages
    def deliver(self, raw: bytes, folder: str = "inbox", *, received: float | None = None, categories: list[str] | None = None) -> Msg:
        """Put a message in a folder as Exchange delivery would (new id, new sequence number)."""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        mid = str(parsed.get("message-id", "")).strip()
        seq = self._next()
        m = Msg(
            id=_graph_id(),
            folder_id=self.folder_by_path(folder).id,
            raw=raw,
            internet_message_id=mid,
            subject=str(parsed.get("subject", "")),
            sender=email.utils.parseaddr(str(parsed.get("from", "")))[1],
            received=received if received is not None else time.time(),
            seq=seq,
            changed_seq=seq,
            categories=list(categories or []),
        )
        self.messages[m.id] = m
        return m

    def move(self, msg: Msg, folder_id: str) -> Msg:
        """Graph semantics: the moved message is a new item with a new id in the destination."""
        del self.messages[msg.id]
        self.tombstones.append((self._next(), msg.folder_id, msg.id))
        seq = self._next()
        moved = Msg(
            id=_graph_id(), folder_id=folder_id, raw=msg.raw, internet_message_id=msg.internet_message_id,
            subject=msg.subject, sender=msg.sender, received=msg.received, seq=seq, changed_seq=seq,
            categories=list(msg.categories), is_read=msg.is_read, is_draft=msg.is_draft,
        )
        self.messages[moved.id] = moved
        return moved

    def delete(self, msg_id: str) -> None:
        msg = self.messages.pop(msg_id)
        self.tombstones.append((self._next(), msg.folder_id, msg.id))

    def touch(self, msg: Msg) -> None:
        msg.change_key = secrets.token_hex(8)
        msg.changed_seq = self._next()

    def in_folder(self, path: str) -> list[Msg]:
        fid = self.folder_by_path(path).id
        return sorted((m for m in self.messages.values() if m.folder_id == fid), key=lambda m: m.seq)

    def find_by_mid(self, mid: str) -> list[Msg]:
        return [m for m in self.messages.values() if m.internet_message_id == mid]

    def path_of(self, folder_id: str) -> str:
        names = []
        f = self.folders.get(folder_id)
        while f is not None and f.id != self.root_id:
            names.append(f.display_name)
            f = self.folders.get(f.parent_id)
        return "/".join(reversed(names))


@dataclass
class Token:
    kind: str  # "app" or "user"
    client_id: str
    expires: float
    scopes: list[str]
    username: str = ""


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


# ---------------------------------------------------------------------------- the server
class FakeM365:
    """Entra ID + Graph for one tenant, on ``https://127.0.0.1:{port}``."""

    def __init__(self, tls: tuple[Path, Path, Path]) -> None:
        self.ca_path, cert, key = tls
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self.mailboxes: dict[str, FakeMailbox] = {}
        self.apps: dict[str, str | None] = {}  # client_id -> secret (None: public client)
        self.allowed_mailboxes: dict[str, set[str]] = {}  # app-only access policy per client_id
        self.users: set[str] = set()
        self.tokens: dict[str, Token] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.device_codes: dict[str, dict[str, Any]] = {}
        self.delta_states: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.hooks: list[Hook] = []
        self.seen: list[Seen] = []
        self.sent: list[bytes] = []
        self.token_lifetime = 3599
        self.auto_approve_as: str | None = None  # a device code approved as soon as it is issued
        handler = _make_handler(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-m365", daemon=True)

    # ---- lifecycle
    def start(self) -> FakeM365:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # ---- set-up helpers for tests
    @property
    def graph_url(self) -> str:
        return f"{self.base}/v1.0"

    def add_mailbox(self, address: str) -> FakeMailbox:
        with self._lock:
            box = FakeMailbox(address, lambda: next(self._seq))
            self.mailboxes[address.lower()] = box
            return box

    def register_app(self, client_id: str, secret: str | None = None, *, mailboxes: set[str] | None = None) -> None:
        """An app registration; ``mailboxes`` is its application access policy (None: every mailbox)."""
        self.apps[client_id] = secret
        if mailboxes is not None:
            self.allowed_mailboxes[client_id] = {m.lower() for m in mailboxes}

    def fail(self, method: str, path: str, status: int, *, times: int = 1, retry_after: str | None = None,
             code: str = "", message: str = "") -> Fault:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = {"error": {"code": code or {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout",
                                            500: "InternalServerError", 410: "SyncStateNotFound"}.get(status, "Error"),
                          "message": message or "Injected fault.",
                          "innerError": {"date": _iso(time.time()), "request-id": str(uuid.uuid4())}}}
        fault = Fault(method, path, status, headers, body, times)
        with self._lock:
            self.faults.append(fault)
        return fault

    def before(self, method: str, path: str, action: Callable[[str], None], *, times: int = 1) -> None:
        with self._lock:
            self.hooks.append(Hook(method, path, action, times))

    def expire_access_tokens(self) -> None:
        """Every issued access token is now rejected by Graph (as after its lifetime)."""
        with self._lock:
            for tok in self.tokens.values():
                tok.expires = 0

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token is refused (password reset, admin revoked the sessions)."""
        with self._lock:
            self.refresh_tokens.clear()

    def expire_delta_states(self) -> None:
        """Every delta/skip token is forgotten: Graph answers 410 Gone (syncStateNotFound)."""
        with self._lock:
            self.delta_states.clear()

    def approve_device_code(self, user_code: str, username: str) -> None:
        with self._lock:
            for dc in self.device_codes.values():
                if dc["user_code"] == user_code:
                    dc["approved_by"] = username
                    return
        raise KeyError(user_code)

    def graph_requests(self, pattern: str = "", method: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.startswith("/v1.0") and re.search(pattern, s.path)
                    and (method is None or s.method == method)]

    # ---- request entry point
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(raw_path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        seen = Seen(method, unquote(path), query, {k.lower(): v for k, v in headers.items()}, time.time())
        with self._lock:
            self.seen.append(seen)
            hooks = [h for h in self.hooks if h.times > 0 and h.method in ("*", method) and re.search(h.path, unquote(path))]
            for h in hooks:
                h.times -= 1
        for h in hooks:
            with self._lock:
                h.action(unquote(path))
        with self._lock:
            fault = next((f for f in self.faults if f.matches(method, unquote(path))), None)
            if fault is not None:
                fault.times -= 1
                seen.status = fault.status
                return fault.status, {"Content-Type": "application/json", **fault.headers}, json.dumps(fault.body or {}).encode()
            try:
                if path.startswith("/v1.0/"):
                    status, hdrs, payload = self._graph(method, path[len("/v1.0"):], query, seen.headers, body)
                else:
                    status, hdrs, payload = self._entra(method, path, query, body)
            except GraphError as exc:
                status, hdrs = exc.status, {"Content-Type": "application/json", **exc.headers}
                payload = json.dumps({"error": {"code": exc.code, "message": exc.message,
                                                "innerError": {"date": _iso(time.time()), "request-id": str(uuid.uuid4())}}}).encode()
            seen.status = status
            return status, hdrs, payload

    # ------------------------------------------------------------------------ Entra ID
    def _entra(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict[str, str], bytes]:
        m = re.fullmatch(r"/([^/]+)/(v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/(token|devicecode|authorize))", path)
        if not m:
            return _json(404, {"error": "not_found"})
        tenant = m.group(1)
        if tenant not in (TENANT, TENANT_ID, "organizations"):
            return _json(400, {"error": "invalid_tenant", "error_description": f"AADSTS90002: Tenant '{tenant}' not found."})
        base = f"{self.base}/{tenant}"
        if m.group(2).startswith("v2.0"):
            return _json(200, {
                "issuer": f"{self.base}/{TENANT_ID}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "tenant_region_scope": "EU",
            })
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        if m.group(3) == "devicecode":
            return self._devicecode(form)
        if m.group(3) == "token" and method == "POST":
            return self._token(form)
        return _json(400, {"error": "unsupported_response_type"})

    def _devicecode(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if form.get("client_id") not in self.apps or self.apps[form["client_id"]] is not None:
            return _json(400, {"error": "invalid_client", "error_description": "AADSTS7000218: public client flows are not allowed."})
        device_code = secrets.token_urlsafe(32)
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        self.device_codes[device_code] = {"user_code": user_code, "client_id": form["client_id"],
                                          "scope": form.get("scope", ""), "expires": time.time() + 900,
                                          "approved_by": self.auto_approve_as}
        return _json(200, {
            "device_code": device_code, "user_code": user_code,
            "verification_uri": f"{self.base}/devicelogin", "expires_in": 900, "interval": 1,
            "message": f"To sign in, use a web browser to open the page {self.base}/devicelogin and enter the code {user_code} to authenticate.",
        })

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        if client_id not in self.apps:
            return _json(400, {"error": "unauthorized_client", "error_description": f"AADSTS700016: Application with identifier '{client_id}' was not found."})
        if grant == "client_credentials":
            if self.apps[client_id] is None or form.get("client_secret") != self.apps[client_id]:
                return _json(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
            scopes = form.get("scope", "").split()
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                return _json(400, {"error": "invalid_scope", "error_description": "AADSTS1002012: The provided value for scope is not valid."})
            at = self._issue(Token("app", client_id, time.time() + self.token_lifetime, scopes))
            return _json(200, {"token_type": "Bearer", "expires_in": self.token_lifetime, "ext_expires_in": self.token_lifetime, "access_token": at})
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            dc = self.device_codes.get(form.get("device_code", ""))
            if dc is None or dc["expires"] < time.time():
                return _json(400, {"error": "expired_token", "error_description": "AADSTS70020: The provided value for the input parameter 'device_code' is not valid."})
            if dc["approved_by"] is None:
                return _json(400, {"error": "authorization_pending", "error_description": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending."})
            del self.device_codes[form["device_code"]]
            return self._user_tokens(client_id, dc["approved_by"], dc["scope"].split())
        if grant == "refresh_token":
            rt = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if rt is None or rt["client_id"] != client_id:
                return _json(400, {"error": "invalid_grant", "error_description": "AADSTS700082: The refresh token has expired due to inactivity."})
            return self._user_tokens(client_id, rt["username"], form.get("scope", "").split() or rt["scopes"])
        return _json(400, {"error": "unsupported_grant_type"})

    def _user_tokens(self, client_id: str, username: str, scopes: list[str]) -> tuple[int, dict[str, str], bytes]:
        granted = [s for s in scopes if s not in ("openid", "profile", "offline_access")]
        at = self._issue(Token("user", client_id, time.time() + self.token_lifetime, granted, username))
        rt = secrets.token_urlsafe(40)
        self.refresh_tokens[rt] = {"client_id": client_id, "username": username, "scopes": granted}
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, username))
        now = int(time.time())
        claims = {"aud": client_id, "iss": f"{self.base}/{TENANT_ID}/v2.0", "iat": now, "nbf": now, "exp": now + 3600,
                  "name": username.split("@")[0].title(), "oid": uid, "preferred_username": username, "sub": uid,
                  "tid": TENANT_ID, "ver": "2.0"}
        id_token = ".".join([_b64url(json.dumps({"typ": "JWT", "alg": "none"}).encode()),
                             _b64url(json.dumps(claims).encode()), ""])
        client_info = _b64url(json.dumps({"uid": uid, "utid": TENANT_ID}).encode())
        return _json(200, {"token_type": "Bearer", "scope": " ".join(granted), "expires_in": self.token_lifetime,
                           "ext_expires_in": self.token_lifetime, "access_token": at, "refresh_token": rt,
                           "id_token": id_token, "client_info": client_info})

    def _issue(self, token: Token) -> str:
        value = "eyJ0eXAiOiJKV1QifQ." + secrets.token_urlsafe(48)
        self.tokens[value] = token
        return value

    # ------------------------------------------------------------------------ Graph
    def _graph(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        auth = headers.get("authorization", "")
        token = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if token is None:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty or invalid.",
                             {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})
        if token.expires < time.time():
            raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.",
                             {"WWW-Authenticate": 'Bearer realm="", error="invalid_token", error_description="The access token has expired"'})
        segments = [unquote(s) for s in path.strip("/").split("/")]
        if segments[0] == "me":
            if token.kind != "user":
                raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            address, rest = token.username, segments[1:]
        elif segments[0] == "users" and len(segments) > 1:
            address, rest = segments[1], segments[2:]
        else:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segments[0]}'.")
        box = self.mailboxes.get(address.lower())
        if box is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{address}' is invalid.")
        if token.kind == "app":
            policy = self.allowed_mailboxes.get(token.client_id)
            if policy is not None and address.lower() not in policy:
                raise GraphError(403, "ErrorAccessDenied",
                                 "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.")
        elif address.lower() != token.username.lower() and not any(s.endswith(".Shared") for s in token.scopes):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        prefix = "me" if segments[0] == "me" else f"users/{quote(address, safe='@')}"
        return self._mail(box, prefix, method, rest, query, headers, body)

    def _mail(self, box: FakeMailbox, prefix: str, method: str, rest: list[str], q: dict[str, list[str]], headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        n = len(rest)
        if rest[:1] == ["mailFolders"]:
            if n == 1:
                if method == "GET":
                    return self._list(prefix, rest, q, [self._folder_json(box, f, q) for f in box.children(box.root_id) if not f.hidden])
                if method == "POST":
                    return self._create_folder(box, box.root_id, body)
            folder = box.folder(rest[1])
            if folder is None:
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            if n == 2 and method == "GET":
                return _json(200, self._folder_json(box, folder, q))
            if n == 3 and rest[2] == "childFolders":
                if method == "GET":
                    return self._list(prefix, rest, q, [self._folder_json(box, f, q) for f in box.children(folder.id)])
                if method == "POST":
                    return self._create_folder(box, folder.id, body)
            if n == 3 and rest[2] == "messages" and method == "GET":
                items = [self._msg_json(m, q) for m in box.messages.values() if m.folder_id == folder.id]
                return self._list(prefix, rest, q, items)
            if n == 4 and rest[2:] == ["messages", "delta"] and method == "GET":
                return self._delta(box, prefix, folder, q, headers)
        if rest[:1] == ["messages"]:
            if n == 1 and method == "GET":
                return self._list(prefix, rest, q, [self._msg_json(m, q) for m in self._filter(box, q)])
            msg = box.messages.get(rest[1]) if n > 1 else None
            if msg is None:
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            if n == 2 and method == "GET":
                return _json(200, self._msg_json(msg, q))
            if n == 3 and rest[2] == "$value" and method == "GET":
                return 200, {"Content-Type": "text/plain"}, msg.raw
            if n == 2 and method == "PATCH":
                return self._patch(box, msg, headers, body)
            if n == 2 and method == "DELETE":
                box.delete(msg.id)
                return 204, {}, b""
            if n == 3 and rest[2] == "move" and method == "POST":
                dest = box.folder(json.loads(body or b"{}").get("destinationId", ""))
                if dest is None:
                    raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
                return _json(201, self._msg_json(box.move(msg, dest.id), {}))
        if rest == ["outlook", "masterCategories"]:
            if method == "GET":
                return _json(200, {"value": list(box.master_categories)})
            if method == "POST":
                data = json.loads(body or b"{}")
                name = str(data.get("displayName", ""))
                if any(c["displayName"].casefold() == name.casefold() for c in box.master_categories):
                    raise GraphError(409, "ErrorDuplicateDisplayName", "A category with this name already exists.")
                color = str(data.get("color", "none"))
                if not re.fullmatch(r"(?i)none|preset([0-9]|1[0-9]|2[0-4])", color):
                    raise GraphError(400, "ErrorInvalidArgument", "Invalid color.")
                cat = {"id": str(uuid.uuid4()), "displayName": name, "color": color}
                box.master_categories.append(cat)
                return _json(201, cat)
        if rest == ["sendMail"] and method == "POST":
            return self._send_mail(box, headers, body)
        raise GraphError(400, "BadRequest", f"Unsupported request: {method} /{'/'.join(rest)}")

    # ---- Graph helpers
    def _list(self, prefix: str, rest: list[str], q: dict[str, list[str]], items: list[dict[str, Any]]) -> tuple[int, dict[str, str], bytes]:
        top = int(q.get("$top", ["10"])[0])
        skip = int(q.get("$skip", ["0"])[0])
        page = items[skip: skip + top]
        out: dict[str, Any] = {"@odata.context": f"{self.graph_url}/$metadata#{rest[0]}", "value": page}
        if skip + top < len(items):
            keep = {k: v[0] for k, v in q.items() if k not in ("$skip",)}
            keep["$skip"] = str(skip + top)
            out["@odata.nextLink"] = f"{self.graph_url}/{prefix}/{'/'.join(quote(r, safe='') for r in rest)}?{urlencode(keep)}"
        return _json(200, out)


    def _folder_json(self, box: FakeMailbox, f: Folder, q: dict[str, list[str]]) -> dict[str, Any]:
        full = {"id": f.id, "displayName": f.display_name, "parentFolderId": f.parent_id,
                "childFolderCount": len(box.children(f.id)),
                "unreadItemCount": sum(1 for m in box.messages.values() if m.folder_id == f.id and not m.is_read),
                "totalItemCount": sum(1 for m in box.messages.values() if m.folder_id == f.id),
                "sizeInBytes": sum(len(m.raw) for m in box.messages.values() if m.folder_id == f.id),
                "isHidden": f.hidden}
        return _select(full, q)

    def _create_folder(self, box: FakeMailbox, parent_id: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        data = json.loads(body or b"{}")
        name = str(data.get("displayName", "")).strip()
        if not name:
            raise GraphError(400, "ErrorInvalidRequest", "displayName is required.")
        if any(c.display_name.casefold() == name.casefold() for c in box.children(parent_id)):
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        f = Folder(_graph_id("AAMkAGZv"), name, parent_id, hidden=bool(data.get("isHidden", False)))
        box.folders[f.id] = f
        return _json(201, self._folder_json(box, f, {}))

    def _msg_json(self, m: Msg, q: dict[str, list[str]]) -> dict[str, Any]:
        full = {
            "@odata.etag": f'W/"{m.change_key}"', "id": m.id, "createdDateTime": _iso(m.received),
            "lastModifiedDateTime": _iso(m.received), "changeKey": m.change_key, "categories": list(m.categories),
            "receivedDateTime": _iso(m.received), "sentDateTime": _iso(m.received), "hasAttachments": False,
            "internetMessageId": m.internet_message_id, "subject": m.subject, "bodyPreview": "",
            "importance": "normal", "parentFolderId": m.folder_id, "conversationId": "AAQkAD" + m.id[8:20],
            "isRead": m.is_read, "isDraft": m.is_draft,
            "from": {"emailAddress": {"address": m.sender}},
        }
        return _select(full, q)

    def _filter(self, box: FakeMailbox, q: dict[str, list[str]]) -> list[Msg]:
        expr = q.get("$filter", [""])[0]
        if not expr:
            return sorted(box.messages.values(), key=lambda m: m.seq)
        m = re.fullmatch(r"internetMessageId eq '((?:[^']|'')*)'", expr.strip())
        if not m:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
        wanted = m.group(1).replace("''", "'")
        return sorted(box.find_by_mid(wanted), key=lambda x: x.seq)

    def _patch(self, box: FakeMailbox, msg: Msg, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if_match = headers.get("if-match")
        if if_match and if_match != f'W/"{msg.change_key}"':
            raise GraphError(412, "ErrorIrresolvableConflict", "The change key passed in the request does not match the current change key for the item.")
        data = json.loads(body or b"{}")
        for key, value in data.items():
            if key == "categories":
                msg.categories = [str(c) for c in value]
            elif key == "isRead":
                msg.is_read = bool(value)
            elif key == "subject":
                if not msg.is_draft:
                    # v1.0 "Update message": subject is updatable only if isDraft = true.
                    raise GraphError(400, "ErrorInvalidPropertyUpdateSentMessage", "Update of property 'subject' is not allowed once the message has been sent.")
                msg.subject = str(value)
            else:
                raise GraphError(400, "ErrorInvalidProperty", f"Property '{key}' is not supported in this fake.")
        box.touch(msg)
        return _json(200, self._msg_json(msg, {}))

    def _send_mail(self, box: FakeMailbox, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if not headers.get("content-type", "").startswith("text/plain"):
            raise GraphError(400, "BadRequest", "Only MIME (text/plain, base64) is implemented in this fake.")
        try:
            mime = base64.b64decode(body, validate=False)
            if not mime.strip():
                raise ValueError("empty")
        except (ValueError, base64.binascii.Error):  # type: ignore[attr-defined]
            raise GraphError(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.") from None
        self.sent.append(mime)
        box.deliver(mime, "sentitems")
        return 202, {}, b""

    def _delta(self, box: FakeMailbox, prefix: str, folder: Folder, q: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        prefer = headers.get("prefer", "")
        m = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        page_size = int(m.group(1)) if m else 10
        token = (q.get("$skiptoken") or q.get("$deltatoken") or [None])[0]
        if token is not None:
            state = self.delta_states.get(token)
            if state is None or state["folder"] != folder.id:
                raise GraphError(410, "SyncStateNotFound", "The sync state generation is not found. The delta token is expired and data must be synchronized again.")
            if "snapshot" not in state:  # a deltatoken: start the next round from its watermark
                state = self._round(box, folder, since=state["upto"], change_type=state["change_type"], select=state["select"])
        else:
            state = self._round(box, folder, since=0, change_type=q.get("changeType", [""])[0],
                                select=q.get("$select", [""])[0])
        offset = state["offset"]
        chunk = state["snapshot"][offset: offset + page_size]
        sel = {"$select": [state["select"]]} if state["select"] else {}
        value: list[dict[str, Any]] = []
        for kind, mid in chunk:
            if kind == "removed":
                value.append({"@odata.type": "#microsoft.graph.message", "id": mid, "@removed": {"reason": "deleted"}})
                continue
            msg = box.messages.get(mid)
            if msg is None or msg.folder_id != folder.id:
                continue  # gone since the round started; a later round reports the removal
            value.append({"@odata.type": "#microsoft.graph.message", **self._msg_json(msg, sel)})
        url = f"{self.graph_url}/{prefix}/mailFolders/{quote(folder.id, safe='')}/messages/delta"
        out: dict[str, Any] = {"@odata.context": f"{self.graph_url}/$metadata#Collection(message)", "value": value}
        if offset + page_size < len(state["snapshot"]):
            nxt = secrets.token_urlsafe(24)
            self.delta_states[nxt] = {**state, "offset": offset + page_size}
            out["@odata.nextLink"] = f"{url}?$skiptoken={nxt}"
        else:
            dlt = secrets.token_urlsafe(24)
            self.delta_states[dlt] = {"folder": folder.id, "upto": state["upto"], "change_type": state["change_type"],
                                      "select": state["select"]}
            out["@odata.deltaLink"] = f"{url}?$deltatoken={dlt}"
        return _json(200, out)

    def _round(self, box: FakeMailbox, folder: Folder, *, since: int, change_type: str, select: str) -> dict[str, Any]:
        upto = next(self._seq)
        snapshot: list[tuple[str, str]] = []
        msgs = sorted((m for m in box.messages.values() if m.folder_id == folder.id), key=lambda m: m.seq)
        for msg in msgs:
            created = since < msg.seq <= upto
            updated = not created and since < msg.changed_seq <= upto
            if (created and change_type in ("", "created")) or (updated and change_type in ("", "updated")):
                snapshot.append(("message", msg.id))
        if change_type in ("", "deleted") and since:
            snapshot += [("removed", mid) for seq, fid, mid in box.tombstones if fid == folder.id and since < seq <= upto]
        return {"folder": folder.id, "upto": upto, "change_type": change_type, "select": select, "snapshot": snapshot, "offset": 0}


def _select(full: dict[str, Any], q: dict[str, list[str]]) -> dict[str, Any]:
    sel = q.get("$select", [""])[0]
    if not sel:
        return full
    wanted = {s.strip() for s in sel.split(",")} | {"id", "@odata.etag"}
    return {k: v for k, v in full.items() if k in wanted}


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; odata.metadata=minimal"}, json.dumps(body).encode("utf-8")


def _make_handler(app: FakeM365) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = -1  # one write per answer (headers + body), flushed by handle_one_request
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, headers, payload = app.handle(self.command, self.path, dict(self.headers.items()), body)
            except Exception as exc:  # a bug in the fake must show up as a 500, not a hung client
                status, headers, payload = 500, {"Content-Type": "text/plain"}, f"fake server error: {exc!r}".encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler
