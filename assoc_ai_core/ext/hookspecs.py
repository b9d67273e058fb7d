"""The hooks a plugin can implement.

Hooks *register* things; objects *do* things.  A plugin module implements one or
more of these functions, decorated with :data:`hookimpl`, and is found through
the ``assoc_ai`` entry-point group::

    from assoc_ai_core import hookimpl

    @hookimpl
    def register_connectors(registry):
        registry.add(MyConnector)

New parameters may be added to a hook in later versions; an implementation may
accept only the ones it needs (pluggy's rule), so plugins keep working.  The
host keeps its side of that promise by calling hooks only through the plugin
manager (``pm.hook.<name>(...)`` in :mod:`assoc_ai_core.ext.plugins`), never a
plugin's function directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # imported for annotations only
    import click

    from assoc_ai_core.ext.connectors import ConnectorRegistry

PROJECT = "assoc_ai"
hookimpl = pluggy.HookimplMarker(PROJECT)
_hookspec = pluggy.HookspecMarker(PROJECT)


@_hookspec
def register_connectors(registry: ConnectorRegistry) -> None:
    """Register connector classes.

    .. versionadded:: 0.1

    Parameters
    ----------
    registry:
        Call ``registry.add(cls)`` with a subclass of
        :class:`~assoc_ai_core.ext.connectors.MailboxConnector` or of the CRM
        connector base.  Register classes, not instances: the host builds them
        from configuration.
    """


@_hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``assoc-ai`` command line (e.g. ``assoc-ai gmail auth``).

    .. versionadded:: 0.1
    """


@_hookspec(firstresult=True)
def resolve_secret(connector_id: str, field: str) -> str | None:
    """Return a secret for ``connector_id``'s ``field``, or None to let the next provider try.

    ``firstresult``: the first non-None answer wins.  Asked when a connector is
    built for a ``{ plugin = "..." }`` reference and for a required secret
    field the config leaves out (keyring, vault...); the IMAP connector also
    asks at each connection for a token it has not been given.  Return a ``str``
    or an :class:`~assoc_ai_core.ext.config.Secret`; never log the value.

    .. versionadded:: 0.1
    """


@_hookspec
def decision_recorded(record: dict[str, Any]) -> None:
    """Observe one automated decision just written to the audit trail (notifications, exports).

    The record holds no message text, only the audit fields.  Return value ignored.

    .. versionadded:: 0.1
    """
