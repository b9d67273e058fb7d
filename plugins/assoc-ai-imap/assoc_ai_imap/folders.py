"""Folder names as the host writes them (``IA/Adhésion``) and as the server stores them.

The host always separates levels with ``/``; servers use their own separator
(``/`` on Dovecot and Gmail, ``.`` on Courier and Cyrus) and sometimes a
personal namespace prefix such as ``INBOX.``.  Modified UTF-7 is left to
imapclient, which encodes and decodes folder names itself.
"""

from __future__ import annotations

from dataclasses import dataclass

INBOX = "INBOX"


@dataclass(frozen=True)
class FolderNames:
    """Maps host folder names to server names and back for one server."""

    separator: str = "/"
    prefix: str = ""

    def to_server(self, name: str) -> str:
        """The server's name for the host folder ``name``."""
        parts = [p for p in name.strip().split("/") if p]
        if not parts:
            return INBOX
        if len(parts) == 1 and parts[0].upper() == INBOX:
            return INBOX
        if parts[0].upper() == INBOX:
            parts[0] = INBOX
        joined = self.separator.join(parts)
        if self.prefix and not (joined + self.separator).startswith(self.prefix):
            joined = self.prefix + joined
        return joined

    def to_host(self, server_name: str) -> str:
        """The host's ``/``-separated name for a folder listed by the server."""
        name = server_name
        if self.prefix and name.startswith(self.prefix) and name != self.prefix.rstrip(self.separator):
            name = name[len(self.prefix):]
        if name.upper() == INBOX:
            return INBOX
        return name.replace(self.separator, "/") if self.separator != "/" else name

    def lineage(self, server_name: str) -> list[str]:
        """``server_name`` and every parent below the prefix, outermost first."""
        body = server_name[len(self.prefix):] if self.prefix and server_name.startswith(self.prefix) else server_name
        parts = body.split(self.separator)
        head = self.prefix if self.prefix and server_name.startswith(self.prefix) else ""
        return [head + self.separator.join(parts[: i + 1]) for i in range(len(parts))]
