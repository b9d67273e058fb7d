"""The outbox: every forward the job sends by SMTP, until it is delivered or given up — none is lost.

A forward step of a plan hands the forward to the outbox (one row per message
and destination, committed with the journal) and the outbox sends it.  What can
happen to a row:

* ``sent`` — the server took it;
* ``pending`` — a transient failure (a ``4xx`` reply, a timeout, a lost or
  refused connection, a login the server refused — that one also ends the run
  with exit code 3, for a person to fix the password): tried again on a later run,
  waiting longer each time (:meth:`ForwardPolicy.delay`), up to ``attempts``
  tries spread over ``retry_days``; then ``failed``;
* ``refused`` — a permanent refusal (``5xx``), kept with the server's reason;
* ``skipped`` — the mail is older than ``forward_max_age_days``;
* ``sending`` — an attempt is under way; a row still ``sending`` when a run
  starts was interrupted (a kill during the send) and may have gone out.

**At most two copies.**  A forward's Message-ID is derived from (message,
destination), so every copy of one forward carries the same id.  Two states
lead to a re-send of a forward that may already have gone out: a row found
``sending`` by the next run, and a send whose connection was lost after the
data went out (``maybe sent``).  Each counts as one possible copy; the outbox
sends again only while fewer than two possible copies exist, then records the
forward ``uncertain`` and never sends it again.  So the receiving side sees at
most two copies with the same Message-ID, and one in every other case.

The outbox keeps the original bytes only while a forward may still be sent;
they are dropped as soon as the row is settled.  Its table lives in the state
file, created here (:func:`ensure_schema`).
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError, ForwardError
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.plan import log_key
from assoc_ai_core.jobs.state import StateStore

if TYPE_CHECKING:
    from assoc_ai_core.jobs.settings import TriageSettings

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS forward_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance TEXT NOT NULL,
    key TEXT NOT NULL,
    destination TEXT NOT NULL,
    category TEXT,
    subject TEXT,
    raw BLOB,
    mail_date TEXT,
    message_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    maybe_sent INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (instance, key, destination)
);
CREATE INDEX IF NOT EXISTS forward_outbox_due ON forward_outbox (instance, status, next_attempt_at)
"""


def ensure_schema(state: StateStore) -> None:
    """Create the outbox table in the state file when it is not there yet."""
    with state.transaction():
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                state.execute(statement)


class OutboxStatus(StrEnum):
    """Where one forward stands (see the module docstring)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    REFUSED = "refused"
    UNCERTAIN = "uncertain"
    SKIPPED = "skipped"


#: rows the outbox may still send
OPEN = frozenset({OutboxStatus.PENDING, OutboxStatus.SENDING})


class Sender(Protocol):
    """What sends one forward (:class:`~assoc_ai_core.jobs.forwarding.SmtpForwarder`)."""

    def send(self, raw: bytes, to: str, *, category: str, key: str, subject: str = "") -> str:
        """Send ``raw`` wrapped in a forward to ``to``; return the forward's Message-ID."""
        ...


@dataclass(frozen=True)
class ForwardPolicy:
    """How long forwards are tried, and for which mail.

    ``max_age_days``: never forward mail older than that (None or 0: no limit);
    ``attempts``: tries in all before a forward is ``failed``; ``retry_days``:
    the days those tries are spread over (each wait twice the one before).
    """

    max_age_days: int | None = None
    attempts: int = 10
    retry_days: float = 2.0

    def delay(self, failed: int) -> timedelta:
        """The wait after the ``failed``-th failed try: doubling, so the last try falls ``retry_days`` after the first."""
        if self.attempts <= 1:
            return timedelta(0)
        first = self.retry_days * 86400 / (2 ** (self.attempts - 1) - 1)
        return timedelta(seconds=first * 2 ** (max(failed, 1) - 1))

    def too_old(self, mail_date: datetime | None, now: datetime) -> bool:
        """Whether mail dated ``mail_date`` is past ``max_age_days`` (undated mail is not)."""
        if not self.max_age_days or mail_date is None:
            return False
        return now - mail_date > timedelta(days=self.max_age_days)

    def too_old_reason(self) -> str:
        """The reason recorded for a forward not sent because the mail is too old."""
        return tr(f"courrier de plus de {self.max_age_days} jours : jamais transféré (forward_max_age_days)",
                  f"mail older than {self.max_age_days} days: never forwarded (forward_max_age_days)")

    @classmethod
    def from_settings(cls, settings: TriageSettings) -> ForwardPolicy:
        """The policy of a job's ``[triage] forward_*`` settings."""
        return cls(settings.forward_max_age_days, settings.forward_attempts, settings.forward_retry_days)


