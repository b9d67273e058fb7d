"""Mailbox connectors that ship with the core, and helpers any mailbox connector may reuse.

* :class:`~assoc_ai_core.mailboxes.local.LocalMailConnector` (id ``local``): a
  Maildir tree on disk, read-write, no credentials; or a folder of ``.eml``
  files / mbox files, read-only (training, trying assoc-ai out).
* :mod:`~assoc_ai_core.mailboxes.subject`: rewrite a raw message's subject with
  a ``[#Catégorie]`` tag without touching its body, keeping its audit key.

The connector module is imported lazily so that ``import assoc_ai_core`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalMailConnector", "LocalMailConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import local

        return getattr(local, name)
    raise AttributeError(name)
