"""Folders of the ``local`` connector on disk: Maildir folders, folders of ``.eml`` files, mbox files.

A read-only *mail tree* is any directory: each sub-directory holding ``.eml``
files (or being a Maildir) is a folder named by its relative path, each
``.mbox`` file is a folder named after the file without its suffix, and loose
files at the top are the ``INBOX``.  A message's ``uid`` is its Maildir unique
name, its ``.eml`` file name, or ``mbox:<n>`` for the n-th message of an mbox.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assoc_ai_core.default_plugins.local_maildir import INBOX, find_message, is_maildir, list_messages
from assoc_ai_core.mail.sources import MAIL_SUFFIXES, SKIP_NAMES

MBOX_SUFFIXES = (".mbox", ".mbx")


@dataclass(frozen=True)
class Folder:
    """One folder on disk: its host name, where it is, and its ``kind`` (``maildir``, ``emldir`` or ``mbox``)."""

    name: str
    path: Path
    kind: str


def is_mail_file(entry: os.DirEntry[str] | Path) -> bool:
    """True for a file that holds one message (``.eml``, ``.msg``…, or a number as MH folders name them)."""
    name = entry.name
    if name.startswith(".") or name.lower() in SKIP_NAMES:
        return False
    suffix = os.path.splitext(name)[1].lower()
    return suffix in MAIL_SUFFIXES or suffix[1:].isdigit()


def _is_message_file(entry: os.DirEntry[str] | Path) -> bool:
    return is_mail_file(entry) and not entry.name.lower().endswith(MBOX_SUFFIXES)


def tree_folders(root: Path) -> dict[str, Folder]:
    """Every folder of the read-only mail tree at ``root`` (a single mbox file is the ``INBOX``)."""
    if root.is_file():
        return {INBOX: Folder(INBOX, root, "mbox")}
    found: dict[str, Folder] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel = here.relative_to(root).as_posix()
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if here != root and is_maildir(here):
            found[rel] = Folder(rel, here, "maildir")
            dirnames[:] = []
            continue
        for fname in sorted(filenames):
            if fname.lower().endswith(MBOX_SUFFIXES):
                name = (Path(rel) / fname).as_posix() if rel != "." else fname
                name = name.rsplit(".", 1)[0]
                found[name] = Folder(name, here / fname, "mbox")
        if any(_is_message_file(here / f) for f in filenames):
            name = INBOX if here == root else rel
            found[name] = Folder(name, here, "emldir")
    return found


def list_entries(folder: Folder) -> list[tuple[str, Path]]:
    """(uid, path) of every message of ``folder``, oldest delivery first (an mbox: its own path each time)."""
    if folder.kind == "maildir":
        return list_messages(folder.path)
    if folder.kind == "emldir":
        with os.scandir(folder.path) as it:
            files = sorted(e.name for e in it if e.is_file() and _is_message_file(e))
        return [(name, folder.path / name) for name in files]
    box = mailbox.mbox(str(folder.path), create=False)
    try:
        return [(f"mbox:{i}", folder.path) for i, _ in enumerate(box.iterkeys())]
    finally:
        box.close()


def read_mbox(folder: Folder) -> Iterator[tuple[str, bytes]]:
    """(uid, raw bytes) of every message of the mbox ``folder``."""
    box = mailbox.mbox(str(folder.path), create=False)
    try:
        for i, key in enumerate(box.iterkeys()):
            yield f"mbox:{i}", box.get_bytes(key)
    finally:
        box.close()


def read_message(folder: Folder, uid: str, path: Path) -> bytes:
    """Raw bytes of message ``uid`` found at ``path`` in ``folder``."""
    if folder.kind == "mbox":
        box = mailbox.mbox(str(folder.path), create=False)
        try:
            keys = list(box.iterkeys())
            return box.get_bytes(keys[int(uid.split(":", 1)[1])])
        finally:
            box.close()
    return path.read_bytes()


def find_entry(folder: Folder, uid: str) -> Path | None:
    """Current path of message ``uid`` in ``folder``, or None when it is gone."""
    if folder.kind == "maildir":
        return find_message(folder.path, uid)
    if folder.kind == "emldir":
        p = folder.path / uid
        return p if p.is_file() else None
    return folder.path if any(u == uid for u, _ in list_entries(folder)) else None


def change_marks(folder: Folder) -> list[int]:
    """Modification times of what changes when mail arrives in or leaves ``folder`` (-1: missing)."""
    paths = [folder.path / "new", folder.path / "cur"] if folder.kind == "maildir" else [folder.path]
    out = []
    for p in paths:
        try:
            out.append(p.stat().st_mtime_ns)
        except FileNotFoundError:
            out.append(-1)
    return out
