"""The CRM connector contract: read people records incrementally, write scores back safely.

A CRM plugin subclasses :class:`CrmConnector` (or :class:`ApiCrmConnector`
when it talks to a web API through a client object), sets ``id``, ``Config``,
``capabilities`` and ``record_types``, and implements :meth:`iter_records`.
Plugins that can write add ``Capability.WRITE_SCORES``, implement
:meth:`~CrmConnector.ensure_fields` and the two steps of the
:meth:`~CrmConnector.write_scores` template: :meth:`~CrmConnector.read_stored_scores`
(what the CRM holds now) and :meth:`~CrmConnector.save_scores` (write the
changes).  The template keeps, for every CRM, the GDPR filter (a person who
objects to profiling is never written), the dry-run diff and the report.

Rules every CRM connector follows:

* ``iter_records`` yields :class:`~assoc_ai_core.records.people.RecordPage`
  objects; the host stores ``page.cursor`` only after handling the page, and
  passes it back on the next run, which must then yield only records created or
  modified since.  :func:`advance_cursor` / :func:`is_after_cursor` implement
  the usual "last-modified + ids at that instant" cursor so records sharing a
  timestamp are neither lost nor read twice.
* ``write_scores`` defaults to ``dry_run=True`` and always returns the diff
  (before/after per record).  It is idempotent by CRM id: writing the same
  scores twice changes nothing the second time.  :func:`plan_score_writes`
  builds that diff from the values currently in the CRM.
* Upstream exceptions are wrapped in :mod:`assoc_ai_core.errors` classes.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from assoc_ai_core.errors import CapabilityError, ConfigError, DataError, PluginError
from assoc_ai_core.ext.connectors import Capability, Connector
from assoc_ai_core.ext.http import HttpClient
from assoc_ai_core.ext.values import parse_number
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.people import (
    FieldSpec,
    RecordDiff,
    RecordPage,
    Score,
    WriteReport,
    score_field_names,
    score_field_specs,
)

__all__ = [
    "ApiCrmConnector",
    "CrmConnector",
    "StoredScores",
    "advance_cursor",
    "is_after_cursor",
    "plan_score_writes",
    "site_time_zone",
    "CURSOR_KEY",
]

CURSOR_KEY = "modified_after"
DEFAULT_PREFIX = "assoc_ai"


@dataclass(frozen=True)
class StoredScores:
    """What the CRM holds now for one person: the score fields' values, and whether they object to profiling."""

    values: Mapping[str, Any] | None = None
    do_not_profile: bool = False


