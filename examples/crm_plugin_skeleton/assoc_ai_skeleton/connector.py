"""A CRM connector that reads people from a JSON file: the smallest complete example of the contract.

The JSON file stands in for a CRM's API.  It holds a list of people, each with
the CRM's own id and the date the record was last modified::

    {"people": [
      {"id": "p1", "first_name": "Camille", "last_name": "Martin",
       "email": "camille.martin@example.org", "postcode": "75011",
       "modified": "2025-03-04T10:00:00+00:00"}
    ]}

A real connector replaces :meth:`SkeletonConnector.open` (log in) and the
reading of ``self._rows`` (API calls, page by page); everything else stays.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from assoc_ai_core.errors import ConfigError, ConnectorError, DataError
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CrmConnector, advance_cursor, is_after_cursor
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.people import Person, RecordPage

__all__ = ["SkeletonConfig", "SkeletonConnector"]


# --8<-- [start:config]
@dataclass(frozen=True)
class SkeletonConfig:
    """Settings of the connector, read from the ``[crm]`` section of the configuration."""

    path: str  # the JSON file of people


# --8<-- [end:config]


# --8<-- [start:class]
class SkeletonConnector(CrmConnector):
    """People from a JSON file, read incrementally by modification date (read-only)."""

    id: ClassVar[str] = "skeleton"
    Config: ClassVar[type] = SkeletonConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ})
    record_types: ClassVar[frozenset[str]] = frozenset({"person"})
    description: ClassVar[str] = "People from a JSON file (tutorial example)"

    def __init__(self, config: SkeletonConfig) -> None:
        super().__init__(config)
        self._rows: list[Mapping[str, Any]] | None = None  # filled by open(): building does no I/O
    # --8<-- [end:class]

    # --8<-- [start:open]
    def open(self) -> None:
        """Read the JSON file (a real connector logs in to its CRM here)."""
        path = Path(self.config.path).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(tr(
                f"[crm] path : le fichier {path} n'existe pas. Indiquez le fichier JSON des personnes.",
                f"[crm] path: file {path} does not exist. Give the JSON file of people.",
            )) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            # The error names the file and the problem, never the file's content (personal data).
            raise ConnectorError(tr(
                f"{path} n'est pas un fichier JSON lisible ({type(exc).__name__}). Vérifiez l'export.",
                f"{path} is not a readable JSON file ({type(exc).__name__}). Check the export.",
            ), connector_id=self.id) from exc
        rows = data.get("people") if isinstance(data, dict) else None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise DataError(tr(
                f'{path} : il faut un objet {{"people": [...]}} avec une personne par élément.',
                f'{path}: expected an object {{"people": [...]}} with one person per item.',
            ))
        self._rows = rows

    def close(self) -> None:
        """Forget what was read; safe to call twice."""
        self._rows = None
    # --8<-- [end:open]

    # --8<-- [start:iter]
    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[RecordPage]:
        """Yield pages of people modified since ``cursor`` (everyone when None), oldest change first."""
        self.check_record_type(record_type)  # CapabilityError for "gift", "membership"...
        if self._rows is None:
            raise ConnectorError(tr("Ouvrez le connecteur avant de lire (with connecteur: ...).",
                                    "Open the connector before reading (with connector: ...)."),
                                 connector_id=self.id)
        people = sorted((self._person(row, n) for n, row in enumerate(self._rows, start=1)), key=_timeline)
        fresh = [p for p in people if is_after_cursor(p, cursor)]
        state = dict(cursor or {})
        for start in range(0, len(fresh), page_size):
            page = fresh[start:start + page_size]
            state = advance_cursor(state, page)  # stored by the host once the page is handled
            yield RecordPage(record_type, page, state)
    # --8<-- [end:iter]

    # --8<-- [start:person]
    def _person(self, row: Mapping[str, Any], n: int) -> Person:
        """Translate one CRM record into the canonical Person (unmodelled fields kept in ``raw``)."""
        if not str(row.get("id") or "").strip():
            raise DataError(tr(f"{self.config.path} : la personne n° {n} n'a pas d'« id ».",
                               f"{self.config.path}: person #{n} has no 'id'."))
        try:
            modified = datetime.fromisoformat(row["modified"]) if row.get("modified") else None
        except (TypeError, ValueError):
            raise DataError(tr(
                f"{self.config.path} : « modified » de la personne n° {n} n'est pas une date ISO 8601.",
                f"{self.config.path}: 'modified' of person #{n} is not an ISO 8601 date.",
            )) from None
        known = ("id", "first_name", "last_name", "email", "postcode", "city", "modified", "do_not_profile")
        return Person(
            source=self.id,
            source_id=str(row["id"]).strip(),
            first_name=str(row.get("first_name") or ""),
            last_name=str(row.get("last_name") or ""),
            email=str(row.get("email") or ""),
            postcode=str(row.get("postcode") or ""),
            city=str(row.get("city") or ""),
            modified=modified,
            do_not_profile=bool(row.get("do_not_profile", False)),
            raw={k: v for k, v in row.items() if k not in known},
        )


def _timeline(person: Person) -> tuple[datetime, str]:
    """Sort key: modification time (UTC; undated first), then id, so pages follow the cursor's order."""
    when = person.modified or datetime.min
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when, person.source_id
# --8<-- [end:person]
