"""A loopback Salesforce REST API over TLS for the tests, shaped after Salesforce's REST API Developer Guide.

simple-salesforce always builds ``https://`` URLs, so this server speaks TLS
with a throw-away certificate for 127.0.0.1 that the test session trusts.
Serves the OAuth2 client-credentials token end-point, ``query`` with
``nextRecordsUrl`` batches (a tiny SOQL subset: SELECT / FROM / WHERE ... AND
... / ORDER BY), ``sobjects/Contact/describe``, ``PATCH sobjects/Contact/{id}``
and ``tooling/sobjects/CustomField``; NPSP objects hold the seed data.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from assoc_ai_core.testing.loopback import Exchange, LoopbackApi

CLIENT_ID = "3MVG9-connected-app-for-tests"
CLIENT_SECRET = "sf-secret-for-tests"
VERSION = "59.0"
SOQL = re.compile(r"^SELECT (?P<fields>.+?) FROM (?P<obj>\w+)(?: WHERE (?P<where>.+?))?(?: ORDER BY (?P<order>.+?))?$")
COND = re.compile(r"^(?P<f>[\w.]+) (?P<op>>=|<=|!=|=|>|<|IN) (?P<v>.+)$")


def stamp(text: str) -> str:
    """Salesforce's timestamp format."""
    return dt.datetime.fromisoformat(text).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _value(text: str) -> Any:
    text = text.strip()
    if text.startswith("("):
        return [_value(v) for v in text.strip("()").split(",")]
    if text.startswith("'"):
        return text.strip("'")
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.match(r"^\d{4}-\d\d-\d\dT", text):
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return float(text)


def _cmp(a: Any) -> Any:
    if isinstance(a, str) and re.match(r"^\d{4}-\d\d-\d\dT.*\+0000$", a):
        return dt.datetime.fromisoformat(a.replace("+0000", "+00:00"))
    return a


def _holds(have: Any, op: str, want: Any) -> bool:
    """One SOQL condition on a row's value."""
    if op == "=":
        return bool(have == want)
    if op == "!=":
        return bool(have != want)
    if op == "IN":
        return have in want
    if have is None:
        return False
    return {">=": have >= want, "<=": have <= want, ">": have > want, "<": have < want}[op]


