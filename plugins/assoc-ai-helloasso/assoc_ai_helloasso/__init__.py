"""assoc-ai plugin for HelloAsso: read payers, donations, monthly donations, memberships and event registrations.

Registered through the ``assoc_ai`` entry point; the host builds
:class:`HelloAssoConnector` from ``[connectors.helloasso]``.
"""

from __future__ import annotations

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl

from .connector import HelloAssoConfig, HelloAssoConnector

__all__ = ["HelloAssoConfig", "HelloAssoConnector", "register_connectors"]
__version__ = "0.1.0"


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the HelloAsso connector class."""
    registry.add_crm(HelloAssoConnector)
