"""assoc-ai plugin for Dolibarr: read members, subscriptions and donations; write scores into member extra fields.

Registered through the ``assoc_ai`` entry point; the host builds
:class:`DolibarrConnector` from ``[connectors.dolibarr]``.
"""

from __future__ import annotations

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl

from .connector import DolibarrConfig, DolibarrConnector

__all__ = ["DolibarrConfig", "DolibarrConnector", "register_connectors"]
__version__ = "0.1.0"


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the Dolibarr connector class."""
    registry.add_crm(DolibarrConnector)
