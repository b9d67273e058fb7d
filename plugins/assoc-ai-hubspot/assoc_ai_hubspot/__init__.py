"""assoc-ai plugin for HubSpot CRM: read contacts and mapped gifts/memberships, write scores on contacts.

Registered through the ``assoc_ai`` entry point; the host builds
:class:`HubSpotConnector` from ``[connectors.hubspot]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl

if TYPE_CHECKING:
    from .connector import HubSpotConfig, HubSpotConnector

__all__ = ["HubSpotConfig", "HubSpotConnector", "register_connectors"]
__version__ = "0.1.0"


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the HubSpot connector class."""
    # imported here, not at the top: the HubSpot SDK take a tenth of a second, which every `assoc-ai --help` would pay
    from .connector import HubSpotConnector

    registry.add_crm(HubSpotConnector)


def __getattr__(name: str) -> Any:
    if name in ("HubSpotConfig", "HubSpotConnector"):
        from . import connector

        return getattr(connector, name)
    raise AttributeError(name)
