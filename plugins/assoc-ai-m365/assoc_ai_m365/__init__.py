"""assoc-ai plugin: a Microsoft 365 (Exchange Online) mailbox through Microsoft Graph.

Registers the ``m365`` connector and the ``assoc-ai m365`` commands (``auth``:
delegated sign-in in a browser with PKCE, or by device code; ``check``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assoc_ai_core.ext.hookspecs import hookimpl

from .config import M365Config
from .connector import M365Connector

if TYPE_CHECKING:
    import click

    from assoc_ai_core.ext.connectors import ConnectorRegistry

__all__ = ["M365Config", "M365Connector", "register_commands", "register_connectors"]
__version__ = "0.1.0"


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register :class:`M365Connector` under the id ``m365``."""
    registry.add(M365Connector, plugin="assoc-ai-m365")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``assoc-ai m365 auth``."""
    from .commands import m365

    if "m365" not in getattr(cli, "commands", {}):
        cli.add_command(m365)
