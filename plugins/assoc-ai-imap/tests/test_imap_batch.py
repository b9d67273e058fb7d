"""Batched moves and labels against real Dovecot servers, and the triage job killed in the middle of a batch.

``move_many`` is one ``UID MOVE`` per source folder (one ``UID COPY`` + one
``UID EXPUNGE`` on a server without MOVE) mapped to the new UIDs through
COPYUID; ``add_label_many`` is one ``UID STORE``.  Both are run on a server
with MOVE and on one without it.  The job-level tests kill a real triage
process with SIGKILL at chosen points of a batched page, or stop it dead
half-way through one batched command, and check that the next run leaves
every message once, in one folder, with its keyword once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from assoc_ai_imap import ImapConnector
from assoc_ai_imap.keywords import to_keyword
from imap_support import Mailbox, make_mail
from imapclient import IMAPClient

from assoc_ai_core.errors import ConnectorError
from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob, TriageSettings
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.testing.mailbox import (
    CATEGORY_A,
    CATEGORY_B,
    FOLDER_A,
    FOLDER_B,
    REVIEW,
    SimulatedCrash,
    kit_messages,
    kit_model,
    run_kit_driver,
)

PASSWORD_ENV = "ASSOC_AI_TEST_IMAP_PASSWORD"
FOLDERS = {CATEGORY_A: FOLDER_A, CATEGORY_B: FOLDER_B}


@pytest.fixture(params=["move", "copy_only"])
def box(request: pytest.FixtureRequest) -> Mailbox:
    """A fresh account on the server with MOVE, then on the one without (COPY + UID EXPUNGE)."""
    return request.getfixturevalue("mailbox" if request.param == "move" else "copy_only_mailbox")


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of the IMAP commands the connector sends (through imapclient), by method name."""
    counts: dict[str, int] = {}
    for name in ("move", "copy", "uid_expunge", "add_flags", "search"):
        original = getattr(IMAPClient, name)

        def counted(self: IMAPClient, *args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            counts[_name] = counts.get(_name, 0) + 1
            return _original(self, *args, **kw)

        monkeypatch.setattr(IMAPClient, name, counted)
    return counts


def _by_key(box: Mailbox, folder: str) -> dict[str, list[tuple[int, tuple[bytes, ...]]]]:
    """key -> [(uid, flags)] in ``folder``, read with a separate session."""
    out: dict[str, list[tuple[int, tuple[bytes, ...]]]] = {}
    for uid, raw, flags in box.contents(folder):
        out.setdefault(parse_message(raw).key, []).append((uid, flags))
    return out


def _fill(box: Mailbox, raws: Sequence[bytes]) -> None:
    with box.server.client(box.user, box.password) as client:
        for start in range(0, len(raws), 50):
            client.multiappend("INBOX", list(raws[start:start + 50]))


# ------------------------------------------------------------------ the connector's batch methods
def test_move_many_moves_a_set_with_one_command_and_maps_every_new_uid(box: Mailbox, commands: dict) -> None:
    someone_elses = make_mail(0, subject="Supprimé par quelqu'un d'autre")
    box.append(someone_elses, flags=(b"\\Deleted",))  # a plain EXPUNGE would remove it too
    raws = [make_mail(i) for i in range(1, 7)] + [make_mail(7, message_id=None, subject="Sans identifiant")]
    _fill(box, raws)
    with box.connector() as conn:
        refs = [m.ref for m in conn.fetch_all("INBOX")]
        assert len(refs) == len(raws)
        conn.ensure_folder(FOLDER_A)
        before = dict(commands)
        moved = conn.move_many(refs, FOLDER_A)
        sent = {k: commands.get(k, 0) - before.get(k, 0) for k in ("move", "copy", "uid_expunge")}
        if "MOVE" in conn.server_capabilities:
            assert sent == {"move": 1, "copy": 0, "uid_expunge": 0}
        else:
            assert sent == {"move": 0, "copy": 1, "uid_expunge": 1}
        target = _by_key(box, FOLDER_A)
        assert set(moved) == {r.key for r in refs} == set(target)
        assert all(moved[k] == MailRef(FOLDER_A, str(uids[0][0]), k) for k, uids in target.items())
        assert conn.move_many(refs, FOLDER_A) == moved  # again with the old refs: found where they went
        assert conn.move_many(list(moved.values()), FOLDER_A) == moved  # already there: nothing to do
        assert conn.locate(refs) == {k: [ref] for k, ref in moved.items()}
    assert [raw for _, raw, _ in box.contents("INBOX")] == [someone_elses]
    assert all(len(copies) == 1 for copies in _by_key(box, FOLDER_A).values())


def test_move_many_without_copyuid_finds_the_moved_messages_by_key(box: Mailbox, commands: dict,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(box, [make_mail(i) for i in range(8)])
    with box.connector() as conn:
        refs = [m.ref for m in conn.fetch_all("INBOX")]
        conn.ensure_folder(FOLDER_B)

        def no_copyuid(self: ImapConnector, client: IMAPClient) -> dict[int, int]:
            self._pop_untagged(client, "COPYUID")
            return {}

        monkeypatch.setattr(ImapConnector, "_copyuid_map", no_copyuid)  # a server without UIDPLUS answers
        before = commands.get("search", 0)
        moved = conn.move_many(refs, FOLDER_B)
        searches = commands.get("search", 0) - before
        has_move = "MOVE" in conn.server_capabilities
    target = _by_key(box, FOLDER_B)
    assert {k: r.uid for k, r in moved.items()} == {k: str(uids[0][0]) for k, uids in target.items()}
    assert len(moved) == 8 and box.contents("INBOX") == []
    # the eight keys are OR-ed in one SEARCH (one more on the copy path: what a killed run already copied)
    assert searches == (1 if has_move else 2)


def test_copy_fallback_batch_after_a_crash_between_copy_and_expunge(copy_only_mailbox: Mailbox) -> None:
    box = copy_only_mailbox
    raws = [make_mail(i) for i in range(5)]
    _fill(box, raws)
    with box.connector() as conn:
        refs = [m.ref for m in conn.fetch_all("INBOX")]
        conn.ensure_folder(FOLDER_A)
        with box.server.client(box.user, box.password) as other:  # the killed run had copied two of them
            other.select_folder("INBOX")
            other.copy([int(refs[1].uid), int(refs[3].uid)], FOLDER_A)
        moved = conn.move_many(refs, FOLDER_A)
    target = _by_key(box, FOLDER_A)
    assert box.contents("INBOX") == []
    assert set(target) == set(moved) and all(len(copies) == 1 for copies in target.values())
    assert all(moved[k].uid == str(copies[0][0]) for k, copies in target.items())


def test_move_many_leaves_out_a_message_that_is_gone(box: Mailbox) -> None:
    _fill(box, [make_mail(i) for i in range(4)])
    with box.connector() as conn:
        refs = [m.ref for m in conn.fetch_all("INBOX")]
        with box.server.client(box.user, box.password) as other:  # a volunteer deletes one meanwhile
            other.select_folder("INBOX")
            other.add_flags([int(refs[2].uid)], [b"\\Deleted"])
            other.uid_expunge([int(refs[2].uid)])
        moved = conn.move_many(refs, FOLDER_B)
        assert set(moved) == {refs[0].key, refs[1].key, refs[3].key}
        with pytest.raises(ConnectorError):  # what the host's one-by-one retry reports for it
            conn.move(refs[2], FOLDER_B)
    assert set(_by_key(box, FOLDER_B)) == set(moved)


def test_move_many_recreates_a_folder_deleted_meanwhile(mailbox: Mailbox) -> None:
    _fill(mailbox, [make_mail(i) for i in range(3)])
    with mailbox.connector() as conn:
        refs = [m.ref for m in conn.fetch_all("INBOX")]
        conn.ensure_folder("Presse")
        with mailbox.server.client(mailbox.user, mailbox.password) as other:
            other.delete_folder("Presse")
        moved = conn.move_many(refs, "Presse")
    assert len(moved) == 3 and len(mailbox.contents("Presse")) == 3


def test_add_label_many_stores_the_keyword_with_one_command(box: Mailbox, commands: dict) -> None:
    _fill(box, [make_mail(i) for i in range(6)])
    keyword = to_keyword(CATEGORY_A).encode()
    with box.connector() as conn:
        refs = [m.ref for m in conn.fetch_all("INBOX")]
        before = commands.get("add_flags", 0)
        conn.add_label_many(refs, CATEGORY_A)
        assert commands.get("add_flags", 0) - before == 1
        conn.add_label_many(refs, CATEGORY_A)
        inbox = _by_key(box, "INBOX")
        assert all([f for f in flags if f == keyword] == [keyword] for ((_, flags),) in inbox.values())

        with box.server.client(box.user, box.password) as other:  # one message leaves the folder meanwhile
            other.create_folder("Ailleurs")
            other.select_folder("INBOX")
            other.copy([int(refs[4].uid)], "Ailleurs")
            other.add_flags([int(refs[4].uid)], [b"\\Deleted"])
            other.uid_expunge([int(refs[4].uid)])
        with pytest.raises(ConnectorError):
            conn.add_label_many(refs, CATEGORY_B)
    other_keyword = to_keyword(CATEGORY_B).encode()
    labelled = {k for k, ((_, flags),) in _by_key(box, "INBOX").items() if other_keyword in flags}
    assert labelled == {r.key for i, r in enumerate(refs) if i != 4}  # the others were labelled all the same


# ------------------------------------------------------------------ the job, batched and killed
def _config(box: Mailbox, tmp_path: Path, *, page_size: int) -> dict[str, Any]:
    section = {"connector": "imap", "host": "127.0.0.1", "port": box.server.port, "username": box.user,
               "password": {"env": PASSWORD_ENV}, "tls": "none", "timeout": 10.0, "retries": 2, "retry_wait": 0.05}
    return {
        "mailbox": section,
        "triage": {"first_run": "all", "folders": ["INBOX"], "review_folder": REVIEW, "state": str(tmp_path / "state.sqlite"),
                   "page_size": page_size},
        "categories": {name: {"folder": folder, "label": name} for name, folder in FOLDERS.items()},
    }


def _assert_each_once_labelled_once(box: Mailbox, keys: Sequence[str], state_path: Path) -> None:
    census: dict[str, list[tuple[str, tuple[bytes, ...]]]] = {}
    with box.connector() as conn:
        folders = conn.list_folders()
    for folder in folders:
        for key, copies in _by_key(box, folder).items():
            census.setdefault(key, []).extend((folder, flags) for _, flags in copies)
    assert set(census) == set(keys), "a message appeared or disappeared"
    with StateStore(state_path) as state:
        for key in keys:
            assert len(census[key]) == 1, f"{key} is in {[f for f, _ in census[key]]}"
            folder, flags = census[key][0]
            record = state.get_message("imap", key)
            assert record is not None and record.status == "done", (key, record and record.status)
            assert record.current_folder == folder
            keywords = [f for f in flags if f.startswith(b"$")]
            if record.decision == "auto":
                assert folder == FOLDERS[record.category]
                assert keywords == [to_keyword(record.category).encode()], (key, flags)
            else:
                assert folder == REVIEW and keywords == [], (key, folder, flags)
        assert not state.messages_with_status("imap", "pending")


def _kit_mail(box: Mailbox, n: int) -> list[str]:
    raws = [raw for raw, _ in kit_messages(n, seed=5)]
    _fill(box, raws)
    return [parse_message(raw).key for raw in raws]


def test_the_job_moves_a_page_with_one_command_per_folder(box: Mailbox, tmp_path: Path, commands: dict) -> None:
    keys = _kit_mail(box, 8)
    settings = TriageSettings.from_mapping(_config(box, tmp_path, page_size=100), base_dir=tmp_path)
    with TriageJob(settings, connector=box.connector(), model=kit_model(), model_version="kit") as job:
        report = job.run_once()
    assert report.decided == len(keys) and report.failed == 0 and report.auto
    with StateStore(tmp_path / "state.sqlite") as state:
        records = [state.get_message("imap", k) for k in keys]
    targets = {FOLDERS[r.category] if r.decision == "auto" else REVIEW for r in records}
    assert commands.get("move", 0) + commands.get("copy", 0) == len(targets)
    _assert_each_once_labelled_once(box, keys, tmp_path / "state.sqlite")


@pytest.mark.parametrize("stage, kind", [("act", "move"), ("intent", "move"), ("done", "label")])
def test_sigkill_in_the_middle_of_a_batched_page_then_rerun(box: Mailbox, tmp_path: Path, stage: str,
                                                           kind: str) -> None:
    """A real triage process SIGKILLed inside its first batched page, then run again to the end."""
    from assoc_ai_core.persistence import save_model

    keys = _kit_mail(box, 15)
    cfg = {"config": _config(box, tmp_path, page_size=10), "base": str(tmp_path),
           "model": str(save_model(kit_model(), tmp_path / "kit.skops")),
           "forwards": str(tmp_path / "forwards.jsonl"), "signal": str(tmp_path / "reached")}
    env = {PASSWORD_ENV: box.password}
    run_kit_driver({**cfg, "stage": stage, "at": 0, "kind": kind}, env, kill=True)
    with StateStore(tmp_path / "state.sqlite") as state:
        pending = state.messages_with_status("imap", "pending")
    assert 1 < len(pending) <= 10, "the kill must land inside the first page, with its batch in flight"
    assert len(box.contents("INBOX")) > len(keys) - 10  # the other pages were not touched
    run_kit_driver({**cfg, "stage": None, "at": 0}, env, kill=False)
    _assert_each_once_labelled_once(box, keys, tmp_path / "state.sqlite")


class _StopsHalfWay(ImapConnector):
    """Does the first half of one batched command for real, then stops dead (a kill between two chunks)."""

    crash = "move_many"

    def _half(self, name: str, refs: Sequence[MailRef], target: str) -> None:
        if name == self.crash and len(refs) > 1:
            getattr(ImapConnector, name)(self, refs[: len(refs) // 2], target)
            raise SimulatedCrash(f"{name} stopped half-way")

    def move_many(self, refs: Sequence[MailRef], folder: str) -> dict[str, MailRef]:
        self._half("move_many", refs, folder)
        return super().move_many(refs, folder)

    def add_label_many(self, refs: Sequence[MailRef], label: str) -> None:
        self._half("add_label_many", refs, label)
        super().add_label_many(refs, label)


@pytest.mark.parametrize("crash", ["move_many", "add_label_many"])
def test_a_batch_done_half_way_on_the_server_is_finished_by_the_next_run(box: Mailbox, tmp_path: Path,
                                                                        crash: str) -> None:
    keys = _kit_mail(box, 10)
    settings = TriageSettings.from_mapping(_config(box, tmp_path, page_size=100), base_dir=tmp_path)
    halfway = _StopsHalfWay(box.server.config(box.user, box.password))
    halfway.crash = crash
    with pytest.raises(SimulatedCrash):
        with TriageJob(settings, connector=halfway, model=kit_model(), model_version="kit") as job:
            job.run_once()
    halfway.close()
    with TriageJob(settings, connector=box.connector(), model=kit_model(), model_version="kit") as job:
        report = job.run_once()
    assert report.recovered == len(keys) and report.failed == 0
    _assert_each_once_labelled_once(box, keys, tmp_path / "state.sqlite")
