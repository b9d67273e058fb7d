"""Opt-in check against a real CiviCRM test site: ``pytest -m live`` with credentials in the environment.

Set ``ASSOC_AI_CIVICRM_URL`` and ``ASSOC_AI_CIVICRM_API_KEY`` (and
``ASSOC_AI_CIVICRM_SITE_KEY`` if the site demands it).  Reads one page of each
record type and dry-runs a score write; nothing is written.
"""

from __future__ import annotations

import os

import pytest
from assoc_ai_civicrm import CiviCrmConfig, CiviCrmConnector

from assoc_ai_core.ext.config import Secret
from assoc_ai_core.records.people import Score
from assoc_ai_core.testing.crm import live_settings


@pytest.mark.live
def test_test_site_reads_and_dry_runs() -> None:
    env = live_settings("CiviCRM test site", "ASSOC_AI_CIVICRM_URL", "ASSOC_AI_CIVICRM_API_KEY")
    site_key = os.environ.get("ASSOC_AI_CIVICRM_SITE_KEY")
    config = CiviCrmConfig(base_url=env["ASSOC_AI_CIVICRM_URL"], api_key=Secret(env["ASSOC_AI_CIVICRM_API_KEY"]),
                           site_key=Secret(site_key) if site_key else None)
    with CiviCrmConnector(config) as conn:
        first = None
        for page in conn.iter_records("person", page_size=10):
            first = page.records[0]
            break
        if first is not None:
            report = conn.write_scores([Score(person_id=first.source_id, task="live_check", probability=0.5)])
            assert report.dry_run
