"""Constants and message builders shared by the m365 tests (a uniquely named module: several
plugins' test folders sit side by side, each with its own ``conftest.py``)."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

MAILBOX = "info@asso-patrimoine.fr"
APP_ID = "6d1f0c2e-8a51-4b8e-9c7f-2b0a4e9d1a11"
APP_SECRET = "s3cr3t~value.for.tests"
PUBLIC_APP_ID = "0b7e2f44-13c9-4f6a-8d25-91c3a7e5b002"
VOLUNTEER = "camille@asso-patrimoine.fr"


def mail(n: int, subject: str = "", body: str = "", *, sender: str = "", charset: str = "utf-8",
         html: bool = False, attachment: bool = False, message_id: str | None = None) -> bytes:
    """A realistic message to the association (French, accents, optional HTML or attachment)."""
    msg = EmailMessage()
    msg["From"] = sender or f"Adhérent {n} <adherent{n}@exemple.fr>"
    msg["To"] = MAILBOX
    msg["Subject"] = subject or f"Demande d'adhésion n°{n} – cotisation 2025"
    msg["Date"] = email.utils.formatdate(1_735_000_000 + n * 3600)
    msg["Message-ID"] = message_id if message_id is not None else f"<{n}.adhesion@exemple.fr>"
    text = body or (f"Bonjour,\n\nJe souhaite adhérer à l'association pour l'année 2025 (demande {n}).\n"
                    "Pouvez-vous m'indiquer le montant de la cotisation ?\n\nCordialement,\nÉlodie")
    if html:
        msg.set_content(f"<html><body><p>{text.replace(chr(10), '<br>')}</p></body></html>", subtype="html", charset=charset)
    else:
        msg.set_content(text, charset=charset)
    if attachment:
        msg.add_attachment(b"%PDF-1.4 fake bulletin", maintype="application", subtype="pdf", filename="bulletin-adhésion.pdf")
    return bytes(msg)
