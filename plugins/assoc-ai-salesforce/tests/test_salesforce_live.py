"""Opt-in check against a Salesforce sandbox with NPSP: ``pytest -m live``.

Set ``ASSOC_AI_SALESFORCE_DOMAIN_URL`` (https://<my-domain>.sandbox.my.salesforce.com),
``ASSOC_AI_SALESFORCE_CLIENT_ID`` and ``ASSOC_AI_SALESFORCE_CLIENT_SECRET`` of a connected app with the
client-credentials flow enabled.  Reads one batch of each record type and dry-runs a write; nothing is written.
"""

from __future__ import annotations

import pytest
from assoc_ai_salesforce import SalesforceConfig, SalesforceConnector

from assoc_ai_core.ext.config import Secret
from assoc_ai_core.testing.crm import live_settings

NEEDED = ("ASSOC_AI_SALESFORCE_DOMAIN_URL", "ASSOC_AI_SALESFORCE_CLIENT_ID", "ASSOC_AI_SALESFORCE_CLIENT_SECRET")


@pytest.mark.live
def test_sandbox_reads_and_dry_runs() -> None:
    env = live_settings("Salesforce sandbox", *NEEDED)
    config = SalesforceConfig(domain_url=env[NEEDED[0]], client_id=env[NEEDED[1]], client_secret=Secret(env[NEEDED[2]]))
    with SalesforceConnector(config) as conn:
        first = None
        for record_type in sorted(conn.record_types):
            for page in conn.iter_records(record_type):
                first = first or (page.records[0] if record_type == "person" else None)
                break
        if first is not None:
            assert conn.ensure_fields(task="live_check").dry_run
