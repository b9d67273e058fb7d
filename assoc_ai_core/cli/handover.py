"""Where the shared commands (``train``, ``evaluate``, ``predict``, ``explain``) hand over: to the people
commands for a people model, else to a mail model loaded only when a command runs (``--help`` stays fast)."""

from __future__ import annotations

from typing import Any

__all__ = ["people_commands", "load_mail_model"]


def people_commands() -> Any:
    """The people-data commands module, or None when its optional extra is not installed."""
    try:
        from assoc_ai_core.cli import people as commands
    except ImportError:
        return None
    return commands


def load_mail_model(path: str) -> Any:
    """A mail model file, loaded only when a command needs it (``--help`` stays fast)."""
    from assoc_ai_core.persistence import load_model

    return load_model(path)
