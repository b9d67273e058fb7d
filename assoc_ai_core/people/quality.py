"""Data-quality report of a people dataset: what is missing, invalid or inconsistent, column by column.

Counts only, plus the ids of the first records concerned: no name, address
or amount is copied into the report, so it can be shared with whoever fixes
the CRM.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from assoc_ai_core.i18n import percent, tr
from assoc_ai_core.people.cleaning import department_of, email_issue, fold, normalize_phone, normalize_postcode
from assoc_ai_core.people.dataset import PeopleData

__all__ = ["quality_report", "QualityReport", "ColumnQuality"]

_MAX_IDS = 10
_CHECKED = {
    "person": ("first_name", "last_name", "email", "phone", "postcode", "city", "birth_year", "gender", "created"),
    "gift": ("person_id", "amount", "date", "campaign", "payment_method"),
    "membership": ("person_id", "season", "fee", "start"),
    "participation": ("person_id", "event", "date", "status"),
    "volunteer_hours": ("person_id", "mission", "hours", "date"),
}


@dataclass
class ColumnQuality:
    """Missing, invalid and inconsistent counts of one column of one record type."""

    record_type: str
    column: str
    total: int
    missing: int = 0
    invalid: int = 0
    inconsistent: int = 0
    examples: list[str] = field(default_factory=list)  # record ids, never values
    notes: list[str] = field(default_factory=list)

    @property
    def missing_share(self) -> float:
        """Share of records where the column is empty."""
        return self.missing / self.total if self.total else 0.0


@dataclass
class QualityReport:
    """Every column's quality plus dataset-wide findings (duplicated ids, orphan gifts...)."""

    columns: list[ColumnQuality] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "counts": self.counts,
            "columns": [
                {"record_type": c.record_type, "column": c.column, "total": c.total, "missing": c.missing,
                 "missing_share": round(c.missing_share, 4), "invalid": c.invalid, "inconsistent": c.inconsistent,
                 "examples": c.examples, "notes": c.notes}
                for c in self.columns
            ],
            "findings": self.findings,
        }

    def to_text(self, lang: str | None = None) -> str:
        """A readable summary: the columns with problems first."""
        lines = [tr("Qualité des données", "Data quality", lang) + " — " + ", ".join(f"{k}: {v}" for k, v in self.counts.items() if v)]
        for c in sorted(self.columns, key=lambda c: -(c.invalid + c.inconsistent + c.missing)):
            if not (c.missing or c.invalid or c.inconsistent):
                continue
            lines.append(tr(
                f"  {c.record_type}.{c.column} : {c.missing} vide(s) ({percent(c.missing_share, lang)}), "
                f"{c.invalid} invalide(s), {c.inconsistent} incohérent(s)",
                f"  {c.record_type}.{c.column}: {c.missing} empty ({percent(c.missing_share, lang)}), "
                f"{c.invalid} invalid, {c.inconsistent} inconsistent", lang))
            for note in c.notes:
                lines.append(f"      {note}")
        for f in self.findings:
            lines.append("  • " + (f["fr"] if (lang or "fr") == "fr" else f["en"]))
        return "\n".join(lines)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def quality_report(data: PeopleData, *, today: date | None = None, lang: str | None = None) -> QualityReport:
    """Check every record: empty cells, unreadable values, values that contradict each other."""
    today = today or date.today()
    report = QualityReport(counts=data.summary())
    person_ids = Counter(p.source_id for p in data.persons)
    known = set(person_ids)
    for rtype, columns in _CHECKED.items():
        records = data.records(rtype)
        for col in columns:
            report.columns.append(_column_quality(rtype, col, records, today=today, known=known, lang=lang))
    _add_findings(report, data, person_ids)
    return report


