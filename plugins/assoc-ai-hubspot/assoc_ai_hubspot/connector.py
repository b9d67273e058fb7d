"""The HubSpot CRM connector, on the official ``hubspot-api-client``.

Reads contacts, and gifts and memberships from wherever the association keeps
them (deals of a pipeline, or custom objects; see :mod:`.mapping`).  A first
read walks the CRM v3 list end-point with its ``after`` token; later reads
search on the last-modified property, sorted oldest first, and re-anchor the
search on the newest date seen after every page instead of paging deeper, so
the search end-point's 10 000-result ceiling and records moving while we read
never lose a change.  Scores go to contact properties, in a property group
``ensure_fields`` creates.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NamedTuple

from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)
from hubspot.crm.properties import OptionInput, PropertyCreate, PropertyGroupCreate

from assoc_ai_core.errors import CapabilityError, ConfigError, ConnectorError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CURSOR_KEY, ApiCrmConnector, StoredScores, advance_cursor, is_after_cursor
from assoc_ai_core.ext.http import check_base_url
from assoc_ai_core.ext.paging import token_pages
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.people import FieldSpec, RecordDiff, RecordPage, Score, WriteReport

from . import mapping as m
from .client import CONNECTOR_ID, DEFAULT_HOST, AlreadyExists, HubSpotApi, NotFound

LIST_KEY = "list_after"          # cursor of an unfinished first read: where the list end-point stopped
SEARCH_CEILING = 10_000          # the search end-point answers 400 past this many results
BATCH = 100                      # batch read/update and association read inputs per call
PROPERTY_TYPES = {"number": ("number", "number"), "text": ("string", "textarea"), "date": ("datetime", "date")}
NAME_RE = r"^[a-z][a-z0-9_]*$"


class _Stamp(NamedTuple):
    """What the cursor helpers need of a row: its id and modification time."""

    source_id: str
    modified: datetime | None


@dataclass(frozen=True)
class HubSpotConfig:
    """Settings of ``[connectors.hubspot]``; ``access_token`` is a secret reference.

    ``contact``, ``gift`` and ``membership`` are sub-tables (see :mod:`assoc_ai_hubspot.mapping`);
    without ``gift`` / ``membership`` the connector reads contacts only.
    """

    access_token: Secret
    base_url: str = DEFAULT_HOST
    contact: Any = None
    gift: Any = None
    membership: Any = None
    do_not_profile_property: str = "assoc_ai_do_not_profile"
    property_group: str = "assoc_ai"
    field_prefix: str = "assoc_ai"
    search_settle_seconds: float = 60.0
    timeout: float = 30.0
    verify_tls: bool | str = True
    max_attempts: int = 5
    max_retry_wait: float = 30.0

    def __post_init__(self) -> None:
        check_base_url(self.base_url, field="base_url", connector_id=CONNECTOR_ID)
        for key in ("do_not_profile_property", "property_group", "field_prefix"):
            value = getattr(self, key)
            if not re.match(NAME_RE, value):
                raise ConfigError(tr(
                    f"[connectors.hubspot].{key} doit être un nom interne HubSpot (minuscules, chiffres, _), "
                    f"reçu {value!r}.",
                    f"[connectors.hubspot].{key} must be a HubSpot internal name (lower case, digits, _), "
                    f"got {value!r}."))
        if not isinstance(self.contact, m.ContactMapping):
            object.__setattr__(self, "contact", m.ContactMapping.parse(self.contact))
        for record_type in ("gift", "membership"):
            value = getattr(self, record_type)
            if value is not None and not isinstance(value, m.ObjectMapping):
                if not isinstance(value, Mapping):
                    raise ConfigError(tr(f"[connectors.hubspot.{record_type}] doit être une table TOML.",
                                         f"[connectors.hubspot.{record_type}] must be a TOML table."))
                object.__setattr__(self, record_type, m.ObjectMapping.parse(record_type, value))


class HubSpotConnector(ApiCrmConnector[HubSpotApi]):
    """HubSpot CRM through the official client: contacts, mapped gifts and memberships; scores on contacts."""

    id: ClassVar[str] = "hubspot"
    Config: ClassVar[type] = HubSpotConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ, Capability.WRITE_SCORES})
    record_types: ClassVar[frozenset[str]] = frozenset({"person", "gift", "membership"})
    description: ClassVar[str] = "HubSpot CRM: contacts, gifts and memberships (configurable); scores on contacts"

    def __init__(self, config: HubSpotConfig) -> None:
        super().__init__(config)
        # Only what this portal's configuration maps can be read (hosts read every listed type).
        self.record_types = frozenset(  # type: ignore[misc]
            {"person"} | {t for t in ("gift", "membership") if getattr(config, t) is not None})
        self._consent_checked = False

    def build_client(self) -> HubSpotApi:
        """The HubSpot API objects (building them does no I/O)."""
        c = self.config
        return HubSpotApi(c.base_url, c.access_token, timeout=c.timeout, verify=c.verify_tls,
                          max_attempts=c.max_attempts, max_retry_wait=c.max_retry_wait)

    def open(self) -> None:
        """Check the token now (one read of a property definition, no personal data)."""
        self._consent_checked = self._consent_property_exists()

    def check_record_type(self, record_type: str) -> None:
        """As the base class, with the configuration key to add for an unmapped gift or membership."""
        if record_type in type(self).record_types and record_type not in self.record_types:
            raise CapabilityError(
                tr(f"HubSpot n'a pas d'objet « {record_type} » natif : décrivez où il se trouve dans "
                   f"[connectors.hubspot.{record_type}] (object = \"deals\" et pipeline = ..., ou un objet "
                   "personnalisé).",
                   f"HubSpot has no native '{record_type}' object: say where it lives in "
                   f"[connectors.hubspot.{record_type}] (object = \"deals\" and pipeline = ..., or a custom object)."),
                connector_id=self.id)
        super().check_record_type(record_type)

    # -- consent ---------------------------------------------------------------------
    def _consent_property_exists(self) -> bool:
        name = self.config.do_not_profile_property
        try:
            self.client.call(lambda: self.client.properties_core.get_by_name("contacts", name,
                                                                       _request_timeout=self.client.timeout),
                          f"GET /crm/v3/properties/contacts/{name}")
        except NotFound:
            return False
        return True

    def _require_consent_property(self) -> None:
        """Refuse to read or score people while objections to profiling cannot be seen."""
        if self._consent_checked:
            return
        name = self.config.do_not_profile_property
        if not self._consent_property_exists():
            raise ConfigError(tr(
                f"La propriété de contact « {name} » (refus du profilage) n'existe pas dans HubSpot : sans elle, "
                "les personnes qui refusent le profilage ne peuvent pas être exclues. Lancez "
                "ensure_fields(dry_run=False) pour la créer, ou indiquez do_not_profile_property = une case à cocher "
                "existante.",
                f"Contact property '{name}' (objection to profiling) does not exist in HubSpot: without it, people "
                "who object to profiling cannot be left out. Run ensure_fields(dry_run=False) to create it, or set "
                "do_not_profile_property = an existing checkbox property."))
        self._consent_checked = True

    # -- reading ---------------------------------------------------------------------
    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[RecordPage]:
        """Yield pages of ``record_type`` created or changed since ``cursor`` (everything when None).

        Without a cursor the list end-point is walked (its intermediate cursors resume the walk);
        with one, the search end-point is queried on the last-modified property.
        """
        self.check_record_type(record_type)
        if record_type == "person":
            self._require_consent_property()
        if cursor and cursor.get(LIST_KEY):
            yield from self._list_pages(record_type, cursor, page_size)
        elif cursor and cursor.get(CURSOR_KEY):
            yield from self._search_pages(record_type, cursor, page_size)
        else:
            yield from self._list_pages(record_type, None, page_size)

    def _source(self, record_type: str) -> tuple[str, list[str], str, m.ObjectMapping | None]:
        """Object type, properties to read, last-modified property and the object mapping (None for contacts)."""
        c = self.config
        if record_type == "person":
            return "contacts", c.contact.wanted(c.do_not_profile_property), c.contact.properties["modified"], None
        om: m.ObjectMapping = getattr(c, record_type)
        return om.object, om.wanted(), om.modified, om

    def _list_pages(self, record_type: str, resume: Mapping[str, Any] | None, page_size: int) -> Iterator[RecordPage]:
        otype, props, modified, om = self._source(record_type)
        limit = max(1, min(int(page_size), 100))
        seen: dict[str, Any] = dict(resume.get("list_seen") or {}) if resume else {}
        started = str(resume.get("list_started") or "") if resume else ""
        api = self.client

        def fetch(token: str | None) -> tuple[list[Any], str | None]:
            nonlocal started
            data, _, headers = api.call(
                lambda: api.objects_basic.get_page_with_http_info(
                    otype, limit=limit, after=token, properties=props, _request_timeout=api.timeout),
                f"GET /crm/v3/objects/{otype}")
            if not started:
                started = (api.server_time(headers) or datetime.now(UTC)).isoformat()
            return list(data.results or []), data.paging.next.after if data.paging and data.paging.next else None

        for results, nxt in token_pages(fetch, start=str(resume[LIST_KEY]) if resume else None):
            rows = [(str(r.id), r.properties or {}) for r in results]
            seen = advance_cursor(seen, [_Stamp(rid, m.parse_datetime(p.get(modified))) for rid, p in rows])
            records = self._records(record_type, [(rid, p) for rid, p in rows if om is None or om.keeps(p)])
            # Unfinished, the stored cursor resumes this walk, never an incremental read from a
            # date that later pages (sorted by id, not date) have not reached yet.
            unfinished = {LIST_KEY: nxt, "list_started": started, "list_seen": seen}
            yield RecordPage(record_type, records, unfinished if nxt else self._finish(seen, started))

    @staticmethod
    def _finish(seen: Mapping[str, Any], started: str) -> dict[str, Any]:
        """The cursor after a full walk, never later than its start (HubSpot's clock).

        A record changed during the walk, after we passed it, is dated after the start: it must
        come back on the next incremental read even if a later page showed a newer date.
        """
        out = dict(seen)
        mark = out.get(CURSOR_KEY)
        if mark and started and datetime.fromisoformat(str(mark)) > datetime.fromisoformat(started):
            out = {CURSOR_KEY: started, "ids_at": []}
        return out

    def _search_pages(self, record_type: str, cursor: Mapping[str, Any], page_size: int) -> Iterator[RecordPage]:
        otype, props, modified, om = self._source(record_type)
        limit = max(1, min(int(page_size), 200))
        state: dict[str, Any] = dict(cursor)
        anchor = datetime.fromisoformat(str(state[CURSOR_KEY]))
        # The search index trails writes by seconds: what changed just now is left for the next run.
        until = datetime.now(UTC) - timedelta(seconds=max(0.0, float(self.config.search_settle_seconds)))
        extra = om.search_filters() if om else []
        offset: str | None = None
        while True:
            request = PublicObjectSearchRequest(
                filter_groups=[{"filters": [
                    {"propertyName": modified, "operator": "GTE", "value": m.ms(anchor)},
                    {"propertyName": modified, "operator": "LTE", "value": m.ms(until)}, *extra]}],
                sorts=[{"propertyName": modified, "direction": "ASCENDING"}],
                properties=props, limit=limit, after=offset)
            data = self.client.call(
                functools.partial(self.client.objects_search.do_search, otype, request,
                                  _request_timeout=self.client.timeout),
                f"POST /crm/v3/objects/{otype}/search")
            rows = [(str(r.id), r.properties or {}) for r in data.results or []]
            stamps = {rid: _Stamp(rid, m.parse_datetime(p.get(modified))) for rid, p in rows}
            fresh = [(rid, p) for rid, p in rows if is_after_cursor(stamps[rid], state)]
            if fresh:
                state = advance_cursor(state, [stamps[rid] for rid, _ in fresh])
                yield RecordPage(record_type, self._records(record_type, fresh), dict(state))
            nxt = data.paging.next.after if data.paging and data.paging.next else None
            if not nxt:
                return
            newest = datetime.fromisoformat(str(state[CURSOR_KEY]))
            if newest > anchor:
                anchor, offset = newest, None  # re-anchor: no deep offsets, nothing shifts under us
            else:
                offset = str(nxt)  # a whole page shares one instant: step through it
                if int(offset) + limit > SEARCH_CEILING:
                    raise ConnectorError(tr(
                        f"Plus de {SEARCH_CEILING} enregistrements « {otype} » portent la même date de modification "
                        "(import en masse ?) : la recherche HubSpot ne peut pas les parcourir. Relancez une lecture "
                        "complète (sans curseur).",
                        f"More than {SEARCH_CEILING} '{otype}' records share one modification time (bulk import?): "
                        "HubSpot search cannot page through them. Run a full read (no cursor) instead."),
                        connector_id=CONNECTOR_ID)

    def _records(self, record_type: str, rows: list[tuple[str, Mapping[str, Any]]]) -> list[Any]:
        """Canonical records for ``rows``; gifts and memberships without a contact are left out."""
        c = self.config
        if record_type == "person":
            return [m.person(rid, p, c.contact, c.do_not_profile_property) for rid, p in rows]
        om: m.ObjectMapping = getattr(c, record_type)
        convert: Callable[..., Any] = m.gift if record_type == "gift" else m.membership
        owners = self._contacts_of(om, rows)
        out = []
        for rid, p in rows:
            owner = owners.get(rid)
            record = convert(rid, p, om, owner) if owner else None
            if record is not None:
                out.append(record)
        return out

    def _contacts_of(self, om: m.ObjectMapping, rows: list[tuple[str, Mapping[str, Any]]]) -> dict[str, str]:
        """The contact each record belongs to: a property holding the contact id, or the associations (v4)."""
        if om.contact_property:
            return {rid: str(p.get(om.contact_property) or "") for rid, p in rows if p.get(om.contact_property)}
        owners: dict[str, str] = {}
        ids = [rid for rid, _ in rows]
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            body = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": i} for i in chunk])
            data = self.client.call(
                functools.partial(self.client.associations_batch.get_page, om.object, "contacts", body,
                                  _request_timeout=self.client.timeout),
                f"POST /crm/v4/associations/{om.object}/contacts/batch/read")
            for result in data.results or []:
                owner = self._pick_contact(om, result.to or [])
                if owner:
                    owners[str(result._from.id)] = owner
        return owners

    @staticmethod
    def _pick_contact(om: m.ObjectMapping, links: Sequence[Any]) -> str:
        """The labelled contact when ``association_label`` is set, else the only or the oldest (lowest id) one."""
        label = om.association_label.casefold()
        labelled = [str(x.to_object_id) for x in links
                    if label and any((t.label or "").casefold() == label for t in x.association_types or [])]
        candidates = labelled or ([] if label and len(links) > 1 else [str(x.to_object_id) for x in links])
        return min(candidates, key=lambda i: (len(i), i)) if candidates else ""

    # -- writing ---------------------------------------------------------------------
    def ensure_fields(
        self, fields: Sequence[FieldSpec] | None = None, *, task: str = "", dry_run: bool = True
    ) -> WriteReport:
        """Create the property group, the score properties and the consent checkbox on contacts if missing."""
        self.require(Capability.WRITE_SCORES)
        c = self.config
        api = self.client
        groups = api.call(lambda: api.properties_groups.get_all("contacts", _request_timeout=api.timeout),
                          "GET /crm/v3/properties/contacts/groups")
        have_group = any(g.name == c.property_group for g in groups.results or [])
        existing = api.call(lambda: api.properties_core.get_all("contacts", _request_timeout=api.timeout),
                            "GET /crm/v3/properties/contacts")
        known = {p.name: p for p in existing.results or []}
        wanted: list[PropertyCreate] = []
        for spec in self.fields_for(task, fields):
            if spec.record_type != "person":
                continue
            kind, field_type = PROPERTY_TYPES.get(spec.type, PROPERTY_TYPES["text"])
            wanted.append(PropertyCreate(name=spec.name, label=spec.label, type=kind, field_type=field_type,
                                         group_name=c.property_group, description=spec.description,
                                         form_field=False))
        wanted.append(PropertyCreate(
            name=c.do_not_profile_property, label=tr("Ne pas profiler (assoc-ai)", "Do not profile (assoc-ai)"),
            type="bool", field_type="booleancheckbox", group_name=c.property_group, form_field=False,
            description=tr("Cochée : la personne refuse le profilage ; assoc-ai ne la note jamais.",
                           "Ticked: the person objects to profiling; assoc-ai never scores them."),
            options=[OptionInput(label=tr("Oui", "Yes"), value="true", display_order=0, hidden=False),
                     OptionInput(label=tr("Non", "No"), value="false", display_order=1, hidden=False)]))
        diffs: list[RecordDiff] = []
        missing = [p for p in wanted if p.name not in known]
        if missing and not have_group:
            diffs.append(RecordDiff(f"contacts.groups.{c.property_group}", "create", {}, {"label": "assoc-ai"}))
        for prop in wanted:
            after = {"type": prop.type, "fieldType": prop.field_type, "groupName": prop.group_name}
            if prop.name in known:
                now = known[prop.name]
                diffs.append(RecordDiff(f"contacts.{prop.name}", "unchanged",
                                        {"type": now.type, "fieldType": now.field_type, "groupName": now.group_name},
                                        {"type": now.type, "fieldType": now.field_type, "groupName": now.group_name}))
            else:
                diffs.append(RecordDiff(f"contacts.{prop.name}", "create", {}, after))
        if not dry_run and missing:
            if not have_group:
                group = PropertyGroupCreate(name=c.property_group, label="assoc-ai", display_order=-1)
                self._create(lambda: api.properties_groups.create("contacts", group, _request_timeout=api.timeout),
                             "POST /crm/v3/properties/contacts/groups")
            for prop in missing:
                self._create(functools.partial(api.properties_core.create, "contacts", prop, _request_timeout=api.timeout),
                             "POST /crm/v3/properties/contacts")
            self._consent_checked = False
        return WriteReport(dry_run=dry_run, diffs=tuple(diffs), target="hubspot:contacts")

    def _create(self, fn: Callable[[], Any], what: str) -> None:
        """Create once: a 409 after a retried, timed-out create means it is already there."""
        try:
            self.client.call(fn, what)
        except AlreadyExists:
            pass

    def score_target(self) -> str:
        """Scores go to contact properties."""
        return "hubspot:contacts"

    def read_stored_scores(self, person_ids: Sequence[str], fields: Sequence[str]) -> Mapping[str, StoredScores]:
        """The contacts' score properties and consent checkbox (batch read, 100 a call).

        Refused while the consent checkbox does not exist: objections to profiling could not be seen.
        """
        self._require_consent_property()
        c, api = self.config, self.client
        ids = sorted({pid for pid in person_ids if pid.isdigit()})
        stored: dict[str, StoredScores] = {}
        for start in range(0, len(ids), BATCH):
            body = BatchReadInputSimplePublicObjectId(properties=[*fields, c.do_not_profile_property],
                                                      properties_with_history=[],
                                                      inputs=[{"id": i} for i in ids[start:start + BATCH]])
            data = api.call(functools.partial(api.objects_batch.read, "contacts", body, _request_timeout=api.timeout),
                            "POST /crm/v3/objects/contacts/batch/read")
            for row in data.results or []:
                props = row.properties or {}
                stored[str(row.id)] = StoredScores({n: props.get(n) for n in fields},
                                                   m.is_true(props.get(c.do_not_profile_property)))
        return stored

    def save_scores(self, diffs: Sequence[RecordDiff], scores: Sequence[Score]) -> None:
        """Batch-update the changed contacts (100 a call); a partly refused batch is a clear error."""
        api = self.client
        for start in range(0, len(diffs), BATCH):
            body = BatchInputSimplePublicObjectBatchInput(inputs=[
                {"id": d.record_id, "properties": {k: _text(v) for k, v in d.after.items()}}
                for d in diffs[start:start + BATCH]])
            result = api.call(functools.partial(api.objects_batch.update, "contacts", body, _request_timeout=api.timeout),
                              "POST /crm/v3/objects/contacts/batch/update")
            errors = getattr(result, "errors", None) or []
            if errors:
                first = errors[0]
                raise ConnectorError(tr(
                    f"HubSpot n'a pas écrit {len(errors)} lot(s) de scores ({first.category}) : {first.message} "
                    "Les autres contacts sont écrits ; relancer l'écriture ne refait que ce qui manque.",
                    f"HubSpot did not write {len(errors)} batch(es) of scores ({first.category}): {first.message} "
                    "The other contacts are written; running the write again only redoes what is missing."),
                    connector_id=CONNECTOR_ID)


def _text(value: Any) -> str:
    """HubSpot takes every property value as a string; an empty string clears the property."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)

