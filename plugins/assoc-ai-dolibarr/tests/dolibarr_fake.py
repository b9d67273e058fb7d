"""A loopback Dolibarr REST API (``/api/index.php``) for the tests, following Dolibarr's published API explorer.

Serves ``status``, ``members`` (list, get, put), ``subscriptions``,
``donations`` and ``setup/extrafields/{elementtype}/{attrname}`` (get, post),
with the ``DOLAPIKEY`` header, ``sortfield``/``sortorder``/``limit``/``page``
paging and ``sqlfilters`` of the form ``(t.tms:>=:'YYYY-MM-DD HH:MM:SS')``.
Lists with no result answer 404 "No ... found" as Dolibarr does; dates are
Unix timestamps; extra fields travel in ``array_options`` as ``options_<name>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from assoc_ai_core.testing.loopback import Exchange, LoopbackApi

API_KEY = "dolibarr-user-key-for-tests"
ADMIN_KEY = "dolibarr-admin-key-for-tests"
PARIS = ZoneInfo("Europe/Paris")
BASE = "/api/index.php/"
FILTER = re.compile(r"^\(t\.tms:>=:'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)'\)$")


def ts(local: str) -> int:
    """A Paris wall-clock time as the Unix timestamp Dolibarr returns."""
    return int(datetime.fromisoformat(local).replace(tzinfo=PARIS).timestamp())


@dataclass
class FakeDolibarr(LoopbackApi):
    """Tables, declared extra fields, faults (``throttle``: Retry-After of the next 429s) and a request log."""

    methods: ClassVar[tuple[str, ...]] = ("GET", "PUT", "POST")

    members: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    donations: list[dict[str, Any]] = field(default_factory=list)
    extrafields: dict[str, dict[str, Any]] = field(default_factory=dict)
    clock: str = "2024-03-01 12:00:00"

    def seed(self) -> None:
        """Five members (one objecting to profiling), their subscriptions, donations."""
        rows = [(1, "Camille", "Martin", "camille.martin@example.org", "75011", "Paris", "2024-01-05 10:00:00", ""),
                (2, "Louis", "Bernard", "louis.bernard@example.net", "93100", "Montreuil", "2024-01-06 10:00:00", ""),
                (3, "Inès", "Dubois", "ines.dubois@example.com", "75020", "Paris", "2024-01-06 10:00:00", "1"),
                (4, "Hugo", "Thomas", "hugo.thomas@example.org", "94300", "Vincennes", "2024-02-01 09:00:00", ""),
                (5, "Léa", "Robert", "lea.robert@example.fr", "75012", "Paris", "2024-02-10 17:45:00", "")]
        for mid, first, last, email, zip_code, town, modified, dnp in rows:
            self.members.append({
                "id": str(mid), "ref": str(mid), "firstname": first, "lastname": last, "email": email,
                "zip": zip_code, "town": town, "birth": ts("1970-05-04 00:00:00") + mid * 86400 * 365, "typeid": "1",
                "type": "Adhérent", "status": "1", "morphy": "phy", "datec": ts("2023-09-01 10:00:00"),
                "tms": ts(modified), "array_options": {"options_do_not_profile": dnp}})
        for sid, member, start, end, amount, when in [(11, 1, "2024-01-01", "2024-12-31", "20.00", "2024-01-05 10:05:00"),
                                                      (12, 2, "2023-09-01", "2024-08-31", "25.00", "2024-01-06 10:05:00"),
                                                      (13, 4, "2024-02-01", "2025-01-31", "20.00", "2024-02-01 09:05:00")]:
            self.subscriptions.append({"id": str(sid), "fk_adherent": str(member), "fk_type": "1",
                                       "dateh": ts(f"{start} 00:00:00"), "datef": ts(f"{end} 00:00:00"),
                                       "amount": amount, "datec": ts(when), "tms": ts(when)})
        for did, email, amount, status, when in [(21, "camille.martin@example.org", "50.00", 2, "2024-01-06 11:00:00"),
                                                 (22, "louis.bernard@example.net", "30.00", 2, "2024-01-07 12:00:00"),
                                                 (23, "passant@example.org", "10.00", 2, "2024-01-08 12:00:00"),
                                                 (24, "hugo.thomas@example.org", "80.00", 1, "2024-02-02 12:00:00")]:
            self.donations.append({"id": str(did), "ref": f"DON{did}", "email": email, "amount": amount,
                                   "status": str(status), "date": ts(when), "datec": ts(when), "tms": ts(when),
                                   "modepaymentcode": "CB", "fk_project": None})

    def writes(self) -> list[dict[str, Any]]:
        """Logged calls that change data."""
        return [r for r in self.requests if r["method"] in ("POST", "PUT", "DELETE")]

    # -- serving ------------------------------------------------------------------
    def handle(self, h: Exchange, method: str) -> None:
        """Route one request."""
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        raw = h.body
        body = json.loads(raw) if raw else None
        key = h.headers.get("DOLAPIKEY", "")
        with self.lock:
            self.requests.append({"method": method, "path": parts.path, "query": query, "body": body, "key": key})
            if self.reply_throttled(h, {"error": {"code": 429, "message": "Too Many Requests"}}):
                return None
            if key not in (API_KEY, ADMIN_KEY):
                return self.error(h, 401, "Unauthorized: Failed to login to API. No parameter 'HTTP_DOLAPIKEY' on HTTP header (and no parameter DOLAPIKEY in URL).")
            if not parts.path.startswith(BASE):
                return self.error(h, 404, "Not Found")
            route = parts.path[len(BASE):].strip("/").split("/")
            return self.route(h, method, route, query, body, key)

    def route(self, h: Exchange, method: str, route: list[str], query: dict[str, str], body: Any, key: str) -> None:
        """The endpoints."""
        if route == ["status"]:
            return self.reply(h, 200, {"success": {"code": 200, "dolibarr_version": "20.0.2", "access_locked": "0"}})
        if len(route) == 1 and route[0] in ("members", "subscriptions", "donations") and method == "GET":
            return self.listing(h, route[0], getattr(self, route[0]), query)
        if len(route) == 2 and route[0] == "members":
            member = next((m for m in self.members if m["id"] == route[1]), None)
            if member is None:
                return self.error(h, 404, "Not Found: member not found")
            if method == "PUT":
                for k, v in (body or {}).get("array_options", {}).items():
                    if k.removeprefix("options_") in self.extrafields:  # undeclared extra fields are dropped
                        member["array_options"][k] = v
                member["tms"] = ts(self.clock)
            return self.reply(h, 200, member)
        if len(route) == 4 and route[:2] == ["setup", "extrafields"] and route[2] == "adherent":
            name = route[3]
            if method == "GET":
                if name not in self.extrafields:
                    return self.error(h, 404, "Extrafield not found from attrname and elementtype")
                return self.reply(h, 200, {"adherent": {name: self.extrafields[name]}})
            if method == "POST":
                if key != ADMIN_KEY:
                    return self.error(h, 403, "Only an admin user can create an extrafield")
                if name in self.extrafields:
                    return self.error(h, 409, "Duplicate extrafield already found from attrname and elementtype")
                self.extrafields[name] = dict(body or {})
                return self.reply(h, 200, len(self.extrafields))
        return self.error(h, 404, "Not Found")

    def listing(self, h: Exchange, what: str, rows: list[dict[str, Any]], query: dict[str, str]) -> None:
        """sqlfilters, sort, limit/page."""
        if "sqlfilters" in query:
            match = FILTER.match(query["sqlfilters"])
            if not match:
                return self.error(h, 400, "Error when validating parameter sqlfilters -> Bad syntax of the search string")
            since = ts(match.group(1))
            rows = [r for r in rows if r["tms"] >= since]
        field_name = query.get("sortfield", "t.rowid").removeprefix("t.")
        column = "id" if field_name == "rowid" else field_name
        rows = sorted(rows, key=lambda r: (r[column] if column != "id" else int(r["id"])), reverse=query.get("sortorder") == "DESC")
        limit, page = int(query.get("limit", 100)), int(query.get("page", 0))
        rows = rows[page * limit : (page + 1) * limit]
        if not rows:
            return self.error(h, 404, f"Not Found: No {what[:-1]} found")
        return self.reply(h, 200, rows)

    def error(self, h: Exchange, status: int, message: str) -> None:
        """Dolibarr's error shape."""
        return self.reply(h, status, {"error": {"code": status, "message": message}})
