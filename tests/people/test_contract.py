"""The CRM contract: canonical records, cursor helpers, score diffs, the write template, HTTP and paging."""

from __future__ import annotations

import dataclasses
import email.utils
import time
from datetime import UTC, datetime, timedelta

import pytest

from assoc_ai_core.errors import CapabilityError, ConfigError, ConnectorError, PluginError
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import (
    ApiCrmConnector,
    CrmConnector,
    StoredScores,
    advance_cursor,
    is_after_cursor,
    plan_score_writes,
    site_time_zone,
)
from assoc_ai_core.ext.http import HttpClient, RateLimited, check_base_url, parse_retry_after
from assoc_ai_core.ext.paging import offset_pages, token_pages
from assoc_ai_core.records.people import (
    RECORD_TYPES,
    Gift,
    Person,
    RecordPage,
    Score,
    record_type_of,
    score_field_names,
    score_field_specs,
)
from assoc_ai_core.testing.loopback import LoopbackApi, make_cert


def test_records_are_frozen_and_typed():
    p = Person(source="crm", source_id="42", email="a@b.fr")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.email = "x"  # type: ignore[misc]
    assert p.key == "crm:42"
    assert record_type_of(p) == "person"
    assert set(RECORD_TYPES) == {"person", "gift", "recurring_plan", "membership", "participation",
                                 "volunteer_mission", "volunteer_hours"}
    with pytest.raises(TypeError):
        record_type_of(object())


def test_score_fields_are_stable_names():
    s = Score(person_id="7", task="donor-propensity", probability=0.123456, explanation="12 % : ...", model_version="v1")
    names = score_field_names("donor-propensity")
    assert s.as_fields() == {names["probability"]: 0.1235, names["explanation"]: "12 % : ...", names["model_version"]: "v1"}
    assert names["probability"] == "assoc_ai_donor_propensity"
    assert [f.type for f in score_field_specs("donor-propensity")] == ["number", "text", "text"]


def _at(minute: int) -> datetime:
    return datetime(2024, 5, 1, 10, minute, tzinfo=UTC)


def test_cursor_keeps_records_sharing_the_last_timestamp():
    a = Person("crm", "1", modified=_at(0))
    b = Person("crm", "2", modified=_at(5))
    c = Person("crm", "3", modified=_at(5))  # same instant as b, arrives in the next page
    cursor = advance_cursor(None, [a, b])
    assert cursor == {"modified_after": _at(5).isoformat(), "ids_at": ["2"]}
    assert not is_after_cursor(a, cursor)
    assert not is_after_cursor(b, cursor)  # already read
    assert is_after_cursor(c, cursor)  # same timestamp, not read yet: must not be lost
    later = advance_cursor(cursor, [c])
    assert later["ids_at"] == ["2", "3"]
    assert is_after_cursor(Person("crm", "4", modified=_at(6)), later)
    # naive datetimes are read as UTC, and records without dates are only read on a full read
    assert not is_after_cursor(Person("crm", "5", modified=datetime(2024, 5, 1, 10, 4)), later)
    assert is_after_cursor(Person("crm", "6"), None)
    assert not is_after_cursor(Person("crm", "6"), later)


def test_plan_score_writes_diff_is_idempotent_and_never_creates_people():
    s1 = Score("1", "donor-propensity", 0.5, "a", "v1")
    s2 = Score("2", "donor-propensity", 0.25, "b", "v1")
    s3 = Score("3", "donor-propensity", 0.75, "c", "v1")
    names = score_field_names("donor-propensity")
    current = {
        "1": None,
        "2": {names["probability"]: "0,25", names["explanation"]: "b", names["model_version"]: "v1"},
        "9": {},
    }
    report = plan_score_writes(current, [s1, s2, s3], dry_run=True)
    by_id = {d.record_id: d for d in report.diffs}
    assert by_id["1"].action == "create" and by_id["1"].after[names["probability"]] == 0.5
    assert by_id["2"].action == "unchanged"  # "0,25" as a French CRM stores it equals 0.25
    assert report.skipped and report.skipped[0][0] == "3"
    assert report.counts == {"create": 1, "update": 0, "unchanged": 1, "skipped": 1}
    assert report.dry_run and report.changed == 1
    changed = plan_score_writes(current, [Score("2", "donor-propensity", 0.3, "b", "v2")])
    assert changed.diffs[0].action == "update"
    assert changed.diffs[0].before[names["model_version"]] == "v1"
    assert report.to_dict()["counts"]["create"] == 1


class _ReadOnly(CrmConnector):
    id = "readonly"

    @dataclasses.dataclass(frozen=True)
    class Config:
        pass

    capabilities = frozenset({Capability.READ})
    record_types = frozenset({"person"})

    def iter_records(self, record_type, cursor=None, *, page_size=100):
        self.check_record_type(record_type)
        yield RecordPage(record_type, [Person("ro", "1")], {})


