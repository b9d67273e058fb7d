"""Opt-in check against a real HelloAsso sandbox: ``pytest -m live`` with credentials in the environment.

Set ``ASSOC_AI_HELLOASSO_CLIENT_ID``, ``ASSOC_AI_HELLOASSO_CLIENT_SECRET`` and
``ASSOC_AI_HELLOASSO_ORG`` (and optionally ``ASSOC_AI_HELLOASSO_API_URL``,
default the sandbox ``https://api.helloasso-sandbox.com``).
"""

from __future__ import annotations

import os

import pytest
from assoc_ai_helloasso import HelloAssoConfig, HelloAssoConnector

from assoc_ai_core.ext.config import Secret
from assoc_ai_core.testing.crm import live_settings

NEEDED = ("ASSOC_AI_HELLOASSO_CLIENT_ID", "ASSOC_AI_HELLOASSO_CLIENT_SECRET", "ASSOC_AI_HELLOASSO_ORG")


@pytest.mark.live
def test_sandbox_reads_a_page_of_each_record_type() -> None:
    env = live_settings("HelloAsso sandbox", *NEEDED)
    config = HelloAssoConfig(
        organization_slug=env["ASSOC_AI_HELLOASSO_ORG"],
        client_id=env["ASSOC_AI_HELLOASSO_CLIENT_ID"],
        client_secret=Secret(env["ASSOC_AI_HELLOASSO_CLIENT_SECRET"]),
        api_url=os.environ.get("ASSOC_AI_HELLOASSO_API_URL", "https://api.helloasso-sandbox.com"),
    )
    with HelloAssoConnector(config) as conn:
        for record_type in sorted(conn.record_types):
            for page in conn.iter_records(record_type, page_size=20):
                assert page.record_type == record_type
                assert all(r.source == "helloasso" for r in page.records)
                assert "modified_after" in page.cursor
                break