class CrmConnector(Connector):
    """Base of every CRM connector (kind ``"crm"``)."""

    kind: ClassVar[str] = "crm"
    record_types: ClassVar[frozenset[str]] = frozenset()

    def __enter__(self) -> Self:
        """Open the connector and return it, typed as its own class (the base types it as any Connector)."""
        self.open()
        return self

    @abstractmethod
    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[RecordPage]:
        """Yield pages of ``record_type`` records modified since ``cursor`` (everything when None)."""

    # -- writing scores: the template and its two steps -------------------------------------------
    def write_scores(self, scores: Sequence[Score], *, dry_run: bool = True) -> WriteReport:
        """Write scores to the people they concern; with ``dry_run`` only return the diff.

        People who object to profiling are skipped with the reason and never
        written; ids the CRM does not know are skipped (a score never creates a
        person); only records whose values change are saved.
        """
        self.require(Capability.WRITE_SCORES)
        prefix = self.score_field_prefix()
        names = sorted({n for s in scores for n in score_field_names(s.task, prefix).values()})
        stored = self.read_stored_scores(list(dict.fromkeys(str(s.person_id) for s in scores)), names)
        reason = tr("la personne refuse le profilage (do_not_profile)", "the person objects to profiling (do_not_profile)")
        blocked = [(pid, reason) for pid, now in stored.items() if now.do_not_profile]
        current = {pid: now.values for pid, now in stored.items() if not now.do_not_profile}
        blocked_ids = {pid for pid, _ in blocked}
        allowed = [s for s in scores if str(s.person_id) not in blocked_ids]
        plan = plan_score_writes(current, allowed, dry_run=dry_run, prefix=prefix, target=self.score_target())
        report = WriteReport(dry_run=dry_run, diffs=plan.diffs, skipped=tuple(blocked) + plan.skipped,
                             target=plan.target)
        changed = [d for d in report.diffs if d.action != "unchanged"]
        if not dry_run and changed:
            self.save_scores(changed, allowed)
        return report

    def read_stored_scores(self, person_ids: Sequence[str], fields: Sequence[str]) -> Mapping[str, StoredScores]:
        """The score ``fields`` (canonical names) of each known person in ``person_ids``; unknown ids are left out."""
        raise PluginError(tr(f"{type(self).__name__} déclare WRITE_SCORES sans définir read_stored_scores().",
                             f"{type(self).__name__} declares WRITE_SCORES but does not define read_stored_scores()."))

    def save_scores(self, diffs: Sequence[RecordDiff], scores: Sequence[Score]) -> None:
        """Write the changed ``diffs`` (``diff.after`` holds the canonical fields); ``scores`` are those allowed."""
        raise PluginError(tr(f"{type(self).__name__} déclare WRITE_SCORES sans définir save_scores().",
                             f"{type(self).__name__} declares WRITE_SCORES but does not define save_scores()."))

    def score_field_prefix(self) -> str:
        """The prefix of the score fields: the Config's ``field_prefix`` when it has one, else ``assoc_ai``."""
        return str(getattr(self.config, "field_prefix", DEFAULT_PREFIX))

    def score_target(self) -> str:
        """Where scores go, for the report (``civicrm:Contact``, a file path...)."""
        return self.id

    def ensure_fields(self, fields: Sequence[FieldSpec] | None = None, *, task: str = "", dry_run: bool = True) -> WriteReport:
        """Create the custom fields scores need (``fields`` or those of ``task``); no-op for existing ones."""
        self.require(Capability.WRITE_SCORES)
        raise CapabilityError("ensure_fields", connector_id=self.id)  # pragma: no cover

    def check_record_type(self, record_type: str) -> None:
        """Raise a clear error when this connector cannot read ``record_type``."""
        if record_type not in self.record_types:
            known = ", ".join(sorted(self.record_types)) or "-"
            raise CapabilityError(
                tr(
                    f"Le connecteur « {self.id} » ne fournit pas d'enregistrements « {record_type} ». "
                    f"Types disponibles : {known}.",
                    f"Connector '{self.id}' does not provide '{record_type}' records. Available types: {known}.",
                ),
                connector_id=self.id,
            )

    @staticmethod
    def fields_for(task: str, fields: Sequence[FieldSpec] | None = None) -> list[FieldSpec]:
        """``fields`` if given, else the standard score fields of ``task``."""
        if fields:
            return list(fields)
        if not task:
            raise DataError(tr("Indiquez les champs ou la tâche.", "Give the fields or the task."))
        return score_field_specs(task)


class Closable(Protocol):
    """An API client: something holding connections that :meth:`close` releases."""

    def close(self) -> None:
        """Release connections; safe twice."""


ClientT = TypeVar("ClientT", bound=Closable)


class ApiCrmConnector(CrmConnector, Generic[ClientT]):
    """A CRM reached through an API client built on first use, so building the connector does no I/O.

    The Config of a web API names its HTTP settings ``timeout``, ``verify_tls``,
    ``max_attempts`` and ``max_retry_wait``; :meth:`http_client` builds the
    shared :class:`~assoc_ai_core.ext.http.HttpClient` from them.
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._client: ClientT | None = None

    @abstractmethod
    def build_client(self) -> ClientT:
        """A new API client from ``self.config`` (no I/O yet)."""

    def http_client(self, service: str, *, headers: Mapping[str, str] | None = None,
                    field: str = "base_url") -> HttpClient:
        """A session for ``service`` with the Config's timeout, TLS verification and retry bounds."""
        c = self.config
        return HttpClient(service, self.id, timeout=c.timeout, verify=c.verify_tls, max_attempts=c.max_attempts,
                          max_retry_wait=c.max_retry_wait, headers=headers, field=field)

    @property
    def client(self) -> ClientT:
        """The API client, built on first use."""
        if self._client is None:
            self._client = self.build_client()
        return self._client

    def close(self) -> None:
        """Close the client's connections; safe twice."""
        if self._client is not None:
            self._client.close()
            self._client = None


