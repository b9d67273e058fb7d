"""The Dolibarr connector: members, subscriptions and donations in; scores out through member extra fields."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

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
from assoc_ai_core.records.people import FieldSpec, Gift, Membership, Person, RecordDiff, RecordPage, Score, WriteReport

from .client import CONNECTOR_ID, SERVICE, DolibarrClient, NotFound

SOURCE = "dolibarr"
EXTRAFIELD_TYPES = {"number": "double", "text": "text", "date": "date"}
DONATION_STATUS = {0: "promise", 1: "validated", 2: "paid", 3: "paid", -1: "cancelled"}
MEMBER_ELEMENT = "adherent"  # Dolibarr's element type of members (extra fields live there)


@dataclass(frozen=True)
class DolibarrConfig:
    """Settings of ``[connectors.dolibarr]``; ``api_key`` is a secret reference."""

    base_url: str
    api_key: Secret
    timezone: str = "Europe/Paris"
    field_prefix: str = "assoc_ai"
    do_not_profile_field: str = "options_do_not_profile"
    paid_donations_only: bool = True
    timeout: float = 30.0
    verify_tls: bool = True
    max_attempts: int = 5
    max_retry_wait: float = 60.0

    def __post_init__(self) -> None:
        check_base_url(self.base_url, field="base_url", connector_id=CONNECTOR_ID)
        site_time_zone(self.timezone, connector_id=CONNECTOR_ID)


def _ts(value: Any) -> datetime | None:
    """Dolibarr's Unix timestamps (int or numeric string) as aware UTC datetimes."""
    if value in (None, "", 0, "0"):
        return None
    try:
        return datetime.fromtimestamp(int(float(value)), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _day(value: Any, tz: ZoneInfo) -> date | None:
    when = _ts(value)
    return when.astimezone(tz).date() if when else None


def _modified(row: Mapping[str, Any]) -> datetime | None:
    return _ts(row.get("tms")) or _ts(row.get("datem")) or _ts(row.get("date_modification"))


class DolibarrConnector(ApiCrmConnector[DolibarrClient]):
    """Dolibarr ERP/CRM through its REST API (modules Members and Donations)."""

    id: ClassVar[str] = "dolibarr"
    Config: ClassVar[type] = DolibarrConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ, Capability.WRITE_SCORES})
    record_types: ClassVar[frozenset[str]] = frozenset({"person", "membership", "gift"})
    description: ClassVar[str] = "Dolibarr (REST API): members, subscriptions, donations; scores in member extra fields"

    def __init__(self, config: DolibarrConfig) -> None:
        super().__init__(config)
        self._members_by_email: dict[str, str] | None = None

    @property
    def tz(self) -> ZoneInfo:
        """The server's time zone (``sqlfilters`` compare local wall-clock times)."""
        return ZoneInfo(self.config.timezone)

    def build_client(self) -> DolibarrClient:
        """The REST client of ``{base_url}/api/index.php`` (no I/O yet)."""
        c = self.config
        return DolibarrClient(check_base_url(c.base_url, field="base_url", connector_id=self.id) + "/api/index.php",
                              c.api_key, http=self.http_client(SERVICE))

    def open(self) -> None:
        """Check the key (``GET /status``)."""
        self.client.request("GET", "status")

    # -- reading ------------------------------------------------------------------
    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[RecordPage]:
        """Yield pages of ``record_type`` modified since ``cursor`` (``tms``), oldest first."""
        self.check_record_type(record_type)
        if record_type == "person":
            yield from self._read("person", "members", self._person, cursor, page_size)
        elif record_type == "membership":
            yield from self._read("membership", "subscriptions", self._membership, cursor, page_size)
        else:
            yield from self._read("gift", "donations", self._gift, cursor, page_size)

    def _read(self, record_type: str, path: str, convert: Callable[[Mapping[str, Any]], Any],
              cursor: Mapping[str, Any] | None, page_size: int) -> Iterator[RecordPage]:
        params: dict[str, Any] = {"sortfield": "t.tms", "sortorder": "ASC"}
        if cursor and cursor.get(CURSOR_KEY):
            mark = datetime.fromisoformat(str(cursor[CURSOR_KEY])).astimezone(self.tz)
            params["sqlfilters"] = f"(t.tms:>=:'{mark.strftime('%Y-%m-%d %H:%M:%S')}')"
        state = dict(cursor or {})
        for rows in self.client.pages(path, params, page_size=page_size):
            records = [r for r in map(convert, rows) if r is not None and is_after_cursor(r, cursor)]
            if records:
                state = advance_cursor(state, records)
                yield RecordPage(record_type, records, state)

    def _person(self, row: Mapping[str, Any]) -> Person:
        options = row.get("array_options") or {}
        born = _day(row.get("birth"), self.tz)
        dnp = self.config.do_not_profile_field
        return Person(
            source=SOURCE, source_id=str(row["id"]),
            first_name=str(row.get("firstname") or ""), last_name=str(row.get("lastname") or ""),
            email=str(row.get("email") or ""), phone=str(row.get("phone_mobile") or row.get("phone") or ""),
            postcode=str(row.get("zip") or ""), city=str(row.get("town") or ""),
            birth_year=born.year if born else None, gender=str(row.get("gender") or ""),
            created=_ts(row.get("datec") or row.get("date_creation")), modified=_modified(row),
            do_not_profile=bool(dnp and (options.get(dnp) not in (None, "", "0", 0))),
            raw={"ref": row.get("ref"), "type": row.get("type"), "status": row.get("status", row.get("statut")),
                 "socid": row.get("socid") or row.get("fk_soc")},
        )

    def _membership(self, row: Mapping[str, Any]) -> Membership | None:
        start, end = _day(row.get("dateh"), self.tz), _day(row.get("datef"), self.tz)
        if not row.get("fk_adherent") or start is None:
            return None
        season = str(start.year) if not end or end.year == start.year else f"{start.year}-{end.year}"
        return Membership(source=SOURCE, source_id=str(row["id"]), person_id=str(row["fk_adherent"]), season=season,
                          fee=round(float(row.get("amount") or 0), 2), status="paid", start=start, end=end,
                          modified=_modified(row), raw={"type": row.get("fk_type")})

    def _gift(self, row: Mapping[str, Any]) -> Gift | None:
        status = int(row.get("status", row.get("statut")) or 0)
        when = _day(row.get("date") or row.get("datedon"), self.tz)
        if when is None or (self.config.paid_donations_only and status not in (2, 3, -1)):
            return None
        return Gift(source=SOURCE, source_id=str(row["id"]), person_id=self._donor_id(row),
                    amount=0.0 if status == -1 else round(float(row.get("amount") or 0), 2), date=when,
                    payment_method=str(row.get("modepaymentcode") or row.get("fk_payment") or ""),
                    campaign=str(row.get("fk_project") or row.get("fk_projet") or ""), modified=_modified(row),
                    raw={"status": DONATION_STATUS.get(status, str(status)), "ref": row.get("ref")})

    def _donor_id(self, row: Mapping[str, Any]) -> str:
        """The member a donation belongs to: Dolibarr does not link them, so match the e-mail (else ``email:...``)."""
        if self._members_by_email is None:
            found: dict[str, str] = {}
            for rows in self.client.pages("members", {"sortfield": "t.rowid", "sortorder": "ASC"}, page_size=100):
                for m in rows:
                    if m.get("email"):
                        found.setdefault(str(m["email"]).strip().lower(), str(m["id"]))
            self._members_by_email = found
        email = str(row.get("email") or "").strip().lower()
        return self._members_by_email.get(email) or (f"email:{email}" if email else f"donation:{row['id']}")

    # -- writing ------------------------------------------------------------------
    def ensure_fields(self, fields: Sequence[FieldSpec] | None = None, *, task: str = "", dry_run: bool = True) -> WriteReport:
        """Create the member extra fields scores need (an admin key is needed for that step only)."""
        self.require(Capability.WRITE_SCORES)
        diffs: list[RecordDiff] = []
        for spec in (s for s in self.fields_for(task, fields) if s.record_type == "person"):
            after = {"label": spec.label, "type": EXTRAFIELD_TYPES.get(spec.type, "text")}
            try:
                self.client.request("GET", f"setup/extrafields/{MEMBER_ELEMENT}/{spec.name}")
                diffs.append(RecordDiff(f"extrafield:{spec.name}", "unchanged", after, after))
                continue
            except NotFound:
                pass
            diffs.append(RecordDiff(f"extrafield:{spec.name}", "create", {}, after))
            if not dry_run:
                body = {**after, "elementtype": MEMBER_ELEMENT, "size": "24,8" if after["type"] == "double" else "",
                        "pos": 100, "list": "1", "alwayseditable": 1, "help": spec.description}
                self.client.request("POST", f"setup/extrafields/{MEMBER_ELEMENT}/{spec.name}", json=body)
        return WriteReport(dry_run=dry_run, diffs=tuple(diffs), target=f"dolibarr:extrafields:{MEMBER_ELEMENT}")

    def score_target(self) -> str:
        """Scores go to members."""
        return "dolibarr:members"

    def read_stored_scores(self, person_ids: Sequence[str], fields: Sequence[str]) -> Mapping[str, StoredScores]:
        """Each member's extra fields (``GET /members/{id}``); unknown members are left out."""
        stored: dict[str, StoredScores] = {}
        for pid in sorted({pid for pid in person_ids if pid.isdigit()}, key=int):
            try:
                member = self.client.request("GET", f"members/{pid}")
            except NotFound:
                continue
            options = member.get("array_options") or {}
            stored[pid] = StoredScores({n: options.get(f"options_{n}") for n in fields},
                                       self._person(member).do_not_profile)
        return stored

    def save_scores(self, diffs: Sequence[RecordDiff], scores: Sequence[Score]) -> None:
        """``PUT /members/{id}`` with the changed extra fields."""
        for diff in diffs:
            options = {f"options_{k}": v for k, v in diff.after.items()}
            self.client.request("PUT", f"members/{diff.record_id}", json={"array_options": options})
