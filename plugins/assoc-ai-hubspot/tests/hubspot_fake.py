"""A loopback HubSpot CRM API for the tests, shaped after HubSpot's published CRM v3/v4 reference.

Served end-points (bearer private-app token, per-token scopes):

* ``GET  /crm/v3/objects/{type}`` - list, ``limit`` <= 100, opaque ``after`` token, ``properties``;
* ``POST /crm/v3/objects/{type}/search`` - ``filterGroups`` (OR of ANDs), one sort, ``limit`` <= 200,
  numeric ``after`` offset, 400 past the 10 000th result;
* ``POST /crm/v3/objects/{type}/batch/read`` and ``/batch/update`` - 100 inputs at most, 207 multi-status
  for unknown ids, property validation as HubSpot reports it;
* ``GET/POST /crm/v3/properties/{type}`` (+ ``/{name}``) and ``/crm/v3/properties/{type}/groups``;
* ``POST /crm/v4/associations/{from}/{to}/batch/read``.

Errors use HubSpot's JSON error body (``status``, ``message``, ``correlationId``, ``category``); throttling
answers 429 with ``policyName`` and, when the test says so, ``Retry-After``.  The contacts search index does
not hold ``hs_lastmodifieddate`` (a filter on it matches nothing), as integrators report for the real API:
contacts are searched on ``lastmodifieddate``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from hubspot_portal import prop_def, seed_portal, stamp

from assoc_ai_core.testing.loopback import Exchange, LoopbackApi

TOKEN = "pat-eu1-0f7e2a52-assoc-ai-tests"
ALL_SCOPES = frozenset({
    "crm.objects.contacts.read", "crm.objects.contacts.write", "crm.schemas.contacts.read",
    "crm.schemas.contacts.write", "crm.objects.deals.read", "crm.objects.custom.read",
})
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
TYPE_FIELDS = {"string": {"text", "textarea", "select", "radio", "checkbox", "phonenumber", "html", "file"},
               "number": {"number", "calculation_equation"}, "bool": {"booleancheckbox", "calculation_equation"},
               "enumeration": {"select", "radio", "checkbox", "booleancheckbox"}, "date": {"date"},
               "datetime": {"date"}}
DATETIME_PROPS = {"createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate"}


def _as_ms(value: Any) -> float | None:
    """A filter value or stored timestamp as epoch milliseconds (HubSpot takes both forms in filters)."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return float(text)
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp() * 1000


