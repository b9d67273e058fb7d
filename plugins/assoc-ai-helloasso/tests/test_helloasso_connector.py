"""The HelloAsso connector, with its real requests/tenacity client, against a loopback HelloAsso v5 server."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from importlib.metadata import entry_points
from typing import Any

import pytest
from assoc_ai_helloasso import HelloAssoConfig, HelloAssoConnector
from helloasso_fake import CLIENT_ID, CLIENT_SECRET, ORG, T0, FakeHelloAsso

from assoc_ai_core.errors import AuthError, CapabilityError, ConfigError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret, build_config
from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.plugins import describe_connector
from assoc_ai_core.records.people import Gift, Membership, Participation, Person, RecurringPlan, Score
from assoc_ai_core.testing.crm import parametrize_crm_checks, read_pages


@pytest.fixture()
def api() -> Iterator[tuple[FakeHelloAsso, str]]:
    yield from FakeHelloAsso().serve()


def make(url: str, **overrides: Any) -> HelloAssoConnector:
    values: dict[str, Any] = dict(organization_slug=ORG, client_id=CLIENT_ID, client_secret=Secret(CLIENT_SECRET),
                                  api_url=url, max_attempts=3, max_retry_wait=2.0)
    values.update(overrides)
    return HelloAssoConnector(HelloAssoConfig(**values))


read_all = functools.partial(read_pages, page_size=2, allow_empty_pages=False)


@parametrize_crm_checks()
def test_conformance(check: Callable[..., None], api: tuple[FakeHelloAsso, str]) -> None:
    """HelloAsso is read-only: the write checks are skipped, the refusal of writes is checked."""
    check(lambda: make(api[1]))


def test_plugin_is_found_through_its_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="assoc_ai") if ep.name == "helloasso"]
    assert ep.dist is not None and ep.dist.name == "assoc-ai-helloasso"
    registry = ConnectorRegistry()
    ep.load().register_connectors(registry=registry)
    assert registry.get("helloasso") is HelloAssoConnector
    assert describe_connector(HelloAssoConnector)["config"][2] == {"name": "client_secret", "secret": True, "required": True}


def test_config_from_toml_section_keeps_the_secret_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HA_SECRET", CLIENT_SECRET)
    config = build_config(HelloAssoConfig, {"organization_slug": ORG, "client_id": CLIENT_ID,
                                            "client_secret": {"env": "HA_SECRET"}}, where="connectors.helloasso")
    assert isinstance(config.client_secret, Secret) and config.client_secret.get() == CLIENT_SECRET
    assert CLIENT_SECRET not in repr(config)
    assert config.api_url == "https://api.helloasso.com" and config.verify_tls is True


@pytest.mark.parametrize("lang, words", [("fr", "doit être une adresse https"), ("en", "must be an https")])
def test_plain_http_to_a_remote_host_is_refused(monkeypatch: pytest.MonkeyPatch, lang: str, words: str) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    with pytest.raises(ConfigError, match=words):
        HelloAssoConfig(organization_slug=ORG, client_id="x", client_secret=Secret("y"), api_url="http://api.helloasso.com")


def test_building_does_no_io_and_close_is_safe_twice(api: tuple[FakeHelloAsso, str]) -> None:
    fake, url = api
    conn = make(url)
    assert fake.requests == []
    conn.close()
    with conn:
        assert fake.requests and fake.requests[-1]["path"] == "/oauth2/token"
    conn.close()


def test_gifts_follow_every_page_and_map_amounts(api: tuple[FakeHelloAsso, str]) -> None:
    fake, url = api
    with make(url) as conn:
        gifts, _, pages = read_all(conn, "gift", page_size=2)
    # 9 payments: 7 hold a donation and were paid (the Refused one is not a gift), 2 hold none.
    assert pages >= 3
    assert all(isinstance(g, Gift) for g in gifts)
    by_amount = sorted(g.amount for g in gifts)
    assert by_amount == [10.0, 15.0, 30.0, 50.0, 120.0]
    assert {g.person_id for g in gifts} == {"camille.martin@example.org", "louis.bernard@example.net",
                                            "ines.dubois@example.com", "hugo.thomas@example.org"}
    monthly = [g for g in gifts if g.recurring]
    assert len(monthly) == 1 and monthly[0].plan_id and monthly[0].amount == 15.0
    cash = next(g for g in gifts if g.amount == 120.0)
    assert cash.payment_method == "Cash" and cash.campaign == "dons-libres"
    tokens = [r for r in fake.requests if r["path"].endswith("/payments") and "continuationToken" in r["query"]]
    assert len(tokens) >= 2, "the continuation token must be followed"


def test_incremental_gifts_only_return_what_changed(api: tuple[FakeHelloAsso, str]) -> None:
    fake, url = api
    with make(url) as conn:
        first, cursor, _ = read_all(conn, "gift")
        again, cursor2, pages = read_all(conn, "gift", cursor)
        assert again == [] and pages == 0 and cursor2 == cursor
        # A refund of an old donation and a new donation happen after the first run.
        later = T0 + timedelta(days=90)
        old_payment = fake.orders[0]["payments"][0]
        fake.touch(old_payment, later, state="Refunded")
        fake.add_order(5, "dons-libres", [("Donation", "Don", 4200)], later + timedelta(hours=1))
        changed, cursor3, _ = read_all(conn, "gift", cursor)
    assert len(first) == 5
    assert [(g.source_id, g.amount) for g in changed] == [(str(old_payment["id"]), 0.0), (changed[1].source_id, 42.0)]
    assert changed[0].raw["state"] == "Refunded"
    assert cursor3["modified_after"] > cursor["modified_after"]


def test_incremental_persons_use_the_order_date_filter(api: tuple[FakeHelloAsso, str]) -> None:
    fake, url = api
    with make(url) as conn:
        people, cursor, _ = read_all(conn, "person", page_size=3)
        assert all(isinstance(p, Person) for p in people)
        assert {p.source_id for p in people} == {"camille.martin@example.org", "louis.bernard@example.net",
                                                 "ines.dubois@example.com", "hugo.thomas@example.org",
                                                 "lea.robert@example.fr", "nora.haddad@example.org"}
        louis = next(p for p in people if p.last_name == "Bernard")
        assert louis.email == "louis.bernard@example.net" and louis.postcode == "93100" and louis.birth_year == 1957
        assert read_all(conn, "person", cursor)[0] == []
        fake.add_order(3, "dons-libres", [("Donation", "Don", 1000)], T0 + timedelta(days=100))
        newer, _, _ = read_all(conn, "person", cursor)
    assert [p.source_id for p in newer] == ["hugo.thomas@example.org"]
    orders = [r for r in fake.requests if r["path"].endswith("/orders") and "from" in r["query"]]
    assert orders, "the incremental read must ask the server for recent orders only"


def test_memberships_plans_and_event_registrations(api: tuple[FakeHelloAsso, str]) -> None:
    fake, url = api
    with make(url) as conn:
        members, _, _ = read_all(conn, "membership")
        plans, _, _ = read_all(conn, "recurring_plan")
        events, _, _ = read_all(conn, "participation")
    assert all(isinstance(m, Membership) for m in members)
    assert sorted((m.person_id, m.fee, m.season) for m in members) == [
        ("hugo.thomas@example.org", 35.0, "2024"), ("louis.bernard@example.net", 20.0, "2024")]
    assert [(p.person_id, p.amount, p.status) for p in plans] == [("ines.dubois@example.com", 15.0, "active")]
    assert isinstance(plans[0], RecurringPlan)
    assert all(isinstance(e, Participation) for e in events)
    assert sorted((e.event, e.date) for e in events) == [
        ("Fête des voisins", date(2024, 6, 2)), ("Visite guidée des passages couverts", date(2024, 9, 21))]


def test_a_cancelled_membership_comes_back_as_an_update(api: tuple[FakeHelloAsso, str]) -> None:
    fake, url = api
    with make(url) as conn:
        _, cursor, _ = read_all(conn, "membership")
        item = fake.orders[1]["items"][0]
        fake.touch(item, T0 + timedelta(days=120), state="Canceled")
        changed, _, _ = read_all(conn, "membership", cursor)
    assert [(m.source_id, m.status) for m in changed] == [(str(item["id"]), "cancelled")]


def test_429_retry_after_is_honoured(api: tuple[FakeHelloAsso, str]) -> None:
    fake, url = api
    with make(url) as conn:
        fake.throttle = [1]
        started = time.monotonic()
        gifts, _, _ = read_all(conn, "gift", page_size=100)
        elapsed = time.monotonic() - started
    assert len(gifts) == 5
    assert elapsed >= 0.95, "the client must wait the Retry-After the server asked for"
    assert sum(1 for r in fake.requests if r["path"].endswith("/payments")) == 2


@pytest.mark.parametrize("lang, words", [("fr", "limite le débit"), ("en", "is throttling")])
def test_persistent_throttling_surfaces_as_transient_error(api: tuple[FakeHelloAsso, str], monkeypatch: pytest.MonkeyPatch,
                                                           lang: str, words: str) -> None:
    fake, url = api
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    with make(url, max_attempts=3) as conn:
        fake.throttle = [0, 0, 0, 0]
        with pytest.raises(TransientError, match=words) as info:
            read_all(conn, "gift")
    assert info.value.connector_id == "helloasso" and info.value.exit_code == 75


def test_expired_token_is_refreshed_once(api: tuple[FakeHelloAsso, str]) -> None:
    fake, url = api
    with make(url) as conn:
        read_all(conn, "membership")
        fake.expire_tokens()
        members, _, _ = read_all(conn, "membership")
    assert len(members) == 2
    grants = [r["body"].get("grant_type") for r in fake.requests if r["path"] == "/oauth2/token"]
    assert grants == [["client_credentials"], ["refresh_token"]]
    assert CLIENT_SECRET not in str([r["body"] for r in fake.requests if r["body"].get("grant_type") == ["refresh_token"]])


@pytest.mark.parametrize("lang, words", [("fr", "refuse l'identifiant client"), ("en", "refused the client id")])
def test_wrong_secret_is_an_auth_error(api: tuple[FakeHelloAsso, str], monkeypatch: pytest.MonkeyPatch,
                                       lang: str, words: str) -> None:
    _, url = api
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    conn = make(url, client_secret=Secret("wrong"))
    with pytest.raises(AuthError, match=words):
        conn.open()
    conn.close()


def test_unknown_organisation_and_unknown_record_type(api: tuple[FakeHelloAsso, str]) -> None:
    _, url = api
    with make(url, organization_slug="inconnue") as conn:
        with pytest.raises(ConnectorError, match="organization_slug"):
            read_all(conn, "gift")
        with pytest.raises(CapabilityError):
            read_all(conn, "volunteer_hours")


def test_helloasso_is_read_only(api: tuple[FakeHelloAsso, str]) -> None:
    _, url = api
    with make(url) as conn:
        with pytest.raises(CapabilityError):
            conn.write_scores([Score(person_id="camille.martin@example.org", task="donor_propensity", probability=0.8)])
