"""Mail folders by display path (``Inbox``, ``IA/Adhésion``) over Graph folder ids.

Graph knows folders by opaque ids; people and configuration files know them by
name.  :class:`FolderTree` maps ``/``-separated display paths to ids and back,
and creates missing folders level by level (``childFolders``).

The Inbox is always spelt ``Inbox`` in paths, whatever the mailbox language
(``Boîte de réception`` in a French mailbox): its id comes from Graph's
well-known name ``inbox``, so configurations work on every tenant.  Names are
compared after Unicode NFC normalisation and case folding, as Exchange does.

:meth:`FolderTree.paths` lists folders as the server names them; the folder
of a message (``MailRef.folder``) is spelt the way the caller last named that
folder (``INBOX``, ``ia/adhésion``), because the triage job compares the names
in its configuration with the folders ``locate`` reports.
"""

from __future__ import annotations

import logging
import unicodedata
from typing import Any
from urllib.parse import quote

from assoc_ai_core.errors import ConfigError, ConnectorError
from assoc_ai_core.i18n import tr

from .config import CONNECTOR_ID
from .graph import GraphClient, GraphHTTPError

log = logging.getLogger(__name__)

INBOX = "Inbox"
_FOLDER_FIELDS = "id,displayName,parentFolderId,childFolderCount"


def split_path(path: str) -> list[str]:
    """Segments of a display path, NFC-normalised; ConfigError when empty."""
    parts = [unicodedata.normalize("NFC", p.strip()) for p in str(path).split("/")]
    parts = [p for p in parts if p]
    if not parts:
        raise ConfigError(
            tr(f"Nom de dossier vide : {path!r}.", f"Empty folder name: {path!r}."),
        )
    return parts


def path_key(path: str) -> str:
    """A comparison key for a display path (case-insensitive, NFC, ``inbox`` spelt one way)."""
    parts = split_path(path)
    if parts[0].casefold() == "inbox":
        parts[0] = INBOX
    return "/".join(p.casefold() for p in parts)


def same_folder(a: str, b: str) -> bool:
    """True when two display paths name the same folder."""
    try:
        return path_key(a) == path_key(b)
    except ConfigError:
        return False


