"""The Salesforce Nonprofit Success Pack (NPSP) connector, on simple-salesforce.

Reads Contacts, Opportunities (gifts; the ``Membership`` record type as
memberships) and ``npe03__Recurring_Donation__c``; incremental on
``SystemModstamp``, paging with ``query_more``.  Writes scores to Contact custom
fields (``ensure_fields`` creates them through the Tooling API).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CURSOR_KEY, ApiCrmConnector, StoredScores, advance_cursor, is_after_cursor
from assoc_ai_core.ext.paging import token_pages
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.people import (
    FieldSpec,
    Gift,
    Membership,
    Person,
    RecordDiff,
    RecordPage,
    RecurringPlan,
    Score,
    WriteReport,
)

from .session import SERVICE, SalesforceSession, check_https

SOURCE = "salesforce"
# Per record type: sObject, fields always present in an NPSP org, optional fields (read only when describe lists
# them), and the filter.  ``{membership}`` is the membership record type.
SOQL: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    "person": ("Contact", ("Id", "FirstName", "LastName", "Email", "Phone", "MailingPostalCode", "MailingCity",
                           "Birthdate", "CreatedDate", "SystemModstamp"), (), "IsDeleted = false"),
    "gift": ("Opportunity", ("Id", "npsp__Primary_Contact__c", "Amount", "CloseDate", "StageName",
                             "npe03__Recurring_Donation__c", "Campaign.Name", "RecordType.DeveloperName",
                             "SystemModstamp"), ("CurrencyIsoCode",),
             "IsWon = true AND RecordType.DeveloperName != '{membership}'"),
    "payment": ("npe01__OppPayment__c", ("Id", "npe01__Opportunity__c", "npe01__Payment_Amount__c",
                                         "npe01__Payment_Date__c", "npe01__Payment_Method__c",
                                         "npe01__Opportunity__r.npsp__Primary_Contact__c",
                                         "npe01__Opportunity__r.npe03__Recurring_Donation__c",
                                         "npe01__Opportunity__r.Campaign.Name", "SystemModstamp"), ("CurrencyIsoCode",),
                "npe01__Paid__c = true AND npe01__Written_Off__c = false AND "
                "npe01__Opportunity__r.RecordType.DeveloperName != '{membership}'"),
    "membership": ("Opportunity", ("Id", "npsp__Primary_Contact__c", "Amount", "CloseDate", "StageName", "IsWon",
                                   "npe01__Membership_Start_Date__c", "npe01__Membership_End_Date__c",
                                   "npe01__Membership_Origin__c", "RecordType.DeveloperName", "SystemModstamp"),
                   ("CurrencyIsoCode",), "RecordType.DeveloperName = '{membership}'"),
    "recurring_plan": ("npe03__Recurring_Donation__c", ("Id", "npe03__Contact__c", "npe03__Amount__c",
                                                        "npe03__Installment_Period__c", "npe03__Date_Established__c",
                                                        "npsp__Status__c", "npsp__EndDate__c", "SystemModstamp"),
                       ("CurrencyIsoCode",), ""),
}
RECORD_TYPES = frozenset({"person", "gift", "membership", "recurring_plan"})
PAYMENT_OBJECT = "npe01__OppPayment__c"
GIFT_SOURCES = ("auto", "payments", "opportunities")
TOOLING_TYPES: dict[str, dict[str, Any]] = {"number": {"type": "Number", "precision": 5, "scale": 4},
                                              "text": {"type": "LongTextArea", "length": 32768, "visibleLines": 3},
                                              "date": {"type": "DateTime"}}
COLLECTION_LIMIT = 200  # records per sObject Collections request, as the REST API documents
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SalesforceConfig:
    """Settings of ``[connectors.salesforce]``; ``client_secret`` is a secret reference."""

    domain_url: str
    client_id: str
    client_secret: Secret
    api_version: str = "59.0"
    membership_record_type: str = "Membership"
    do_not_profile_field: str = "Individual.HasOptedOutProfiling"
    field_prefix: str = "assoc_ai"
    field_map: Mapping[str, str] = field(default_factory=dict)
    gifts_from: str = "auto"
    permission_set: str = "AssocAI_Scores"
    timeout: float = 30.0
    verify_tls: bool | str = True
    max_attempts: int = 5
    max_retry_wait: float = 60.0

    def __post_init__(self) -> None:
        check_https(self.domain_url, "domain_url")
        if self.gifts_from not in GIFT_SOURCES:
            raise ConfigError(tr("[connectors.salesforce].gifts_from : « auto », « payments » ou « opportunities ».",
                                 "[connectors.salesforce].gifts_from: 'auto', 'payments' or 'opportunities'."))


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace("+0000", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _day(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


def _get(row: Mapping[str, Any], dotted: str) -> Any:
    """A field of a SOQL row, following relationship objects (``RecordType.DeveloperName``)."""
    value: Any = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _soql_dt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SalesforceConnector(ApiCrmConnector[SalesforceSession]):
    """Salesforce NPSP through the REST API (simple-salesforce)."""

    id: ClassVar[str] = "salesforce"
    Config: ClassVar[type] = SalesforceConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ, Capability.WRITE_SCORES})
    record_types: ClassVar[frozenset[str]] = RECORD_TYPES
    description: ClassVar[str] = "Salesforce NPSP: contacts, gifts, recurring donations, memberships; scores on Contact"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._fields: dict[str, dict[str, Mapping[str, Any]]] = {}
        self._objects: set[str] | None = None
        self._org_currency: str | None = None
        self._dnp_warned = False

    def build_client(self) -> SalesforceSession:
        """The Salesforce session (no I/O yet: the token is asked for on first use)."""
        c = self.config
        return SalesforceSession(check_https(c.domain_url, "domain_url"), c.client_id, c.client_secret,
                                 api_version=c.api_version, http=self.http_client(SERVICE, field="domain_url"))

    def open(self) -> None:
        """Get a token now, so a wrong secret fails before any read."""
        self.client.login()

    def close(self) -> None:
        """Close the session and forget what describe said (the org may change before the next open)."""
        super().close()
        self._fields.clear()
        self._objects = None
        self._org_currency = None

    # -- what this org has (describe) ---------------------------------------------------
    def org_objects(self) -> set[str]:
        """The sObjects the run-as user can see (describe global), asked once per session."""
        if self._objects is None:
            described = self.client.call(lambda sf: sf.describe(), "describe") or {}
            self._objects = {str(o.get("name")) for o in described.get("sobjects") or []}
        return self._objects

    def described_fields(self, sobject: str) -> dict[str, Mapping[str, Any]]:
        """The fields of ``sobject`` the run-as user can see, by API name (empty when the object is missing)."""
        if sobject not in self._fields:
            if sobject not in self.org_objects():
                self._fields[sobject] = {}
            else:
                described = self.client.call(lambda sf: getattr(sf, sobject).describe(), f"describe {sobject}")
                self._fields[sobject] = {str(f["name"]): f for f in described.get("fields") or []}
        return self._fields[sobject]

    def has_field(self, sobject: str, path: str) -> bool:
        """Whether ``path`` (``Field`` or ``Relationship.Field``, one hop) can be queried on ``sobject``."""
        fields = self.described_fields(sobject)
        if "." not in path:
            return path in fields
        relation, rest = path.split(".", 1)
        link = next((f for f in fields.values() if f.get("relationshipName") == relation), None)
        if link is None:
            return False
        targets = [str(t) for t in link.get("referenceTo") or []]
        return any(self.has_field(t, rest) for t in targets)

    def do_not_profile_available(self) -> bool:
        """Whether the configured objection field exists here (the Individual object needs Data Protection and Privacy)."""
        field_name = self.config.do_not_profile_field
        return bool(field_name) and self.has_field("Contact", field_name)

    def _warn_no_objection_field(self) -> None:
        if not self._dnp_warned:
            self._dnp_warned = True
            log.warning("%s", tr(
                f"Salesforce : le champ de refus du profilage {self.config.do_not_profile_field!r} est absent de "
                "l'organisation (activez « Protection des données et confidentialité » ou indiquez un champ case à "
                "cocher du Contact dans do_not_profile_field) ; les contacts sont lus sans ce refus et aucun score "
                "ne sera écrit.",
                f"Salesforce: the profiling objection field {self.config.do_not_profile_field!r} is missing from the "
                "org (enable Data Protection and Privacy, or name a Contact checkbox field in do_not_profile_field); "
                "contacts are read without it and no score will be written."))

    def gift_source(self) -> str:
        """``payments`` when gifts are read from NPSP payments, else ``opportunities``."""
        wanted = self.config.gifts_from
        if wanted == "auto":
            return "payments" if PAYMENT_OBJECT in self.org_objects() else "opportunities"
        return str(wanted)

    def org_currency(self) -> str:
        """The org's currency, for records of a single-currency org (they carry no CurrencyIsoCode)."""
        if self._org_currency is None:
            try:
                rows = self.client.call(lambda sf: sf.query("SELECT DefaultCurrencyIsoCode FROM Organization"),
                                        "SOQL Organization")
            except (AuthError, ConnectorError):
                # Reading the org's settings may be refused to a least-privilege user: the currency is not worth a stop.
                log.warning("%s", tr("Salesforce : devise de l'organisation illisible, EUR supposé.",
                                     "Salesforce: the org's currency cannot be read, EUR assumed."))
                rows = {}
            records = rows.get("records") or []
            self._org_currency = str(records[0].get("DefaultCurrencyIsoCode") or "EUR") if records else "EUR"
        return self._org_currency

    # -- reading ------------------------------------------------------------------
    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 200
    ) -> Iterator[RecordPage]:
        """Yield pages of ``record_type`` changed since ``cursor`` (``SystemModstamp``), oldest first."""
        self.check_record_type(record_type)
        c = self.config
        kind = "payment" if record_type == "gift" and self.gift_source() == "payments" else record_type
        sobject, always, optional, where = SOQL[kind]
        fields = [*always, *(f for f in optional if self.has_field(sobject, f))]
        if record_type == "person":
            if self.do_not_profile_available():
                fields.append(c.do_not_profile_field)
            elif c.do_not_profile_field:
                self._warn_no_objection_field()
        if "CurrencyIsoCode" not in fields and record_type != "person":
            self.org_currency()
        clauses = [where.format(membership=c.membership_record_type)] if where else []
        if cursor and cursor.get(CURSOR_KEY):
            clauses.append(f"SystemModstamp >= {_soql_dt(datetime.fromisoformat(str(cursor[CURSOR_KEY])))}")
        soql = f"SELECT {', '.join(fields)} FROM {sobject}"
        if clauses:
            soql += " WHERE " + " AND ".join(clauses)
        soql += " ORDER BY SystemModstamp ASC, Id ASC"
        # Salesforce sends 200 to 2000 rows per batch; the header is a wish it may shrink.
        headers = {"Sforce-Query-Options": f"batchSize={max(200, min(2000, int(page_size)))}"}

        def fetch(next_url: str | None) -> tuple[list[dict[str, Any]], str | None]:
            if next_url is None:
                result = self.client.call(lambda sf: sf.query(soql, headers=headers), f"SOQL {sobject}")
            else:
                result = self.client.call(lambda sf: sf.query_more(next_url, identifier_is_url=True, headers=headers),
                                          f"SOQL {sobject} (query_more)")
            return result.get("records") or [], None if result.get("done", True) else result.get("nextRecordsUrl")

        state = dict(cursor or {})
        for rows, _ in token_pages(fetch):
            records = [r for r in map(getattr(self, f"_{kind}"), rows) if r is not None and is_after_cursor(r, cursor)]
            if records:
                state = advance_cursor(state, records)
                yield RecordPage(record_type, records, state)

    def _currency(self, row: Mapping[str, Any]) -> str:
        return str(row.get("CurrencyIsoCode") or self._org_currency or "EUR")

    def _person(self, row: Mapping[str, Any]) -> Person:
        born = _day(row.get("Birthdate"))
        field_name = self.config.do_not_profile_field
        return Person(source=SOURCE, source_id=str(row["Id"]), first_name=str(row.get("FirstName") or ""),
                      last_name=str(row.get("LastName") or ""), email=str(row.get("Email") or ""),
                      phone=str(row.get("Phone") or ""), postcode=str(row.get("MailingPostalCode") or ""),
                      city=str(row.get("MailingCity") or ""), birth_year=born.year if born else None,
                      created=_dt(row.get("CreatedDate")), modified=_dt(row.get("SystemModstamp")),
                      do_not_profile=bool(field_name and _get(row, field_name)))

    def _gift(self, row: Mapping[str, Any]) -> Gift | None:
        when = _day(row.get("CloseDate"))
        if when is None or not row.get("npsp__Primary_Contact__c"):
            return None
        plan = row.get("npe03__Recurring_Donation__c")
        return Gift(source=SOURCE, source_id=str(row["Id"]), person_id=str(row["npsp__Primary_Contact__c"]),
                    amount=round(float(row.get("Amount") or 0), 2), date=when,
                    currency=self._currency(row), recurring=bool(plan), plan_id=str(plan or ""),
                    campaign=str(_get(row, "Campaign.Name") or ""), modified=_dt(row.get("SystemModstamp")),
                    raw={"stage": row.get("StageName")})

    def _payment(self, row: Mapping[str, Any]) -> Gift | None:
        """A paid NPSP payment: the money as it came in (a pledge paid in three parts is three gifts)."""
        when = _day(row.get("npe01__Payment_Date__c"))
        contact = _get(row, "npe01__Opportunity__r.npsp__Primary_Contact__c")
        if when is None or not contact:
            return None
        plan = _get(row, "npe01__Opportunity__r.npe03__Recurring_Donation__c")
        return Gift(source=SOURCE, source_id=str(row["Id"]), person_id=str(contact),
                    amount=round(float(row.get("npe01__Payment_Amount__c") or 0), 2), date=when,
                    currency=self._currency(row), recurring=bool(plan), plan_id=str(plan or ""),
                    campaign=str(_get(row, "npe01__Opportunity__r.Campaign.Name") or ""),
                    payment_method=str(row.get("npe01__Payment_Method__c") or ""),
                    modified=_dt(row.get("SystemModstamp")),
                    raw={"opportunity": row.get("npe01__Opportunity__c") or ""})

    def _membership(self, row: Mapping[str, Any]) -> Membership | None:
        start, end = _day(row.get("npe01__Membership_Start_Date__c")), _day(row.get("npe01__Membership_End_Date__c"))
        start = start or _day(row.get("CloseDate"))
        if start is None or not row.get("npsp__Primary_Contact__c"):
            return None
        season = str(start.year) if not end or end.year == start.year else f"{start.year}-{end.year}"
        return Membership(source=SOURCE, source_id=str(row["Id"]), person_id=str(row["npsp__Primary_Contact__c"]),
                          season=season, fee=round(float(row.get("Amount") or 0), 2),
                          status="paid" if row.get("IsWon") else str(row.get("StageName") or "").lower(),
                          start=start, end=end, currency=self._currency(row), modified=_dt(row.get("SystemModstamp")),
                          raw={"origin": row.get("npe01__Membership_Origin__c") or ""})

    def _recurring_plan(self, row: Mapping[str, Any]) -> RecurringPlan | None:
        if not row.get("npe03__Contact__c"):
            return None
        status = str(row.get("npsp__Status__c") or "Active")
        return RecurringPlan(source=SOURCE, source_id=str(row["Id"]), person_id=str(row["npe03__Contact__c"]),
                             amount=round(float(row.get("npe03__Amount__c") or 0), 2),
                             frequency=str(row.get("npe03__Installment_Period__c") or "Monthly").lower(),
                             currency=self._currency(row),
                             start=_day(row.get("npe03__Date_Established__c")), end=_day(row.get("npsp__EndDate__c")),
                             status={"Active": "active", "Lapsed": "lapsed", "Closed": "cancelled",
                                     "Paused": "paused"}.get(status, status.lower()),
                             modified=_dt(row.get("SystemModstamp")))

    # -- writing ------------------------------------------------------------------
    def api_name(self, name: str) -> str:
        """The Contact field that holds canonical field ``name`` (``field_map``, else ``<name>__c``)."""
        return self.config.field_map.get(name) or f"{name}__c"

    def ensure_fields(self, fields: Sequence[FieldSpec] | None = None, *, task: str = "", dry_run: bool = True) -> WriteReport:
        """Create missing Contact custom fields (Tooling API) and give the run-as user read and edit access to them.

        A field created through the Tooling API has no field-level security, so
        nobody (the run-as user included) can read or write it; access is
        granted through the permission set ``permission_set`` (created and
        assigned to the run-as user when missing), as Salesforce documents.
        """
        self.require(Capability.WRITE_SCORES)
        self._fields.pop("Contact", None)
        visible = self.described_fields("Contact")
        access = f"read+edit ({self.config.permission_set})"
        diffs: list[RecordDiff] = []
        to_grant: list[str] = []
        for spec in (s for s in self.fields_for(task, fields) if s.record_type == "person"):
            name = self.api_name(spec.name)
            after: dict[str, Any] = {"label": spec.label[:40], **TOOLING_TYPES.get(spec.type, TOOLING_TYPES["text"]),
                                     "access": access}
            seen = visible.get(name)
            if seen is not None and seen.get("updateable"):
                diffs.append(RecordDiff(f"Contact.{name}", "unchanged", after, after))
                continue
            if seen is not None:
                diffs.append(RecordDiff(f"Contact.{name}", "update", {**after, "access": "read"}, after))
            else:
                diffs.append(RecordDiff(f"Contact.{name}", "create", {}, after))
                if not dry_run:
                    self._create_field(name, after, spec.description)
            to_grant.append(name)
        if to_grant and not dry_run:
            self._grant_access(to_grant)
            self._fields.pop("Contact", None)
        return WriteReport(dry_run=dry_run, diffs=tuple(diffs), target="salesforce:Contact")

    def _create_field(self, name: str, after: Mapping[str, Any], description: str) -> None:
        metadata = {k: v for k, v in after.items() if k != "access"}
        body = {"FullName": f"Contact.{name}", "Metadata": {**metadata, "description": description}}
        try:
            self.client.call(operator.methodcaller("toolingexecute", "sobjects/CustomField/", method="POST", data=body),
                             f"create Contact.{name}")
        except ConnectorError as exc:
            # Created by an earlier run that stopped before granting access: the field exists, only unseen.
            if "DUPLICATE_DEVELOPER_NAME" not in str(exc):
                raise

    def _soql(self, soql: str, what: str) -> list[dict[str, Any]]:
        return list(self.client.call(operator.methodcaller("query_all", soql), what).get("records") or [])

    def _create(self, sobject: str, values: Mapping[str, Any]) -> str:
        created = self.client.call(lambda sf: getattr(sf, sobject).create(dict(values)), f"create {sobject}")
        return str(created.get("id") or "")

    def _grant_access(self, names: Sequence[str]) -> None:
        """Read and edit on ``names`` through the assoc-ai permission set, assigned to the run-as user."""
        pset_name = self.config.permission_set
        if not pset_name.replace("_", "").isalnum():
            raise ConfigError(tr("[connectors.salesforce].permission_set : lettres, chiffres et « _ » seulement.",
                                 "[connectors.salesforce].permission_set: letters, digits and '_' only."))
        found = self._soql(f"SELECT Id FROM PermissionSet WHERE Name = '{pset_name}'", "SOQL PermissionSet")
        pset = str(found[0]["Id"]) if found else self._create("PermissionSet", {
            "Name": pset_name, "Label": "assoc-ai scores",
            "Description": "Read and edit the assoc-ai score fields on Contact (created by assoc-ai ensure_fields)."})
        user = self.client.user_id
        if user.isalnum() and not self._soql(
                f"SELECT Id FROM PermissionSetAssignment WHERE PermissionSetId = '{pset}' AND AssigneeId = '{user}'",
                "SOQL PermissionSetAssignment"):
            self._create("PermissionSetAssignment", {"PermissionSetId": pset, "AssigneeId": user})
        rows = self._soql(f"SELECT Id, Field, PermissionsEdit FROM FieldPermissions WHERE ParentId = '{pset}' "
                          "AND SobjectType = 'Contact'", "SOQL FieldPermissions")
        granted = {str(r.get("Field")): r for r in rows}
        for name in names:
            row = granted.get(f"Contact.{name}")
            if row is None:
                self._create("FieldPermissions", {"ParentId": pset, "SobjectType": "Contact", "Field": f"Contact.{name}",
                                                  "PermissionsRead": True, "PermissionsEdit": True})
            elif not row.get("PermissionsEdit"):
                fp = str(row["Id"])
                grant = {"PermissionsRead": True, "PermissionsEdit": True}
                self.client.call(operator.methodcaller("restful", f"sobjects/FieldPermissions/{fp}", method="PATCH",
                                                       json=grant), f"update FieldPermissions {fp}")

    def score_target(self) -> str:
        """Scores go to Contacts."""
        return "salesforce:Contact"

    def read_stored_scores(self, person_ids: Sequence[str], fields: Sequence[str]) -> Mapping[str, StoredScores]:
        """The Contacts' score fields and objection to profiling, 200 Contacts per SOQL query."""
        c = self.config
        objection = self.do_not_profile_available()
        if c.do_not_profile_field and not objection:
            raise ConfigError(tr(
                f"Salesforce : impossible de savoir qui refuse le profilage, le champ {c.do_not_profile_field!r} "
                "n'existe pas dans l'organisation. Activez « Protection des données et confidentialité » (objet "
                "Individual) ou indiquez un champ case à cocher du Contact dans do_not_profile_field ; aucun score "
                "n'est écrit d'ici là.",
                f"Salesforce: cannot tell who objects to profiling, field {c.do_not_profile_field!r} does not exist "
                "in the org. Enable Data Protection and Privacy (the Individual object) or name a Contact checkbox "
                "field in do_not_profile_field; no score is written until then."))
        ids = sorted({pid for pid in person_ids if pid.isalnum()})
        select = ["Id", *(self.api_name(n) for n in fields), *([c.do_not_profile_field] if objection else [])]
        stored: dict[str, StoredScores] = {}
        for start in range(0, len(ids), 200):
            chunk = ", ".join(f"'{i}'" for i in ids[start : start + 200])
            soql = f"SELECT {', '.join(select)} FROM Contact WHERE Id IN ({chunk})"
            for row in self._soql(soql, "SOQL Contact (scores)"):
                stored[str(row["Id"])] = StoredScores({n: row.get(self.api_name(n)) for n in fields},
                                                      bool(objection and _get(row, c.do_not_profile_field)))
        return stored

    def save_scores(self, diffs: Sequence[RecordDiff], scores: Sequence[Score]) -> None:
        """Update the changed Contacts through sObject Collections, 200 a request."""
        failed: list[str] = []
        for start in range(0, len(diffs), COLLECTION_LIMIT):
            records = [{"attributes": {"type": "Contact"}, "id": d.record_id,
                        **{self.api_name(k): v for k, v in d.after.items()}}
                       for d in diffs[start : start + COLLECTION_LIMIT]]
            body = {"allOrNone": False, "records": records}
            results = self.client.call(operator.methodcaller("restful", "composite/sobjects", method="PATCH", json=body),
                                       "update Contact (sObject Collections)") or []
            for record, result in zip(records, results, strict=False):
                if not result.get("success"):
                    errors = result.get("errors") or [{}]
                    failed.append(f"{record['id']}: {errors[0].get('statusCode', '')} {errors[0].get('message', '')}")
        if failed:
            raise ConnectorError(tr(f"Salesforce a refusé {len(failed)} contact(s) : {failed[0]}",
                                    f"Salesforce rejected {len(failed)} contact(s): {failed[0]}"),
                                 connector_id=self.id)
