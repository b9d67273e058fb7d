"""Optional acknowledgement to the sender of auto-routed mail (off by default).

It says, in French and English, that the mail was sorted automatically, to
which team it went, and how to reach a person.  RFC 3834 rules are kept:

* never to automated mail (``Auto-Submitted`` other than ``no``, bulk/list
  ``Precedence``, ``List-*`` headers, bounces, no-reply senders), nor to mail
  without a usable sender, nor to an empty ``Return-Path`` (``<>``), nor to
  ourselves or to assoc-ai's own messages;
* sent to the ``Return-Path`` when there is one (else the ``From``), with
  ``Auto-Submitted: auto-replied``, ``In-Reply-To``/``References`` and an
  ``Auto:`` subject prefix;
* at most once per sender per ``period_days``, remembered in the state file by
  the sender's keyed hash (never the clear address).
"""

from __future__ import annotations

import smtplib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Any

from assoc_ai_core.errors import ConfigError, ForwardError
from assoc_ai_core.ext.config import build_config
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.forwarding import SmtpForwarder

_SCHEMA = """CREATE TABLE IF NOT EXISTS acknowledgements (
    sender_hash TEXT PRIMARY KEY,
    last_sent_at TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 1,
    last_category TEXT
)"""


@dataclass(frozen=True)
class AckSettings:
    """``[acknowledgement]``: off by default; period, contact, language, team names."""

    enabled: bool = False
    period_days: int = 30
    contact: str = ""
    lang: str = "both"
    teams: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(tr("[acknowledgement] enabled : true ou false.", "[acknowledgement] enabled: true or false."))
        if isinstance(self.period_days, bool) or not isinstance(self.period_days, int) or self.period_days < 1:
            raise ConfigError(tr("[acknowledgement] period_days doit être un nombre entier de jours (1 ou plus).",
                                 "[acknowledgement] period_days must be a whole number of days (1 or more)."))
        if self.lang not in ("fr", "en", "both"):
            raise ConfigError(tr('[acknowledgement] lang : "fr", "en" ou "both".',
                                 '[acknowledgement] lang: "fr", "en" or "both".'))
        if self.enabled and not (isinstance(self.contact, str) and self.contact.strip()):
            raise ConfigError(tr("[acknowledgement] contact est obligatoire : comment joindre une personne "
                                 "(adresse ou téléphone).",
                                 "[acknowledgement] contact is required: how to reach a person (address or phone)."))
        if not isinstance(self.teams, Mapping):
            raise ConfigError(tr("[acknowledgement.teams] : Catégorie = \"nom de l'équipe\".",
                                 "[acknowledgement.teams]: Category = \"team name\"."))

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> AckSettings:
        """Check the ``[acknowledgement]`` section (unknown keys are an error)."""
        settings: AckSettings = build_config(cls, section, where="acknowledgement")
        return settings


class NoticeSender(SmtpForwarder):
    """Sends assoc-ai's own short notices (acknowledgements, alerts) through the ``[smtp]`` settings."""

    def send_notice(self, message: EmailMessage, recipients: Sequence[str]) -> str:
        """Send ``message`` to ``recipients``; returns its Message-ID.  Connection is retried, sending is not."""
        with self.session() as client:
            try:
                refused = client.send_message(message, from_addr=self.settings.from_address, to_addrs=list(recipients))
                if refused:
                    raise ForwardError(tr("Destinataire refusé par le serveur SMTP.",
                                          "Recipient refused by the SMTP server."))
            except smtplib.SMTPRecipientsRefused:
                raise ForwardError(tr("Destinataire refusé par le serveur SMTP.",
                                      "Recipient refused by the SMTP server.")) from None
            except (OSError, smtplib.SMTPException) as exc:
                raise ForwardError(tr(f"Envoi interrompu ({type(exc).__name__}).",
                                      f"Sending interrupted ({type(exc).__name__})."),
                                   maybe_sent=not isinstance(exc, smtplib.SMTPResponseException)) from None
        return str(message["Message-ID"])


def reply_address(message: Any) -> str:
    """Where an automatic reply may go (``Return-Path``, else ``From``); ``""`` when nowhere."""
    headers = {k.lower(): v for k, v in (getattr(message, "headers", {}) or {}).items()}
    if "return-path" in headers:
        addresses = [a for _, a in getaddresses([headers["return-path"]]) if a]
        return addresses[0].strip().lower() if addresses and "@" in addresses[0] else ""
    sender = (getattr(message, "sender", "") or "").strip().lower()
    return sender if "@" in sender and not sender.startswith("@") and not sender.endswith("@") else ""


