"""The core's connector conformance kit, run against ImapConnector on real Dovecot servers.

Each check gets a fresh account (an empty mailbox).  The kit is run twice:
on a server with MOVE, and on one without it (COPY + UID EXPUNGE fallback).
The triage checks run the real TriageJob, including (on the copy-only
server) one in a subprocess killed with SIGKILL mid-batch and run again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assoc_ai_imap import ImapConnector
from assoc_ai_imap.testing import DovecotServer

from assoc_ai_core.testing import parametrize_mailbox_checks
from assoc_ai_core.testing.mailbox import MailboxHarness

PASSWORD_ENV = "ASSOC_AI_TEST_IMAP_PASSWORD"


def imap_harness(server: DovecotServer) -> MailboxHarness:
    """A harness over a new account of ``server``."""
    user, password = server.add_user()

    def deliver(folder: str, raw: bytes) -> None:
        with server.client(user, password) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw)

    section: dict[str, Any] = {
        "connector": "imap", "host": "127.0.0.1", "port": server.port, "username": user,
        "password": {"env": PASSWORD_ENV}, "tls": "none", "timeout": 10.0, "retries": 2, "retry_wait": 0.05,
    }
    return MailboxHarness(
        make=lambda: ImapConnector(server.config(user, password)),
        deliver=deliver,
        section=section,
        env={PASSWORD_ENV: password},
        secret_values=(password,),
    )


@parametrize_mailbox_checks(subprocess=False)
def test_imap_conformance_with_move(check: Any, dovecot: DovecotServer, tmp_path: Path) -> None:
    check(imap_harness(dovecot), tmp_path)


# The SIGKILL check runs here only: COPY + UID EXPUNGE is the non-atomic path a kill can split
# (the MOVE server is killed mid-batch through the command line in test_imap_triage.py).
@parametrize_mailbox_checks()
def test_imap_conformance_copy_only(check: Any, dovecot_copy_only: DovecotServer, tmp_path: Path) -> None:
    check(imap_harness(dovecot_copy_only), tmp_path)
