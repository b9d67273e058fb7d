"""assoc-ai plugin for HubSpot CRM: read contacts and mapped gifts/memberships, write scores on contacts.

Registered through the ``assoc_ai`` entry point; the host builds
:class:`HubSpotConnector` from ``[connectors.hubspot]``.
"""

from __future__ import annotations

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl

from .connector import HubSpotConfig, HubSpotConnector

__all__ = ["HubSpotConfig", "HubSpotConnector", "register_connectors"]
__version__ = "0.1.0"


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the HubSpot connector class."""
    registry.add_crm(HubSpotConnector)
