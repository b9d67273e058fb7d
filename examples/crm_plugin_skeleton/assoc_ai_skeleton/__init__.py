"""assoc-ai plugin ``skeleton``: a CRM connector reading people from a JSON file (tutorial example).

Installed, it is found through the ``assoc_ai`` entry point declared in
``pyproject.toml``; the host then builds :class:`SkeletonConnector` from the
``[crm]`` section of the configuration (``connector = "skeleton"``).
"""

from __future__ import annotations

# --8<-- [start:hook]
# hookspecs is a light module: plugins are imported at every start of assoc-ai, so keep imports cheap.
from assoc_ai_core.ext.connectors import ConnectorRegistry
from assoc_ai_core.ext.hookspecs import hookimpl

from .connector import SkeletonConfig, SkeletonConnector

__all__ = ["SkeletonConfig", "SkeletonConnector", "register_connectors"]
__version__ = "0.1.0"


@hookimpl
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register the connector class (a class, not an instance: the host builds it from configuration)."""
    registry.add_crm(SkeletonConnector)
# --8<-- [end:hook]
