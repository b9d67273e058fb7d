"""End to end: ``assoc-ai triage run --config FILE --once`` on a Dovecot mailbox.

A model is trained on the example mailbox (``examples/mailbox/train``); the
INBOX receives the example's new mail, the test mailbox of tests/fixtures, a
few SpamAssassin messages and one unreadable message.  The job runs as a real subprocess through the command
line; it is killed with SIGKILL in the middle of the batch and run again, then
a volunteer moves a message to another category with a separate IMAP session,
then the server's UIDVALIDITY changes.  After each step every message must be
in exactly one folder, handled once and tagged once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from assoc_ai_imap.testing import DovecotServer
from imap_support import Mailbox

from assoc_ai_core.ext import subject as hdr
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.mail.parsing import parse_message

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "mailbox"
FIXTURES = REPO / "tests" / "fixtures"
CLI = Path(sys.executable).with_name("assoc-ai")
REVIEW = "À vérifier"
CATEGORIES = {  # category -> folder (None: stays in INBOX, labelled and tagged)
    "Adhesion": "IA/Adhésion", "Benevolat": "IA/Bénévolat", "Evenement": "IA/Événement",
    "Partenariat": "IA/Partenariat", "Presse": "IA/Presse", "Autre": None,
}
UNREADABLE = b"From: inconnu@exemple.org\r\nTo: contact@asso.example\r\nMessage-ID: <vide-e2e@asso.test>\r\n\r\n"
PASSWORD_ENV = "ASSOC_AI_TEST_IMAP_PASSWORD"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the example mailbox's sorted folders, saved with skops."""
    from assoc_ai_core.api import train
    from assoc_ai_core.mail.sources import load_dataset
    from assoc_ai_core.persistence import save_model

    assert (EXAMPLE / "train").is_dir(), "examples/mailbox/train is part of the repository"
    path = tmp_path_factory.mktemp("model") / "model.skops"
    save_model(train(load_dataset(EXAMPLE / "train").messages), path)
    return path


def _write_config(path: Path, box: Mailbox, model: Path, state: Path) -> None:
    lines = [
        "[mailbox]", 'connector = "imap"', 'host = "127.0.0.1"', f"port = {box.server.port}",
        f'username = "{box.user}"', f'password = {{ env = "{PASSWORD_ENV}" }}', 'tls = "none"',
        "timeout = 20", "retries = 2", "retry_wait = 0.2", "",
        "[triage]", 'first_run = "all"', 'folders = ["INBOX"]', f'review_folder = "{REVIEW}"', f'state = "{state}"', "page_size = 10", "",
        "[model]", f'path = "{model}"', "",
    ]
    for name, folder in CATEGORIES.items():
        lines += [f"[categories.{name}]", f'label = "{name}"', "tag = true"]
        if folder:
            lines.append(f'folder = "{folder}"')
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    os.chmod(path, 0o600)


