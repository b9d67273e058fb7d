"""The core's connector conformance kit and the real triage job, run against the loopback Microsoft 365."""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from assoc_ai_m365 import M365Config, M365Connector
from m365_fakeserver import TENANT, FakeM365, FakeMailbox
from m365_support import APP_ID, APP_SECRET, MAILBOX

from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob, TriageSettings
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.testing import parametrize_mailbox_checks
from assoc_ai_core.testing.mailbox import (
    CATEGORY_A,
    CATEGORY_B,
    FOLDER_A,
    FOLDER_B,
    REVIEW,
    MailboxHarness,
    RecordingForwarder,
    SimulatedCrash,
    kit_config,
    kit_messages,
    kit_model,
    mailbox_census,
    sample_mail,
)

SECRET_ENV = "ASSOC_AI_M365_KIT_SECRET"


@pytest.fixture()
def m365_harness(fake: FakeM365, box: FakeMailbox, make_config: Callable[..., M365Config]) -> MailboxHarness:
    def deliver(folder: str, raw: bytes) -> None:
        box.deliver(raw, folder)

    section = {
        "connector": "m365", "mailbox": MAILBOX, "client_id": APP_ID, "tenant": TENANT,
        "client_secret": {"env": SECRET_ENV}, "authority_host": fake.base, "graph_url": fake.graph_url,
        "ca_bundle": str(fake.ca_path), "retry_backoff": 0.02, "max_retries": 3,
    }
    return MailboxHarness(make=lambda: M365Connector(make_config()), deliver=deliver, inbox="Inbox",
                          section=section, env={SECRET_ENV: APP_SECRET}, secret_values=(APP_SECRET,))


