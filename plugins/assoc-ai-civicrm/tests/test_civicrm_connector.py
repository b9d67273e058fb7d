"""The CiviCRM connector, with its real requests/tenacity client, against a loopback API v4 REST server."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from datetime import date
from importlib.metadata import entry_points
from typing import Any

import pytest
from assoc_ai_civicrm import CiviCrmConfig, CiviCrmConnector
from civicrm_fake import API_KEY, SITE_KEY, FakeCiviCRM

from assoc_ai_core.errors import AuthError, CapabilityError, ConfigError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret, build_config
from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.records.people import Gift, Membership, Participation, Person, RecurringPlan, Score, VolunteerHours
from assoc_ai_core.testing.crm import parametrize_crm_checks, read_pages

GROUP = "assoc_ai_scores"


@pytest.fixture()
def site() -> Iterator[tuple[FakeCiviCRM, str]]:
    yield from FakeCiviCRM().serve()


def make(url: str, **overrides: Any) -> CiviCrmConnector:
    values: dict[str, Any] = dict(base_url=url, api_key=Secret(API_KEY), site_key=Secret(SITE_KEY),
                                  max_attempts=3, max_retry_wait=2.0)
    values.update(overrides)
    return CiviCrmConnector(CiviCrmConfig(**values))


read_all = functools.partial(read_pages, page_size=2)


def scores() -> list[Score]:
    return [Score(person_id="101", task="donor_propensity", probability=0.82, explanation="Dons réguliers depuis 2 ans.",
                  model_version="m1"),
            Score(person_id="103", task="donor_propensity", probability=0.40, explanation="Peu d'historique.", model_version="m1"),
            Score(person_id="104", task="donor_propensity", probability=0.67, explanation="Don mensuel actif.", model_version="m1"),
            Score(person_id="999", task="donor_propensity", probability=0.5, explanation="?", model_version="m1")]


@parametrize_crm_checks()
def test_conformance(check: Callable[..., None], site: tuple[FakeCiviCRM, str]) -> None:
    check(lambda: make(site[1]))


def test_plugin_is_found_through_its_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="assoc_ai") if ep.name == "civicrm"]
    assert ep.dist is not None and ep.dist.name == "assoc-ai-civicrm"
    registry = ConnectorRegistry()
    ep.load().register_connectors(registry=registry)
    assert registry.get("civicrm") is CiviCrmConnector


def test_config_from_toml_section(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    key_file = tmp_path / "civi_key"
    key_file.write_text(API_KEY + "\n")
    monkeypatch.setenv("CIVI_SITE_KEY", SITE_KEY)
    config = build_config(CiviCrmConfig, {"base_url": "https://crm.example.org", "api_key": {"file": str(key_file)},
                                          "site_key": {"env": "CIVI_SITE_KEY"}}, where="connectors.civicrm")
    assert config.api_key.get() == API_KEY and config.site_key.get() == SITE_KEY
    assert API_KEY not in repr(config) and SITE_KEY not in repr(config)
    with pytest.raises(ConfigError, match="timezone"):
        CiviCrmConfig(base_url="https://crm.example.org", api_key=Secret("k"), timezone="Mars/Olympus")


def test_building_does_no_io_and_close_twice(site: tuple[FakeCiviCRM, str]) -> None:
    fake, url = site
    conn = make(url)
    assert fake.requests == []
    with conn:
        assert fake.requests[0]["entity"] == "Contact"
    conn.close()


def test_calls_follow_the_api4_rest_protocol(site: tuple[FakeCiviCRM, str]) -> None:
    fake, url = site
    with make(url) as conn:
        read_all(conn, "person")
    call = fake.requests[-1]
    assert call["headers"]["x-civi-auth"] == f"Bearer {API_KEY}"
    assert call["headers"]["x-civi-key"] == SITE_KEY
    assert call["headers"]["x-requested-with"] == "XMLHttpRequest"
    assert call["params"]["limit"] == 2 and "offset" in call["params"]


def test_contacts_are_paged_to_the_end_and_mapped(site: tuple[FakeCiviCRM, str]) -> None:
    fake, url = site
    with make(url) as conn:
        people, cursor, pages = read_all(conn, "person", page_size=2)
    assert pages == 3
    assert [p.source_id for p in people] == ["101", "102", "103", "104", "105"]  # the Organization is not a person
    assert all(isinstance(p, Person) for p in people)
    camille = people[0]
    assert (camille.email, camille.postcode, camille.birth_year) == ("camille.martin@example.org", "75011", 1961)
    assert [p.do_not_profile for p in people] == [False, False, True, False, False]
    assert cursor["modified_after"] == "2024-02-10T16:45:00+00:00"  # Paris wall clock, stored in UTC
    offsets = [r["params"]["offset"] for r in fake.requests if r["entity"] == "Contact" and "offset" in r["params"]]
    assert offsets == [0, 2, 4]


def test_incremental_read_yields_only_modified_contacts(site: tuple[FakeCiviCRM, str]) -> None:
    fake, url = site
    with make(url) as conn:
        _, cursor, _ = read_all(conn, "person")
        assert read_all(conn, "person", cursor)[0] == []
        fake.table("Contact")[1]["modified_date"] = "2024-03-02 08:00:00"
        fake.table("Contact")[1]["address_primary.city"] = "Bagnolet"
        changed, cursor2, _ = read_all(conn, "person", cursor)
        assert [(p.source_id, p.city) for p in changed] == [("102", "Bagnolet")]
        assert read_all(conn, "person", cursor2)[0] == []
    where = [r["params"]["where"] for r in fake.requests if r["entity"] == "Contact" and "where" in r["params"]][-1]
    assert ["modified_date", ">=", "2024-03-02 08:00:00"] in where


def test_gifts_plans_memberships_events_and_volunteering(site: tuple[FakeCiviCRM, str]) -> None:
    _, url = site
    with make(url) as conn:
        gifts, _, _ = read_all(conn, "gift")
        plans, _, _ = read_all(conn, "recurring_plan")
        members, mcursor, _ = read_all(conn, "membership")
        events, _, _ = read_all(conn, "participation")
        hours, _, _ = read_all(conn, "volunteer_hours")
    assert all(isinstance(g, Gift) for g in gifts)
    assert [(g.source_id, g.person_id, g.amount, g.recurring) for g in gifts] == [
        ("201", "101", 50.0, False), ("202", "102", 30.0, False), ("203", "104", 15.0, True),
        ("206", "101", 120.0, False), ("204", "104", 15.0, True)]  # Member Dues (205) is not a gift
    assert gifts[3].campaign == "Printemps 2024"
    assert isinstance(plans[0], RecurringPlan) and (plans[0].frequency, plans[0].status) == ("monthly", "active")
    assert all(isinstance(m, Membership) for m in members)
    # Louis's one membership row holds three seasons (joined 2022, renewed twice); the dues paid in advance in
    # December go to the next season.
    assert [(m.source_id, m.person_id, m.season, m.fee, m.status) for m in members] == [
        ("401-1", "102", "2022", 20.0, "paid"), ("401-2", "102", "2023", 25.0, "paid"),
        ("401-3", "102", "2024", 25.0, "paid"), ("402-1", "105", "2023-2024", 20.0, "paid")]
    assert (members[1].start, members[1].end) == (date(2023, 1, 1), date(2023, 12, 31))
    assert members[2].raw["contribution_ids"] == [213]
    assert mcursor == {"modified_after": "2023-12-20T08:30:00+00:00", "ids_at": ["401-3"]}
    assert isinstance(events[0], Participation) and (events[0].event, events[0].date, events[0].status) == (
        "Fête des voisins", date(2024, 6, 2), "attended")
    assert all(isinstance(h, VolunteerHours) for h in hours)
    assert sorted((h.person_id, h.hours) for h in hours) == [("102", 3.0), ("105", 3.0)]


def test_a_renewal_is_a_new_season_read_incrementally(site: tuple[FakeCiviCRM, str]) -> None:
    fake, url = site
    with make(url) as conn:
        _, cursor, _ = read_all(conn, "membership")
        assert read_all(conn, "membership", cursor)[0] == []
        # Léa renews: CiviCRM moves her membership's end date, logs the change and links the payment.
        fake.table("Membership")[1]["end_date"] = "2025-08-31"
        fake.log_membership(706, 402, "2023-09-01", "2025-08-31", "Current", "2024-08-20 10:00:00")
        fake.table("Contribution").append({**fake.table("Contribution")[0], "id": 214, "contact_id": 105,
                                           "total_amount": "25.00", "receive_date": "2024-08-20 10:00:00",
                                           "financial_type_id:name": "Member Dues"})
        fake.pay_membership(402, 214)
        renewed, cursor2, _ = read_all(conn, "membership", cursor)
        assert [(m.source_id, m.person_id, m.season, m.fee, m.start) for m in renewed] == [
            ("402-2", "105", "2024-2025", 25.0, date(2024, 9, 1))]
        assert read_all(conn, "membership", cursor2)[0] == []
    logs = [r["params"] for r in fake.requests if r["entity"] == "MembershipLog" and r["action"] == "get"]
    assert any(["modified_date", ">=", "2023-12-20 09:30:00"] in p["where"] for p in logs)


def test_site_without_membership_log_reads_memberships_by_id(caplog: pytest.LogCaptureFixture) -> None:
    with contextlib.contextmanager(FakeCiviCRM(absent={"MembershipLog", "MembershipPayment"}).serve)() as (fake, url), \
            make(url) as conn:
        with caplog.at_level("WARNING"):
            members, cursor, _ = read_all(conn, "membership")
        assert [(m.source_id, m.season) for m in members] == [("401", "2022-2024"), ("402", "2023-2024")]
        assert cursor == {"after_id": 402} and "MembershipLog" in caplog.text
        fake.table("Membership").append({"id": 403, "contact_id": 101, "membership_type_id:name": "Individuelle",
                                         "membership_type_id.minimum_fee": "20.00", "status_id:name": "New",
                                         "join_date": "2024-03-01", "start_date": "2024-03-01",
                                         "end_date": "2025-02-28", "is_test": False})
        newer, _, _ = read_all(conn, "membership", cursor)
    assert [(m.source_id, m.season, m.status) for m in newer] == [("403", "2024-2025", "paid")]


def test_older_site_without_modified_dates_reads_by_id() -> None:
    old = FakeCiviCRM(missing={"Participant": {"modified_date"}, "Contribution": {"modified_date"}})
    with contextlib.contextmanager(old.serve)() as (fake, url), make(url) as conn:
        # What the connector must avoid: the API v4 error of an older site.
        with pytest.raises(ConnectorError, match=r"HTTP 500.*Invalid field 'modified_date'"):
            conn.client.call("Participant", "get", {"select": ["id"], "orderBy": {"modified_date": "ASC"}})
        events, cursor, _ = read_all(conn, "participation")
        assert [(e.source_id, e.event) for e in events] == [("501", "Fête des voisins")] and cursor == {"after_id": 501}
        assert read_all(conn, "participation", cursor)[0] == []
        gifts, gift_cursor, _ = read_all(conn, "gift")
        assert [g.source_id for g in gifts] == ["201", "202", "203", "204", "206"] and gift_cursor == {"after_id": 206}
    asked = {r["entity"] for r in fake.requests if r["action"] == "getFields"}
    assert {"Participant", "Contribution"} <= asked


def test_ensure_fields_dry_run_then_real_then_idempotent(site: tuple[FakeCiviCRM, str]) -> None:
    fake, url = site
    with make(url) as conn:
        dry = conn.ensure_fields(task="donor_propensity")
        assert dry.dry_run and dry.counts["create"] == 4 and fake.custom_fields == {}
        assert not fake.writes()
        done = conn.ensure_fields(task="donor_propensity", dry_run=False)
        assert done.counts["create"] == 4
        assert fake.custom_fields[GROUP] == {"assoc_ai_donor_propensity", "assoc_ai_donor_propensity_why",
                                             "assoc_ai_donor_propensity_model"}
        again = conn.ensure_fields(task="donor_propensity", dry_run=False)
        assert again.counts == {"create": 0, "update": 0, "unchanged": 3, "skipped": 0}


def test_write_scores_dry_run_shows_the_diff_and_writes_nothing(site: tuple[FakeCiviCRM, str]) -> None:
    fake, url = site
    with make(url) as conn:
        conn.ensure_fields(task="donor_propensity", dry_run=False)
        before = len(fake.writes())
        report = conn.write_scores(scores())
    assert report.dry_run and len(fake.writes()) == before
    assert fake.table("Note") == []
    diff = {d.record_id: d for d in report.diffs}
    assert set(diff) == {"101", "104"}
    assert diff["101"].action == "create"
    assert diff["101"].after == {"assoc_ai_donor_propensity": 0.82, "assoc_ai_donor_propensity_why": "Dons réguliers depuis 2 ans.",
                                 "assoc_ai_donor_propensity_model": "m1"}
    skipped = dict(report.skipped)
    assert "do_not_profile" in skipped["103"] and "999" in skipped


def test_write_scores_writes_fields_and_one_note_then_is_idempotent(site: tuple[FakeCiviCRM, str]) -> None:
    fake, url = site
    with make(url) as conn:
        conn.ensure_fields(task="donor_propensity", dry_run=False)
        report = conn.write_scores(scores(), dry_run=False)
        assert report.changed == 2
        contact = {c["id"]: c for c in fake.table("Contact")}
        assert contact[101][f"{GROUP}.assoc_ai_donor_propensity"] == 0.82
        assert contact[104][f"{GROUP}.assoc_ai_donor_propensity_why"] == "Don mensuel actif."
        assert f"{GROUP}.assoc_ai_donor_propensity" not in contact[103], "do_not_profile people are never written"
        notes = fake.table("Note")
        assert sorted(n["entity_id"] for n in notes) == [101, 104] and notes[0]["subject"] == "assoc-ai: donor_propensity"
        writes = len(fake.writes())
        again = conn.write_scores(scores(), dry_run=False)
        assert again.changed == 0 and again.counts["unchanged"] == 2
        assert len(fake.writes()) == writes, "an unchanged score must not be written again"
        newer = [Score(person_id="101", task="donor_propensity", probability=0.9, explanation="Nouveau don.", model_version="m2")]
        third = conn.write_scores(newer, dry_run=False)
    assert [d.action for d in third.diffs] == ["update"]
    assert third.diffs[0].before["assoc_ai_donor_propensity"] == 0.82
    assert len(fake.table("Note")) == 2, "the note is updated in place, not duplicated"
    assert "Nouveau don." in next(n for n in fake.table("Note") if n["entity_id"] == 101)["note"]


def test_429_retry_after_is_honoured(site: tuple[FakeCiviCRM, str]) -> None:
    fake, url = site
    with make(url) as conn:
        fake.throttle = [1]
        started = time.monotonic()
        people, _, _ = read_all(conn, "person", page_size=100)
    assert len(people) == 5 and time.monotonic() - started >= 0.95


@pytest.mark.parametrize("lang, words", [("fr", "limite le débit"), ("en", "is throttling")])
def test_persistent_429_is_a_transient_error(site: tuple[FakeCiviCRM, str], monkeypatch: pytest.MonkeyPatch,
                                             lang: str, words: str) -> None:
    fake, url = site
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    fake.throttle = [0, 0, 0]
    with pytest.raises(TransientError, match=words):
        read_all(make(url), "person")


@pytest.mark.parametrize("lang, words", [("fr", "refuse la clé d'API"), ("en", "refused the API key")])
def test_wrong_key_is_an_auth_error(site: tuple[FakeCiviCRM, str], monkeypatch: pytest.MonkeyPatch,
                                    lang: str, words: str) -> None:
    _, url = site
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    conn = make(url, api_key=Secret("expired-or-revoked"))
    with pytest.raises(AuthError, match=words):
        conn.open()
    conn.close()


def test_api_errors_and_wrong_path_surface_as_connector_errors(site: tuple[FakeCiviCRM, str]) -> None:
    _, url = site
    with make(url) as conn:
        # Writing before ensure_fields: CiviCRM rejects the unknown custom fields.
        with pytest.raises(ConnectorError, match="Invalid field"):
            conn.write_scores(scores(), dry_run=False)
        with pytest.raises(CapabilityError):
            read_all(conn, "volunteer_mission")
    with pytest.raises(ConnectorError, match="api_path"):
        make(url, api_path="/wrong/path").open()
