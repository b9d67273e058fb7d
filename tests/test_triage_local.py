"""The triage job end to end on a real Maildir, a real SQLite file and real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.main import cli
from assoc_ai_core.cli.triage import add_commands
from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.errors import CapabilityError, ConfigError, TransientError
from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.ext.subject import read_subject
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob, TriageSettings
from assoc_ai_core.testing.mailbox import (
    RecordingForwarder,
    assert_exactly_once,
    kit_messages,
    mailbox_census,
    sample_mail,
)

ROOT = Path(__file__).resolve().parents[1]
NEW = ROOT / "examples" / "mailbox" / "new"
CATEGORIES = {"Adhesion": "IA/Adhésion", "Autre": "IA/Autre", "Benevolat": "IA/Bénévolat",
              "Evenement": "IA/Événement", "Partenariat": "IA/Partenariat", "Presse": "IA/Presse"}
REVIEW = "À vérifier"

add_commands(cli)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory, trained_model) -> Path:
    from assoc_ai_core.persistence import save_model

    return save_model(trained_model, tmp_path_factory.mktemp("model") / "model.skops")


def write_config(tmp_path: Path, model_file: Path, *, extra: str = "", triage: str = "") -> Path:
    lines = [
        "[mailbox]", 'connector = "local"', 'path = "Maildir"', "create = true", "poll_interval = 0.1", "",
        "[model]", f'path = "{model_file}"', "",
        "[triage]", 'first_run = "all"', 'folders = ["INBOX"]', f'review_folder = "{REVIEW}"', 'state = "state/assoc_ai.sqlite"',
        "poll_interval = 0.5", triage, "",
    ]
    for name, folder in CATEGORIES.items():
        lines += [f"[categories.{name}]", f'folder = "{folder}"', f'label = "{name}"', "tag = true", ""]
    path = tmp_path / "assoc_ai.toml"
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    path.chmod(0o600)
    return path


def maildir(tmp_path: Path) -> LocalMailConnector:
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    return conn


def deliver_examples(conn: LocalMailConnector) -> dict[str, str]:
    """Deliver examples/mailbox/new; return key -> expected category (or 'review')."""
    import csv

    with (NEW / "EXPECTED.csv").open(encoding="utf-8") as fh:
        expected = {r["file"]: r["category"] for r in csv.DictReader(fh)}
    out = {}
    for f in sorted(NEW.glob("*.eml")):
        out[conn.deliver(f.read_bytes()).key] = expected[f.name]
    return out


def tree_snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_run_sorts_tags_labels_and_records(tmp_path: Path, model_file: Path, trained_model) -> None:
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    expected = deliver_examples(conn)
    forwarder = RecordingForwarder()
    with TriageJob(cfg, forwarder=forwarder) as job:
        report = job.run_once()
        assert (report.fetched, report.decided, report.failed) == (13, 13, 0)
        assert report.exit_code == 0
        again = job.run_once()
        assert again.fetched == 0 and again.decided == 0
    census = mailbox_census(conn)
    state_path = tmp_path / "state" / "assoc_ai.sqlite"
    with StateStore(state_path) as state:
        right = 0
        for key, truth in expected.items():
            [(folder, raw)] = census[key]
            record = state.get_message("local", key)
            assert record.status == "done" and record.current_folder == folder
            assert record.model_version.startswith("file:model.skops@")
            assert record.runner_up and record.explanation
            if record.decision == "auto":
                assert folder == CATEGORIES[record.category]
                assert read_subject(raw).startswith(f"[#{record.category}] ")
                assert conn.labels(MailRef(folder, record.current_uid, key)) == [record.category]
                right += record.category == truth
            else:
                assert folder == REVIEW and record.reason
                assert "[#" not in read_subject(raw)
            if truth == "review":  # the truncated message must reach a person
                assert record.decision in ("review", "error") and folder == REVIEW
        runs = state.runs("local")
    assert right >= 9, f"only {right} auto-sorted messages in their expected category"
    assert runs[1]["status"] == "ok" and runs[1]["fetched"] == 13
    assert sum(runs[1]["category_mix"].values()) == 13
    assert 0 < runs[1]["mean_confidence"] <= 1 and 0 < runs[1]["review_share"] < 1
    assert conn.list_folders() == sorted(["INBOX", "IA", *CATEGORIES.values(), REVIEW],
                                         key=lambda f: (f != "INBOX", f))


def test_dry_run_touches_nothing_then_real_run_takes_over(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file, triage="dry_run = true")
    conn = maildir(tmp_path)
    expected = deliver_examples(conn)
    before = tree_snapshot(tmp_path / "Maildir")
    runner = CliRunner()
    result = runner.invoke(cli, ["triage", "run", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "rien n'a été modifié" in result.output and "move → IA/" in result.output
    assert tree_snapshot(tmp_path / "Maildir") == before
    with StateStore(tmp_path / "state" / "assoc_ai.sqlite") as state:
        assert state.get_cursor("local", "INBOX") is None
        records = [state.get_message("local", k) for k in expected]
        assert all(r.dry_run and r.status == "would" for r in records)
        assert {a.status for r in records for a in state.actions_for("local", r.key)} == {"would"}
    result = runner.invoke(cli, ["triage", "run", "--config", str(cfg), "--json"])  # still dry: config says so
    assert json.loads(result.output)["dry_run"] is True and tree_snapshot(tmp_path / "Maildir") == before
    real = TriageSettings.load(cfg)
    with TriageJob(real, dry_run=False) as job:
        report = job.run_once()
    assert report.decided == 13 and report.skipped == 0
    with StateStore(tmp_path / "state" / "assoc_ai.sqlite") as state:
        for key in expected:
            record = state.get_message("local", key)
            assert not record.dry_run and record.status == "done"
            assert "would" not in {a.status for a in state.actions_for("local", key)}
    assert all(len(v) == 1 and v[0][0] != "INBOX" for v in mailbox_census(conn).values())


def test_unreadable_and_unconfigured_go_to_review_with_reason(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    text = cfg.read_text(encoding="utf-8").replace('[categories.Presse]\nfolder = "IA/Presse"\nlabel = "Presse"\ntag = true\n', "")
    cfg.write_text(text, encoding="utf-8")
    conn = maildir(tmp_path)
    empty = conn.deliver(b"From: x@exemple.org\r\nMessage-ID: <empty-1@test>\r\n\r\n")
    press = conn.deliver((NEW / "0002.eml").read_bytes())  # a press request: 'Presse' has no section now
    with TriageJob(cfg) as job:
        job.run_once()
        rec_empty = job.state.get_message("local", empty.key)
        rec_press = job.state.get_message("local", press.key)
    assert rec_empty.decision == "error" and "illisible" in rec_empty.reason and rec_empty.current_folder == REVIEW
    assert rec_press.decision == "review" and rec_press.category == "Presse"
    assert "Presse" in rec_press.reason and rec_press.current_folder == REVIEW


def test_forwarding_is_at_most_once_and_never_for_automated_mail(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file, triage="forward_max_age_days = 0")  # the example mail is from 2025
    text = cfg.read_text(encoding="utf-8").replace(
        '[categories.Adhesion]\nfolder = "IA/Adhésion"\n',
        '[categories.Adhesion]\nfolder = "IA/Adhésion"\nforward = ["tresorier@asso.example"]\n')
    cfg.write_text(text, encoding="utf-8")
    conn = maildir(tmp_path)
    body = (NEW / "0001.eml").read_bytes()  # a membership question
    plain = conn.deliver(body)
    ours = conn.deliver(body.replace(b"Message-ID: <", b"X-Assoc-AI: forwarded\r\nMessage-ID: <loop-"))
    auto = conn.deliver(body.replace(b"Message-ID: <", b"Auto-Submitted: auto-replied\r\nMessage-ID: <auto-"))
    forwarder = RecordingForwarder()
    with TriageJob(cfg, forwarder=forwarder) as job:
        job.run_once()
        job.run_once()
        kinds = {k: [(a.kind, a.status) for a in job.state.actions_for("local", k)] for k in (plain.key, ours.key, auto.key)}
    assert forwarder.counts() == {plain.key: 1}
    assert ("forward", "done") in kinds[plain.key]
    assert ("forward", "skipped") in kinds[ours.key] and ("forward", "skipped") in kinds[auto.key]


def test_missing_smtp_section_is_a_config_error(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file, extra='\n[categories.Autre2]\nforward = "a@b.example"\n')
    maildir(tmp_path)
    with pytest.raises(ConfigError, match=r"\[smtp\]"):
        TriageJob(cfg).open()


def test_correction_is_detected_with_pseudonymised_text(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    raw = (NEW / "0001.eml").read_bytes()
    key = conn.deliver(raw).key
    with TriageJob(cfg) as job:
        job.run_once()
        record = job.state.get_message("local", key)
        assert record.current_folder in (CATEGORIES["Adhesion"], REVIEW)
        person = maildir(tmp_path)  # another, independent instance: a volunteer's mail client
        person.move(MailRef(record.current_folder, record.current_uid, key), CATEGORIES["Benevolat"])
        report = job.run_once()
        assert report.corrections == 1
        assert job.run_once().corrections == 0  # seen once only
        [row] = job.state.corrections("local")
        moved = job.state.get_message("local", key)
    assert (row["from_folder"], row["to_category"], row["to_folder"]) == (
        record.current_folder, "Benevolat", CATEGORIES["Benevolat"])
    assert moved.effective_category == "Benevolat" and moved.current_folder == CATEGORIES["Benevolat"]
    stored = json.loads(row["text"])
    assert stored["text"] and stored["subject"]
    from assoc_ai_core.mail.parsing import parse_message

    sender = parse_message(raw).sender
    assert sender and sender not in row["text"]


def test_resync_replays_without_handling_twice(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    person = maildir(tmp_path)
    keys = [conn.deliver(raw).key for raw, _ in kit_messages(2)]
    with TriageJob(cfg) as job:
        job.run_once()
        # a person puts one message back in the inbox; the stored cursor then comes from "another folder"
        rec = job.state.get_message("local", keys[0])
        person.move(MailRef(rec.current_folder, rec.current_uid, keys[0]), "INBOX")
        job.state.set_cursor("local", "INBOX", {"v": 1, "id": "other-folder", "seen": []})
        report = job.run_once()
    assert report.fetched == 1 and report.skipped == 1 and report.decided == 0
    assert [f for f, _ in mailbox_census(conn)[keys[0]]] == ["INBOX"]


def test_second_run_while_one_is_running_exits_75(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    maildir(tmp_path)
    with TriageJob(cfg):
        with pytest.raises(TransientError) as err:
            TriageJob(cfg).open()
        assert err.value.exit_code == 75
        result = CliRunner().invoke(cli, ["triage", "run", "--config", str(cfg)])
        assert result.exit_code == 75 and "Une autre exécution" in result.output
    with TriageJob(cfg) as job:  # the lock is released on close
        assert job.run_once().exit_code == 0


def test_failed_action_is_retried_next_run(tmp_path: Path, model_file: Path) -> None:
    """Same as above without file permissions: the folder disappears under the job, then comes back."""
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    key = conn.deliver((NEW / "0002.eml").read_bytes()).key
    with TriageJob(cfg) as job:
        job._prepare_folders()
        target = tmp_path / "Maildir" / ".IA.Presse"
        target.rename(tmp_path / "hidden")
        report = job.run_once()
        assert report.failed == 1 and report.exit_code == 1
        assert job.state.get_message("local", key).status == "pending"
        (tmp_path / "hidden").rename(target)
        report = job.run_once()
        assert report.recovered == 1 and report.exit_code == 0
        assert job.state.get_message("local", key).status == "done"
        assert job.state.runs("local")[1]["status"] == "partial"
    assert [f for f, _ in mailbox_census(conn)[key]] == ["IA/Presse"]


# ------------------------------------------------------------------ subprocesses: SIGKILL and SIGTERM
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "assoc_ai_core.cli.main", *args]


def test_cli_run_killed_with_sigkill_then_rerun_is_exactly_once(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    raws = [raw for raw, _ in kit_messages(20, seed=11)]  # 40 messages: the run lasts long enough to be hit
    keys = [conn.deliver(raw).key for raw in raws]
    env = {**os.environ, "ASSOC_AI_LANG": "en"}
    proc = subprocess.Popen(_cli("triage", "run", "--config", str(cfg)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        inbox_new = tmp_path / "Maildir" / "new"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(os.listdir(inbox_new)) <= len(keys) - 3:  # a few messages are through: kill mid-batch
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = len(os.listdir(tmp_path / "Maildir" / "new")) + len(os.listdir(tmp_path / "Maildir" / "cur"))
    assert 0 < left < len(keys)
    done = subprocess.run(_cli("triage", "run", "--config", str(cfg), "--json"), env=env, capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    summary = json.loads(done.stdout)
    with StateStore(tmp_path / "state" / "assoc_ai.sqlite") as state:
        assert [r["status"] for r in state.runs("local")] == ["ok", "killed"]
    assert summary["exit_code"] == 0 and summary["fetched"] > 0
    assert_exactly_once(conn, keys, tmp_path / "state" / "assoc_ai.sqlite", RecordingForwarder(),
                        folders=CATEGORIES, review=REVIEW)


def test_watch_handles_new_mail_and_stops_cleanly_on_sigterm(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    proc = subprocess.Popen(_cli("triage", "watch", "--config", str(cfg)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        state_path = tmp_path / "state" / "assoc_ai.sqlite"
        deadline = time.monotonic() + 60
        while not state_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        key = conn.deliver(sample_mail("Adhésion 2025", "Je voudrais adhérer et payer ma cotisation.")).key
        while time.monotonic() < deadline:
            with StateStore(state_path) as state:
                record = state.get_message("local", key)
            if record is not None and record.status == "done":
                break
            time.sleep(0.2)
        else:
            pytest.fail("watch mode did not handle the new message")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"1 class" in out or b"1 sorted" in out or b"1 \xc3\xa0 v\xc3\xa9rifier" in out
    with StateStore(tmp_path / "state" / "assoc_ai.sqlite") as state:
        assert all(r["status"] in ("ok", "stopped") for r in state.runs("local"))


# ------------------------------------------------------------------ the local connector's read-only trees
def test_local_connector_reads_a_tree_of_eml_files_read_only(example_mailbox: Path) -> None:
    conn = LocalMailConnector(LocalMailConfig(path=str(example_mailbox / "train")))
    conn.open()
    assert conn.list_folders() == ["Adhesion", "Autre", "Benevolat", "Evenement", "Partenariat", "Presse"]
    mails = list(conn.fetch_all("Presse"))
    assert len(mails) == 14
    pages = list(conn.fetch_new("Presse", None, page_size=10))
    assert [len(p.messages) for p in pages] == [10, 4]
    assert list(conn.fetch_new("Presse", pages[-1].cursor)) == []
    assert conn.locate([mails[0].ref])[mails[0].ref.key] == [mails[0].ref]
    with pytest.raises(CapabilityError, match="Maildir"):
        conn.move(mails[0].ref, "Autre")


def test_local_connector_reads_mbox_files(tmp_path: Path, sample_mail) -> None:
    import mailbox

    box = mailbox.mbox(str(tmp_path / "Presse.mbox"))
    for i in range(3):
        box.add(sample_mail(f"Article {i}", "Demande d'interview"))
    box.close()
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path)))
    conn.open()
    assert conn.list_folders() == ["Presse"]
    mails = list(conn.fetch_all("Presse"))
    assert [m.ref.uid for m in mails] == ["mbox:0", "mbox:1", "mbox:2"]
    assert read_subject(mails[2].raw) == "Article 2"
    single = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Presse.mbox")))
    single.open()
    assert single.list_folders() == ["INBOX"] and len(list(single.fetch_all("INBOX"))) == 3


def test_local_connector_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="create = true"):
        LocalMailConnector(LocalMailConfig(path=str(tmp_path / "absent"))).open()
    conn = maildir(tmp_path)
    from assoc_ai_core.errors import ConnectorError

    with pytest.raises(ConnectorError, match="point"):
        conn.ensure_folder("IA/v1.2")
    with pytest.raises(ConnectorError, match="introuvable"):
        list(conn.fetch_all("Nulle/Part"))
    with pytest.raises(ValueError):
        LocalMailConfig(path="")


def test_wait_for_changes(tmp_path: Path, sample_mail) -> None:
    import threading

    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True, poll_interval=0.05))
    conn.open()
    assert conn.wait_for_changes(["INBOX"], 0.2) is False
    timer = threading.Timer(0.2, lambda: maildir(tmp_path).deliver(sample_mail()))
    timer.start()
    started = time.monotonic()
    assert conn.wait_for_changes(["INBOX"], 10) is True
    assert time.monotonic() - started < 5
    timer.join()


# ------------------------------------------------------------------ training from the mailbox
def test_train_from_mailbox_cli(tmp_path: Path, model_file: Path, example_mailbox: Path) -> None:
    from assoc_ai_core.persistence import load_model

    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    for name, folder in CATEGORIES.items():
        conn.ensure_folder(folder)
        for f in sorted((example_mailbox / "train" / name).glob("*.eml"))[:4]:
            conn.deliver(f.read_bytes(), folder)
    out = tmp_path / "from-mailbox.skops"
    result = CliRunner().invoke(cli, ["train", "--from-mailbox", "--config", str(cfg), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "24 messages" in result.output
    model = load_model(out)
    assert sorted(model.classes_) == sorted(CATEGORIES) and model.metadata_["n_train"] == 24


def test_train_from_mailbox_needs_two_category_folders(tmp_path: Path, model_file: Path) -> None:
    from assoc_ai_core.jobs.triage import train_from_mailbox

    cfg = tmp_path / "one.toml"
    cfg.write_text('[mailbox]\nconnector = "local"\npath = "Maildir"\ncreate = true\n'
                   '[triage]\nstate = "s.sqlite"\n[categories.A]\nfolder = "A"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="deux catégories"):
        train_from_mailbox(cfg)


def test_killed_between_tagged_copy_and_removal_of_the_original(tmp_path: Path, model_file: Path) -> None:
    """The hardest instant of a subject tag: the tagged copy is on disk, the original not yet removed."""
    import hashlib

    from assoc_ai_core.ext.subject import with_tag
    from assoc_ai_core.testing.mailbox import SimulatedCrash

    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    ref = conn.deliver((NEW / "0002.eml").read_bytes())  # a press request: label, tag, move

    def crash(stage: str, n: int, kind: str) -> None:
        if stage == "intent" and kind == "tag":
            raise SimulatedCrash(kind)

    with pytest.raises(SimulatedCrash):
        with TriageJob(cfg, checkpoint=crash) as job:
            job.run_once()
    # what the killed process had done of tag_subject: the copy written and renamed into cur/, original still there
    tag = "[#Presse]"
    original = next((tmp_path / "Maildir").glob(f"*/{ref.uid}*"))
    copy_name = f"{ref.uid}.t{hashlib.sha1(tag.encode()).hexdigest()[:8]}:2,{original.name.partition(':2,')[2]}"
    (tmp_path / "Maildir" / "cur" / copy_name).write_bytes(with_tag(original.read_bytes(), tag))
    assert len(mailbox_census(conn)[ref.key]) == 2
    with TriageJob(cfg) as job:
        # a connector that reports both copies: the interrupted action resumes on the message it started on
        record = job.state.get_message("local", ref.key)
        copy_ref = MailRef("INBOX", copy_name.partition(":")[0], ref.key)
        assert job.executor.choose_ref(record, [copy_ref, MailRef("INBOX", ref.uid, ref.key)]).uid == ref.uid
        report = job.run_once()
    assert report.recovered == 1
    [(folder, raw)] = mailbox_census(conn)[ref.key]
    assert folder == "IA/Presse" and read_subject(raw).count("[#Presse]") == 1
    assert_exactly_once(conn, [ref.key], tmp_path / "state" / "assoc_ai.sqlite", RecordingForwarder(),
                        folders=CATEGORIES, review=REVIEW)


def test_job_acknowledges_auto_routed_mail_once_and_never_automated_mail(tmp_path: Path, model_file: Path) -> None:
    """[acknowledgement] enabled: the job itself replies (real SMTP server), once per sender, never to robots."""
    import socket
    from email import message_from_bytes
    from email.policy import default

    import aiosmtpd.controller

    class Collect:
        def __init__(self) -> None:
            self.messages: list[bytes] = []

        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201 - aiosmtpd hook
            self.messages.append(envelope.original_content or envelope.content)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Collect()
    controller = aiosmtpd.controller.Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        extra = (f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nstarttls = false\nsender = "contact@jardins.example"\n'
                 '\n[acknowledgement]\nenabled = true\nperiod_days = 30\ncontact = "bureau@jardins.example"\n')
        cfg = write_config(tmp_path, model_file, extra=extra)
        conn = maildir(tmp_path)
        body = (NEW / "0001.eml").read_bytes()  # a membership question, auto-routed
        conn.deliver(body)
        conn.deliver(body.replace(b"Message-ID: <", b"Message-ID: <second-"))  # same sender, second mail
        conn.deliver(body.replace(b"Message-ID: <", b"Auto-Submitted: auto-replied\r\nMessage-ID: <robot-"))
        with TriageJob(cfg) as job:
            report = job.run_once()
            job.run_once()
        assert report.auto >= 2
        assert len(handler.messages) == 1  # once per sender and period; never to automated mail
        reply = message_from_bytes(handler.messages[0], policy=default)
        assert reply["Auto-Submitted"] == "auto-replied"
        assert "automatiquement" in reply.get_content()
    finally:
        controller.stop()


def test_html_report_includes_the_monitoring_of_the_job(tmp_path: Path, model_file: Path, example_mailbox: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    deliver_examples(conn)
    with TriageJob(cfg) as job:
        job.run_once()
    html = tmp_path / "report.html"
    from assoc_ai_core.cli.main import _wire_optional_commands

    _wire_optional_commands()
    r = CliRunner().invoke(cli, ["evaluate", str(model_file), str(example_mailbox / "train"), "--html", str(html),
                                 "--config", str(cfg)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    page = html.read_text(encoding="utf-8")
    assert "Surveillance du modèle" in page and "Part en revue" in page
