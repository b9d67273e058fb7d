"""The people package's public names, and the seeded synthetic association the other tests are built on."""

from __future__ import annotations

import dataclasses

import assoc_ai_core.people as people_pkg
import assoc_ai_core.records as records_pkg
from assoc_ai_core.ext import crm
from assoc_ai_core.people.synthetic import generate_people
from assoc_ai_core.records import mail, people


def test_record_names_are_listed_once_and_reexported_as_the_same_objects():
    assert records_pkg.__all__ == ["Attachment", "Message", "Prediction", *people.__all__]
    assert people_pkg.__all__ == ["CrmConnector", "advance_cursor", "is_after_cursor", "plan_score_writes", *people.__all__]
    for name in people.__all__:
        assert getattr(records_pkg, name) is getattr(people, name) is getattr(people_pkg, name)
    assert records_pkg.Message is mail.Message and people_pkg.CrmConnector is crm.CrmConnector
    assert {"Person", "Gift", "Score", "RECORD_TYPES", "record_type_of"} <= set(people.__all__)


def test_synthetic_association_is_seeded_and_consistent():
    first, again, other = generate_people(90, seed=11, duplicates=3), generate_people(90, seed=11, duplicates=3), \
        generate_people(90, seed=12)
    rows = lambda d: [dataclasses.astuple(r) for t in ("person", "gift", "volunteer_hours") for r in d.records(t)]  # noqa: E731
    assert rows(first) == rows(again) and rows(first) != rows(other)
    assert len(first.persons) == 93 and all(p.raw["duplicate_of"] for p in first.persons[90:])
    assert first.hours and first.plans
    missions = {m.source_id: m for m in first.missions}
    for h in first.hours:  # volunteers come while the mission is open
        assert missions[h.mission].start <= h.date <= missions[h.mission].end
    for plan in first.plans:  # each plan's instalments are monthly gifts of the plan's amount
        instalments = [g for g in first.gifts if g.plan_id == plan.source_id]
        assert instalments and all(g.recurring and g.amount == plan.amount for g in instalments)
