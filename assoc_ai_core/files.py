"""Files that hold personal data or models: atomic writes, private modes, and a lock.

:func:`atomic_write` is the one way assoc-ai replaces a file: written beside
the target, flushed and fsynced, renamed over it, and the folder fsynced, so a
crash leaves either the old file or the new one, never half of each.  Files
that can hold personal data are created mode 0600 and their folders 0700,
whatever the umask (:func:`private_dir`, :func:`private_file`).

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
import sys
import tempfile
from pathlib import Path

__all__ = [
    "atomic_write", "private_dir", "private_file", "fsync_dir", "PRIVATE_FILE", "PRIVATE_DIR", "try_lock", "unlock",
    "acquire_lock", "release_lock", "read_secret_key",
]

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
    """Create ``path`` (and its parents) if needed; a folder created here is mode 0700 whatever the umask.

    An existing folder keeps its mode: it may be shared on purpose.
    """
    p = Path(path)
    if not p.is_dir():
        p.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        with contextlib.suppress(OSError):  # mkdir's mode is filtered by the umask: set it outright
            os.chmod(p, PRIVATE_DIR)
    return p


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty with mode 0600 (whatever the umask) when it does not exist yet; returns it.

    For files another library fills in place (SQLite): created here first, they
    never exist with the umask's mode, not even for an instant.  An existing
    file is left as it is.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return p
    try:
        os.chmod(p, PRIVATE_FILE)  # a umask can only remove bits, and 0o200 in it would make the file read-only
    finally:
        os.close(fd)
    fsync_dir(p.parent)
    return p


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = PRIVATE_FILE,
                 exclusive: bool = False) -> Path:
    """Replace ``path`` with ``data`` atomically and durably; the file gets ``mode`` whatever the umask.

    Text is written as UTF-8.  Readers see the old content or the new, never a
    mix; a crash leaves at most a hidden temporary file beside the target.
    With ``exclusive=True`` an existing ``path`` is never replaced
    (:class:`FileExistsError`): the first of two concurrent writers wins.
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
        if exclusive:
            os.link(tmp, target)  # unlike a rename, a link never replaces an existing file
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
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


def acquire_lock(path: str | os.PathLike[str]) -> int | None:
    """Open (creating it 0600) and lock ``path`` without waiting: the open descriptor, or None when it is held.

    Give the descriptor back to :func:`release_lock`.
    """
    fd = os.open(private_file(path), os.O_RDWR)
    if try_lock(fd):
        return fd
    os.close(fd)
    return None


def release_lock(fd: int) -> None:
    """Release a lock taken with :func:`acquire_lock` and close its descriptor."""
    try:
        with contextlib.suppress(OSError):
            unlock(fd)
    finally:
        os.close(fd)


def read_secret_key(path: str | os.PathLike[str], *, create: bool = False) -> bytes:
    """The installation's secret key from ``path`` (hex text, or any text taken as UTF-8 bytes).

    With ``create``, a missing file is made with 32 random bytes in hex,
    mode 0600 in a 0700 folder; two first runs racing both end up with the
    key that was written first.  The same file keys the state's sender hashes
    and the model's sender tokens.
    """
    import secrets

    p = Path(path)
    if create and not p.exists():
        private_dir(p.parent)
        try:
            atomic_write(p, secrets.token_hex(32) + "\n", exclusive=True)
        except FileExistsError:
            pass
    text = p.read_text(encoding="utf-8").strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        return text.encode("utf-8")
