"""Plugins that ship inside the core, written as a third party would write them.

They are registered last, after installed ones, and their ``register_connectors``
is marked ``trylast`` so pluggy also calls it after the installed plugins' hooks.
"""

# Loaded by the plugin manager by module name, never imported by users.
__all__: list[str] = []
