"""A real SMTP server on 127.0.0.1 for tests: forwards, acknowledgements and alerts are sent and counted for real.

Built on aiosmtpd (a test dependency, imported only here).  Optional login
and STARTTLS with a test certificate, as a relay of the association would ask.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["SmtpSink", "free_port"]


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SmtpSink:
    """An SMTP server on 127.0.0.1 keeping every accepted message as ``(mail_from, rcpt_tos, raw bytes)``.

    ``login``/``password``: only that pair is accepted by AUTH (required with STARTTLS).
    ``certificate``: a ``(cert, key)`` pair of files; STARTTLS is then required
    (before AUTH too).  Use it as a context manager; ``port`` is known once started.
    """

    def __init__(self, *, login: str | None = None, password: str | None = None,
                 certificate: tuple[Path, Path] | None = None) -> None:
        self.login, self.password, self.certificate = login, password, certificate
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.port = 0
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd hook: keep the message exactly as the client sent it."""
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(data, LoginPassword) and data.login.decode() == self.login
              and data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        """Listen on a free port of 127.0.0.1."""
        import aiosmtpd.controller

        options: dict[str, Any] = {}
        if self.password is not None:
            # over plain text, AUTH is offered but not demanded (aiosmtpd warns against demanding it without TLS)
            tls = self.certificate is not None
            options.update(authenticator=self._authenticate, auth_required=tls, auth_require_tls=tls)
        if self.certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.certificate)
            options.update(tls_context=context, require_starttls=True)
        self._controller = aiosmtpd.controller.Controller(self, hostname="127.0.0.1", port=free_port(), **options)
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        """Stop listening (safe to call twice)."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