def mail_date(raw: bytes) -> datetime | None:
    """The ``Date`` of a message, in UTC (None when missing or unreadable); reads the header only."""
    value = BytesHeaderParser().parsebytes(raw).get("Date")
    try:
        parsed = email.utils.parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class OutboxRow:
    """One forward in the outbox, as the status command shows it (never the message itself)."""

    instance: str
    key: str
    destination: str
    status: OutboxStatus
    attempts: int
    maybe_sent: int
    message_id: str | None
    next_attempt_at: str | None
    reason: str | None
    category: str | None
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: Any) -> OutboxRow:
        """A row of the ``forward_outbox`` table."""
        return cls(row["instance"], row["key"], row["destination"], OutboxStatus(row["status"]), row["attempts"],
                   row["maybe_sent"], row["message_id"], row["next_attempt_at"], row["reason"], row["category"],
                   row["created_at"], row["updated_at"])

    def as_dict(self) -> dict[str, Any]:
        """The row for ``--json`` output."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


class Outbox:
    """The forwards of one mailbox instance (see the module docstring); ``clock`` is for tests."""

    def __init__(self, state: StateStore, instance: str, policy: ForwardPolicy | None = None, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.state = state
        self.instance = instance
        self.policy = policy or ForwardPolicy()
        self.clock = clock or (lambda: datetime.now(UTC))
        # set after a connection-level failure: the other forwards of this run wait instead of each timing out
        self.unreachable: str | None = None
        ensure_schema(state)

    # ------------------------------------------------------------------ rows
    def get(self, key: str, destination: str) -> OutboxRow | None:
        """The outbox row of one forward, if any."""
        row = self.state.execute("SELECT * FROM forward_outbox WHERE instance=? AND key=? AND destination=?",
                                 (self.instance, key, destination)).fetchone()
        return OutboxRow.from_row(row) if row else None

    def enqueue(self, key: str, destination: str, raw: bytes, *, category: str, subject: str) -> None:
        """Add a forward to send (nothing when it is already there: handing it over twice sends it once)."""
        now = _iso(self.clock())
        date = mail_date(raw)
        self.state.execute(
            "INSERT OR IGNORE INTO forward_outbox (instance, key, destination, category, subject, raw, mail_date,"
            " status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (self.instance, key, destination, category, subject, raw, _iso(date) if date else None,
             OutboxStatus.PENDING.value, now, now))

    def _update(self, key: str, destination: str, **values: Any) -> None:
        values["updated_at"] = _iso(self.clock())
        if "status" in values and OutboxStatus(values["status"]) not in OPEN:
            values.update(raw=None, subject=None)  # settled: the message itself is no longer kept
        columns = ", ".join(f"{name}=?" for name in values)
        self.state.execute(f"UPDATE forward_outbox SET {columns} WHERE instance=? AND key=? AND destination=?",
                           (*values.values(), self.instance, key, destination))

    def due(self) -> list[tuple[str, str]]:
        """(key, destination) of the forwards to try now, oldest first."""
        rows = self.state.execute(
            "SELECT key, destination FROM forward_outbox WHERE instance=? AND status IN (?, ?)"
            " AND (next_attempt_at IS NULL OR next_attempt_at<=?) ORDER BY id",
            (self.instance, OutboxStatus.PENDING.value, OutboxStatus.SENDING.value, _iso(self.clock()))).fetchall()
        return [(r[0], r[1]) for r in rows]

    # ------------------------------------------------------------------ sending
    def send(self, key: str, destination: str, sender: Sender) -> OutboxStatus | None:
        """Try one forward now if it is due; its status after (None when there is no such forward)."""
        row = self.state.execute("SELECT * FROM forward_outbox WHERE instance=? AND key=? AND destination=?",
                                 (self.instance, key, destination)).fetchone()
        if row is None:
            return None
        status = OutboxStatus(row["status"])
        if status not in OPEN:
            return status
        waiting = row["next_attempt_at"] is not None and row["next_attempt_at"] > _iso(self.clock())
        if status is OutboxStatus.PENDING and waiting:
            return status
        if status is OutboxStatus.PENDING and self.unreachable:  # not tried: it waits for the next run
            self._update(key, destination, reason=row["reason"] or self.unreachable)
            return status
        return self._try(row, sender)

    def flush(self, sender: Sender, stop: Callable[[], bool] = lambda: False) -> dict[OutboxStatus, int]:
        """Try every due forward (interrupted ones first in line with the others); how many ended in each status."""
        counts: dict[OutboxStatus, int] = {}
        for key, destination in self.due():
            if stop():
                break
            status = self.send(key, destination, sender)
            if status is not None:
                counts[status] = counts.get(status, 0) + 1
        return counts

    def _try(self, row: Any, sender: Sender) -> OutboxStatus:
        """One attempt, made durable as ``sending`` before the data goes out."""
        key, destination = row["key"], row["destination"]
        maybe = row["maybe_sent"]
        if row["status"] == OutboxStatus.SENDING:  # a run was killed during this send: it may have gone out
            maybe += 1
            if maybe >= 2:
                return self._settle(key, destination, OutboxStatus.UNCERTAIN, maybe_sent=maybe, reason=tr(
                    "envoi interrompu deux fois : le transfert a pu partir, il n'est plus renvoyé",
                    "sending interrupted twice: the forward may have gone out, it is not sent again"))
        date = datetime.fromisoformat(row["mail_date"]) if row["mail_date"] else None
        if self.policy.too_old(date, self.clock()):
            return self._settle(key, destination, OutboxStatus.SKIPPED, reason=self.policy.too_old_reason())
        attempts = row["attempts"] + 1
        self._update(key, destination, status=OutboxStatus.SENDING.value, attempts=attempts, maybe_sent=maybe)
        try:
            message_id = sender.send(bytes(row["raw"]), destination, category=row["category"] or "", key=key,
                                     subject=row["subject"] or "")
        except ForwardError as exc:
            return self._failed(key, destination, exc, attempts, maybe)
        except ConfigError:
            self._update(key, destination, status=OutboxStatus.PENDING.value)
            raise
        except ConnectorError as exc:  # no connection, TLS, login: nothing went out; the others wait too
            self.unreachable = str(exc)
            status = self._later(key, destination, attempts, str(exc))
            if isinstance(exc, AuthError):  # a wrong password is the operator's to fix: the run says so (exit 3)
                raise
            return status
        return self._settle(key, destination, OutboxStatus.SENT, message_id=message_id, reason=None)

    def _failed(self, key: str, destination: str, exc: ForwardError, attempts: int, maybe: int) -> OutboxStatus:
        """After a refusal or a connection lost during the send."""
        reason = exc.reason or str(exc)
        if exc.maybe_sent:
            maybe += 1
            if maybe >= 2:
                return self._settle(key, destination, OutboxStatus.UNCERTAIN, maybe_sent=maybe, reason=reason)
            self._update(key, destination, maybe_sent=maybe)
        if exc.transient:
            return self._later(key, destination, attempts, reason)
        log.warning(tr(f"{log_key(key)} : transfert à {destination} refusé définitivement : {reason}",
                       f"{log_key(key)}: forward to {destination} refused for good: {reason}"))
        return self._settle(key, destination, OutboxStatus.REFUSED, reason=reason)

    def _later(self, key: str, destination: str, attempts: int, reason: str) -> OutboxStatus:
        """A transient failure: wait and try again, or give up after the last attempt."""
        if attempts >= self.policy.attempts:
            return self._settle(key, destination, OutboxStatus.FAILED, reason=tr(
                f"abandonné après {attempts} essai(s) : {reason}", f"given up after {attempts} attempt(s): {reason}"))
        when = self.clock() + self.policy.delay(attempts)
        self._update(key, destination, status=OutboxStatus.PENDING.value, next_attempt_at=_iso(when), reason=reason)
        log.warning(tr(f"{log_key(key)} : transfert à {destination} non envoyé ({reason}), nouvel essai après {_iso(when)}.",
                       f"{log_key(key)}: forward to {destination} not sent ({reason}), next try after {_iso(when)}."))
        return OutboxStatus.PENDING

    def _settle(self, key: str, destination: str, status: OutboxStatus, **values: Any) -> OutboxStatus:
        self._update(key, destination, status=status.value, next_attempt_at=None, **values)
        return status

    # ------------------------------------------------------------------ reading
    def rows(self, statuses: Sequence[OutboxStatus] | None = None) -> list[OutboxRow]:
        """This instance's forwards, oldest first (all statuses when None)."""
        return _select(self.state, self.instance, statuses)

    def forget(self, keys: Sequence[str]) -> int:
        """Delete the forwards of these messages (an erasure); returns how many rows went."""
        count = 0
        for key in keys:
            count += self.state.execute("DELETE FROM forward_outbox WHERE instance=? AND key=?",
                                        (self.instance, key)).rowcount
        return count


