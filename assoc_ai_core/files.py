"""Files that hold personal data or models: atomic writes, private modes, and a lock.

:func:`atomic_write` is the one way assoc-ai replaces a file: written beside
the target, flushed and fsynced, renamed over it, and the folder fsynced, so a
crash leaves either the old file or the new one, never half of each.  Files
that can hold personal data are created mode 0600 and their folders 0700,
whatever the umask (:func:`private_dir`).

The lock: a non-blocking exclusive lock on an open file, on Unix and on Windows.
The triage job and the privacy commands take it on the state file's ``.lock``
so two runs never work on the same mailbox at once (cron overlap, a person
running ``privacy erase`` during ``triage watch``).  Windows has no ``fcntl``:
Outlook users schedule the job with the Task Scheduler, so ``msvcrt`` is used
there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "private_dir", "fsync_dir", "PRIVATE_FILE", "PRIVATE_DIR", "try_lock", "unlock"]

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in ``path`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename itself still happened
        pass
    finally:
        os.close(fd)


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and its parents) if needed; a folder created here is mode 0700 whatever the umask."""
    p = Path(path)
    if not p.is_dir():
        p.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        with contextlib.suppress(OSError):  # mkdir's mode is filtered by the umask: set it outright
            os.chmod(p, PRIVATE_DIR)
    return p


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = PRIVATE_FILE) -> Path:
    """Replace ``path`` with ``data`` atomically and durably; the file gets ``mode`` whatever the umask.

    Text is written as UTF-8.  Readers see the old content or the new, never a
    mix; a crash leaves at most a hidden temporary file beside the target.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def try_lock(fd: int) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def unlock(fd: int) -> None:
        """Release the lock."""
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def try_lock(fd: int) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def unlock(fd: int) -> None:
        """Release the lock."""
        fcntl.flock(fd, fcntl.LOCK_UN)
