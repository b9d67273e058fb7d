"""The connector conformance kit, run on the built-in ``local`` (Maildir) connector."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.ext.connectors import Capability, MailboxConnector
from assoc_ai_core.ext.subject import message_key, read_subject, with_tag
from assoc_ai_core.testing import local_harness_for, parametrize_mailbox_checks
from assoc_ai_core.testing.mailbox import (
    CheckSkipped,
    MailboxHarness,
    check_capabilities_are_declared,
    check_construct_does_no_io,
    check_move_is_idempotent,
    sample_mail,
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


# ---- the local connector's own guarantees

def _maildir(root: Path) -> LocalMailConnector:
    conn = LocalMailConnector(LocalMailConfig(path=str(root), create=True))
    conn.open()
    return conn


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_delivered_mail_and_new_folders_are_private(tmp_path: Path) -> None:
    conn = _maildir(tmp_path / "Maildir")
    ref = conn.deliver(sample_mail("Adhésion 2025", "x"))
    conn.ensure_folder("IA/Adhésion")
    [path] = (tmp_path / "Maildir" / "new").glob(f"{ref.uid}*")
    assert _mode(path) == 0o600
    for folder in (tmp_path / "Maildir", tmp_path / "Maildir" / ".IA.Adhésion" / "cur"):
        assert _mode(folder) == 0o700


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_tagging_a_maildir_message_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    conn = _maildir(tmp_path / "Maildir")
    ref = conn.deliver(sample_mail("Adhésion 2025", "x"))
    [original] = (tmp_path / "Maildir" / "new").glob(f"{ref.uid}*")
    os.chmod(original, mode)
    tagged = conn.tag_subject(ref, "[#Adhésion]")
    [copy] = (tmp_path / "Maildir" / "cur").glob(f"{tagged.uid}*")
    assert not original.exists() and _mode(copy) == mode
    assert read_subject(copy.read_bytes()) == "[#Adhésion] Adhésion 2025"
    assert not list((tmp_path / "Maildir" / "tmp").iterdir())  # nothing left half-written


def test_tagging_keeps_line_endings_of_a_message_without_body() -> None:
    raw = b"From: a@b.c\nSubject: =?utf-8?q?Adh=C3=A9sion?= x\n"
    tagged = with_tag(raw, "[#Adhésion]")
    assert b"\r" not in tagged and tagged.endswith(b"\n\n")
    assert read_subject(tagged) == "[#Adhésion] Adhésion x"
    assert message_key(tagged) == message_key(raw)  # no Message-ID: the digest key is carried over
    assert with_tag(tagged, "[#Adhésion]") == tagged
    assert b"X-Assoc-AI" not in tagged  # the marker is for connectors that append copies (IMAP)
    one_field = with_tag(b"Subject: Bonjour\r\n\r\ncorps\r\n", "[#Autre]")
    assert one_field == b"Subject: [#Autre] Bonjour\r\nMessage-ID: <" + message_key(one_field).encode() + b">\r\n\r\ncorps\r\n"


def test_eight_bit_subjects_are_read_as_text() -> None:
    for charset in ("utf-8", "cp1252"):
        raw = "Subject: Adhésion café\r\nMessage-ID: <z@y>\r\n\r\nx\r\n".encode(charset)
        assert read_subject(raw) == "Adhésion café"
        assert read_subject(with_tag(raw, "[#Adhésion]")) == "[#Adhésion] Adhésion café"
