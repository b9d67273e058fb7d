"""Helpers shared by the IMAP tests: a mailbox handle and sample mail (imported by conftest and tests)."""

from __future__ import annotations

import email.header
import email.utils
from dataclasses import dataclass

from assoc_ai_imap import ImapConnector
from assoc_ai_imap.testing import DovecotServer

# Dovecot 2.3's default list without MOVE (the COPY fallback must be used)
CAPABILITIES_WITHOUT_MOVE = [
    "IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "SORT", "LITERAL+", "NAMESPACE",
    "UIDPLUS", "CHILDREN", "UNSELECT", "MULTIAPPEND", "CONDSTORE", "ESEARCH", "LIST-EXTENDED",
]
CAPABILITIES_WITHOUT_UIDPLUS = [c for c in CAPABILITIES_WITHOUT_MOVE if c != "UIDPLUS"]


@dataclass
class Mailbox:
    """One fresh account on a server, with helpers to fill and inspect it out of band."""

    server: DovecotServer
    user: str
    password: str

    def connector(self, **overrides: object) -> ImapConnector:
        """A connector (not yet connected) for this account."""
        return ImapConnector(self.server.config(self.user, self.password, **overrides))

    def append(self, raw: bytes, folder: str = "INBOX", flags: tuple[bytes, ...] = ()) -> None:
        """Deliver ``raw`` into ``folder`` with a separate session (as the mail server would)."""
        with self.server.client(self.user, self.password) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=flags)

    def contents(self, folder: str) -> list[tuple[int, bytes, tuple[bytes, ...]]]:
        """(uid, raw, flags) of every message in ``folder``, read with a separate session."""
        with self.server.client(self.user, self.password) as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return []
            data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
            return [(uid, bytes(data[uid][b"BODY[]"]), tuple(data[uid][b"FLAGS"])) for uid in sorted(data)]


def make_mail(n: int, *, subject: str | None = None, body: str | None = None, message_id: str | None = "auto",
              sender: str = "adherent@example.org") -> bytes:
    """A small, well-formed French message number ``n``."""
    mid = f"<msg{n}.{email.utils.make_msgid().strip('<>')}>" if message_id == "auto" else message_id
    lines = [
        f"From: Camille Martin <{sender}>",
        "To: contact@asso.test",
        "Subject: " + email.header.Header(subject if subject is not None else f"Demande numéro {n}", "utf-8").encode(),
        f"Date: {email.utils.format_datetime(email.utils.localtime())}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    if mid:
        lines.insert(0, f"Message-ID: {mid}")
    text = body if body is not None else f"Bonjour,\nje voudrais adhérer à l'association (message {n}).\nMerci !"
    return ("\r\n".join(lines) + "\r\n\r\n" + text.replace("\n", "\r\n") + "\r\n").encode("utf-8")
