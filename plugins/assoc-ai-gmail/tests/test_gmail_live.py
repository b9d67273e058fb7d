"""Opt-in: the conformance kit against a REAL Gmail account (never in the default run).

Use a throw-away Gmail or Workspace test account: the kit creates labels
(``IA/Adhésion``, ``IA/Événement``, ``À vérifier``), inserts sample mail and
moves it.  Every check works in its own fresh label standing for the inbox
(``assoc-ai-live/<check>-<random>``), so the account's real inbox is not read.

    export ASSOC_AI_GMAIL_LIVE_CONFIG=/path/to/live.toml
    pytest plugins/assoc-ai-gmail -m live

``live.toml`` holds the connector's section, secrets by reference::

    [mailbox]
    connector = "gmail"
    token = { file = "/home/me/.config/assoc-ai/gmail-test-token.json" }

(the token comes from ``assoc-ai gmail auth``; for the subprocess check the
secret reference must be resolvable from the environment or a file).
They are deselected by default (``-m 'not live'``); selected without the variable, they fail and say what to set.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import pytest
from assoc_ai_gmail.connector import GmailConfig, GmailConnector

from assoc_ai_core.ext.config import build_config, load_config
from assoc_ai_core.testing import parametrize_mailbox_checks
from assoc_ai_core.testing.mailbox import MailboxHarness

pytestmark = pytest.mark.live


def live_section() -> dict:
    path = os.environ.get("ASSOC_AI_GMAIL_LIVE_CONFIG", "")
    if not path:
        pytest.fail("live Gmail test: set ASSOC_AI_GMAIL_LIVE_CONFIG to a config file to run it")
    section = dict(load_config(path)["mailbox"])
    assert section.get("connector") == "gmail", f"{path}: [mailbox] connector must be \"gmail\""
    return section


def live_harness(name: str) -> MailboxHarness:
    section = live_section()
    config = build_config(GmailConfig, section, where="mailbox")
    inbox = f"assoc-ai-live/{name}-{secrets.token_hex(3)}"
    admin = GmailConnector(config)
    admin.open()
    admin.ensure_folder(inbox)

    def deliver(folder: str, raw: bytes) -> None:
        label_id = admin._require_label(folder)  # users.messages.insert: like IMAP APPEND, no sending
        body = {"raw": base64.urlsafe_b64encode(raw).decode("ascii"), "labelIds": [label_id, "UNREAD"]}
        admin.calls.execute(admin._users().messages().insert(userId=config.user_id, body=body,
                                                             internalDateSource="dateHeader"),
                            what="users.messages.insert")

    return MailboxHarness(make=lambda: GmailConnector(config), deliver=deliver, inbox=inbox,
                          section=section, env={})


@parametrize_mailbox_checks()
def test_gmail_live_conformance(check, tmp_path: Path) -> None:
    check(live_harness(check.__name__.removeprefix("check_")[:30]), tmp_path)