def _run_cli(config: Path, box: Mailbox, *, kill_after_moves: int | None = None,
             timeout: float = 300) -> dict | None:
    """Run one triage pass; with ``kill_after_moves``, SIGKILL it once that many mails left the INBOX."""
    env = {**os.environ, PASSWORD_ENV: box.password, "ASSOC_AI_LOAD_PLUGINS": "assoc-ai-imap",
           "ASSOC_AI_LANG": "en"}
    proc = subprocess.Popen([str(CLI), "triage", "run", "--config", str(config), "--once", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if kill_after_moves is not None:
            with box.server.client(box.user, box.password) as watcher:
                start = watcher.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"]
                deadline = time.monotonic() + timeout
                while proc.poll() is None and time.monotonic() < deadline:
                    left = watcher.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"]
                    if start - left >= kill_after_moves:
                        proc.send_signal(signal.SIGKILL)  # kill -9: no clean-up, no commit
                        proc.wait(30)
                        return None
                    time.sleep(0.01)
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"the job ended (code {proc.returncode}) before being killed mid-batch: {err[-600:]!r}")
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err.decode(errors="replace")[-1500:]
        return json.loads(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _census(box: Mailbox) -> dict[str, list[tuple[str, bytes]]]:
    """key -> [(folder, raw)] over every folder, read with a separate connector."""
    out: dict[str, list[tuple[str, bytes]]] = {}
    with box.connector() as conn:
        for folder in conn.list_folders():
            for mail in conn.fetch_all(folder):
                out.setdefault(mail.ref.key, []).append((folder, mail.raw))
    return out


def _assert_each_once(box: Mailbox, keys: list[str], state_path: Path) -> dict[str, tuple[str, bytes]]:
    census = _census(box)
    assert set(census) == set(keys), "a message appeared or disappeared"
    placed: dict[str, tuple[str, bytes]] = {}
    with StateStore(state_path) as state:
        for key in keys:
            copies = census[key]
            assert len(copies) == 1, f"{key} is in {[f for f, _ in copies]}"
            folder, raw = copies[0]
            record = state.get_message("imap", key)
            assert record is not None and record.status == "done", (key, record and record.status)
            assert record.current_folder == folder
            subject = hdr.read_subject(raw)
            if record.decision == "auto":
                category = record.effective_category or record.category
                assert folder == (CATEGORIES[category] or "INBOX"), (key, category, folder)
                assert subject.count(f"[#{record.category}]") == 1 and subject.count("[#") == 1, subject
            else:
                assert folder == REVIEW and "[#" not in subject and record.reason, (key, folder, record.reason)
            placed[key] = (folder, raw)
        assert not state.messages_with_status("imap", "pending")
    return placed


@pytest.fixture
def triage_mailbox(private_dovecot: DovecotServer) -> Iterator[tuple[Mailbox, list[str]]]:
    """An INBOX with the example's new mail, the 24 test-mailbox mails, 48 SpamAssassin ones and an unreadable one."""
    user, password = private_dovecot.add_user()
    box = Mailbox(private_dovecot, user, password)
    raws = [p.read_bytes() for p in sorted((EXAMPLE / "new").glob("*.eml"))]
    raws += [p.read_bytes() for p in sorted((FIXTURES / "mailbox").glob("*/*.eml"))]
    with tarfile.open(FIXTURES / "spamassassin_sample.tar.gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        raws += [tar.extractfile(m).read() for m in members[::3][:48]]  # type: ignore[union-attr]
    raws.append(UNREADABLE)
    with private_dovecot.client(user, password) as client:
        for raw in raws:
            client.append("INBOX", raw)
    keys = [parse_message(raw).key for raw in raws]
    assert len(set(keys)) == len(keys) > 80
    yield box, keys


def test_triage_killed_mid_batch_then_corrected_then_resynced(triage_mailbox, model_file: Path,
                                                               tmp_path: Path) -> None:
    box, keys = triage_mailbox
    state_path = tmp_path / "state.sqlite"
    config = tmp_path / "imap_triage.toml"
    _write_config(config, box, model_file, state_path)

    # 1. killed with SIGKILL in the middle of the batch, then run again to the end
    assert _run_cli(config, box, kill_after_moves=5) is None
    with StateStore(state_path) as state:
        handled = [k for k in keys if state.get_message("imap", k) is not None]
    assert 0 < len(handled) < len(keys), "the kill must land in the middle of the batch"
    report = _run_cli(config, box)
    assert report is not None and report["failed"] == 0
    placed = _assert_each_once(box, keys, state_path)
    with StateStore(state_path) as state:
        unreadable = state.get_message("imap", parse_message(UNREADABLE).key)
        assert unreadable is not None and unreadable.decision == "error"
        assert placed[unreadable.key][0] == REVIEW and "no body and no subject" in (unreadable.reason or "")
        auto = [state.get_message("imap", k) for k in keys]
        auto = [r for r in auto if r is not None and r.decision == "auto"]
    assert auto, "the model must sort some of the mail on its own"
    with box.server.client(box.user, box.password) as other:  # labels became IMAP keywords
        sample = auto[0]
        other.select_folder(sample.current_folder, readonly=True)
        flags = other.fetch([int(sample.current_uid)], ["FLAGS"])[int(sample.current_uid)][b"FLAGS"]
        assert f"${sample.category}".encode() in flags

    # 2. nothing is done twice on a second run
    again = _run_cli(config, box)
    assert again is not None and again["auto"] == again["review"] == again["errors"] == 0

    # 3. a volunteer files a sorted message under another category: a correction
    moved = next(r for r in auto if CATEGORIES[r.category] and r.category != "Presse")
    with box.server.client(box.user, box.password) as other:
        other.select_folder(moved.current_folder)
        other.move([int(moved.current_uid)], CATEGORIES["Presse"])
    corrected = _run_cli(config, box)
    assert corrected is not None and corrected["corrections"] == 1 and corrected["auto"] == 0
    with StateStore(state_path) as state:
        rows = state.corrections("imap")
        assert [(r["key"], r["from_category"], r["to_category"]) for r in rows] == [
            (moved.key, moved.category, "Presse")]
        assert state.get_message("imap", moved.key).current_folder == CATEGORIES["Presse"]

    # 4. the INBOX gets a new UIDVALIDITY (server restored from a backup): replayed, nothing redone
    box.server.stop()
    box.server.change_uidvalidity(box.user)
    box.server.start()
    replay = _run_cli(config, box)
    assert replay is not None and replay["auto"] == replay["review"] == replay["errors"] == 0
    assert replay["skipped"] == sum(1 for r in auto if CATEGORIES[r.category] is None)
    final = _census(box)
    assert all(len(final[k]) == 1 for k in keys)



def test_training_from_folders_volunteers_sorted_over_imap(mailbox: Mailbox, tmp_path: Path) -> None:
    """`assoc-ai train --from-mailbox`: the category folders of the IMAP mailbox are the training set."""
    from assoc_ai_core.jobs.triage import TriageSettings, train_from_mailbox

    categories = {"Adhesion": "Adhésions", "Evenement": "Sorties/Événements", "Presse": "Presse"}
    with mailbox.server.client(mailbox.user, mailbox.password) as client:
        for category, folder in categories.items():
            client.create_folder(folder)
            for path in sorted((EXAMPLE / "train" / category).glob("*.eml")):
                client.append(folder, path.read_bytes())
    settings = TriageSettings.from_mapping({
        "mailbox": {"connector": "imap"},
        "triage": {"first_run": "all", "state": str(tmp_path / "state.sqlite")},
        "categories": {name: {"folder": folder} for name, folder in categories.items()},
    })
    with mailbox.connector() as conn:
        model = train_from_mailbox(settings, connector=conn)
    assert sorted(model.classes_) == sorted(categories)
    assert mailbox.contents("INBOX") == []  # reading for training changes nothing
    assert all(b"\\Seen" not in flags for _, _, flags in mailbox.contents("Presse"))
