"""CiviCRM API v4 rows -> canonical people records, and the ``select`` each record type needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from assoc_ai_core.records.people import Gift, Membership, Participation, Person, RecurringPlan, VolunteerHours

SOURCE = "civicrm"

# CiviCRM writes local wall-clock times ("YYYY-MM-DD HH:MM:SS") in the site's time zone.
SELECTS: dict[str, list[str]] = {
    "person": ["id", "first_name", "last_name", "email_primary.email", "phone_primary.phone",
               "address_primary.postal_code", "address_primary.city", "birth_date", "gender_id:name",
               "created_date", "modified_date", "contact_type", "is_opt_out", "do_not_trade"],
    "gift": ["id", "contact_id", "total_amount", "currency", "receive_date", "contribution_recur_id",
             "campaign_id:label", "payment_instrument_id:name", "financial_type_id:name",
             "contribution_status_id:name", "modified_date"],
    "recurring_plan": ["id", "contact_id", "amount", "currency", "frequency_unit:name", "frequency_interval",
                       "start_date", "end_date", "contribution_status_id:name", "modified_date"],
    "membership": ["id", "contact_id", "membership_type_id:name", "membership_type_id.minimum_fee", "status_id:name",
                   "join_date", "start_date", "end_date"],
    "participation": ["id", "contact_id", "event_id", "event_id.title", "event_id.start_date", "status_id:name",
                      "register_date", "modified_date"],
    "volunteer_hours": ["id", "subject", "activity_date_time", "duration", "location", "status_id:name",
                        "assignee_contact_id", "target_contact_id", "modified_date"],
}

# A log row carries the period it recorded; the membership itself gives the person and today's status.
MEMBERSHIP_LOG_SELECT = ["id", "membership_id", "start_date", "end_date", "status_id:name", "modified_date",
                         "membership_type_id:name", "membership_type_id.minimum_fee", "membership_id.contact_id",
                         "membership_id.status_id:name", "membership_id.join_date"]
MEMBERSHIP_PAYMENT_SELECT = ["id", "membership_id", "contribution_id", "contribution_id.total_amount",
                             "contribution_id.currency", "contribution_id.receive_date",
                             "contribution_id.contribution_status_id:name"]
MEMBERSHIP_STATUS = {"Current": "paid", "New": "paid", "Grace": "grace", "Expired": "expired", "Cancelled": "cancelled",
                     "Pending": "pending", "Deceased": "cancelled"}

ENTITIES = {"person": "Contact", "gift": "Contribution", "recurring_plan": "ContributionRecur",
            "membership": "Membership", "participation": "Participant", "volunteer_hours": "Activity"}

REVERSED = frozenset({"Refunded", "Cancelled", "Chargeback"})
STATUS_PLAN = {"In Progress": "active", "Pending": "active", "Completed": "ended", "Cancelled": "cancelled",
               "Failed": "failed", "Overdue": "active"}


def parse_dt(value: Any, tz: ZoneInfo) -> datetime | None:
    """A CiviCRM date-time (site-local) as an aware datetime; None when empty or bad."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def format_dt(value: datetime, tz: ZoneInfo) -> str:
    """A datetime as CiviCRM compares it: site-local ``YYYY-MM-DD HH:MM:SS``."""
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _day(value: Any, tz: ZoneInfo) -> date | None:
    parsed = parse_dt(value, tz)
    return parsed.date() if parsed else None


def _raw(row: Mapping[str, Any], used: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in used}


def person(row: Mapping[str, Any], tz: ZoneInfo, do_not_profile_field: str) -> Person:
    """A Contact row."""
    born = _day(row.get("birth_date"), tz)
    return Person(
        source=SOURCE,
        source_id=str(row["id"]),
        first_name=str(row.get("first_name") or ""),
        last_name=str(row.get("last_name") or ""),
        email=str(row.get("email_primary.email") or ""),
        phone=str(row.get("phone_primary.phone") or ""),
        postcode=str(row.get("address_primary.postal_code") or ""),
        city=str(row.get("address_primary.city") or ""),
        birth_year=born.year if born else None,
        gender=str(row.get("gender_id:name") or ""),
        created=parse_dt(row.get("created_date"), tz),
        modified=parse_dt(row.get("modified_date"), tz),
        do_not_profile=bool(row.get(do_not_profile_field)),
        raw=_raw(row, {"first_name", "last_name", "email_primary.email", "phone_primary.phone"}),
    )


