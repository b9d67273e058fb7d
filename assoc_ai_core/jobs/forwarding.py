"""Forwarding a triaged message to a person (the treasurer, the events team) by SMTP.

The forward is a *new* message that carries the original, unchanged, as a
``message/rfc822`` attachment, so the recipient sees exactly what was
received.  It is marked ``Auto-Submitted: auto-forwarded`` (RFC 3834) so
well-behaved auto-responders stay silent, and ``X-Assoc-AI`` so assoc-ai never
forwards its own forwards (no loops).  Mail that is itself automated
(auto-replies, bounces, mailing lists) is never forwarded.

TLS is verified by default (system certificates, or ``ca_file``); the
password is a :class:`~assoc_ai_core.ext.config.Secret` reference.  Only the
connection and login are retried (with tenacity): once the message data has
been sent, a failure is reported as *maybe sent* and the job will not send it
again — a message is forwarded at most once.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import smtplib
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.plugins import build_connector_config
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.mail import Message

log = logging.getLogger(__name__)

HEADER = "X-Assoc-AI"


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


class ForwardError(ConnectorError):
    """A forward failed; ``maybe_sent`` is True when the server may have accepted it anyway."""

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message, connector_id="smtp")
        self.maybe_sent = maybe_sent


def should_forward(message: Message) -> tuple[bool, str]:
    """Whether a message may be forwarded, and why not: automated mail and our own forwards never are."""
    if "x-assoc-ai" in message.headers:
        return False, tr("déjà traité par assoc-ai (en-tête X-Assoc-AI) : pas de boucle",
                         "already handled by assoc-ai (X-Assoc-AI header): no loop")
    if message.is_automated:
        return False, tr("message automatique (réponse automatique, rebond ou liste) : jamais transféré",
                         "automated mail (auto-reply, bounce or list): never forwarded")
    return True, ""


def build_forward(raw: bytes, *, to: str, sender: str, category: str, key: str, subject: str = "",
                  note: str = "") -> MIMEMultipart:
    """The forward: a short note plus the original as ``message/rfc822``, with RFC 3834 headers."""
    outer = MIMEMultipart("mixed")
    outer["From"] = sender
    outer["To"] = to
    outer["Subject"] = f"Fwd: [#{category}] {subject}".strip() if subject else f"Fwd: [#{category}]"
    outer["Date"] = email.utils.formatdate(localtime=False)
    outer["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    outer["Auto-Submitted"] = "auto-forwarded"
    outer[HEADER] = f"forwarded; category={_header_safe(category)}"
    if key and not key.startswith("sha256:"):
        outer["References"] = f"<{key}>"
    body = note or tr(
        f"Message classé « {category} » par assoc-ai et transféré automatiquement. L'original est en pièce jointe.",
        f"Message sorted as '{category}' by assoc-ai and forwarded automatically. The original is attached.",
    )
    outer.attach(MIMEText(body + "\n", "plain", "utf-8"))
    original = BytesParser(policy=compat32).parsebytes(raw)
    outer.attach(MIMEMessage(original))
    return outer


def _header_safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text.encode("ascii", "replace").decode())


class SmtpForwarder:
    """Send forwards through one SMTP server (a new connection per message, as cron jobs are short)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

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
        """A connected, secured, logged-in client, closed politely (or not) on the way out."""
        client = self._connect()
        try:
            yield client
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

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

    def send(self, raw: bytes, to: str, *, category: str, key: str, subject: str = "") -> str:
        """Send one forward of ``raw`` to ``to``; returns the forward's Message-ID."""
        s = self.settings
        forward = build_forward(raw, to=to, sender=s.from_address, category=category, key=key, subject=subject)
        data = forward.as_bytes(policy=compat32.clone(linesep="\r\n"))
        with self.session() as client:
            try:
                options = ["BODY=8BITMIME"] if client.has_extn("8bitmime") and not data.isascii() else []
                refused = client.sendmail(s.from_address, [to], data, mail_options=options)
                if refused:
                    raise ForwardError(tr(f"Destinataire refusé par le serveur SMTP (message {key}).",
                                          f"Recipient refused by the SMTP server (message {key})."))
            except smtplib.SMTPRecipientsRefused:
                raise ForwardError(tr(f"Destinataire refusé par le serveur SMTP (message {key}). Vérifiez l'adresse.",
                                      f"Recipient refused by the SMTP server (message {key}). Check the address.")) from None
            except smtplib.SMTPResponseException as exc:
                # a clear refusal (4xx/5xx) means the server did not take the message
                raise ForwardError(tr(f"Transfert refusé par le serveur SMTP (code {exc.smtp_code}).",
                                      f"Forward refused by the SMTP server (code {exc.smtp_code})."),
                                   maybe_sent=False) from None
            except (OSError, smtplib.SMTPException) as exc:
                raise ForwardError(tr(
                    f"Connexion SMTP perdue pendant l'envoi ({type(exc).__name__}) : le transfert a pu partir, "
                    "il ne sera pas renvoyé.",
                    f"SMTP connection lost while sending ({type(exc).__name__}): the forward may have gone out, "
                    "it will not be sent again.",
                ), maybe_sent=True) from None
        return str(forward["Message-ID"])

