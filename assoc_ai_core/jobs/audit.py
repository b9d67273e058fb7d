"""What the audit trail stores about a message and its sender: the rows of the state file, the sender's privacy.

A sender address is never stored as such (unless the configuration opts in):
the trail keeps a readable pseudonym (``m…@exemple.fr``) and a keyed hash,
enough to answer an access request without keeping the address.
:class:`~assoc_ai_core.jobs.state.StateStore` reads and writes these rows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets as _secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assoc_ai_core.files import atomic_write, private_dir

__all__ = ["pseudonymise_address", "SenderPrivacy", "MessageRecord", "ActionRecord"]


def pseudonymise_address(address: str) -> str:
    """A readable but non-identifying form of an address: ``m…@exemple.fr``."""
    address = (address or "").strip().lower()
    if "@" not in address:
        return "…" if address else ""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}…@{domain}"


class SenderPrivacy:
    """Turns a sender address into what the audit trail stores.

    The keyed hash (HMAC-SHA256 with a secret key) lets ``assoc-ai audit
    --sender`` find every decision about one person without storing their
    address; without the key nobody can test guesses against the hashes.
    """

    def __init__(self, key: bytes, *, store_raw: bool = False) -> None:
        if len(key) < 16:
            raise ValueError("privacy key too short")
        self._key = key
        self.store_raw = store_raw

    def __repr__(self) -> str:
        return f"SenderPrivacy(key=***, store_raw={self.store_raw})"

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str], *, store_raw: bool = False) -> SenderPrivacy:
        """Read the key file, creating it (random, mode 0600, in a 0700 folder) the first time."""
        p = Path(path)
        if not p.exists():
            private_dir(p.parent)
            try:
                # exclusive: when two first runs race, both end up with the one key that was written first
                atomic_write(p, _secrets.token_hex(32) + "\n", exclusive=True)
            except FileExistsError:
                pass
        text = p.read_text(encoding="ascii").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = text.encode("utf-8")
        return cls(key, store_raw=store_raw)

    def hash(self, address: str) -> str:
        """Keyed hash of a normalised (trimmed, lower-case) address."""
        norm = (address or "").strip().lower()
        return hmac.new(self._key, norm.encode("utf-8"), hashlib.sha256).hexdigest() if norm else ""

    def pseudonym(self, address: str) -> str:
        """Readable pseudonym of an address (see :func:`pseudonymise_address`)."""
        return pseudonymise_address(address)

    def raw(self, address: str) -> str | None:
        """The address itself when the configuration opts in, else None."""
        return (address or "").strip().lower() or None if self.store_raw else None


@dataclass(frozen=True)
class MessageRecord:
    """One row of ``messages``."""

    instance: str
    key: str
    run_id: int | None
    dry_run: bool
    status: str
    source_folder: str | None
    source_uid: str | None
    current_folder: str | None
    current_uid: str | None
    sender_pseudo: str | None
    sender_hash: str | None
    sender_raw: str | None
    decision: str
    category: str | None
    probability: float | None
    runner_up: str | None
    runner_up_probability: float | None
    explanation: Any
    model_version: str | None
    reason: str | None
    plan: list[dict[str, Any]]
    effective_category: str | None
    decided_at: str
    updated_at: str
    gone_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> MessageRecord:
        """Build from a database row (JSON columns decoded)."""
        d = dict(row)
        d["dry_run"] = bool(d["dry_run"])
        d["plan"] = json.loads(d["plan"] or "[]")
        d["explanation"] = json.loads(d["explanation"]) if d["explanation"] else None
        return cls(**d)


@dataclass(frozen=True)
class ActionRecord:
    """One row of the ``actions`` journal."""

    id: int
    instance: str
    key: str
    run_id: int | None
    step: int
    kind: str
    target: str | None
    status: str
    ref_folder: str | None
    ref_uid: str | None
    result_folder: str | None
    result_uid: str | None
    detail: str | None
    created_at: str
    done_at: str | None
