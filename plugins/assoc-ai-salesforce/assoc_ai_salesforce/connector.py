"""The Salesforce Nonprofit Success Pack (NPSP) connector, on simple-salesforce.

Reads Contacts, Opportunities (gifts; the ``Membership`` record type as
memberships) and ``npe03__Recurring_Donation__c``; incremental on
``SystemModstamp``, paging with ``query_more``.  Writes scores to Contact custom
fields (``ensure_fields`` creates them through the Tooling API).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CURSOR_KEY, CrmConnector, advance_cursor, is_after_cursor, plan_score_writes
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
    score_field_names,
)

from .session import SalesforceSession, check_https

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


class SalesforceConnector(CrmConnector):
    """Salesforce NPSP through the REST API (simple-salesforce)."""

    id: ClassVar[str] = "salesforce"
    Config: ClassVar[type] = SalesforceConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ, Capability.WRITE_SCORES})
    record_types: ClassVar[frozenset[str]] = frozenset(SOQL)
    description: ClassVar[str] = "Salesforce NPSP: contacts, gifts, recurring donations, memberships; scores on Contact"

    def __init__(self, config: SalesforceConfig) -> None:
        super().__init__(config)
        self._session: SalesforceSession | None = None

    @property
    def session(self) -> SalesforceSession:
        """The Salesforce session, built on first use."""
        if self._session is None:
            c = self.config
            self._session = SalesforceSession(check_https(c.domain_url, "domain_url"), c.client_id, c.client_secret,
                                              api_version=c.api_version, timeout=c.timeout, verify=c.verify_tls,
                                              max_attempts=c.max_attempts, max_retry_wait=c.max_retry_wait)
        return self._session

    def open(self) -> None:
        """Get a token now, so a wrong secret fails before any read."""
        self.session.login()

    def close(self) -> None:
        """Close the HTTP session; safe twice."""
        if self._session is not None:
            self._session.close()
            self._session = None

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
        result = self.session.call(lambda sf: sf.query(soql, headers=headers), f"SOQL {sobject}")
        state = dict(cursor or {})
        while True:
            records = [r for r in map(getattr(self, f"_{record_type}"), result.get("records") or [])
                       if r is not None and is_after_cursor(r, cursor)]
            if records:
                state = advance_cursor(state, records)
                yield RecordPage(record_type, records, state)
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                return
            result = self.session.call(lambda sf: sf.query_more(next_url, identifier_is_url=True, headers=headers),
                                       f"SOQL {sobject} (query_more)")

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
        described = self.session.call(lambda sf: sf.Contact.describe(), "describe Contact")
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
                self.session.call(lambda sf: sf.toolingexecute("sobjects/CustomField/", method="POST", data=body),
                                  f"create Contact.{name}")
        return WriteReport(dry_run=dry_run, diffs=tuple(diffs), target="salesforce:Contact")

    def write_scores(self, scores: Sequence[Score], *, dry_run: bool = True) -> WriteReport:
        """Diff scores against the Contacts' fields; PATCH only the changed Contacts unless ``dry_run``."""
        self.require(Capability.WRITE_SCORES)
        c = self.config
        names = sorted({n for s in scores for n in score_field_names(s.task, c.field_prefix).values()})
        ids = sorted({str(s.person_id) for s in scores if str(s.person_id).isalnum()})
        current: dict[str, dict[str, Any]] = {}
        blocked: list[tuple[str, str]] = []
        for start in range(0, len(ids), 200):
            chunk = ", ".join(f"'{i}'" for i in ids[start : start + 200])
            soql = (f"SELECT Id, {', '.join(self.api_name(n) for n in names)}, {c.do_not_profile_field} "
                    f"FROM Contact WHERE Id IN ({chunk})")
            rows = self.session.call(lambda sf: sf.query_all(soql), "SOQL Contact (scores)")
            for row in rows.get("records") or []:
                pid = str(row["Id"])
                if _get(row, c.do_not_profile_field):
                    blocked.append((pid, tr("la personne refuse le profilage (do_not_profile)",
                                            "the person objects to profiling (do_not_profile)")))
                else:
                    current[pid] = {n: row.get(self.api_name(n)) for n in names}
        blocked_ids = {pid for pid, _ in blocked}
        plan = plan_score_writes(current, [s for s in scores if str(s.person_id) not in blocked_ids], dry_run=dry_run,
                                 prefix=c.field_prefix, target="salesforce:Contact")
        report = WriteReport(dry_run=dry_run, diffs=plan.diffs, skipped=tuple(blocked) + plan.skipped, target=plan.target)
        if not dry_run:
            for diff in report.diffs:
                if diff.action != "unchanged":
                    values = {self.api_name(k): v for k, v in diff.after.items()}
                    self.session.call(lambda sf: sf.Contact.update(diff.record_id, values), f"update Contact {diff.record_id}")
        return report
