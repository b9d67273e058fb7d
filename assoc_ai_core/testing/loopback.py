"""A base for the fake web APIs (CRMs) that connector tests serve on loopback: the plumbing their fakes share.

A plugin's fake follows its API's published documents; what every fake needs
beyond that lives here, on top of :class:`~assoc_ai_core.testing.loopback_http.LoopbackHTTPServer`
(the threaded HTTP(S) server the mail plugins' fakes use too): a request log and
a lock, injected throttling answered ``429`` with ``Retry-After``, JSON answers,
and :func:`make_cert` for a throw-away TLS certificate::

    @dataclass
    class FakeCrm(LoopbackApi):
        methods: ClassVar[tuple[str, ...]] = ("GET", "PUT")

        def seed(self):
            self.people = [...]

        def handle(self, h, method):
            with self.lock:
                self.requests.append({"method": method, "path": h.path})
                if self.reply_throttled(h, {"error": "Too Many Requests"}):
                    return
            self.reply(h, 200, {"people": self.people})

    @pytest.fixture()
    def crm():
        yield from FakeCrm().serve()   # (fake, url): seeded, served until the test ends
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from threading import Lock
from typing import Any, ClassVar, Self

from assoc_ai_core.testing.loopback_http import LoopbackHTTPServer

__all__ = ["Exchange", "LoopbackApi", "make_cert"]


class Exchange:
    """One request as a fake sees it (``path``, case-insensitive ``headers``, ``body``), and the answer it gives."""

    def __init__(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> None:
        self.command = method
        self.path = target
        self.headers = Message()
        for key, value in headers.items():
            self.headers[key] = value
        self.body = body
        self.answer: tuple[int, dict[str, str], bytes] = (500, {"Content-Type": "text/plain"}, b"the fake did not answer")


@dataclass
class LoopbackApi:
    """Base of a fake API: subclasses implement :meth:`handle` and list the HTTP ``methods`` their API serves.

    ``content_type`` is what the real API answers with
    (``application/json;charset=utf-8``...).  ``throttle`` holds the
    ``Retry-After`` values (seconds, an HTTP date, or None for no header) of
    the next answers :meth:`reply_throttled` turns into ``429``.  ``base`` is
    the server's address once started.
    """

    methods: ClassVar[tuple[str, ...]] = ("GET", "POST")
    content_type: ClassVar[str] = "application/json"

    throttle: list[Any] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: Lock = field(default_factory=Lock)
    base: str = ""

    def seed(self) -> None:
        """Fill the fake with its test data (a fake with none keeps this no-op)."""

    def handle(self, h: Exchange, method: str) -> None:
        """Answer one request with :meth:`reply` (runs in the server's threads); a fake overrides it.

        The base answers 501, as a server does for what it does not implement.
        """
        self.reply(h, 501, {"error": f"{type(self).__name__} serves no request: override handle()"})

    def _app(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        if method not in self.methods:
            return 501, {"Content-Type": "text/plain"}, f"{method} is not served by this API".encode()
        exchange = Exchange(method, target, headers, body)
        self.handle(exchange, method)
        return exchange.answer

    def start(self, tls: tuple[Path, Path] | None = None) -> LoopbackHTTPServer:
        """Serve on 127.0.0.1 on a free port, in the background (TLS with ``tls=(cert, key)``); ``stop()`` it."""
        server = LoopbackHTTPServer(self._app, name=type(self).__name__, tls=tls).start()
        self.base = server.base_url
        return server

    @contextmanager
    def running(self, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
        """Serve while the ``with`` block runs; yields the base URL."""
        server = self.start(tls)
        try:
            yield self.base
        finally:
            server.stop()

    def serve(self, tls: tuple[Path, Path] | None = None) -> Iterator[tuple[Self, str]]:
        """For a fixture: seed the fake, then yield it with its URL while serving."""
        self.seed()
        with self.running(tls) as url:
            yield self, url

    def reply_throttled(self, h: Exchange, payload: Any, *, status: int = 429) -> bool:
        """When throttling was injected, answer ``status`` with the next ``Retry-After`` and say so."""
        if not self.throttle:
            return False
        wait = self.throttle.pop(0)
        self.reply(h, status, payload, {} if wait is None else {"Retry-After": str(wait)})
        return True

    def reply(self, h: Exchange, status: int, payload: Any, headers: Mapping[str, str] | None = None, *,
              content_type: str = "", raw: bytes | None = None) -> None:
        """Answer ``payload`` as JSON (``raw`` bytes as they are; an empty body when ``payload`` is None)."""
        data = raw if raw is not None else b"" if payload is None else json.dumps(payload).encode()
        h.answer = (status, {"Content-Type": content_type or self.content_type, **dict(headers or {})}, data)


def make_cert(folder: Path, name: str = "loopback") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, valid one hour: ``(cert, key)`` files in ``folder``.

    Only a test that passes the certificate file as ``verify_tls`` trusts it,
    so the same server also shows that an unknown certificate is refused.
    Needs ``cryptography`` (imported here only).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