def _check_value(col: str, value: Any, record: Any, *, today: date, known: set[str]) -> tuple[bool, bool, str | None]:
    """(invalid, inconsistent, the domain a mistyped e-mail probably meant) for one non-empty cell."""
    bad = inconsistent = False
    typo = None
    if col == "email":
        issue = email_issue(value)
        bad = issue == "invalid"
        if issue and issue.startswith("typo:"):
            typo, inconsistent = issue[5:], True
    elif col == "phone":
        bad = not normalize_phone(value, postcode=getattr(record, "postcode", ""))
    elif col == "postcode":
        bad = not normalize_postcode(value)
    elif col == "birth_year":
        bad = not (today.year - 120 <= int(value) <= today.year)
    elif col in ("amount", "fee", "hours"):
        bad = float(value) < 0
        inconsistent = col == "amount" and float(value) == 0
    elif col in ("date", "start", "created"):
        when = value.date() if isinstance(value, datetime) else value
        bad = when.year < 1900
        inconsistent = when > today
    elif col == "person_id":
        inconsistent = str(value) not in known
    return bad, inconsistent, typo


def _column_quality(rtype: str, col: str, records: list[Any], *, today: date, known: set[str],
                    lang: str | None) -> ColumnQuality:
    """Counts, example ids and notes of one column over every record of one type."""
    q = ColumnQuality(rtype, col, total=len(records))
    typos: Counter[str] = Counter()
    for r in records:
        value = getattr(r, col, None)
        if _empty(value) or (col == "amount" and value is None):
            q.missing += 1
            continue
        bad, inconsistent, typo = _check_value(col, value, r, today=today, known=known)
        if typo is not None:
            typos[typo] += 1
        q.invalid += int(bad)
        q.inconsistent += int(inconsistent)
        if (bad or inconsistent) and len(q.examples) < _MAX_IDS:
            q.examples.append(str(r.source_id))
    if typos:
        q.notes.append(tr("domaines probablement mal tapés : ", "domains probably mistyped: ", lang)
                       + ", ".join(f"→ {d} ×{n}" for d, n in typos.most_common(5)))
    if q.inconsistent and col in _INCONSISTENT_NOTES:
        q.notes.append(tr(*_INCONSISTENT_NOTES[col], lang))
    return q


_FUTURE = ("dates dans le futur", "dates in the future")
_INCONSISTENT_NOTES: dict[str, tuple[str, str]] = {
    "date": _FUTURE, "start": _FUTURE, "created": _FUTURE,
    "person_id": ("renvoient à une personne absente de l'export des personnes",
                  "refer to a person missing from the people export"),
    "amount": ("montants à zéro", "zero amounts"),
}


def _add_findings(report: QualityReport, data: PeopleData, person_ids: Counter[str]) -> None:
    """Dataset-wide findings (duplicated ids, one postcode for several towns, unreadable rows) and counts."""
    dup_ids = [pid for pid, n in person_ids.items() if n > 1]
    if dup_ids:
        report.findings.append({
            "code": "duplicate_person_ids", "count": len(dup_ids), "examples": dup_ids[:_MAX_IDS],
            "fr": f"{len(dup_ids)} identifiant(s) de personne en double dans l'export",
            "en": f"{len(dup_ids)} person id(s) appear more than once in the export",
        })
    # one postcode written with several commune names is usually a typo or an old name
    cities: dict[str, set[str]] = defaultdict(set)
    for p in data.persons:
        code = normalize_postcode(p.postcode)
        if code and p.city.strip():
            cities[code].add(fold(p.city).replace("-", " ").replace("saint", "st"))
    mixed = sorted(code for code, names in cities.items() if len(names) > 1)
    if mixed:
        report.findings.append({
            "code": "postcode_several_cities", "count": len(mixed), "examples": mixed[:_MAX_IDS],
            "fr": f"{len(mixed)} code(s) postal(aux) associé(s) à plusieurs noms de commune",
            "en": f"{len(mixed)} postcode(s) written with several town names",
        })
    report.counts["corsica"] = sum(1 for p in data.persons if department_of(p.postcode) in ("2A", "2B"))
    report.counts["overseas"] = sum(1 for p in data.persons if len(department_of(p.postcode)) == 3)
    report.counts["do_not_profile"] = sum(1 for p in data.persons if p.do_not_profile)
    if data.problems:
        report.findings.append({
            "code": "unreadable_rows", "count": len(data.problems), "examples": [f"{p['file']}:{p['row']}" for p in data.problems[:_MAX_IDS]],
            "fr": f"{len(data.problems)} ligne(s) illisible(s) ignorée(s) à l'import (valeurs obligatoires vides ou mal formées)",
            "en": f"{len(data.problems)} unreadable row(s) skipped on import (required values empty or malformed)",
        })
