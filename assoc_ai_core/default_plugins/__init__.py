"""Plugins that ship inside the core (registered last, after installed ones)."""
