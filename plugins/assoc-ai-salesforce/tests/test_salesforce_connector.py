"""The Salesforce NPSP connector, with real simple-salesforce over TLS, against a loopback Salesforce REST API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from assoc_ai_salesforce import SalesforceConfig, SalesforceConnector
from salesforce_fake import CLIENT_ID, CLIENT_SECRET, FakeSalesforce

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.records.people import Gift, Membership, Person, RecurringPlan, Score
from assoc_ai_core.testing.crm import parametrize_crm_checks, read_pages
from assoc_ai_core.testing.loopback import make_cert

FIELD_MAP = {"assoc_ai_donor_propensity": "AssocAI_Score__c", "assoc_ai_donor_propensity_why": "AssocAI_Explanation__c",
             "assoc_ai_donor_propensity_model": "AssocAI_Model__c"}


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"), "salesforce")


@pytest.fixture()
def org(cert: tuple[Path, Path]) -> Iterator[FakeSalesforce]:
    fake = FakeSalesforce()
    fake.seed()
    with fake.running(cert):
        yield fake


def make(fake: FakeSalesforce, cert: tuple[Path, Path], **overrides: Any) -> SalesforceConnector:
    values: dict[str, Any] = dict(domain_url=fake.base, client_id=CLIENT_ID, client_secret=Secret(CLIENT_SECRET),
                                  verify_tls=str(cert[0]), max_attempts=3, max_retry_wait=2.0, field_map=FIELD_MAP)
    values.update(overrides)
    return SalesforceConnector(SalesforceConfig(**values))



SCORES = [Score(person_id="0031", task="donor_propensity", probability=0.81, explanation="Dons fréquents.", model_version="m1"),
          Score(person_id="0033", task="donor_propensity", probability=0.3, explanation="?", model_version="m1"),
          Score(person_id="0034", task="donor_propensity", probability=0.66, explanation="Don mensuel.", model_version="m1")]


@parametrize_crm_checks()
def test_conformance(check: Callable[..., None], org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    check(lambda: make(org, cert))


def test_entry_point_and_https_only() -> None:
    (ep,) = [ep for ep in entry_points(group="assoc_ai") if ep.name == "salesforce"]
    registry = ConnectorRegistry()
    ep.load().register_connectors(registry=registry)
    assert registry.get("salesforce") is SalesforceConnector
    with pytest.raises(ConfigError, match="https"):
        SalesforceConfig(domain_url="http://asso.my.salesforce.com", client_id="x", client_secret=Secret("y"))


def test_tls_is_verified(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    conn = make(org, cert, verify_tls=True)  # the system CAs do not know the test certificate
    with pytest.raises(ConnectorError, match="TLS"):
        conn.open()
    conn.close()


def test_contacts_paged_with_query_more(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    conn = make(org, cert)
    assert org.requests == []
    with conn:
        people, cursor, pages = read_pages(conn, "person")
    conn.close()
    assert pages == 2 and [p.source_id for p in people] == ["0031", "0032", "0033", "0034"]
    assert all(isinstance(p, Person) for p in people)
    assert [p.do_not_profile for p in people] == [False, False, True, False]
    assert people[0].birth_year == 1961 and people[0].postcode == "75011"
    assert any(r["path"].startswith("/services/data/v59.0/query/01g") for r in org.requests), "query_more must be used"
    soql = next(r for r in org.requests if r["path"].rstrip("/").endswith("/query"))["query"]["q"][0]
    assert "ORDER BY SystemModstamp ASC, Id ASC" in soql
    assert cursor["modified_after"] == "2024-02-01T09:00:00+00:00"


def test_incremental_on_systemmodstamp(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        _, cursor, _ = read_pages(conn, "person")
        assert read_pages(conn, "person", cursor)[0] == []
        org.objects["Contact"][1]["MailingCity"] = "Bagnolet"
        org.objects["Contact"][1]["SystemModstamp"] = "2024-03-02T08:00:00.000+0000"
        changed, _, _ = read_pages(conn, "person", cursor)
    assert [(p.source_id, p.city) for p in changed] == [("0032", "Bagnolet")]
    soql = [r["query"]["q"][0] for r in org.requests if r["path"].rstrip("/").endswith("/query")][-1]
    assert "SystemModstamp >= 2024-02-01T09:00:00Z" in soql


def test_npsp_gifts_recurring_and_memberships(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        gifts, _, _ = read_pages(conn, "gift")
        plans, _, _ = read_pages(conn, "recurring_plan")
        members, _, _ = read_pages(conn, "membership")
    assert all(isinstance(g, Gift) for g in gifts)
    assert [(g.source_id, g.person_id, g.amount, g.recurring, g.plan_id) for g in gifts] == [
        ("0061", "0031", 50.0, False, ""), ("0062", "0032", 30.0, False, ""), ("0063", "0034", 15.0, True, "a0R1")]
    assert gifts[0].campaign == "Printemps 2024"
    assert isinstance(plans[0], RecurringPlan) and (plans[0].person_id, plans[0].frequency, plans[0].status) == (
        "0034", "monthly", "active")
    assert isinstance(members[0], Membership) and (members[0].person_id, members[0].season, members[0].fee) == (
        "0032", "2024", 25.0)


def test_ensure_fields_uses_the_tooling_api_once(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        dry = conn.ensure_fields(task="donor_propensity")
        assert dry.counts["create"] == 3 and not any(r["path"].endswith("CustomField") for r in org.requests)
        done = conn.ensure_fields(task="donor_propensity", dry_run=False)
        assert done.counts["create"] == 3 and {"AssocAI_Score__c", "AssocAI_Explanation__c"} <= org.contact_fields
        assert conn.ensure_fields(task="donor_propensity", dry_run=False).counts["unchanged"] == 3


def test_write_scores_dry_run_write_idempotent_consent(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        conn.ensure_fields(task="donor_propensity", dry_run=False)
        dry = conn.write_scores(SCORES)
        assert dry.dry_run and org.patches() == []
        assert {d.record_id: d.action for d in dry.diffs} == {"0031": "create", "0034": "create"}
        assert dry.diffs[0].after["assoc_ai_donor_propensity"] == 0.81
        assert "do_not_profile" in dict(dry.skipped)["0033"]
        done = conn.write_scores(SCORES, dry_run=False)
        assert done.changed == 2 and len(org.patches()) == 2
        camille = org.objects["Contact"][0]
        assert camille["AssocAI_Score__c"] == 0.81 and camille["AssocAI_Explanation__c"] == "Dons fréquents."
        assert "AssocAI_Score__c" not in org.objects["Contact"][2]
        again = conn.write_scores(SCORES, dry_run=False)
    assert again.changed == 0 and len(org.patches()) == 2


def test_expired_session_gets_one_new_token(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        read_pages(conn, "gift")
        org.tokens.clear()
        gifts, _, _ = read_pages(conn, "gift")
    assert len(gifts) == 3
    assert sum(1 for r in org.requests if r["path"] == "/services/oauth2/token") == 2


def test_429_retry_after_and_persistent_throttling(org: FakeSalesforce, cert: tuple[Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with make(org, cert) as conn:
        org.throttle = [1]
        started = time.monotonic()
        assert len(read_pages(conn, "recurring_plan")[0]) == 1
        assert time.monotonic() - started >= 0.95
        for lang, words in (("en", "is throttling"), ("fr", "limite le débit")):
            monkeypatch.setenv("ASSOC_AI_LANG", lang)
            org.throttle = [0, 0, 0]
            with pytest.raises(TransientError, match=words):
                read_pages(conn, "recurring_plan")


@pytest.mark.parametrize("lang, words", [("fr", "refuse l'application connectée"), ("en", "refused the connected app")])
def test_wrong_secret_and_api_errors(org: FakeSalesforce, cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                     lang: str, words: str) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    with pytest.raises(AuthError, match=words):
        make(org, cert, client_secret=Secret("wrong")).open()
    with make(org, cert) as conn, pytest.raises(ConnectorError, match="INVALID_FIELD|No such column"):
        conn.write_scores(SCORES, dry_run=False)  # before ensure_fields: the fields do not exist