class Reply(Exception):
    """An HTTP answer raised from deep in a handler."""

    def __init__(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.payload, self.headers = status, payload, headers or {}


def error(status: int, message: str, category: str, **extra: Any) -> Reply:
    """HubSpot's error body."""
    return Reply(status, {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                          "category": category, **extra})


@dataclass
class FakeHubSpot(LoopbackApi):
    """Portal data, tokens and their scopes, faults to inject, and a log of requests.

    ``throttle`` holds ``(Retry-After or None, policyName)`` of the next 429 answers.
    """

    methods: ClassVar[tuple[str, ...]] = ("GET", "POST", "PATCH")
    content_type: ClassVar[str] = "application/json;charset=utf-8"

    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    properties: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    associations: dict[tuple[str, str], dict[str, list[tuple[str, str | None]]]] = field(default_factory=dict)
    tokens: dict[str, frozenset[str]] = field(default_factory=lambda: {TOKEN: ALL_SCOPES})
    expired: set[str] = field(default_factory=set)
    clock: str = "2024-03-01T12:00:00"

    # -- data -----------------------------------------------------------------------
    def seed(self, *, consent_property: bool = True) -> None:
        """A French association's portal: contacts, a donations pipeline, a membership custom object."""
        seed_portal(self, consent_property=consent_property)

    def touch(self, object_type: str, object_id: str, when: str, **values: Any) -> None:
        """Change a record as a HubSpot user would: new values, new modification time."""
        props = self.objects[object_type][object_id]["properties"]
        props.update(values)
        for key in ("lastmodifieddate", "hs_lastmodifieddate"):
            if key in props or key == "hs_lastmodifieddate":
                props[key] = stamp(when)

    def calls(self, method: str, path_part: str) -> list[dict[str, Any]]:
        """Logged requests with ``method`` whose path contains ``path_part``."""
        return [r for r in self.requests if r["method"] == method and path_part in r["path"]]

    # -- serving --------------------------------------------------------------------
    def handle(self, h: Exchange, method: str) -> None:
        """Authenticate, apply injected faults, route, answer JSON."""
        parts = urlsplit(h.path)
        raw = h.body.decode()
        try:
            with self.lock:
                self.requests.append({"method": method, "path": parts.path, "query": parse_qs(parts.query),
                                      "body": json.loads(raw) if raw else None})
                token = h.headers.get("Authorization", "").removeprefix("Bearer ")
                if token in self.expired:
                    raise error(401, "The OAuth token used to make this call expired 42 second(s) ago.",
                                "EXPIRED_AUTHENTICATION")
                if token not in self.tokens:
                    raise error(401, "Authentication credentials not found. This API supports OAuth 2.0 "
                                     "authentication and you can find more details at "
                                     "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                                "INVALID_AUTHENTICATION")
                if self.throttle:
                    retry_after, policy = self.throttle.pop(0)
                    headers = {"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "0",
                               "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
                    if retry_after is not None:
                        headers["Retry-After"] = retry_after
                    raise Reply(429, {"status": "error", "message": f"You have reached your {policy.lower()} limit.",
                                      "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                                      "policyName": policy, "groupName": "api-calls:portal"}, headers)
                status, payload = self.route(method, [unquote(p) for p in parts.path.strip("/").split("/")],
                                             parse_qs(parts.query), json.loads(raw) if raw else {}, token)
                raise Reply(status, payload)
        except Reply as reply:
            self.reply(h, reply.status, reply.payload, reply.headers)

    def need(self, token: str, *scopes: str) -> None:
        """403 MISSING_SCOPES unless the token was granted every scope."""
        missing = [s for s in scopes if s not in self.tokens[token]]
        if missing:
            raise error(403, "This app hasn't been granted all required scopes to make this call. Read more about "
                             "required scopes here: https://developers.hubspot.com/scopes.", "MISSING_SCOPES",
                        errors=[{"message": "One or more of the following scopes are required.",
                                 "context": {"requiredGranularScopes": missing}}],
                        links={"scopes": "https://developers.hubspot.com/scopes"})

    @staticmethod
    def object_scope(object_type: str, write: bool = False) -> str:
        kind = object_type if object_type in ("contacts", "deals") else "custom"
        return f"crm.objects.{kind}.{'write' if write else 'read'}"

    def route(self, method: str, seg: list[str], query: dict[str, list[str]], body: Any, token: str) -> tuple[int, Any]:
        """The resources."""
        if seg[:3] == ["crm", "v3", "objects"] and len(seg) >= 4:
            otype = seg[3]
            if otype not in self.objects:
                raise error(400, f"Unable to infer object type from: {otype}", "VALIDATION_ERROR")
            write = seg[4:] == ["batch", "update"]
            self.need(token, self.object_scope(otype, write))
            if method == "GET" and len(seg) == 4:
                return self.list_page(otype, query)
            if method == "POST" and seg[4:] == ["search"]:
                return self.search(otype, body)
            if method == "POST" and seg[4:] == ["batch", "read"]:
                return self.batch_read(otype, body)
            if method == "POST" and write:
                return self.batch_update(otype, body)
        if seg[:3] == ["crm", "v3", "properties"] and len(seg) >= 4:
            otype = seg[3]
            kind = otype if otype in ("contacts", "deals") else "custom"
            self.need(token, f"crm.schemas.{kind}.{'read' if method == 'GET' else 'write'}")
            return self.properties_api(method, otype, seg[4:], body)
        if seg[:3] == ["crm", "v4", "associations"] and seg[5:] == ["batch", "read"] and method == "POST":
            self.need(token, self.object_scope(seg[3]), self.object_scope(seg[4]))
            return self.association_read(seg[3], seg[4], body)
        raise error(404, "resource not found", "OBJECT_NOT_FOUND")

    # -- objects --------------------------------------------------------------------
    def present(self, otype: str, rec: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
        """A record as the API returns it: asked-for properties (unknown names dropped) plus the defaults."""
        props = rec["properties"]
        modified_key = "lastmodifieddate" if otype == "contacts" else "hs_lastmodifieddate"
        names = set(wanted) & set(self.properties.get(otype, {})) | {"hs_object_id", "createdate", modified_key}
        return {"id": rec["id"], "properties": {n: props.get(n) for n in sorted(names)},
                "createdAt": props.get("createdate"), "updatedAt": props.get(modified_key), "archived": False}

    @staticmethod
    def wanted(query: dict[str, list[str]]) -> list[str]:
        return [n for v in query.get("properties", []) for n in v.split(",") if n]

    def list_page(self, otype: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        limit = int(query.get("limit", ["10"])[0])
        if not 1 <= limit <= 100:
            raise error(400, "limit must be between 1 and 100", "VALIDATION_ERROR")
        rows = sorted(self.objects[otype].values(), key=lambda r: int(r["id"]))
        if "after" in query:
            last = int(base64.urlsafe_b64decode(query["after"][0].encode()).decode())
            rows = [r for r in rows if int(r["id"]) > last]
        head = rows[:limit]
        body: dict[str, Any] = {"results": [self.present(otype, r, self.wanted(query)) for r in head]}
        if len(rows) > limit:
            token = base64.urlsafe_b64encode(head[-1]["id"].encode()).decode()
            body["paging"] = {"next": {"after": token, "link": f"{self.base}/crm/v3/objects/{otype}?after={token}"}}
        return 200, body

    def matches(self, otype: str, props: dict[str, Any], flt: dict[str, Any]) -> bool:
        name, op = flt.get("propertyName"), flt.get("operator")
        if name not in self.properties.get(otype, {}):
            raise error(400, f"There was a problem with the request: property {name} does not exist",
                        "VALIDATION_ERROR")
        if otype == "contacts" and name == "hs_lastmodifieddate":
            return False  # not in the contacts search index (see module docstring)
        have = props.get(name)
        if op == "HAS_PROPERTY":
            return have not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return have in (None, "")
        if op in ("IN", "NOT_IN"):
            inside = str(have) in [str(v) for v in flt.get("values", [])]
            return inside if op == "IN" else not inside
        want = flt.get("value")
        kind = self.properties[otype][name]["type"]
        if kind in ("datetime", "date"):
            a, b = _as_ms(have), _as_ms(want)
        elif kind == "number":
            a, b = (float(have) if have not in (None, "") else None), float(str(want))
        else:
            a, b = (None if have is None else str(have).lower()), str(want).lower()
        if op == "EQ":
            return a == b
        if op == "NEQ":
            return a != b
        if a is None or b is None:
            return False
        return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]

    def search(self, otype: str, body: dict[str, Any]) -> tuple[int, Any]:
        limit = int(body.get("limit", 10))
        if not 1 <= limit <= 200:
            raise error(400, "limit must be between 1 and 200", "VALIDATION_ERROR")
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or any(len(g.get("filters", [])) > 6 for g in groups):
            raise error(400, "Too many filters or filter groups", "VALIDATION_ERROR")
        sorts = body.get("sorts") or []
        if len(sorts) > 1 or any(not isinstance(s, dict) or "propertyName" not in s for s in sorts):
            raise error(400, "Only one sort {propertyName, direction} is supported", "VALIDATION_ERROR")
        rows = [r for r in self.objects[otype].values()
                if not groups or any(all(self.matches(otype, r["properties"], f) for f in g.get("filters", []))
                                     for g in groups)]
        rows.sort(key=lambda r: int(r["id"]))  # the index's own tie order
        for s in sorts:
            kind = self.properties[otype].get(s["propertyName"], {}).get("type")
            def key(r: dict[str, Any], name: str = s["propertyName"], kind: Any = kind) -> Any:
                v = r["properties"].get(name)
                return (_as_ms(v) or 0) if kind in ("datetime", "date") else (v or "")
            rows.sort(key=key, reverse=s.get("direction") == "DESCENDING")
        offset = int(body.get("after") or 0)
        if offset + limit > 10_000:
            raise error(400, "Paging past the first 10,000 results is not supported; refine the search.",
                        "VALIDATION_ERROR")
        head = rows[offset:offset + limit]
        out: dict[str, Any] = {"total": len(rows), "results": [self.present(otype, r, body.get("properties") or [])
                                                                for r in head]}
        if offset + limit < len(rows):
            out["paging"] = {"next": {"after": str(offset + limit), "link": None}}
        return 200, out

    def batch_read(self, otype: str, body: dict[str, Any]) -> tuple[int, Any]:
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            raise error(400, "Too many inputs; the limit is 100", "VALIDATION_ERROR")
        found = [self.present(otype, self.objects[otype][i["id"]], body.get("properties") or [])
                 for i in inputs if i["id"] in self.objects[otype]]
        missing = [i["id"] for i in inputs if i["id"] not in self.objects[otype]]
        return self.batch_answer(otype, found, missing)

    def batch_answer(self, otype: str, results: list[dict[str, Any]], missing: list[str]) -> tuple[int, Any]:
        now = stamp(self.clock)
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if not missing:
            return 200, body
        body.update(numErrors=1, errors=[{
            "status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": missing},
            "message": f"Could not get some {otype.upper()} objects, they may be deleted or not exist. "
                       "Check that ids are valid."}])
        return 207, body

    def batch_update(self, otype: str, body: dict[str, Any]) -> tuple[int, Any]:
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            raise error(400, "Too many inputs; the limit is 100", "VALIDATION_ERROR")
        defs = self.properties[otype]
        problems = []
        for item in inputs:
            for name, value in (item.get("properties") or {}).items():
                spec = defs.get(name)
                if spec is None:
                    problems.append({"isValid": False, "message": f'Property "{name}" does not exist',
                                     "error": "PROPERTY_DOESNT_EXIST", "name": name})
                elif spec["modificationMetadata"]["readOnlyValue"]:
                    problems.append({"isValid": False, "message": f"{name} is a read only property",
                                     "error": "READ_ONLY_VALUE", "name": name})
                elif spec["type"] == "number" and value not in (None, ""):
                    try:
                        float(str(value))
                    except ValueError:
                        problems.append({"isValid": False, "message": f"{value} was not a valid number.",
                                         "error": "INVALID_FLOAT", "name": name})
        if problems:
            raise error(400, f"Property values were not valid: {json.dumps(problems)}", "VALIDATION_ERROR",
                        errors=[{"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}}
                                for p in problems])
        done, missing = [], []
        for item in inputs:
            rec = self.objects[otype].get(item["id"])
            if rec is None:
                missing.append(item["id"])
                continue
            values = {k: (None if v == "" else str(v)) for k, v in item["properties"].items()}
            if any(rec["properties"].get(k) != v for k, v in values.items()):
                self.touch(otype, item["id"], self.clock, **values)
            done.append(self.present(otype, rec, list(values)))
        return self.batch_answer(otype, done, missing)

    # -- properties -----------------------------------------------------------------
    def properties_api(self, method: str, otype: str, rest: list[str], body: dict[str, Any]) -> tuple[int, Any]:
        props = self.properties.setdefault(otype, {})
        groups = self.groups.setdefault(otype, {})
        if rest == ["groups"]:
            if method == "GET":
                return 200, {"results": list(groups.values())}
            name = body.get("name", "")
            if not NAME_RE.match(name) or not body.get("label"):
                raise error(400, "Property group name must be lower-case letters, digits or _ and have a label",
                            "VALIDATION_ERROR")
            if name in groups:
                raise error(409, f"Property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
            groups[name] = {"name": name, "label": body["label"], "displayOrder": body.get("displayOrder", -1),
                            "archived": False}
            return 201, groups[name]
        if not rest:
            if method == "GET":
                return 200, {"results": list(props.values())}
            name, kind, field_type = body.get("name", ""), body.get("type"), body.get("fieldType")
            if not NAME_RE.match(name) or len(name) > 100:
                raise error(400, f"Property name '{name}' is not valid", "VALIDATION_ERROR")
            if field_type not in TYPE_FIELDS.get(kind, set()):
                raise error(400, f"fieldType {field_type} is not valid for type {kind}", "VALIDATION_ERROR")
            if kind in ("bool", "enumeration") and not body.get("options"):
                raise error(400, f"Property {name} of type {kind} needs options", "VALIDATION_ERROR")
            if body.get("groupName") not in groups:
                raise error(400, f"Property group {body.get('groupName')} does not exist", "VALIDATION_ERROR")
            if name in props:
                raise error(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
            props[name] = prop_def(name, body["label"], kind, field_type, body["groupName"],
                                   options=body.get("options"), description=body.get("description", ""))
            return 201, props[name]
        if len(rest) == 1 and method == "GET":
            if rest[0] not in props:
                raise error(404, f"Unable to find property {rest[0]}", "OBJECT_NOT_FOUND")
            return 200, props[rest[0]]
        raise error(404, "resource not found", "OBJECT_NOT_FOUND")

    # -- associations ---------------------------------------------------------------
    def association_read(self, src: str, dst: str, body: dict[str, Any]) -> tuple[int, Any]:
        inputs = body.get("inputs") or []
        if len(inputs) > 1000:
            raise error(400, "Too many inputs; the limit is 1000", "VALIDATION_ERROR")
        links = self.associations.get((src, dst), {})
        results, missing = [], []
        for item in inputs:
            found = links.get(str(item["id"]))
            if not found:
                missing.append(str(item["id"]))
                continue
            results.append({"from": {"id": str(item["id"])}, "to": [
                {"toObjectId": int(to), "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}] + (
                    [{"category": "USER_DEFINED", "typeId": 41, "label": label}] if label else [])}
                for to, label in found]})
        now = stamp(self.clock)
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if not missing:
            return 200, out
        out.update(numErrors=len(missing), errors=[{
            "status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
            "context": {"fromObjectId": [m]}, "message": f"No {dst} is associated with {src} {m}."} for m in missing])
        return 207, out
