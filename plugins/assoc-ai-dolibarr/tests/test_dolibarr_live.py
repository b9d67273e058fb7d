"""Opt-in check against a real Dolibarr: ``pytest -m live`` with ``ASSOC_AI_DOLIBARR_URL`` and ``ASSOC_AI_DOLIBARR_API_KEY``.

Reads one page of each record type and dry-runs a score write; nothing is written.
"""

from __future__ import annotations

import pytest
from assoc_ai_dolibarr import DolibarrConfig, DolibarrConnector

from assoc_ai_core.ext.config import Secret
from assoc_ai_core.records.people import Score
from assoc_ai_core.testing.crm import live_settings


@pytest.mark.live
def test_instance_reads_and_dry_runs() -> None:
    env = live_settings("Dolibarr instance", "ASSOC_AI_DOLIBARR_URL", "ASSOC_AI_DOLIBARR_API_KEY")
    config = DolibarrConfig(base_url=env["ASSOC_AI_DOLIBARR_URL"], api_key=Secret(env["ASSOC_AI_DOLIBARR_API_KEY"]))
    with DolibarrConnector(config) as conn:
        for record_type in sorted(conn.record_types):
            for page in conn.iter_records(record_type, page_size=10):
                assert all(r.source == "dolibarr" for r in page.records)
                break
        assert conn.write_scores([Score(person_id="1", task="live_check", probability=0.5)]).dry_run
