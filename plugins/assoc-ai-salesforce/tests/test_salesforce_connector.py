"""The Salesforce NPSP connector, with real simple-salesforce over TLS, against a loopback Salesforce REST API."""

from __future__ import annotations

import json
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


def queries(org: FakeSalesforce) -> list[str]:
    return [r["query"]["q"][0] for r in org.requests if r["path"].rstrip("/").endswith("/query")]


def test_npsp_gifts_are_the_paid_payments(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        gifts, _, _ = read_pages(conn, "gift")
        plans, _, _ = read_pages(conn, "recurring_plan")
        members, _, _ = read_pages(conn, "membership")
    assert all(isinstance(g, Gift) for g in gifts)
    # The pledge 0065 (not won) was paid twice out of three: two gifts; the unpaid instalment is none.
    assert [(g.source_id, g.person_id, g.amount, g.date.isoformat(), g.recurring, g.plan_id) for g in gifts] == [
        ("a011", "0031", 50.0, "2024-01-06", False, ""), ("a012", "0032", 30.0, "2024-01-07", False, ""),
        ("a015", "0031", 30.0, "2024-01-31", False, ""), ("a013", "0034", 15.0, "2024-02-05", True, "a0R1"),
        ("a016", "0031", 30.0, "2024-02-29", False, "")]
    assert gifts[0].campaign == "Printemps 2024" and gifts[1].payment_method == "Check"
    assert gifts[2].raw["opportunity"] == "0065" and {g.currency for g in gifts} == {"EUR"}
    assert any("FROM npe01__OppPayment__c" in q and "npe01__Paid__c = true" in q for q in queries(org))
    assert isinstance(plans[0], RecurringPlan) and (plans[0].person_id, plans[0].frequency, plans[0].status) == (
        "0034", "monthly", "active")
    assert isinstance(members[0], Membership) and (members[0].person_id, members[0].season, members[0].fee) == (
        "0032", "2024", 25.0)


def test_gifts_from_opportunities_without_payments(cert: tuple[Path, Path]) -> None:
    fake = FakeSalesforce(payments=False)
    fake.seed()
    with fake.running(cert), make(fake, cert) as conn:
        gifts, _, _ = read_pages(conn, "gift")
    assert [(g.source_id, g.person_id, g.amount, g.recurring, g.plan_id) for g in gifts] == [
        ("0061", "0031", 50.0, False, ""), ("0062", "0032", 30.0, False, ""), ("0063", "0034", 15.0, True, "a0R1")]


def test_single_currency_org_is_read_without_currencyisocode(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        gifts, _, _ = read_pages(conn, "gift")
        members, _, _ = read_pages(conn, "membership")
    assert gifts and all(g.currency == "EUR" for g in gifts) and members[0].currency == "EUR"
    assert not any("CurrencyIsoCode" in q for q in queries(org) if "Organization" not in q)
    # What the connector avoided: the org answers the real INVALID_FIELD error.
    with make(org, cert, gifts_from="opportunities") as conn:
        body = conn.client.call(lambda sf: sf.restful("sobjects/Opportunity/describe"), "describe")
        assert "CurrencyIsoCode" not in {f["name"] for f in body["fields"]}
        with pytest.raises(ConnectorError, match=r"INVALID_FIELD \n.*\n *\^\nERROR at Row:1:Column:12\nNo such column 'CurrencyIsoCode'"):
            conn.client.call(lambda sf: sf.query("SELECT Id, CurrencyIsoCode FROM Opportunity"), "SOQL")


def test_multi_currency_org_reads_each_record_currency(cert: tuple[Path, Path]) -> None:
    fake = FakeSalesforce(multi_currency=True)
    fake.seed()
    fake.objects["npe01__OppPayment__c"][1]["CurrencyIsoCode"] = "CHF"
    with fake.running(cert), make(fake, cert) as conn:
        gifts, _, _ = read_pages(conn, "gift")
    assert [g.currency for g in gifts][:2] == ["EUR", "CHF"]
    assert any("CurrencyIsoCode" in q and "npe01__OppPayment__c" in q for q in queries(fake))


def test_org_without_privacy_objects_reads_people_and_refuses_to_write(cert: tuple[Path, Path],
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeSalesforce(privacy=False)
    fake.seed()
    with fake.running(cert), make(fake, cert) as conn:
        with caplog.at_level("WARNING"):
            people, _, _ = read_pages(conn, "person")
        assert [p.source_id for p in people] == ["0031", "0032", "0033", "0034"]
        assert "Data Protection and Privacy" in caplog.text or "Protection des données" in caplog.text
        assert not any("Individual" in q for q in queries(fake))
        conn.ensure_fields(task="donor_propensity", dry_run=False)
        with pytest.raises(ConfigError, match="do_not_profile_field"):
            conn.write_scores(SCORES, dry_run=False)
        # What the connector avoided: the org answers the real INVALID_FIELD error.
        with pytest.raises(ConnectorError, match=r"INVALID_FIELD [\s\S]*Didn't understand relationship 'Individual'"):
            conn.client.call(lambda sf: sf.query("SELECT Id, Individual.HasOptedOutProfiling FROM Contact"), "SOQL")
    assert fake.patches() == []


def test_ensure_fields_creates_then_grants_field_level_security(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        dry = conn.ensure_fields(task="donor_propensity")
        assert dry.counts["create"] == 3 and not any(r["path"].endswith("CustomField") for r in org.requests)
        done = conn.ensure_fields(task="donor_propensity", dry_run=False)
        assert done.counts["create"] == 3 and set(FIELD_MAP.values()) <= org.visible_fields()
        (pset,) = org.objects["PermissionSet"]
        assert pset["Name"] == "AssocAI_Scores"
        assert org.objects["PermissionSetAssignment"] == [
            {"Id": "Per000000000001", "PermissionSetId": pset["Id"], "AssigneeId": org.user_id}]
        grants = {fp["Field"]: (fp["PermissionsRead"], fp["PermissionsEdit"]) for fp in org.objects["FieldPermissions"]}
        assert grants == {f"Contact.{n}": (True, True) for n in FIELD_MAP.values()}
        assert conn.ensure_fields(task="donor_propensity", dry_run=False).counts["unchanged"] == 3


def test_ensure_fields_finishes_what_an_earlier_run_left_unseen(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    org.tooling_fields |= set(FIELD_MAP.values())  # created, but no field-level security yet
    with make(org, cert) as conn:
        report = conn.ensure_fields(task="donor_propensity", dry_run=False)
        assert report.counts["create"] == 3 and set(FIELD_MAP.values()) <= org.visible_fields()
        assert conn.write_scores(SCORES, dry_run=False).changed == 2


def test_write_scores_dry_run_write_idempotent_consent(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        conn.ensure_fields(task="donor_propensity", dry_run=False)
        dry = conn.write_scores(SCORES)
        assert dry.dry_run and org.patches() == []
        assert {d.record_id: d.action for d in dry.diffs} == {"0031": "create", "0034": "create"}
        assert dry.diffs[0].after["assoc_ai_donor_propensity"] == 0.81
        assert "do_not_profile" in dict(dry.skipped)["0033"]
        done = conn.write_scores(SCORES, dry_run=False)
        assert done.changed == 2 and [r["path"] for r in org.patches()] == ["/services/data/v59.0/composite/sobjects"]
        camille = org.objects["Contact"][0]
        assert camille["AssocAI_Score__c"] == 0.81 and camille["AssocAI_Explanation__c"] == "Dons fréquents."
        assert "AssocAI_Score__c" not in org.objects["Contact"][2]
        again = conn.write_scores(SCORES, dry_run=False)
    assert again.changed == 0 and len(org.patches()) == 1


def test_scores_go_200_contacts_a_request(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    for n in range(450):
        org.objects["Contact"].append({**org.objects["Contact"][0], "Id": f"003X{n:04d}",
                                       "Individual.HasOptedOutProfiling": False})
    many = [Score(person_id=f"003X{n:04d}", task="donor_propensity", probability=0.5, explanation="x", model_version="m1")
            for n in range(450)]
    with make(org, cert) as conn:
        conn.ensure_fields(task="donor_propensity", dry_run=False)
        assert conn.write_scores(many, dry_run=False).changed == 450
    sizes = [len(json.loads(r["body"])["records"]) for r in org.patches()]
    assert sizes == [200, 200, 50]
    assert all(c.get("AssocAI_Score__c") == 0.5 for c in org.objects["Contact"][4:])


def test_collection_limit_and_rejected_records_are_reported(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        too_many = {"allOrNone": False, "records": [{"attributes": {"type": "Contact"}, "id": "0031"}] * 201}
        with pytest.raises(ConnectorError, match="EXCEEDED_ID_LIMIT"):
            conn.client.call(lambda sf: sf.restful("composite/sobjects", method="PATCH", json=too_many), "collection")
        conn.ensure_fields(task="donor_propensity", dry_run=False)
        fp = next(f for f in org.objects["FieldPermissions"] if f["Field"] == "Contact.AssocAI_Score__c")
        fp["PermissionsEdit"] = False  # an administrator took edit access away
        with pytest.raises(ConnectorError, match="INVALID_FIELD_FOR_INSERT_UPDATE"):
            conn.write_scores(SCORES, dry_run=False)


def test_expired_session_gets_one_new_token(org: FakeSalesforce, cert: tuple[Path, Path]) -> None:
    with make(org, cert) as conn:
        read_pages(conn, "gift")
        org.tokens.clear()
        gifts, _, _ = read_pages(conn, "gift")
    assert len(gifts) == 5
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
