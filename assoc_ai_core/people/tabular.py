"""Reading spreadsheet exports: CSV in any of the usual French/English shapes, and Excel workbooks.

CRM and payment-platform exports opened in French Excel are ``;``-separated,
use ``,`` as decimal mark and ``dd/mm/yyyy`` dates, and come as UTF-8 with a
BOM or as Windows-1252.  :func:`read_table` sniffs all of that and returns the
header and rows as Python values; nothing here knows about people records.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr

__all__ = ["Table", "read_table", "decode_bytes", "sniff_delimiter", "file_digest", "EXCEL_SUFFIXES", "CSV_SUFFIXES"]

EXCEL_SUFFIXES = (".xlsx", ".xlsm")
CSV_SUFFIXES = (".csv", ".txt", ".tsv")


@dataclass
class Table:
    """A read table: column names, rows (lists of cell values) and how the file was written."""

    path: Path
    columns: list[str]
    rows: list[list[Any]]
    delimiter: str = ";"
    encoding: str = "utf-8-sig"
    decimal: str = ","
    sha256: str = ""
    header_row: int = 1
    notes: list[str] = field(default_factory=list)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (the files connector's cursor)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def decode_bytes(data: bytes, encoding: str = "") -> tuple[str, str]:
    """Decode an export: the given encoding, else UTF-8 (with or without BOM), else Windows-1252."""
    if encoding:
        try:
            return data.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as exc:
            raise DataError(
                tr(
                    f"Le fichier ne peut pas être lu avec l'encodage « {encoding} » ({exc}). "
                    "Retirez « encoding » de la configuration pour le détecter automatiquement.",
                    f"The file cannot be read with encoding '{encoding}' ({exc}). "
                    "Remove 'encoding' from the configuration to detect it automatically.",
                )
            ) from None
    try:
        return data.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def sniff_delimiter(text: str) -> str:
    """The separator of a CSV text: the most frequent of ``; , tab |`` on the header line, confirmed by the csv sniffer."""
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=";,\t|").delimiter
    except csv.Error:
        header = text.splitlines()[0] if text else ""
        counts = {d: header.count(d) for d in (";", ",", "\t", "|")}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def read_table(path: str | Path, *, delimiter: str = "", encoding: str = "", decimal: str = "", sheet: str = "") -> Table:
    """Read a CSV or Excel export into a :class:`Table`; clear error when it is neither."""
    p = Path(path)
    if not p.is_file():
        raise DataError(tr(f"Fichier introuvable : {p}.", f"File not found: {p}."))
    suffix = p.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return _read_excel(p, sheet=sheet, decimal=decimal or ",")
    if suffix == ".xls":
        raise DataError(
            tr(
                f"{p.name} est au format Excel 97 (.xls), non pris en charge. "
                "Ouvrez-le dans Excel ou LibreOffice et enregistrez-le en .xlsx ou en CSV.",
                f"{p.name} is an Excel 97 (.xls) file, which is not supported. "
                "Open it in Excel or LibreOffice and save it as .xlsx or CSV.",
            )
        )
    data = p.read_bytes()
    text, used = decode_bytes(data, encoding)
    if not text.strip():
        raise DataError(tr(f"{p.name} est vide.", f"{p.name} is empty."))
    sep = delimiter or ("\t" if suffix == ".tsv" else sniff_delimiter(text))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    rows = [row for row in reader]
    start = next((i for i, row in enumerate(rows) if any(c.strip() for c in row)), None)
    if start is None:
        raise DataError(tr(f"{p.name} est vide.", f"{p.name} is empty."))
    columns = [c.strip() for c in rows[start]]
    body = [row for row in rows[start + 1:] if any(c.strip() for c in row)]
    return Table(
        path=p, columns=columns, rows=body, delimiter=sep, encoding=used,
        decimal=decimal or ("," if sep in (";", "\t") else "."), sha256=hashlib.sha256(data).hexdigest(),
        header_row=start + 1,
    )


def _read_excel(p: Path, *, sheet: str, decimal: str) -> Table:
    try:
        import openpyxl
    except ImportError as exc:  # optional dependency
        raise DataError(
            tr(
                "Lire un fichier Excel demande openpyxl : pip install 'assoc-ai-core[people]'.",
                "Reading an Excel file needs openpyxl: pip install 'assoc-ai-core[people]'.",
            )
        ) from exc
    try:
        book = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException...
        raise DataError(
            tr(
                f"{p.name} n'est pas un classeur Excel lisible ({type(exc).__name__}). Réenregistrez-le en .xlsx ou en CSV.",
                f"{p.name} is not a readable Excel workbook ({type(exc).__name__}). Save it again as .xlsx or CSV.",
            )
        ) from exc
    try:
        if sheet:
            if sheet not in book.sheetnames:
                raise DataError(
                    tr(
                        f"{p.name} n'a pas de feuille « {sheet} ». Feuilles : {', '.join(book.sheetnames)}.",
                        f"{p.name} has no sheet '{sheet}'. Sheets: {', '.join(book.sheetnames)}.",
                    )
                )
            ws = book[sheet]
        else:
            ws = book.worksheets[0]
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
    finally:
        book.close()
    start = next((i for i, row in enumerate(rows) if any(c not in (None, "") for c in row)), None)
    if start is None:
        raise DataError(tr(f"{p.name} est vide.", f"{p.name} is empty."))
    columns = ["" if c is None else str(c).strip() for c in rows[start]]
    body = []
    for row in rows[start + 1:]:
        if not any(c not in (None, "") for c in row):
            continue
        body.append([c.date() if isinstance(c, datetime) and c.time() == datetime.min.time() else c for c in row])
    return Table(path=p, columns=columns, rows=body, delimiter=";", encoding="xlsx", decimal=decimal,
                 sha256=file_digest(p), header_row=start + 1)
