"""The embedded CRM connector: CSV and Excel exports in a folder (id ``files``), no credentials.

Configuration (TOML)::

    [crm]
    connector = "files"
    path = "exports/"                 # a folder of exports, or one file of people
    [crm.files]                       # optional: which file holds which records
    person = "contacts.xlsx"
    gift = "dons.csv"
    [crm.mapping]                     # optional: canonical field = column of the export
    email = "Courriel"
    [crm.mapping.gift]                # per record type when two files name a column differently
    amount = "Montant TTC"

Without ``files``, exports are found by name (``personnes``/``contacts``/``people``,
``dons``/``gifts``, ``adhesions``/``memberships``, ``participations``/``evenements``,
``missions``, ``benevolat``/``volunteer_hours``, ``dons_reguliers``/``recurring_plans``;
``.csv``, ``.txt``, ``.xlsx``).  Without ``mapping``, the usual French and English
column titles are recognised.  ``write_scores`` writes a separate CSV
(``assoc_ai_scores.csv`` by default, see :mod:`~assoc_ai_core.people.scores_csv`)
and never touches an export; people who object to profiling are never written.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar

from assoc_ai_core.errors import ConfigError, DataError
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CrmConnector, StoredScores, advance_cursor, is_after_cursor
from assoc_ai_core.i18n import tr
from assoc_ai_core.people.cleaning import fold, parse_bool, parse_date, parse_datetime, parse_number, split_list
from assoc_ai_core.people.scores_csv import read_scores_csv, write_scores_csv
from assoc_ai_core.people.tabular import CSV_SUFFIXES, EXCEL_SUFFIXES, Table, read_table
from assoc_ai_core.records.people import RECORD_TYPES, FieldSpec, RecordDiff, RecordPage, Score, WriteReport

__all__ = ["FilesConnector", "FilesConfig", "FILE_NAMES", "COLUMN_SYNONYMS"]

DEFAULT_OUTPUT = "assoc_ai_scores.csv"

FILE_NAMES: dict[str, tuple[str, ...]] = {
    "person": ("personnes", "persons", "people", "contacts", "donateurs", "donors", "individus"),
    "gift": ("dons", "gifts", "donations", "paiements_dons"),
    "recurring_plan": ("dons_reguliers", "prelevements", "recurring_plans", "recurring", "mandats"),
    "membership": ("adhesions", "memberships", "cotisations"),
    "participation": ("participations", "evenements", "events", "inscriptions"),
    "volunteer_mission": ("missions", "volunteer_missions"),
    "volunteer_hours": ("benevolat", "heures_benevoles", "volunteer_hours", "volunteering", "heures"),
}

# Column titles seen in French and English exports, compared after fold() and without punctuation.
COLUMN_SYNONYMS: dict[str, tuple[str, ...]] = {
    "source_id": ("id", "identifiant", "code", "numero", "no", "ref", "reference", "record id"),
    "person_id": ("id contact", "contact id", "contact", "id personne", "person id", "personne", "donateur id",
                  "id donateur", "numero donateur", "n donateur", "donor id", "id adherent", "numero adherent",
                  "n adherent", "member id", "volunteer id", "id benevole", "benevole id"),
    "first_name": ("prenom", "first name", "firstname", "given name", "prenom du donateur", "prenom adherent"),
    "last_name": ("nom", "last name", "lastname", "surname", "family name", "nom de famille", "nom du donateur",
                  "nom adherent"),
    "email": ("email", "e mail", "courriel", "mail", "adresse email", "adresse e mail", "adresse mail",
              "email address", "adresse electronique"),
    "phone": ("telephone", "tel", "portable", "mobile", "phone", "phone number", "numero de telephone",
              "telephone portable", "tel portable"),
    "postcode": ("code postal", "cp", "postcode", "postal code", "zip", "zip code", "zipcode"),
    "city": ("ville", "commune", "city", "town", "localite"),
    "birth_year": ("annee de naissance", "birth year", "date de naissance", "birth date", "birthdate", "naissance",
                   "date of birth", "dob"),
    "age_band": ("tranche d age", "tranche age", "age band", "age group", "classe d age"),
    "gender": ("genre", "sexe", "gender", "sex", "civilite"),
    "created": ("date de creation", "cree le", "created", "created at", "date creation", "creation"),
    "modified": ("date de modification", "modifie le", "modified", "modified at", "updated at", "last modified",
                 "derniere modification", "mis a jour le"),
    "do_not_profile": ("ne pas profiler", "opposition profilage", "refus profilage", "do not profile",
                       "no profiling", "opt out profiling"),
    "amount": ("montant", "amount", "somme", "montant du don", "montant don", "gift amount", "total"),
    "date": ("date", "date du don", "date don", "date de paiement", "payment date", "gift date", "date evenement",
             "event date", "jour"),
    "currency": ("devise", "currency", "monnaie"),
    "recurring": ("recurrent", "regulier", "recurring", "don regulier", "mensuel"),
    "plan_id": ("id prelevement", "plan id", "id mandat", "mandat"),
    "campaign": ("campagne", "campaign", "appel", "operation", "formulaire", "form"),
    "payment_method": ("moyen de paiement", "mode de paiement", "payment method", "reglement", "mode de reglement"),
    "frequency": ("frequence", "periodicite", "frequency"),
    "start": ("debut", "date de debut", "start", "start date", "date debut", "du"),
    "end": ("fin", "date de fin", "end", "end date", "date fin", "au"),
    "status": ("statut", "status", "etat", "state"),
    "season": ("saison", "season", "annee", "year", "exercice", "periode"),
    "fee": ("cotisation", "fee", "montant cotisation", "tarif", "montant"),
    "event": ("evenement", "event", "nom de l evenement", "event name", "activite", "sortie"),
    "title": ("titre", "title", "mission", "intitule", "nom de la mission", "name"),
    "skills": ("competences", "skills", "savoir faire", "compétences requises", "competences requises"),
    "place": ("lieu", "place", "location", "adresse", "site"),
    "hours": ("heures", "hours", "nombre d heures", "duree", "duration", "nb heures"),
    "weekdays": ("jours", "weekdays", "jours de la semaine", "days", "disponibilites"),
    "mission": ("mission", "id mission", "mission id", "nom de la mission"),
}

# Ids named after the record type, tried before the generic ones above.
_ID_SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": ("id contact", "contact id", "id personne", "person id", "numero adherent", "n adherent", "id adherent",
               "numero donateur", "n donateur", "id donateur", "donor id", "member id", "id benevole"),
    "gift": ("id don", "gift id", "donation id", "numero de don", "n don", "reference du don", "id paiement"),
    "recurring_plan": ("id mandat", "plan id", "id prelevement", "numero de mandat"),
    "membership": ("id adhesion", "membership id", "numero adhesion", "n adhesion", "id cotisation"),
    "participation": ("id inscription", "registration id", "id participation", "participation id"),
    "volunteer_mission": ("id mission", "mission id", "numero mission"),
    "volunteer_hours": ("id saisie", "id heures", "hours id", "id pointage"),
}

_WEEKDAYS = {"lundi": 0, "monday": 0, "mon": 0, "lun": 0, "mardi": 1, "tuesday": 1, "tue": 1, "mar": 1,
             "mercredi": 2, "wednesday": 2, "wed": 2, "mer": 2, "jeudi": 3, "thursday": 3, "thu": 3, "jeu": 3,
             "vendredi": 4, "friday": 4, "fri": 4, "ven": 4, "samedi": 5, "saturday": 5, "sat": 5, "sam": 5,
             "dimanche": 6, "sunday": 6, "sun": 6, "dim": 6}

_REQUIRED = {
    "person": ("source_id",),
    "gift": ("person_id", "amount", "date"),
    "recurring_plan": ("person_id", "amount"),
    "membership": ("person_id", "season"),
    "participation": ("person_id", "event", "date"),
    "volunteer_mission": ("title",),
    "volunteer_hours": ("person_id", "mission", "hours", "date"),
}


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", fold(text)).strip()


@dataclass(frozen=True)
class FilesConfig:
    """Settings of the files connector (see the module docstring for an example)."""

    path: str
    files: Mapping[str, str] = field(default_factory=dict)
    mapping: Mapping[str, Any] = field(default_factory=dict)
    delimiter: str = ""
    encoding: str = ""
    decimal: str = ""
    dayfirst: bool = True
    sheet: str = ""
    source: str = "files"
    output: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.files) - set(RECORD_TYPES))
        if unknown:
            raise ValueError(
                tr(
                    f"files : type(s) d'enregistrement inconnu(s) {', '.join(unknown)} ; types possibles : {', '.join(RECORD_TYPES)}.",
                    f"files: unknown record type(s) {', '.join(unknown)}; possible types: {', '.join(RECORD_TYPES)}.",
                )
            )


class FilesConnector(CrmConnector):
    """People data from CSV/Excel exports; scores written to a separate CSV."""

    id: ClassVar[str] = "files"
    Config: ClassVar[type] = FilesConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READ, Capability.WRITE_SCORES})
    record_types: ClassVar[frozenset[str]] = frozenset(RECORD_TYPES)
    description: ClassVar[str] = "CSV / Excel exports (French or English), no credentials"

    def __init__(self, config: FilesConfig) -> None:
        super().__init__(config)
        self.problems: list[dict[str, Any]] = []
        self._tables: dict[str, Table] = {}

    # -- locating and reading ------------------------------------------------

    @property
    def root(self) -> Path:
        """The folder holding the exports."""
        p = Path(self.config.path).expanduser()
        return p if p.is_dir() else p.parent

    def open(self) -> None:
        """Check the path exists (nothing else to connect to)."""
        p = Path(self.config.path).expanduser()
        if not p.exists():
            raise ConfigError(
                tr(
                    f"[crm] path : {p} n'existe pas. Indiquez le dossier des exports ou le fichier des personnes.",
                    f"[crm] path: {p} does not exist. Give the folder of exports or the people file.",
                )
            )

    def file_for(self, record_type: str) -> Path | None:
        """The export holding ``record_type`` records, or None when there is none."""
        self.check_record_type(record_type)
        if record_type in self.config.files:
            p = Path(self.config.files[record_type]).expanduser()
            p = p if p.is_absolute() else self.root / p
            if not p.is_file():
                raise ConfigError(
                    tr(f"[crm.files] {record_type} : fichier introuvable {p}.", f"[crm.files] {record_type}: file not found {p}.")
                )
            return p
        given = Path(self.config.path).expanduser()
        if given.is_file():
            return given if record_type == "person" and not self.config.files else None
        if not given.is_dir():
            self.open()
        wanted = set(FILE_NAMES[record_type])
        for candidate in sorted(given.iterdir()):
            suffix = candidate.suffix.lower()
            if suffix in CSV_SUFFIXES + EXCEL_SUFFIXES and _key(candidate.stem).replace(" ", "_") in wanted:
                return candidate
        return None

    def available_record_types(self) -> list[str]:
        """Record types for which an export was found."""
        return [t for t in RECORD_TYPES if self.file_for(t) is not None]

    def _table(self, record_type: str, path: Path) -> Table:
        cached = self._tables.get(record_type)
        if cached is None or cached.path != path:
            c = self.config
            cached = read_table(path, delimiter=c.delimiter, encoding=c.encoding, decimal=c.decimal, sheet=c.sheet)
            self._tables[record_type] = cached
        return cached

    def column_map(self, record_type: str, columns: Sequence[str]) -> dict[str, int]:
        """Which column index feeds each canonical field of ``record_type`` (configured mapping first)."""
        cls = RECORD_TYPES[record_type]
        fields = [f.name for f in dataclasses.fields(cls) if f.name not in ("source", "raw")]
        by_key: dict[str, int] = {}
        for i, col in enumerate(columns):
            by_key.setdefault(_key(col), i)
        explicit: dict[str, str] = {k: v for k, v in self.config.mapping.items() if isinstance(v, str)}
        nested = self.config.mapping.get(record_type)
        if isinstance(nested, Mapping):
            explicit.update({k: str(v) for k, v in nested.items()})
        out: dict[str, int] = {}
        if "person_id" in fields:  # "Id contact" in a gifts file names the person, not the gift
            fields.remove("person_id")
            fields.insert(0, "person_id")
        for name in fields:
            if name in explicit:
                col = explicit[name]
                if _key(col) in by_key:
                    out[name] = by_key[_key(col)]
                elif name in (nested or {}):
                    raise ConfigError(
                        tr(
                            f"[crm.mapping.{record_type}] {name} = « {col} » : colonne absente. Colonnes : {', '.join(columns)}.",
                            f"[crm.mapping.{record_type}] {name} = '{col}': no such column. Columns: {', '.join(columns)}.",
                        )
                    )
                continue
            specific = _ID_SYNONYMS[record_type] if name == "source_id" else ()
            for synonym in specific + (name.replace("_", " "),) + COLUMN_SYNONYMS.get(name, ()):
                idx = by_key.get(_key(synonym))
                if idx is not None and idx not in out.values():
                    out[name] = idx
                    break
        if record_type == "person":
            out.pop("person_id", None)
        return out

    def read_all(self, record_type: str) -> list[Any]:
        """Every record of ``record_type`` in its export (``[]`` when there is no such export)."""
        path = self.file_for(record_type)
        if path is None:
            return []
        table = self._table(record_type, path)
        return list(self._records(record_type, table))

    def _records(self, record_type: str, table: Table) -> Iterator[Any]:
        cls = RECORD_TYPES[record_type]
        hints = typing.get_type_hints(cls)
        cmap = self.column_map(record_type, table.columns)
        missing = [f for f in _REQUIRED[record_type] if f not in cmap and not (f == "source_id")]
        if record_type == "person" and "source_id" not in cmap and "email" not in cmap:
            missing.append("source_id")
        if missing:
            raise DataError(
                tr(
                    f"{table.path.name} : colonne(s) introuvable(s) pour {', '.join(missing)}. "
                    f"Colonnes du fichier : {', '.join(table.columns)}. Ajoutez par exemple "
                    f"[crm.mapping.{record_type}] {missing[0]} = \"Nom de la colonne\".",
                    f"{table.path.name}: no column found for {', '.join(missing)}. "
                    f"Columns of the file: {', '.join(table.columns)}. Add for example "
                    f"[crm.mapping.{record_type}] {missing[0]} = \"Column title\".",
                )
            )
        used = set(cmap.values())
        seen: dict[str, int] = {}
        for number, row in enumerate(table.rows, start=table.header_row + 1):
            values: dict[str, Any] = {"source": self.config.source}
            bad: list[str] = []
            for name, idx in cmap.items():
                cell = row[idx] if idx < len(row) else None
                try:
                    values[name] = self._convert(name, hints[name], cell, table.decimal)
                except ValueError:
                    bad.append(name)
            if record_type == "person" and not values.get("source_id"):
                values["source_id"] = str(values.get("email") or "").strip().lower()
            for name in _REQUIRED[record_type]:
                if name == "source_id":
                    continue
                if values.get(name) in (None, "") and name not in bad:
                    bad.append(name)
            if not values.get("source_id"):
                if record_type == "person":
                    bad.append("source_id")
                else:  # a stable id from the row's content, numbered when two rows are identical
                    base = "|".join(str(values.get(k, "")) for k in ("person_id", "date", "amount", "season", "event", "mission", "title"))
                    seen[base] = seen.get(base, 0) + 1
                    values["source_id"] = f"{record_type}:{abs(hash_text(base)) % 10**12}:{seen[base]}"
            if bad:
                # the values themselves are personal data: report the row and the columns only
                self.problems.append({"file": table.path.name, "row": number, "fields": sorted(set(bad))})
                continue
            raw = {table.columns[i]: row[i] for i in range(min(len(row), len(table.columns))) if i not in used and table.columns[i]}
            values["raw"] = raw
            yield cls(**values)

    def _convert(self, name: str, hint: Any, cell: Any, decimal: str) -> Any:
        """Turn one cell into the canonical field's type; ValueError when a value is present but unreadable."""
        empty = cell is None or (isinstance(cell, str) and not cell.strip())
        args = set(typing.get_args(hint)) or {hint}
        dayfirst = self.config.dayfirst
        if name == "birth_year":
            return None if empty else _birth_year(cell, decimal, dayfirst)
        if datetime in args or date in args:
            parse = parse_datetime if datetime in args else parse_date
            return None if empty else _readable(parse(cell, dayfirst=dayfirst), name)
        if bool in args:
            return _readable(parse_bool(cell), name)
        if float in args:
            if empty:
                return None if name in ("amount", "hours") else 0.0
            return _readable(parse_number(cell, decimal), name)
        if name == "weekdays":
            return _weekdays(cell)
        if name == "skills":
            return tuple(split_list(cell))
        if empty:
            return ""
        if isinstance(cell, float) and cell.is_integer():
            cell = int(cell)  # Excel stores ids and postcodes as numbers
        return str(cell).strip()

    # -- the contract --------------------------------------------------------

    def iter_records(
        self, record_type: str, cursor: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[RecordPage]:
        """Yield pages of records changed since ``cursor``.

        The cursor holds the export's SHA-256: an unchanged file yields nothing.
        A changed file yields the records modified after the stored
        last-modified mark when the export has a modification-date column,
        else every record (downstream work is idempotent by id).
        """
        self.check_record_type(record_type)
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        path = self.file_for(record_type)
        if path is None:
            return
        table = self._table(record_type, path)
        previous = dict(cursor or {})
        if previous.get("sha256") == table.sha256:
            return
        records = list(self._records(record_type, table))
        if any(getattr(r, "modified", None) for r in records):
            records = [r for r in records if is_after_cursor(r, previous)]
        skip = int(previous.get("offset", 0)) if previous.get("pending") == table.sha256 else 0
        base = {k: v for k, v in previous.items() if k not in ("sha256", "pending", "offset")}
        records = records[skip:]
        if not records:
            yield RecordPage(record_type, [], {**base, "sha256": table.sha256})
            return
        done = skip
        for start in range(0, len(records), page_size):
            page = records[start:start + page_size]
            done += len(page)
            base = advance_cursor(base, page)
            last = start + page_size >= len(records)
            state = {**base, "sha256": table.sha256} if last else {**base, "pending": table.sha256, "offset": done}
            yield RecordPage(record_type, page, state)

    def output_path(self) -> Path:
        """Where scores are written; refuses any path that is one of the exports."""
        out = Path(self.config.output).expanduser() if self.config.output else self.root / DEFAULT_OUTPUT
        out = out if out.is_absolute() else self.root / out
        inputs = {p.resolve() for t in RECORD_TYPES if (p := self.file_for(t)) is not None}
        if out.resolve() in inputs:
            raise ConfigError(
                tr(
                    f"[crm] output = {out} est un des fichiers exportés : assoc-ai n'écrase jamais un export. "
                    "Choisissez un autre nom de fichier.",
                    f"[crm] output = {out} is one of the exports: assoc-ai never overwrites an export. "
                    "Choose another file name.",
                )
            )
        if out.suffix.lower() in EXCEL_SUFFIXES:
            raise ConfigError(tr("[crm] output doit être un fichier .csv.", "[crm] output must be a .csv file."))
        return out

    def score_target(self) -> str:
        """The scores file, for the report."""
        return str(self.output_path())

    def read_stored_scores(self, person_ids: Sequence[str], fields: Sequence[str]) -> Mapping[str, StoredScores]:
        """The scores file's row of each person of the people export (only they are ever written)."""
        out = self.output_path()
        objects = {p.source_id: p.do_not_profile for p in self.read_all("person")}
        _, rows = read_scores_csv(out)
        return {pid: StoredScores(rows.get(pid), objects[pid]) for pid in person_ids if pid in objects}

    def save_scores(self, diffs: Sequence[RecordDiff], scores: Sequence[Score]) -> None:
        """Merge the changed rows into the scores file and replace it; other people's scores are kept."""
        out = self.output_path()
        columns, rows = read_scores_csv(out)
        for diff in diffs:
            rows.setdefault(diff.record_id, {}).update(diff.after)
            columns += [k for k in diff.after if k not in columns]
        self._write_rows(out, columns, rows)

    def ensure_fields(self, fields: Sequence[FieldSpec] | None = None, *, task: str = "", dry_run: bool = True) -> WriteReport:
        """Add missing score columns to the scores file (created with a header when absent)."""
        self.require(Capability.WRITE_SCORES)
        specs = self.fields_for(task, fields)
        out = self.output_path()
        columns, rows = read_scores_csv(out)
        diffs = tuple(
            RecordDiff(record_id=s.name, action="unchanged" if s.name in columns else "create",
                       before={"column": s.name if s.name in columns else None}, after={"column": s.name})
            for s in specs
        )
        report = WriteReport(dry_run=dry_run, diffs=diffs, target=str(out))
        if not dry_run and report.changed:
            self._write_rows(out, columns + [d.record_id for d in diffs if d.action == "create"], rows)
        return report

    def _write_rows(self, out: Path, columns: Sequence[str], rows: Mapping[str, Mapping[str, Any]]) -> None:
        """Write the scores file with the people export's separator (a French export gets a French file)."""
        delimiter = ";"
        person_file = self.file_for("person")
        if person_file is not None and person_file.suffix.lower() in CSV_SUFFIXES:
            delimiter = self._table("person", person_file).delimiter
        write_scores_csv(out, columns, rows, delimiter=delimiter)


def _readable(value: Any, name: str) -> Any:
    """``value``, or ValueError naming the field when the cell could not be read (None)."""
    if value is None:
        raise ValueError(name)
    return value


def _birth_year(cell: Any, decimal: str, dayfirst: bool) -> int:
    """A year of birth from a year (``1961``) or a full date."""
    if isinstance(cell, (datetime, date)):
        return cell.year
    number = parse_number(cell, decimal)
    if number is not None and 1850 <= number <= 2100:
        return int(number)
    return int(_readable(parse_date(cell, dayfirst=dayfirst), "birth_year").year)


def _weekdays(cell: Any) -> tuple[int, ...]:
    """Days of the week (0 = Monday) from names in French or English, or numbers."""
    days = []
    for item in split_list(cell):
        key = fold(item).rstrip(".")
        if key.isdigit() and 0 <= int(key) <= 6:
            days.append(int(key))
        elif key in _WEEKDAYS:
            days.append(_WEEKDAYS[key])
        else:
            raise ValueError("weekdays")
    return tuple(sorted(set(days)))


def hash_text(text: str) -> int:
    """A stable (not salted per process) integer digest of ``text``."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")

