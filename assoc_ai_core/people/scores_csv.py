"""The scores file of the files connector: one CSV keyed by ``person_id``, written beside the exports, never over one.

Scores are personal data: the file is replaced atomically (readers never see a
half-written file), mode 0600, in a folder created 0700.  Numbers are written
the way the exports were (a decimal comma when their separator is ``;`` or a
tab) and read back either way, so an unchanged score compares equal.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.files import atomic_write, private_dir
from assoc_ai_core.i18n import tr
from assoc_ai_core.people.cleaning import parse_number
from assoc_ai_core.people.tabular import decode_bytes, sniff_delimiter

__all__ = ["read_scores_csv", "write_scores_csv"]

PERSON_ID = "person_id"


def read_scores_csv(path: Path) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The columns of the scores file and its rows by person id (both empty when the file is absent or empty)."""
    if not path.exists():
        return [], {}
    text, _ = decode_bytes(path.read_bytes())
    if not text.strip():
        return [], {}
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    columns = list(reader.fieldnames or [])
    if PERSON_ID not in columns:
        raise DataError(
            tr(
                f"{path} existe mais n'est pas un fichier de scores assoc-ai (pas de colonne person_id). "
                "Déplacez-le ou choisissez un autre [crm] output.",
                f"{path} exists but is not an assoc-ai scores file (no person_id column). "
                "Move it or choose another [crm] output.",
            )
        )
    rows = {}
    for row in reader:
        rows[row.get(PERSON_ID) or ""] = {k: _read_value(k, v) for k, v in row.items() if k != PERSON_ID}
    return columns, rows


def write_scores_csv(path: Path, columns: Sequence[str], rows: Mapping[str, Mapping[str, Any]], *,
                     delimiter: str = ";") -> None:
    """Replace the scores file with ``rows`` under ``columns`` (``person_id`` first), sorted by person id."""
    names = [PERSON_ID] + [c for c in columns if c != PERSON_ID]
    french = delimiter in (";", "\t")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(names)
    for pid in sorted(rows):
        writer.writerow([pid] + [_format(rows[pid].get(n), french) for n in names[1:]])
    private_dir(path.parent)
    # The BOM lets Excel open the file as UTF-8, as the exports it came from.
    atomic_write(path, buffer.getvalue().encode("utf-8-sig"), mode=0o600)


def _format(value: Any, french: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return text.replace(".", ",") if french else text
    return str(value)


def _read_value(column: str, value: Any) -> Any:
    if value in (None, ""):
        return None
    if column.endswith(("_why", "_model")):
        return value
    number = parse_number(value, ",")
    return number if number is not None else value
