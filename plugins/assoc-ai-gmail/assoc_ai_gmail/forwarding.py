"""Building the message that forwards a received mail (original attached as message/rfc822)."""

from __future__ import annotations

import email
import email.encoders
import email.header
import email.utils
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32

from assoc_ai_core.mail.parsing import decode_header

from .settings import AUTO_SUBMITTED

FORWARD_NOTE = (
    "Message transféré automatiquement par assoc-ai ; l'original est en pièce jointe.\n"
    "Message forwarded automatically by assoc-ai; the original is attached.\n"
)


def build_forward(raw: bytes, *, to: str, sender: str | None, note: str = FORWARD_NOTE) -> bytes:
    """RFC 5322 bytes of a forward of ``raw`` to ``to``, marked ``Auto-Submitted: auto-forwarded``.

    The original is attached whole, so the recipient sees it exactly as it
    arrived (headers included) and mail loops are detectable (RFC 3834).
    """
    original = email.message_from_bytes(raw, policy=compat32)
    subject = decode_header(original.get("subject", "")).strip()
    if not subject.lower().startswith(("fwd:", "tr:", "fw:")):
        subject = f"Fwd: {subject}" if subject else "Fwd:"
    outer = MIMEMultipart("mixed")
    outer["To"] = to
    if sender:
        outer["From"] = sender
    outer["Subject"] = subject if subject.isascii() else email.header.Header(subject, "utf-8")
    outer["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    outer["Message-ID"] = email.utils.make_msgid(domain=(sender or "assoc-ai.invalid").rpartition("@")[2] or None)
    outer["Auto-Submitted"] = AUTO_SUBMITTED
    outer["X-Assoc-AI"] = "forwarded"
    original_id = (original.get("message-id") or "").strip()
    if original_id and " " not in original_id and len(original_id) < 500:
        outer["References"] = original_id
    outer.attach(MIMEText(note, "plain", "utf-8"))
    outer.attach(_attachment(raw, original))
    return outer.as_bytes(policy=compat32.clone(linesep="\r\n"))


def _attachment(raw: bytes, original: Message) -> MIMEBase:
    try:
        part: MIMEBase = MIMEMessage(original)
        part.as_bytes(policy=compat32)  # a mangled original may not serialise; then send it as a file
    except Exception:
        part = MIMEBase("application", "octet-stream")
        part.set_payload(raw)
        email.encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename="message-original.eml")
    return part