def gift(row: Mapping[str, Any], tz: ZoneInfo) -> Gift | None:
    """A Contribution row; refunded/cancelled contributions come back with amount 0."""
    when = _day(row.get("receive_date"), tz)
    if when is None:
        return None
    status = str(row.get("contribution_status_id:name") or "")
    recur = row.get("contribution_recur_id")
    return Gift(
        source=SOURCE,
        source_id=str(row["id"]),
        person_id=str(row.get("contact_id") or ""),
        amount=0.0 if status in REVERSED else round(float(row.get("total_amount") or 0), 2),
        date=when,
        currency=str(row.get("currency") or "EUR"),
        recurring=bool(recur),
        plan_id=str(recur or ""),
        campaign=str(row.get("campaign_id:label") or ""),
        payment_method=str(row.get("payment_instrument_id:name") or ""),
        modified=parse_dt(row.get("modified_date"), tz),
        raw={"status": status, "financial_type": row.get("financial_type_id:name") or ""},
    )


def plan(row: Mapping[str, Any], tz: ZoneInfo) -> RecurringPlan:
    """A ContributionRecur row; the frequency is written ``monthly``, ``yearly``, ``every 3 months``..."""
    unit = str(row.get("frequency_unit:name") or "month")
    interval = int(row.get("frequency_interval") or 1)
    frequency = f"{unit}ly".replace("dayly", "daily") if interval == 1 else f"every {interval} {unit}s"
    status = str(row.get("contribution_status_id:name") or "")
    return RecurringPlan(
        source=SOURCE,
        source_id=str(row["id"]),
        person_id=str(row.get("contact_id") or ""),
        amount=round(float(row.get("amount") or 0), 2),
        frequency=frequency,
        currency=str(row.get("currency") or "EUR"),
        start=_day(row.get("start_date"), tz),
        end=_day(row.get("end_date"), tz),
        status=STATUS_PLAN.get(status, status.lower()),
        modified=parse_dt(row.get("modified_date"), tz),
        raw={"status": status},
    )


def membership(row: Mapping[str, Any], tz: ZoneInfo) -> Membership:
    """A Membership row; the season is the start year, or ``2024-2025`` when the term spans two years."""
    start, end = _day(row.get("start_date"), tz), _day(row.get("end_date"), tz)
    season = ""
    if start:
        season = str(start.year) if not end or end.year == start.year else f"{start.year}-{end.year}"
    status = str(row.get("status_id:name") or "")
    return Membership(
        source=SOURCE,
        source_id=str(row["id"]),
        person_id=str(row.get("contact_id") or ""),
        season=season,
        fee=round(float(row.get("membership_type_id.minimum_fee") or 0), 2),
        status=MEMBERSHIP_STATUS.get(status, status.lower()),
        start=start,
        end=end,
        modified=parse_dt(row.get("modified_date"), tz),
        raw={"type": row.get("membership_type_id:name") or "", "join_date": row.get("join_date") or ""},
    )


def _season(start: date | None, end: date | None) -> str:
    if start is None:
        return ""
    return str(start.year) if not end or end.year == start.year else f"{start.year}-{end.year}"


