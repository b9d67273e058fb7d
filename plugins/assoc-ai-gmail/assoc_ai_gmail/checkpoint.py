"""Where the correction check last read the mailbox's history, kept in a small private file between runs.

The job asks :meth:`~assoc_ai_gmail.reading.GmailReading.locate` every run
where its recently decided messages are.  Asking Gmail about each one costs
5 quota units a message; reading what changed since the last check costs 2
units per page of 500 changes.  So the connector keeps the history point of
its last check in this file and answers "still where you left it" for every
message the history does not mention.

The file keeps two points: ``read_to`` (the newest point read) and
``confirmed`` (the one before).  A check reads from ``confirmed``: what the
previous check reported is reported once more, so a run killed after
``locate`` answered but before the job stored the answer loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from assoc_ai_core.files import atomic_write, private_dir

log = logging.getLogger(__name__)

FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """The two history points of the last checks (strings, as Gmail gives them)."""

    confirmed: str
    read_to: str


def default_path(email_address: str) -> Path:
    """``$ASSOC_AI_HOME/gmail/locate-<hash>.json``, else the user data folder; one file per mailbox."""
    home = os.environ.get("ASSOC_AI_HOME")
    if home:
        base = Path(home)
    else:
        from platformdirs import user_data_dir

        base = Path(user_data_dir("assoc-ai"))
    # a hash, not the address: file names end up in listings and backups
    digest = hashlib.sha256(email_address.strip().lower().encode("utf-8")).hexdigest()[:16]
    return base / "gmail" / f"locate-{digest}.json"


def load(path: Path, email_address: str) -> Checkpoint | None:
    """The stored checkpoint of this mailbox, or None (no file, unreadable, another mailbox)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("Gmail: correction checkpoint %s unreadable (%s); checking every message once", path,
                    type(exc).__name__)
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    if data.get("mailbox") != _mailbox_id(email_address):
        return None
    confirmed, read_to = str(data.get("confirmed") or ""), str(data.get("read_to") or "")
    if not (confirmed.isdigit() and read_to.isdigit()):
        return None
    return Checkpoint(confirmed=confirmed, read_to=read_to)


def save(path: Path, email_address: str, checkpoint: Checkpoint) -> None:
    """Store ``checkpoint`` (mode 0600, atomically); a failure is logged, never raised: the next check reads more."""
    data = {"format": FORMAT, "mailbox": _mailbox_id(email_address), "confirmed": checkpoint.confirmed,
            "read_to": checkpoint.read_to}
    try:
        private_dir(path.parent)
        atomic_write(path, json.dumps(data))
    except OSError as exc:
        log.warning("Gmail: correction checkpoint %s not written (%s)", path, type(exc).__name__)


def _mailbox_id(email_address: str) -> str:
    return hashlib.sha256(email_address.strip().lower().encode("utf-8")).hexdigest()