def test_read_only_connector_refuses_writes_with_a_clear_message(monkeypatch):
    conn = _ReadOnly(_ReadOnly.Config())
    assert conn.kind == "crm"
    assert [p.records[0].source_id for p in conn.iter_records("person")] == ["1"]
    with pytest.raises(CapabilityError, match="write_scores"):
        conn.write_scores([Score("1", "donor-propensity", 0.5)])
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    with pytest.raises(CapabilityError, match="does not provide 'gift' records. Available types: person"):
        list(conn.iter_records("gift"))
    with pytest.raises(TypeError):
        CrmConnector(None)  # type: ignore[abstract]


def test_gift_defaults():
    from datetime import date

    g = Gift("crm", "g1", "p1", 10.0, date(2024, 1, 1))
    assert (g.currency, g.recurring, g.record_type) == ("EUR", False, "gift")


# -- the write_scores template ------------------------------------------------------------------
class _MemoryCrm(CrmConnector):
    """A writable CRM in memory: person id -> (objects to profiling, stored fields)."""

    id = "memory"

    @dataclasses.dataclass(frozen=True)
    class Config:
        field_prefix: str = "x"

    capabilities = frozenset({Capability.READ, Capability.WRITE_SCORES})
    record_types = frozenset({"person"})

    def __init__(self, config, people):
        super().__init__(config)
        self.people = people
        self.saved: list[list[str]] = []

    def iter_records(self, record_type, cursor=None, *, page_size=100):
        yield RecordPage(record_type, [Person("memory", pid, do_not_profile=dnp) for pid, (dnp, _) in self.people.items()], {})

    def read_stored_scores(self, person_ids, fields):
        return {pid: StoredScores({f: self.people[pid][1].get(f) for f in fields}, self.people[pid][0])
                for pid in person_ids if pid in self.people}

    def save_scores(self, diffs, scores):
        self.saved.append([d.record_id for d in diffs])
        for d in diffs:
            self.people[d.record_id][1].update(d.after)


def test_write_scores_template_filters_objections_diffs_and_saves_only_changes(monkeypatch):
    crm = _MemoryCrm(_MemoryCrm.Config(), {"1": (False, {}), "2": (True, {}), "3": (False, {})})
    scores = [Score("1", "donor-propensity", 0.5, "a", "v1"), Score("2", "donor-propensity", 0.9, "b", "v1"),
              Score("9", "donor-propensity", 0.1, "c", "v1")]
    dry = crm.write_scores(scores)
    assert dry.dry_run and crm.saved == [] and [d.record_id for d in dry.diffs] == ["1"]
    assert dry.diffs[0].after == {"x_donor_propensity": 0.5, "x_donor_propensity_why": "a", "x_donor_propensity_model": "v1"}
    assert dict(dry.skipped)["2"] == "la personne refuse le profilage (do_not_profile)"
    assert "9" in dict(dry.skipped) and dry.target == "memory"
    done = crm.write_scores(scores, dry_run=False)
    assert crm.saved == [["1"]] and done.changed == 1 and crm.people["2"][1] == {}
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    again = crm.write_scores(scores, dry_run=False)
    assert crm.saved == [["1"]] and again.counts["unchanged"] == 1  # nothing changed: nothing saved
    assert dict(again.skipped)["2"] == "the person objects to profiling (do_not_profile)"


def test_writer_without_the_two_steps_says_what_is_missing():
    class _Half(_MemoryCrm):
        read_stored_scores = CrmConnector.read_stored_scores

    with pytest.raises(PluginError, match="read_stored_scores"):
        _Half(_MemoryCrm.Config(), {}).write_scores([Score("1", "t", 0.5)])


# -- API connectors: a client built on first use ------------------------------------------------
class _Client:
    def __init__(self):
        self.closed = 0

    def close(self):
        self.closed += 1


class _Api(ApiCrmConnector):
    id = "api"

    @dataclasses.dataclass(frozen=True)
    class Config:
        timeout: float = 1.5
        verify_tls: bool = True
        max_attempts: int = 2
        max_retry_wait: float = 0.5

    capabilities = frozenset({Capability.READ})
    record_types = frozenset({"person"})
    built = 0

    def build_client(self):
        type(self).built += 1
        return _Client()

    def iter_records(self, record_type, cursor=None, *, page_size=100):
        yield RecordPage(record_type, [], {})


def test_api_connector_builds_its_client_on_first_use_and_closes_it_once():
    conn = _Api(_Api.Config())
    assert _Api.built == 0
    client = conn.client
    assert conn.client is client and _Api.built == 1
    conn.close()
    conn.close()
    assert client.closed == 1
    http = conn.http_client("Example", field="api_url")
    assert (http.timeout, http.field, http.session.headers["User-Agent"]) == (1.5, "api_url", "assoc-ai-api")
    http.close()