def membership_periods(membership_id: int, logs: Sequence[Mapping[str, Any]], payments: Sequence[Mapping[str, Any]],
                       tz: ZoneInfo) -> list[Membership]:
    """The periods of one membership, oldest first, from its MembershipLog rows (sorted by ``modified_date``).

    A row whose end date is later than the last period's opens a period: it
    starts the day after the previous end, or on the row's start date after a
    gap (a renewal once expired restarts the membership).  A row with the same
    end date (a status change) belongs to that period; an earlier end date is a
    correction of it.  Each completed contribution linked through
    MembershipPayment pays the earliest unpaid period ending on or after its
    date, so dues paid in advance go to the next season; a period without one
    is valued at the type's minimum fee.
    """
    periods: list[dict[str, Any]] = []
    for row in logs:
        start, end = _day(row.get("start_date"), tz), _day(row.get("end_date"), tz)
        modified = parse_dt(row.get("modified_date"), tz)
        last = periods[-1] if periods else None
        if last is not None and (end is None or last["end"] is None or end <= last["end"]):
            last.update(end=end if end is not None and last["end"] is not None else last["end"], row=row,
                        modified=max((m for m in (last["modified"], modified) if m is not None), default=None))
            continue
        if last is not None and last["end"] is not None and (start is None or start <= last["end"]):
            start = last["end"] + timedelta(days=1)
        periods.append({"start": start, "end": end, "row": row, "modified": modified, "paid": []})
    for pay in payments:
        status = str(pay.get("contribution_id.contribution_status_id:name") or "Completed")
        when = _day(pay.get("contribution_id.receive_date"), tz)
        if status != "Completed" or when is None:
            continue
        target = next((p for p in periods if not p["paid"] and (p["end"] is None or p["end"] >= when)), None)
        if target is not None:
            target["paid"].append(pay)
    out = []
    for number, period in enumerate(periods, start=1):
        row, paid = period["row"], period["paid"]
        latest = number == len(periods)
        status = str(row.get("membership_id.status_id:name") or row.get("status_id:name") or "") if latest else "Current"
        fee = (sum(float(p.get("contribution_id.total_amount") or 0) for p in paid) if paid
               else float(row.get("membership_type_id.minimum_fee") or 0))
        out.append(Membership(
            source=SOURCE,
            source_id=f"{membership_id}-{number}",
            person_id=str(row.get("membership_id.contact_id") or ""),
            season=_season(period["start"], period["end"]),
            fee=round(fee, 2),
            status=MEMBERSHIP_STATUS.get(status, status.lower()),
            start=period["start"],
            end=period["end"],
            currency=str(paid[0].get("contribution_id.currency") or "EUR") if paid else "EUR",
            modified=period["modified"],
            raw={"membership_id": membership_id, "type": row.get("membership_type_id:name") or "",
                 "join_date": row.get("membership_id.join_date") or "",
                 "contribution_ids": [p.get("contribution_id") for p in paid]},
        ))
    return out


def participation(row: Mapping[str, Any], tz: ZoneInfo) -> Participation | None:
    """A Participant row, dated by the event's start."""
    when = _day(row.get("event_id.start_date"), tz) or _day(row.get("register_date"), tz)
    if when is None:
        return None
    status = str(row.get("status_id:name") or "")
    return Participation(
        source=SOURCE,
        source_id=str(row["id"]),
        person_id=str(row.get("contact_id") or ""),
        event=str(row.get("event_id.title") or row.get("event_id") or ""),
        date=when,
        status={"Registered": "registered", "Attended": "attended", "No-show": "no_show", "Cancelled": "cancelled"}.get(
            status, status.lower()),
        modified=parse_dt(row.get("modified_date"), tz),
        raw={"status": status},
    )


def volunteer_hours(row: Mapping[str, Any], tz: ZoneInfo, role: str) -> list[VolunteerHours]:
    """A volunteer Activity: one record per volunteer (assignees by default), ``duration`` minutes -> hours."""
    when = _day(row.get("activity_date_time"), tz)
    people = row.get(f"{role}_contact_id") or row.get("target_contact_id") or []
    if when is None:
        return []
    hours = round(float(row.get("duration") or 0) / 60.0, 2)
    return [
        VolunteerHours(
            source=SOURCE,
            source_id=f"{row['id']}-{pid}",
            person_id=str(pid),
            mission=str(row.get("subject") or ""),
            hours=hours,
            date=when,
            place=str(row.get("location") or ""),
            modified=parse_dt(row.get("modified_date"), tz),
            raw={"activity_id": row["id"], "status": row.get("status_id:name") or ""},
        )
        for pid in people
    ]
