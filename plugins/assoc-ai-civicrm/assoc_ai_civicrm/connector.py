"""The CiviCRM connector: read contacts, contributions, memberships, events, volunteering; write scores back.

Scores go to a custom field group on Contact (created by :meth:`ensure_fields`)
and, optionally, the explanation to a Note on the contact ("assoc-ai: <task>"),
updated in place so re-running never piles notes up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CURSOR_KEY, CrmConnector, advance_cursor, is_after_cursor, plan_score_writes
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.people import FieldSpec, RecordDiff, RecordPage, Score, WriteReport, score_field_names

from . import mapping
from .client import CiviClient
from .http import check_base_url

# Entities without a modified_date (Membership; Contribution before CiviCRM 6.9) are read by increasing id.
DEFAULT_CURSOR_FIELDS = {"person": "modified_date", "gift": "modified_date", "recurring_plan": "modified_date",
                         "membership": "id", "participation": "modified_date", "volunteer_hours": "modified_date"}
DATA_TYPES = {"number": ("Float", "Text"), "text": ("Memo", "TextArea"), "date": ("Date", "Select Date")}
ID_CURSOR_KEY = "after_id"


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
        check_base_url(self.base_url, field="base_url")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                tr(
                    f"[connectors.civicrm].timezone : fuseau horaire inconnu {self.timezone!r} (ex. « Europe/Paris »).",
                    f"[connectors.civicrm].timezone: unknown time zone {self.timezone!r} (e.g. 'Europe/Paris').",
                )
            ) from None
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


class CiviCrmConnector(CrmConnector):
    """CiviCRM through the API v4 REST end-point."""

    id: ClassVar[str] = "civicrm"
    Config: ClassVar[type] = CiviCrmConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ, Capability.WRITE_SCORES})
    record_types: ClassVar[frozenset[str]] = frozenset(mapping.ENTITIES)
    description: ClassVar[str] = "CiviCRM (API v4): contacts, contributions, recurring, memberships, events, volunteering"

    def __init__(self, config: CiviCrmConfig) -> None:
        super().__init__(config)
        self._client: CiviClient | None = None

    @property
    def tz(self) -> ZoneInfo:
        """The site's time zone (CiviCRM stores local wall-clock times)."""
        return ZoneInfo(self.config.timezone)

    @property
    def client(self) -> CiviClient:
        """The API client, built on first use."""
        if self._client is None:
            c = self.config
            endpoint = check_base_url(c.base_url, field="base_url") + "/" + c.api_path.strip("/")
            self._client = CiviClient(endpoint, c.api_key, c.site_key, timeout=c.timeout, verify=c.verify_tls,
                                      max_attempts=c.max_attempts, max_retry_wait=c.max_retry_wait)
        return self._client

    def open(self) -> None:
        """Check the key with a one-row read."""
        self.client.call("Contact", "get", {"select": ["id"], "limit": 1})

    def close(self) -> None:
        """Close the HTTP session; safe twice."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- reading ------------------------------------------------------------------
    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[RecordPage]:
        """Yield pages of ``record_type`` changed since ``cursor`` (all when None), oldest first."""
        self.check_record_type(record_type)
        c, tz = self.config, self.tz
        entity = mapping.ENTITIES[record_type]
        cursor_field = {**DEFAULT_CURSOR_FIELDS, **dict(c.cursor_fields)}[record_type]
        where: list[list[Any]] = []
        if record_type == "person":
            where += [["is_deleted", "=", False], ["contact_type", "=", c.contact_type]]
            select = mapping.SELECTS["person"] + ([c.do_not_profile_field] if c.do_not_profile_field else [])
            convert: Callable[[Mapping[str, Any]], list[Any]] = lambda r: [mapping.person(r, tz, c.do_not_profile_field)]
        elif record_type == "gift":
            where += [["is_test", "=", False], ["is_template", "=", False]]
            if c.gift_financial_types:
                where.append(["financial_type_id:name", "IN", list(c.gift_financial_types)])
            select = mapping.SELECTS["gift"]
            convert = lambda r: [g for g in [mapping.gift(r, tz)] if g]  # noqa: E731
        elif record_type == "recurring_plan":
            where.append(["is_test", "=", False])
            select, convert = mapping.SELECTS["recurring_plan"], lambda r: [mapping.plan(r, tz)]
        elif record_type == "membership":
            where.append(["is_test", "=", False])
            select, convert = mapping.SELECTS["membership"], lambda r: [mapping.membership(r, tz)]
        elif record_type == "participation":
            where.append(["is_test", "=", False])
            select = mapping.SELECTS["participation"]
            convert = lambda r: [p for p in [mapping.participation(r, tz)] if p]  # noqa: E731
        else:
            where += [["activity_type_id:name", "=", c.volunteer_activity_type], ["is_deleted", "=", False]]
            select = mapping.SELECTS["volunteer_hours"]
            convert = lambda r: mapping.volunteer_hours(r, tz, c.volunteer_role)  # noqa: E731
        if cursor_field != "id" and cursor_field not in select:
            select = [*select, cursor_field]
        if cursor_field == "id":
            yield from self._by_id(record_type, entity, select, where, convert, cursor, page_size)
        else:
            yield from self._by_date(record_type, entity, select, where, convert, cursor, cursor_field, page_size)

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

    def write_scores(self, scores: Sequence[Score], *, dry_run: bool = True) -> WriteReport:
        """Diff the scores against the contacts' custom fields; write them (and the notes) unless ``dry_run``."""
        self.require(Capability.WRITE_SCORES)
        c = self.config
        ids = sorted({str(s.person_id) for s in scores if str(s.person_id).isdigit()}, key=int)
        names = sorted({n for s in scores for n in score_field_names(s.task, c.field_prefix).values()})
        current: dict[str, dict[str, Any]] = {}
        blocked: list[tuple[str, str]] = []
        select = ["id", *(self._api_name(n) for n in names)] + ([c.do_not_profile_field] if c.do_not_profile_field else [])
        for start in range(0, len(ids), 100):
            chunk = [int(i) for i in ids[start : start + 100]]
            rows = self.client.call("Contact", "get", {"select": select, "where": [["id", "IN", chunk], ["is_deleted", "=", False]]})
            for row in rows.get("values") or []:
                pid = str(row["id"])
                if c.do_not_profile_field and row.get(c.do_not_profile_field):
                    blocked.append((pid, tr("la personne refuse le profilage (do_not_profile)",
                                            "the person objects to profiling (do_not_profile)")))
                    continue
                current[pid] = {n: row.get(self._api_name(n)) for n in names}
        blocked_ids = {pid for pid, _ in blocked}
        allowed = [s for s in scores if str(s.person_id) not in blocked_ids]
        report = plan_score_writes(current, allowed, dry_run=dry_run, prefix=c.field_prefix, target="civicrm:Contact")
        report = WriteReport(dry_run=dry_run, diffs=report.diffs, skipped=tuple(blocked) + report.skipped, target=report.target)
        if dry_run:
            return report
        changed = [d for d in report.diffs if d.action != "unchanged"]
        for start in range(0, len(changed), 50):
            records = [{"id": int(d.record_id), **{self._api_name(k): v for k, v in d.after.items()}}
                       for d in changed[start : start + 50]]
            self.client.call("Contact", "save", {"records": records, "match": ["id"]})
        if c.explanation_note:
            by_id = {str(s.person_id): s for s in allowed}
            self._write_notes([by_id[d.record_id] for d in changed if d.record_id in by_id])
        return report

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
