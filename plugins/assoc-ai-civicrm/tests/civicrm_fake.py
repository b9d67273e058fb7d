"""A loopback CiviCRM API v4 REST server for the tests, following the published API v4 REST documents.

``POST /civicrm/ajax/api4/{Entity}/{action}`` with a form field ``params``
(JSON); authentication ``X-Civi-Auth: Bearer <api key>`` plus, when the site
demands it, ``X-Civi-Key: <site key>``; ``X-Requested-With: XMLHttpRequest``
required.  Answers ``{"entity", "action", "version": 4, "count", "countFetched",
"values"}``; failures carry ``error_message`` / ``error_code`` with an HTTP
error status.  A small query engine handles ``select``, ``where`` (=, !=, >, >=,
<, <=, IN, IS NULL), ``orderBy``, ``limit``, ``offset`` and ``get``,
``create``, ``update``, ``save`` and ``getFields``.  Custom fields appear as
``Group.field`` once created through CustomGroup/CustomField.

Sites differ by version, and the fake can be any of them: ``missing`` lists
fields a site does not have yet (``{"Participant": {"modified_date"}}`` for an
older CiviCRM), ``absent`` entities its API v4 does not offer (MembershipLog on
old sites).  As CiviCRM does, an unknown field in ``select`` is ignored, while in
``where`` or ``orderBy`` it is an error (HTTP 500, ``Invalid field '...'``), and
an entity that does not exist answers 404.  Memberships are kept as CiviCRM
keeps them: one row per member whose renewals move the end date, each change
written to MembershipLog; dues are linked through MembershipPayment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from assoc_ai_core.testing.loopback import Exchange, LoopbackApi

API_KEY = "civi-api-key-for-tests"
SITE_KEY = "civi-site-key-for-tests"
PREFIX = "/civicrm/ajax/api4/"


class ApiError(Exception):
    """An API v4 exception: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _match(row: dict[str, Any], clause: list[Any]) -> bool:
    name, op, *rest = clause
    value = row.get(name)
    arg = rest[0] if rest else None
    if op == "=":
        return value == arg
    if op == "!=":
        return value != arg
    if op == "IN":
        return value in arg
    if op == "IS NULL":
        return value in (None, "")
    if value is None:
        return False
    if op == ">":
        return value > arg
    if op == ">=":
        return value >= arg
    if op == "<":
        return value < arg
    if op == "<=":
        return value <= arg
    raise ApiError(400, f"Unsupported operator {op}")


