"""assoc-ai plugin for Salesforce Nonprofit Success Pack (NPSP): read donors and gifts, write scores on Contact.

Registered through the ``assoc_ai`` entry point; the host builds
:class:`SalesforceConnector` from ``[connectors.salesforce]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl

if TYPE_CHECKING:
    from .connector import SalesforceConfig, SalesforceConnector

__all__ = ["SalesforceConfig", "SalesforceConnector", "register_connectors"]
__version__ = "0.1.0"


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the Salesforce connector class."""
    # imported here, not at the top: simple-salesforce and zeep take a tenth of a second, which every `assoc-ai --help` would pay
    from .connector import SalesforceConnector

    registry.add_crm(SalesforceConnector)


def __getattr__(name: str) -> Any:
    if name in ("SalesforceConfig", "SalesforceConnector"):
        from . import connector

        return getattr(connector, name)
    raise AttributeError(name)
