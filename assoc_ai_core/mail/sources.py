"""Where mail enters: folders of .eml files, Maildir, mbox, CSV and JSONL.

In every layout the *folder* (or mbox file, or ``label`` column) is the
category, as in a mailbox sorted by hand.  Reading never stops on a bad
message: it is kept as a :class:`~assoc_ai_core.records.mail.Message` with
``error`` set, and listed in ``Dataset.problems`` with its path and reason.
"""

from __future__ import annotations

import csv
import gzip
import json
import mailbox
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.mail.parsing import message_from_text, parse_message
from assoc_ai_core.records.mail import Message

__all__ = ["Dataset", "iter_messages", "load_dataset", "readable_name", "MAIL_SUFFIXES", "SKIP_NAMES", "TEXT_COLUMNS",
           "LABEL_COLUMNS"]

MAIL_SUFFIXES = {"", ".eml", ".msg822", ".txt", ".mail"}
SKIP_NAMES = {"labels.csv", "readme.md", "readme", "readme.txt", "expected.csv", ".ds_store", "thumbs.db"}
TEXT_COLUMNS = ("text", "body", "message", "content", "texte", "corps", "utterance")
RAW_COLUMNS = ("raw", "eml", "rfc822")
LABEL_COLUMNS = ("label", "category", "categorie", "catégorie", "intent", "folder", "dossier")


@dataclass
class Dataset:
    """Messages read from a source, with their labels when the layout gives them."""

    messages: list[Message] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str | None]:
        """Label of each message (None when unknown)."""
        return [m.label for m in self.messages]

    def readable(self) -> list[Message]:
        """Messages that could be read (``error`` is None)."""
        return [m for m in self.messages if m.error is None]

    def labelled(self) -> list[Message]:
        """Readable messages that have a label."""
        return [m for m in self.messages if m.error is None and m.label]


# The letters of the DOS code page (cp437, also cp850 here) that old Windows zip tools wrote into file names; in
# Windows-1252 the same bytes are punctuation, so a name made only of them is read as DOS.
_DOS_LETTERS = range(0x80, 0xA6)