def _nested(obj: str, row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """A row as the API returns it: ``attributes``, and relationship fields (``A.B``) as nested objects."""
    rec: dict[str, Any] = {"attributes": {"type": obj, "url": f"/services/data/v{VERSION}/sobjects/{obj}/{row['Id']}"}}
    for f in fields:
        if "." in f:
            rel, sub = f.split(".", 1)
            if row.get(f) is not None:
                rec.setdefault(rel, {"attributes": {"type": rel}})[sub] = row[f]
            else:
                rec.setdefault(rel, None)
        else:
            rec[f] = row.get(f)
    return rec


@dataclass
class FakeSalesforce(LoopbackApi):
    """Org data (flat keys; ``A.B`` for relationships), tokens, faults (``throttle``: Retry-After of the next 429s),
    request log.  Serve it with TLS: ``fake.running((cert, key))``."""

    methods: ClassVar[tuple[str, ...]] = ("GET", "POST", "PATCH")
    content_type: ClassVar[str] = "application/json;charset=UTF-8"

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    contact_fields: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    locators: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    max_batch: int = 2
    clock: str = "2024-03-01T12:00:00+00:00"

    def seed(self) -> None:
        """NPSP data: contacts (one objecting to profiling), gifts, a recurring donation, a membership."""
        contacts = [("0031", "Camille", "Martin", "camille.martin@example.org", "75011", "1961-02-03", False, "2024-01-05T10:00:00"),
                    ("0032", "Louis", "Bernard", "louis.bernard@example.net", "93100", "1990-07-14", False, "2024-01-06T10:00:00"),
                    ("0033", "Inès", "Dubois", "ines.dubois@example.com", "75020", None, True, "2024-01-06T10:00:00"),
                    ("0034", "Hugo", "Thomas", "hugo.thomas@example.org", "94300", "1975-11-30", False, "2024-02-01T09:00:00")]
        for cid, first, last, email, zip_code, born, dnp, modified in contacts:
            self.objects.setdefault("Contact", []).append({
                "Id": cid, "FirstName": first, "LastName": last, "Email": email, "Phone": None, "MailingPostalCode": zip_code,
                "MailingCity": "Paris", "Birthdate": born, "CreatedDate": stamp("2023-09-01T10:00:00"),
                "SystemModstamp": stamp(modified), "IsDeleted": False, "Individual.HasOptedOutProfiling": dnp})
        self.contact_fields = set(self.objects["Contact"][0]) - {"Individual.HasOptedOutProfiling"} | {"IndividualId"}
        opps = [("0061", "0031", 50.0, "2024-01-06", None, "Donation", "2024-01-06T11:00:00"),
                ("0062", "0032", 30.0, "2024-01-07", None, "Donation", "2024-01-07T12:00:00"),
                ("0063", "0034", 15.0, "2024-02-05", "a0R1", "Donation", "2024-02-05T09:00:00"),
                ("0064", "0032", 25.0, "2024-01-01", None, "Membership", "2024-01-02T09:00:00")]
        for oid, cid, amount, close, recur, rtype, modified in opps:
            self.objects.setdefault("Opportunity", []).append({
                "Id": oid, "npsp__Primary_Contact__c": cid, "Amount": amount, "CloseDate": close, "StageName": "Closed Won",
                "IsWon": True, "CurrencyIsoCode": "EUR", "npe03__Recurring_Donation__c": recur,
                "Campaign.Name": "Printemps 2024" if oid == "0061" else None, "RecordType.DeveloperName": rtype,
                "npe01__Membership_Start_Date__c": "2024-01-01" if rtype == "Membership" else None,
                "npe01__Membership_End_Date__c": "2024-12-31" if rtype == "Membership" else None,
                "npe01__Membership_Origin__c": "New" if rtype == "Membership" else None, "SystemModstamp": stamp(modified)})
        self.objects["npe03__Recurring_Donation__c"] = [{
            "Id": "a0R1", "npe03__Contact__c": "0034", "npe03__Amount__c": 15.0, "npe03__Installment_Period__c": "Monthly",
            "npe03__Date_Established__c": "2024-02-05", "npsp__Status__c": "Active", "npsp__EndDate__c": None,
            "SystemModstamp": stamp("2024-02-05T09:00:00")}]

    def patches(self) -> list[dict[str, Any]]:
        """Logged writes to records."""
        return [r for r in self.requests if r["method"] == "PATCH"]

    # -- serving ------------------------------------------------------------------
    def handle(self, h: Exchange, method: str) -> None:
        """Authenticate and route."""
        parts = urlsplit(h.path)
        raw = h.body.decode()
        with self.lock:
            self.requests.append({"method": method, "path": parts.path, "query": parse_qs(parts.query), "body": raw,
                                  "headers": {k.lower(): v for k, v in h.headers.items()}})
            if self.reply_throttled(h, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "Too many requests"}]):
                return None
            if parts.path == "/services/oauth2/token":
                form = parse_qs(raw)
                if form.get("client_id") != [CLIENT_ID] or form.get("client_secret") != [CLIENT_SECRET]:
                    return self.reply(h, 400, {"error": "invalid_client", "error_description": "invalid client credentials"})
                token = "00D!" + secrets.token_urlsafe(24)
                self.tokens.add(token)
                return self.reply(h, 200, {"access_token": token, "instance_url": self.base, "token_type": "Bearer",
                                           "id": f"{self.base}/id/00D/005", "issued_at": "1709290800000", "signature": "x"})
            if h.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
                return self.reply(h, 401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
            prefix = f"/services/data/v{VERSION}/"
            if not parts.path.startswith(prefix):
                return self.reply(h, 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
            rest = parts.path[len(prefix):].strip("/")
            try:
                return self.route(h, method, rest, parse_qs(parts.query), raw)
            except ValueError as exc:
                return self.reply(h, 400, [{"errorCode": "MALFORMED_QUERY", "message": str(exc)}])

    def route(self, h: Exchange, method: str, rest: str, query: dict[str, list[str]], raw: str) -> None:
        """The REST resources."""
        if rest == "query":
            rows = self.soql(query["q"][0])
            batch = self.max_batch
            match = re.search(r"batchSize=(\d+)", h.headers.get("Sforce-Query-Options", ""))
            if match:
                batch = min(batch, int(match.group(1)))
            return self.page(h, rows, batch)
        if rest.startswith("query/"):
            locator = rest.split("/", 1)[1]
            rows = self.locators.pop(locator, None)
            if rows is None:
                return self.reply(h, 400, [{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}])
            return self.page(h, rows, self.max_batch)
        if rest == "sobjects/Contact/describe":
            return self.reply(h, 200, {"name": "Contact", "fields": [{"name": f} for f in sorted(self.contact_fields)]})
        if rest.startswith("sobjects/Contact/") and method == "PATCH":
            cid = rest.rsplit("/", 1)[1]
            contact = next((c for c in self.objects["Contact"] if c["Id"] == cid), None)
            if contact is None:
                return self.reply(h, 404, [{"errorCode": "NOT_FOUND", "message": "Provided external ID field does not exist"}])
            values = json.loads(raw)
            unknown = [k for k in values if k not in self.contact_fields]
            if unknown:
                return self.reply(h, 400, [{"errorCode": "INVALID_FIELD", "message": f"No such column '{unknown[0]}' on sobject of type Contact"}])
            contact.update(values)
            contact["SystemModstamp"] = stamp(self.clock)
            return self.reply(h, 204, None)
        if rest == "tooling/sobjects/CustomField" and method == "POST":
            body = json.loads(raw)
            obj, name = body["FullName"].split(".")
            if obj != "Contact" or not name.endswith("__c"):
                return self.reply(h, 400, [{"errorCode": "INVALID_INPUT", "message": "bad FullName"}])
            if name in self.contact_fields:
                return self.reply(h, 400, [{"errorCode": "DUPLICATE_DEVELOPER_NAME", "message": "duplicate"}])
            self.contact_fields.add(name)
            return self.reply(h, 201, {"id": "00N" + secrets.token_hex(6), "success": True, "errors": []})
        return self.reply(h, 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])

    def soql(self, text: str) -> list[dict[str, Any]]:
        """Run the SOQL subset; rows come back as the API nests them."""
        m = SOQL.match(" ".join(text.split()))
        if not m:
            raise ValueError(f"unexpected token in: {text[:60]}")
        fields = [f.strip() for f in m["fields"].split(",")]
        rows = list(self.objects.get(m["obj"], []))
        known = set().union(*rows) if rows else set()
        if m["obj"] == "Contact":
            known |= self.contact_fields
        for f in fields:
            if f not in known:
                raise ValueError(f"No such column '{f}' on entity '{m['obj']}'")
        for cond in (m["where"] or "").split(" AND ") if m["where"] else []:
            c = COND.match(cond.strip())
            if not c:
                raise ValueError(f"bad condition {cond}")
            name, op, want = c["f"], c["op"], _value(c["v"])
            rows = [r for r in rows if _holds(_cmp(r.get(name)), op, want)]
        for part in reversed((m["order"] or "").split(",") if m["order"] else []):
            name, *direction = part.split()
            rows.sort(key=lambda r, name=name: _cmp(r.get(name)) or "", reverse=bool(direction) and direction[0] == "DESC")
        return [_nested(m["obj"], r, fields) for r in rows]

    def page(self, h: Exchange, rows: list[dict[str, Any]], batch: int) -> None:
        """One batch and, when more remain, a ``nextRecordsUrl``."""
        head, tail = rows[:batch], rows[batch:]
        body: dict[str, Any] = {"totalSize": len(rows), "done": not tail, "records": head}
        if tail:
            locator = f"01g{secrets.token_hex(4)}-{batch}"
            self.locators[locator] = tail
            body["nextRecordsUrl"] = f"/services/data/v{VERSION}/query/{locator}"
        return self.reply(h, 200, body)
