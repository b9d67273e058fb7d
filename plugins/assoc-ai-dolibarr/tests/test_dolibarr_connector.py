"""The Dolibarr connector, with its real requests/tenacity client, against a loopback Dolibarr REST API."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from datetime import date
from importlib.metadata import entry_points
from typing import Any

import pytest
from assoc_ai_dolibarr import DolibarrConfig, DolibarrConnector
from dolibarr_fake import ADMIN_KEY, API_KEY, FakeDolibarr, ts

from assoc_ai_core.errors import AuthError, CapabilityError, TransientError
from assoc_ai_core.ext.config import Secret, build_config
from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.records.people import Gift, Membership, Person, Score
from assoc_ai_core.testing.crm import parametrize_crm_checks, read_pages


@pytest.fixture()
def erp() -> Iterator[tuple[FakeDolibarr, str]]:
    yield from FakeDolibarr().serve()


def make(url: str, key: str = API_KEY, **overrides: Any) -> DolibarrConnector:
    return DolibarrConnector(DolibarrConfig(base_url=url, api_key=Secret(key), max_attempts=3, max_retry_wait=2.0, **overrides))


read_all = functools.partial(read_pages, page_size=2)


SCORES = [Score(person_id="1", task="churn", probability=0.12, explanation="Adhère chaque année.", model_version="v3"),
          Score(person_id="3", task="churn", probability=0.70, explanation="?", model_version="v3"),
          Score(person_id="4", task="churn", probability=0.55, explanation="Première adhésion.", model_version="v3")]


@parametrize_crm_checks()
def test_conformance(check: Callable[..., None], erp: tuple[FakeDolibarr, str]) -> None:
    check(lambda: make(erp[1], key=ADMIN_KEY))  # creating extra fields needs an administrator's key


def test_entry_point_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    (ep,) = [ep for ep in entry_points(group="assoc_ai") if ep.name == "dolibarr"]
    registry = ConnectorRegistry()
    ep.load().register_connectors(registry=registry)
    assert registry.get("dolibarr") is DolibarrConnector
    monkeypatch.setenv("DOLI_KEY", API_KEY)
    config = build_config(DolibarrConfig, {"base_url": "https://erp.example.org", "api_key": {"env": "DOLI_KEY"}},
                          where="connectors.dolibarr")
    assert config.api_key.get() == API_KEY and API_KEY not in repr(config)


def test_members_paged_to_the_end_with_dolapikey(erp: tuple[FakeDolibarr, str]) -> None:
    fake, url = erp
    conn = make(url)
    assert fake.requests == [], "building a connector does no I/O"
    with conn:
        people, cursor, pages = read_all(conn, "person", page_size=2)
    conn.close()
    assert pages == 3 and [p.source_id for p in people] == ["1", "2", "3", "4", "5"]
    assert all(isinstance(p, Person) for p in people)
    assert (people[0].email, people[0].postcode, people[0].city) == ("camille.martin@example.org", "75011", "Paris")
    assert [p.do_not_profile for p in people] == [False, False, True, False, False]
    assert all(r["key"] == API_KEY for r in fake.requests)
    pages_asked = [r["query"]["page"] for r in fake.requests if r["path"].endswith("/members")]
    assert pages_asked == ["0", "1", "2"]
    assert cursor["modified_after"] == "2024-02-10T16:45:00+00:00"


def test_incremental_uses_sqlfilters_on_tms(erp: tuple[FakeDolibarr, str]) -> None:
    fake, url = erp
    with make(url) as conn:
        _, cursor, _ = read_all(conn, "person")
        assert read_all(conn, "person", cursor)[0] == []
        fake.members[1]["town"] = "Bagnolet"
        fake.members[1]["tms"] = ts("2024-03-02 08:00:00")
        changed, _, _ = read_all(conn, "person", cursor)
    assert [(p.source_id, p.city) for p in changed] == [("2", "Bagnolet")]
    filters = [r["query"].get("sqlfilters") for r in fake.requests if r["path"].endswith("/members")]
    assert filters[-1] == "(t.tms:>=:'2024-02-10 17:45:00')"


def test_subscriptions_and_donations(erp: tuple[FakeDolibarr, str]) -> None:
    _, url = erp
    with make(url) as conn:
        members, _, _ = read_all(conn, "membership")
        gifts, _, _ = read_all(conn, "gift")
    assert all(isinstance(m, Membership) for m in members)
    assert [(m.person_id, m.season, m.fee, m.start) for m in members] == [
        ("1", "2024", 20.0, date(2024, 1, 1)), ("2", "2023-2024", 25.0, date(2023, 9, 1)), ("4", "2024-2025", 20.0, date(2024, 2, 1))]
    assert all(isinstance(g, Gift) for g in gifts)
    # The promise (status 1) is not a gift yet; a donor with no member record keeps an e-mail id.
    assert [(g.person_id, g.amount) for g in gifts] == [("1", 50.0), ("2", 30.0), ("email:passant@example.org", 10.0)]


def test_ensure_fields_needs_admin_then_is_idempotent(erp: tuple[FakeDolibarr, str]) -> None:
    fake, url = erp
    with make(url) as conn:
        dry = conn.ensure_fields(task="churn")
        assert dry.counts["create"] == 3 and not fake.writes()
        with pytest.raises(AuthError, match="administra"):
            conn.ensure_fields(task="churn", dry_run=False)
    with make(url, key=ADMIN_KEY) as admin:
        assert admin.ensure_fields(task="churn", dry_run=False).counts["create"] == 3
        assert set(fake.extrafields) == {"assoc_ai_churn", "assoc_ai_churn_why", "assoc_ai_churn_model"}
        assert fake.extrafields["assoc_ai_churn"]["type"] == "double"
        assert admin.ensure_fields(task="churn", dry_run=False).counts["unchanged"] == 3


def test_write_scores_dry_run_write_idempotent_and_consent(erp: tuple[FakeDolibarr, str]) -> None:
    fake, url = erp
    with make(url, key=ADMIN_KEY) as admin:
        admin.ensure_fields(task="churn", dry_run=False)
    with make(url) as conn:
        dry = conn.write_scores(SCORES)
        assert dry.dry_run and not [r for r in fake.writes() if r["method"] == "PUT"]
        assert {d.record_id: d.action for d in dry.diffs} == {"1": "create", "4": "create"}
        assert "do_not_profile" in dict(dry.skipped)["3"]
        done = conn.write_scores(SCORES, dry_run=False)
        assert done.changed == 2
        assert fake.members[0]["array_options"]["options_assoc_ai_churn"] == 0.12
        assert fake.members[3]["array_options"]["options_assoc_ai_churn_why"] == "Première adhésion."
        assert "options_assoc_ai_churn" not in fake.members[2]["array_options"]
        puts = len([r for r in fake.writes() if r["method"] == "PUT"])
        again = conn.write_scores(SCORES, dry_run=False)
    assert again.changed == 0 and len([r for r in fake.writes() if r["method"] == "PUT"]) == puts


def test_429_retry_after_is_honoured_and_persistent_429_is_transient(erp: tuple[FakeDolibarr, str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake, url = erp
    with make(url) as conn:
        fake.throttle = [1]
        started = time.monotonic()
        assert len(read_all(conn, "person", page_size=50)[0]) == 5
        assert time.monotonic() - started >= 0.95
        monkeypatch.setenv("ASSOC_AI_LANG", "en")
        fake.throttle = [0, 0, 0]
        with pytest.raises(TransientError, match="is throttling"):
            read_all(conn, "person")
        monkeypatch.setenv("ASSOC_AI_LANG", "fr")
        fake.throttle = [0, 0, 0]
        with pytest.raises(TransientError, match="limite le débit"):
            read_all(conn, "person")


@pytest.mark.parametrize("lang, words", [("fr", "refuse la clé d'API"), ("en", "refused the API key")])
def test_wrong_key_is_an_auth_error(erp: tuple[FakeDolibarr, str], monkeypatch: pytest.MonkeyPatch, lang: str, words: str) -> None:
    _, url = erp
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    with pytest.raises(AuthError, match=words):
        make(url, key="revoked").open()


def test_unknown_record_type(erp: tuple[FakeDolibarr, str]) -> None:
    _, url = erp
    with make(url) as conn, pytest.raises(CapabilityError):
        read_all(conn, "volunteer_hours")
