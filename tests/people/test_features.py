"""Features as of a date: exact values on a hand-made history, and no leakage of later records."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pytest

from assoc_ai_core.people.dataset import PeopleData
from assoc_ai_core.people.features import FEATURE_NAMES, NEVER_MONTHS, build_features
from assoc_ai_core.records.people import Gift, Membership, Participation, Person, RecurringPlan, VolunteerHours

AS_OF = "2024-01-01"


def _history() -> PeopleData:
    p = lambda pid, **kw: Person("t", pid, created=datetime(2015, 1, 1), **kw)  # noqa: E731
    g = lambda pid, d, a, **kw: Gift("t", f"{pid}-{d}", pid, a, date.fromisoformat(d), **kw)  # noqa: E731
    return PeopleData(
        persons=[p("loyal", email="a@b.fr"), p("lybunt"), p("sybunt"), p("new"), p("never"), p("optout", do_not_profile=True),
                 Person("t", "later", created=datetime(2024, 6, 1))],
        gifts=[
            g("loyal", "2022-03-01", 50), g("loyal", "2022-12-01", 50), g("loyal", "2023-06-01", 80),
            g("loyal", "2023-11-15", 100), g("loyal", "2019-05-05", 20),
            g("lybunt", "2022-05-01", 30),
            g("sybunt", "2020-05-01", 40),
            g("new", "2023-10-01", 25),
            g("new", "2023-11-01", 10, recurring=True), g("new", "2023-12-01", 10, recurring=True),
            g("optout", "2023-05-01", 500),
            g("loyal", "2024-02-01", 9999),  # after the reference date: must be invisible
        ],
        plans=[RecurringPlan("t", "r1", "new", 10.0, start=date(2023, 11, 1))],
        memberships=[Membership("t", f"m{y}", "loyal", str(y), fee=25.0, start=date(y, 1, 15)) for y in (2019, 2021, 2022, 2023)]
        + [Membership("t", "m-lapsed", "lybunt", "2021", fee=15.0, start=date(2021, 2, 1)),
           Membership("t", "m-future", "lybunt", "2024", fee=15.0, start=date(2024, 1, 2))],
        participations=[Participation("t", "e1", "loyal", "AG", date(2023, 6, 10)),
                        Participation("t", "e2", "loyal", "Gala", date(2023, 9, 10), status="annulé")],
        hours=[VolunteerHours("t", "h1", "loyal", "M1", 4.0, date(2023, 3, 3)),
               VolunteerHours("t", "h2", "loyal", "M2", 3.0, date(2021, 3, 3))],
    )


def test_values_on_a_known_history():
    f = build_features(_history(), AS_OF)
    assert list(f.columns) == list(FEATURE_NAMES)
    assert "optout" not in f.index and "later" not in f.index  # consent, and not known yet
    loyal, lybunt, sybunt, new, never = (f.loc[k] for k in ("loyal", "lybunt", "sybunt", "new", "never"))
    assert (loyal.gifts_12m, loyal.gifts_24m, loyal.gifts_total) == (2, 4, 5)
    assert loyal.amount_12m == 180 and loyal.amount_total == 300 and loyal.amount_last == 100 and loyal.amount_max == 100
    assert loyal.months_since_last_gift == pytest.approx(47 / 30.4375)
    assert loyal.repeat_donor == 1 and loyal.upgrade == 1 and loyal.downgrade == 0 and loyal.lybunt == 0
    assert loyal.giving_years == 3  # 2023, 2022 and 2019 (rolling years back from the reference date)
    assert (loyal.member_seasons, loyal.member_streak, loyal.member_years, loyal.member_this_year) == (4, 3, 5, 1)
    assert loyal.events_total == 1 and loyal.cancellations_12m == 1
    assert loyal.volunteer_hours_12m == 4 and loyal.volunteer_hours_total == 7 and loyal.volunteer_missions == 2
    assert loyal.has_email == 1 and loyal.has_phone == 0
    assert lybunt.lybunt == 1 and lybunt.sybunt == 0 and lybunt.member_lapsed == 1 and lybunt.member_this_year == 0
    assert sybunt.sybunt == 1 and sybunt.lybunt == 0
    # recurring instalments are gifts (FEP), and are also counted on their own; the live plan is seen
    assert new.first_year_donor == 1 and new.gifts_total == 3 and new.amount_total == 45
    assert new.recurring_active == 1 and new.recurring_gifts_12m == 2
    assert never.never_gave == 1 and never.months_since_last_gift == NEVER_MONTHS and never.months_since_membership == NEVER_MONTHS


def test_no_leakage_of_later_records(association):
    """Features at a date are identical whether or not the data after that date exists."""
    cut = date(2021, 7, 1)
    before_only = dataclasses.replace(
        association,
        gifts=[g for g in association.gifts if g.date < cut],
        memberships=[m for m in association.memberships if m.start is None or m.start < cut],
        participations=[p for p in association.participations if p.date < cut],
        hours=[h for h in association.hours if h.date < cut],
    )
    full = build_features(association, cut)
    truncated = build_features(before_only, cut)
    assert len(full) > 100
    assert full.equals(truncated.loc[full.index])


def test_include_do_not_profile_only_on_request():
    with_optout = build_features(_history(), AS_OF, include_do_not_profile=True)
    assert "optout" in with_optout.index and with_optout.loc["optout", "amount_total"] == 500


def test_membership_starts_from_the_season_and_leaves_out_cancelled_ones():
    from assoc_ai_core.people.features import membership_starts

    data = PeopleData(memberships=[
        Membership("t", "m1", "a", "2023-2024", fee=20.0),  # no start: the first year written in the season
        Membership("t", "m2", "a", "2022", start=date(2022, 3, 4)),
        Membership("t", "m3", "a", "2021", status="Annulée"),
        Membership("t", "m4", "b", "été", status="paid"),  # no date at all: cannot be placed in time
    ])
    starts = membership_starts(data.frames()["membership"]).set_index("source_id")
    assert sorted(starts.index) == ["m1", "m2"]
    assert starts.loc["m1", "start"].date() == date(2023, 1, 1) and starts.loc["m1", "season_key"] == "2023"
    assert starts.loc["m2", "start"].date() == date(2022, 3, 4)
    assert membership_starts(PeopleData().frames()["membership"]).empty
