"""Turn HelloAsso v5 objects (orders, payments, items, forms) into canonical people records.

HelloAsso has no contact directory: a person is a payer, identified by the
lower-cased e-mail address (the only stable key HelloAsso gives for a payer).
Amounts are in cents in the API and in euros in the records.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from assoc_ai_core.records.people import Gift, Membership, Participation, Person, RecurringPlan

SOURCE = "helloasso"

DONATION_TIERS = frozenset({"Donation", "MonthlyDonation", "OfflineDonation"})
# Payment states that mean money was received; refunds are kept (amount 0) so an update supersedes the gift.
PAID_STATES = frozenset({"Authorized", "Registered"})
REVERSED_STATES = frozenset({"Refunded", "Refunding", "Contested"})
ITEM_STATUS = {"Processed": "paid", "Registered": "paid", "Canceled": "cancelled", "Unknown": "unknown"}
EVENT_STATUS = {"Processed": "registered", "Registered": "registered", "Canceled": "cancelled", "Unknown": "unknown"}


def parse_dt(value: Any) -> datetime | None:
    """An API timestamp as an aware datetime (naive values are taken as UTC); None when absent or bad."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _day(value: Any) -> date | None:
    parsed = parse_dt(value)
    return parsed.date() if parsed else None


def person_key(payer: Mapping[str, Any] | None) -> str:
    """The person id of a payer: the lower-cased e-mail (empty when HelloAsso has none)."""
    return str((payer or {}).get("email") or "").strip().lower()


def updated_at(obj: Mapping[str, Any]) -> datetime | None:
    """When an object last changed: ``meta.updatedAt``, else its order's, else its own or its order's date."""
    order = obj.get("order") or {}
    return (
        parse_dt((obj.get("meta") or {}).get("updatedAt"))
        or parse_dt((order.get("meta") or {}).get("updatedAt"))
        or parse_dt(obj.get("date"))
        or parse_dt(order.get("date"))
    )


def person_from_order(order: Mapping[str, Any]) -> Person | None:
    """The payer of an order, dated by the order (the filter HelloAsso offers on orders is its date)."""
    payer = order.get("payer") or {}
    key = person_key(payer)
    if not key:
        return None
    born = parse_dt(payer.get("dateOfBirth"))
    return Person(
        source=SOURCE,
        source_id=key,
        first_name=str(payer.get("firstName") or ""),
        last_name=str(payer.get("lastName") or ""),
        email=key,
        postcode=str(payer.get("zipCode") or ""),
        city=str(payer.get("city") or ""),
        birth_year=born.year if born else None,
        created=parse_dt(order.get("date")),
        modified=parse_dt(order.get("date")),
        raw={"order_id": order.get("id"), "form_slug": order.get("formSlug"), "form_type": order.get("formType"),
             "country": payer.get("country") or "", "company": payer.get("company") or ""},
    )


def gift_from_payment(payment: Mapping[str, Any]) -> Gift | None:
    """A payment's donation share as a gift; None when it holds no donation or was never paid."""
    state = str(payment.get("state") or "")
    if state not in PAID_STATES | REVERSED_STATES:
        return None
    items = [i for i in payment.get("items") or [] if i.get("type") in DONATION_TIERS]
    if not items:
        return None
    key = person_key(payment.get("payer"))
    when = _day(payment.get("date"))
    if not key or when is None:
        return None
    cents = sum(int(i.get("shareAmount") if i.get("shareAmount") is not None else i.get("amount") or 0) for i in items)
    monthly = [i for i in items if i.get("type") == "MonthlyDonation"]
    order = payment.get("order") or {}
    return Gift(
        source=SOURCE,
        source_id=str(payment.get("id")),
        person_id=key,
        amount=round(cents / 100.0, 2) if state in PAID_STATES else 0.0,
        date=when,
        currency="EUR",
        recurring=bool(monthly),
        plan_id=str(monthly[0].get("id")) if monthly else "",
        campaign=str(order.get("formSlug") or ""),
        payment_method=str(payment.get("paymentMeans") or ""),
        modified=updated_at(payment),
        raw={"state": state, "order_id": order.get("id"), "installment": payment.get("installmentNumber")},
    )


def plan_from_item(item: Mapping[str, Any]) -> RecurringPlan | None:
    """A monthly-donation item as a recurring plan."""
    key = person_key(item.get("payer"))
    if not key or item.get("type") != "MonthlyDonation":
        return None
    order = item.get("order") or {}
    state = str(item.get("state") or "")
    return RecurringPlan(
        source=SOURCE,
        source_id=str(item.get("id")),
        person_id=key,
        amount=round(int(item.get("amount") or 0) / 100.0, 2),
        frequency="monthly",
        start=_day(order.get("date")),
        status="cancelled" if state == "Canceled" else "active",
        modified=updated_at(item),
        raw={"state": state, "form_slug": order.get("formSlug"), "day_of_levy": item.get("dayOfLevy")},
    )


def membership_from_item(item: Mapping[str, Any]) -> Membership | None:
    """A membership item; the season is the year of the order (HelloAsso forms are usually yearly)."""
    key = person_key(item.get("payer"))
    if not key or item.get("type") != "Membership":
        return None
    order = item.get("order") or {}
    start = _day(order.get("date"))
    state = str(item.get("state") or "")
    return Membership(
        source=SOURCE,
        source_id=str(item.get("id")),
        person_id=key,
        season=str(start.year) if start else "",
        fee=round(int(item.get("amount") or 0) / 100.0, 2),
        status=ITEM_STATUS.get(state, state.lower()),
        start=start,
        modified=updated_at(item),
        raw={"tier": item.get("name") or "", "form_slug": order.get("formSlug"),
             "member_first_name": (item.get("user") or {}).get("firstName") or "",
             "member_last_name": (item.get("user") or {}).get("lastName") or ""},
    )


def participation_from_item(item: Mapping[str, Any], forms: Mapping[str, Mapping[str, Any]]) -> Participation | None:
    """An event registration; the date is the event's start when the form says it, else the order's."""
    key = person_key(item.get("payer"))
    if not key or item.get("type") != "Registration":
        return None
    order = item.get("order") or {}
    form = forms.get(str(order.get("formSlug") or "")) or {}
    when = _day(form.get("startDate")) or _day(order.get("date"))
    if when is None:
        return None
    state = str(item.get("state") or "")
    return Participation(
        source=SOURCE,
        source_id=str(item.get("id")),
        person_id=key,
        event=str(form.get("title") or order.get("formSlug") or ""),
        date=when,
        status=EVENT_STATUS.get(state, state.lower()),
        modified=updated_at(item),
        raw={"tier": item.get("name") or "", "form_slug": order.get("formSlug")},
    )