class FolderTree:
    """Display paths ⇄ Graph folder ids for one mailbox (cached; refreshed on a miss)."""

    def __init__(self, graph: GraphClient, spelling: dict[str, str] | None = None) -> None:
        self.graph = graph
        self._by_key: dict[str, str] = {}
        self._by_id: dict[str, str] = {}
        self._inbox_id: str | None = None
        self._root_id: str | None = None
        self._loaded = False
        self._climbed: dict[str, str] = {}  # hidden/system folders found by climbing their parents
        # Shared with the connector, so a reconnect keeps how the caller spells its folders.
        self._spelling: dict[str, str] = spelling if spelling is not None else {}

    # ------------------------------------------------------------ loading
    def inbox_id(self) -> str:
        """Id of the well-known Inbox."""
        if self._inbox_id is None:
            item = self.graph.get_json(self.graph.user_url("/mailFolders/inbox"), params={"$select": _FOLDER_FIELDS})
            self._inbox_id = str(item["id"])
            self._root_id = str(item.get("parentFolderId") or "")
        return self._inbox_id

    def refresh(self) -> None:
        """Read the whole folder tree again."""
        inbox = self.inbox_id()
        self._by_key.clear()
        self._by_id.clear()
        top = self.graph.iter_collection(self.graph.user_url("/mailFolders"), params={"$select": _FOLDER_FIELDS, "$top": 100})
        stack: list[tuple[str, dict[str, Any]]] = [("", f) for f in top]
        while stack:
            parent_path, folder = stack.pop()
            fid = str(folder["id"])
            name = INBOX if fid == inbox else unicodedata.normalize("NFC", str(folder.get("displayName", "")))
            path = f"{parent_path}/{name}" if parent_path else name
            self._remember(path, fid)
            if fid == inbox and not parent_path:
                # A French mailbox shows its Inbox as "Boîte de réception": accept that spelling too.
                display = unicodedata.normalize("NFC", str(folder.get("displayName", "")))
                if display:
                    self._by_key.setdefault(path_key(display), fid)
            if int(folder.get("childFolderCount") or 0) > 0:
                children = self.graph.iter_collection(
                    self.graph.user_url(f"/mailFolders/{quote(fid, safe='')}/childFolders"),
                    params={"$select": _FOLDER_FIELDS, "$top": 100},
                )
                stack.extend((path, c) for c in children)
        self._loaded = True

    def _remember(self, path: str, fid: str) -> None:
        self._by_key[path_key(path)] = fid
        self._by_id[fid] = path

    def _spelt(self, path: str) -> str:
        return self._spelling.get(path_key(path), path)

    # ------------------------------------------------------------ queries
    def paths(self) -> list[str]:
        """Every folder's display path, sorted."""
        self.refresh()
        return sorted(self._by_id.values(), key=str.casefold)

    def find(self, path: str) -> str | None:
        """The id of ``path``, or None when it does not exist."""
        key = path_key(path)
        self._spelling[key] = path
        if key == "inbox":
            return self.inbox_id()
        if not self._loaded or key not in self._by_key:
            self.refresh()
        return self._by_key.get(key)

    def resolve(self, path: str) -> str:
        """The id of an existing folder; ConnectorError naming the folders that exist."""
        fid = self.find(path)
        if fid is None:
            known = ", ".join(sorted(self._by_id.values(), key=str.casefold)[:30])
            raise ConnectorError(
                tr(
                    f"Dossier introuvable dans la boîte : « {path} ». Dossiers existants : {known}.",
                    f"Folder not found in the mailbox: '{path}'. Existing folders: {known}.",
                ),
                connector_id=CONNECTOR_ID,
            )
        return fid

    def path_of(self, folder_id: str) -> str:
        """The display path of a folder id (walking up through Graph if it is new to us)."""
        if folder_id in self._by_id:
            return self._spelt(self._by_id[folder_id])
        if folder_id == self.inbox_id():
            return self._spelt(INBOX)
        if folder_id in self._climbed:
            return self._climbed[folder_id]
        self.refresh()
        if folder_id in self._by_id:
            return self._spelt(self._by_id[folder_id])
        # Hidden or system folders are not in the listing: climb their parents.
        names: list[str] = []
        current = folder_id
        for _ in range(32):
            try:
                item = self.graph.get_json(
                    self.graph.user_url(f"/mailFolders/{quote(current, safe='')}"), params={"$select": _FOLDER_FIELDS}
                )
            except GraphHTTPError as exc:
                if exc.status == 404:
                    break
                raise
            names.append(str(item.get("displayName", "")))
            parent = str(item.get("parentFolderId") or "")
            if not parent or parent == self._root_id:
                break
            if parent in self._by_id:
                names.append(self._by_id[parent])
                break
            current = parent
        path = "/".join(reversed(names)) if names else folder_id
        self._climbed[folder_id] = path
        return path

    # ------------------------------------------------------------ creation
    def ensure(self, path: str) -> str:
        """The id of ``path``, creating it and its missing parents."""
        existing = self.find(path)
        if existing is not None:
            return existing
        parts = split_path(path)
        parent_id: str | None = None
        done: list[str] = []
        for i, name in enumerate(parts):
            if i == 0 and name.casefold() == "inbox":
                parent_id = self.inbox_id()
                done.append(INBOX)
                continue
            done.append(name)
            fid = self._by_key.get(path_key("/".join(done)))
            if fid is None:
                fid = self._create(parent_id, name)
                self._remember("/".join(done), fid)
            parent_id = fid
        assert parent_id is not None
        return parent_id

    def _create(self, parent_id: str | None, name: str) -> str:
        url = (
            self.graph.user_url("/mailFolders")
            if parent_id is None
            else self.graph.user_url(f"/mailFolders/{quote(parent_id, safe='')}/childFolders")
        )
        try:
            created = self.graph.send_json("POST", url, {"displayName": name, "isHidden": False}, ok=(200, 201))
            log.info("m365: folder created")
            return str(created["id"])
        except GraphHTTPError as exc:
            if exc.status != 409:
                raise
        # Someone (another run, a person) created it meanwhile: read the parent's children.
        listing = self.graph.iter_collection(url, params={"$select": _FOLDER_FIELDS, "$top": 100})
        for folder in listing:
            if unicodedata.normalize("NFC", str(folder.get("displayName", ""))).casefold() == name.casefold():
                return str(folder["id"])
        raise ConnectorError(
            tr(f"Impossible de créer le dossier « {name} ».", f"Cannot create folder '{name}'."),
            connector_id=CONNECTOR_ID,
        )
