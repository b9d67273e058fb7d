"""The Salesforce Nonprofit Success Pack (NPSP) connector, on simple-salesforce.

Reads Contacts, Opportunities (gifts; the ``Membership`` record type as
memberships) and ``npe03__Recurring_Donation__c``; incremental on
``SystemModstamp``, paging with ``query_more``.  Writes scores to Contact custom
fields (``ensure_fields`` creates them through the Tooling API).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CURSOR_KEY, ApiCrmConnector, StoredScores, advance_cursor, is_after_cursor
from assoc_ai_core.ext.paging import token_pages
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
SOQL = {
    "person": ("Contact", "Id, FirstName, LastName, Email, Phone, MailingPostalCode, MailingCity, Birthdate, "
                          "CreatedDate, SystemModstamp, {dnp}", "IsDeleted = false"),
    "gift": ("Opportunity", "Id, npsp__Primary_Contact__c, Amount, CloseDate, StageName, CurrencyIsoCode, "
                            "npe03__Recurring_Donation__c, Campaign.Name, RecordType.DeveloperName, SystemModstamp",
             "IsWon = true AND RecordType.DeveloperName != '{membership}'"),
    "membership": ("Opportunity", "Id, npsp__Primary_Contact__c, Amount, CloseDate, StageName, IsWon, "
                                  "npe01__Membership_Start_Date__c, npe01__Membership_End_Date__c, "
                                  "npe01__Membership_Origin__c, RecordType.DeveloperName, SystemModstamp",
                   "RecordType.DeveloperName = '{membership}'"),
    "recurring_plan": ("npe03__Recurring_Donation__c", "Id, npe03__Contact__c, npe03__Amount__c, "
                                                       "npe03__Installment_Period__c, npe03__Date_Established__c, "
                                                       "npsp__Status__c, npsp__EndDate__c, SystemModstamp", ""),
}
TOOLING_TYPES = {"number": {"type": "Number", "precision": 5, "scale": 4},
                 "text": {"type": "LongTextArea", "length": 32768, "visibleLines": 3},
                 "date": {"type": "DateTime"}}


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
    timeout: float = 30.0
    verify_tls: bool | str = True
    max_attempts: int = 5
    max_retry_wait: float = 60.0

    def __post_init__(self) -> None:
        check_https(self.domain_url, "domain_url")


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
    record_types: ClassVar[frozenset[str]] = frozenset(SOQL)
    description: ClassVar[str] = "Salesforce NPSP: contacts, gifts, recurring donations, memberships; scores on Contact"

    def build_client(self) -> SalesforceSession:
        """The Salesforce session (no I/O yet: the token is asked for on first use)."""
        c = self.config
        return SalesforceSession(check_https(c.domain_url, "domain_url"), c.client_id, c.client_secret,
                                 api_version=c.api_version, http=self.http_client(SERVICE, field="domain_url"))

    def open(self) -> None:
        """Get a token now, so a wrong secret fails before any read."""
        self.client.login()

    # -- reading ------------------------------------------------------------------
    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 200
    ) -> Iterator[RecordPage]:
        """Yield pages of ``record_type`` changed since ``cursor`` (``SystemModstamp``), oldest first."""
        self.check_record_type(record_type)
        c = self.config
        sobject, fields, where = SOQL[record_type]
        fields = fields.format(dnp=c.do_not_profile_field)
        clauses = [where.format(membership=c.membership_record_type)] if where else []
        if cursor and cursor.get(CURSOR_KEY):
            clauses.append(f"SystemModstamp >= {_soql_dt(datetime.fromisoformat(str(cursor[CURSOR_KEY])))}")
        soql = f"SELECT {fields} FROM {sobject}"
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
            records = [r for r in map(getattr(self, f"_{record_type}"), rows) if r is not None and is_after_cursor(r, cursor)]
            if records:
                state = advance_cursor(state, records)
                yield RecordPage(record_type, records, state)

    def _person(self, row: Mapping[str, Any]) -> Person:
        born = _day(row.get("Birthdate"))
        return Person(source=SOURCE, source_id=str(row["Id"]), first_name=str(row.get("FirstName") or ""),
                      last_name=str(row.get("LastName") or ""), email=str(row.get("Email") or ""),
                      phone=str(row.get("Phone") or ""), postcode=str(row.get("MailingPostalCode") or ""),
                      city=str(row.get("MailingCity") or ""), birth_year=born.year if born else None,
                      created=_dt(row.get("CreatedDate")), modified=_dt(row.get("SystemModstamp")),
                      do_not_profile=bool(_get(row, self.config.do_not_profile_field)))

    def _gift(self, row: Mapping[str, Any]) -> Gift | None:
        when = _day(row.get("CloseDate"))
        if when is None or not row.get("npsp__Primary_Contact__c"):
            return None
        plan = row.get("npe03__Recurring_Donation__c")
        return Gift(source=SOURCE, source_id=str(row["Id"]), person_id=str(row["npsp__Primary_Contact__c"]),
                    amount=round(float(row.get("Amount") or 0), 2), date=when,
                    currency=str(row.get("CurrencyIsoCode") or "EUR"), recurring=bool(plan), plan_id=str(plan or ""),
                    campaign=str(_get(row, "Campaign.Name") or ""), modified=_dt(row.get("SystemModstamp")),
                    raw={"stage": row.get("StageName")})

    def _membership(self, row: Mapping[str, Any]) -> Membership | None:
        start, end = _day(row.get("npe01__Membership_Start_Date__c")), _day(row.get("npe01__Membership_End_Date__c"))
        start = start or _day(row.get("CloseDate"))
        if start is None or not row.get("npsp__Primary_Contact__c"):
            return None
        season = str(start.year) if not end or end.year == start.year else f"{start.year}-{end.year}"
        return Membership(source=SOURCE, source_id=str(row["Id"]), person_id=str(row["npsp__Primary_Contact__c"]),
                          season=season, fee=round(float(row.get("Amount") or 0), 2),
                          status="paid" if row.get("IsWon") else str(row.get("StageName") or "").lower(),
                          start=start, end=end, modified=_dt(row.get("SystemModstamp")),
                          raw={"origin": row.get("npe01__Membership_Origin__c") or ""})

    def _recurring_plan(self, row: Mapping[str, Any]) -> RecurringPlan | None:
        if not row.get("npe03__Contact__c"):
            return None
        status = str(row.get("npsp__Status__c") or "Active")
        return RecurringPlan(source=SOURCE, source_id=str(row["Id"]), person_id=str(row["npe03__Contact__c"]),
                             amount=round(float(row.get("npe03__Amount__c") or 0), 2),
                             frequency=str(row.get("npe03__Installment_Period__c") or "Monthly").lower(),
                             start=_day(row.get("npe03__Date_Established__c")), end=_day(row.get("npsp__EndDate__c")),
                             status={"Active": "active", "Lapsed": "lapsed", "Closed": "cancelled",
                                     "Paused": "paused"}.get(status, status.lower()),
                             modified=_dt(row.get("SystemModstamp")))

    # -- writing ------------------------------------------------------------------
    def api_name(self, name: str) -> str:
        """The Contact field that holds canonical field ``name`` (``field_map``, else ``<name>__c``)."""
        return self.config.field_map.get(name) or f"{name}__c"

    def ensure_fields(self, fields: Sequence[FieldSpec] | None = None, *, task: str = "", dry_run: bool = True) -> WriteReport:
        """Create missing Contact custom fields through the Tooling API (``Customize Application`` needed)."""
        self.require(Capability.WRITE_SCORES)
        described = self.client.call(lambda sf: sf.Contact.describe(), "describe Contact")
        existing = {f["name"] for f in described.get("fields", [])}
        diffs: list[RecordDiff] = []
        for spec in (s for s in self.fields_for(task, fields) if s.record_type == "person"):
            name = self.api_name(spec.name)
            after = {"label": spec.label[:40], **TOOLING_TYPES.get(spec.type, TOOLING_TYPES["text"])}
            if name in existing:
                diffs.append(RecordDiff(f"Contact.{name}", "unchanged", after, after))
                continue
            diffs.append(RecordDiff(f"Contact.{name}", "create", {}, after))
            if not dry_run:
                body = {"FullName": f"Contact.{name}", "Metadata": {**after, "description": spec.description}}
                self.client.call(operator.methodcaller("toolingexecute", "sobjects/CustomField/", method="POST", data=body),
                                 f"create Contact.{name}")
        return WriteReport(dry_run=dry_run, diffs=tuple(diffs), target="salesforce:Contact")

    def score_target(self) -> str:
        """Scores go to Contacts."""
        return "salesforce:Contact"

    def read_stored_scores(self, person_ids: Sequence[str], fields: Sequence[str]) -> Mapping[str, StoredScores]:
        """The Contacts' score fields and objection to profiling, 200 Contacts per SOQL query."""
        c = self.config
        ids = sorted({pid for pid in person_ids if pid.isalnum()})
        stored: dict[str, StoredScores] = {}
        for start in range(0, len(ids), 200):
            chunk = ", ".join(f"'{i}'" for i in ids[start : start + 200])
            soql = (f"SELECT Id, {', '.join(self.api_name(n) for n in fields)}, {c.do_not_profile_field} "
                    f"FROM Contact WHERE Id IN ({chunk})")
            rows = self.client.call(operator.methodcaller("query_all", soql), "SOQL Contact (scores)")
            for row in rows.get("records") or []:
                stored[str(row["Id"])] = StoredScores({n: row.get(self.api_name(n)) for n in fields},
                                                      bool(_get(row, c.do_not_profile_field)))
        return stored

    def save_scores(self, diffs: Sequence[RecordDiff], scores: Sequence[Score]) -> None:
        """PATCH each changed Contact."""
        for diff in diffs:
            self._update_contact(diff.record_id, {self.api_name(k): v for k, v in diff.after.items()})

    def _update_contact(self, contact_id: str, values: Mapping[str, Any]) -> None:
        self.client.call(lambda sf: sf.Contact.update(contact_id, dict(values)), f"update Contact {contact_id}")
