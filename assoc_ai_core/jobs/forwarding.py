"""Forwarding a triaged message to a person (the treasurer, the events team) by SMTP.

The forward is a *new* message that carries the original, unchanged, as a
``message/rfc822`` attachment, so the recipient sees exactly what was
received.  It is marked ``Auto-Submitted: auto-forwarded`` (RFC 3834) so
well-behaved auto-responders stay silent, and ``X-Assoc-AI`` so assoc-ai never
forwards its own forwards (no loops).  Mail that is itself automated
(auto-replies, bounces, mailing lists) is never forwarded.

Each forward's Message-ID is derived from (message key, destination)
(:func:`forward_message_id`), so a forward sent twice — after a kill in the
middle of a send — is recognised as the same message by the receiving side.
The original is attached byte for byte: as ``message/rfc822`` when every line
fits the 998-octet SMTP limit, else as a base64 file ``original.eml`` (see :func:`attach_original`).

TLS is verified by default (system certificates, or ``ca_file``); the
password is a :class:`~assoc_ai_core.ext.config.Secret` reference.  Only the
connection and login are retried here (with tenacity); a failure after that is
a :class:`ForwardError` saying whether it is transient (4xx, connection lost),
permanent (5xx, with the server's reason) or *maybe sent*.  Retrying across
runs is the outbox's work (:mod:`assoc_ai_core.jobs.outbox`).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import logging
import smtplib
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email import encoders
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError, ForwardError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.plugins import build_connector_config
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.mail import Message

log = logging.getLogger(__name__)

HEADER = "X-Assoc-AI"

#: RFC 5321 4.5.3.1.6: a line is at most 998 octets before its CRLF; real servers refuse longer ones
MAX_LINE = 998


@dataclass(frozen=True)
class SmtpSettings:
    """``[smtp]`` section: how forwards are sent.

    ``starttls`` upgrades a plain connection (port 587); ``ssl`` connects with
    TLS from the start (port 465); both off is only for a relay on this
    machine.  ``verify_tls = false`` disables certificate checks (never do it
    on the Internet); ``ca_file`` trusts an extra certificate authority.
    """

    host: str
    port: int = 587
    username: str | None = None
    password: Secret | None = None
    starttls: bool = True
    ssl: bool = False
    sender: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(tr("[smtp] host est obligatoire.", "[smtp] host is required."))
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(tr("[smtp] port doit être un numéro de port.", "[smtp] port must be a port number."))
        if self.ssl and self.starttls:
            raise ValueError(tr("[smtp] : choisissez ssl = true OU starttls = true, pas les deux.",
                                "[smtp]: choose ssl = true OR starttls = true, not both."))
        if self.username and self.password is None:
            raise ValueError(tr("[smtp] password est obligatoire quand username est donné "
                                '(password = { env = "SMTP_PASSWORD" }).',
                                "[smtp] password is required when username is set "
                                '(password = { env = "SMTP_PASSWORD" }).'))

    @property
    def from_address(self) -> str:
        """The address forwards are sent from (``sender``, else ``username``)."""
        address = self.sender or self.username
        if not address or "@" not in address:
            raise ConfigError(tr("[smtp] sender (adresse d'expédition des transferts) est obligatoire.",
                                 "[smtp] sender (the address forwards are sent from) is required."))
        return address

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> SmtpSettings:
        """Build from the ``[smtp]`` TOML table (secret references resolved)."""
        settings: SmtpSettings = build_connector_config(cls, section, where="smtp")
        return settings


def should_forward(message: Message) -> tuple[bool, str]:
    """Whether a message may be forwarded, and why not: automated mail and our own forwards never are."""
    if "x-assoc-ai" in message.headers:
        return False, tr("déjà traité par assoc-ai (en-tête X-Assoc-AI) : pas de boucle",
                         "already handled by assoc-ai (X-Assoc-AI header): no loop")
    if message.is_automated:
        return False, tr("message automatique (réponse automatique, rebond ou liste) : jamais transféré",
                         "automated mail (auto-reply, bounce or list): never forwarded")
    return True, ""


def forward_message_id(key: str, to: str, sender: str) -> str:
    """The Message-ID of the forward of message ``key`` to ``to``: the same every time it is built.

    A hash of (key, destination) on the left, the sender's domain on the
    right: a re-send after an interruption carries the same id, so the
    receiving side (and a person) can tell the copies are one forward.
    """
    digest = hashlib.sha256(f"{key}\n{to.strip().lower()}".encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "assoc-ai.invalid"
    return f"<fwd.{digest}@{domain}>"


def longest_line(raw: bytes) -> int:
    """Octets in the longest line of ``raw``, line ending excluded."""
    return max((len(line.rstrip(b"\r")) for line in raw.split(b"\n")), default=0)


def attach_original(outer: MIMEMultipart, raw: bytes) -> None:
    """Attach the received message, byte for byte, in a form every SMTP server accepts.

    When every line fits in 998 octets it goes as ``message/rfc822`` (shown
    inline by mail clients; headers are written unfolded, exactly as received).
    A longer line cannot be sent as is, and RFC 2046 allows no transfer
    encoding on ``message/rfc822``; ``message/global`` (RFC 6532) would, but
    common parsers (Python's own) read any ``message/*`` part as a message and
    lose it.  So the original goes as the file ``original.eml``
    (``application/octet-stream``, which every mail program offers to open) in
    base64.  Base64 rather than quoted-printable: it carries any bytes exactly
    — bare CR or LF, NUL, 8-bit text — whereas a quoted-printable decoder
    rewrites line endings, so the original would no longer be byte-faithful;
    the cost (a third larger) is paid only by such mail.
    """
    if longest_line(raw) <= MAX_LINE:
        outer.attach(MIMEMessage(BytesParser(policy=compat32).parsebytes(raw)))
        return
    part = MIMEBase("application", "octet-stream", name="original.eml")
    part.set_payload(raw)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename="original.eml")
    outer.attach(part)


def build_forward(raw: bytes, *, to: str, sender: str, category: str, key: str, subject: str = "",
                  note: str = "") -> MIMEMultipart:
    """The forward: a short note plus the original (see :func:`attach_original`), with RFC 3834 headers.

    Write it with :data:`WIRE_POLICY`: its own headers are folded here, the
    original's are kept as received.
    """
    outer = MIMEMultipart("mixed")
    outer["From"] = sender
    outer["To"] = to
    title = f"Fwd: [#{category}] {subject}".strip() if subject else f"Fwd: [#{category}]"
    outer["Subject"] = Header(title, "us-ascii" if title.isascii() else "utf-8").encode(linesep="\r\n")
    outer["Date"] = email.utils.formatdate(localtime=False)
    outer["Message-ID"] = forward_message_id(key, to, sender)
    outer["Auto-Submitted"] = "auto-forwarded"
    outer[HEADER] = f"forwarded; category={_header_safe(category)}"
    if key and not key.startswith("sha256:") and len(key) < MAX_LINE - 20:
        outer["References"] = f"<{key}>"
    body = note or tr(
        f"Message classé « {category} » par assoc-ai et transféré automatiquement. L'original est en pièce jointe.",
        f"Message sorted as '{category}' by assoc-ai and forwarded automatically. The original is attached.",
    )
    outer.attach(MIMEText(body + "\n", "plain", "utf-8"))
    attach_original(outer, raw)
    return outer


#: how a forward goes on the wire: CRLF, and no refolding (the original's headers stay byte for byte)
WIRE_POLICY = compat32.clone(linesep="\r\n", max_line_length=0)


def _header_safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text.encode("ascii", "replace").decode())


class SmtpForwarder:
    """Send forwards through one SMTP server, over one connection kept open for the run (see :meth:`session`)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._kept: smtplib.SMTP | None = None

    def __repr__(self) -> str:
        return f"SmtpForwarder(host={self.settings.host!r}, port={self.settings.port})"

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.settings.ca_file)
        if not self.settings.verify_tls:
            log.warning(tr("[smtp] verify_tls = false : le certificat du serveur n'est pas vérifié.",
                           "[smtp] verify_tls = false: the server certificate is not checked."))
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    @contextlib.contextmanager
    def session(self) -> Iterator[smtplib.SMTP]:
        """A connected, secured, logged-in client; kept open for the next forward unless something went wrong.

        Connecting, STARTTLS and logging in cost more than sending one
        forward; a run with many forwards reuses one connection.  A kept
        connection is checked with NOOP first (the server may have closed it
        while idle), so a send never starts on a dead connection and a lost
        connection during a send still means "may have been sent".
        """
        client = self._alive_kept() or self._connect()
        self._kept = None
        try:
            yield client
        except BaseException:
            _quit(client)
            raise
        self._kept = client

    def _alive_kept(self) -> smtplib.SMTP | None:
        client, self._kept = self._kept, None
        if client is None:
            return None
        try:
            if client.noop()[0] == 250:
                return client
        except (OSError, smtplib.SMTPException):
            pass
        _quit(client)
        return None

    def close(self) -> None:
        """Say goodbye to the server (end of run); safe to call twice."""
        client, self._kept = self._kept, None
        if client is not None:
            _quit(client)

    @retry(retry=retry_if_exception_type(TransientError), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=0.5, max=5), reraise=True)
    def _connect(self) -> smtplib.SMTP:
        """Connect, secure and log in; only this part is retried (nothing has been sent yet)."""
        return self._open_mapped()

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        client: smtplib.SMTP | None = None
        try:
            if s.ssl:
                client = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context())
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                client.ehlo()
                if s.starttls:
                    if not client.has_extn("starttls"):
                        raise ConnectorError(tr(
                            f"Le serveur SMTP {s.host} ne propose pas STARTTLS. Utilisez ssl = true (port 465) "
                            "ou, pour un relais local seulement, starttls = false.",
                            f"SMTP server {s.host} does not offer STARTTLS. Use ssl = true (port 465) "
                            "or, for a local relay only, starttls = false.",
                        ), connector_id="smtp")
                    client.starttls(context=self._context())
                    client.ehlo()
            if s.username:
                assert s.password is not None
                client.login(s.username, s.password.get())
            return client
        except BaseException:
            if client is not None:  # never leave a half-open connection behind
                client.close()
            raise

    def _open_mapped(self) -> smtplib.SMTP:
        """:meth:`_open` with library errors turned into assoc-ai errors (a bad password is AuthError...)."""
        s = self.settings
        try:
            return self._open()
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthError(tr(
                f"Le serveur SMTP {s.host} refuse l'identification de {s.username} (code {exc.smtp_code}). "
                "Vérifiez [smtp] username et le secret du mot de passe.",
                f"SMTP server {s.host} refused the login of {s.username} (code {exc.smtp_code}). "
                "Check [smtp] username and the password secret.",
            ), connector_id="smtp") from None
        except smtplib.SMTPNotSupportedError:
            raise ConnectorError(tr(
                f"Le serveur SMTP {s.host}:{s.port} ne propose pas l'identification (AUTH). Retirez username, "
                "ou utilisez le port de soumission (587) avec STARTTLS.",
                f"SMTP server {s.host}:{s.port} does not offer authentication (AUTH). Remove username, "
                "or use the submission port (587) with STARTTLS.",
            ), connector_id="smtp") from None
        except ssl.SSLError as exc:
            raise ConnectorError(tr(
                f"Connexion TLS à {s.host}:{s.port} refusée : {exc.reason or exc}. Vérifiez le certificat "
                "du serveur (ou ca_file pour une autorité privée).",
                f"TLS connection to {s.host}:{s.port} refused: {exc.reason or exc}. Check the server "
                "certificate (or ca_file for a private authority).",
            ), connector_id="smtp") from None
        except (OSError, smtplib.SMTPException) as exc:
            if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500:
                raise ConnectorError(tr(f"Le serveur SMTP {s.host} refuse : {exc.smtp_code}",
                                        f"SMTP server {s.host} refuses: {exc.smtp_code}"), connector_id="smtp") from None
            raise TransientError(tr(
                f"Serveur SMTP {s.host}:{s.port} injoignable ({type(exc).__name__}). Nouvel essai au prochain passage.",
                f"SMTP server {s.host}:{s.port} unreachable ({type(exc).__name__}). Will retry on the next run.",
            ), connector_id="smtp") from None

    def message_id(self, key: str, to: str) -> str:
        """The Message-ID :meth:`send` gives the forward of ``key`` to ``to``."""
        return forward_message_id(key, to, self.settings.from_address)

    def send(self, raw: bytes, to: str, *, category: str, key: str, subject: str = "") -> str:
        """Send one forward of ``raw`` to ``to``; returns the forward's Message-ID.

        Raises :class:`ForwardError` (transient, permanent or maybe sent) once
        connected, and the connection's own errors before (see :meth:`session`).
        """
        s = self.settings
        forward = build_forward(raw, to=to, sender=s.from_address, category=category, key=key, subject=subject)
        data = forward.as_bytes(policy=WIRE_POLICY)
        with self.session() as client:
            try:
                options = ["BODY=8BITMIME"] if client.has_extn("8bitmime") and not data.isascii() else []
                refused = client.sendmail(s.from_address, [to], data, mail_options=options)
                if refused:
                    code, reply = next(iter(refused.values()))
                    raise _refusal(code, reply, key)
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()), (550, b""))
                raise _refusal(code, reply, key) from None
            except smtplib.SMTPResponseException as exc:
                # a reply to MAIL, RCPT or the end of DATA: the server did not take the message
                raise _refusal(exc.smtp_code, exc.smtp_error, key) from None
            except (OSError, smtplib.SMTPException) as exc:
                raise ForwardError(tr(
                    f"Connexion SMTP perdue pendant l'envoi ({type(exc).__name__}) : le transfert a pu partir.",
                    f"SMTP connection lost while sending ({type(exc).__name__}): the forward may have gone out.",
                ), maybe_sent=True, reason=type(exc).__name__) from None
        return str(forward["Message-ID"])


def _quit(client: smtplib.SMTP) -> None:
    """Close an SMTP connection politely when the server still listens, else just close it."""
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def _refusal(code: int, reply: bytes | str, key: str) -> ForwardError:
    """A server's refusal as a :class:`ForwardError`: 4xx is transient, anything else permanent."""
    reason = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    reason = f"{code} {reason}".strip()
    transient = 400 <= code < 500
    return ForwardError(tr(
        f"Transfert de {key} refusé par le serveur SMTP ({reason})"
        + (" : nouvel essai plus tard." if transient else " : définitivement."),
        f"Forward of {key} refused by the SMTP server ({reason})"
        + (": will try again later." if transient else ": for good."),
    ), transient=transient, code=code, reason=reason)
