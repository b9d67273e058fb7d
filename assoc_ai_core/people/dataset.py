"""A people dataset: every record type of one association, read from exports, a config file or a CRM connector.

:func:`load_people` accepts a folder of exports, one export file, a TOML file
with a ``[crm]`` section (any installed CRM connector), or a connector
instance.  :meth:`PeopleData.frames` gives pandas tables for the feature code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assoc_ai_core.errors import ConfigError, DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.records.people import (
    RECORD_TYPES,
    Gift,
    Membership,
    Participation,
    Person,
    RecurringPlan,
    VolunteerHours,
    VolunteerMission,
)

if TYPE_CHECKING:  # annotations only: pandas stays optional
    import pandas as pd

    from assoc_ai_core.ext.crm import CrmConnector

__all__ = ["PeopleData", "load_people", "connector_from_config", "require_pandas", "net_gifts", "GiftNetting"]

_FIELD_OF_TYPE = {
    "person": "persons", "gift": "gifts", "recurring_plan": "plans", "membership": "memberships",
    "participation": "participations", "volunteer_mission": "missions", "volunteer_hours": "hours",
}


def require_pandas() -> Any:
    """Import pandas, or explain how to install the people extra."""
    try:
        import pandas
    except ImportError as exc:
        raise DataError(
            tr(
                "Les modèles de données de personnes demandent pandas : pip install 'assoc-ai-core[people]'.",
                "People-data models need pandas: pip install 'assoc-ai-core[people]'.",
            )
        ) from exc
    return pandas


@dataclass
class PeopleData:
    """All the people records of one association (lists of canonical records)."""

    persons: list[Person] = field(default_factory=list)
    gifts: list[Gift] = field(default_factory=list)
    plans: list[RecurringPlan] = field(default_factory=list)
    memberships: list[Membership] = field(default_factory=list)
    participations: list[Participation] = field(default_factory=list)
    missions: list[VolunteerMission] = field(default_factory=list)
    hours: list[VolunteerHours] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def records(self, record_type: str) -> list[Any]:
        """The list holding ``record_type`` records."""
        records: list[Any] = getattr(self, _FIELD_OF_TYPE[record_type])
        return records

    def add(self, records: Iterable[Any]) -> None:
        """Append canonical records of any type."""
        for record in records:
            self.records(type(record).record_type).append(record)

    def frames(self) -> dict[str, pd.DataFrame]:
        """One pandas DataFrame per record type (columns = the record's fields, ``raw`` dropped).

        The ``gift`` table holds the gifts that count (:func:`net_gifts`): no
        zero or negative amounts, refunded gifts cancelled by their refund.
        """
        pd = require_pandas()
        out = {}
        for rtype, cls in RECORD_TYPES.items():
            names = [f.name for f in dataclasses.fields(cls) if f.name != "raw"]
            records = net_gifts(self.gifts)[0] if rtype == "gift" else self.records(rtype)
            rows = [tuple(getattr(r, n) for n in names) for r in records]
            frame = pd.DataFrame.from_records(rows, columns=names)
            for n in names:
                if n in ("date", "start", "end", "created", "modified"):
                    frame[n] = _to_naive_datetime(pd, frame[n])
                elif n in _NUMBER_COLUMNS:
                    # an empty export gives object columns, whose sums pandas would later downcast with a warning
                    frame[n] = pd.to_numeric(frame[n], errors="coerce").astype(float)
            out[rtype] = frame
        return out

    def gift_netting(self) -> GiftNetting:
        """What :meth:`frames` left out of the gifts, and why (counts only)."""
        return net_gifts(self.gifts)[1]

    @property
    def person_ids(self) -> set[str]:
        """Ids (``source_id``) of every person."""
        return {p.source_id for p in self.persons}

    def latest_date(self) -> Any:
        """The date of the most recent dated record (the natural "as of" for predictions)."""
        dates = [g.date for g in self.gifts] + [p.date for p in self.participations] + [h.date for h in self.hours]
        dates += [m.start for m in self.memberships if m.start]
        return max(dates) if dates else None

    def summary(self) -> dict[str, int]:
        """Number of records of each type."""
        return {rtype: len(self.records(rtype)) for rtype in RECORD_TYPES}


_NUMBER_COLUMNS = frozenset({"amount", "fee", "hours"})


@dataclass(frozen=True)
class GiftNetting:
    """Counts of the gift rows :func:`net_gifts` set aside."""

    zero: int = 0  # amount 0 or unreadable: what CRM plugins write for a refunded or cancelled gift
    refunds_matched: int = 0  # negative rows that cancelled a whole earlier gift of the same amount
    refunds_partial: int = 0  # negative rows that reduced a larger earlier gift
    refunds_unmatched: int = 0  # negative rows with no earlier gift to cancel: dropped on their own

    @property
    def total(self) -> int:
        """Every row set aside or used to cancel another."""
        return self.zero + self.refunds_matched + self.refunds_partial + self.refunds_unmatched


def net_gifts(gifts: Iterable[Gift]) -> tuple[list[Gift], GiftNetting]:
    """The gifts that make someone a donor, and the counts of what was set aside.

    FEP counts a donor only for money actually kept, so:

    * a gift of 0 (or an unreadable amount) is not a gift — CRM plugins write
      a refunded or cancelled gift that way;
    * a negative row is a refund.  It cancels the same person's most recent
      gift of exactly that amount (same currency) dated on or before it;
      failing that, it reduces the most recent earlier gift that is larger
      (a partial refund: the rest still counts); failing that, it is dropped.
      Each gift is cancelled at most once.
    """
    kept: list[Gift] = []
    refunds: list[Gift] = []
    zero = 0
    for g in gifts:
        amount = g.amount if isinstance(g.amount, (int, float)) else float("nan")
        if amount > 0:
            kept.append(g)
        elif amount < 0:
            refunds.append(g)
        else:
            zero += 1
    if not refunds:
        return kept, GiftNetting(zero=zero)
    by_person: dict[tuple[str, str], list[int]] = {}
    for i, g in enumerate(kept):
        by_person.setdefault((str(g.person_id), g.currency), []).append(i)
    amounts: dict[int, float] = {i: float(g.amount) for i, g in enumerate(kept)}
    matched = partial = unmatched = 0
    for r in sorted(refunds, key=lambda g: _day(g.date)):
        back = round(-float(r.amount), 2)
        earlier = sorted((i for i in by_person.get((str(r.person_id), r.currency), [])
                          if amounts[i] > 0 and _day(kept[i].date) <= _day(r.date)),
                         key=lambda i: _day(kept[i].date), reverse=True)
        exact = next((i for i in earlier if round(amounts[i], 2) == back), None)
        larger = next((i for i in earlier if amounts[i] > back), None)
        if exact is not None:
            amounts[exact] = 0.0
            matched += 1
        elif larger is not None:
            amounts[larger] = round(amounts[larger] - back, 2)
            partial += 1
        else:
            unmatched += 1
    out = [g if amounts[i] == g.amount else dataclasses.replace(g, amount=amounts[i])
           for i, g in enumerate(kept) if amounts[i] > 0]
    return out, GiftNetting(zero=zero, refunds_matched=matched, refunds_partial=partial, refunds_unmatched=unmatched)


def _day(value: date | datetime) -> date:
    """The calendar day of a date or datetime (CRMs give either; the two do not compare)."""
    return value.date() if isinstance(value, datetime) else value


def _to_naive_datetime(pd: Any, series: pd.Series) -> pd.Series:
    converted = pd.to_datetime(series, errors="coerce", utc=True)
    return converted.dt.tz_localize(None)


def connector_from_config(path: str | Path) -> CrmConnector:
    """Build the CRM connector described by the ``[crm]`` section of a TOML config file."""
    from assoc_ai_core.ext.config import load_config
    from assoc_ai_core.ext.crm import CrmConnector
    from assoc_ai_core.ext.plugins import build_connector_config, get_connector_class

    data = load_config(path)
    section = data.get("crm")
    if not isinstance(section, Mapping):
        raise ConfigError(
            tr(
                f"{path} : section [crm] manquante. Ajoutez par exemple [crm] connector = \"files\" et path = \"exports/\".",
                f"{path}: no [crm] section. Add for example [crm] connector = \"files\" and path = \"exports/\".",
            )
        )
    connector_id = str(section.get("connector", "files"))
    cls = get_connector_class(connector_id)
    if not issubclass(cls, CrmConnector):
        raise ConfigError(
            tr(f"[crm] connector = « {connector_id} » n'est pas un connecteur CRM.",
               f"[crm] connector = '{connector_id}' is not a CRM connector.")
        )
    section = dict(section)
    if connector_id == "files":  # paths in the file are relative to the file, not to where the job runs
        base = Path(str(data.get("_path", path))).parent
        for key in ("path", "output"):
            if section.get(key):
                p = Path(str(section[key])).expanduser()
                section[key] = str(p if p.is_absolute() else base / p)
    config = build_connector_config(cls.Config, section, where="crm")
    return cls(config)


def load_people(source: str | Path | CrmConnector | PeopleData) -> PeopleData:
    """Read every record type from ``source`` (folder or file of exports, TOML config, connector)."""
    from assoc_ai_core.ext.crm import CrmConnector
    from assoc_ai_core.people.files_connector import FilesConfig, FilesConnector

    if isinstance(source, PeopleData):
        return source
    if isinstance(source, CrmConnector):
        connector = source
    else:
        p = Path(source).expanduser()
        if not p.exists():
            raise DataError(
                tr(f"{p} n'existe pas. Indiquez un dossier d'exports, un fichier CSV/Excel ou un fichier de configuration .toml.",
                   f"{p} does not exist. Give a folder of exports, a CSV/Excel file or a .toml configuration file.")
            )
        connector = connector_from_config(p) if p.suffix.lower() == ".toml" else FilesConnector(FilesConfig(path=str(p)))
    data = PeopleData()
    with connector:
        for rtype in sorted(connector.record_types):
            for page in connector.iter_records(rtype, None, page_size=1000):
                data.add(page.records)
    data.problems = list(getattr(connector, "problems", []))
    if not data.persons:
        raise DataError(
            tr(
                "Aucune personne trouvée. Vérifiez que l'export des personnes (contacts, donateurs, adhérents) "
                "est présent et nommé par exemple personnes.csv, ou indiquez-le dans [crm.files] person = \"...\".",
                "No people found. Check the people export (contacts, donors, members) is there and named e.g. "
                "people.csv, or name it in [crm.files] person = \"...\".",
            )
        )
    return data