@parametrize_mailbox_checks()
def test_m365_conformance(check: Callable[[MailboxHarness, Path], None], m365_harness: MailboxHarness,
                          tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if check.__name__ == "check_tag_subject_is_idempotent":
        # Declared absent on purpose (see the connector's docstring): the kit must see it as not applicable.
        with pytest.raises(pytest.skip.Exception, match="does not declare tag_subject"):
            check(m365_harness, tmp_path)
        return
    check(m365_harness, tmp_path)


def _job(tmp_path: Path, conn: M365Connector, harness: MailboxHarness) -> TriageJob:
    settings = TriageSettings.from_mapping(kit_config(harness, tmp_path, conn.id), base_dir=tmp_path)
    return TriageJob(settings, connector=conn, model=kit_model(), model_version="kit", forwarder=RecordingForwarder())


def test_triage_sees_a_correction_made_directly_in_outlook(
    m365_harness: MailboxHarness, box: FakeMailbox, fake: FakeM365, make_config: Callable[..., M365Config],
    tmp_path: Path
) -> None:
    raws = [raw for raw, _ in kit_messages(2, seed=5)]
    for raw in raws:
        box.deliver(raw)
    keys = [parse_message(raw).key for raw in raws]
    conn = M365Connector(make_config())
    conn.open()
    try:
        with _job(tmp_path, conn, m365_harness) as job:
            first = job.run_once()
            assert first.decided == len(raws) and first.fetched == len(raws)
            auto = [job.state.get_message("m365", k) for k in keys]
            moved = next(r for r in auto if r.current_folder in (FOLDER_A, FOLDER_B))
            # Categories the job gave are on the messages, as Outlook categories with a colour.
            assert {c["displayName"] for c in box.master_categories} <= {CATEGORY_A, CATEGORY_B}
            assert all(c["color"].startswith("preset") for c in box.master_categories)

            # A volunteer drags the message to the other category's folder in Outlook (on the server itself).
            other = FOLDER_B if moved.current_folder == FOLDER_A else FOLDER_A
            msg = next(m for m in box.messages.values() if m.internet_message_id == f"<{moved.key}>")
            box.move(msg, box.folder_by_path(other).id)

            second = job.run_once()
            assert second.corrections == 1 and second.fetched == 0 and second.decided == 0
        with StateStore(tmp_path / "state.sqlite") as state:
            rows = state.corrections("m365")
        assert [(r["key"], r["to_folder"]) for r in rows] == [(moved.key, other)]
        # Nothing was handled twice: each message exists once in the mailbox.
        for key in keys:
            assert len(box.find_by_mid(f"<{key}>")) == 1
    finally:
        conn.close()


def test_triage_forwards_natively_once_with_graph(
    m365_harness: MailboxHarness, box: FakeMailbox, fake: FakeM365, make_config: Callable[..., M365Config],
    tmp_path: Path
) -> None:
    raws = [raw for raw, label in kit_messages(4, seed=11) if label == CATEGORY_A]
    for raw in raws:
        box.deliver(raw)
    conn = M365Connector(make_config())
    conn.open()
    try:
        with _job(tmp_path, conn, m365_harness) as job:
            report = job.run_once()
            job.run_once()
    finally:
        conn.close()
    assert report.forwarded >= 1
    assert len(fake.sent) == report.forwarded  # sent through Graph, not the fallback forwarder
    assert all(b"Auto-Submitted: auto-forwarded" in mime for mime in fake.sent)
    assert {m.folder_id for m in box.in_folder("sentitems")} == {box.well_known("sentitems").id}
    assert REVIEW in M365Connector(make_config()).list_folders()


# ---------------------------------------------------------------------------- exactly once, without the tag
def _batch(box: FakeMailbox, seed: int) -> list[str]:
    raws = [raw for raw, _ in kit_messages(3, seed=seed)]
    raws.append(b"From: inconnu@exemple.org\r\nTo: info@asso-patrimoine.fr\r\nMessage-ID: <vide-%d@kit>\r\n\r\n" % seed)
    raws.append(sample_mail("Re: absence", "Je suis absent.", headers={"Auto-Submitted": "auto-replied"}))
    for raw in raws:
        box.deliver(raw)
    return [parse_message(raw).key for raw in raws]


def assert_each_message_once(conn: M365Connector, box: FakeMailbox, fake: FakeM365, keys: list[str],
                             state_path: Path) -> None:
    """Each key: one copy, where the journal says, in its category's folder with its Outlook category,
    or in review; nothing pending; at most one forward per message."""
    census = mailbox_census(conn)
    with StateStore(state_path) as state:
        for key in keys:
            copies = census.get(key, [])
            assert len(copies) == 1, f"{key}: {[f for f, _ in copies]}"
            folder = copies[0][0]
            record = state.get_message("m365", key)
            assert record is not None and record.status == "done", record
            assert record.current_folder == folder
            if record.decision == "auto":
                assert folder == {CATEGORY_A: FOLDER_A, CATEGORY_B: FOLDER_B}[record.category or ""]
                assert box.find_by_mid(f"<{key}>")[0].categories == [record.category]
            else:
                assert folder == REVIEW and record.reason
        assert state.messages_with_status("m365", "pending") == []
    forwarded = [email.message_from_bytes(m)["References"] for m in fake.sent]
    assert len(forwarded) == len(set(forwarded)), "a message was forwarded twice"


def test_triage_crashed_at_each_journal_step_then_rerun_is_exactly_once(
    m365_harness: MailboxHarness, box: FakeMailbox, fake: FakeM365, make_config: Callable[..., M365Config],
    tmp_path: Path
) -> None:
    keys = _batch(box, seed=7)
    conn = M365Connector(make_config())
    conn.open()
    settings = TriageSettings.from_mapping(kit_config(m365_harness, tmp_path, "m365"), base_dir=tmp_path)
    try:
        for stage, at in (("act", 2), ("intent", 3), ("done", 2), ("act", 1), ("intent", 1)):
            def crash(s: str, n: int, *_kind: str, stage: str = stage, at: int = at) -> None:
                if s == stage and n >= at:
                    raise SimulatedCrash(f"{s}@{n}")

            with pytest.raises(SimulatedCrash):
                with TriageJob(settings, connector=conn, model=kit_model(), model_version="kit", checkpoint=crash) as job:
                    job.run_once()
        with TriageJob(settings, connector=conn, model=kit_model(), model_version="kit") as job:
            job.run_once()
            assert job.run_once().decided == 0
        assert_each_message_once(conn, box, fake, keys, tmp_path / "state.sqlite")
        with StateStore(tmp_path / "state.sqlite") as state:
            unreadable = state.get_message("m365", keys[-2])
            assert unreadable is not None and unreadable.decision == "error" and unreadable.reason
        assert not any(parse_message(m).headers.get("references", "").strip("<>") == keys[-1] for m in fake.sent)
    finally:
        conn.close()


_DRIVER = """
import json, sys, time
from assoc_ai_core.persistence import load_model
from assoc_ai_core.jobs.triage import TriageJob, TriageSettings

cfg = json.loads(open(sys.argv[1], encoding="utf-8").read())

def checkpoint(stage, n, *kind):
    if stage == cfg["stage"] and n >= cfg["at"]:
        open(cfg["reached"], "w").close()
        time.sleep(120)  # the test SIGKILLs us here

settings = TriageSettings.from_mapping(cfg["config"], base_dir=cfg["base"])
with TriageJob(settings, model=load_model(cfg["model"]), model_version="kit", checkpoint=checkpoint) as job:
    job.run_once()
"""


def test_triage_sigkilled_in_a_real_process_then_rerun_is_exactly_once(
    m365_harness: MailboxHarness, box: FakeMailbox, fake: FakeM365, make_config: Callable[..., M365Config],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assoc_ai_core.persistence import save_model

    monkeypatch.setenv(SECRET_ENV, APP_SECRET)  # the secret reference of the [mailbox] section

    keys = _batch(box, seed=9)
    config = kit_config(m365_harness, tmp_path, "m365")
    model = tmp_path / "model.skops"
    save_model(kit_model(), model)
    reached = tmp_path / "reached"
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"config": config, "base": str(tmp_path), "model": str(model), "stage": "act",
                                    "at": 3, "reached": str(reached)}), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(job_file)],
                            env={**os.environ, **m365_harness.env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while not reached.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reached.exists(), proc.stderr.read().decode(errors="replace")[-800:] if proc.poll() is not None else "timeout"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    settings = TriageSettings.from_mapping(config, base_dir=tmp_path)
    with TriageJob(settings, model=kit_model(), model_version="kit") as job:  # built from [mailbox], like the CLI
        report = job.run_once()
        assert report.recovered >= 1
    with M365Connector(make_config()) as conn:
        assert_each_message_once(conn, box, fake, keys, tmp_path / "state.sqlite")
