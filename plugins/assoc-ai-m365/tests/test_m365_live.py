"""Against a real Microsoft 365 tenant — only when credentials are given (``-m live``).

Set ``ASSOC_AI_M365_LIVE_CONFIG`` to a TOML file with a ``[mailbox]`` section
(``connector = "m365"``, see docs/m365.md).  The test reads the Inbox and
locates one message; with ``ASSOC_AI_M365_LIVE_WRITE=1`` it also creates the
folder ``assoc-ai-test/Vérification`` and gives the newest Inbox message the
category ``assoc-ai-test`` (both harmless, and idempotent).
"""

from __future__ import annotations

import os

import pytest
from assoc_ai_m365 import M365Config, M365Connector

from assoc_ai_core.ext.config import build_config, load_config
from assoc_ai_core.mail.parsing import parse_message

pytestmark = pytest.mark.live


@pytest.fixture()
def live_connector() -> M365Connector:
    path = os.environ.get("ASSOC_AI_M365_LIVE_CONFIG")
    if not path:
        pytest.fail("set ASSOC_AI_M365_LIVE_CONFIG to a config file with [mailbox] connector = \"m365\" to run")
    section = dict(load_config(path).get("mailbox") or {})
    assert section.pop("connector", None) == "m365", "the live config's [mailbox] must say connector = \"m365\""
    return M365Connector(build_config(M365Config, section, where="mailbox"))


def test_live_tenant_round_trip(live_connector: M365Connector) -> None:
    with live_connector as conn:
        assert "Inbox" in conn.list_folders()
        page = next(iter(conn.fetch_new("Inbox", None, page_size=5)))
        assert all(parse_message(m.raw).key == m.ref.key for m in page.messages)
        if page.messages:
            ref = page.messages[0].ref
            assert ref in conn.locate([ref])[ref.key]
            if os.environ.get("ASSOC_AI_M365_LIVE_WRITE") == "1":
                conn.ensure_folder("assoc-ai-test/Vérification")
                conn.add_label(ref, "assoc-ai-test")
                assert "assoc-ai-test" in conn.categories(ref)
        again = list(conn.fetch_new("Inbox", page.cursor))
        assert all(not p.resync for p in again)
