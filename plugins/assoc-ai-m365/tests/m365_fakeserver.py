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

Limits of the real service are on by default or set per test: at most 4 MB
per request (413), ``$batch`` of at most 20 requests, ``$top`` of at most
1000 messages, throttling per mailbox (:meth:`FakeM365.throttle`, 429 with
``Retry-After``), delta tokens that expire (:attr:`FakeM365.delta_ttl`, 410
``SyncStateNotFound``), sending refused (:attr:`FakeM365.send_denied`, 403
``ErrorSendAsDenied``), a delegated user refused the master category list of
a shared mailbox (403 ``ErrorAccessDenied``), and message ids that change on
a move unless the request carries ``Prefer: IdType="ImmutableId"``.

Faults are injected per request (status, ``Retry-After``, callbacks run before
a request is served) and tokens can be expired or revoked, so the connector's
real msal + requests code paths are exercised.  The mailbox model is in
:mod:`m365_fakemailbox`, the token endpoints in :mod:`m365_fakeentra`.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from m365_fakeentra import TENANT, TENANT_ID, FakeEntra, Token, json_answer
from m365_fakemailbox import FakeMailbox, Folder, Msg, _graph_id, _iso, make_tls_files

from assoc_ai_core.testing.loopback_http import LoopbackHTTPServer, RecordedRequest

__all__ = ["TENANT", "TENANT_ID", "FakeM365", "FakeMailbox", "make_tls_files"]


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


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