def site_time_zone(name: str, *, connector_id: str) -> ZoneInfo:
    """The time zone a self-hosted CRM writes its wall-clock times in; a clear error for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            tr(
                f"[connectors.{connector_id}].timezone : fuseau horaire inconnu {name!r} (ex. « Europe/Paris »).",
                f"[connectors.{connector_id}].timezone: unknown time zone {name!r} (e.g. 'Europe/Paris').",
            )
        ) from None


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def is_after_cursor(record: Any, cursor: Mapping[str, Any] | None) -> bool:
    """True when ``record`` was created or modified after ``cursor`` (always True without cursor).

    Records without a ``modified`` date cannot be placed on the timeline: they
    are read on a full read only, so connectors whose CRM gives no dates must
    use another cursor (the files connector uses the file's digest).
    """
    if not cursor or not cursor.get(CURSOR_KEY):
        return True
    modified = getattr(record, "modified", None)
    if modified is None:
        return False
    mark = _as_utc(datetime.fromisoformat(str(cursor[CURSOR_KEY])))
    when = _as_utc(modified)
    if when != mark:
        return when > mark
    return str(record.source_id) not in set(map(str, cursor.get("ids_at", ())))


def advance_cursor(cursor: Mapping[str, Any] | None, records: Iterable[Any]) -> dict[str, Any]:
    """The cursor after ``records``: latest ``modified`` seen and the ids modified at that instant."""
    out: dict[str, Any] = dict(cursor or {})
    mark = _as_utc(datetime.fromisoformat(str(out[CURSOR_KEY]))) if out.get(CURSOR_KEY) else None
    ids_at: set[str] = set(map(str, out.get("ids_at", ()))) if mark else set()
    for record in records:
        modified = getattr(record, "modified", None)
        if modified is None:
            continue
        when = _as_utc(modified)
        if mark is None or when > mark:
            mark, ids_at = when, {str(record.source_id)}
        elif when == mark:
            ids_at.add(str(record.source_id))
    if mark is not None:
        out[CURSOR_KEY] = mark.isoformat()
        out["ids_at"] = sorted(ids_at)
    return out


def plan_score_writes(
    current: Mapping[str, Mapping[str, Any] | None],
    scores: Sequence[Score],
    *,
    dry_run: bool = True,
    prefix: str = "assoc_ai",
    target: str = "",
) -> WriteReport:
    """Diff ``scores`` against the values now in the CRM.

    ``current`` maps each known person id to its current score-field values
    (``None`` or ``{}`` when the fields are empty).  Scores for ids not in
    ``current`` are skipped with a reason (never create a person from a score);
    a person scored twice keeps the last score.
    """
    last: dict[str, Score] = {}
    for score in scores:
        last[str(score.person_id)] = score
    diffs: list[RecordDiff] = []
    skipped: list[tuple[str, str]] = []
    for pid, score in last.items():
        if pid not in current:
            skipped.append((pid, tr("personne inconnue dans le CRM", "person not found in the CRM")))
            continue
        after = score.as_fields(prefix)
        existing = dict(current[pid] or {})
        before = {k: existing.get(k) for k in after}
        if all(_same(before[k], v) for k, v in after.items()):
            action = "unchanged"
        elif all(before[k] in (None, "") for k in after):
            action = "create"
        else:
            action = "update"
        diffs.append(RecordDiff(record_id=pid, action=action, before=before, after=after))
    return WriteReport(dry_run=dry_run, diffs=tuple(diffs), skipped=tuple(skipped), target=target)


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, float):
        number = parse_number(a) if isinstance(a, str) else a
        try:
            return number is not None and abs(float(number) - b) < 5e-5
        except (TypeError, ValueError):
            return False
    return ("" if a is None else str(a)) == ("" if b is None else str(b))
