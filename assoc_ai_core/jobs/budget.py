"""A budget per message: no message can stall the job, nor stall it twice.

Reading hostile mail is bounded in the parser and the cleaner; this is the
job's own guard on top of them, for what slips through:

* a time limit (``[triage] message_seconds``) on parsing and cleaning each
  message, enforced with a real-time timer where Python allows one (the main
  thread of a POSIX process); past it the message goes to review with the
  reason, and the run goes on;
* a size limit (``[triage] message_max_mb``): a larger message is not read;
* a marker file beside the state holding the key of the message being read.
  A run killed while reading one (by the scheduler's timeout, out of memory,
  or a timer that could not fire inside C code) leaves the key there; the
  next run sends that message straight to review instead of reading it
  again.  The marker is written without fsync: it has to survive the
  process, not the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from assoc_ai_core.i18n import decimal, tr


class OverBudget(BaseException):
    """Reading one message took longer than its budget (a BaseException so no ``except Exception`` hides it)."""


class ReadingBudget:
    """The job's per-message limits and the marker of the message being read (see the module docstring)."""

    def __init__(self, marker: Path | None, *, seconds: float, max_bytes: int) -> None:
        self.marker = marker
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self.stalled: str | None = self._read_marker()

    def _read_marker(self) -> str | None:
        if self.marker is None:
            return None
        try:
            key = self.marker.read_bytes()[:4096].decode("utf-8", "replace").strip()
        except OSError:
            return None
        return key or None

    def too_large(self, size: int) -> str | None:
        """The review reason for a message of ``size`` bytes over the size limit, else None."""
        if size <= self.max_bytes:
            return None
        mb, limit = decimal(size / 1e6, 1), decimal(self.max_bytes / 1e6, 1)
        return tr(f"message trop gros pour être lu ({mb} Mo, limite {limit} Mo : [triage] message_max_mb)",
                  f"message too large to read ({mb} MB, limit {limit} MB: [triage] message_max_mb)")

    def stalled_reason(self) -> str:
        """The review reason for the message a killed run was reading."""
        return tr("une exécution précédente s'est arrêtée en lisant ce message : il n'est pas relu",
                  "a previous run stopped while reading this message: it is not read again")

    def over_reason(self) -> str:
        """The review reason for a message whose reading went over the time limit."""
        limit = decimal(self.seconds, 1)
        return tr(f"lecture trop longue (plus de {limit} s : [triage] message_seconds)",
                  f"reading took too long (over {limit} s: [triage] message_seconds)")

    @contextlib.contextmanager
    def reading(self, key: str) -> Iterator[None]:
        """Mark ``key`` as being read and limit the time spent; raises :class:`OverBudget` past the limit."""
        self._mark(key)
        with _timer(self.seconds):
            yield

    def done(self) -> None:
        """Nothing is being read any more (call once the page's decisions are recorded)."""
        self.stalled = None
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def close(self) -> None:
        """Forget the marker (the job is closing normally)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                os.close(self._fd)
            self._fd = None

    def _mark(self, key: str) -> None:
        if self.marker is None:
            return
        if self._fd is None:
            self._fd = os.open(self.marker, os.O_RDWR | os.O_CREAT, 0o600)
        data = key.encode("utf-8", "surrogatepass")[:4000]
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)


@contextlib.contextmanager
def _timer(seconds: float) -> Iterator[None]:
    """Raise :class:`OverBudget` in this thread after ``seconds`` (a no-op where no timer can be set)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise OverBudget

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


__all__ = ["OverBudget", "ReadingBudget"]
