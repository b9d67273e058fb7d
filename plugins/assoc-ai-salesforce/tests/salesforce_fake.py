"""A loopback Salesforce REST API over TLS for the tests, shaped after Salesforce's REST API Developer Guide.

simple-salesforce always builds ``https://`` URLs, so this server speaks TLS
with a throw-away certificate for 127.0.0.1 that the test session trusts.
Serves the OAuth2 client-credentials token end-point, ``query`` with
``nextRecordsUrl`` batches (a tiny SOQL subset: SELECT / FROM / WHERE ... AND
... / ORDER BY), describe global and ``sobjects/{Object}/describe``, record
create and update, sObject Collections (``composite/sobjects``, 200 records at
most) and ``tooling/sobjects/CustomField``; NPSP objects hold the seed data.

It reproduces what varies between real orgs: a single-currency org has no
``CurrencyIsoCode`` field (``multi_currency=False``, the default, as in most
small nonprofit orgs), an org without Data Protection and Privacy has no
``Individual`` object (``privacy=False``), and a field created through the
Tooling API has no field-level security: nobody sees or writes it until a
FieldPermissions record of a permission set assigned to the user grants it.
Unknown columns give the INVALID_FIELD error body Salesforce sends.
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


class SoqlError(ValueError):
    """A query Salesforce refuses: its error code and the message it sends (with the caret line for a bad field)."""

    def __init__(self, code: str, message: str, soql: str = "", field_name: str = "") -> None:
        if soql and field_name:
            column = soql.find(field_name) + 1
            message = f"\n{soql}\n{' ' * max(column - 1, 0)}^\nERROR at Row:1:Column:{column}\n{message}"
        super().__init__(message)
        self.code = code


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
    """A row as the API returns it: ``attributes``, and relationship fields (``A.B.C``) as nested objects."""
    rec: dict[str, Any] = {"attributes": {"type": obj, "url": f"/services/data/v{VERSION}/sobjects/{obj}/{row['Id']}"}}
    for f in fields:
        if "." not in f:
            rec[f] = row.get(f)
            continue
        *path, leaf = f.split(".")
        if row.get(f) is None:
            rec.setdefault(path[0], None)
            continue
        node = rec
        for rel in path:
            if node.get(rel) is None:
                node[rel] = {"attributes": {"type": rel}}
            node = node[rel]
        node[leaf] = row[f]
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
    multi_currency: bool = False
    privacy: bool = True
    payments: bool = True
    user_id: str = "005000000000001AAA"
    tooling_fields: set[str] = field(default_factory=set)

    RELATIONS: ClassVar[dict[str, dict[str, tuple[str, str]]]] = {
        "Contact": {"Individual": ("IndividualId", "Individual")},
        "Opportunity": {"Campaign": ("CampaignId", "Campaign"), "RecordType": ("RecordTypeId", "RecordType")},
        "npe01__OppPayment__c": {"npe01__Opportunity__r": ("npe01__Opportunity__c", "Opportunity")},
    }
    FIXED_FIELDS: ClassVar[dict[str, set[str]]] = {
        "Individual": {"Id", "HasOptedOutProfiling"}, "Campaign": {"Id", "Name"}, "RecordType": {"Id", "DeveloperName"},
        "PermissionSet": {"Id", "Name", "Label", "Description"},
        "PermissionSetAssignment": {"Id", "PermissionSetId", "AssigneeId"},
        "FieldPermissions": {"Id", "ParentId", "SobjectType", "Field", "PermissionsRead", "PermissionsEdit"},
        "Organization": {"Id", "DefaultCurrencyIsoCode"},
    }

    def seed(self) -> None:
        """NPSP data: contacts (one objecting to profiling), gifts with their payments, a pledge paid in part,
        a recurring donation, a membership."""
        contacts = [("0031", "Camille", "Martin", "camille.martin@example.org", "75011", "1961-02-03", False, "2024-01-05T10:00:00"),
                    ("0032", "Louis", "Bernard", "louis.bernard@example.net", "93100", "1990-07-14", False, "2024-01-06T10:00:00"),
                    ("0033", "Inès", "Dubois", "ines.dubois@example.com", "75020", None, True, "2024-01-06T10:00:00"),
                    ("0034", "Hugo", "Thomas", "hugo.thomas@example.org", "94300", "1975-11-30", False, "2024-02-01T09:00:00")]
        for cid, first, last, email, zip_code, born, dnp, modified in contacts:
            row = {"Id": cid, "FirstName": first, "LastName": last, "Email": email, "Phone": None,
                   "MailingPostalCode": zip_code, "MailingCity": "Paris", "Birthdate": born,
                   "CreatedDate": stamp("2023-09-01T10:00:00"), "SystemModstamp": stamp(modified), "IsDeleted": False}
            if self.privacy:
                row.update({"IndividualId": f"0PK{cid}", "Individual.HasOptedOutProfiling": dnp})
            self.objects.setdefault("Contact", []).append(row)
        self.contact_fields = {k for k in self.objects["Contact"][0] if "." not in k}
        opps = [("0061", "0031", 50.0, "2024-01-06", None, "Donation", "2024-01-06T11:00:00", True),
                ("0062", "0032", 30.0, "2024-01-07", None, "Donation", "2024-01-07T12:00:00", True),
                ("0063", "0034", 15.0, "2024-02-05", "a0R1", "Donation", "2024-02-05T09:00:00", True),
                ("0064", "0032", 25.0, "2024-01-01", None, "Membership", "2024-01-02T09:00:00", True),
                ("0065", "0031", 90.0, "2024-03-31", None, "Donation", "2024-02-15T10:00:00", False)]
        for oid, cid, amount, close, recur, rtype, modified, won in opps:
            row = {"Id": oid, "npsp__Primary_Contact__c": cid, "Amount": amount, "CloseDate": close,
                   "StageName": "Closed Won" if won else "Pledged", "IsWon": won, "npe03__Recurring_Donation__c": recur,
                   "CampaignId": "7011" if oid == "0061" else None,
                   "Campaign.Name": "Printemps 2024" if oid == "0061" else None, "RecordType.DeveloperName": rtype,
                   "npe01__Membership_Start_Date__c": "2024-01-01" if rtype == "Membership" else None,
                   "npe01__Membership_End_Date__c": "2024-12-31" if rtype == "Membership" else None,
                   "npe01__Membership_Origin__c": "New" if rtype == "Membership" else None, "SystemModstamp": stamp(modified)}
            if self.multi_currency:
                row["CurrencyIsoCode"] = "EUR"
            self.objects.setdefault("Opportunity", []).append(row)
        if self.payments:
            # NPSP writes one payment per closed gift, and a schedule for a pledge (here two of three paid).
            plan = [("a011", "0061", 50.0, "2024-01-06", True), ("a012", "0062", 30.0, "2024-01-07", True),
                    ("a013", "0063", 15.0, "2024-02-05", True), ("a014", "0064", 25.0, "2024-01-01", True),
                    ("a015", "0065", 30.0, "2024-01-31", True), ("a016", "0065", 30.0, "2024-02-29", True),
                    ("a017", "0065", 30.0, "2024-03-31", False)]
            opp_by_id = {o["Id"]: o for o in self.objects["Opportunity"]}
            for pid, oid, amount, when, paid in plan:
                opp = opp_by_id[oid]
                row = {"Id": pid, "npe01__Opportunity__c": oid, "npe01__Payment_Amount__c": amount,
                       "npe01__Payment_Date__c": when if paid else None, "npe01__Scheduled_Date__c": when,
                       "npe01__Payment_Method__c": "Check" if oid == "0062" else "Credit Card", "npe01__Paid__c": paid,
                       "npe01__Written_Off__c": False, "SystemModstamp": stamp(f"{when}T18:00:00")}
                for key in ("npsp__Primary_Contact__c", "npe03__Recurring_Donation__c", "Campaign.Name",
                            "RecordType.DeveloperName"):
                    row[f"npe01__Opportunity__r.{key}"] = opp[key]
                if self.multi_currency:
                    row["CurrencyIsoCode"] = "EUR"
                self.objects.setdefault("npe01__OppPayment__c", []).append(row)
        self.objects["npe03__Recurring_Donation__c"] = [{
            "Id": "a0R1", "npe03__Contact__c": "0034", "npe03__Amount__c": 15.0, "npe03__Installment_Period__c": "Monthly",
            "npe03__Date_Established__c": "2024-02-05", "npsp__Status__c": "Active", "npsp__EndDate__c": None,
            "SystemModstamp": stamp("2024-02-05T09:00:00")}]
        if self.multi_currency:
            self.objects["npe03__Recurring_Donation__c"][0]["CurrencyIsoCode"] = "EUR"
        self.objects["Organization"] = [{"Id": "00D000000000001", "DefaultCurrencyIsoCode": "EUR"}]

    def patches(self) -> list[dict[str, Any]]:
        """Logged writes to records (one per request: a collection of 200 contacts is one write)."""
        return [r for r in self.requests if r["method"] == "PATCH"]

    # -- schema: what the user can see -------------------------------------------------
    def sobject_names(self) -> set[str]:
        """Describe global: the objects of this org."""
        names = set(self.objects) | set(self.FIXED_FIELDS)
        return names - ({"Individual"} if not self.privacy else set())

    def granted(self, edit: bool = False) -> set[str]:
        """Contact fields a permission set assigned to the user opens (read, or edit)."""
        sets = {a["PermissionSetId"] for a in self.objects.get("PermissionSetAssignment", [])
                if a["AssigneeId"] == self.user_id}
        return {str(fp["Field"]).split(".", 1)[1] for fp in self.objects.get("FieldPermissions", [])
                if fp["ParentId"] in sets and fp.get("PermissionsRead") and (fp.get("PermissionsEdit") or not edit)}

    def visible_fields(self) -> set[str]:
        """Contact fields the user sees: the standard ones and the custom ones field-level security opens."""
        return self.contact_fields | (self.tooling_fields & self.granted())

    def fields_of(self, obj: str) -> set[str]:
        """Plain field names of ``obj`` the user sees."""
        if obj == "Contact":
            return self.visible_fields()
        if obj in self.FIXED_FIELDS:
            return set(self.FIXED_FIELDS[obj])
        rows = self.objects.get(obj, [])
        return {k for r in rows for k in r if "." not in k}

    def describe(self, obj: str) -> dict[str, Any]:
        """``sobjects/{obj}/describe``: fields with ``updateable`` and relationship names."""
        links = {f: (rel, target) for rel, (f, target) in self.RELATIONS.get(obj, {}).items()
                 if target in self.sobject_names()}
        editable = self.contact_fields | (self.tooling_fields & self.granted(edit=True)) if obj == "Contact" else set()
        out = []
        for name in sorted(self.fields_of(obj) | set(links)):
            if name in links:
                rel, target = links[name]
                out.append({"name": name, "updateable": False, "relationshipName": rel, "referenceTo": [target]})
            else:
                out.append({"name": name, "updateable": name in editable and name not in ("Id", "SystemModstamp"),
                            "relationshipName": None, "referenceTo": []})
        return {"name": obj, "fields": out}

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
                                           "id": f"{self.base}/id/00D000000000001/{self.user_id}", "issued_at": "1709290800000", "signature": "x"})
            if h.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
                return self.reply(h, 401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
            prefix = f"/services/data/v{VERSION}/"
            if not parts.path.startswith(prefix):
                return self.reply(h, 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
            rest = parts.path[len(prefix):].strip("/")
            try:
                return self.route(h, method, rest, parse_qs(parts.query), raw)
            except SoqlError as exc:
                return self.reply(h, 400, [{"message": str(exc), "errorCode": exc.code}])
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
        if rest == "sobjects" and method == "GET":
            return self.reply(h, 200, {"encoding": "UTF-8", "maxBatchSize": 200,
                                       "sobjects": [{"name": n} for n in sorted(self.sobject_names())]})
        if rest == "composite/sobjects" and method == "PATCH":
            return self.collection_update(h, json.loads(raw))
        if rest == "tooling/sobjects/CustomField" and method == "POST":
            body = json.loads(raw)
            obj, name = body["FullName"].split(".")
            if obj != "Contact" or not name.endswith("__c"):
                return self.reply(h, 400, [{"errorCode": "INVALID_INPUT", "message": "bad FullName"}])
            if name in self.contact_fields | self.tooling_fields:
                return self.reply(h, 400, [{"errorCode": "DUPLICATE_DEVELOPER_NAME", "message": "duplicate"}])
            self.tooling_fields.add(name)
            return self.reply(h, 201, {"id": "00N" + secrets.token_hex(6), "success": True, "errors": []})
        parts = rest.split("/")
        if parts[0] != "sobjects" or len(parts) < 2 or parts[1] not in self.sobject_names():
            return self.reply(h, 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
        obj = parts[1]
        if len(parts) == 3 and parts[2] == "describe":
            return self.reply(h, 200, self.describe(obj))
        if len(parts) == 2 and method == "POST":
            return self.create(h, obj, json.loads(raw))
        if len(parts) == 3 and method == "PATCH":
            status, body = self.update(obj, parts[2], json.loads(raw))
            return self.reply(h, status, body)
        return self.reply(h, 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])

    def create(self, h: Exchange, obj: str, values: dict[str, Any]) -> None:
        """``POST sobjects/{obj}``: the setup objects ensure_fields writes."""
        unknown = [k for k in values if k not in self.fields_of(obj)]
        if unknown:
            return self.reply(h, 400, [{"errorCode": "INVALID_FIELD", "fields": [],
                                        "message": f"No such column '{unknown[0]}' on sobject of type {obj}"}])
        rows = self.objects.setdefault(obj, [])
        if obj == "FieldPermissions":
            name = str(values.get("Field", "")).split(".", 1)[-1]
            if name not in self.contact_fields | self.tooling_fields:
                return self.reply(h, 400, [{"errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": ["Field"],
                                            "message": f"Field: bad value for restricted picklist field: {values.get('Field')}"}])
            if any(r["ParentId"] == values.get("ParentId") and r["Field"] == values.get("Field") for r in rows):
                return self.reply(h, 400, [{"errorCode": "DUPLICATE_VALUE", "fields": [], "message": "duplicate value found"}])
        record = {"Id": f"{obj[:3]}{len(rows) + 1:012d}", **values}
        rows.append(record)
        return self.reply(h, 201, {"id": record["Id"], "success": True, "errors": []})

    def update(self, obj: str, rid: str, values: dict[str, Any]) -> tuple[int, Any]:
        """One record update: 204, or the error Salesforce gives."""
        record = next((r for r in self.objects.get(obj, []) if r["Id"] == rid), None)
        if record is None:
            return 404, [{"errorCode": "NOT_FOUND", "message": "Provided external ID field does not exist"}]
        unknown = [k for k in values if k not in self.fields_of(obj)]
        if unknown:
            return 400, [{"errorCode": "INVALID_FIELD", "message": f"No such column '{unknown[0]}' on sobject of type {obj}"}]
        if obj == "Contact":
            locked = [k for k in values if k not in {f["name"] for f in self.describe(obj)["fields"] if f["updateable"]}]
            if locked:
                return 400, [{"errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE", "fields": locked,
                              "message": f"Unable to create/update fields: {', '.join(locked)}."}]
            record["SystemModstamp"] = stamp(self.clock)
        record.update(values)
        return 204, None

    def collection_update(self, h: Exchange, body: dict[str, Any]) -> None:
        """``PATCH composite/sobjects``: up to 200 records, one SaveResult each (allOrNone false)."""
        records = body.get("records") or []
        if len(records) > 200:
            return self.reply(h, 400, [{"errorCode": "EXCEEDED_ID_LIMIT", "fields": [],
                                        "message": "record limit reached. cannot submit more than 200 records into this call"}])
        for record in records:
            obj = (record.get("attributes") or {}).get("type")
            unknown = [k for k in record if k not in ("attributes", "id") and k not in self.fields_of(str(obj))]
            if unknown:
                return self.reply(h, 400, [{"errorCode": "INVALID_FIELD", "fields": [],
                                            "message": f"No such column '{unknown[0]}' on sobject of type {obj}"}])
        results = []
        for record in records:
            obj = str(record["attributes"]["type"])
            values = {k: v for k, v in record.items() if k not in ("attributes", "id")}
            status, errors = self.update(obj, str(record.get("id")), values)
            if status == 204:
                results.append({"id": record["id"], "success": True, "errors": []})
            else:
                results.append({"success": False, "errors": [{"statusCode": e["errorCode"], "message": e["message"],
                                                               "fields": e.get("fields", [])} for e in errors]})
        return self.reply(h, 200, results)

    def soql(self, text: str) -> list[dict[str, Any]]:
        """Run the SOQL subset; rows come back as the API nests them."""
        m = SOQL.match(" ".join(text.split()))
        if not m:
            raise ValueError(f"unexpected token in: {text[:60]}")
        fields = [f.strip() for f in m["fields"].split(",")]
        if m["obj"] not in self.sobject_names():
            raise SoqlError("INVALID_TYPE", f"sObject type '{m['obj']}' is not supported.")
        rows = list(self.objects.get(m["obj"], []))
        known = self.fields_of(m["obj"]) | {k for r in rows for k in r if "." in k}
        for f in fields + [c.split()[0] for c in (m["where"] or "").split(" AND ") if c.strip()]:
            if f in known:
                continue
            if "." in f and f.split(".")[0] not in self.RELATIONS.get(m["obj"], {}) or (
                    f.split(".")[0] == "Individual" and not self.privacy):
                raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{f.split('.')[0]}' in field path. "
                                "If you are attempting to use a custom relationship, be sure to append the '__r' after "
                                "the custom relationship name. Please reference your WSDL or the describe call for the "
                                "appropriate names.", text, f)
            raise SoqlError("INVALID_FIELD", f"No such column '{f.split('.')[-1]}' on entity '{m['obj']}'. If you are "
                            "attempting to use a custom field, be sure to append the '__c' after the custom field name. "
                            "Please reference your WSDL or the describe call for the appropriate names.", text, f)
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