@dataclass
class FakeCiviCRM(LoopbackApi):
    """Tables of the fake site, injected faults (``throttle``: Retry-After of the next 429s) and a request log."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    require_site_key: bool = True
    custom_fields: dict[str, set[str]] = field(default_factory=dict)
    clock: str = "2024-03-01 12:00:00"
    missing: dict[str, set[str]] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    _next: int = 500

    def table(self, entity: str) -> list[dict[str, Any]]:
        """Rows of ``entity`` (created on demand)."""
        return self.tables.setdefault(entity, [])

    def next_id(self) -> int:
        """A fresh id."""
        self._next += 1
        return self._next

    def writes(self) -> list[dict[str, Any]]:
        """Logged calls that change data."""
        return [r for r in self.requests if r["action"] in ("create", "update", "save", "delete")]

    def seed(self) -> None:
        """A small association: contacts, gifts, a standing order, members, an event, volunteering."""
        people = [
            (101, "Camille", "Martin", "camille.martin@example.org", "75011", "Paris", "1961-02-03", False, "2024-01-05 10:00:00"),
            (102, "Louis", "Bernard", "louis.bernard@example.net", "93100", "Montreuil", "1990-07-14", False, "2024-01-05 10:00:00"),
            (103, "Inès", "Dubois", "ines.dubois@example.com", "75020", "Paris", "", True, "2024-01-20 08:30:00"),
            (104, "Hugo", "Thomas", "hugo.thomas@example.org", "94300", "Vincennes", "1975-11-30", False, "2024-02-01 09:00:00"),
            (105, "Léa", "Robert", "lea.robert@example.fr", "75012", "Paris", "1988-04-22", False, "2024-02-10 17:45:00"),
        ]
        for cid, first, last, email, zip_code, city, born, dnt, modified in people:
            self.table("Contact").append({
                "id": cid, "contact_type": "Individual", "is_deleted": False, "first_name": first, "last_name": last,
                "display_name": f"{first} {last}", "email_primary.email": email, "phone_primary.phone": "",
                "address_primary.postal_code": zip_code, "address_primary.city": city, "birth_date": born or None,
                "gender_id:name": "", "created_date": "2023-09-01 10:00:00", "modified_date": modified,
                "is_opt_out": False, "do_not_trade": dnt})
        self.table("Contact").append({"id": 199, "contact_type": "Organization", "is_deleted": False,
                                      "organization_name": "Mairie", "modified_date": "2024-01-05 10:00:00"})
        gifts = [(201, 101, "50.00", "2024-01-06 11:00:00", None, "Completed", "Donation"),
                 (202, 102, "30.00", "2024-01-07 12:00:00", None, "Completed", "Donation"),
                 (203, 104, "15.00", "2024-02-05 09:00:00", 301, "Completed", "Donation"),
                 (204, 104, "15.00", "2024-03-05 09:00:00", 301, "Completed", "Donation"),
                 (205, 105, "20.00", "2024-02-11 10:00:00", None, "Completed", "Member Dues"),
                 (206, 101, "120.00", "2024-02-20 15:30:00", None, "Completed", "Donation")]
        for gid, cid, amount, when, recur, status, ftype in gifts:
            self.table("Contribution").append({
                "id": gid, "contact_id": cid, "total_amount": amount, "currency": "EUR", "receive_date": when,
                "contribution_recur_id": recur, "campaign_id:label": "Printemps 2024" if gid == 206 else None,
                "payment_instrument_id:name": "Credit Card", "financial_type_id:name": ftype,
                "contribution_status_id:name": status, "is_test": False, "is_template": False, "modified_date": when})
        self.table("ContributionRecur").append({
            "id": 301, "contact_id": 104, "amount": "15.00", "currency": "EUR", "frequency_unit:name": "month",
            "frequency_interval": 1, "start_date": "2024-02-05 00:00:00", "end_date": None,
            "contribution_status_id:name": "In Progress", "is_test": False, "modified_date": "2024-02-05 09:00:00"})
        # Louis joined in 2022 and renewed twice (his membership row now ends in 2024); Léa joined for one season.
        members = [(401, 102, "2022-01-01", "2022-01-01", "2024-12-31", "Current"),
                   (402, 105, "2023-09-01", "2023-09-01", "2024-08-31", "Current")]
        for mid, cid, joined, start, end, status in members:
            self.table("Membership").append({
                "id": mid, "contact_id": cid, "membership_type_id:name": "Individuelle",
                "membership_type_id.minimum_fee": "20.00", "status_id:name": status, "join_date": joined,
                "start_date": start, "end_date": end, "is_test": False})
        history = [(701, 401, "2022-01-01", "2022-12-31", "New", "2022-01-03 10:00:00"),
                   (702, 401, "2022-01-01", "2022-12-31", "Current", "2022-04-01 01:00:00"),
                   (703, 401, "2022-01-01", "2023-12-31", "Current", "2022-12-15 09:00:00"),
                   (704, 401, "2022-01-01", "2024-12-31", "Current", "2023-12-20 09:30:00"),
                   (705, 402, "2023-09-01", "2024-08-31", "New", "2023-09-01 11:00:00")]
        for lid, mid, start, end, status, modified in history:
            self.log_membership(lid, mid, start, end, status, modified)
        dues = [(211, 102, "20.00", "2022-01-03 10:00:00", 401), (212, 102, "25.00", "2022-12-15 09:00:00", 401),
                (213, 102, "25.00", "2023-12-20 09:30:00", 401), (205, 105, None, None, 402)]
        for gid, cid, amount, when, mid in dues:
            if amount is not None:
                self.table("Contribution").append({
                    "id": gid, "contact_id": cid, "total_amount": amount, "currency": "EUR", "receive_date": when,
                    "contribution_recur_id": None, "campaign_id:label": None, "payment_instrument_id:name": "Check",
                    "financial_type_id:name": "Member Dues", "contribution_status_id:name": "Completed",
                    "is_test": False, "is_template": False, "modified_date": when})
            self.pay_membership(mid, gid)
        self.table("Participant").append({
            "id": 501, "contact_id": 101, "event_id": 7, "event_id.title": "Fête des voisins",
            "event_id.start_date": "2024-06-02 14:00:00", "status_id:name": "Attended",
            "register_date": "2024-05-20 10:00:00", "is_test": False, "modified_date": "2024-06-03 09:00:00"})
        self.table("Activity").append({
            "id": 601, "activity_type_id:name": "Volunteer", "subject": "Accueil des visiteurs",
            "activity_date_time": "2024-06-02 13:00:00", "duration": 180, "location": "Place du marché",
            "status_id:name": "Completed", "assignee_contact_id": [102, 105], "target_contact_id": [],
            "is_deleted": False, "modified_date": "2024-06-02 18:00:00"})

        for entity, names in self.missing.items():
            for row in self.table(entity):
                for name in names:
                    row.pop(name, None)

    def log_membership(self, lid: int, mid: int, start: str, end: str, status: str, modified: str) -> None:
        """A MembershipLog row, as CiviCRM writes one on signup, renewal and status change."""
        membership = next(m for m in self.table("Membership") if m["id"] == mid)
        self.table("MembershipLog").append({
            "id": lid, "membership_id": mid, "start_date": start, "end_date": end, "status_id:name": status,
            "modified_date": modified, "membership_type_id:name": membership["membership_type_id:name"],
            "membership_type_id.minimum_fee": membership["membership_type_id.minimum_fee"],
            "membership_id.contact_id": membership["contact_id"], "membership_id.is_test": membership["is_test"],
            "membership_id.status_id:name": membership["status_id:name"], "membership_id.join_date": membership["join_date"]})

    def pay_membership(self, mid: int, contribution_id: int) -> None:
        """A MembershipPayment row linking a contribution to the membership it paid."""
        gift = next(g for g in self.table("Contribution") if g["id"] == contribution_id)
        self.table("MembershipPayment").append({
            "id": len(self.table("MembershipPayment")) + 1, "membership_id": mid, "contribution_id": contribution_id,
            "contribution_id.total_amount": gift["total_amount"], "contribution_id.currency": gift["currency"],
            "contribution_id.receive_date": gift["receive_date"], "contribution_id.is_test": gift["is_test"],
            "contribution_id.contribution_status_id:name": gift["contribution_status_id:name"]})

    # -- serving ------------------------------------------------------------------
    def handle(self, h: Exchange, method: str) -> None:
        """Authenticate and run one API call (API v4 takes GET and POST alike)."""
        parts = urlsplit(h.path)
        body = h.body.decode()
        form = parse_qs(body) if body else parse_qs(parts.query)
        if not parts.path.startswith(PREFIX) or parts.path.count("/") != 5:
            return self.reply(h, 404, None, raw=b"<html>Page not found</html>", content_type="text/html")
        entity, action = parts.path[len(PREFIX):].split("/")
        try:
            params = json.loads(form.get("params", ["{}"])[0])
        except json.JSONDecodeError:
            return self.reply(h, 400, {"error_message": "Invalid params JSON", "error_code": 0})
        with self.lock:
            self.requests.append({"entity": entity, "action": action, "params": params,
                                  "headers": {k.lower(): v for k, v in h.headers.items()}})
            if self.reply_throttled(h, {"error_message": "Too Many Requests"}):
                return None
            if h.headers.get("X-Requested-With") != "XMLHttpRequest":
                return self.reply(h, 403, {"error_message": "SECURITY ALERT: Ajax requests can only be issued by javascript clients."})
            if h.headers.get("X-Civi-Auth") != f"Bearer {API_KEY}" or (
                    self.require_site_key and h.headers.get("X-Civi-Key") != SITE_KEY):
                return self.reply(h, 401, {"error_message": "Authentication failed"})
            try:
                if entity in self.absent:
                    raise ApiError(404, f"Api {entity} {action} version 4 does not exist.")
                result = self.run(entity, action, params)
            except ApiError as exc:
                return self.reply(h, exc.status, {"error_message": str(exc), "error_code": 0, "status": exc.status})
        return self.reply(h, 200, {"entity": entity, "action": action, "debug": None, "version": 4,
                                   "count": len(result), "countFetched": len(result), "values": result})

    def fields_of(self, entity: str) -> set[str] | None:
        """Known field names of ``entity`` (None: accept anything, for entities the tests do not check)."""
        rows = self.table(entity)
        if entity != "Contact" or not rows:
            return None
        known = {k for r in rows for k in r} | {"id"}
        for group, names in self.custom_fields.items():
            known |= {f"{group}.{n}" for n in names}
        return known

    def columns(self, entity: str) -> set[str] | None:
        """Every field name ``entity`` has on this site, joins included (None: no rows to tell)."""
        rows = self.table(entity)
        if not rows:
            return None
        names = {k for r in rows for k in r} | {"id"}
        if entity == "Contact":
            names |= {f"{g}.{n}" for g, fields in self.custom_fields.items() for n in fields}
        return names - self.missing.get(entity, set())

    def run(self, entity: str, action: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The query engine."""
        known = self.fields_of(entity)
        if action == "getFields":
            columns = self.columns(entity)
            return [{"name": n} for n in sorted(columns or ())]
        if action == "get":
            return self.get(entity, params, known)
        if action == "create" and entity in ("CustomGroup", "CustomField"):
            return self.create_custom(entity, params["values"])
        if action in ("create", "save"):
            return self.save(entity, action, params, known)
        if action == "update":
            values = params.get("values") or {}
            self.check_fields(entity, values, known)
            found = [r for r in self.table(entity) if all(_match(r, c) for c in params.get("where", []))]
            for r in found:
                r.update(values)
            return [dict(r) for r in found]
        raise ApiError(404, f"Api {entity} {action} version 4 does not exist.")

    def get(self, entity: str, params: dict[str, Any], known: set[str] | None) -> list[dict[str, Any]]:
        """``get``: where, orderBy, limit/offset, select (custom fields by ``Group.field``)."""
        where = params.get("where", [])
        columns = self.columns(entity)
        for name in [c[0] for c in where] + list(params.get("orderBy") or {}):
            if columns is not None and name not in columns:
                raise ApiError(500, f"Invalid field '{name}'")
        found = [r for r in self.table(entity) if all(_match(r, c) for c in where)]
        if entity == "CustomField":
            found = [{"name": n, "custom_group_id:name": g} for g, names in self.custom_fields.items() for n in names
                     if all(_match({"name": n, "custom_group_id:name": g}, c) for c in where)]
        if entity == "CustomGroup":
            found = [{"id": i + 1, "name": g} for i, g in enumerate(self.custom_fields)
                     if all(_match({"name": g}, c) for c in where)]
        for name, direction in reversed(list((params.get("orderBy") or {}).items())):
            found.sort(key=lambda r: (r.get(name) is None, r.get(name) or 0), reverse=direction == "DESC")
        offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 0)
        found = found[offset : offset + limit] if limit else found[offset:]
        select = params.get("select") or []
        if select:
            self.check_select(select, known)
            found = [{k: r.get(k) for k in ["id", *select] if k in r or k in select} for r in found]
        return [dict(r) for r in found]

    def check_select(self, select: list[str], known: set[str] | None) -> None:
        """Refuse unknown custom or joined fields in ``select``, as CiviCRM does."""
        if known is None:
            return
        bad = [s for s in select if s not in known and "." in s and s.split(".")[0] in self.custom_fields]
        bad += [s for s in select if "." in s and s.split(".")[0] not in self.custom_fields
                and s not in known and not s.startswith(("email_primary", "phone_primary", "address_primary"))]
        if bad:
            raise ApiError(500, f"Invalid field '{bad[0]}'")

    def create_custom(self, entity: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        """``CustomGroup.create`` / ``CustomField.create``: the custom fields then exist on Contact."""
        if entity == "CustomGroup":
            self.custom_fields.setdefault(values["name"], set())
            return [{"id": len(self.custom_fields), **values}]
        group = values["custom_group_id.name"]
        if group not in self.custom_fields:
            raise ApiError(500, f"Custom group '{group}' not found")
        self.custom_fields[group].add(values["name"])
        return [{"id": self.next_id(), **values}]

    def save(self, entity: str, action: str, params: dict[str, Any], known: set[str] | None) -> list[dict[str, Any]]:
        """``create`` / ``save`` of records (``save`` with an id updates that record, which must exist)."""
        rows = self.table(entity)
        out = []
        for record in params.get("records") or [params.get("values") or {}]:
            self.check_fields(entity, record, known)
            existing = next((r for r in rows if "id" in record and r.get("id") == record["id"]), None)
            if existing is None:
                if action == "save" and "id" in record:
                    raise ApiError(500, f"{entity} {record['id']} not found")
                existing = {"id": self.next_id()}
                rows.append(existing)
            existing.update(record)
            if "modified_date" in existing:
                existing["modified_date"] = self.clock
            out.append(dict(existing))
        return out

    def check_fields(self, entity: str, record: dict[str, Any], known: set[str] | None) -> None:
        """Refuse writes to custom fields that were never created, as CiviCRM does."""
        if known is None:
            return
        for key in record:
            if "." in key and key not in known:
                raise ApiError(500, f"Invalid field '{key}'")
