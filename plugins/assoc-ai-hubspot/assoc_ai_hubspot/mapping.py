"""Where people data lives in a HubSpot portal, and how its objects become canonical records.

HubSpot has no donation or membership object, so each association says
where it keeps them: deals of one pipeline (and chosen stages), or a custom
object, with the property that holds each canonical field.  Contacts use
HubSpot's standard properties unless told otherwise.  Every mapping is
checked when the configuration is built, so a typo fails before any call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.people import Gift, Membership, Person

SOURCE = "hubspot"
TRUE_WORDS = frozenset({"true", "yes", "oui", "1", "on"})
OBJECT_TYPE_RE = re.compile(r"^(contacts|deals|[a-z_]+|\d+-\d+|p\d*_[a-z0-9_]+)$")

CONTACT_DEFAULTS = {"first_name": "firstname", "last_name": "lastname", "email": "email", "phone": "phone",
                    "postcode": "zip", "city": "city", "birth_date": "date_of_birth", "gender": "",
                    "created": "createdate", "modified": "lastmodifieddate"}
# What each canonical field of an object mapping may be read from; "" = not mapped.
OBJECT_FIELDS = {
    "gift": {"amount": "amount", "date": "closedate", "currency": "deal_currency_code", "campaign": "",
             "payment_method": "", "recurring": "", "plan_id": ""},
    "membership": {"season": "", "fee": "amount", "start": "", "end": "", "date": "closedate",
                   "status": "", "currency": "deal_currency_code"},
}
OBJECT_KEYS = ("object", "pipeline", "stages", "contact_property", "association_label", "modified",
               "default_currency")


def _bad(where: str, fr: str, en: str) -> ConfigError:
    return ConfigError(tr(f"[connectors.hubspot.{where}] : {fr}", f"[connectors.hubspot.{where}]: {en}"))


def _check_names(where: str, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if not isinstance(value, str) or (value and not re.match(r"^[A-Za-z0-9_]+$", value)):
            raise _bad(where, f"« {key} » doit être un nom interne de propriété HubSpot (lettres, chiffres, _), "
                              f"reçu {value!r}.",
                       f"'{key}' must be a HubSpot internal property name (letters, digits, _), got {value!r}.")


@dataclass(frozen=True)
class ContactMapping:
    """Contact properties read for :class:`Person` (``gender`` and ``birth_date`` may be left empty)."""

    properties: Mapping[str, str] = field(default_factory=lambda: dict(CONTACT_DEFAULTS))

    @classmethod
    def parse(cls, section: Mapping[str, Any] | None) -> ContactMapping:
        """Build from ``[connectors.hubspot.contact]``; unknown keys are an error."""
        section = dict(section or {})
        unknown = sorted(set(section) - set(CONTACT_DEFAULTS))
        if unknown:
            raise _bad("contact", f"clé(s) inconnue(s) {', '.join(unknown)} ; clés possibles : "
                                  f"{', '.join(CONTACT_DEFAULTS)}.",
                       f"unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(CONTACT_DEFAULTS)}.")
        _check_names("contact", section)
        merged = {**CONTACT_DEFAULTS, **section}
        if not merged["modified"]:
            raise _bad("contact", "« modified » est obligatoire.", "'modified' is required.")
        return cls(merged)

    def wanted(self, extra: str) -> list[str]:
        """Properties to ask HubSpot for (mapped ones plus ``extra``, the consent property)."""
        return sorted({p for p in self.properties.values() if p} | {extra})


@dataclass(frozen=True)
class ObjectMapping:
    """Where gifts (or memberships) live: deals of a pipeline, or a custom object, and which property is what."""

    record_type: str
    object: str
    properties: Mapping[str, str]
    pipeline: str = ""
    stages: tuple[str, ...] = ()
    contact_property: str = ""
    association_label: str = ""
    modified: str = "hs_lastmodifieddate"
    default_currency: str = "EUR"

    @classmethod
    def parse(cls, record_type: str, section: Mapping[str, Any]) -> ObjectMapping:
        """Build from ``[connectors.hubspot.<record_type>]``; every mistake is a clear ConfigError."""
        fields = OBJECT_FIELDS[record_type]
        allowed = (*OBJECT_KEYS, *fields)
        unknown = sorted(set(section) - set(allowed))
        if unknown:
            raise _bad(record_type,
                       f"clé(s) inconnue(s) {', '.join(unknown)} ; clés possibles : {', '.join(allowed)}.",
                       f"unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(allowed)}.")
        obj = str(section.get("object") or "")
        if not OBJECT_TYPE_RE.match(obj):
            raise _bad(record_type, "indiquez object = \"deals\" ou l'identifiant d'un objet personnalisé "
                                    "(\"2-1234567\" ou \"p_nom\").",
                       "set object = \"deals\" or a custom object type id (\"2-1234567\" or \"p_name\").")
        deals = obj == "deals"
        pipeline = str(section.get("pipeline") or "")
        if deals and not pipeline:
            raise _bad(record_type, "avec object = \"deals\", indiquez pipeline = l'identifiant du pipeline "
                                    "(Paramètres › Objets › Transactions › Pipelines), sinon les ventes "
                                    "compteraient.",
                       "with object = \"deals\", set pipeline = the pipeline id (Settings › Objects › Deals › "
                       "Pipelines), or sales deals would be counted.")
        stages = section.get("stages", [])
        if isinstance(stages, str) or not all(isinstance(s, (str, int)) for s in stages):
            raise _bad(record_type, "stages doit être une liste d'identifiants d'étapes.",
                       "stages must be a list of stage ids.")
        props = {k: str(section.get(k, fields[k] if deals else "")) for k in fields}
        _check_names(record_type, {k: v for k, v in section.items() if k in fields or k in (
            "contact_property", "modified")})
        required = ("amount", "date") if record_type == "gift" else ("date",)
        if record_type == "membership" and (props["season"] or props["start"]):
            required = ()
        missing = [k for k in required if not props[k]]
        if missing:
            raise _bad(record_type, f"indiquez la propriété qui contient : {', '.join(missing)}.",
                       f"name the property that holds: {', '.join(missing)}.")
        return cls(record_type=record_type, object=obj, properties=props, pipeline=pipeline,
                   stages=tuple(str(s) for s in stages), contact_property=str(section.get("contact_property") or ""),
                   association_label=str(section.get("association_label") or ""),
                   modified=str(section.get("modified") or "hs_lastmodifieddate"),
                   default_currency=str(section.get("default_currency") or "EUR"))

    @property
    def pipeline_property(self) -> str:
        """Deals keep their pipeline in ``pipeline``; pipelined custom objects in ``hs_pipeline``."""
        return "pipeline" if self.object == "deals" else "hs_pipeline"

    @property
    def stage_property(self) -> str:
        """Deals keep their stage in ``dealstage``; custom objects in ``hs_pipeline_stage``."""
        return "dealstage" if self.object == "deals" else "hs_pipeline_stage"

    def wanted(self) -> list[str]:
        """Properties to ask HubSpot for."""
        names = {p for p in self.properties.values() if p} | {self.modified}
        if self.pipeline:
            names.add(self.pipeline_property)
        if self.stages:
            names.add(self.stage_property)
        if self.contact_property:
            names.add(self.contact_property)
        return sorted(names)

    def search_filters(self) -> list[dict[str, Any]]:
        """Search filters that keep only this mapping's records (pipeline, stages)."""
        filters: list[dict[str, Any]] = []
        if self.pipeline:
            filters.append({"propertyName": self.pipeline_property, "operator": "EQ", "value": self.pipeline})
        if self.stages:
            filters.append({"propertyName": self.stage_property, "operator": "IN", "values": list(self.stages)})
        return filters

    def keeps(self, props: Mapping[str, Any]) -> bool:
        """The same test as :meth:`search_filters`, for list pages (the list end-point cannot filter)."""
        if self.pipeline and str(props.get(self.pipeline_property) or "") != self.pipeline:
            return False
        return not self.stages or str(props.get(self.stage_property) or "") in self.stages


