"""The CiviCRM connector: read contacts, contributions, memberships, events, volunteering; write scores back.

Scores go to a custom field group on Contact (created by :meth:`ensure_fields`)
and, optionally, the explanation to a Note on the contact ("assoc-ai: <task>"),
updated in place so re-running never piles notes up.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from assoc_ai_core.errors import CapabilityError, ConfigError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import (
    CURSOR_KEY,
    ApiCrmConnector,
    StoredScores,
    advance_cursor,
    is_after_cursor,
    site_time_zone,
)
from assoc_ai_core.ext.http import check_base_url
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.people import FieldSpec, RecordDiff, RecordPage, Score, WriteReport

from . import mapping
from .client import CONNECTOR_ID, SERVICE, CiviClient

# A cursor field the site lacks (getFields says so: Contribution before CiviCRM 6.9, Participant on older sites) is
# replaced by the id.  Memberships follow MembershipLog.modified_date: a renewal writes a log row, not a new membership.
DEFAULT_CURSOR_FIELDS = {"person": "modified_date", "gift": "modified_date", "recurring_plan": "modified_date",
                         "membership": "modified_date", "participation": "modified_date",
                         "volunteer_hours": "modified_date"}
DATA_TYPES = {"number": ("Float", "Text"), "text": ("Memo", "TextArea"), "date": ("Date", "Select Date")}
ID_CURSOR_KEY = "after_id"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CiviCrmConfig:
    """Settings of ``[connectors.civicrm]``; ``api_key`` and ``site_key`` are secret references."""

    base_url: str
    api_key: Secret
    site_key: Secret | None = None
    api_path: str = "/civicrm/ajax/api4"
    timezone: str = "Europe/Paris"
    custom_group: str = "assoc_ai_scores"
    field_prefix: str = "assoc_ai"
    explanation_note: bool = True
    do_not_profile_field: str = "do_not_trade"
    contact_type: str = "Individual"
    gift_financial_types: tuple[str, ...] = ("Donation",)
    volunteer_activity_type: str = "Volunteer"
    volunteer_role: str = "assignee"
    cursor_fields: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    verify_tls: bool = True
    max_attempts: int = 5
    max_retry_wait: float = 60.0

    def __post_init__(self) -> None:
        check_base_url(self.base_url, field="base_url", connector_id=CONNECTOR_ID)
        site_time_zone(self.timezone, connector_id=CONNECTOR_ID)
        if self.volunteer_role not in ("assignee", "target", "source"):
            raise ConfigError(
                tr(
                    "[connectors.civicrm].volunteer_role : « assignee », « target » ou « source ».",
                    "[connectors.civicrm].volunteer_role: 'assignee', 'target' or 'source'.",
                )
            )
        unknown = set(self.cursor_fields) - set(DEFAULT_CURSOR_FIELDS)
        if unknown:
            raise ConfigError(
                tr(
                    f"[connectors.civicrm].cursor_fields : types inconnus {sorted(unknown)}.",
                    f"[connectors.civicrm].cursor_fields: unknown record types {sorted(unknown)}.",
                )
            )


class CiviCrmConnector(ApiCrmConnector[CiviClient]):
    """CiviCRM through the API v4 REST end-point."""

    id: ClassVar[str] = "civicrm"
    Config: ClassVar[type] = CiviCrmConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ, Capability.WRITE_SCORES})
    record_types: ClassVar[frozenset[str]] = frozenset(mapping.ENTITIES)
    description: ClassVar[str] = "CiviCRM (API v4): contacts, contributions, recurring, memberships, events, volunteering"

    @property
    def tz(self) -> ZoneInfo:
        """The site's time zone (CiviCRM stores local wall-clock times)."""
        return ZoneInfo(self.config.timezone)

    def build_client(self) -> CiviClient:
        """The API v4 client of ``base_url`` + ``api_path`` (no I/O yet)."""
        c = self.config
        endpoint = check_base_url(c.base_url, field="base_url", connector_id=self.id) + "/" + c.api_path.strip("/")
        return CiviClient(endpoint, c.api_key, c.site_key, http=self.http_client(SERVICE))

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._fields: dict[str, frozenset[str]] = {}

    def open(self) -> None:
        """Check the key with a one-row read."""
        self.client.call("Contact", "get", {"select": ["id"], "limit": 1})

    def close(self) -> None:
        """Close the client and forget the discovered fields (the site may be upgraded before the next open)."""
        super().close()
        self._fields.clear()

    def entity_fields(self, entity: str) -> frozenset[str]:
        """The fields ``entity`` has on this site (``getFields``), asked once per session."""
        if entity not in self._fields:
            rows = self.client.call(entity, "getFields", {"select": ["name"], "action": "get", "loadOptions": False})
            self._fields[entity] = frozenset(str(r.get("name")) for r in rows.get("values") or [])
        return self._fields[entity]

    def has_entity(self, entity: str) -> bool:
        """Whether the site's API v4 offers ``entity`` (MembershipLog is missing on old sites)."""
        try:
            return bool(self.entity_fields(entity))
        except CapabilityError:
            self._fields[entity] = frozenset()
            return False

    # -- reading ------------------------------------------------------------------
    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[RecordPage]:
        """Yield pages of ``record_type`` changed since ``cursor`` (all when None), oldest first."""
        self.check_record_type(record_type)
        c = self.config
        entity = mapping.ENTITIES[record_type]
        cursor_field = {**DEFAULT_CURSOR_FIELDS, **dict(c.cursor_fields)}[record_type]
        where = self._where(record_type)
        select = mapping.SELECTS[record_type]
        if record_type == "person" and c.do_not_profile_field:
            select = [*select, c.do_not_profile_field]
        convert = functools.partial(self._convert, record_type)
        if record_type == "membership" and cursor_field != "id" and self.has_entity("MembershipLog"):
            yield from self._membership_history(cursor, page_size)
            return
        if record_type == "membership" and cursor_field != "id":
            log.warning("%s", tr("CiviCRM : pas d'API MembershipLog sur ce site, une adhésion = une saison.",
                                 "CiviCRM: no MembershipLog API on this site, one membership = one season."))
            cursor_field = "id"
        elif cursor_field != "id" and cursor_field not in self.entity_fields(entity):
            # Filtering or sorting on a field the site lacks is an API error ("Invalid field"): use the id.
            log.info("%s", tr(f"CiviCRM : {entity}.{cursor_field} n'existe pas sur ce site, lecture par id croissant.",
                              f"CiviCRM: {entity}.{cursor_field} does not exist on this site, reading by increasing id."))
            cursor_field = "id"
        if cursor_field != "id" and cursor_field not in select:
            select = [*select, cursor_field]
        if cursor_field == "id":
            yield from self._by_id(record_type, entity, select, where, convert, cursor, page_size)
        else:
            yield from self._by_date(record_type, entity, select, where, convert, cursor, cursor_field, page_size)

    def _where(self, record_type: str) -> list[list[Any]]:
        """The filters of ``record_type``: live, non-test records of the configured kinds."""
        c = self.config
        if record_type == "person":
            return [["is_deleted", "=", False], ["contact_type", "=", c.contact_type]]
        if record_type == "gift":
            kinds = [["financial_type_id:name", "IN", list(c.gift_financial_types)]] if c.gift_financial_types else []
            return [["is_test", "=", False], ["is_template", "=", False], *kinds]
        if record_type == "volunteer_hours":
            return [["activity_type_id:name", "=", c.volunteer_activity_type], ["is_deleted", "=", False]]
        return [["is_test", "=", False]]

    def _convert(self, record_type: str, row: Mapping[str, Any]) -> list[Any]:
        """The records of one row: none when it cannot be dated, one per volunteer for shared volunteering."""
        c, tz = self.config, self.tz
        if record_type == "person":
            return [mapping.person(row, tz, c.do_not_profile_field)]
        if record_type == "volunteer_hours":
            return mapping.volunteer_hours(row, tz, c.volunteer_role)
        convert = {"gift": mapping.gift, "recurring_plan": mapping.plan, "membership": mapping.membership,
                   "participation": mapping.participation}[record_type]
        record = convert(row, tz)
        return [] if record is None else [record]

    def _by_date(self, record_type: str, entity: str, select: list[str], where: list[list[Any]],
                 convert: Callable[[Mapping[str, Any]], list[Any]], cursor: Mapping[str, Any] | None,
                 cursor_field: str, page_size: int) -> Iterator[RecordPage]:
        mark = mapping.parse_dt(cursor.get(CURSOR_KEY), self.tz) if cursor and cursor.get(CURSOR_KEY) else None
        if mark is not None:
            # ">=" then is_after_cursor: rows sharing the cursor's instant are neither lost nor read twice.
            where = [*where, [cursor_field, ">=", mapping.format_dt(mark, self.tz)]]
        params = {"select": select, "where": where, "orderBy": {cursor_field: "ASC", "id": "ASC"}}
        state = dict(cursor or {})
        for rows in self.client.get_pages(entity, params, page_size=page_size):
            records = [rec for row in rows for rec in convert(row) if is_after_cursor(rec, cursor)]
            if records:
                state = advance_cursor(state, records)
                yield RecordPage(record_type, records, state)

    def _by_id(self, record_type: str, entity: str, select: list[str], where: list[list[Any]],
               convert: Callable[[Mapping[str, Any]], list[Any]], cursor: Mapping[str, Any] | None,
               page_size: int) -> Iterator[RecordPage]:
        after = int((cursor or {}).get(ID_CURSOR_KEY) or 0)
        params = {"select": select, "where": [*where, ["id", ">", after]], "orderBy": {"id": "ASC"}}
        for rows in self.client.get_pages(entity, params, page_size=page_size):
            after = max(after, *(int(r["id"]) for r in rows))
            records = [rec for row in rows for rec in convert(row)]
            yield RecordPage(record_type, records, {**dict(cursor or {}), ID_CURSOR_KEY: after})

    def _membership_history(self, cursor: Mapping[str, Any] | None, page_size: int) -> Iterator[RecordPage]:
        """One record per membership period, from MembershipLog (and the dues in MembershipPayment).

        CiviCRM keeps one Membership per member and a renewal moves its end
        date, writing a MembershipLog row each time; the periods are rebuilt
        from those rows, so a member of ten years counts ten seasons.
        """
        mark = mapping.parse_dt(cursor.get(CURSOR_KEY), self.tz) if cursor and cursor.get(CURSOR_KEY) else None
        where: list[list[Any]] = [["membership_id.is_test", "=", False]]
        if mark is not None:
            where.append(["modified_date", ">=", mapping.format_dt(mark, self.tz)])
        params = {"select": ["id", "membership_id", "modified_date"], "where": where,
                  "orderBy": {"modified_date": "ASC", "id": "ASC"}}
        state = dict(cursor or {})
        sent: dict[str, Any] = {}
        for rows in self.client.get_pages("MembershipLog", params, page_size=page_size):
            touched = sorted({int(r["membership_id"]) for r in rows if r.get("membership_id")})
            records = [rec for rec in self._periods(touched) if is_after_cursor(rec, cursor)
                       and sent.get(rec.source_id) != rec.modified]
            sent.update((rec.source_id, rec.modified) for rec in records)
            if records:
                state = advance_cursor(state, records)
                yield RecordPage("membership", records, state)

    def _periods(self, membership_ids: Sequence[int]) -> list[Any]:
        """The periods of these memberships, from their whole log and their payments."""
        if not membership_ids:
            return []
        logs: dict[int, list[dict[str, Any]]] = {}
        params = {"select": mapping.MEMBERSHIP_LOG_SELECT, "where": [["membership_id", "IN", list(membership_ids)]],
                  "orderBy": {"modified_date": "ASC", "id": "ASC"}}
        for rows in self.client.get_pages("MembershipLog", params, page_size=200):
            for row in rows:
                logs.setdefault(int(row["membership_id"]), []).append(row)
        payments: dict[int, list[dict[str, Any]]] = {}
        if self.has_entity("MembershipPayment"):
            params = {"select": mapping.MEMBERSHIP_PAYMENT_SELECT,
                      "where": [["membership_id", "IN", list(membership_ids)], ["contribution_id.is_test", "=", False]],
                      "orderBy": {"contribution_id.receive_date": "ASC", "id": "ASC"}}
            for rows in self.client.get_pages("MembershipPayment", params, page_size=200):
                for row in rows:
                    payments.setdefault(int(row["membership_id"]), []).append(row)
        return [rec for mid in membership_ids
                for rec in mapping.membership_periods(mid, logs.get(mid, []), payments.get(mid, []), self.tz)]

    # -- writing ------------------------------------------------------------------
    def _api_name(self, name: str) -> str:
        return f"{self.config.custom_group}.{name}"

    def ensure_fields(self, fields: Sequence[FieldSpec] | None = None, *, task: str = "", dry_run: bool = True) -> WriteReport:
        """Create the custom group (on Contact) and the missing fields; existing ones are left alone."""
        self.require(Capability.WRITE_SCORES)
        specs = [s for s in self.fields_for(task, fields) if s.record_type == "person"]
        group = self.config.custom_group
        diffs: list[RecordDiff] = []
        found = self.client.call("CustomGroup", "get", {"select": ["id", "name"], "where": [["name", "=", group]]})
        if not found.get("values"):
            diffs.append(RecordDiff(f"CustomGroup:{group}", "create", {}, {"name": group, "extends": "Contact"}))
            if not dry_run:
                self.client.call("CustomGroup", "create", {"values": {
                    "name": group, "title": "assoc-ai", "extends": "Contact", "style": "Inline",
                    "collapse_display": True, "is_active": True}})
            existing: set[str] = set()
        else:
            rows = self.client.call("CustomField", "get", {"select": ["name"],
                                                           "where": [["custom_group_id:name", "=", group]]})
            existing = {str(r.get("name")) for r in rows.get("values") or []}
        for spec in specs:
            data_type, html_type = DATA_TYPES.get(spec.type, DATA_TYPES["text"])
            after = {"name": spec.name, "label": spec.label, "data_type": data_type, "html_type": html_type}
            if spec.name in existing:
                diffs.append(RecordDiff(f"CustomField:{spec.name}", "unchanged", after, after))
                continue
            diffs.append(RecordDiff(f"CustomField:{spec.name}", "create", {}, after))
            if not dry_run:
                self.client.call("CustomField", "create", {"values": {
                    **after, "custom_group_id.name": group, "help_post": spec.description,
                    "is_searchable": True, "is_view": True}})
        return WriteReport(dry_run=dry_run, diffs=tuple(diffs), target=f"civicrm:CustomGroup:{group}")

    def score_target(self) -> str:
        """Scores go to contacts."""
        return "civicrm:Contact"

    def read_stored_scores(self, person_ids: Sequence[str], fields: Sequence[str]) -> Mapping[str, StoredScores]:
        """The custom fields and the do-not-profile flag of the contacts, 100 per call."""
        c = self.config
        ids = sorted({pid for pid in person_ids if pid.isdigit()}, key=int)
        select = ["id", *(self._api_name(n) for n in fields)] + ([c.do_not_profile_field] if c.do_not_profile_field else [])
        stored: dict[str, StoredScores] = {}
        for start in range(0, len(ids), 100):
            chunk = [int(i) for i in ids[start : start + 100]]
            rows = self.client.call("Contact", "get", {"select": select, "where": [["id", "IN", chunk], ["is_deleted", "=", False]]})
            for row in rows.get("values") or []:
                objects = bool(c.do_not_profile_field and row.get(c.do_not_profile_field))
                stored[str(row["id"])] = StoredScores({n: row.get(self._api_name(n)) for n in fields}, objects)
        return stored

    def save_scores(self, diffs: Sequence[RecordDiff], scores: Sequence[Score]) -> None:
        """``Contact.save`` 50 contacts a call, then the explanation notes when configured."""
        for start in range(0, len(diffs), 50):
            records = [{"id": int(d.record_id), **{self._api_name(k): v for k, v in d.after.items()}}
                       for d in diffs[start : start + 50]]
            self.client.call("Contact", "save", {"records": records, "match": ["id"]})
        if self.config.explanation_note:
            by_id = {str(s.person_id): s for s in scores}
            self._write_notes([by_id[d.record_id] for d in diffs if d.record_id in by_id])

    def _write_notes(self, scores: Sequence[Score]) -> None:
        """One note per contact and task, rewritten in place."""
        for task in sorted({s.task for s in scores}):
            subject = f"assoc-ai: {task}"
            batch = [s for s in scores if s.task == task]
            for start in range(0, len(batch), 100):
                chunk = batch[start : start + 100]
                found = self.client.call("Note", "get", {"select": ["id", "entity_id"], "where": [
                    ["entity_table", "=", "civicrm_contact"], ["subject", "=", subject],
                    ["entity_id", "IN", [int(s.person_id) for s in chunk]]]})
                note_ids = {str(r["entity_id"]): r["id"] for r in found.get("values") or []}
                records = []
                for s in chunk:
                    text = tr(f"Probabilité {s.probability:.0%}. {s.explanation}".strip(),
                              f"Probability {s.probability:.0%}. {s.explanation}".strip())
                    record = {"entity_table": "civicrm_contact", "entity_id": int(s.person_id), "subject": subject,
                              "note": text, "privacy": "0"}
                    if str(s.person_id) in note_ids:
                        record["id"] = note_ids[str(s.person_id)]
                    records.append(record)
                self.client.call("Note", "save", {"records": records})
