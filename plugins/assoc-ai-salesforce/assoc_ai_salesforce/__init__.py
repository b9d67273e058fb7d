"""assoc-ai plugin for Salesforce Nonprofit Success Pack (NPSP): read donors and gifts, write scores on Contact.

Registered through the ``assoc_ai`` entry point; the host builds
:class:`SalesforceConnector` from ``[connectors.salesforce]``.
"""

from __future__ import annotations

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl

from .connector import SalesforceConfig, SalesforceConnector

__all__ = ["SalesforceConfig", "SalesforceConnector", "register_connectors"]
__version__ = "0.1.0"


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the Salesforce connector class."""
    registry.add_crm(SalesforceConnector)
