"""Fixtures: real Dovecot servers on 127.0.0.1 with throw-away mailboxes.

``dovecot`` is shared by the whole session (each test gets its own account,
hence an empty mailbox); ``dovecot_copy_only`` announces no MOVE, to exercise
the COPY + UID EXPUNGE fallback; ``private_dovecot`` is a fresh server for
tests that stop it, break it or need it alone.  Every server is stopped at
teardown, also when a test fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from assoc_ai_imap.testing import DovecotServer, dovecot_available
from imap_support import CAPABILITIES_WITHOUT_MOVE, Mailbox


def _new_server(**kwargs: object) -> DovecotServer:
    """A server object, or a failed test saying how to install Dovecot (a missing server is not a skip)."""
    if not dovecot_available():
        pytest.fail("Les tests IMAP ont besoin de Dovecot : apt-get install dovecot-imapd / "
                    "IMAP tests need Dovecot: apt-get install dovecot-imapd", pytrace=False)
    return DovecotServer(**kwargs)  # type: ignore[arg-type]


def _serving(**kwargs: object) -> Iterator[DovecotServer]:
    """A started server for a fixture to yield, stopped afterwards even when the test fails."""
    server = _new_server(**kwargs)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A Dovecot with Debian's default capabilities (MOVE, UIDPLUS, IDLE...)."""
    yield from _serving()


@pytest.fixture(scope="session")
def dovecot_copy_only() -> Iterator[DovecotServer]:
    """A Dovecot that announces UIDPLUS but not MOVE."""
    yield from _serving(capabilities=CAPABILITIES_WITHOUT_MOVE)


@pytest.fixture
def private_dovecot() -> Iterator[DovecotServer]:
    """A Dovecot of its own for one test (may be stopped, restarted, tampered with)."""
    yield from _serving()


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Mailbox:
    """A fresh, empty account on the shared server."""
    user, password = dovecot.add_user()
    return Mailbox(dovecot, user, password)


@pytest.fixture
def copy_only_mailbox(dovecot_copy_only: DovecotServer) -> Mailbox:
    """A fresh account on the server without MOVE."""
    user, password = dovecot_copy_only.add_user()
    return Mailbox(dovecot_copy_only, user, password)