# -- values --------------------------------------------------------------------------
def parse_datetime(value: Any) -> datetime | None:
    """A HubSpot date-time (ISO 8601, or epoch milliseconds as older properties hold) as aware UTC."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_day(value: Any) -> date | None:
    """A HubSpot date or date-time as a calendar date."""
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def parse_amount(value: Any) -> float | None:
    """A HubSpot number (always sent as a string) rounded to cents; None when empty or not a number."""
    if value in (None, ""):
        return None
    try:
        return round(float(str(value).replace(",", ".")), 2)
    except ValueError:
        return None


def is_true(value: Any) -> bool:
    """A HubSpot checkbox (``"true"``) or a yes-like text."""
    return str(value or "").strip().lower() in TRUE_WORDS


def ms(value: datetime) -> str:
    """Epoch milliseconds, the form HubSpot search filters take for dates."""
    return str(int(value.timestamp() * 1000))


# -- records -------------------------------------------------------------------------
def person(row_id: str, props: Mapping[str, Any], mapping: ContactMapping, consent_property: str) -> Person:
    """A contact as a :class:`Person`."""
    p = mapping.properties

    def get(key: str) -> str:
        name = p.get(key) or ""
        return str(props.get(name) or "") if name else ""

    born = parse_day(get("birth_date"))
    return Person(source=SOURCE, source_id=str(row_id), first_name=get("first_name"), last_name=get("last_name"),
                  email=get("email"), phone=get("phone"), postcode=get("postcode"), city=get("city"),
                  birth_year=born.year if born else None, gender=get("gender"),
                  created=parse_datetime(props.get(p["created"])), modified=parse_datetime(props.get(p["modified"])),
                  do_not_profile=is_true(props.get(consent_property)))


def gift(row_id: str, props: Mapping[str, Any], mapping: ObjectMapping, person_id: str) -> Gift | None:
    """A deal or custom-object record as a :class:`Gift`; None without amount or date."""
    p = mapping.properties
    amount, when = parse_amount(props.get(p["amount"])), parse_day(props.get(p["date"]))
    if amount is None or when is None:
        return None
    plan = str(props.get(p["plan_id"]) or "") if p["plan_id"] else ""
    recurring = bool(plan) or (is_true(props.get(p["recurring"])) if p["recurring"] else False)
    used = set(mapping.wanted())
    return Gift(source=SOURCE, source_id=str(row_id), person_id=person_id, amount=amount, date=when,
                currency=str(props.get(p["currency"]) or mapping.default_currency) if p["currency"]
                else mapping.default_currency,
                recurring=recurring, plan_id=plan,
                campaign=str(props.get(p["campaign"]) or "") if p["campaign"] else "",
                payment_method=str(props.get(p["payment_method"]) or "") if p["payment_method"] else "",
                modified=parse_datetime(props.get(mapping.modified)),
                raw={k: v for k, v in props.items() if k not in used})


def membership(row_id: str, props: Mapping[str, Any], mapping: ObjectMapping, person_id: str) -> Membership | None:
    """A deal or custom-object record as a :class:`Membership`; None when no season can be told."""
    p = mapping.properties

    def get(key: str) -> Any:
        return props.get(p[key]) if p[key] else None

    start, end, when = parse_day(get("start")), parse_day(get("end")), parse_day(get("date"))
    start = start or when
    season = str(get("season") or "").strip()
    if not season and start is not None:
        season = str(start.year) if not end or end.year == start.year else f"{start.year}-{end.year}"
    if not season:
        return None
    used = set(mapping.wanted())
    return Membership(source=SOURCE, source_id=str(row_id), person_id=person_id, season=season,
                      fee=parse_amount(get("fee")) or 0.0, status=str(get("status") or "paid").strip().lower(),
                      start=start, end=end, currency=str(get("currency") or mapping.default_currency),
                      modified=parse_datetime(props.get(mapping.modified)),
                      raw={k: v for k, v in props.items() if k not in used})
