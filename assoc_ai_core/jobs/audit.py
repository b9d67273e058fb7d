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
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses
from typing import Any

from assoc_ai_core.files import read_secret_key

__all__ = ["pseudonymise_address", "SenderPrivacy", "MessageRecord", "ActionRecord", "TOMBSTONE_PREFIX", "MIGRATIONS",
           "participant_addresses"]

TOMBSTONE_PREFIX = "erased:"  # never the start of a real key: Message-IDs are "local@domain", digests "sha256:"


# The state file's schema, one script per version (``user_version``); StateStore runs the missing ones in order.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE cursors (
        instance TEXT NOT NULL,
        folder TEXT NOT NULL,
        cursor TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (instance, folder)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        dry_run INTEGER NOT NULL DEFAULT 0,
        model_version TEXT,
        pid INTEGER,
        fetched INTEGER NOT NULL DEFAULT 0,
        auto INTEGER NOT NULL DEFAULT 0,
        review INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        forwarded INTEGER NOT NULL DEFAULT 0,
        recovered INTEGER NOT NULL DEFAULT 0,
        corrections INTEGER NOT NULL DEFAULT 0,
        review_share REAL,
        mean_confidence REAL,
        category_mix TEXT,
        exit_code INTEGER,
        message TEXT
    );
    CREATE TABLE messages (
        instance TEXT NOT NULL,
        key TEXT NOT NULL,
        run_id INTEGER,
        dry_run INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        source_folder TEXT,
        source_uid TEXT,
        current_folder TEXT,
        current_uid TEXT,
        sender_pseudo TEXT,
        sender_hash TEXT,
        sender_raw TEXT,
        decision TEXT NOT NULL,
        category TEXT,
        probability REAL,
        runner_up TEXT,
        runner_up_probability REAL,
        explanation TEXT,
        model_version TEXT,
        reason TEXT,
        plan TEXT NOT NULL DEFAULT '[]',
        effective_category TEXT,
        decided_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        gone_at TEXT,
        PRIMARY KEY (instance, key)
    );
    CREATE INDEX messages_sender ON messages (sender_hash);
    CREATE INDEX messages_decided ON messages (decided_at);
    CREATE INDEX messages_status ON messages (instance, status);
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        key TEXT NOT NULL,
        run_id INTEGER,
        step INTEGER NOT NULL,
        kind TEXT NOT NULL,
        target TEXT,
        status TEXT NOT NULL,
        ref_folder TEXT,
        ref_uid TEXT,
        result_folder TEXT,
        result_uid TEXT,
        detail TEXT,
        created_at TEXT NOT NULL,
        done_at TEXT
    );
    CREATE INDEX actions_message ON actions (instance, key, step);
    CREATE TABLE corrections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        key TEXT NOT NULL,
        from_category TEXT,
        from_folder TEXT,
        to_category TEXT NOT NULL,
        to_folder TEXT NOT NULL,
        detected_at TEXT NOT NULL,
        model_version TEXT,
        text TEXT
    );
    CREATE INDEX corrections_time ON corrections (detected_at);
    """,
    # who else a message is about (Reply-To, To/Cc, addresses in the body of contact forms and forwards), as keyed
    # hashes only: access and erasure requests find a person's mail where they are not the sender
    2: """
    CREATE TABLE participants (
        instance TEXT NOT NULL,
        key TEXT NOT NULL,
        role TEXT NOT NULL,
        address_hash TEXT NOT NULL,
        PRIMARY KEY (instance, key, role, address_hash)
    );
    CREATE INDEX participants_hash ON participants (address_hash);
    """,
    # a keyed digest of who sent a message and when: another message that reuses a Message-ID is told apart
    3: """
    ALTER TABLE messages ADD COLUMN identity TEXT;
    """,
}


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
        return cls(read_secret_key(path, create=True), store_raw=store_raw)

    def hash(self, address: str) -> str:
        """Keyed hash of a normalised (trimmed, lower-case) address."""
        norm = (address or "").strip().lower()
        return hmac.new(self._key, norm.encode("utf-8"), hashlib.sha256).hexdigest() if norm else ""

    def tombstone_key(self, instance: str, key: str) -> str:
        """The key an erased message keeps: a keyed hash of its mailbox and message key (no personal data).

        A Message-ID can hold a name or an address, so an erased decision keeps
        only this; the job still recognises the mail and never decides it again.
        """
        digest = hmac.new(self._key, f"message-key\x00{instance}\x00{key}".encode(), hashlib.sha256).hexdigest()
        return TOMBSTONE_PREFIX + digest

    def identity(self, sender: str, sent: datetime | None) -> str | None:
        """A keyed digest of a message's sender and date (None without a date): two mails sharing a Message-ID
        but not this are two messages.  Stable across folders, subject tags and the connectors' ways of reading."""
        if sent is None:
            return None
        norm = (sender or "").strip().lower()
        data = f"identity\x00{norm}\x00{int(sent.timestamp())}".encode()
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:24]

    def pseudonym(self, address: str) -> str:
        """Readable pseudonym of an address (see :func:`pseudonymise_address`)."""
        return pseudonymise_address(address)

    def raw(self, address: str) -> str | None:
        """The address itself when the configuration opts in, else None."""
        return (address or "").strip().lower() or None if self.store_raw else None


# bounded pieces keep the search linear on hostile text; the body is read up to a cap (forms put addresses early)
_ADDRESS = re.compile(r"[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_BODY_CAP = 100_000


def participant_addresses(message: Any) -> dict[str, list[str]]:
    """The addresses a message is about besides its From, by role: ``reply-to``, ``to``, ``cc`` and ``body``.

    ``body`` holds the addresses written in the text: a web contact form or a
    forward names the person there, not in the From.  Only keyed hashes of
    these are stored (:meth:`~assoc_ai_core.jobs.state.StateStore.record_participants`).
    """
    sender = (getattr(message, "sender", "") or "").strip().lower()
    headers = getattr(message, "headers", {}) or {}
    roles = {"reply-to": [a for _n, a in getaddresses([str(headers.get("reply-to", ""))])],
             "to": list(getattr(message, "to", ()) or ()), "cc": list(getattr(message, "cc", ()) or ()),
             "body": _ADDRESS.findall((getattr(message, "text", "") or "")[:_BODY_CAP])}
    out = {}
    for role, addresses in roles.items():
        found = sorted({a.strip().lower().strip(".") for a in addresses if "@" in a} - {sender})
        if found:
            out[role] = found
    return out


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
    identity: str | None = None

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