def test_site_time_zone():
    assert site_time_zone("Europe/Paris", connector_id="x").key == "Europe/Paris"
    with pytest.raises(ConfigError, match=r"\[connectors.x\].timezone.*Mars/Olympus"):
        site_time_zone("Mars/Olympus", connector_id="x")


# -- paging -------------------------------------------------------------------------------------
def test_offset_pages_stop_at_a_short_page():
    rows = list(range(7))
    asked: list[int] = []

    def fetch(offset):
        asked.append(offset)
        return rows[offset:offset + 3]

    assert list(offset_pages(fetch, 3)) == [[0, 1, 2], [3, 4, 5], [6]] and asked == [0, 3, 6]
    asked.clear()
    assert list(offset_pages(lambda o: (asked.append(o), rows[o:o + 7])[1], 7)) == [rows]  # a full page, then none
    assert asked == [0, 7]


def test_token_pages_stop_without_a_token_on_a_repeated_one_or_on_a_short_page():
    chain = {None: ([1, 2], "a"), "a": ([3, 4], "b"), "b": ([5], None)}
    assert list(token_pages(lambda t: chain[t])) == [([1, 2], "a"), ([3, 4], "b"), ([5], None)]
    looping = {None: ([1, 2], "a"), "a": ([3, 4], "a")}
    assert [rows for rows, _ in token_pages(lambda t: looping[t])] == [[1, 2], [3, 4]]
    endless = {None: ([1, 2], "a"), "a": ([3], "b")}  # a token past the end, but a short page
    assert [rows for rows, _ in token_pages(lambda t: endless[t], page_size=2)] == [[1, 2], [3]]
    assert list(token_pages(lambda t: chain[t], start="b")) == [([5], None)]


# -- the HTTP client ----------------------------------------------------------------------------
def test_retry_after_in_seconds_or_as_an_http_date():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= parse_retry_after(later) <= 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # past dates mean now


@dataclasses.dataclass
class _Throttling(LoopbackApi):
    """Answers 429 (Retry-After from ``throttle``) then 200 with the number of calls so far."""

    def handle(self, h, method):
        with self.lock:
            self.requests.append({"method": method, "path": h.path})
            if self.reply_throttled(h, {"error": "slow down"}):
                return
        self.reply(h, 200, {"calls": len(self.requests)})


def test_http_client_waits_as_long_as_retry_after_says_within_its_bound():
    pytest.importorskip("requests")
    fake = _Throttling()
    with fake.running() as url:
        http = HttpClient("Example", "example", max_attempts=3, max_retry_wait=5.0)
        soon = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
        fake.throttle = [soon]
        started = time.monotonic()
        assert http.request("GET", f"{url}/people").json() == {"calls": 2}
        assert 0.5 <= time.monotonic() - started < 3.5  # the HTTP date, not the exponential backoff
        assert http.last_retry_after is None  # the last answer was not throttled
        fake.throttle = [3600, 3600, 3600]
        started = time.monotonic()
        bounded = HttpClient("Example", "example", max_attempts=3, max_retry_wait=0.2)
        with pytest.raises(RateLimited, match="limite le débit") as info:
            bounded.request("GET", f"{url}/people")
        assert time.monotonic() - started < 2  # an hour asked, 0.2 s waited twice
        assert info.value.retry_after == 3600 and bounded.last_retry_after == 3600
        assert http.session.headers["Accept"] == "application/json"
        http.close()
        bounded.close()


def test_http_client_keeps_its_ca_file_ahead_of_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("requests")
    cert = make_cert(tmp_path)
    fake = _Throttling()
    with fake.running(cert) as url:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "elsewhere.pem"))
        http = HttpClient("Example", "example", verify=str(cert[0]), max_attempts=1)
        assert http.session.get(f"{url}/x", timeout=5).status_code == 200  # as an SDK riding on the session would
        http.close()
        trusting_nothing = HttpClient("Example", "example", max_attempts=1)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        with pytest.raises(ConnectorError, match="TLS"):
            trusting_nothing.request("GET", f"{url}/x")
        trusting_nothing.close()


def test_plain_http_is_refused_except_on_loopback():
    assert check_base_url("http://127.0.0.1:8080/", field="base_url", connector_id="x") == "http://127.0.0.1:8080"
    with pytest.raises(ConfigError, match="https"):
        check_base_url("http://crm.example.org", field="base_url", connector_id="x")
    with pytest.raises(ConfigError, match=r"\[connectors.x\].domain_url"):
        check_base_url("http://127.0.0.1:8080", field="domain_url", connector_id="x", loopback_http=False)
