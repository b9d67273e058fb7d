"""The Microsoft 365 mailbox behind the connector: sign-in, the Graph client and the folder tree."""

from __future__ import annotations

import logging
from urllib.parse import quote

from assoc_ai_core.ext.connectors import Capability, MailboxConnector

from .auth import TokenProvider
from .config import M365Config
from .folders import FolderTree
from .graph import GraphClient

log = logging.getLogger(__name__)


def quote_id(graph_id: str) -> str:
    """A Graph id made safe for a URL path segment."""
    return quote(graph_id, safe="")


def odata_string(value: str) -> str:
    """``value`` as an OData string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


class M365Mailbox(MailboxConnector):
    """One mailbox through Microsoft Graph: open, close, folders (no mail handling here)."""

    def __init__(self, config: M365Config) -> None:
        super().__init__(config)
        self.config: M365Config = config
        self._tokens: TokenProvider | None = None
        self._graph: GraphClient | None = None
        self._folders: FolderTree | None = None
        self._master_categories: dict[str, str] | None = None
        self._categories_writable = True
        self._spelling: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Sign in and check the mailbox can be read (AuthError / ConnectorError otherwise)."""
        if self._graph is not None:
            return
        tokens = TokenProvider(self.config)
        graph = GraphClient(self.config, tokens)
        try:
            folders = FolderTree(graph, self._spelling)
            folders.inbox_id()
        except BaseException:
            graph.close()
            tokens.close()
            raise
        self._tokens, self._graph, self._folders = tokens, graph, folders

    def close(self) -> None:
        """Save a rotated token cache and close the HTTP session; safe twice, never raises."""
        tokens, graph = self._tokens, self._graph
        self._tokens = self._graph = self._folders = None
        self._master_categories = None
        try:
            if tokens is not None:
                tokens.close()
        except Exception:  # closing must not hide the error that made us close
            log.warning("m365: could not save the token cache", exc_info=True)
        try:
            if graph is not None:
                graph.close()
        except Exception:
            log.debug("m365: error while closing the HTTP session", exc_info=True)

    @property
    def graph(self) -> GraphClient:
        """The Graph client (opens the connection on first use)."""
        if self._graph is None:
            self.open()
        assert self._graph is not None
        return self._graph

    @property
    def folders(self) -> FolderTree:
        """The folder tree of the mailbox (opens the connection on first use)."""
        if self._folders is None:
            self.open()
        assert self._folders is not None
        return self._folders

    @property
    def stats(self) -> dict[str, int]:
        """Counters of the current session: requests, retries, throttled, token_renewals."""
        return dict(self._graph.stats) if self._graph is not None else {}

    # ------------------------------------------------------------------ folders
    def list_folders(self) -> list[str]:
        """Display paths of every folder (``Inbox`` for the Inbox, ``/`` between levels)."""
        return self.folders.paths()

    def ensure_folder(self, name: str) -> None:
        """Create ``name`` (and its parents) if missing."""
        self.require(Capability.CREATE_FOLDER)
        self.folders.ensure(name)
