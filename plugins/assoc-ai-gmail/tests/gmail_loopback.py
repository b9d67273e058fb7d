"""A loopback Gmail API server for tests: in-memory mailbox, Google OAuth endpoints, fault injection.

It answers the requests the real ``google-api-python-client`` sends when its
endpoint is pointed at ``http://127.0.0.1:PORT/``, with the request and
response shapes of the published Gmail API v1 reference
(users.getProfile, users.labels.list/create, users.messages.list/get/modify/
batchModify/send, users.history.list) and of Google's OAuth 2.0 endpoints
(authorization redirect, token endpoint: authorization_code with PKCE,
refresh_token, JWT bearer for service accounts).

Limits of the real service, kept here so a connector that passes these tests
does not meet them first in production (Gmail API "Usage limits" page and
method reference):

* quota units per method (messages.get 5, list 5, history.list 2, modify 5,
  batchModify 50, send 100, labels.list 1, getProfile 1...), counted per
  user in a moving window of one second (250 units per user per second, i.e.
  15,000 per minute); over it, the answer is 403 ``userRateLimitExceeded``
  (or 429 ``rateLimitExceeded`` with ``throttle_status = 429``) with a
  ``Retry-After``; each call of an HTTP batch is counted on its own;
* request sizes: the upload endpoint (``/upload/gmail/v1/...``) takes a message
  up to 35 MB; the JSON endpoint refuses bodies over ``json_body_limit``
  (5 MB here: Google's "few MB" metadata limit, not a published figure);
* history ids expire (``history_lifetime_seconds``, a week by default):
  ``history.list`` from an older point answers 404;
* scopes: sending needs a send-capable scope (403 ``insufficientPermissions``
  with ``gmail.readonly``), changing labels needs ``gmail.modify``.

Time is :meth:`FakeGmail.now`, the wall clock plus whatever :meth:`advance`
added, so tests with a fake ``sleep`` move the quota window and history
expiry forward without waiting.

Faults are injected per path: 429 with Retry-After, 403 rate limits, 5xx,
expired access tokens, revoked refresh tokens (invalid_grant), forgotten
history (404) and "after this answer" hooks (e.g. delete a message between
list and get).  Every request is recorded for assertions.  The OAuth side is in
:mod:`gmail_oauth_fake`.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import random
import re
import secrets
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gmail_oauth_fake import (
    SCOPES_TO_CHANGE,
    SCOPES_TO_READ,
    SCOPES_TO_SEND,
    STANDARD_ERRORS,
    FakeGoogleOAuth,
    google_error,
)

from assoc_ai_core.testing.loopback_http import LoopbackHTTPServer, RecordedRequest

SYSTEM_LABELS = (
    "INBOX", "SENT", "DRAFT", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "CHAT",
    "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS", "CATEGORY_UPDATES", "CATEGORY_FORUMS",
)
IMMUTABLE_LABELS = {"SENT", "DRAFT", "CHAT"}
HTTP_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                404: "Not Found", 409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests",
                500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}

#: Quota units per method, from the Gmail API "Usage limits" page.
METHOD_COSTS = {
    "users.getProfile": 1, "users.history.list": 2, "users.labels.list": 1, "users.labels.get": 1,
    "users.labels.create": 5, "users.labels.delete": 5, "users.labels.update": 5, "users.messages.list": 5,
    "users.messages.get": 5, "users.messages.modify": 5, "users.messages.batchModify": 50,
    "users.messages.send": 100, "users.messages.trash": 5, "users.messages.untrash": 5,
}
USER_UNITS_PER_SECOND = 250
UPLOAD_LIMIT = 35 * 1024 * 1024  # messages.send's mediaUpload maxSize (36,700,160 bytes)
JSON_BODY_LIMIT = 5 * 1024 * 1024
HISTORY_LIFETIME_SECONDS = 7 * 86400
READ_METHODS = {"users.getProfile", "users.history.list", "users.labels.list", "users.labels.get",
                "users.messages.list", "users.messages.get"}


def method_name(http_method: str, rest: str) -> str | None:
    """The API method a request under ``/users/{userId}`` calls (None when unknown)."""
    routes = (
        ("GET", r"/profile", "users.getProfile"), ("GET", r"/history", "users.history.list"),
        ("GET", r"/labels", "users.labels.list"), ("POST", r"/labels", "users.labels.create"),
        ("GET", r"/labels/[^/]+", "users.labels.get"), ("DELETE", r"/labels/[^/]+", "users.labels.delete"),
        ("GET", r"/messages", "users.messages.list"), ("POST", r"/messages/batchModify", "users.messages.batchModify"),
        ("POST", r"/messages/send", "users.messages.send"), ("GET", r"/messages/[^/]+", "users.messages.get"),
        ("POST", r"/messages/[^/]+/modify", "users.messages.modify"),
        ("POST", r"/messages/[^/]+/trash", "users.messages.trash"),
    )
    for verb, pattern, name in routes:
        if verb == http_method and re.fullmatch(pattern, rest):
            return name
    return None


@dataclass
class StoredMessage:
    """One message of the fake mailbox."""

    id: str
    thread_id: str
    raw: bytes
    label_ids: list[str]
    internal_date: int
    history_id: int

    def minimal(self) -> dict[str, Any]:
        return {"id": self.id, "threadId": self.thread_id, "labelIds": list(self.label_ids)}

    def resource(self, fmt: str) -> dict[str, Any]:
        res = {**self.minimal(), "historyId": str(self.history_id), "internalDate": str(self.internal_date),
               "sizeEstimate": len(self.raw), "snippet": ""}
        if fmt == "raw":
            res["raw"] = base64.urlsafe_b64encode(self.raw).decode("ascii")
        return res


@dataclass
class Fault:
    """An injected answer for requests whose ``METHOD path`` matches ``pattern``."""

    pattern: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int = 1
    hits: int = 0


@dataclass
class AfterHook:
    """A callback run once the fake has answered a matching request."""

    pattern: str
    action: Callable[[], None]
    times: int = 1


class FakeGmail(FakeGoogleOAuth):
    """In-memory Gmail mailbox and Google OAuth server, served on 127.0.0.1."""

    def __init__(self, email_address: str = "info@asso.example", *, seed: int = 7) -> None:
        self.email_address = email_address
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.labels: dict[str, dict[str, Any]] = {
            lid: {"id": lid, "name": lid, "type": "system"} for lid in SYSTEM_LABELS
        }
        self._label_seq = 0
        self.messages: dict[str, StoredMessage] = {}
        self._msg_seq = 0
        self.history: list[dict[str, Any]] = []
        self.history_id = 1000
        self.history_floor = 0
        self.sent: list[bytes] = []
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.after_hooks: list[AfterHook] = []
        # OAuth state
        self.clients: dict[str, str] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.service_accounts: dict[str, str] = {}  # client_email -> public key / cert PEM
        self.delegated: dict[str, set[str]] = {}  # client_email -> subjects allowed
        self.deny_consent = False
        self.access_token_lifetime = 3599
        self._server: LoopbackHTTPServer | None = None
        # the service's limits (module docstring); tests may lower or raise them
        self.skew = 0.0
        self.units_per_second = USER_UNITS_PER_SECOND
        self.throttle_status = 403
        self.json_body_limit = JSON_BODY_LIMIT
        self.upload_limit = UPLOAD_LIMIT
        self.history_lifetime_seconds = HISTORY_LIFETIME_SECONDS
        self._window: deque[tuple[float, int]] = deque()
        self.units: Counter[str] = Counter()  # units charged, per method
        self.calls_by_method: Counter[str] = Counter()  # calls answered (throttled ones included)
        self.throttled = 0

    # -- time and quota -----------------------------------------------------------------------------------

    def now(self) -> float:
        """The server's clock: wall time plus every :meth:`advance`."""
        return time.time() + self.skew

    def advance(self, seconds: float) -> None:
        """Move the server's clock forward (what a test's fake ``sleep`` does)."""
        with self.lock:
            self.skew += max(0.0, float(seconds))

    @property
    def units_total(self) -> int:
        """Quota units charged so far."""
        return sum(self.units.values())

    def reset_counters(self) -> None:
        """Forget the units and calls counted so far (not the moving window)."""
        with self.lock:
            self.units.clear()
            self.calls_by_method.clear()
            self.throttled = 0

    def _charge(self, method: str) -> tuple[int, dict[str, str], Any] | None:
        """Count ``method``'s units in the moving window; the throttling answer when over the per-user rate."""
        cost = METHOD_COSTS.get(method, 5)
        now = self.now()
        while self._window and self._window[0][0] <= now - 1.0:
            self._window.popleft()
        self.calls_by_method[method] += 1
        spent = sum(units for _, units in self._window)
        if spent + cost > self.units_per_second:
            # how long until enough units leave the window, rounded up to whole seconds as Google does
            freed, wait = spent + cost - self.units_per_second, 1.0
            for at, units in self._window:
                freed -= units
                if freed <= 0:
                    wait = at + 1.0 - now
                    break
            self.throttled += 1
            headers = {"Retry-After": str(max(1, int(wait + 0.999)))}
            if self.throttle_status == 429:
                return 429, headers, STANDARD_ERRORS[429]
            return 403, headers, google_error(
                403, "User-rate limit exceeded. Retry after the time given in Retry-After.", "userRateLimitExceeded",
                "PERMISSION_DENIED", "usageLimits")
        self._window.append((now, cost))
        self.units[method] += cost
        return None

    # -- server lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeGmail:
        """Listen on a free loopback port in a background thread."""
        self._server = LoopbackHTTPServer(self._answer, name="fake-gmail", idle_timeout=10).start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        """Base URL, usable as the client's ``api_endpoint``."""
        assert self._server is not None
        return self._server.base_url + "/"

    @property
    def token_uri(self) -> str:
        return self.url + "token"

    @property
    def auth_uri(self) -> str:
        return self.url + "o/oauth2/auth"

    # -- mailbox helpers for tests (a human or the outside world acting) ------------------------------

    def _next_history(self) -> int:
        self.history_id += self.rng.randint(1, 4)  # ids grow with gaps, like Gmail's
        return self.history_id

    def _record(self, **entries: Any) -> int:
        hid = self._next_history()
        record = {"id": hid, "at": self.now(), **entries}
        msgs = []
        for kind in ("messagesAdded", "messagesDeleted", "labelsAdded", "labelsRemoved"):
            for e in entries.get(kind, []):
                msgs.append({"id": e["message"]["id"], "threadId": e["message"]["threadId"]})
        record["messages"] = msgs
        self.history.append(record)
        return hid

    def deliver(self, raw: bytes, labels: tuple[str, ...] = ("INBOX", "UNREAD"), *, when: int | None = None) -> str:
        """A message arrives (SMTP delivery); returns its Gmail id."""
        with self.lock:
            self._msg_seq += 1
            mid = f"{0x18c0000000000000 + self._msg_seq * 977:x}"
            when = when if when is not None else 1_700_000_000_000 + self._msg_seq * 60_000
            msg = StoredMessage(mid, mid, bytes(raw), list(labels), when, 0)
            self.messages[mid] = msg
            msg.history_id = self._record(messagesAdded=[{"message": msg.minimal()}])
            return mid

    def label_id(self, name: str) -> str:
        """Id of the label called ``name`` (KeyError if none)."""
        for lid, lab in self.labels.items():
            if lab["name"] == name:
                return lid
        raise KeyError(name)

    def create_label(self, name: str) -> str:
        """A label created in the Gmail web interface."""
        with self.lock:
            self._label_seq += 1
            lid = f"Label_{self._label_seq}"
            self.labels[lid] = {"id": lid, "name": name, "type": "user", "messageListVisibility": "show",
                                "labelListVisibility": "labelShow"}
            return lid

    def delete_label(self, name: str) -> None:
        """A volunteer deletes a label in the Gmail web interface (messages keep their other labels)."""
        with self.lock:
            lid = self.label_id(name)
            del self.labels[lid]
            for msg in self.messages.values():
                if lid in msg.label_ids:
                    msg.label_ids.remove(lid)

    def relabel(self, mid: str, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> None:
        """A volunteer moves or labels a message in the Gmail web interface (label names or ids)."""
        with self.lock:
            self._modify(self.messages[mid], [self._resolve(x) for x in add], [self._resolve(x) for x in remove])

    def _resolve(self, name_or_id: str) -> str:
        return name_or_id if name_or_id in self.labels else self.label_id(name_or_id)

    def delete(self, mid: str) -> None:
        """Permanent deletion (e.g. emptied trash)."""
        with self.lock:
            msg = self.messages.pop(mid)
            self._record(messagesDeleted=[{"message": msg.minimal()}])

    def forget_history(self) -> None:
        """Gmail no longer knows any history point issued so far (history.list answers 404)."""
        with self.lock:
            self.history_floor = self.history_id  # the current point stays valid, every earlier one is gone
            self.history = [r for r in self.history if r["id"] > self.history_floor]

    def labels_of(self, mid: str) -> set[str]:
        """Names of the labels a message carries now."""
        with self.lock:
            return {self.labels[lid]["name"] for lid in self.messages[mid].label_ids}

    def add_fault(self, pattern: str, status: int, *, headers: dict[str, str] | None = None, body: Any = None,
                  times: int = 1) -> Fault:
        """Answer the next ``times`` requests matching ``pattern`` (regex on ``"METHOD /path"``) with ``status``."""
        fault = Fault(pattern, status, dict(headers or {}), body if body is not None else STANDARD_ERRORS.get(status),
                      times)
        with self.lock:
            self.faults.append(fault)
        return fault

    def after(self, pattern: str, action: Callable[[], None], times: int = 1) -> None:
        """Run ``action`` right after answering the next request matching ``pattern``."""
        with self.lock:
            self.after_hooks.append(AfterHook(pattern, action, times))

    def calls(self, pattern: str) -> list[RecordedRequest]:
        """Recorded requests whose ``"METHOD /path"`` matches ``pattern``."""
        rx = re.compile(pattern)
        with self.lock:
            return [r for r in self.requests if rx.search(f"{r.method} {r.path}")]

    # -- mailbox internals ------------------------------------------------------------------------------

    def _modify(self, msg: StoredMessage, add: list[str], remove: list[str]) -> None:
        added = [lid for lid in dict.fromkeys(add) if lid not in msg.label_ids]
        removed = [lid for lid in dict.fromkeys(remove) if lid in msg.label_ids and lid not in add]
        if not added and not removed:
            return
        msg.label_ids = [lid for lid in msg.label_ids if lid not in removed] + added
        entries: dict[str, Any] = {}
        if added:
            entries["labelsAdded"] = [{"message": msg.minimal(), "labelIds": added}]
        if removed:
            entries["labelsRemoved"] = [{"message": msg.minimal(), "labelIds": removed}]
        msg.history_id = self._record(**entries)

    # -- HTTP ------------------------------------------------------------------------------------------

    def _answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange: route it, then encode the answer (JSON unless the route gave bytes)."""
        split = urllib.parse.urlsplit(target)
        status, extra, payload = self.handle(method, split.path, urllib.parse.parse_qs(split.query, keep_blank_values=True),
                                             body, {k.lower(): v for k, v in headers.items()})
        if payload is None:
            data, ctype = b"", None
        elif isinstance(payload, (bytes, bytearray)):
            data, ctype = bytes(payload), "text/plain"
        else:
            data, ctype = json.dumps(payload).encode("utf-8"), "application/json; charset=UTF-8"
        out = dict(extra)
        if ctype and not any(k.lower() == "content-type" for k in extra):
            out["Content-Type"] = ctype
        return status, out, data

    # -- request handling -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
               headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """Route one request; returns (status, headers, JSON body or bytes or None)."""
        if self._too_large(method, path, query, body, headers):
            return 413, {}, STANDARD_ERRORS[413]
        if path.startswith("/upload/gmail/v1/"):
            return self._handle_upload(method, path[len("/upload"):], query, body, headers)
        try:
            parsed_body: Any = json.loads(body) if body and "json" in headers.get("content-type", "") else body
        except ValueError:
            return 400, {}, google_error(400, "Invalid JSON payload received.", "parseError", "INVALID_ARGUMENT")
        with self.lock:
            self.requests.append(RecordedRequest(method, path, query, dict(headers), self.now(), parsed_body))
            target = f"{method} {path}"
            for fault in self.faults:
                if fault.hits < fault.times and re.search(fault.pattern, target):
                    fault.hits += 1
                    return fault.status, fault.headers, fault.body
        if path in ("/batch/gmail/v1", "/batch") and method == "POST":
            return self._batch(body, headers)
        if path == "/token" and method == "POST":
            return self._token(urllib.parse.parse_qs(body.decode("utf-8")), headers)
        if path == "/o/oauth2/auth" and method == "GET":
            return self._authorize(query)
        m = re.fullmatch(r"/gmail/v1/users/([^/]+)(/.*)", path)
        if not m:
            return 404, {}, STANDARD_ERRORS[404]
        denied = self._check_bearer(headers)
        if denied:
            return denied
        user, rest = urllib.parse.unquote(m.group(1)), m.group(2)
        if user not in ("me", self.email_address):
            return 403, {}, google_error(403, "Delegation denied for " + self.email_address, "forbidden",
                                         "PERMISSION_DENIED")
        with self.lock:
            refused = self._admit(method, rest, headers)
            if refused:
                return refused
            result = self._route(method, rest, query, parsed_body)
            for hook in self.after_hooks:
                if hook.times > 0 and re.search(hook.pattern, target):
                    hook.times -= 1
                    hook.action()
        return result

    def _too_large(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
                   headers: dict[str, str]) -> bool:
        """True (and recorded) for a body over its endpoint's limit: 35 MB uploads, a few MB of JSON."""
        limit = self.upload_limit if path.startswith("/upload/") else self.json_body_limit
        if len(body) <= limit or "/gmail/v1/" not in path:
            return False
        with self.lock:
            self.requests.append(RecordedRequest(method, path, query, dict(headers), self.now(), None, 413))
        return True

    def _admit(self, method: str, rest: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any] | None:
        """Scope, then quota: the answer refusing the call, or None to serve it."""
        name = method_name(method, rest)
        if name is None:
            return None
        scopes = self.token_scopes(headers)
        needed = SCOPES_TO_READ if name in READ_METHODS else (
            SCOPES_TO_SEND if name == "users.messages.send" else SCOPES_TO_CHANGE)
        if scopes and not scopes & needed:
            return 403, {}, google_error(403, "Request had insufficient authentication scopes.",
                                         "insufficientPermissions", "PERMISSION_DENIED")
        return self._charge(name)

    def _handle_upload(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
                       headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """``POST /upload/gmail/v1/users/{userId}/messages/send`` with ``uploadType=media`` or ``multipart``."""
        kind = (query.get("uploadType") or [""])[0]
        with self.lock:
            self.requests.append(RecordedRequest(method, "/upload" + path, query, dict(headers), self.now(),
                                                 {"uploadType": kind, "size": len(body)}))
            for fault in self.faults:
                if fault.hits < fault.times and re.search(fault.pattern, f"{method} /upload{path}"):
                    fault.hits += 1
                    return fault.status, fault.headers, fault.body
        m = re.fullmatch(r"/gmail/v1/users/([^/]+)/messages/send", path)
        if not m or method != "POST":
            return 404, {}, STANDARD_ERRORS[404]
        denied = self._check_bearer(headers)
        if denied:
            return denied
        if urllib.parse.unquote(m.group(1)) not in ("me", self.email_address):
            return 403, {}, google_error(403, "Delegation denied for " + self.email_address, "forbidden",
                                         "PERMISSION_DENIED")
        ctype = headers.get("content-type", "")
        if kind == "media":
            if not ctype.startswith("message/"):
                return 400, {}, google_error(400, "Media type not accepted: " + ctype, "badContent", "INVALID_ARGUMENT")
            raw = body
        elif kind == "multipart":
            envelope = email.message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body,
                                                policy=email.policy.compat32)
            parts = envelope.get_payload()
            if not ctype.startswith("multipart/related") or not isinstance(parts, list) or len(parts) != 2:
                return 400, {}, google_error(400, "Bad multipart upload", "badContent", "INVALID_ARGUMENT")
            payload = parts[1].get_payload(decode=False)
            raw = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else bytes(payload)
        else:
            return 400, {}, google_error(400, f"uploadType {kind!r} not served by the loopback", "invalidArgument",
                                         "INVALID_ARGUMENT")
        with self.lock:
            refused = self._admit("POST", "/messages/send", headers)
            if refused:
                return refused
            return self._send_raw(raw)

    def _route(self, method: str, rest: str, q: dict[str, list[str]], body: Any) -> tuple[int, dict[str, str], Any]:
        one = lambda name, default=None: (q.get(name) or [default])[0]  # noqa: E731
        if method == "GET" and rest == "/profile":
            return 200, {}, {"emailAddress": self.email_address, "messagesTotal": len(self.messages),
                             "threadsTotal": len(self.messages), "historyId": str(self.history_id)}
        if rest == "/labels":
            if method == "GET":
                return 200, {}, {"labels": [dict(lab) for lab in self.labels.values()]}
            if method == "POST":
                return self._create_label(body or {})
        if method == "GET" and rest == "/messages":
            return self._list_messages(q)
        if method == "POST" and rest == "/messages/batchModify":
            return self._batch_modify(body or {})
        if method == "POST" and rest == "/messages/send":
            return self._send(body or {})
        m = re.fullmatch(r"/messages/([^/]+)(/modify)?", rest)
        if m:
            msg = self.messages.get(m.group(1))
            if msg is None:
                return 404, {}, STANDARD_ERRORS[404]
            if method == "GET" and not m.group(2):
                fmt = one("format", "full")
                if fmt not in ("raw", "minimal"):
                    return 400, {}, google_error(400, f"format {fmt} not served by the loopback", "invalidArgument",
                                                 "INVALID_ARGUMENT")
                return 200, {}, msg.resource(fmt)
            if method == "POST" and m.group(2):
                err = self._check_label_ids((body or {}).get("addLabelIds", []) + (body or {}).get("removeLabelIds", []))
                if err:
                    return err
                self._modify(msg, list(body.get("addLabelIds") or []), list(body.get("removeLabelIds") or []))
                return 200, {}, msg.minimal()
        if method == "GET" and rest == "/history":
            return self._history(q)
        return 404, {}, STANDARD_ERRORS[404]

    def _check_label_ids(self, ids: list[str]) -> tuple[int, dict[str, str], Any] | None:
        for lid in ids:
            if lid not in self.labels:
                return 400, {}, google_error(400, f"Invalid label: {lid}", "invalidArgument", "INVALID_ARGUMENT")
            if lid in IMMUTABLE_LABELS:
                return 400, {}, google_error(400, f"Invalid label: {lid}", "invalidArgument", "INVALID_ARGUMENT")
        return None

    def _create_label(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        name = str(body.get("name") or "").strip()
        if not name:
            return 400, {}, google_error(400, "Invalid label name", "invalidArgument", "INVALID_ARGUMENT")
        if any(lab["name"].casefold() == name.casefold() for lab in self.labels.values()):
            return 409, {}, google_error(409, "Label name exists or conflicts", "duplicate", "ALREADY_EXISTS")
        lid = self.create_label(name)
        for key in ("messageListVisibility", "labelListVisibility"):
            if key in body:
                self.labels[lid][key] = body[key]
        return 200, {}, dict(self.labels[lid])

    @staticmethod
    def _search_terms(query: str) -> tuple[str | None, int | None] | None:
        """``rfc822msgid:`` and ``after:<epoch seconds>`` of a search query; None for anything else."""
        wanted_msgid, after = None, None
        for term in query.split():
            m = re.fullmatch(r"rfc822msgid:<?([^<>\s]+)>?", term)
            a = re.fullmatch(r"after:(\d+)", term)
            if m:
                wanted_msgid = m.group(1)
            elif a:
                after = int(a.group(1))
            else:
                return None
        return wanted_msgid, after

    def _list_messages(self, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        label_ids = q.get("labelIds", [])
        include_spam_trash = (q.get("includeSpamTrash") or ["false"])[0] == "true"
        max_results = min(int((q.get("maxResults") or ["100"])[0]), 500)
        terms = self._search_terms((q.get("q") or [""])[0])
        if terms is None:
            return 400, {}, google_error(400, "Only rfc822msgid: and after:<epoch> queries are served by the "
                                         "loopback", "invalidArgument", "INVALID_ARGUMENT")
        wanted_msgid, after = terms
        for lid in label_ids:
            if lid not in self.labels:
                return 400, {}, google_error(400, f"Invalid label: {lid}", "invalidArgument", "INVALID_ARGUMENT")
        hits = []
        for msg in self.messages.values():
            if not all(lid in msg.label_ids for lid in label_ids):
                continue
            hidden = {"SPAM", "TRASH"} & set(msg.label_ids)
            if hidden and not include_spam_trash and not hidden & set(label_ids):
                continue
            if after is not None and msg.internal_date < after * 1000:
                continue
            if wanted_msgid is not None:
                header = email.message_from_bytes(msg.raw, policy=email.policy.compat32).get("message-id", "")
                if header.strip().strip("<>") != wanted_msgid:
                    continue
            hits.append(msg)
        hits.sort(key=lambda m: (m.internal_date, m.id), reverse=True)
        token = (q.get("pageToken") or [None])[0]
        # a page token marks where the listing stopped (not an offset): messages that leave the label
        # meanwhile do not make the next page skip any, as with Gmail's own tokens
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode().split(":", 2) if token else None
            last = (int(after[1]), after[2]) if after else None
        except (ValueError, IndexError, UnicodeDecodeError):
            return 400, {}, google_error(400, "Invalid pageToken", "invalidArgument", "INVALID_ARGUMENT")
        if last is not None:
            hits = [m for m in hits if (m.internal_date, m.id) < last]
        page = hits[:max_results]
        answer: dict[str, Any] = {"resultSizeEstimate": len(hits)}
        if page:
            answer["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if len(hits) > max_results:
            mark = f"k:{page[-1].internal_date}:{page[-1].id}"
            answer["nextPageToken"] = base64.urlsafe_b64encode(mark.encode()).decode()
        return 200, {}, answer

    def _batch_modify(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        ids = list(body.get("ids") or [])
        if len(ids) > 1000:
            return 400, {}, google_error(400, "Too many ids (max 1000)", "invalidArgument", "INVALID_ARGUMENT")
        add, remove = list(body.get("addLabelIds") or []), list(body.get("removeLabelIds") or [])
        err = self._check_label_ids(add + remove)
        if err:
            return err
        for mid in ids:
            if mid in self.messages:
                self._modify(self.messages[mid], add, remove)
        return 204, {}, None

    def _send(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        try:
            raw = base64.urlsafe_b64decode(str(body.get("raw", "")) + "==")
        except (ValueError, TypeError):
            raw = b""
        return self._send_raw(raw)

    def _send_raw(self, raw: bytes) -> tuple[int, dict[str, str], Any]:
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        if not raw or not parsed.get("to"):
            return 400, {}, google_error(400, "Invalid To header", "invalidArgument", "INVALID_ARGUMENT")
        self.sent.append(raw)
        mid = self.deliver(raw, ("SENT",))
        return 200, {}, self.messages[mid].minimal()

    def _history(self, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        start_raw = (q.get("startHistoryId") or [""])[0]
        if not start_raw.isdigit():
            return 400, {}, google_error(400, "Invalid startHistoryId", "invalidArgument", "INVALID_ARGUMENT")
        start = int(start_raw)
        expired = [r["id"] for r in self.history if r["at"] < self.now() - self.history_lifetime_seconds]
        if expired:
            self.history_floor = max(self.history_floor, max(expired))
            self.history = [r for r in self.history if r["id"] > self.history_floor]
        if start < self.history_floor:
            return 404, {}, STANDARD_ERRORS[404]
        label = (q.get("labelId") or [None])[0]
        types = set(q.get("historyTypes") or ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"])
        kinds = {"messageAdded": "messagesAdded", "messageDeleted": "messagesDeleted",
                 "labelAdded": "labelsAdded", "labelRemoved": "labelsRemoved"}
        out = []
        for record in self.history:
            if record["id"] <= start:
                continue
            kept: dict[str, Any] = {}
            for htype, key in kinds.items():
                if htype not in types:
                    continue
                entries = [e for e in record.get(key, [])
                           if label is None or label in e["message"].get("labelIds", []) or label in e.get("labelIds", [])]
                if entries:
                    kept[key] = entries
            if kept:
                msgs = [{"id": e["message"]["id"], "threadId": e["message"]["threadId"]}
                        for entries in kept.values() for e in entries]
                out.append({"id": str(record["id"]), "messages": msgs, **kept})
        max_results = min(int((q.get("maxResults") or ["100"])[0]), 500)
        token = (q.get("pageToken") or [None])[0]
        offset = int(token) if token and token.isdigit() else 0
        page = out[offset: offset + max_results]
        answer: dict[str, Any] = {"historyId": str(self.history_id)}
        if page:
            answer["history"] = page
        if offset + max_results < len(out):
            answer["nextPageToken"] = str(offset + max_results)
        return 200, {}, answer

    def _batch(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """multipart/mixed batch: each part an application/http request, answered in order (Gmail batching guide)."""
        ctype = headers.get("content-type", "")
        if not ctype.startswith("multipart/mixed"):
            return 400, {}, google_error(400, "Batch requests must be multipart/mixed", "invalidArgument",
                                         "INVALID_ARGUMENT")
        envelope = email.message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body,
                                            policy=email.policy.compat32)
        parts = envelope.get_payload()
        if not isinstance(parts, list) or not parts:
            return 400, {}, google_error(400, "Empty batch", "invalidArgument", "INVALID_ARGUMENT")
        if len(parts) > 100:
            return 400, {}, google_error(400, "A batch holds at most 100 calls", "invalidArgument", "INVALID_ARGUMENT")
        boundary = "batch_" + secrets.token_hex(8)
        out: list[str] = []
        for part in parts:
            text = part.get_payload()
            request_line, _, rest = text.replace("\r\n", "\n").partition("\n")
            method, target, _ = request_line.split(" ", 2)
            inner = email.message_from_string(rest, policy=email.policy.compat32)
            inner_headers = {k.lower(): v for k, v in inner.items()}
            inner_headers.setdefault("authorization", headers.get("authorization", ""))
            inner_headers["x-batch-part"] = "1"  # recorded as a call inside a batch, not a request of its own
            payload = inner.get_payload()
            split = urllib.parse.urlsplit(target)
            status, extra, answer = self.handle(method, split.path,
                                                urllib.parse.parse_qs(split.query, keep_blank_values=True),
                                                payload.encode("utf-8") if payload else b"", inner_headers)
            data = "" if answer is None else json.dumps(answer)
            lines = [f"HTTP/1.1 {status} {HTTP_REASONS.get(status, 'Status')}",
                     "Content-Type: application/json; charset=UTF-8"]
            lines += [f"{k}: {v}" for k, v in extra.items()]
            content_id = re.sub(r"\r?\n", "", str(part["Content-ID"])).strip().strip("<>")  # unfold long headers
            out.append(f"--{boundary}\r\nContent-Type: application/http\r\n"
                       f"Content-ID: <response-{content_id}>\r\n\r\n"
                       + "\r\n".join(lines) + "\r\n\r\n" + data + "\r\n")
        return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, \
            ("".join(out) + f"--{boundary}--\r\n").encode("utf-8")