# ---------------------------------------------------------------------------- the server
class FakeM365(FakeEntra):
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
        self.seen: list[RecordedRequest] = []
        self.sent: list[bytes] = []
        self.token_lifetime = 3599
        self.auto_approve_as: str | None = None  # a device code approved as soon as it is issued
        self.max_request_bytes = 4 * 1024 * 1024  # Graph refuses larger bodies with 413
        self.throttle_limit: int | None = None  # requests per mailbox per window (Outlook: 10,000 per 10 min)
        self.throttle_window = 600.0
        self._recent: dict[str, list[float]] = {}
        self.throttled = 0  # 429 answers given by the throttle
        self.mailbox_requests: dict[str, int] = {}  # requests per mailbox, a batch's sub-requests one by one
        self.delta_ttl: float | None = None  # seconds a delta/skip token lives (None: until expire_delta_states)
        self.delta_gone_code = "SyncStateNotFound"  # Graph documents resyncRequired too
        self.send_denied: dict[str, str] = {}  # mailbox -> Graph error code answered to sendMail / send
        self.upload_sessions: dict[str, dict[str, Any]] = {}
        self.app_certificates: dict[str, bytes] = {}  # client_id -> certificate PEM (private_key_jwt)
        self.auth_codes: dict[str, dict[str, Any]] = {}
        self.server = LoopbackHTTPServer(self.handle, name="fake-m365", tls=(cert, key))
        self.port = self.server.port
        self.base = self.server.base_url

    # ---- lifecycle
    def start(self) -> FakeM365:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

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

    def throttle(self, limit: int, window: float = 600.0) -> None:
        """Answer 429 (with ``Retry-After``) once a mailbox got ``limit`` requests in the last ``window`` seconds."""
        with self._lock:
            self.throttle_limit, self.throttle_window = limit, window
            self._recent.clear()

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

    def graph_requests(self, pattern: str = "", method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [s for s in self.seen if s.path.startswith("/v1.0") and re.search(pattern, s.path)
                    and (method is None or s.method == method)]

    # ---- request entry point
    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        parts = urlsplit(raw_path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        seen = RecordedRequest(method, unquote(path), query, {k.lower(): v for k, v in headers.items()}, time.time())
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
                if path.startswith("/v1.0/") and len(body) > self.max_request_bytes:
                    raise GraphError(413, "RequestEntityTooLarge",
                                     f"The request body is larger than the maximum of {self.max_request_bytes} bytes.")
                if path == "/v1.0/$batch" and method == "POST":
                    status, hdrs, payload = self._batch(seen.headers, body)
                elif path.startswith("/upload/") and method == "PUT":
                    status, hdrs, payload = self._upload(path[len("/upload/"):], seen.headers, body)
                elif path.startswith("/v1.0/"):
                    status, hdrs, payload = self._graph(method, path[len("/v1.0"):], query, seen.headers, body)
                else:
                    status, hdrs, payload = self._entra(method, path, query, body)
            except GraphError as exc:
                status, hdrs = exc.status, {"Content-Type": "application/json", **exc.headers}
                payload = json.dumps({"error": {"code": exc.code, "message": exc.message,
                                                "innerError": {"date": _iso(time.time()), "request-id": str(uuid.uuid4())}}}).encode()
            seen.status = status
            return status, hdrs, payload

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
        self._count(address.lower())
        if token.kind == "app":
            policy = self.allowed_mailboxes.get(token.client_id)
            if policy is not None and address.lower() not in policy:
                raise GraphError(403, "ErrorAccessDenied",
                                 "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.")
        elif address.lower() != token.username.lower() and not any(s.endswith(".Shared") for s in token.scopes):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        elif address.lower() != token.username.lower() and segments[-2:] == ["outlook", "masterCategories"]:
            # Mail.*.Shared covers messages and folders, not the other mailbox's settings (its category list).
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if rest_is_send(segments) and token.kind == "user" and not any(
                s.rsplit("/", 1)[-1].startswith("Mail.Send") for s in token.scopes):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if rest_is_send(segments) and address.lower() in self.send_denied:
            code = self.send_denied[address.lower()]
            raise GraphError(403, code, "The user account which was used to submit this request does not have the right "
                             "to send mail on behalf of the specified sending account." if code == "ErrorSendAsDenied"
                             else "Access is denied. Check credentials and try again.")
        prefix = "me" if segments[0] == "me" else f"users/{quote(address, safe='@')}"
        self._immutable = 'idtype="immutableid"' in headers.get("prefer", "").replace(" ", "").lower()
        return self._mail(box, prefix, method, rest, query, headers, body)

    def _count(self, mailbox: str) -> None:
        self.mailbox_requests[mailbox] = self.mailbox_requests.get(mailbox, 0) + 1  # what Outlook's limits count
        if self.throttle_limit is None:
            return
        now = time.monotonic()
        recent = [t for t in self._recent.get(mailbox, []) if t > now - self.throttle_window]
        if len(recent) >= self.throttle_limit:
            self._recent[mailbox] = recent
            self.throttled += 1
            wait = max(1, int(recent[0] + self.throttle_window - now + 0.999))
            raise GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                             {"Retry-After": str(wait)})
        recent.append(now)
        self._recent[mailbox] = recent

    def _id(self, m: Msg) -> str:
        return m.immutable_id if self._immutable else m.id

    def _mail(self, box: FakeMailbox, prefix: str, method: str, rest: list[str], q: dict[str, list[str]], headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if rest[:1] == ["mailFolders"]:
            answer = self._folders_request(box, prefix, method, rest, q, headers, body)
            if answer is not None:
                return answer
        if rest[:1] == ["messages"]:
            answer = self._messages_request(box, prefix, method, rest, q, headers, body)
            if answer is not None:
                return answer
        if rest == ["outlook", "masterCategories"] and method in ("GET", "POST"):
            return self._master_categories(box, method, body)
        if rest == ["sendMail"] and method == "POST":
            return self._send_mail(box, headers, body)
        if rest == ["messages"] and method == "POST":
            return self._create_draft(box, headers, body)
        raise GraphError(400, "BadRequest", f"Unsupported request: {method} /{'/'.join(rest)}")

    def _folders_request(self, box: FakeMailbox, prefix: str, method: str, rest: list[str], q: dict[str, list[str]], headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        n = len(rest)
        if n == 1:
            if method == "GET":
                return self._list(prefix, rest, q, [self._folderjson_answer(box, f, q) for f in box.children(box.root_id) if not f.hidden])
            if method == "POST":
                return self._create_folder(box, box.root_id, body)
        folder = box.folder(rest[1]) if n > 1 else None
        if folder is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if n == 2 and method == "GET":
            return json_answer(200, self._folderjson_answer(box, folder, q))
        if n == 3 and rest[2] == "childFolders":
            if method == "GET":
                return self._list(prefix, rest, q, [self._folderjson_answer(box, f, q) for f in box.children(folder.id)])
            if method == "POST":
                return self._create_folder(box, folder.id, body)
        if n == 3 and rest[2] == "messages" and method == "GET":
            items = [self._msgjson_answer(m, q) for m in self._filter(box, q) if m.folder_id == folder.id]
            return self._list(prefix, rest, q, items)
        if n == 4 and rest[2:] == ["messages", "delta"] and method == "GET":
            return self._delta(box, prefix, folder, q, headers)
        return None

    def _messages_request(self, box: FakeMailbox, prefix: str, method: str, rest: list[str], q: dict[str, list[str]], headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        n = len(rest)
        if n == 1 and method == "GET":
            return self._list(prefix, rest, q, [self._msgjson_answer(m, q) for m in self._filter(box, q)])
        if n == 1 and method == "POST":
            return None  # creating a draft, served by _mail
        msg = box.messages.get(rest[1]) if n > 1 else None
        if msg is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if n == 2 and method == "GET":
            return json_answer(200, self._msgjson_answer(msg, q))
        if n == 3 and rest[2] == "$value" and method == "GET":
            return 200, {"Content-Type": "text/plain"}, msg.raw
        if n == 2 and method == "PATCH":
            return self._patch(box, msg, headers, body)
        if n == 2 and method == "DELETE":
            box.delete(msg.id)
            return 204, {}, b""
        if n == 3 and rest[2] == "send" and method == "POST":
            return self._send_draft(box, msg)
        if rest[2:] == ["attachments", "createUploadSession"] and method == "POST":
            return self._create_upload_session(box, msg, body)
        if n == 3 and rest[2] == "move" and method == "POST":
            dest = box.folder(json.loads(body or b"{}").get("destinationId", ""))
            if dest is None:
                raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
            return json_answer(201, self._msgjson_answer(box.move(msg, dest.id), {}))
        return None

    def _master_categories(self, box: FakeMailbox, method: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if method == "GET":
            return json_answer(200, {"value": list(box.master_categories)})
        data = json.loads(body or b"{}")
        name = str(data.get("displayName", ""))
        if any(c["displayName"].casefold() == name.casefold() for c in box.master_categories):
            raise GraphError(409, "ErrorDuplicateDisplayName", "A category with this name already exists.")
        color = str(data.get("color", "none"))
        if not re.fullmatch(r"(?i)none|preset([0-9]|1[0-9]|2[0-4])", color):
            raise GraphError(400, "ErrorInvalidArgument", "Invalid color.")
        cat = {"id": str(uuid.uuid4()), "displayName": name, "color": color}
        box.master_categories.append(cat)
        return json_answer(201, cat)

    # ---- Graph helpers
    def _list(self, prefix: str, rest: list[str], q: dict[str, list[str]], items: list[dict[str, Any]]) -> tuple[int, dict[str, str], bytes]:
        top = min(int(q.get("$top", ["10"])[0]), 1000)  # Outlook pages hold at most 1000 items
        skip = int(q.get("$skip", ["0"])[0])
        page = items[skip: skip + top]
        out: dict[str, Any] = {"@odata.context": f"{self.graph_url}/$metadata#{rest[0]}", "value": page}
        if skip + top < len(items):
            keep = {k: v[0] for k, v in q.items() if k not in ("$skip",)}
            keep["$skip"] = str(skip + top)
            out["@odata.nextLink"] = f"{self.graph_url}/{prefix}/{'/'.join(quote(r, safe='') for r in rest)}?{urlencode(keep)}"
        return json_answer(200, out)


    def _folderjson_answer(self, box: FakeMailbox, f: Folder, q: dict[str, list[str]]) -> dict[str, Any]:
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
        return json_answer(201, self._folderjson_answer(box, f, {}))

    def _msgjson_answer(self, m: Msg, q: dict[str, list[str]]) -> dict[str, Any]:
        full = {
            "@odata.etag": f'W/"{m.change_key}"', "id": self._id(m), "createdDateTime": _iso(m.received),
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
        if m:
            wanted = m.group(1).replace("''", "'")
            return sorted(box.find_by_mid(wanted), key=lambda x: x.seq)
        since = _received_since(expr)
        return sorted((x for x in box.messages.values() if x.received >= since), key=lambda x: x.seq)

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
        return json_answer(200, self._msgjson_answer(msg, {}))

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
        tokens = q.get("$skiptoken") or q.get("$deltatoken")
        token = tokens[0] if tokens else None
        if token is not None:
            state = self.delta_states.get(token)
            if state is not None and self.delta_ttl is not None and time.time() - state.get("issued", 0) > self.delta_ttl:
                del self.delta_states[token]
                state = None
            if state is None or state["folder"] != folder.id:
                raise GraphError(410, self.delta_gone_code, "The sync state generation is not found. The delta token is expired and data must be synchronized again.")
            if "snapshot" not in state:  # a deltatoken: start the next round from its watermark
                state = self._round(box, folder, since=state["upto"], change_type=state["change_type"],
                                    select=state["select"], received_since=state.get("received_since", 0.0))
        else:
            expr = q.get("$filter", [""])[0]
            state = self._round(box, folder, since=0, change_type=q.get("changeType", [""])[0],
                                select=q.get("$select", [""])[0], received_since=_received_since(expr) if expr else 0.0)
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
            value.append({"@odata.type": "#microsoft.graph.message", **self._msgjson_answer(msg, sel)})
        url = f"{self.graph_url}/{prefix}/mailFolders/{quote(folder.id, safe='')}/messages/delta"
        out: dict[str, Any] = {"@odata.context": f"{self.graph_url}/$metadata#Collection(message)", "value": value}
        if offset + page_size < len(state["snapshot"]):
            nxt = secrets.token_urlsafe(24)
            self.delta_states[nxt] = {**state, "offset": offset + page_size, "issued": time.time()}
            out["@odata.nextLink"] = f"{url}?$skiptoken={nxt}"
        else:
            dlt = secrets.token_urlsafe(24)
            self.delta_states[dlt] = {"folder": folder.id, "upto": state["upto"], "change_type": state["change_type"],
                                      "select": state["select"], "received_since": state["received_since"],
                                      "issued": time.time()}
            out["@odata.deltaLink"] = f"{url}?$deltatoken={dlt}"
        return json_answer(200, out)

    def _round(self, box: FakeMailbox, folder: Folder, *, since: int, change_type: str, select: str,
               received_since: float = 0.0) -> dict[str, Any]:
        upto = next(self._seq)
        snapshot: list[tuple[str, str]] = []
        msgs = sorted((m for m in box.messages.values() if m.folder_id == folder.id and m.received >= received_since),
                      key=lambda m: m.seq)
        for msg in msgs:
            created = since < msg.seq <= upto
            updated = not created and since < msg.changed_seq <= upto
            if (created and change_type in ("", "created")) or (updated and change_type in ("", "updated")):
                snapshot.append(("message", msg.id))
        if change_type in ("", "deleted") and since:
            snapshot += [("removed", mid) for seq, fid, mid in box.tombstones if fid == folder.id and since < seq <= upto]
        return {"folder": folder.id, "upto": upto, "change_type": change_type, "select": select, "snapshot": snapshot,
                "offset": 0, "received_since": received_since}

    # ---- JSON batching: each sub-request is served (and throttled) as if sent alone
    def _batch(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            requests = json.loads(body or b"{}")["requests"]
        except (ValueError, KeyError, TypeError):
            raise GraphError(400, "BadRequest", "Invalid batch payload format.") from None
        if len(requests) > 20:
            raise GraphError(400, "BadRequest", "Batch request exceeds the maximum of 20 requests.")
        responses = []
        for sub in requests:
            sub_headers = {k.lower(): str(v) for k, v in (sub.get("headers") or {}).items()}
            sub_headers["authorization"] = headers.get("authorization", "")
            url = str(sub.get("url", ""))
            parts = urlsplit(url if url.startswith("/") else "/" + url)
            sub_body = json.dumps(sub["body"]).encode() if sub.get("body") is not None else b""
            try:
                status, hdrs, payload = self._graph(str(sub.get("method", "GET")), parts.path,
                                                    parse_qs(parts.query, keep_blank_values=True), sub_headers, sub_body)
            except GraphError as exc:
                status, hdrs = exc.status, {"Content-Type": "application/json", **exc.headers}
                payload = json.dumps({"error": {"code": exc.code, "message": exc.message}}).encode()
            answer: dict[str, Any] = {"id": sub.get("id"), "status": status, "headers": hdrs}
            if payload:
                answer["body"] = json.loads(payload) if hdrs.get("Content-Type", "").startswith("application/json") else \
                    base64.b64encode(payload).decode()
            responses.append(answer)
        return json_answer(200, {"responses": responses})

    # ---- drafts from MIME, upload sessions, send
    def _create_draft(self, box: FakeMailbox, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if not headers.get("content-type", "").startswith("text/plain"):
            raise GraphError(400, "BadRequest", "Only MIME (text/plain, base64) drafts are implemented in this fake.")
        try:
            mime = base64.b64decode(body, validate=False)
        except (ValueError, base64.binascii.Error):  # type: ignore[attr-defined]
            raise GraphError(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.") from None
        draft = box.deliver(mime, "drafts", draft=True)
        return json_answer(201, self._msgjson_answer(draft, {}))

    def _create_upload_session(self, box: FakeMailbox, msg: Msg, body: bytes) -> tuple[int, dict[str, str], bytes]:
        item = json.loads(body or b"{}").get("AttachmentItem") or {}
        if item.get("attachmentType") != "file" or not item.get("name") or int(item.get("size") or 0) <= 0:
            raise GraphError(400, "ErrorInvalidRequest", "AttachmentItem needs attachmentType file, name and size.")
        if not msg.is_draft:
            raise GraphError(400, "ErrorInvalidRequest", "Attachments can be added to drafts only in this fake.")
        token = secrets.token_urlsafe(24)
        self.upload_sessions[token] = {"box": box.address.lower(), "msg": msg.immutable_id, "size": int(item["size"]),
                                       "name": str(item["name"]), "contentType": str(item.get("contentType") or
                                                                                       "application/octet-stream"),
                                       "data": bytearray()}
        return json_answer(201, {"uploadUrl": f"{self.base}/upload/{token}", "expirationDateTime": _iso(time.time() + 900),
                                 "nextExpectedRanges": ["0-"]})

    def _upload(self, token: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        session = self.upload_sessions.get(token)
        if session is None:
            raise GraphError(404, "ErrorItemNotFound", "The upload session was not found.")
        if headers.get("authorization"):
            # The upload URL carries its own credential; Outlook refuses a bearer token on it.
            raise GraphError(401, "InvalidAuthenticationToken", "Authorization header is not allowed on the upload URL.")
        if len(body) > 4 * 1024 * 1024:
            raise GraphError(413, "RequestEntityTooLarge", "A chunk may hold at most 4 MB.")
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers.get("content-range", ""))
        data: bytearray = session["data"]
        if not m or int(m.group(1)) != len(data) or int(m.group(2)) - int(m.group(1)) + 1 != len(body) \
                or int(m.group(3)) != session["size"]:
            raise GraphError(416, "ErrorInvalidRange", "The Content-Range header does not match the expected range.")
        data.extend(body)
        if len(data) < session["size"]:
            return json_answer(200, {"expirationDateTime": _iso(time.time() + 900), "nextExpectedRanges": [f"{len(data)}-"]})
        box = self.mailboxes[session["box"]]
        msg = box.messages[session["msg"]]
        msg.attachments.append({"name": session["name"], "contentType": session["contentType"], "data": bytes(data)})
        del self.upload_sessions[token]
        return 201, {"Location": f"{self.graph_url}/attachments/{secrets.token_urlsafe(12)}"}, b""

    def _send_draft(self, box: FakeMailbox, msg: Msg) -> tuple[int, dict[str, str], bytes]:
        if not msg.is_draft:
            raise GraphError(400, "ErrorInvalidRequest", "Only a draft can be sent.")
        parsed = email.message_from_bytes(msg.raw, policy=email.policy.default)
        for att in msg.attachments:
            maintype, _, subtype = str(att["contentType"]).partition("/")
            if maintype == "message" and subtype == "rfc822":
                inner = email.message_from_bytes(bytes(att["data"]), policy=email.policy.default)  # type: ignore[call-overload]
                parsed.add_attachment(inner, filename=str(att["name"]))
            else:
                parsed.add_attachment(att["data"], maintype=maintype, subtype=subtype, filename=str(att["name"]))
        mime = parsed.as_bytes()
        self.sent.append(mime)
        box.delete(msg.id)
        sent = box.deliver(mime, "sentitems")
        sent.internet_message_id = msg.internet_message_id
        return 202, {}, b""


def rest_is_send(segments: list[str]) -> bool:
    """True for ``sendMail`` and ``messages/{id}/send`` (what Mail.Send and send-as rights govern)."""
    return segments[-1:] == ["sendMail"] or (len(segments) >= 3 and segments[-1] == "send" and segments[-3] == "messages")


def _received_since(expr: str) -> float:
    m = re.fullmatch(r"receivedDateTime (ge|gt) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z", expr.strip())
    if not m:
        raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
    at = dt.datetime.strptime(m.group(2), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp()
    return at + (1 if m.group(1) == "gt" else 0)


def _select(full: dict[str, Any], q: dict[str, list[str]]) -> dict[str, Any]:
    sel = q.get("$select", [""])[0]
    if not sel:
        return full
    wanted = {s.strip() for s in sel.split(",")} | {"id", "@odata.etag"}
    return {k: v for k, v in full.items() if k in wanted}
