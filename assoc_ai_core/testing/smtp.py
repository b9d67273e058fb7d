"""A real SMTP server on 127.0.0.1 for tests: forwards, acknowledgements and alerts are sent and counted for real.

Built on aiosmtpd (a test dependency, imported only here).  Optional login
and STARTTLS with a test certificate, as a relay of the association would ask.
Like real servers, it refuses a message with a line over 998 octets; it can
also answer ``451`` for a while (greylisting, a full queue) and refuse chosen
recipients, so tests see the failures a real relay gives.
"""

from __future__ import annotations

import email
import socket
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["SmtpSink", "free_port", "kit_forward_config"]


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
    (before AUTH too).  ``transient``: the first that many messages are answered
    ``451`` (try again later); ``refuse``: recipient -> the reply refusing it
    (e.g. ``"550 5.1.1 no such user"``).  Use it as a context manager; ``port``
    is known once started.
    """

    MAX_LINE = 998  # RFC 5321 4.5.3.1.6, line ending excluded

    def __init__(self, *, login: str | None = None, password: str | None = None,
                 certificate: tuple[Path, Path] | None = None, transient: int = 0,
                 refuse: Mapping[str, str] | None = None) -> None:
        self.login, self.password, self.certificate = login, password, certificate
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.transient = transient
        self.refuse = dict(refuse or {})
        self.replies: list[str] = []  # every refusal given, in order
        self.greetings = 0  # EHLO/HELO received: one per connection a client opened
        self.port = 0
        self._controller: Any = None

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        """aiosmtpd hook: count the client's greetings (how many connections it opened), answer as usual."""
        self.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        """aiosmtpd hook: refuse the recipients of ``refuse``."""
        if address in self.refuse:
            self.replies.append(self.refuse[address])
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd hook: keep the message exactly as the client sent it (or refuse it as a real server would)."""
        data: bytes = envelope.original_content or envelope.content
        reply = None
        if any(len(line.rstrip(b"\r")) > self.MAX_LINE for line in data.split(b"\n")):
            reply = "500 5.5.6 line too long (RFC 5321 4.5.3.1.6)"
        elif self.transient > 0:
            self.transient -= 1
            reply = "451 4.3.0 temporary failure, try again later"
        if reply is not None:
            self.replies.append(reply)
            return reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), data))
        return "250 OK"

    def message_ids(self) -> list[str]:
        """The Message-ID of every accepted message, in order (copies of one forward share theirs)."""
        return [str(email.message_from_bytes(raw)["Message-ID"]) for _, _, raw in self.envelopes]

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


def kit_forward_config(port: int, model: Path, forward: Sequence[str], *, triage: str = "") -> str:
    """A job's TOML over the local Maildir ``Maildir`` beside it, forwarding the kit's Adhésion mail via the sink.

    ``triage`` adds lines to the ``[triage]`` section (``forward_max_age_days = 0`` for the kit's 2025 mail).
    """
    addresses = ", ".join(f'"{a}"' for a in forward)
    return f"""
[mailbox]
connector = "local"
path = "Maildir"
[model]
path = "{model}"
[triage]
first_run = "all"
state = "state.sqlite"
{triage}
[categories."Adhésion"]
folder = "IA/Adhésion"
forward = [{addresses}]
[categories."Événement"]
folder = "IA/Événement"
[smtp]
host = "127.0.0.1"
port = {port}
starttls = false
sender = "tri@asso.example"
"""
