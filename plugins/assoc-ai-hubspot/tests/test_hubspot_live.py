"""Opt-in check against a real HubSpot account (a free developer test account will do): ``pytest -m live``.

Set ``ASSOC_AI_HUBSPOT_TOKEN`` to a private-app token with the read scopes listed in the README; optionally
``ASSOC_AI_HUBSPOT_GIFT_PIPELINE`` (a deal pipeline id) to read gifts too.  Reads one page of each mapped
record type and dry-runs ``ensure_fields`` and a write; nothing is written.
"""

from __future__ import annotations

import os

import pytest
from assoc_ai_hubspot import HubSpotConfig, HubSpotConnector

from assoc_ai_core.ext.config import Secret
from assoc_ai_core.records.people import Score
from assoc_ai_core.testing.crm import live_settings


@pytest.mark.live
def test_account_reads_and_dry_runs() -> None:
    token = live_settings("HubSpot account", "ASSOC_AI_HUBSPOT_TOKEN")["ASSOC_AI_HUBSPOT_TOKEN"]
    pipeline = os.environ.get("ASSOC_AI_HUBSPOT_GIFT_PIPELINE")
    config = HubSpotConfig(access_token=Secret(token),
                           gift={"object": "deals", "pipeline": pipeline} if pipeline else None)
    with HubSpotConnector(config) as conn:
        plan = conn.ensure_fields(task="live_check")
        assert plan.dry_run and plan.diffs
        if any(d.record_id == f"contacts.{config.do_not_profile_property}" and d.action == "create"
               for d in plan.diffs):
            return  # the consent checkbox is not there yet: reading people would (rightly) be refused
        first = None
        for record_type in sorted(conn.record_types):
            for page in conn.iter_records(record_type, page_size=10):
                if record_type == "person" and page.records:
                    first = page.records[0]
                break
        if first is not None:
            report = conn.write_scores([Score(person_id=first.source_id, task="live_check", probability=0.5)])
            assert report.dry_run
