"""The ``local`` connector: mail on this computer, no server and no credentials.

Two layouts, chosen from what ``path`` holds when the connector opens:

**Maildir (read-write).**  ``path`` is a Maildir (``cur/``, ``new/``, ``tmp/``),
or does not exist yet and ``create = true``.  It is the ``INBOX``; other
folders are *Maildir++* sub-folders, as Dovecot and Courier store them:
``IA/Adhésion`` lives in ``path/.IA.Adhésion/`` (``/`` in a folder name
becomes ``.`` on disk, so a folder name cannot itself contain a dot).  Every
action is supported:

* ``move`` renames the file into the target folder's ``cur/`` (atomic on one
  file system; the file's unique name, hence its ``uid``, is kept);
* ``add_label`` stores a *keyword* the Dovecot way: a lower-case letter in the
  file name's flags (``…:2,Sa``) mapped to the label's text by the folder's
  ``dovecot-keywords`` file (at most 26 labels per folder);
* ``tag_subject`` writes a rewritten copy (``<uid>.t<digest>``, same file
  mode as the original) to ``tmp/``, flushes it to disk, renames it into
  ``cur/`` and only then removes the original; the copy's name is derived
  from the original's so a run killed between the two steps finishes the job
  instead of writing a second copy;
* ``wait_for_changes`` polls the folders' directories (``Capability.WATCH``).

**Mail tree (read-only).**  Any other directory: each sub-directory holding
``.eml`` files (or being a Maildir) is a folder named by its relative path
(``Adhesion``, ``2024/Presse``), each ``.mbox`` file is a folder named after the
file without its suffix, and loose files at the top are the ``INBOX``.  A
single mbox file as ``path`` is the ``INBOX``.  This is how volunteers export
mail they sorted by hand, so it serves ``train --from-mailbox`` and trials;
actions raise :class:`~assoc_ai_core.errors.CapabilityError`.

**Cursor.**  ``fetch_new`` remembers the ``uid`` of every message it already
handed over that is still in the folder (``{"v": 1, "id": …, "seen": [...]}``):
mail delivered with an old date or put back by hand is still seen as new,
and the list stays as small as the folder, since triaged mail leaves it.
``id`` identifies the folder's directory; when it changes (folder recreated)
the connector replays the folder and flags the page ``resync``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assoc_ai_core.default_plugins.local_folders import (
    Folder,
    change_marks,
    find_entry,
    list_entries,
    read_mbox,
    read_message,
    tree_folders,
)
from assoc_ai_core.default_plugins.local_maildir import (
    INBOX,
    KEYWORDS_FILE,
    find_message,
    is_maildir,
    keyword_letter,
    make_maildir,
    read_keywords,
    remap_keywords,
    split_info,
    unique_name,
    write_message,
)
from assoc_ai_core.errors import CapabilityError, ConfigError, ConnectorError
from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef, Page
from assoc_ai_core.ext.subject import is_tagged, message_key, with_tag, without_tag_bytes
from assoc_ai_core.files import fsync_dir, private_dir
from assoc_ai_core.i18n import tr

__all__ = ["INBOX", "KEYWORDS_FILE", "LocalMailConfig", "LocalMailConnector"]

log = logging.getLogger(__name__)

_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class LocalMailConfig:
    """Settings of the ``local`` connector.

    ``path``: a Maildir (read-write) or a directory of ``.eml``/mbox files (read-only).
    ``create``: create ``path`` as an empty Maildir when it does not exist.
    ``poll_interval``: seconds between two looks at the folders while waiting for mail.
    """

    path: str
    create: bool = False
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise ValueError(tr("« path » doit être un chemin de dossier.", "'path' must be a folder path."))
        if not isinstance(self.create, bool):
            raise ValueError(tr("« create » doit valoir true ou false.", "'create' must be true or false."))
        if not isinstance(self.poll_interval, (int, float)) or self.poll_interval <= 0:
            raise ValueError(tr("« poll_interval » doit être un nombre de secondes positif.",
                                "'poll_interval' must be a positive number of seconds."))


class LocalMailConnector(MailboxConnector):
    """A mailbox on local disk: Maildir (read-write) or a tree of .eml/mbox files (read-only)."""

    id = "local"
    Config = LocalMailConfig
    capabilities = frozenset({
        Capability.READ, Capability.MOVE, Capability.LABEL, Capability.TAG_SUBJECT,
        Capability.CREATE_FOLDER, Capability.WATCH,
    })
    description = "Maildir, .eml folders or mbox files on this computer (no credentials)"

    def __init__(self, config: LocalMailConfig) -> None:
        self.config = config
        self._mode: str | None = None
        self._root: Path | None = None

    # ------------------------------------------------------------------ life cycle
    def open(self) -> None:
        """Look at ``path`` and choose the layout; create an empty Maildir when asked."""
        root = Path(self.config.path).expanduser()
        if not root.exists():
            if not self.config.create:
                raise ConfigError(tr(
                    f"Dossier de courrier introuvable : {root}. Vérifiez [mailbox] path, "
                    "ou mettez create = true pour créer une boîte Maildir vide.",
                    f"Mail folder not found: {root}. Check [mailbox] path, "
                    "or set create = true to create an empty Maildir.",
                ))
            make_maildir(root)
        if root.is_file():
            self._mode = "mbox"
        elif is_maildir(root):
            self._mode = "maildir"
            private_dir(root / "tmp")
        else:
            self._mode = "tree"
        self._root = root

    def close(self) -> None:
        """Forget the opened state; safe to call twice."""
        self._mode = None
        self._root = None

    def _ensure_open(self) -> Path:
        if self._root is None:
            self.open()
        assert self._root is not None
        return self._root

    def require(self, capability: Capability) -> None:
        """Raise CapabilityError for actions on a read-only mail tree."""
        super().require(capability)
        self._ensure_open()
        if capability is not Capability.READ and self._mode != "maildir":
            raise CapabilityError(tr(
                f"{self._root} n'est pas une boîte Maildir : le connecteur « local » ne peut que la lire. "
                "Pour trier, pointez [mailbox] path vers un Maildir (dossiers cur/, new/, tmp/).",
                f"{self._root} is not a Maildir: the 'local' connector can only read it. "
                "To triage, point [mailbox] path to a Maildir (cur/, new/, tmp/ folders).",
            ), connector_id=self.id)

    # --------------------------------------------------------------------- folders
    def _maildir_path(self, name: str) -> Path:
        root = self._ensure_open()
        if name.upper() == INBOX:
            return root
        parts = name.split("/")
        for part in parts:
            if not part or part in (".", "..") or "." in part or any(ord(c) < 32 for c in part):
                raise ConnectorError(tr(
                    f"Nom de dossier impossible dans un Maildir : « {name} » (pas de point, pas de partie vide).",
                    f"Folder name not possible in a Maildir: '{name}' (no dot, no empty part).",
                ), connector_id=self.id)
        return root / ("." + ".".join(parts))

    def _folder(self, name: str) -> Folder:
        root = self._ensure_open()
        if self._mode == "maildir":
            path = self._maildir_path(name)
            if is_maildir(path):
                return Folder(INBOX if name.upper() == INBOX else name, path, "maildir")
        else:
            folders = tree_folders(root)
            if name in folders:
                return folders[name]
            if name.upper() == INBOX and INBOX in folders:
                return folders[INBOX]
        raise ConnectorError(tr(
            f"Dossier « {name} » introuvable dans {self._root}. Dossiers présents : "
            f"{', '.join(self.list_folders()) or '-'}.",
            f"Folder '{name}' not found in {self._root}. Existing folders: {', '.join(self.list_folders()) or '-'}.",
        ), connector_id=self.id)

    def list_folders(self) -> list[str]:
        """``INBOX`` and every sub-folder, ``/``-separated."""
        root = self._ensure_open()
        if self._mode != "maildir":
            return sorted(tree_folders(root))
        names = []
        for entry in os.scandir(root):
            if entry.is_dir() and entry.name.startswith(".") and len(entry.name) > 1 and is_maildir(Path(entry.path)):
                names.append(entry.name[1:].replace(".", "/"))
        return [INBOX] + sorted(names)

    def ensure_folder(self, name: str) -> None:
        """Create ``name`` and its parents as Maildir++ folders; nothing if they exist."""
        self.require(Capability.CREATE_FOLDER)
        if name.upper() == INBOX:
            return
        parts = name.split("/")
        created = False
        for i in range(1, len(parts) + 1):
            path = self._maildir_path("/".join(parts[:i]))
            if is_maildir(path):
                continue
            make_maildir(path)
            (path / "maildirfolder").touch()
            created = True
        if created:
            fsync_dir(self._ensure_open())

    # ----------------------------------------------------------------------- reading
    def fetch_new(self, folder: str, cursor: Mapping[str, Any] | None, *, page_size: int = 100) -> Iterator[Page]:
        """Yield pages of messages not handed over before (see the module doc for the cursor)."""
        f = self._folder(folder)
        st = f.path.stat()
        ident = f"{st.st_dev}:{st.st_ino}"
        resync = False
        seen: set[str] = set()
        if cursor:
            if cursor.get("v") == 1 and cursor.get("id") == ident:
                seen = set(cursor.get("seen", ()))
            else:
                resync = True
                log.info(tr(f"Dossier {f.name} recréé ou curseur d'un autre format : relecture complète.",
                            f"Folder {f.name} recreated or cursor of another format: replaying it."))
        entries = list_entries(f)
        seen &= {uid for uid, _ in entries}
        todo = [(uid, p) for uid, p in entries if uid not in seen]
        size = max(1, int(page_size))
        mbox = dict(read_mbox(f)) if f.kind == "mbox" and todo else {}
        for start in range(0, len(todo), size):
            mails = []
            for uid, path in todo[start:start + size]:
                seen.add(uid)
                raw = mbox[uid] if f.kind == "mbox" else self._read_moving(f, uid, path)
                if raw is not None:
                    mails.append(FetchedMail(MailRef(f.name, uid, message_key(raw)), raw))
            yield Page(mails, {"v": 1, "id": ident, "seen": sorted(seen)}, resync=resync)

    def cursor_at_now(self, folder: str) -> Mapping[str, Any] | None:
        """A cursor that counts every message now in ``folder`` as seen (no file is read)."""
        f = self._folder(folder)
        st = f.path.stat()
        return {"v": 1, "id": f"{st.st_dev}:{st.st_ino}", "seen": sorted(uid for uid, _ in list_entries(f))}

    def _read_moving(self, f: Folder, uid: str, path: Path) -> bytes | None:
        """The bytes at ``path``; when a flag change renamed the file since the listing, where it is now."""
        try:
            return path.read_bytes()
        except FileNotFoundError:
            moved = find_entry(f, uid)
            return None if moved is None else moved.read_bytes()

    def fetch_all(self, folder: str) -> Iterator[FetchedMail]:
        """Yield every message of ``folder``."""
        f = self._folder(folder)
        if f.kind == "mbox":
            for uid, raw in read_mbox(f):
                yield FetchedMail(MailRef(f.name, uid, message_key(raw)), raw)
            return
        for uid, path in list_entries(f):
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            yield FetchedMail(MailRef(f.name, uid, message_key(raw)), raw)

    # ------------------------------------------------------------------------ locate
    def locate(self, refs: Sequence[MailRef]) -> dict[str, list[MailRef]]:
        """Where each message is now: same uid in the same folder first, then by uid, then by key anywhere.

        Each folder is listed once per call, so locating thousands of messages stays linear.
        """
        result: dict[str, list[MailRef]] = {ref.key: [] for ref in refs}
        pending = self._locate_in_place(refs, result)
        if not pending:
            return result
        listing: list[tuple[Folder, str, Path]] = []
        for name in self.list_folders():
            f = self._folder(name)
            listing.extend((f, uid, p) for uid, p in list_entries(f))
        unresolved = self._locate_by_uid(pending, listing, result)
        if unresolved:
            wanted = {ref.key for ref in unresolved}
            for f, uid, p in listing:
                key = self._key_of(f, uid, p)
                if key in wanted:
                    result[key].append(MailRef(f.name, uid, key))
        return result

    def _locate_in_place(self, refs: Sequence[MailRef], result: dict[str, list[MailRef]]) -> list[MailRef]:
        """Fill ``result`` for refs still at their uid in their folder; return the others."""
        listings: dict[str, dict[str, Path]] = {}
        pending: list[MailRef] = []
        for ref in refs:
            try:
                f = self._folder(ref.folder)
            except ConnectorError:
                pending.append(ref)
                continue
            if f.name not in listings:
                listings[f.name] = dict(list_entries(f))
            if ref.uid in listings[f.name]:
                result[ref.key] = [MailRef(f.name, ref.uid, ref.key)]
            else:
                pending.append(ref)
        return pending

    def _locate_by_uid(self, pending: Sequence[MailRef], listing: Sequence[tuple[Folder, str, Path]],
                       result: dict[str, list[MailRef]]) -> list[MailRef]:
        """Fill ``result`` for refs whose uid (or tagged copy's uid) is in another folder; return the others."""
        by_uid: dict[str, list[tuple[Folder, str, Path]]] = {}
        for item in listing:
            by_uid.setdefault(item[1], []).append(item)
            base, sep, _ = item[1].rpartition(".t")  # a subject tag derives <uid>.t<digest> from the uid
            if sep:
                by_uid.setdefault(base, []).append(item)
        unresolved = []
        for ref in pending:
            hits = [(f, uid) for f, uid, p in by_uid.get(ref.uid, []) if self._key_of(f, uid, p) == ref.key]
            if hits:
                result[ref.key] = [MailRef(f.name, uid, ref.key) for f, uid in hits]
            else:
                unresolved.append(ref)
        return unresolved

    def _key_of(self, f: Folder, uid: str, path: Path) -> str | None:
        try:
            if f.kind == "mbox":
                return message_key(read_message(f, uid, path))
            with path.open("rb") as fh:
                head = fh.read(_HEAD_BYTES)
                key = message_key(head)
                if key.startswith("sha256:"):  # digest keys need the whole message
                    key = message_key(head + fh.read())
            return key
        except OSError:
            return None

    # ----------------------------------------------------------------------- actions
    def _locate_file(self, ref: MailRef) -> tuple[Folder, Path | None]:
        f = self._folder(ref.folder)
        return f, find_entry(f, ref.uid)

    def _not_found(self, ref: MailRef) -> ConnectorError:
        return ConnectorError(tr(
            f"Message {ref.key} introuvable dans « {ref.folder} » (déplacé ou supprimé entre-temps).",
            f"Message {ref.key} not found in '{ref.folder}' (moved or deleted meanwhile).",
        ), connector_id=self.id)

    def labels(self, ref: MailRef) -> list[str]:
        """Labels (keywords) of a message, in the order of the folder's keyword table."""
        self._ensure_open()
        f, path = self._locate_file(ref)
        if path is None or f.kind != "maildir":
            return []
        names = read_keywords(f.path)
        flags = split_info(path.name)[1]
        return [names[ord(c) - ord("a")] for c in sorted(flags) if "a" <= c <= "z" and ord(c) - ord("a") < len(names)]

    def move(self, ref: MailRef, folder: str) -> MailRef:
        """Rename the message into ``folder``; when it is already there, return where it is."""
        self.require(Capability.MOVE)
        target = self._folder(folder)
        source, path = self._locate_file(ref)
        if source.path == target.path:
            if path is None:
                raise self._not_found(ref)
            return MailRef(target.name, ref.uid, ref.key)
        if path is None:
            if find_entry(target, ref.uid) is not None:
                return MailRef(target.name, ref.uid, ref.key)  # a previous (killed) run already moved it
            raise self._not_found(ref)
        flags = remap_keywords(split_info(path.name)[1], source.path, target.path, shown_as=target.name)
        dest = target.path / "cur" / f"{ref.uid}:2,{flags}"
        try:
            os.rename(path, dest)
        except OSError as exc:
            raise ConnectorError(tr(f"Déplacement impossible : {exc.strerror}", f"Cannot move: {exc.strerror}"),
                                 connector_id=self.id) from exc
        fsync_dir(dest.parent)
        fsync_dir(path.parent)
        return MailRef(target.name, ref.uid, ref.key)

    def add_label(self, ref: MailRef, label: str) -> None:
        """Add ``label`` as a Maildir keyword flag; nothing if the message already has it."""
        self.require(Capability.LABEL)
        f, _ = self._locate_file(ref)
        letter = keyword_letter(f.path, label, shown_as=f.name)
        self._set_flags(ref, lambda flags: "".join(sorted(set(flags + letter))))

    def remove_label(self, ref: MailRef, label: str) -> None:
        """Take the keyword flag of ``label`` off the message; nothing if it does not have it."""
        self.require(Capability.LABEL)
        f, _ = self._locate_file(ref)
        names = read_keywords(f.path)
        if label in names:
            letter = chr(ord("a") + names.index(label))
            self._set_flags(ref, lambda flags: flags.replace(letter, ""))

    def _set_flags(self, ref: MailRef, change: Callable[[str], str]) -> None:
        """Rename the message's file to carry ``change(flags)`` (Maildir flags live in the name); no-op if equal."""
        f, path = self._locate_file(ref)
        if path is None:
            raise self._not_found(ref)
        flags = split_info(path.name)[1]
        wanted = change(flags)
        if wanted == flags:
            return
        dest = f.path / "cur" / f"{ref.uid}:2,{wanted}"
        os.rename(path, dest)
        fsync_dir(dest.parent)
        if path.parent != dest.parent:
            fsync_dir(path.parent)

    def tag_subject(self, ref: MailRef, tag: str) -> MailRef:
        """Write a copy whose subject starts with ``tag`` (same file mode), flush it, then remove the original."""
        self.require(Capability.TAG_SUBJECT)
        return self._rewrite(ref, f"t{hashlib.sha1(tag.encode('utf-8')).hexdigest()[:8]}",
                             lambda raw: raw if is_tagged(raw, tag) else with_tag(raw, tag))

    def untag_subject(self, ref: MailRef, tag: str) -> MailRef:
        """Rewrite the message without ``tag`` in its subject (a new file flushed first, then the old one removed)."""
        self.require(Capability.TAG_SUBJECT)
        return self._rewrite(ref, f"u{hashlib.sha1(tag.encode('utf-8')).hexdigest()[:8]}",
                             lambda raw: without_tag_bytes(raw, tag))

    def _rewrite(self, ref: MailRef, suffix: str, rewrite: Callable[[bytes], bytes]) -> MailRef:
        """Replace the message by ``rewrite`` of it under the uid ``<uid>.<suffix>``: the copy is flushed before the
        original goes, and a copy left by a killed run is found again.  When ``rewrite`` returns the very bytes it
        was given, nothing is done."""
        f, path = self._locate_file(ref)
        new_uid = f"{ref.uid}.{suffix}"
        existing = find_message(f.path, new_uid)
        if path is None:
            if existing is not None:
                return MailRef(f.name, new_uid, ref.key)  # done by a previous run
            raise self._not_found(ref)
        if existing is None:
            raw = path.read_bytes()
            new = rewrite(raw)
            if new is raw:
                return ref
            mode = stat.S_IMODE(path.stat().st_mode)
            write_message(f.path, "cur", f"{new_uid}:2,{split_info(path.name)[1]}", new, mode=mode)
        # the new copy is on disk: only now may the original go
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return MailRef(f.name, new_uid, ref.key)

    # ------------------------------------------------------------------------ watch
    def _snapshot(self, folders: Sequence[str]) -> list[int]:
        out = []
        for name in folders:
            try:
                out += change_marks(self._folder(name))
            except ConnectorError:
                out.append(-1)
        return out

    def wait_for_changes(self, folders: Sequence[str], timeout: float) -> bool:
        """Block until a message arrives in or leaves one of ``folders``, or ``timeout`` seconds pass.

        Returns True when something changed (the caller then fetches), False on time-out.
        """
        self._ensure_open()
        before = self._snapshot(folders)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self.config.poll_interval, remaining))
            if self._snapshot(folders) != before:
                return True

    # --------------------------------------------------------------------- delivery
    def deliver(self, raw: bytes, folder: str = INBOX) -> MailRef:
        """Put a new message into ``folder`` as a mail server would (``tmp/`` then ``new/``, mode 0600).

        Used by tests, demos and scripts that feed a local Maildir.
        """
        self.require(Capability.MOVE)
        f = self._folder(folder)
        uid = unique_name()
        write_message(f.path, "new", uid, raw)
        return MailRef(f.name, uid, message_key(raw))
