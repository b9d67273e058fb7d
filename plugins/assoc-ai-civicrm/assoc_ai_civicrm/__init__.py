"""assoc-ai plugin for CiviCRM (API v4): read contacts, gifts, memberships, events, volunteering; write scores back.

Registered through the ``assoc_ai`` entry point; the host builds
:class:`CiviCrmConnector` from ``[connectors.civicrm]``.
"""

from __future__ import annotations

from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl

from .connector import CiviCrmConfig, CiviCrmConnector

__all__ = ["CiviCrmConfig", "CiviCrmConnector", "register_connectors"]
__version__ = "0.1.0"


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the CiviCRM connector class."""
    registry.add_crm(CiviCrmConnector)