def _decode_name_bytes(raw: bytes) -> tuple[str, str]:
    """One name's bytes as text and the encoding used: UTF-8, else DOS (cp437) or Windows-1252 (see above)."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    high = [b for b in raw if b >= 0x80]
    if all(b in _DOS_LETTERS for b in high) and all(c.isalpha() for c in bytes(high).decode("cp437")):
        return raw.decode("cp437"), "cp437"
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D mean nothing in Windows-1252; every byte does in DOS
        return raw.decode("cp437"), "cp437"


def readable_name(name: str | os.PathLike[str]) -> str:
    """A file name or path as printable text.

    The system hands a name that is not UTF-8 (a zip made on old Windows) back with surrogate escapes, which crash
    as soon as they are printed or saved; each such part is decoded by the rule of ``_decode_name_bytes``.
    """
    text = os.fspath(name)
    if text.isascii() or not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    return os.sep.join(_decode_name_bytes(os.fsencode(part))[0] for part in text.split(os.sep))


def _category_name(folder: Path, decoded: list[str]) -> str:
    """The category a folder stands for; a name that had to be decoded is noted for a single warning."""
    label = readable_name(folder.name)
    if label != folder.name:
        encoding = _decode_name_bytes(os.fsencode(folder.name))[1]
        decoded.append(f"'{label}' ({encoding})")
    return label


def _warn_decoded(decoded: list[str]) -> None:
    if decoded:
        names = ", ".join(decoded)
        warnings.warn(tr(
            f"nom(s) de dossier qui ne sont pas en UTF-8 (archive faite sous un ancien Windows), lus en Windows-1252 "
            f"ou DOS (cp437) : {names} ; vérifiez ces noms de catégorie.",
            f"folder name(s) that are not UTF-8 (an archive made on old Windows), read as Windows-1252 or DOS "
            f"(cp437): {names}; check these category names.",
        ), stacklevel=3)


def _read_file(path: Path, label: str | None) -> Message:
    source = readable_name(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = tr(f"fichier illisible : {exc.strerror}", f"cannot read file: {exc.strerror}")
        return Message(key=f"file:{source}", source=source, label=label, error=reason)
    return parse_message(raw, source=source, label=label)


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def iter_messages(path: str | os.PathLike[str], *, labelled: bool = True) -> Iterator[Message]:
    """Yield every message under ``path``, whatever the layout (see module doc)."""
    p = Path(path)
    if not p.exists():
        raise DataError(tr(f"Chemin introuvable : {p}", f"Path not found: {p}"))
    if p.is_file():
        yield from _iter_file(p, label=None, labelled=labelled)
        return
    decoded: list[str] = []
    if _is_maildir(p):
        yield from _iter_maildir(p, label=None)
        subs = sorted(d for d in p.iterdir() if d.is_dir() and d.name.startswith(".") and _is_maildir(d))
        labels = [_category_name(sub, decoded).lstrip(".").replace(".", "/") for sub in subs]
        _warn_decoded(decoded)
        for sub, label in zip(subs, labels, strict=True):  # Maildir++ sub-folders: ".Adhesion", ".IA.Adhesion"
            yield from _iter_maildir(sub, label=label)
        return
    entries = sorted(p.iterdir())
    files = [e for e in entries if e.is_file() and e.name.lower() not in SKIP_NAMES and not e.name.startswith(".")]
    dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    dir_labels: list[str | None] = [_category_name(d, decoded) if labelled else None for d in dirs]
    _warn_decoded(decoded)
    for f in files:
        yield from _iter_file(f, label=None, labelled=labelled)
    for d, dir_label in zip(dirs, dir_labels, strict=True):
        yield from _iter_tree(d, label=dir_label)


def _iter_tree(root: Path, label: str | None) -> Iterator[Message]:
    if _is_maildir(root):
        yield from _iter_maildir(root, label)
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower() in SKIP_NAMES or name.startswith("."):
                continue
            f = Path(dirpath) / name
            yield from _iter_file(f, label, labelled=label is not None)


def _iter_file(f: Path, label: str | None, *, labelled: bool) -> Iterator[Message]:
    suffix = "".join(f.suffixes[-2:]).lower() if f.name.endswith(".gz") else f.suffix.lower()
    if suffix in (".csv", ".jsonl", ".jsonl.gz", ".json", ".csv.gz"):
        yield from _iter_table(f, label, labelled=labelled)
    elif suffix in (".mbox", ".mbx") or (suffix == "" and _looks_like_mbox(f)):
        mbox_label = label if label is not None else (readable_name(f.stem) if suffix else None)
        yield from _iter_mbox(f, mbox_label)
    elif suffix in MAIL_SUFFIXES or suffix.isdigit() or suffix.startswith(".") and suffix[1:].isalnum():
        yield _read_file(f, label)


def _looks_like_mbox(f: Path) -> bool:
    try:
        with f.open("rb") as fh:
            head = fh.read(5)
            if head != b"From ":
                return False
            fh.seek(0)
            data = fh.read(200_000)
    except OSError:
        return False
    return data.count(b"\nFrom ") >= 1


def _iter_maildir(root: Path, label: str | None) -> Iterator[Message]:
    for sub in ("new", "cur"):
        d = root / sub
        for name in sorted(os.listdir(d)):
            if not name.startswith("."):
                yield _read_file(d / name, label)


def _iter_mbox(f: Path, label: str | None) -> Iterator[Message]:
    box = mailbox.mbox(str(f), create=False)
    name = readable_name(f)
    try:
        for i, key in enumerate(box.iterkeys()):
            source = f"{name}#{i}"
            try:
                raw = box.get_bytes(key)
            except Exception as exc:  # a damaged mbox entry must not hide the others
                yield Message(key=f"mbox:{source}", source=source, label=label, error=tr(f"entrée mbox illisible : {exc}", f"unreadable mbox entry: {exc}"))
                continue
            yield parse_message(raw, source=source, label=label)
    finally:
        box.close()


def _pick(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {c.lower().strip(): c for c in columns}
    for w in wanted:
        if w in lower:
            return lower[w]
    return None


def _check_label_column(columns: list[str], f: Path, label: str | None, labelled: bool) -> None:
    """Categories are wanted but neither a column nor the folder gives them: say which names are read."""
    if not labelled or label is not None or _pick(columns, LABEL_COLUMNS) is not None:
        return
    if _pick(columns, (*TEXT_COLUMNS, *RAW_COLUMNS)) is None:
        return  # not a mail export at all: the first row says which text column is missing
    found = ", ".join(str(c) for c in columns) or "-"
    accepted = ", ".join(LABEL_COLUMNS)
    name = readable_name(f)
    raise DataError(tr(
        f"{name} : aucune colonne de catégorie reconnue (colonnes du fichier : {found}). Noms acceptés : {accepted}. "
        "Renommez la colonne qui donne la catégorie de chaque message.",
        f"{name}: no category column found (the file's columns: {found}). Accepted names: {accepted}. "
        "Rename the column that gives each message's category.",
    ))


def _iter_table(f: Path, label: str | None, *, labelled: bool) -> Iterator[Message]:
    """Rows of a CSV or JSON Lines export; ``label`` (the folder holding the file) when no column gives one."""
    opener = gzip.open if f.name.endswith(".gz") else open
    if ".jsonl" in f.name or f.suffix == ".json":
        with opener(f, "rt", encoding="utf-8", errors="replace") as fh:
            checked = False
            for i, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    reason = tr(f"ligne JSON invalide : {exc.msg}", f"invalid JSON line: {exc.msg}")
                    yield Message(key=f"row:{f}:{i}", source=f"{readable_name(f)}:{i}", label=label, error=reason)
                    continue
                if not checked and isinstance(row, dict):
                    _check_label_column(list(row), f, label, labelled)
                    checked = True
                yield _row_message(row, f, i, label)
        return
    with opener(f, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(fh, dialect=dialect)
        _check_label_column(list(reader.fieldnames or []), f, label, labelled)
        for i, row in enumerate(reader, 2):
            yield _row_message(row, f, i, label)


def _row_message(row: dict[str, Any], f: Path, i: int, folder_label: str | None = None) -> Message:
    columns = list(row)
    raw_col = _pick(columns, RAW_COLUMNS)
    text_col = _pick(columns, TEXT_COLUMNS)
    label_col = _pick(columns, LABEL_COLUMNS)
    subject_col = _pick(columns, ("subject", "objet", "sujet", "header"))
    label = str(row[label_col]).strip() if label_col and row.get(label_col) not in (None, "") else folder_label
    source = f"{readable_name(f)}:{i}"
    if raw_col and row.get(raw_col):
        return parse_message(str(row[raw_col]).encode("utf-8", "surrogateescape"), source=source, label=label)
    if not text_col:
        raise DataError(tr(
            f"{readable_name(f)} : aucune colonne de texte trouvée (attendu l'une de : {', '.join(TEXT_COLUMNS)}, "
            "ou 'raw').",
            f"{readable_name(f)}: no text column found (expected one of: {', '.join(TEXT_COLUMNS)}, or 'raw').",
        ))
    text = str(row.get(text_col) or "")
    subject = str(row.get(subject_col) or "") if subject_col else ""
    msg = message_from_text(text, subject=subject, label=label)
    from dataclasses import replace

    if not text.strip() and not subject.strip():
        return replace(msg, key=f"row:{f}:{i}", source=source, error=tr("texte vide", "empty text"))
    return replace(msg, source=source)


def load_dataset(path: str | os.PathLike[str], *, labelled: bool = True, progress: bool = False) -> Dataset:
    """Read every message under ``path``; problems are collected, never raised."""
    ds = Dataset()
    it = iter_messages(path, labelled=labelled)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=tr("Lecture", "Reading"), unit=" msg", leave=False)
    for msg in it:
        ds.messages.append(msg)
        if msg.error:
            ds.problems.append((msg.source or msg.key, msg.error))
    return ds
