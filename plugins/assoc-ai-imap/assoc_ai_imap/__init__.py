"""assoc-ai-imap: the IMAP mailbox connector for assoc-ai.

Installed, it registers the connector id ``imap`` through the ``assoc_ai``
entry-point group; a job then names it in its configuration::

    [mailbox]
    connector = "imap"
    host = "imap.example.org"
    username = "contact@asso.example"
    password = { env = "IMAP_PASSWORD" }
"""

from __future__ import annotations

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl

from .config import ImapConfig
from .connector import ImapConnector

__version__ = "0.1.0"
__all__ = ["ImapConfig", "ImapConnector", "register_connectors", "__version__"]


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register :class:`ImapConnector` under the id ``imap``."""
    registry.add_mailbox(ImapConnector, plugin="assoc-ai-imap")
