"""The connector conformance kit, run on the built-in ``local`` (Maildir) connector."""

from __future__ import annotations

from pathlib import Path

import pytest

from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.ext.connectors import Capability, MailboxConnector
from assoc_ai_core.testing import local_harness_for, parametrize_mailbox_checks
from assoc_ai_core.testing.mailbox import (
    CheckSkipped,
    MailboxHarness,
    check_capabilities_are_declared,
    check_construct_does_no_io,
    check_move_is_idempotent,
)


@parametrize_mailbox_checks()
def test_local_connector_conformance(check, local_harness, tmp_path: Path) -> None:
    check(local_harness, tmp_path)


def test_whole_kit_in_one_call(tmp_path: Path) -> None:
    from assoc_ai_core.testing import check_mailbox_connector

    results = check_mailbox_connector(lambda where: local_harness_for(where / "Maildir"), tmp_path,
                                      triage=False)
    assert set(results.values()) == {"ok"}
    assert "check_move_is_idempotent" in results


# ---- the kit must be able to fail: connectors that break the contract are caught

class _ChattyConnector(LocalMailConnector):
    """Opens its mailbox while being built: forbidden."""

    id = "chatty"

    def __init__(self, config: LocalMailConfig) -> None:
        super().__init__(config)
        Path(config.path, "cur").exists() and list(Path(config.path, "cur").iterdir())
        open(Path(config.path) / "probe", "wb").close()


class _DuplicatingConnector(LocalMailConnector):
    """Moves by copying and forgets to remove the original when asked twice."""

    id = "duplicating"

    def move(self, ref, folder):  # noqa: ANN001, ANN201 - deliberately wrong implementation
        found = self.locate([ref]).get(ref.key, [])
        raw = next(m.raw for m in self.fetch_all(found[0].folder) if m.ref.key == ref.key)
        return self.deliver(raw, folder)


class _ClaimsTooMuch(LocalMailConnector):
    id = "claims"
    capabilities = LocalMailConnector.capabilities | {Capability.FORWARD}


class _NoForward(MailboxConnector):
    id = "noforward"
    Config = LocalMailConfig
    capabilities = frozenset({Capability.READ, Capability.MOVE})

    def list_folders(self):  # noqa: ANN201
        return ["INBOX"]

    def fetch_new(self, folder, cursor, *, page_size=100):  # noqa: ANN001, ANN201
        return iter(())

    def fetch_all(self, folder):  # noqa: ANN001, ANN201
        return iter(())

    def locate(self, refs):  # noqa: ANN001, ANN201
        return {}


def _harness(cls: type, root: Path) -> MailboxHarness:
    base = local_harness_for(root)
    return MailboxHarness(make=lambda: cls(LocalMailConfig(path=str(root))), deliver=base.deliver)


def test_kit_catches_io_in_constructor(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="did I/O"):
        check_construct_does_no_io(_harness(_ChattyConnector, tmp_path / "m"), tmp_path)


def test_kit_catches_non_idempotent_move(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="once"):
        check_move_is_idempotent(_harness(_DuplicatingConnector, tmp_path / "m"), tmp_path)


def test_kit_catches_declared_but_missing_capability(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="move"):
        check_capabilities_are_declared(_harness(_NoForward, tmp_path / "m"), tmp_path)


def test_kit_skips_what_the_connector_does_not_claim(tmp_path: Path) -> None:
    class ReadOnly(LocalMailConnector):
        id = "readonly"
        capabilities = frozenset({Capability.READ})

    with pytest.raises(CheckSkipped, match="move"):
        check_move_is_idempotent(_harness(ReadOnly, tmp_path / "m"), tmp_path)


def test_kit_catches_forward_claimed_but_not_implemented(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="forward"):
        check_capabilities_are_declared(_harness(_ClaimsTooMuch, tmp_path / "m"), tmp_path)
