"""The HelloAsso connector: read donations, memberships and event registrations of one organisation.

HelloAsso is read-only for assoc-ai: it has no place to keep a score (no
custom field on a payer), so ``write_scores`` raises CapabilityError.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CURSOR_KEY, ApiCrmConnector, advance_cursor, is_after_cursor
from assoc_ai_core.ext.http import check_base_url
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.people import RecordPage

from . import mapping
from .client import CONNECTOR_ID, SERVICE, HelloAssoClient

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 100  # the v5 API caps pageSize at 100


@dataclass(frozen=True)
class HelloAssoConfig:
    """Settings of ``[connectors.helloasso]``; ``client_secret`` is a secret reference."""

    organization_slug: str
    client_id: str
    client_secret: Secret
    api_url: str = "https://api.helloasso.com"
    timeout: float = 30.0
    verify_tls: bool = True
    max_attempts: int = 5
    max_retry_wait: float = 60.0

    def __post_init__(self) -> None:
        if not self.organization_slug or "/" in self.organization_slug:
            raise ConfigError(
                tr(
                    "[connectors.helloasso].organization_slug : indiquez le nom court de l'association "
                    "tel qu'il apparaît dans l'adresse helloasso.com/associations/<nom>.",
                    "[connectors.helloasso].organization_slug: give the organization's short name as in "
                    "helloasso.com/associations/<name>.",
                )
            )
        check_base_url(self.api_url, field="api_url", connector_id=CONNECTOR_ID)


# record type -> (tier types read from the items endpoint, converter)
ITEM_TYPES: dict[str, tuple[str, ...]] = {
    "recurring_plan": ("MonthlyDonation",),
    "membership": ("Membership",),
    "participation": ("Registration",),
}


class HelloAssoConnector(ApiCrmConnector[HelloAssoClient]):
    """HelloAsso API v5, one organisation, read-only."""

    id: ClassVar[str] = "helloasso"
    Config: ClassVar[type] = HelloAssoConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ})
    record_types: ClassVar[frozenset[str]] = frozenset({"person", "gift", "recurring_plan", "membership", "participation"})
    description: ClassVar[str] = "HelloAsso (API v5): payers, donations, monthly donations, memberships, events"

    def __init__(self, config: HelloAssoConfig) -> None:
        super().__init__(config)
        self._forms: dict[str, dict[str, Any]] | None = None

    # -- lifecycle ----------------------------------------------------------------
    def build_client(self) -> HelloAssoClient:
        """The API v5 client (no I/O yet: the token is asked for on first use)."""
        c = self.config
        return HelloAssoClient(check_base_url(c.api_url, field="api_url", connector_id=self.id), c.client_id,
                               c.client_secret, http=self.http_client(SERVICE, field="api_url"))

    def open(self) -> None:
        """Authenticate now, so a wrong secret fails before any read."""
        self.client.authenticate()

    # -- reading ------------------------------------------------------------------
    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[RecordPage]:
        """Yield pages of ``record_type`` changed since ``cursor`` (all when None), oldest first."""
        self.check_record_type(record_type)
        size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        org = f"/organizations/{self.config.organization_slug}"
        if record_type == "person":
            yield from self._persons(org, cursor, size)
        elif record_type == "gift":
            yield from self._changed("gift", f"{org}/payments", {}, mapping.gift_from_payment, cursor, size)
        else:
            tiers = ITEM_TYPES[record_type]
            convert: Callable[[Mapping[str, Any]], Any]
            if record_type == "participation":
                convert = functools.partial(mapping.participation_from_item, forms=self._event_forms(org, size))
            elif record_type == "membership":
                convert = mapping.membership_from_item
            else:
                convert = mapping.plan_from_item
            params = {"tierTypes": list(tiers), "withDetails": "true"}
            yield from self._changed(record_type, f"{org}/items", params, convert, cursor, size)

    def _persons(self, org: str, cursor: Mapping[str, Any] | None, size: int) -> Iterator[RecordPage]:
        # Orders are filtered by date on the server, oldest first: each page can be yielded as it comes.
        params: dict[str, Any] = {"sortOrder": "Asc"}
        if cursor and cursor.get(CURSOR_KEY):
            params["from"] = str(cursor[CURSOR_KEY])
        state = dict(cursor or {})
        for data in self.client.pages(f"{org}/orders", params, page_size=size):
            people: dict[str, Any] = {}
            for order in data:
                person = mapping.person_from_order(order)
                if person is not None and is_after_cursor(person, cursor):
                    people[person.source_id] = person
            if people:
                records = list(people.values())
                state = advance_cursor(state, records)
                yield RecordPage("person", records, state)

    def _changed(
        self,
        record_type: str,
        path: str,
        params: Mapping[str, Any],
        convert: Callable[[Mapping[str, Any]], Any],
        cursor: Mapping[str, Any] | None,
        size: int,
    ) -> Iterator[RecordPage]:
        """Records of an endpoint sortable by UpdateDate, changed since ``cursor``.

        HelloAsso filters by creation date only, so an incremental read scans
        newest-updated first and stops at the cursor, then hands the changes
        over oldest first: a page's cursor is then safe to store even if the
        run stops before the next page.
        """
        mark = mapping.parse_dt(cursor.get(CURSOR_KEY)) if cursor and cursor.get(CURSOR_KEY) else None
        if mark is None:
            state: dict[str, Any] = {}
            query = {**params, "sortOrder": "Asc", "sortField": "UpdateDate"}
            for data in self.client.pages(path, query, page_size=size):
                records = _dedupe(r for r in map(convert, data) if r is not None)
                if records:
                    state = advance_cursor(state, records)
                    yield RecordPage(record_type, records, state)
            return
        changed: list[Any] = []
        query = {**params, "sortOrder": "Desc", "sortField": "UpdateDate"}
        for data in self.client.pages(path, query, page_size=size):
            reached = False
            for obj in data:
                when = mapping.updated_at(obj)
                if when is not None and when < mark:
                    reached = True
                    break
                record = convert(obj)
                if record is not None and is_after_cursor(record, cursor):
                    changed.append(record)
            if reached:
                break
        changed.sort(key=lambda r: (r.modified or EPOCH, str(r.source_id)))
        ordered = _dedupe(changed)
        state = dict(cursor or {})
        for start in range(0, len(ordered), size):
            chunk = ordered[start : start + size]
            state = advance_cursor(state, chunk)
            yield RecordPage(record_type, chunk, state)

    def _event_forms(self, org: str, size: int) -> dict[str, dict[str, Any]]:
        """Event forms by slug (title and start date), read once per connector."""
        if self._forms is None:
            forms: dict[str, dict[str, Any]] = {}
            for data in self.client.pages(f"{org}/forms", {"formTypes": ["Event"]}, page_size=size):
                for form in data:
                    forms[str(form.get("formSlug") or "")] = dict(form)
            self._forms = forms
        return self._forms


def _dedupe(records: Iterable[Any]) -> list[Any]:
    """Keep the last version of each record id, in order of last appearance."""
    latest: dict[str, Any] = {}
    for record in records:
        latest.pop(str(record.source_id), None)
        latest[str(record.source_id)] = record
    return list(latest.values())
