"""assoc-ai plugin: Gmail / Google Workspace mailboxes through the Gmail API.

Registers the ``gmail`` connector and the ``assoc-ai gmail auth`` command.
Heavy Google libraries are imported only when the connector or command is used,
so ``assoc-ai`` starts fast even with this plugin installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assoc_ai_core.ext.hookspecs import hookimpl

if TYPE_CHECKING:
    import click

    from assoc_ai_core.ext.connectors import ConnectorRegistry

__version__ = "0.1.0"
__all__ = ["GmailConnector", "GmailConfig", "register_connectors", "register_commands", "__version__"]


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register :class:`~assoc_ai_gmail.connector.GmailConnector` under the id ``gmail``."""
    from .connector import GmailConnector

    registry.add(GmailConnector, plugin="assoc-ai-gmail")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``assoc-ai gmail auth`` (one-time Google consent, token stored privately)."""
    from .cli import gmail

    cli.add_command(gmail)


def __getattr__(name: str) -> Any:
    if name in ("GmailConnector", "GmailConfig"):
        from . import connector

        return getattr(connector, name)
    raise AttributeError(name)
