"""The embedded default CRM connector: CSV / Excel exports of people data, no credentials."""

from __future__ import annotations

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl


@hookimpl(trylast=True)  # called after the installed plugins (pluggy otherwise calls the last registered first)
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the credential-free files connector (id ``files``)."""
    from assoc_ai_core.people.files_connector import FilesConnector

    registry.add_crm(FilesConnector, plugin="assoc-ai-core")
