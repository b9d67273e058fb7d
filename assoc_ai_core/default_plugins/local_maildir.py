"""Maildir on disk, as Dovecot and Courier keep it: file names, flags, keyword tables, new files.

A message is one file in ``cur/`` or ``new/``; its name is a unique part (the
connector's ``uid``) then ``:2,`` and its flags.  Lower-case flags are Dovecot
*keywords*, mapped to label texts by the folder's ``dovecot-keywords`` file.
New files are written completely in ``tmp/`` and only then renamed into place,
so a reader never sees half a message.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path

from assoc_ai_core.errors import ConnectorError
from assoc_ai_core.files import atomic_write, fsync_dir, private_dir
from assoc_ai_core.i18n import tr

CONNECTOR_ID = "local"
INBOX = "INBOX"
KEYWORDS_FILE = "dovecot-keywords"
MAX_KEYWORDS = 26  # one lower-case letter per keyword in a file name
SUBDIRS = ("tmp", "new", "cur")
_sequence = itertools.count(1)


def is_maildir(path: Path) -> bool:
    """True when ``path`` holds ``cur/`` and ``new/``."""
    return (path / "cur").is_dir() and (path / "new").is_dir()


def make_maildir(path: Path) -> None:
    """Create ``path`` with ``tmp/``, ``new/`` and ``cur/`` (mode 0700: mail is personal data)."""
    private_dir(path)
    for sub in SUBDIRS:
        private_dir(path / sub)


def split_info(name: str) -> tuple[str, str]:
    """Maildir file name -> (unique part, flags)."""
    uid, sep, info = name.partition(":")
    flags = info[2:] if sep and info.startswith("2,") else ""
    return uid, flags


def unique_name() -> str:
    """A new unique file name, in the form Maildir readers expect (time, microseconds, pid, counter, host)."""
    now = time.time()
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    return f"{int(now)}.M{int((now % 1) * 1e6)}P{os.getpid()}Q{next(_sequence)}.{host}"


def find_message(folder: Path, uid: str) -> Path | None:
    """Current path of message ``uid`` in the Maildir ``folder`` (its flags may have changed)."""
    for sub in ("cur", "new"):
        directory = folder / sub
        exact = directory / uid
        if exact.exists():
            return exact
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    if entry.name.startswith(uid + ":"):
                        return Path(entry.path)
        except FileNotFoundError:
            continue
    return None


def list_messages(folder: Path) -> list[tuple[str, Path]]:
    """(uid, path) of every message of the Maildir ``folder``, oldest delivery first."""
    out = []
    for sub in ("new", "cur"):
        try:
            with os.scandir(folder / sub) as it:
                for entry in it:
                    if not entry.name.startswith(".") and entry.is_file():
                        out.append((split_info(entry.name)[0], Path(entry.path)))
        except FileNotFoundError:
            continue
    return sorted(out, key=lambda t: t[0])


def write_message(folder: Path, sub: str, name: str, data: bytes, *, mode: int = 0o600) -> Path:
    """Write ``data`` completely in ``tmp/``, then rename it to ``sub/name`` (``new`` or ``cur``); durable.

    The temporary name is ``name`` plus a unique part, so two writers never
    share one; a crash leaves at most a file in ``tmp/``, which Maildir
    readers ignore.
    """
    staged = atomic_write(folder / "tmp" / f"{name.partition(':')[0]}.{unique_name()}", data, mode=mode)
    dest = folder / sub / name
    os.rename(staged, dest)
    fsync_dir(dest.parent)
    return dest


def read_keywords(folder: Path) -> list[str]:
    """The folder's keyword table: label text by letter index (``""`` for unused letters)."""
    try:
        lines = (folder / KEYWORDS_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    table: dict[int, str] = {}
    for line in lines:
        idx, _, name = line.partition(" ")
        if idx.isdigit() and name:
            table[int(idx)] = name
    return [table.get(i, "") for i in range(max(table) + 1)] if table else []


def write_keywords(folder: Path, names: list[str]) -> None:
    """Replace the folder's keyword table with ``names`` (index = letter)."""
    atomic_write(folder / KEYWORDS_FILE, "".join(f"{i} {n}\n" for i, n in enumerate(names) if n))


def keyword_letter(folder: Path, label: str, *, shown_as: str) -> str:
    """The flag letter of ``label`` in the Maildir ``folder`` (named ``shown_as`` in messages), added if new."""
    names = read_keywords(folder)
    if label in names:
        return chr(ord("a") + names.index(label))
    if len(names) >= MAX_KEYWORDS:
        raise ConnectorError(tr(
            f"Le dossier « {shown_as} » a déjà {MAX_KEYWORDS} étiquettes (limite du format Maildir).",
            f"Folder '{shown_as}' already has {MAX_KEYWORDS} labels (Maildir format limit).",
        ), connector_id=CONNECTOR_ID)
    if "\n" in label or not label.strip():
        raise ConnectorError(tr(f"Étiquette invalide : {label!r}", f"Invalid label: {label!r}"),
                             connector_id=CONNECTOR_ID)
    names.append(label)
    write_keywords(folder, names)
    return chr(ord("a") + len(names) - 1)


def remap_keywords(flags: str, source: Path, target: Path, *, shown_as: str) -> str:
    """``flags`` of a message moving from ``source`` to ``target``: keyword letters follow the label texts."""
    letters = [c for c in flags if "a" <= c <= "z"]
    if not letters or source == target:
        return flags
    names = read_keywords(source)
    out = [c for c in flags if not "a" <= c <= "z"]
    for c in letters:
        i = ord(c) - ord("a")
        if i < len(names) and names[i]:
            out.append(keyword_letter(target, names[i], shown_as=shown_as))
    return "".join(sorted(set(out)))
