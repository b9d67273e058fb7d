"""Building the MIME message of an automatic forward.

Graph's JSON messages only accept custom ``internetMessageHeaders`` whose names
start with ``X-``/``x-``, so the RFC 3834 header ``Auto-Submitted`` cannot be
set that way (nor through ``/messages/{id}/forward``).  ``sendMail`` also
accepts a whole MIME message (base64, ``Content-Type: text/plain``): we build
one that carries the original untouched as a ``message/rfc822`` attachment and
is marked ``Auto-Submitted: auto-forwarded`` (plus Exchange's
``X-Auto-Response-Suppress`` so out-of-office replies do not bounce back).

A forward whose request would pass Graph's 4 MB limit (a scanned PDF) is
built without the original (``attach=False``), created as a draft, given the
original through an upload session (chunks under 4 MB), then sent.

Its ``Message-ID`` is derived from the original's key and the recipient, so a
forward repeated after an interrupted run can be recognised in Sent Items.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
from email.message import EmailMessage

from assoc_ai_core.mail.parsing import decode_header

AUTO_FORWARD_NOTE_FR = "Message transféré automatiquement par assoc-ai : l'original est en pièce jointe."
AUTO_FORWARD_NOTE_EN = "Message forwarded automatically by assoc-ai: the original is attached."


def forward_message_id(key: str, to: str, mailbox: str) -> str:
    """Deterministic Message-ID (with angle brackets) of the forward of ``key`` to ``to``."""
    digest = hashlib.sha256(f"{key}\x00{to.strip().lower()}".encode()).hexdigest()[:32]
    domain = mailbox.rpartition("@")[2] if "@" in mailbox else "assoc-ai.invalid"
    return f"<assoc-ai-fwd.{digest}@{domain}>"


def build_forward(raw: bytes, *, key: str, to: str, mailbox: str, attach: bool = True) -> bytes:
    """The bytes of a new message to ``to`` with ``raw`` attached (unless ``attach`` is False), marked as automated."""
    original = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = decode_header(original.get("subject", "")) or "(sans objet / no subject)"
    msg = EmailMessage(policy=email.policy.SMTP)
    if "@" in mailbox:
        msg["From"] = mailbox
    msg["To"] = to
    msg["Subject"] = subject if subject.lower().startswith(("fwd:", "tr:")) else f"Fwd: {subject}"
    msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = forward_message_id(key, to, mailbox)
    original_id = original.get("message-id")
    if original_id:
        msg["References"] = " ".join(str(original_id).split())
    msg["Auto-Submitted"] = "auto-forwarded"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Assoc-AI"] = "auto-forwarded"
    msg.set_content(f"{AUTO_FORWARD_NOTE_FR}\n{AUTO_FORWARD_NOTE_EN}\n")
    if attach:
        # Attach the original as it arrived: message/rfc822 keeps every header for the recipient.
        msg.add_attachment(original, disposition="attachment", filename="message.eml")
    return msg.as_bytes(policy=email.policy.SMTP)
