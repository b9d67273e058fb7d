"""Canonical people records: what every CRM connector produces and accepts.

A connector translates its CRM's objects into these frozen dataclasses, so the
cleaning, feature and model code never sees a CRM-specific field name.  Every
record carries ``source`` (the connector id, or the file name for exports),
``source_id`` (the CRM's own id, used for idempotent write-back) and ``raw``
(the fields we do not model, untouched).  ``modified`` is what incremental
reads are cursored on.

Amounts are ``float`` in the record's ``currency``: the models need numbers,
and CRMs give cents-exact values that a double represents without loss at
donation scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar

__all__ = [
    "Person", "Gift", "RecurringPlan", "Membership", "Participation", "VolunteerMission", "VolunteerHours",
    "Score", "score_field_names", "score_field_specs", "FieldSpec", "RecordDiff", "WriteReport", "RecordPage",
    "RECORD_TYPES", "record_type_of",
]


@dataclass(frozen=True)
class Person:
    """A donor, member, volunteer or contact.

    ``do_not_profile`` is the consent flag: when True the person is never
    scored (GDPR art. 21 objection, or the association's own rule).
    ``gender`` is only what the person declared; it is used for fairness
    checks, never as a model input.
    """

    record_type: ClassVar[str] = "person"

    source: str
    source_id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    postcode: str = ""
    city: str = ""
    birth_year: int | None = None
    age_band: str = ""
    gender: str = ""
    created: datetime | None = None
    modified: datetime | None = None
    do_not_profile: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        """Identifier unique across sources: ``source:source_id``."""
        return f"{self.source}:{self.source_id}"


@dataclass(frozen=True)
class Gift:
    """One donation; ``recurring`` is True for an instalment of a :class:`RecurringPlan`."""

    record_type: ClassVar[str] = "gift"

    source: str
    source_id: str
    person_id: str
    amount: float
    date: date
    currency: str = "EUR"
    recurring: bool = False
    plan_id: str = ""
    campaign: str = ""
    payment_method: str = ""
    modified: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class RecurringPlan:
    """A standing order (monthly direct debit, card subscription)."""

    record_type: ClassVar[str] = "recurring_plan"

    source: str
    source_id: str
    person_id: str
    amount: float
    frequency: str = "monthly"
    currency: str = "EUR"
    start: date | None = None
    end: date | None = None
    status: str = "active"
    modified: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Membership:
    """One season of membership (``season`` as the association writes it: ``"2024"``, ``"2024-2025"``)."""

    record_type: ClassVar[str] = "membership"

    source: str
    source_id: str
    person_id: str
    season: str
    fee: float = 0.0
    status: str = "paid"
    start: date | None = None
    end: date | None = None
    currency: str = "EUR"
    modified: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Participation:
    """A person's registration to, or attendance at, an event (``status``: registered, attended, cancelled...)."""

    record_type: ClassVar[str] = "participation"

    source: str
    source_id: str
    person_id: str
    event: str
    date: date
    status: str = "attended"
    modified: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class VolunteerMission:
    """A mission needing volunteers: skills wanted, where, when, how many hours."""

    record_type: ClassVar[str] = "volunteer_mission"

    source: str
    source_id: str
    title: str
    skills: tuple[str, ...] = ()
    place: str = ""
    postcode: str = ""
    start: date | None = None
    end: date | None = None
    hours: float = 0.0
    weekdays: tuple[int, ...] = ()  # 0 = Monday; empty = any day
    modified: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class VolunteerHours:
    """Hours a volunteer gave to a mission on one date (``skills`` used there)."""

    record_type: ClassVar[str] = "volunteer_hours"

    source: str
    source_id: str
    person_id: str
    mission: str
    hours: float
    date: date
    skills: tuple[str, ...] = ()
    place: str = ""
    modified: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Score:
    """A model's output for one person, ready to be written back to the CRM.

    ``person_id`` is the CRM's own id of the person (``Person.source_id``), so
    writing the same score twice changes nothing.  ``explanation`` is the
    plain-language sentence shown to staff; ``factors`` the signed
    contributions it was built from.
    """

    person_id: str
    task: str
    probability: float
    explanation: str = ""
    model_version: str = ""
    scored_at: datetime | None = None
    source: str = ""
    factors: tuple[tuple[str, float], ...] = ()

    def as_fields(self, prefix: str = "assoc_ai") -> dict[str, Any]:
        """The CRM custom-field values this score writes (names from :func:`score_field_names`)."""
        names = score_field_names(self.task, prefix)
        return {
            names["probability"]: round(float(self.probability), 4),
            names["explanation"]: self.explanation,
            names["model_version"]: self.model_version,
        }


def score_field_names(task: str, prefix: str = "assoc_ai") -> dict[str, str]:
    """Custom-field names used for ``task`` (``assoc_ai_donor_propensity`` ...), the same in every CRM."""
    slug = task.replace("-", "_")
    return {
        "probability": f"{prefix}_{slug}",
        "explanation": f"{prefix}_{slug}_why",
        "model_version": f"{prefix}_{slug}_model",
    }


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A custom field the scores need in the CRM (``type``: ``number``, ``text`` or ``date``)."""

    name: str
    label: str
    type: str = "text"
    record_type: str = "person"
    description: str = ""


def score_field_specs(task: str, prefix: str = "assoc_ai") -> list[FieldSpec]:
    """The three custom fields :meth:`Score.as_fields` fills for ``task``."""
    names = score_field_names(task, prefix)
    return [
        FieldSpec(names["probability"], f"assoc-ai {task}", "number", description="probability 0-1"),
        FieldSpec(names["explanation"], f"assoc-ai {task} (why)", "text", description="plain-language explanation"),
        FieldSpec(names["model_version"], f"assoc-ai {task} (model)", "text", description="model version"),
    ]


@dataclass(frozen=True)
class RecordDiff:
    """What a write changes on one CRM record: values before and after (only the fields written).

    ``action`` is ``"create"``, ``"update"`` or ``"unchanged"``.
    """

    record_id: str
    action: str
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteReport:
    """The result of a write-back: per-record diffs and counts; nothing was written when ``dry_run``."""

    dry_run: bool
    diffs: tuple[RecordDiff, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (record id, reason)
    target: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """Number of records per action, plus ``skipped``."""
        out = {"create": 0, "update": 0, "unchanged": 0, "skipped": len(self.skipped)}
        for d in self.diffs:
            out[d.action] = out.get(d.action, 0) + 1
        return out

    @property
    def changed(self) -> int:
        """Records created or updated (would be, when ``dry_run``)."""
        c = self.counts
        return c["create"] + c["update"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (dates as ISO strings)."""
        return {
            "dry_run": self.dry_run,
            "target": self.target,
            "counts": self.counts,
            "diffs": [
                {"record_id": d.record_id, "action": d.action, "before": _jsonable(d.before), "after": _jsonable(d.after)}
                for d in self.diffs
            ],
            "skipped": [{"record_id": r, "reason": why} for r, why in self.skipped],
        }


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in values.items()}


@dataclass(frozen=True)
class RecordPage:
    """One page of records of one type and the cursor to store once the page is handled."""

    record_type: str
    records: Sequence[Any]
    cursor: Mapping[str, Any]


RECORD_TYPES: dict[str, type] = {
    cls.record_type: cls
    for cls in (Person, Gift, RecurringPlan, Membership, Participation, VolunteerMission, VolunteerHours)
}


def record_type_of(record: Any) -> str:
    """The record-type name (``"person"``, ``"gift"``...) of a canonical record."""
    name = getattr(type(record), "record_type", None)
    if not isinstance(name, str) or name not in RECORD_TYPES:
        raise TypeError(f"{type(record).__name__} is not a canonical people record")
    return name