def may_acknowledge(message: Any, *, own_addresses: Sequence[str] = ()) -> tuple[bool, str]:
    """Whether the RFC 3834 rules allow an automatic reply to ``message``, and why not."""
    headers = {k.lower(): v for k, v in (getattr(message, "headers", {}) or {}).items()}
    if "x-assoc-ai" in headers:
        return False, tr("message d'assoc-ai lui-même", "assoc-ai's own message")
    if getattr(message, "is_automated", False):
        return False, tr("message automatique, liste de diffusion ou expéditeur « no-reply »",
                         "automated mail, mailing list or no-reply sender")
    to = reply_address(message)
    if not to:
        return False, tr("pas d'adresse de réponse utilisable", "no usable reply address")
    local = to.partition("@")[0]
    if local.startswith(("noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "ne-pas-repondre",
                         "nepasrepondre", "mailer-daemon", "postmaster", "bounce")):
        return False, tr("adresse de réponse automatique", "automated reply address")
    if to in {a.strip().lower() for a in own_addresses}:
        return False, tr("adressé à nous-mêmes (boucle)", "addressed to ourselves (loop)")
    return True, ""


def build_acknowledgement(message: Any, *, category: str, settings: AckSettings, sender: str) -> EmailMessage:
    """The acknowledgement of ``message`` routed to ``category``."""
    team = settings.teams.get(category, category)
    fr = (f"Bonjour,\n\nVotre message a bien été reçu. Il a été classé automatiquement par notre logiciel de tri "
          f"et transmis à l'équipe « {team} », qui vous répondra.\n\nSi ce classement vous semble erroné, ou pour "
          f"parler à une personne : {settings.contact}\n\nCeci est une réponse automatique, envoyée au plus une fois "
          f"tous les {settings.period_days} jours.\n")
    en = (f"Hello,\n\nYour message has been received. It was sorted automatically by our mail-sorting software and "
          f"passed to the '{team}' team, who will answer you.\n\nIf this looks wrong, or to talk to a person: "
          f"{settings.contact}\n\nThis is an automatic reply, sent at most once every {settings.period_days} days.\n")
    body = fr if settings.lang == "fr" else en if settings.lang == "en" else fr + "\n— English below —\n\n" + en
    subject = getattr(message, "subject", "") or ""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = reply_address(message)
    prefix = "Auto: " if not subject.lower().startswith("auto:") else ""
    msg["Subject"] = (prefix + subject).strip() or "Auto:"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Assoc-AI"] = "acknowledgement"
    msg["Precedence"] = "auto_reply"  # older responders honour this even without RFC 3834
    mid = getattr(message, "message_id", "") or ""
    if mid:
        msg["In-Reply-To"] = f"<{mid}>"
        msg["References"] = f"<{mid}>"
    msg.set_content(body)
    return msg


class Acknowledger:
    """Decides and sends acknowledgements, once per sender per period (state file, keyed hash)."""

    def __init__(self, settings: AckSettings, state: Any, privacy: Any, sender: NoticeSender | None = None, *,
                 from_address: str | None = None) -> None:
        self.settings = settings
        self.state = state
        self.privacy = privacy
        self.sender = sender
        self.from_address = from_address or (sender.settings.from_address if sender is not None else "")
        with state.transaction() as db:
            db.execute(_SCHEMA)

    def recently_acknowledged(self, address: str, *, now: datetime | None = None) -> bool:
        """True when ``address`` got an acknowledgement within the period."""
        row = self.state.execute("SELECT last_sent_at FROM acknowledgements WHERE sender_hash=?",
                                 (self.privacy.hash(address),)).fetchone()
        if row is None:
            return False
        since = (now or datetime.now(UTC)) - timedelta(days=self.settings.period_days)
        return datetime.fromisoformat(row[0]) > since

    def acknowledge(self, message: Any, category: str, *, decision: str = "auto",
                    now: datetime | None = None) -> tuple[bool, str]:
        """Send the acknowledgement of one decided message when every rule allows it; returns (sent, why not)."""
        if not self.settings.enabled:
            return False, tr("accusés de réception désactivés", "acknowledgements disabled")
        if decision != "auto":
            return False, tr("seul le courrier trié automatiquement reçoit un accusé",
                             "only automatically sorted mail is acknowledged")
        ok, why = may_acknowledge(message, own_addresses=[self.from_address])
        if not ok:
            return False, why
        to = reply_address(message)
        if self.recently_acknowledged(to, now=now):
            return False, tr("déjà prévenu pendant la période", "already told within the period")
        if self.sender is None:
            raise ConfigError(tr("Une section [smtp] est nécessaire pour envoyer les accusés de réception.",
                                 "An [smtp] section is needed to send acknowledgements."))
        when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        # recorded before sending: a crash after the send must not lead to a second reply
        with self.state.transaction() as db:
            db.execute("INSERT INTO acknowledgements (sender_hash, last_sent_at, sent, last_category) VALUES (?,?,1,?)"
                       " ON CONFLICT (sender_hash) DO UPDATE SET last_sent_at=excluded.last_sent_at,"
                       " sent=acknowledgements.sent+1, last_category=excluded.last_category",
                       (self.privacy.hash(to), when, category))
        self.sender.send_notice(build_acknowledgement(message, category=category, settings=self.settings,
                                                      sender=self.from_address), [to])
        return True, ""


__all__ = ["AckSettings", "Acknowledger", "NoticeSender", "may_acknowledge", "reply_address", "build_acknowledgement"]
