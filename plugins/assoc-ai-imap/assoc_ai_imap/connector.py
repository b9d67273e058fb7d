"""The IMAP mailbox connector, put together from its parts.

Each part is a class in its own module, each building on the one below:

* :mod:`.session` — connecting, logging in, selecting and creating folders,
  turning library errors into assoc-ai errors (the only place that talks to
  the server directly);
* :mod:`.lookup` — finding messages by key and :meth:`~ImapConnector.locate`;
* :mod:`.fetch` — reading new mail by UID, whole folders, one message;
* :mod:`.actions` — move and label, one message or a batch;
* :mod:`.tagging` — subject tags (append a tagged copy, then delete the original);
* :mod:`.watch` — ``wait_for_changes`` with IDLE.
"""

from __future__ import annotations

from typing import ClassVar

from assoc_ai_core.ext.connectors import Capability

from .config import ImapConfig
from .fetch import Reading
from .session import MailboxChangedError
from .tagging import SubjectTagging
from .watch import Watching

__all__ = ["ImapConnector", "MailboxChangedError"]


class ImapConnector(Reading, SubjectTagging, Watching):
    """Any IMAP mailbox: read new mail by UID, move, label with keywords, tag subjects.

    Building the connector does no I/O; ``open()`` (or ``with``) connects and
    narrows ``capabilities`` to what the server offers (MOVE or UIDPLUS for
    moves, UIDPLUS for subject tags, IDLE for ``wait_for_changes``).
    """

    id: ClassVar[str] = "imap"
    Config: ClassVar[type] = ImapConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.READ, Capability.MOVE, Capability.LABEL, Capability.TAG_SUBJECT,
        Capability.CREATE_FOLDER, Capability.WATCH,
    })
    description: ClassVar[str] = "IMAP mailbox (any provider) / boîte aux lettres IMAP (tout fournisseur)"

    def __repr__(self) -> str:
        return f"ImapConnector({self.config.describe()!r})"