#: what ``outbox_status`` lists by default: every forward that is not (yet) delivered
NOT_SENT = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.FAILED, OutboxStatus.REFUSED,
            OutboxStatus.UNCERTAIN, OutboxStatus.SKIPPED)


def _select(state: StateStore, instance: str | None, statuses: Sequence[OutboxStatus] | None) -> list[OutboxRow]:
    ensure_schema(state)
    clauses, params = [], []
    if instance:
        clauses.append("instance=?")
        params.append(instance)
    if statuses:
        clauses.append(f"status IN ({','.join('?' * len(statuses))})")
        params += [s.value for s in statuses]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    rows = state.execute(f"SELECT * FROM forward_outbox{where} ORDER BY id", params).fetchall()
    return [OutboxRow.from_row(r) for r in rows]


def outbox_status(settings: TriageSettings, *, statuses: Sequence[OutboxStatus] | None = NOT_SENT,
                  ) -> list[OutboxRow]:
    """The forwards of a job's mailbox not delivered (pending, failed, refused…) with their reasons, oldest first.

    ``statuses=None`` lists every forward, the sent ones too.  Reads the state
    file only; safe while the job runs.
    """
    with StateStore(settings.state_path) as state:
        return _select(state, settings.instance, statuses)


__all__ = ["OutboxStatus", "OPEN", "NOT_SENT", "Sender", "ForwardPolicy", "OutboxRow", "Outbox", "ensure_schema",
           "mail_date", "outbox_status"]
