"""Files the people commands write or must never overwrite: JSON and Excel-ready CSV, private (0600)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from assoc_ai_core.files import atomic_write

__all__ = ["write_json", "write_rows", "write_csv", "input_files"]


def write_json(path: str, value: Any) -> None:
    """Write ``value`` as indented UTF-8 JSON, atomically and private (0600): some of these files name people."""
    atomic_write(path, json.dumps(value, ensure_ascii=False, indent=1, default=str))


def write_rows(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]], *, delimiter: str = ";") -> None:
    """Write a CSV that Excel opens as it is (UTF-8 with a BOM), atomically and private (0600): these files name people."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue().encode("utf-8-sig"))


def write_csv(frame: Any, output: str, lang: str) -> None:
    """The scores as a CSV in the reader's convention: ``;`` and a decimal comma in French."""
    french = lang == "fr"
    rows = ([(f"{v:.4f}".replace(".", ",") if french else f"{v:.4f}") if isinstance(v, float) else v for v in row]
            for row in frame.itertuples(index=False))
    write_rows(output, list(frame.columns), rows, delimiter=";" if french else ",")


def input_files(data: str) -> set[Path]:
    """Every export file DATA points at (so no command ever writes over one)."""
    from assoc_ai_core.people.files_connector import FilesConfig, FilesConnector
    from assoc_ai_core.records.people import RECORD_TYPES

    p = Path(data).resolve()
    if p.suffix.lower() == ".toml":
        return {p}
    conn = FilesConnector(FilesConfig(path=str(p)))
    return {p} | {f.resolve() for t in RECORD_TYPES if (f := conn.file_for(t)) is not None}
