"""The embedded default connector: local mail (folder of .eml files, Maildir, mbox), no credentials."""

from __future__ import annotations

from ..connectors import ConnectorRegistry
from ..hookspecs import hookimpl


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the credential-free local mail connector."""
    from ..mailboxes.local import LocalMailConnector

    registry.add(LocalMailConnector, plugin="assoc-ai-core")
