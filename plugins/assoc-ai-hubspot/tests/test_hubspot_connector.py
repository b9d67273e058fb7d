"""The HubSpot connector with the real hubspot-api-client, against a loopback HubSpot CRM API."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from assoc_ai_hubspot import HubSpotConfig, HubSpotConnector
from assoc_ai_hubspot.connector import LIST_KEY
from hubspot_fake import TOKEN, FakeHubSpot
from hubspot_portal import DONATIONS_PIPELINE, MEMBERSHIPS, PLEDGED, RECEIVED

from assoc_ai_core.errors import AuthError, CapabilityError, ConfigError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret, build_config
from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.records.people import Gift, Membership, Person, Score
from assoc_ai_core.testing.crm import parametrize_crm_checks, read_pages
from assoc_ai_core.testing.loopback import make_cert

GIFT = {"object": "deals", "pipeline": DONATIONS_PIPELINE, "stages": [RECEIVED], "campaign": "campagne",
        "recurring": "don_mensuel", "association_label": "Donateur"}
MEMBERSHIP = {"object": MEMBERSHIPS, "season": "saison", "fee": "cotisation", "start": "date_debut",
              "end": "date_fin", "status": "statut"}
SCORES = [Score(person_id="101", task="donor_propensity", probability=0.81, explanation="Dons fréquents.",
                model_version="m1"),
          Score(person_id="103", task="donor_propensity", probability=0.3, explanation="?", model_version="m1"),
          Score(person_id="104", task="donor_propensity", probability=0.66, explanation="Don mensuel.",
                model_version="m1"),
          Score(person_id="999", task="donor_propensity", probability=0.5, explanation="?", model_version="m1")]


def serve(fake: FakeHubSpot, tls: tuple[Path, Path] | None = None) -> Iterator[FakeHubSpot]:
    with fake.running(tls):
        yield fake


@pytest.fixture()
def portal() -> Iterator[FakeHubSpot]:
    fake = FakeHubSpot()
    fake.seed()
    yield from serve(fake)


@pytest.fixture()
def empty_portal() -> Iterator[FakeHubSpot]:
    """A portal where nobody has created the assoc-ai properties yet (not even the consent checkbox)."""
    fake = FakeHubSpot()
    fake.seed(consent_property=False)
    yield from serve(fake)


def make(fake: FakeHubSpot, **overrides: Any) -> HubSpotConnector:
    values: dict[str, Any] = dict(access_token=Secret(TOKEN), base_url=fake.base, gift=GIFT, membership=MEMBERSHIP,
                                  max_attempts=3, max_retry_wait=2.0)
    values.update(overrides)
    return HubSpotConnector(HubSpotConfig(**values))


read_all = functools.partial(read_pages, page_size=100)


@parametrize_crm_checks()
def test_conformance(check: Callable[..., None], portal: FakeHubSpot) -> None:
    check(lambda: make(portal))


def test_entry_point_and_configuration_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    (ep,) = [ep for ep in entry_points(group="assoc_ai") if ep.name == "hubspot"]
    registry = ConnectorRegistry()
    ep.load().register_connectors(registry=registry)
    assert registry.get("hubspot") is HubSpotConnector
    monkeypatch.setenv("TEST_HUBSPOT_TOKEN", "pat-from-env")
    config = build_config(HubSpotConfig, {"access_token": {"env": "TEST_HUBSPOT_TOKEN"}, "gift": GIFT},
                          where="connectors.hubspot")
    assert config.access_token.get() == "pat-from-env" and "pat-from-env" not in repr(config)
    conn = HubSpotConnector(config)
    assert conn.record_types == {"person", "gift"}  # built without I/O; no membership mapping
    for lang, words in (("fr", "doit être une adresse https"), ("en", "must be an https:// address")):
        monkeypatch.setenv("ASSOC_AI_LANG", lang)
        with pytest.raises(ConfigError, match=words):
            HubSpotConfig(access_token=Secret("x"), base_url="http://api.hubapi.com")
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    with pytest.raises(ConfigError, match="pipeline"):
        HubSpotConfig(access_token=Secret("x"), gift={"object": "deals"})
    with pytest.raises(ConfigError, match="inconnue.*montant"):
        HubSpotConfig(access_token=Secret("x"), membership={"object": MEMBERSHIPS, "montant": "x"})
    with pytest.raises(ConfigError, match="field_prefix"):
        HubSpotConfig(access_token=Secret("x"), field_prefix="AssocAI")
    with pytest.raises(ConfigError, match="date"):
        HubSpotConfig(access_token=Secret("x"), gift={"object": "p_dons", "amount": "montant"})


def test_full_read_follows_after_to_the_end(portal: FakeHubSpot) -> None:
    with make(portal) as conn:
        people, cursor, pages = read_all(conn, "person", page_size=2)
    assert pages == 3 and [p.source_id for p in people] == ["101", "102", "103", "104", "105"]
    assert all(isinstance(p, Person) for p in people)
    assert [p.do_not_profile for p in people] == [False, False, True, False, False]
    camille = people[0]
    assert (camille.first_name, camille.email, camille.postcode, camille.city, camille.birth_year) == (
        "Camille", "camille.martin@example.org", "75011", "Paris", 1961)
    lists = portal.calls("GET", "/crm/v3/objects/contacts")
    assert len(lists) == 3 and "after" not in lists[0]["query"] and lists[1]["query"]["after"]
    assert {"email", "zip", "assoc_ai_do_not_profile"} <= set(lists[0]["query"]["properties"])
    assert cursor == {"modified_after": "2024-02-01T09:00:00+00:00", "ids_at": ["104", "105"]}


def test_unfinished_full_read_resumes_where_it_stopped(portal: FakeHubSpot) -> None:
    with make(portal) as conn:
        _, complete, _ = read_all(conn, "person", page_size=2)
        first = next(iter(conn.iter_records("person", None, page_size=2)))
        assert LIST_KEY in first.cursor and "modified_after" not in first.cursor  # never an incremental mark yet
        rest, cursor, _ = read_all(conn, "person", dict(first.cursor), page_size=2)
    assert [p.source_id for p in first.records] + [p.source_id for p in rest] == ["101", "102", "103", "104", "105"]
    assert cursor == complete


def test_full_read_cursor_never_passes_its_start(portal: FakeHubSpot) -> None:
    portal.touch("contacts", "104", "2099-01-01T00:00:00")  # a clock far ahead: a change "during" the walk
    with make(portal) as conn:
        _, cursor, _ = read_all(conn, "person")
    assert cursor["ids_at"] == [] and cursor["modified_after"] < "2099"


def test_incremental_read_searches_lastmodifieddate(portal: FakeHubSpot) -> None:
    with make(portal) as conn:
        _, cursor, _ = read_all(conn, "person")
        assert read_all(conn, "person", cursor)[0] == []
        portal.touch("contacts", "102", "2024-03-02T08:00:00", city="Bagnolet")
        changed, cursor2, _ = read_all(conn, "person", cursor)
        assert read_all(conn, "person", cursor2)[0] == []
    assert [(p.source_id, p.city) for p in changed] == [("102", "Bagnolet")]
    body = portal.calls("POST", "/crm/v3/objects/contacts/search")[-1]["body"]
    (group,) = body["filterGroups"]
    since = group["filters"][0]
    assert (since["propertyName"], since["operator"], since["value"]) == (
        "lastmodifieddate", "GTE", str(int(datetime(2024, 3, 2, 8, tzinfo=UTC).timestamp() * 1000)))
    assert body["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert cursor2 == {"modified_after": "2024-03-02T08:00:00+00:00", "ids_at": ["102"]}


def test_incremental_read_reanchors_and_steps_through_one_instant(portal: FakeHubSpot) -> None:
    with make(portal) as conn:
        _, cursor, _ = read_all(conn, "person")
        for i, cid in enumerate(["105", "101", "103", "102", "104"]):
            portal.touch("contacts", cid, f"2024-03-0{i + 2}T08:00:00")
        spread, cursor2, _ = read_all(conn, "person", cursor, page_size=2)
        searches = portal.calls("POST", "/crm/v3/objects/contacts/search")
        assert all(not s["body"].get("after") for s in searches[1:])  # re-anchored on the date, no deep offsets
        for cid in ["101", "102", "103", "104", "105"]:
            portal.touch("contacts", cid, "2024-04-01T08:00:00")  # one bulk update: five records, one instant
        same, cursor3, _ = read_all(conn, "person", cursor2, page_size=2)
    assert [p.source_id for p in spread] == ["105", "101", "103", "102", "104"]
    assert sorted(p.source_id for p in same) == ["101", "102", "103", "104", "105"]  # each exactly once
    assert cursor3 == {"modified_after": "2024-04-01T08:00:00+00:00", "ids_at": ["101", "102", "103", "104", "105"]}


def test_gifts_are_deals_of_the_donation_pipeline(portal: FakeHubSpot) -> None:
    with make(portal) as conn:
        gifts, cursor, _ = read_all(conn, "gift", page_size=4)
        assert all(isinstance(g, Gift) for g in gifts)
        assert [(g.source_id, g.person_id, g.amount, g.recurring) for g in gifts] == [
            ("9001", "101", 50.0, False), ("9002", "105", 30.0, False), ("9005", "104", 15.0, True)]
        assert gifts[0].campaign == "Printemps 2024" and gifts[0].currency == "EUR"
        assert str(gifts[0].date) == "2024-01-06"
        assert portal.calls("POST", "/crm/v4/associations/deals/contacts/batch/read")
        portal.touch("deals", "9003", "2024-03-03T10:00:00", dealstage=RECEIVED)  # the pledge is paid
        portal.touch("deals", "9004", "2024-03-03T11:00:00", amount="6000")      # a sales deal, not a gift
        new, _, _ = read_all(conn, "gift", cursor)
    assert [(g.source_id, g.person_id, g.amount) for g in new] == [("9003", "104", 100.0)]
    filters = portal.calls("POST", "/crm/v3/objects/deals/search")[-1]["body"]["filterGroups"][0]["filters"]
    assert {"propertyName": "pipeline", "operator": "EQ", "value": DONATIONS_PIPELINE} in filters
    assert {"propertyName": "dealstage", "operator": "IN", "values": [RECEIVED]} in filters
    assert PLEDGED not in str(filters)


def test_gift_owner_without_label_is_the_lowest_contact_id(portal: FakeHubSpot) -> None:
    with make(portal, gift={**GIFT, "association_label": ""}) as conn:
        gifts, _, _ = read_all(conn, "gift")
    assert {g.source_id: g.person_id for g in gifts}["9002"] == "102"


def test_memberships_from_a_custom_object(portal: FakeHubSpot) -> None:
    with make(portal) as conn:
        members, cursor, _ = read_all(conn, "membership", page_size=1000)  # hosts ask for more than HubSpot serves
        portal.touch(MEMBERSHIPS, "7002", "2024-03-05T10:00:00", statut="Remboursée")
        changed, _, _ = read_all(conn, "membership", cursor, page_size=1000)
    assert [(x.source_id, x.status) for x in changed] == [("7002", "remboursée")]
    assert portal.calls("GET", f"/crm/v3/objects/{MEMBERSHIPS}")[0]["query"]["limit"] == ["100"]
    assert portal.calls("POST", f"/crm/v3/objects/{MEMBERSHIPS}/search")[0]["body"]["limit"] == 200
    assert all(isinstance(x, Membership) for x in members)
    assert [(x.source_id, x.person_id, x.season, x.fee, x.status, str(x.start), str(x.end)) for x in members] == [
        ("7001", "102", "2024", 25.0, "payée", "2024-01-01", "2024-12-31"),
        ("7002", "101", "2023-2024", 20.0, "payée", "2023-09-01", "2024-08-31")]
    assert portal.calls("GET", f"/crm/v3/objects/{MEMBERSHIPS}")


@pytest.mark.parametrize("lang, words", [("fr", "pas d'objet « membership » natif"),
                                         ("en", "no native 'membership' object")])
def test_unmapped_record_type_says_what_to_configure(portal: FakeHubSpot, monkeypatch: pytest.MonkeyPatch,
                                                     lang: str, words: str) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    with make(portal, membership=None) as conn:
        assert conn.record_types == {"person", "gift"}
        with pytest.raises(CapabilityError, match=words):
            list(conn.iter_records("membership"))


def test_consent_property_is_required_then_created(empty_portal: FakeHubSpot, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = empty_portal
    with make(fake) as conn:
        for lang, words in (("fr", "refus du profilage"), ("en", "objection to profiling")):
            monkeypatch.setenv("ASSOC_AI_LANG", lang)
            with pytest.raises(ConfigError, match=words):
                list(conn.iter_records("person"))
            with pytest.raises(ConfigError, match=words):
                conn.write_scores(SCORES)
        assert not fake.calls("GET", "/crm/v3/objects/contacts")  # nobody was read
        dry = conn.ensure_fields(task="donor_propensity")
        assert dry.dry_run and not fake.calls("POST", "/crm/v3/properties")
        assert {d.record_id: d.action for d in dry.diffs} == {
            "contacts.groups.assoc_ai": "create", "contacts.assoc_ai_donor_propensity": "create",
            "contacts.assoc_ai_donor_propensity_why": "create", "contacts.assoc_ai_donor_propensity_model": "create",
            "contacts.assoc_ai_do_not_profile": "create"}
        done = conn.ensure_fields(task="donor_propensity", dry_run=False)
        assert done.counts["create"] == 5 and len(fake.calls("POST", "/crm/v3/properties/contacts")) == 5
        created = fake.properties["contacts"]
        assert (created["assoc_ai_donor_propensity"]["type"], created["assoc_ai_do_not_profile"]["fieldType"]) == (
            "number", "booleancheckbox")
        assert {created[n]["groupName"] for n in created if n.startswith("assoc_ai")} == {"assoc_ai"}
        again = conn.ensure_fields(task="donor_propensity", dry_run=False)
        assert again.counts == {"create": 0, "update": 0, "unchanged": 4, "skipped": 0}
        assert len(fake.calls("POST", "/crm/v3/properties/contacts")) == 5
        assert len(read_all(conn, "person")[0]) == 5  # readable now that objections can be seen


def test_write_scores_dry_run_then_idempotent_write(portal: FakeHubSpot) -> None:
    with make(portal) as conn:
        conn.ensure_fields(task="donor_propensity", dry_run=False)
        dry = conn.write_scores(SCORES)
        assert dry.dry_run and not portal.calls("POST", "/batch/update")
        assert {d.record_id: d.action for d in dry.diffs} == {"101": "create", "104": "create"}
        assert dry.diffs[0].after == {"assoc_ai_donor_propensity": 0.81,
                                      "assoc_ai_donor_propensity_why": "Dons fréquents.",
                                      "assoc_ai_donor_propensity_model": "m1"}
        skipped = dict(dry.skipped)
        assert "do_not_profile" in skipped["103"] and "999" in skipped
        assert portal.objects["contacts"]["101"]["properties"].get("assoc_ai_donor_propensity") is None
        done = conn.write_scores(SCORES, dry_run=False)
        assert done.changed == 2 and not done.dry_run
        (update,) = portal.calls("POST", "/crm/v3/objects/contacts/batch/update")
        assert sorted(i["id"] for i in update["body"]["inputs"]) == ["101", "104"]
        camille = portal.objects["contacts"]["101"]["properties"]
        assert (camille["assoc_ai_donor_propensity"], camille["assoc_ai_donor_propensity_why"]) == (
            "0.81", "Dons fréquents.")
        assert "assoc_ai_donor_propensity" not in portal.objects["contacts"]["103"]["properties"]
        again = conn.write_scores(SCORES, dry_run=False)
        assert again.changed == 0 and again.counts["unchanged"] == 2
        assert len(portal.calls("POST", "/crm/v3/objects/contacts/batch/update")) == 1
        moved = conn.write_scores([Score(person_id="104", task="donor_propensity", probability=0.7,
                                         explanation="Don mensuel.", model_version="m2")], dry_run=False)
    assert [(d.record_id, d.action, d.before["assoc_ai_donor_propensity"]) for d in moved.diffs] == [
        ("104", "update", "0.66")]
    assert portal.objects["contacts"]["104"]["properties"]["assoc_ai_donor_propensity_model"] == "m2"


def test_write_before_the_fields_exist_is_a_clear_error(portal: FakeHubSpot) -> None:
    with make(portal) as conn, pytest.raises(ConnectorError, match="ensure_fields"):
        conn.write_scores(SCORES, dry_run=False)


def test_429_retry_after_is_honoured_then_gives_up(portal: FakeHubSpot, monkeypatch: pytest.MonkeyPatch) -> None:
    with make(portal) as conn:
        portal.throttle = [("1", "TEN_SECONDLY_ROLLING")]
        started = time.monotonic()
        assert len(read_all(conn, "person")[0]) == 5
        assert time.monotonic() - started >= 0.95
        for lang, words in (("fr", "limite le débit"), ("en", "is throttling")):
            monkeypatch.setenv("ASSOC_AI_LANG", lang)
            portal.throttle = [("0", "TEN_SECONDLY_ROLLING")] * 3
            before = len(portal.requests)
            with pytest.raises(TransientError, match=words):
                read_all(conn, "membership")
            assert len(portal.requests) - before == 3  # max_attempts, then the error
        monkeypatch.setenv("ASSOC_AI_LANG", "en")
        portal.throttle = [(None, "DAILY")] * 3
        before = len(portal.requests)
        with pytest.raises(TransientError, match="daily"):
            read_all(conn, "membership")
        assert len(portal.requests) - before == 1  # no point retrying a daily quota


@pytest.mark.parametrize("lang, words", [("fr", "ne se renouvelle pas"), ("en", "does not refresh")])
def test_refused_or_expired_token_is_an_auth_error(portal: FakeHubSpot, monkeypatch: pytest.MonkeyPatch,
                                                   lang: str, words: str) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    with pytest.raises(AuthError, match=words) as info:
        make(portal, access_token=Secret("pat-eu1-wrong")).open()
    assert "INVALID_AUTHENTICATION" in str(info.value) and info.value.exit_code == 3
    assert len(portal.requests) == 1  # refused once, not retried
    with make(portal) as conn:
        pages = conn.iter_records("person", None, page_size=2)
        next(pages)
        portal.expired.add(TOKEN)  # the token stops working mid-read
        with pytest.raises(AuthError, match="EXPIRED_AUTHENTICATION"):
            next(pages)


@pytest.mark.parametrize("lang, words", [("fr", "Ajoutez-lui la ou les portées"), ("en", "Grant it the scope")])
def test_missing_scope_names_the_scope(portal: FakeHubSpot, monkeypatch: pytest.MonkeyPatch,
                                       lang: str, words: str) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    portal.tokens["pat-read-only"] = frozenset({"crm.objects.contacts.read", "crm.schemas.contacts.read"})
    portal.properties["contacts"]["assoc_ai_donor_propensity"] = dict(
        portal.properties["contacts"]["email"], name="assoc_ai_donor_propensity")
    with make(portal, access_token=Secret("pat-read-only")) as conn:
        assert len(read_all(conn, "person")[0]) == 5
        assert conn.write_scores(SCORES).changed == 2  # a dry run only reads
        with pytest.raises(AuthError, match=f"{words}.*crm.objects.contacts.write"):
            conn.write_scores(SCORES, dry_run=False)


def test_personal_data_never_reaches_the_logs(portal: FakeHubSpot, caplog: pytest.LogCaptureFixture) -> None:
    with make(portal) as conn:
        conn.open()  # the client exists now, and has put its loggers at WARNING
        rest = logging.getLogger("hubspot.crm.objects.rest")
        with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger=rest.name):
            assert rest.isEnabledFor(logging.DEBUG)  # a host debugging HTTP: the client would echo bodies
            people, _, _ = read_all(conn, "person")
    assert len(people) == 5
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "camille.martin@example.org" not in text and "Dubois" not in text


def test_tls_is_verified(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "hubspot")
    fake = FakeHubSpot()
    fake.seed()
    for served in serve(fake, cert):
        with pytest.raises(ConnectorError, match="TLS"):
            make(served).open()  # the system CAs do not know the test certificate
        with make(served, verify_tls=str(cert[0])) as conn:
            assert len(read_all(conn, "membership")[0]) == 2
