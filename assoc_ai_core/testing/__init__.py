"""Test helpers for assoc-ai and its plugins (a pytest plugin, loaded automatically).

Fixtures:

* ``sample_mail`` — a factory of RFC 822 bytes:
  ``sample_mail("Adhésion 2025", "Bonjour…", sender="a@b.fr", message_id=False)``;
* ``local_maildir`` — a fresh, empty Maildir (a :class:`pathlib.Path`);
* ``local_harness`` — a :class:`~assoc_ai_core.testing.mailbox.MailboxHarness`
  over that Maildir with the built-in ``local`` connector.

Conformance: :func:`parametrize_mailbox_checks` turns the kit of
:mod:`assoc_ai_core.testing.mailbox` into one test per check; ``check_mailbox_connector``
runs them all at once.  Heavy modules are imported only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "parametrize_mailbox_checks", "check_mailbox_connector", "sample_mail", "local_maildir", "local_harness_for",
    "local_harness",
]


def parametrize_mailbox_checks(*, triage: bool = True, subprocess: bool = True) -> Any:
    """``@parametrize_mailbox_checks()`` on a test taking ``check``: one test per conformance check.

    The test calls ``check(harness, tmp_path)``; a check that does not apply to
    the connector (capability not declared) is reported as skipped with the reason.
    """
    from assoc_ai_core.testing.mailbox import mailbox_checks

    checks = [_skipping(c) for c in mailbox_checks(triage=triage, subprocess=subprocess)]
    return pytest.mark.parametrize("check", checks, ids=[c.__name__ for c in checks])


def _skipping(check: Callable[..., None]) -> Callable[..., None]:
    from assoc_ai_core.testing.mailbox_harness import CheckSkipped

    def run(harness: Any, tmp_path: Path) -> None:
        try:
            check(harness, tmp_path)
        except CheckSkipped as why:
            pytest.skip(str(why))

    run.__name__ = check.__name__
    run.__doc__ = check.__doc__
    return run


def check_mailbox_connector(harness_factory: Callable[[Path], Any], tmp_path: Path, **kwargs: Any) -> dict[str, str]:
    """Run the whole conformance kit (see :func:`assoc_ai_core.testing.mailbox.check_mailbox_connector`)."""
    from assoc_ai_core.testing.mailbox import check_mailbox_connector as run_all

    return run_all(harness_factory, tmp_path, **kwargs)


@pytest.fixture
def sample_mail() -> Callable[..., bytes]:
    """Factory of RFC 822 bytes (see :func:`assoc_ai_core.testing.mail_samples.sample_mail`)."""
    from assoc_ai_core.testing.mail_samples import sample_mail as factory

    return factory


@pytest.fixture
def local_maildir(tmp_path: Path) -> Path:
    """An empty Maildir (``cur/``, ``new/``, ``tmp/``) in a temporary folder."""
    from assoc_ai_core.default_plugins.local_maildir import make_maildir

    root = tmp_path / "Maildir"
    make_maildir(root)
    return root


def local_harness_for(root: Path) -> Any:
    """A conformance harness over the Maildir at ``root`` with the built-in ``local`` connector."""
    from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
    from assoc_ai_core.default_plugins.local_maildir import make_maildir
    from assoc_ai_core.testing.mailbox_harness import MailboxHarness

    make_maildir(root)

    def deliver(folder: str, raw: bytes) -> None:
        conn = LocalMailConnector(LocalMailConfig(path=str(root)))
        conn.open()
        try:
            conn.deliver(raw, folder)
        finally:
            conn.close()

    return MailboxHarness(
        make=lambda: LocalMailConnector(LocalMailConfig(path=str(root), poll_interval=0.1)),
        deliver=deliver,
        section={"connector": "local", "path": str(root)},
    )


@pytest.fixture
def local_harness(local_maildir: Path) -> Any:
    """A :class:`~assoc_ai_core.testing.mailbox.MailboxHarness` over ``local_maildir``."""
    return local_harness_for(local_maildir)
