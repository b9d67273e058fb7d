"""The triage job's memory and audit trail: one SQLite file.

What it holds (see ``docs/audit-trail.md`` for every column):

* ``cursors`` — where reading stopped, per (mailbox instance, folder);
* ``messages`` — one row per message decided: stable key, where it came from
  and where it is now, the sender pseudonymised *and* as a keyed hash (to answer
  an access request without keeping the address), the decision, category,
  probability, runner-up, explanation, model version, time and reason;
* ``actions`` — the journal: an *intent* row is committed before each mailbox
  action and marked *done* after it, so a run killed at any point can be
  finished by the next one (actions are idempotent; forwarding is never retried
  when it may have gone out);
* ``corrections`` — messages a person moved to another category after the
  decision, with the pseudonymised text kept for retraining;
* ``runs`` — one row per run: start/end, counts, review share, category mix,
  mean confidence (for monitoring).

The rows read back (:class:`MessageRecord`, :class:`ActionRecord`) and the
sender's pseudonym and keyed hash (:class:`SenderPrivacy`) are defined in
:mod:`assoc_ai_core.jobs.audit` and importable from here too.

The file uses WAL journaling (readers — ``assoc-ai audit`` — never block the
job) and ``synchronous=FULL`` (an intent is on disk before the action
starts).  The schema version is SQLite's ``user_version``; migrations run in
one transaction when the file is opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.files import private_dir, private_file
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.audit import (
    MIGRATIONS,
    TOMBSTONE_PREFIX,
    ActionRecord,
    MessageRecord,
    SenderPrivacy,
    pseudonymise_address,
)

__all__ = [
    "SCHEMA_VERSION", "StateStore", "now_iso", "inserted_id", "ActionRecord", "MessageRecord", "SenderPrivacy",
    "pseudonymise_address", "TOMBSTONE_PREFIX",
]

SCHEMA_VERSION = max(MIGRATIONS)

# Made on first use by ``[triage] threads`` (as the acknowledgements table is): a keyed hash of each decided
# message's subject topic, so a reply without references finds its thread; erasure deletes the message's row.
_TOPICS_SCHEMA = """
CREATE TABLE IF NOT EXISTS thread_topics (
    instance TEXT NOT NULL,
    key TEXT NOT NULL,
    topic TEXT NOT NULL,
    PRIMARY KEY (instance, key)
);
CREATE INDEX IF NOT EXISTS thread_topics_topic ON thread_topics (instance, topic);
"""


def now_iso() -> str:
    """Current UTC time as ISO 8601 with seconds (how every time is stored)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an ``INSERT`` just added."""
    if cursor.lastrowid is None:  # never after a successful INSERT; says so to the type checker too
        raise sqlite3.InterfaceError("INSERT gave no row id")
    return cursor.lastrowid


def _where(filters: Mapping[str, tuple[Any, ...]], *, always: Sequence[str] = ()) -> tuple[str, list[Any]]:
    """A ``WHERE`` part and its parameters: the ``always`` clauses, then each filter clause whose parameters are set.

    ``filters`` maps a clause to its parameters; a filter left unset (None or
    empty) is not applied, as for the optional arguments of the queries.
    """
    used = {clause: params for clause, params in filters.items() if params and all(params)}
    clauses = [*always, *used]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), [p for params in used.values() for p in params]


class StateStore:
    """The SQLite state file of one triage job (cursors, decisions, journal, corrections, runs).

    A new file is created mode 0600 (and its folder 0700) whatever the umask;
    SQLite gives its ``-wal`` and ``-shm`` files the database's mode.
    """

    def __init__(self, path: str | os.PathLike[str], *, key_file: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        # the sender-hash key also keys the tombstones of erased mail; by default it sits next to the state file
        self.key_file = Path(key_file) if key_file is not None else self.path.with_name(self.path.stem + ".key")
        self._privacy: SenderPrivacy | None = None
        try:
            private_file(private_dir(self.path.parent) / self.path.name)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(tr(
                f"Impossible d'ouvrir le fichier d'état {self.path} : {exc}. Vérifiez [triage] state et les droits.",
                f"Cannot open the state file {self.path}: {exc}. Check [triage] state and permissions.",
            )) from exc
        self._db.row_factory = sqlite3.Row
        self._depth = 0
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigError(tr(
                f"{self.path} n'est pas un fichier d'état assoc-ai lisible ({exc}).",
                f"{self.path} is not a readable assoc-ai state file ({exc}).",
            )) from exc

    # ----------------------------------------------------------------- plumbing
    def close(self) -> None:
        """Close the database; safe to call twice."""
        if self._db is not None:
            self._db.close()
            self._db = None  # type: ignore[assignment]  # a closed store fails loudly on any further use

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The schema version of the file (SQLite ``user_version``)."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise ConfigError(tr(
                f"{self.path} a été écrit par une version plus récente d'assoc-ai (schéma {version}). "
                "Mettez assoc-ai à jour.",
                f"{self.path} was written by a newer assoc-ai (schema {version}). Upgrade assoc-ai.",
            ))
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            # another process may have migrated while we waited for the write lock
            version = self.schema_version
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error); nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self._db
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement (in autocommit mode unless inside :meth:`transaction`)."""
        return self._db.execute(sql, params)

    # ------------------------------------------------------------------ cursors
    def get_cursor(self, instance: str, folder: str) -> dict[str, Any] | None:
        """The stored cursor of a folder, or None."""
        row = self._db.execute("SELECT cursor FROM cursors WHERE instance=? AND folder=?", (instance, folder)).fetchone()
        return json.loads(row[0]) if row else None

    def set_cursor(self, instance: str, folder: str, cursor: Mapping[str, Any]) -> None:
        """Store a folder's cursor (after its page was handled)."""
        self._db.execute(
            "INSERT INTO cursors (instance, folder, cursor, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (instance, folder) DO UPDATE SET cursor=excluded.cursor, updated_at=excluded.updated_at",
            (instance, folder, json.dumps(dict(cursor), ensure_ascii=False), now_iso()),
        )

    # --------------------------------------------------------------------- runs
    def start_run(self, instance: str, *, dry_run: bool, model_version: str | None) -> int:
        """Open a run row and return its id."""
        cur = self._db.execute(
            "INSERT INTO runs (instance, started_at, dry_run, model_version, pid) VALUES (?, ?, ?, ?, ?)",
            (instance, now_iso(), int(dry_run), model_version, os.getpid()),
        )
        return inserted_id(cur)

    def finish_run(self, run_id: int, *, status: str, exit_code: int, stats: Mapping[str, Any], message: str = "") -> None:
        """Close a run row with its counts and summary figures."""
        columns = ("fetched", "auto", "review", "errors", "skipped", "failed", "forwarded", "recovered",
                   "corrections", "review_share", "mean_confidence")
        values = [stats.get(c, None if c in ("review_share", "mean_confidence") else 0) for c in columns]
        mix = stats.get("category_mix")
        self._db.execute(
            f"UPDATE runs SET ended_at=?, status=?, exit_code=?, message=?, category_mix=?, "
            f"{', '.join(c + '=?' for c in columns)} WHERE id=?",
            (now_iso(), status, exit_code, message, json.dumps(mix, ensure_ascii=False) if mix is not None else None,
             *values, run_id),
        )

    def runs(self, instance: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent runs, newest first."""
        where, params = _where({"instance=?": (instance,)})
        rows = self._db.execute(f"SELECT * FROM runs{where} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        out = []
        for row in rows:
            d = dict(row)
            d["category_mix"] = json.loads(d["category_mix"]) if d["category_mix"] else {}
            out.append(d)
        return out

    def mark_abandoned_runs(self) -> int:
        """Close runs left 'running' by a killed process; returns how many."""
        cur = self._db.execute("UPDATE runs SET status='killed', ended_at=? WHERE status='running'", (now_iso(),))
        return cur.rowcount

    # ----------------------------------------------------------------- messages
    def get_message(self, instance: str, key: str) -> MessageRecord | None:
        """The decision recorded for ``key``, if any."""
        row = self._db.execute("SELECT * FROM messages WHERE instance=? AND key=?", (instance, key)).fetchone()
        return MessageRecord.from_row(row) if row else None

    def get_messages(self, instance: str, keys: Sequence[str]) -> dict[str, MessageRecord]:
        """The decisions recorded for several keys at once (a page's), by key; unknown keys are left out.

        Erased mail is found too, through its tombstone (a keyed hash of the
        key), so it is never decided again: its record keeps the hashed key.
        """
        wanted = list(dict.fromkeys(keys))
        out = {r.key: r for r in self._messages_by_key(instance, wanted)}
        missing = [k for k in wanted if k not in out]
        if missing and self._has_tombstones(instance):
            privacy = self.privacy()
            hashed = {privacy.tombstone_key(instance, k): k for k in missing}
            out.update({hashed[r.key]: r for r in self._messages_by_key(instance, list(hashed))})
        return out

    def _messages_by_key(self, instance: str, keys: Sequence[str]) -> list[MessageRecord]:
        out: list[MessageRecord] = []
        for start in range(0, len(keys), 500):  # stays under SQLite's limit on bound parameters
            chunk = keys[start:start + 500]
            rows = self._db.execute(
                f"SELECT * FROM messages WHERE instance=? AND key IN ({','.join('?' * len(chunk))})",
                (instance, *chunk)).fetchall()
            out += [MessageRecord.from_row(row) for row in rows]
        return out

    def thread_records(self, instance: str, keys: Sequence[str], *, dry_run: bool = False) -> dict[str, MessageRecord]:
        """The decisions about the messages a reply names, by key (thread memory, :mod:`~assoc_ai_core.jobs.threads`).

        Erased mail is not found: its key is a keyed hash now.  A real run
        reads only real decisions; a dry run reads the simulated ones too.
        """
        wanted = list(dict.fromkeys(keys))
        return {r.key: r for r in self._messages_by_key(instance, wanted) if dry_run or not r.dry_run}

    def record_thread_topic(self, instance: str, key: str, topic: str) -> None:
        """Remember a decided message's topic, as a keyed hash (thread memory for mail without references).

        The table is made the first time ``[triage] threads`` stores a topic, so
        a state file from before, or of a job without threads, has none.
        """
        if not topic:
            return
        if not self._has_topics():
            for statement in _TOPICS_SCHEMA.split(";"):  # not executescript: it would commit a caller's transaction
                if statement.strip():
                    self._db.execute(statement)
        self._db.execute("INSERT INTO thread_topics (instance, key, topic) VALUES (?,?,?) ON CONFLICT (instance, key)"
                         " DO UPDATE SET topic=excluded.topic", (instance, key, topic))

    def _has_topics(self) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='thread_topics'"
                                ).fetchone() is not None

    def topic_record(self, instance: str, topic: str, *, dry_run: bool = False) -> MessageRecord | None:
        """The latest decision about a message of this topic (keyed hash), or None."""
        if not topic or not self._has_topics():
            return None
        row = self._db.execute(
            "SELECT m.* FROM thread_topics t JOIN messages m ON m.instance=t.instance AND m.key=t.key"
            " WHERE t.instance=? AND t.topic=? AND (m.dry_run=0 OR ?) ORDER BY m.decided_at DESC, m.rowid DESC"
            " LIMIT 1", (instance, topic, int(dry_run))).fetchone()
        return MessageRecord.from_row(row) if row else None

    def sender_records(self, instance: str, sender_hash: str, *, dry_run: bool = False,
                       limit: int = 200) -> list[MessageRecord]:
        """The latest decisions about one sender's mail (by keyed hash), newest first (sender memory)."""
        if not sender_hash:
            return []
        rows = self._db.execute(
            "SELECT * FROM messages WHERE sender_hash=? AND instance=? AND (dry_run=0 OR ?) "
            "ORDER BY decided_at DESC LIMIT ?", (sender_hash, instance, int(dry_run), limit)).fetchall()
        return [MessageRecord.from_row(r) for r in rows]

    def _has_tombstones(self, instance: str) -> bool:
        # a range on the primary key: an index look-up, cheap on every page
        return self._db.execute("SELECT 1 FROM messages WHERE instance=? AND key>=? AND key<? LIMIT 1",
                                (instance, TOMBSTONE_PREFIX, TOMBSTONE_PREFIX[:-1] + chr(ord(":") + 1))
                                ).fetchone() is not None

    def privacy(self) -> SenderPrivacy:
        """The keyed hashing of this state file (its key file, read once; created the first time)."""
        if self._privacy is None:
            self._privacy = SenderPrivacy.from_key_file(self.key_file)
        return self._privacy

    def tombstone_message(self, instance: str, key: str) -> str:
        """Turn a decision into a de-identified tombstone; its journal follows; returns the tombstone key.

        What stays is what the job needs never to decide the mail again and
        what the association may keep: the category, decision and times.  The
        sender, explanation, review reason and where the mail is go (so no
        correction is ever looked for again); corrections are deleted by the
        caller.
        """
        tomb = self.privacy().tombstone_key(instance, key)
        self._db.execute(
            "UPDATE messages SET key=?, sender_pseudo=NULL, sender_hash=NULL, sender_raw=NULL, explanation=NULL,"
            " source_uid=NULL, current_folder=NULL, current_uid=NULL, reason='erased', status='erased', dry_run=0,"
            " identity=NULL, updated_at=? WHERE instance=? AND key=?",
            (tomb, now_iso(), instance, key))
        self._db.execute("UPDATE actions SET key=?, detail=NULL, ref_uid=NULL, result_uid=NULL WHERE instance=?"
                         " AND key=?", (tomb, instance, key))
        self._db.execute("UPDATE participants SET key=? WHERE instance=? AND key=?", (tomb, instance, key))
        if self._has_topics():  # an erased message is no thread's parent any more
            self._db.execute("DELETE FROM thread_topics WHERE instance=? AND key=?", (instance, key))
        return tomb

    def record_decision(self, *, instance: str, key: str, run_id: int, dry_run: bool, status: str,
                        folder: str, uid: str, sender: str, privacy: SenderPrivacy, decision: str,
                        category: str | None, probability: float | None, runner_up: str | None,
                        runner_up_probability: float | None, explanation: Any, model_version: str | None,
                        reason: str | None, plan: Sequence[Mapping[str, Any]], identity: str | None = None) -> None:
        """Insert (or, over a dry-run row, replace) the decision about one message."""
        now = now_iso()
        effective = category if decision == "auto" else None
        self._db.execute(
            "INSERT INTO messages (instance, key, run_id, dry_run, status, source_folder, source_uid, current_folder,"
            " current_uid, sender_pseudo, sender_hash, sender_raw, decision, category, probability, runner_up,"
            " runner_up_probability, explanation, model_version, reason, plan, effective_category, decided_at,"
            " updated_at, identity) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (instance, key) DO UPDATE SET run_id=excluded.run_id, dry_run=excluded.dry_run,"
            " status=excluded.status, source_folder=excluded.source_folder, source_uid=excluded.source_uid,"
            " current_folder=excluded.current_folder, current_uid=excluded.current_uid,"
            " sender_pseudo=excluded.sender_pseudo, sender_hash=excluded.sender_hash, sender_raw=excluded.sender_raw,"
            " decision=excluded.decision, category=excluded.category, probability=excluded.probability,"
            " runner_up=excluded.runner_up, runner_up_probability=excluded.runner_up_probability,"
            " explanation=excluded.explanation, model_version=excluded.model_version, reason=excluded.reason,"
            " plan=excluded.plan, effective_category=excluded.effective_category, decided_at=excluded.decided_at,"
            " updated_at=excluded.updated_at, identity=excluded.identity WHERE messages.dry_run = 1",
            (instance, key, run_id, int(dry_run), status, folder, uid, folder, uid, privacy.pseudonym(sender),
             privacy.hash(sender), privacy.raw(sender), decision, category, probability, runner_up,
             runner_up_probability, json.dumps(explanation, ensure_ascii=False) if explanation is not None else None,
             model_version, reason, json.dumps(list(plan), ensure_ascii=False), effective, now, now, identity),
        )

    def record_participants(self, instance: str, key: str, privacy: SenderPrivacy,
                            roles: Mapping[str, Sequence[str]]) -> None:
        """Remember, as keyed hashes, the other addresses of a message by role (``reply-to``, ``cc``, ``body``…)."""
        rows = {(instance, key, role, h) for role, addresses in roles.items() for a in addresses
                if (h := privacy.hash(a))}
        self._db.executemany("INSERT OR IGNORE INTO participants (instance, key, role, address_hash)"
                             " VALUES (?,?,?,?)", sorted(rows))

    def participants_of(self, address_hashes: Sequence[str]) -> list[tuple[str, str, str]]:
        """(instance, key, role) of every message where one of these hashed addresses appears besides the From."""
        out: list[tuple[str, str, str]] = []
        for h in dict.fromkeys(address_hashes):
            out += [(r[0], r[1], r[2]) for r in self._db.execute(
                "SELECT instance, key, role FROM participants WHERE address_hash=? ORDER BY instance, key, role",
                (h,))]
        return out

    def participant_keys(self, address_hashes: Sequence[str]) -> set[tuple[str, str]]:
        """(instance, key) of the messages where one of these hashed addresses appears besides the From."""
        return {(instance, key) for instance, key, _role in self.participants_of(address_hashes)}

    def forget_participants(self, address_hashes: Sequence[str]) -> None:
        """Delete the participant rows of these hashed addresses (erasure)."""
        self._db.executemany("DELETE FROM participants WHERE address_hash=?", [(h,) for h in address_hashes])

    def set_message_status(self, instance: str, key: str, status: str, *, reason: str | None = None) -> None:
        """Change a message's status (``pending``, ``done``, ``failed``, ``lost``)."""
        if reason is None:
            self._db.execute("UPDATE messages SET status=?, updated_at=? WHERE instance=? AND key=?",
                             (status, now_iso(), instance, key))
        else:
            self._db.execute("UPDATE messages SET status=?, reason=?, updated_at=? WHERE instance=? AND key=?",
                             (status, reason, now_iso(), instance, key))

    def set_location(self, instance: str, key: str, folder: str, uid: str, *, effective_category: str | None = None,
                     change_category: bool = False) -> None:
        """Remember where a message is now (and, after a correction, its new category)."""
        if change_category:
            self._db.execute(
                "UPDATE messages SET current_folder=?, current_uid=?, effective_category=?, gone_at=NULL, updated_at=?"
                " WHERE instance=? AND key=?", (folder, uid, effective_category, now_iso(), instance, key))
        else:
            self._db.execute(
                "UPDATE messages SET current_folder=?, current_uid=?, gone_at=NULL, updated_at=? WHERE instance=? AND key=?",
                (folder, uid, now_iso(), instance, key))

    def mark_gone(self, instance: str, key: str) -> None:
        """Note that a message can no longer be found (deleted by a person)."""
        self._db.execute("UPDATE messages SET gone_at=COALESCE(gone_at, ?) WHERE instance=? AND key=?",
                         (now_iso(), instance, key))

    def messages_with_status(self, instance: str, status: str) -> list[MessageRecord]:
        """Real (not dry-run) messages in one status, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM messages WHERE instance=? AND status=? AND dry_run=0 ORDER BY decided_at, key",
            (instance, status)).fetchall()
        return [MessageRecord.from_row(r) for r in rows]

    def decided_since(self, instance: str, since: str) -> list[MessageRecord]:
        """Real messages fully handled since ``since`` and still findable (for correction checks)."""
        rows = self._db.execute(
            "SELECT * FROM messages WHERE instance=? AND dry_run=0 AND status='done' AND decided_at>=? "
            "AND gone_at IS NULL AND current_folder IS NOT NULL ORDER BY decided_at", (instance, since)).fetchall()
        return [MessageRecord.from_row(r) for r in rows]

    def auto_keys(self, instance: str | None = None) -> set[str]:
        """Keys the model routed automatically and nobody corrected (not to be learnt from again)."""
        where, params = _where({"instance=?": (instance,)},
                               always=["dry_run=0 AND decision='auto' AND category IS effective_category"])
        return {r[0] for r in self._db.execute(f"SELECT key FROM messages{where}", params)}

    def audit(self, *, sender_hash: str | None = None, sender_raw: str | None = None, since: str | None = None,
              instance: str | None = None) -> list[MessageRecord]:
        """Decisions for the audit command, oldest first, filtered by sender and date."""
        senders = {clause: value for clause, value in (("sender_hash=?", sender_hash), ("sender_raw=?", sender_raw))
                   if value}
        where, params = _where({"instance=?": (instance,), "(" + " OR ".join(senders) + ")": tuple(senders.values()),
                                "decided_at>=?": (since,)})
        rows = self._db.execute(f"SELECT * FROM messages{where} ORDER BY decided_at, key", params).fetchall()
        return [MessageRecord.from_row(r) for r in rows]

    # ------------------------------------------------------------------ actions
    def add_intent(self, *, instance: str, key: str, run_id: int, step: int, kind: str, target: str | None,
                   folder: str | None, uid: str | None, status: str = "intent", detail: str | None = None) -> int:
        """Journal an action *before* doing it (``status='would'`` in dry-run); returns its id."""
        cur = self._db.execute(
            "INSERT INTO actions (instance, key, run_id, step, kind, target, status, ref_folder, ref_uid, detail,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (instance, key, run_id, step, kind, target, status, folder, uid, detail, now_iso()),
        )
        return inserted_id(cur)

    def finish_action(self, action_id: int, status: str, *, folder: str | None = None, uid: str | None = None,
                      detail: str | None = None) -> None:
        """Mark a journalled action ``done`` / ``skipped`` / ``failed`` / ``uncertain``."""
        self._db.execute(
            "UPDATE actions SET status=?, result_folder=?, result_uid=?, detail=COALESCE(?, detail), done_at=?"
            " WHERE id=?", (status, folder, uid, detail, now_iso(), action_id))

    def last_action(self, instance: str, key: str, step: int) -> ActionRecord | None:
        """The latest journal row of one step of one message's plan."""
        row = self._db.execute(
            "SELECT * FROM actions WHERE instance=? AND key=? AND step=? ORDER BY id DESC LIMIT 1",
            (instance, key, step)).fetchone()
        return ActionRecord(**dict(row)) if row else None

    def actions_for(self, instance: str, key: str) -> list[ActionRecord]:
        """Every journal row of one message, in order."""
        rows = self._db.execute("SELECT * FROM actions WHERE instance=? AND key=? ORDER BY id",
                                (instance, key)).fetchall()
        return [ActionRecord(**dict(r)) for r in rows]

    def clear_would(self, instance: str, key: str) -> None:
        """Drop 'would do' rows of a message about to be handled for real (they described a dry run)."""
        self._db.execute("DELETE FROM actions WHERE instance=? AND key=? AND status='would'", (instance, key))

    # -------------------------------------------------------------- corrections
    def record_correction(self, *, instance: str, key: str, from_category: str | None, from_folder: str | None,
                          to_category: str, to_folder: str, model_version: str | None, text: str | None) -> int:
        """Record that a person moved a message to another category."""
        cur = self._db.execute(
            "INSERT INTO corrections (instance, key, from_category, from_folder, to_category, to_folder,"
            " detected_at, model_version, text) VALUES (?,?,?,?,?,?,?,?,?)",
            (instance, key, from_category, from_folder, to_category, to_folder, now_iso(), model_version, text),
        )
        return inserted_id(cur)

    def set_correction_text(self, correction_id: int, text: str | None) -> None:
        """Attach the pseudonymised text of a corrected message (for retraining)."""
        self._db.execute("UPDATE corrections SET text=? WHERE id=?", (text, correction_id))

    def corrections(self, instance: str | None = None, *, since: str | None = None) -> list[dict[str, Any]]:
        """Corrections, oldest first (``text`` is a JSON string or None)."""
        where, params = _where({"instance=?": (instance,), "detected_at>=?": (since,)})
        return [dict(r) for r in self._db.execute(f"SELECT * FROM corrections{where} ORDER BY id", params).fetchall()]
