"""The embedded default connector: local mail (folder of .eml files, Maildir, mbox), no credentials."""

from __future__ import annotations

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl


@hookimpl(trylast=True)  # called after the installed plugins (pluggy otherwise calls the last registered first)
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the credential-free local mail connector."""
    from assoc_ai_core.default_plugins.local_mailbox import LocalMailConnector

    registry.add(LocalMailConnector, plugin="assoc-ai-core")
