"""A loopback HelloAsso API v5 server for the tests, shaped after HelloAsso's published OpenAPI description.

It serves ``POST /oauth2/token`` (client_credentials and refresh_token grants)
and the organisation list endpoints the connector reads (``orders``,
``payments``, ``items``, ``forms``) with ``pageSize`` / ``continuationToken``
paging, ``from`` / ``to`` date filters, ``sortOrder`` / ``sortField`` and the
``tierTypes`` / ``formTypes`` filters.  Faults can be injected: 429 with
``Retry-After``, token expiry, 5xx.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from assoc_ai_core.testing.loopback import Exchange, LoopbackApi

ORG = "amis-du-vieux-quartier"
CLIENT_ID = "a1b2c3d4e5f6"
CLIENT_SECRET = "s3cr3t-for-tests-only"
T0 = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)

FORMS = [
    {"formSlug": "dons-libres", "formType": "Donation", "title": "Soutenez le patrimoine du quartier"},
    {"formSlug": "don-mensuel", "formType": "Donation", "title": "Don mensuel"},
    {"formSlug": "adhesion-2024", "formType": "Membership", "title": "Adhésion 2024"},
    {"formSlug": "fete-des-voisins", "formType": "Event", "title": "Fête des voisins",
     "startDate": "2024-06-02T14:00:00+02:00", "endDate": "2024-06-02T20:00:00+02:00"},
    {"formSlug": "visite-guidee", "formType": "Event", "title": "Visite guidée des passages couverts",
     "startDate": "2024-09-21T10:00:00+02:00", "endDate": "2024-09-21T12:00:00+02:00"},
]

PAYERS = [
    ("Camille", "Martin", "camille.martin@example.org", "75011", "Paris"),
    ("Louis", "Bernard", "Louis.Bernard@example.net", "93100", "Montreuil"),
    ("Inès", "Dubois", "ines.dubois@example.com", "75020", "Paris"),
    ("Hugo", "Thomas", "hugo.thomas@example.org", "94300", "Vincennes"),
    ("Léa", "Robert", "lea.robert@example.fr", "75012", "Paris"),
    ("Nora", "Haddad", "nora.haddad@example.org", "75011", "Paris"),
]


def iso(when: datetime) -> str:
    """Timestamps the way HelloAsso writes them (offset included)."""
    return when.isoformat()


@dataclass
class FakeHelloAsso(LoopbackApi):
    """State of the fake API: orders with their items and payments, tokens, injected faults.

    ``throttle`` holds the Retry-After values of the next 429 answers; ``fail_5xx`` counts 503 answers to come.
    """

    content_type: ClassVar[str] = "application/json; charset=utf-8"

    orders: list[dict[str, Any]] = field(default_factory=list)
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    fail_5xx: int = 0
    _next_id: int = 1000

    # -- data -----------------------------------------------------------------------
    def new_id(self) -> int:
        """A fresh numeric id (orders, items and payments share the sequence, as ids are global)."""
        self._next_id += 1
        return self._next_id

    def add_order(self, payer_index: int, form_slug: str, tiers: list[tuple[str, str, int]], when: datetime,
                  payment_state: str = "Authorized", payment_means: str = "Card") -> dict[str, Any]:
        """Add an order of ``tiers`` (type, name, cents) paid in one payment."""
        first, last, email, zip_code, city = PAYERS[payer_index]
        form = next(f for f in FORMS if f["formSlug"] == form_slug)
        payer = {"email": email, "firstName": first, "lastName": last, "zipCode": zip_code, "city": city,
                 "country": "FRA", "address": "1 rue du Test", "dateOfBirth": f"{1950 + payer_index * 7}-05-04T00:00:00"}
        order_id = self.new_id()
        light = {"id": order_id, "date": iso(when), "formSlug": form_slug, "formType": form["formType"],
                 "organizationName": "Les Amis du Vieux Quartier", "organizationSlug": ORG,
                 "meta": {"createdAt": iso(when), "updatedAt": iso(when)}}
        items = []
        for tier_type, name, cents in tiers:
            items.append({"id": self.new_id(), "name": name, "type": tier_type, "amount": cents, "initialAmount": cents,
                          "state": "Processed", "priceCategory": "Fixed", "payer": payer,
                          "user": {"firstName": first, "lastName": last},
                          "meta": {"createdAt": iso(when), "updatedAt": iso(when)},
                          **({"dayOfLevy": 5} if tier_type == "MonthlyDonation" else {})})
        total = sum(c for _, _, c in tiers)
        payment = {"id": self.new_id(), "amount": total, "amountTip": 0, "date": iso(when), "paymentMeans": payment_means,
                   "installmentNumber": 1, "state": payment_state, "type": "Offline" if payment_means == "Cash" else "Installment",
                   "payer": payer, "meta": {"createdAt": iso(when), "updatedAt": iso(when)},
                   "items": [{"id": i["id"], "shareAmount": i["amount"], "shareItemAmount": i["amount"],
                              "shareOptionsAmount": 0, "amount": i["amount"], "type": i["type"], "state": i["state"],
                              "name": i["name"]} for i in items]}
        order = {**light, "payer": payer, "items": items, "payments": [payment],
                 "amount": {"total": total, "vat": 0, "discount": 0}}
        self.orders.append(order)
        return order

    def seed(self) -> None:
        """A season of an association: donations, a monthly donor, memberships, two events."""
        t = T0
        self.add_order(0, "dons-libres", [("Donation", "Don", 5000)], t)
        self.add_order(1, "adhesion-2024", [("Membership", "Adhésion individuelle", 2000)], t + timedelta(days=1))
        self.add_order(1, "dons-libres", [("Donation", "Don", 3000)], t + timedelta(days=1))  # same instant as above
        self.add_order(2, "don-mensuel", [("MonthlyDonation", "Don mensuel", 1500)], t + timedelta(days=3))
        self.add_order(3, "adhesion-2024", [("Membership", "Adhésion famille", 3500), ("Donation", "Don", 1000)],
                       t + timedelta(days=5))
        self.add_order(4, "fete-des-voisins", [("Registration", "Entrée", 0)], t + timedelta(days=20), payment_state="Authorized")
        self.add_order(0, "visite-guidee", [("Registration", "Plein tarif", 800)], t + timedelta(days=40))
        self.add_order(5, "dons-libres", [("Donation", "Don", 2500)], t + timedelta(days=41), payment_state="Refused")
        self.add_order(2, "dons-libres", [("Donation", "Don", 12000)], t + timedelta(days=60), payment_means="Cash",
                       payment_state="Registered")

    def payments(self) -> list[dict[str, Any]]:
        """Every payment, with its order light model as the API nests it."""
        out = []
        for order in self.orders:
            light = {k: order[k] for k in ("id", "date", "formSlug", "formType", "organizationName", "organizationSlug", "meta")}
            for p in order["payments"]:
                out.append({**p, "order": light})
        return out

    def items(self) -> list[dict[str, Any]]:
        """Every item, with its order light model and payments as the API nests them."""
        out = []
        for order in self.orders:
            light = {k: order[k] for k in ("id", "date", "formSlug", "formType", "organizationName", "organizationSlug", "meta")}
            for i in order["items"]:
                pays = [{"id": p["id"], "amount": p["amount"], "state": p["state"], "date": p["date"]} for p in order["payments"]]
                out.append({**i, "order": light, "payments": pays})
        return out

    def touch(self, obj: dict[str, Any], when: datetime, **changes: Any) -> None:
        """Change an object as HelloAsso would, moving its ``meta.updatedAt``."""
        obj.update(changes)
        obj["meta"] = {**obj["meta"], "updatedAt": iso(when)}

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (refresh tokens stay valid)."""
        with self.lock:
            self.access_tokens.clear()

    # -- serving --------------------------------------------------------------------
    def handle(self, h: Exchange, method: str) -> None:
        """Route one request."""
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        body = h.body.decode()
        with self.lock:
            self.requests.append({"method": method, "path": parts.path, "query": query,
                                  "auth": h.headers.get("Authorization", ""), "body": parse_qs(body)})
            if self.reply_throttled(h, {"message": "Too Many Requests"}):
                return None
            if self.fail_5xx:
                self.fail_5xx -= 1
                return self.reply(h, 503, {"message": "Service Unavailable"})
        if method == "POST" and parts.path == "/oauth2/token":
            return self.token(h, parse_qs(body))
        if method != "GET" or not parts.path.startswith("/v5/"):
            return self.reply(h, 404, {"message": "Not Found"})
        token = h.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            valid = token in self.access_tokens
        if not valid:
            return self.reply(h, 401, {"message": "Unauthorized, you must add a valid JWT into Authorization Header"})
        segments = parts.path.split("/")  # ['', 'v5', 'organizations', slug, what]
        if len(segments) != 5 or segments[2] != "organizations":
            return self.reply(h, 404, {"message": "Not Found"})
        if segments[3] != ORG:
            return self.reply(h, 404, {"message": "Organization not found"})
        what = segments[4]
        if what == "orders":
            rows = [{k: v for k, v in o.items() if k != "payments"} | {"payments": o["payments"]} for o in self.orders]
            date_key = lambda r: r["date"]  # noqa: E731
        elif what == "payments":
            rows = self.payments()
            date_key = lambda r: r["date"]  # noqa: E731
        elif what == "items":
            rows = self.items()
            date_key = lambda r: r["order"]["date"]  # noqa: E731
            tiers = query.get("tierTypes")
            if tiers:
                rows = [r for r in rows if r["type"] in tiers]
        elif what == "forms":
            rows = [dict(f, organizationSlug=ORG, meta={"createdAt": iso(T0), "updatedAt": iso(T0)}) for f in FORMS]
            types = query.get("formTypes")
            if types:
                rows = [r for r in rows if r["formType"] in types]
            date_key = lambda r: r["meta"]["createdAt"]  # noqa: E731
        else:
            return self.reply(h, 404, {"message": "Not Found"})
        return self.listing(h, rows, query, date_key)

    def listing(self, h: Exchange, rows: list[dict[str, Any]], query: dict[str, list[str]], date_key: Any) -> None:
        """Filter, sort and page a list the way the v5 API does."""
        page_size = int(query.get("pageSize", ["20"])[0])
        if page_size > 100:
            return self.reply(h, 400, {"errors": [{"code": "ArgumentInvalid", "message": "pageSize must be <= 100"}]})
        if "from" in query:
            start = datetime.fromisoformat(query["from"][0])
            rows = [r for r in rows if datetime.fromisoformat(date_key(r)) >= start]
        if "to" in query:
            end = datetime.fromisoformat(query["to"][0])
            rows = [r for r in rows if datetime.fromisoformat(date_key(r)) < end]
        by_update = query.get("sortField", ["Date"])[0] == "UpdateDate"
        stamp = (lambda r: r["meta"]["updatedAt"]) if by_update else date_key
        key = lambda r: (datetime.fromisoformat(stamp(r)), str(r.get("id", r.get("formSlug"))))  # noqa: E731
        rows = sorted(rows, key=key, reverse=query.get("sortOrder", ["Desc"])[0] == "Desc")
        offset = 0
        if "continuationToken" in query:
            offset = int(base64.urlsafe_b64decode(query["continuationToken"][0]).decode())
        page = rows[offset : offset + page_size]
        next_token = base64.urlsafe_b64encode(str(offset + len(page)).encode()).decode()
        total = len(rows)
        return self.reply(h, 200, {"data": page, "pagination": {
            "pageSize": page_size, "totalCount": total, "pageIndex": offset // page_size + 1,
            "totalPages": (total + page_size - 1) // page_size, "continuationToken": next_token}})

    def token(self, h: Exchange, form: dict[str, list[str]]) -> None:
        """The OAuth2 token endpoint."""
        grant = form.get("grant_type", [""])[0]
        with self.lock:
            if grant == "client_credentials":
                if form.get("client_id") != [CLIENT_ID] or form.get("client_secret") != [CLIENT_SECRET]:
                    return self.reply(h, 400, {"error": "unauthorized_client", "error_description": "Invalid client"})
            elif grant == "refresh_token":
                refresh = form.get("refresh_token", [""])[0]
                if form.get("client_id") != [CLIENT_ID] or refresh not in self.refresh_tokens:
                    return self.reply(h, 400, {"error": "invalid_grant"})
                self.refresh_tokens.discard(refresh)  # refresh tokens are single use
            else:
                return self.reply(h, 400, {"error": "unsupported_grant_type"})
            access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            self.access_tokens.add(access)
            self.refresh_tokens.add(refresh)
        return self.reply(h, 200, {"access_token": access, "token_type": "bearer", "expires_in": 1799,
                                   "refresh_token": refresh})
