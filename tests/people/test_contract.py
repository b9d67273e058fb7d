"""The CRM contract: canonical records, cursor helpers, score diffs, capability checks."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from assoc_ai_core.errors import CapabilityError
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CrmConnector, advance_cursor, is_after_cursor, plan_score_writes
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
