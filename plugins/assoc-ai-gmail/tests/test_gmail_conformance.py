"""The core's connector conformance kit, run on GmailConnector + the loopback Gmail server.

Includes the triage checks: a second run fetches nothing new, a human correction
made directly on the server is detected, a run killed mid-batch (in-process and
by SIGKILL of a real subprocess) then re-run handles every message exactly once.
"""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

from assoc_ai_gmail.connector import GmailConfig, GmailConnector

from assoc_ai_core.ext.config import Secret
from assoc_ai_core.testing import parametrize_mailbox_checks
from assoc_ai_core.testing.mailbox import MailboxHarness, kit_config

TOKEN_ENV = "ASSOC_AI_GMAIL_KIT_TOKEN"


def gmail_harness(fake_gmail, token_json: str) -> MailboxHarness:
    """A harness over a fresh loopback mailbox: the kit builds connectors, delivers mail like an MTA."""
    settings = {"api_endpoint": fake_gmail.url, "auth_endpoint": fake_gmail.token_uri,
                "backoff_initial_seconds": 0.05, "backoff_max_seconds": 2.0, "timeout_seconds": 10.0}

    def deliver(folder: str, raw: bytes) -> None:
        label = "INBOX" if folder == "INBOX" else fake_gmail.label_id(folder)
        fake_gmail.deliver(raw, labels=(label, "UNREAD"))

    info = json.loads(token_json)
    return MailboxHarness(
        make=lambda: GmailConnector(GmailConfig(token=Secret(token_json), **settings)),  # type: ignore[arg-type]
        deliver=deliver,
        section={"connector": "gmail", "token": {"env": TOKEN_ENV}, **settings},
        env={TOKEN_ENV: token_json, "ASSOC_AI_LANG": "en"},
        secret_values=(info["refresh_token"], info["client_secret"]),
    )


@parametrize_mailbox_checks()
def test_gmail_conformance(check, tmp_path: Path, fake_gmail, token_json: str) -> None:
    check(gmail_harness(fake_gmail, token_json), tmp_path)


def forwards_by_original(fake_gmail) -> dict[str, int]:
    """Native forwards the loopback server received, counted per original message key."""
    counts: dict[str, int] = {}
    for raw in fake_gmail.sent:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["Auto-Submitted"] == "auto-forwarded"
        original = (msg["References"] or "").strip().strip("<>")
        counts[original] = counts.get(original, 0) + 1
    return counts


def assert_gmail_exactly_once(conn: GmailConnector, fake_gmail, raws: list[bytes], state_path: Path) -> None:
    """The kit's exactly-once rule, Gmail style: one copy, byte-identical, where the state says, tag *label* once."""
    from assoc_ai_core.jobs.state import StateStore
    from assoc_ai_core.mail.parsing import parse_message
    from assoc_ai_core.testing.mailbox import CATEGORY_A, CATEGORY_B, FOLDER_A, FOLDER_B, REVIEW, mailbox_census

    census = mailbox_census(conn)
    by_key = {parse_message(r).key: r for r in raws}
    with StateStore(state_path) as state:
        for key, raw in by_key.items():
            copies = census.get(key, [])
            assert len(copies) == 1, f"{key} must exist exactly once, found {[f for f, _ in copies]}"
            folder, stored = copies[0]
            assert stored == raw, "Gmail never rewrites a received message"
            record = state.get_message(conn.id, key)
            assert record is not None and record.status == "done", (key, record and record.status)
            assert record.current_folder == folder
            expected = {CATEGORY_A: FOLDER_A, CATEGORY_B: FOLDER_B}.get(record.category or "") \
                if record.decision == "auto" else REVIEW
            assert folder == expected, (key, record.decision, record.category, folder)
            (gmail_id,) = [m.id for m in fake_gmail.messages.values() if m.raw == raw]
            tags = {n for n in fake_gmail.labels_of(gmail_id) if n.startswith("#")}
            if record.decision == "auto":
                assert tags == {f"#{record.category}"}, (key, tags)
            else:  # at most the label saying why it waits for a person
                reasons = {s["target"] for s in record.plan if s["kind"] == "label"}
                assert tags <= {f"#{r}" for r in reasons} | reasons and len(reasons) <= 1, (key, tags)
        assert not state.messages_with_status(conn.id, "pending")
    counts = forwards_by_original(fake_gmail)
    assert counts, "the crash after a native forward means at least one forward went out"
    assert all(n == 1 for n in counts.values()), f"a message was forwarded twice: {counts}"
    automated = [k for k, r in by_key.items() if parse_message(r).is_automated]
    assert automated and not any(counts.get(k) for k in automated), "automated mail must never be forwarded"


def test_killed_mid_batch_is_exactly_once_without_subject_tags(tmp_path: Path, fake_gmail, token_json: str) -> None:
    """The kit's crash scenario, with crash points a Gmail job really meets (forward, tag label, intent, done)."""
    from assoc_ai_core.testing.mailbox import RecordingForwarder, SimulatedCrash, _job, _kit_batch

    harness = gmail_harness(fake_gmail, token_json)
    conn = harness.make()
    conn.open()
    forwarder = RecordingForwarder()
    crashes = 0
    try:
        raws = _kit_batch(harness)
        for stage, at, kind in (("act", 1, "forward"), ("act", 1, "label"), ("intent", 3, None), ("done", 2, None),
                                ("act", 1, None)):
            def crash(s: str, n: int, k: str, stage: str = stage, at: int = at, kind: str | None = kind) -> None:
                if s == stage and n >= at and kind in (None, k):
                    raise SimulatedCrash(f"{s}@{n}:{k}")
            try:
                with _job(harness, tmp_path, conn, forwarder, crash) as job:
                    job.run_once()
            except SimulatedCrash:
                crashes += 1
        assert crashes >= 4, "the crash points must really be reached"
        with _job(harness, tmp_path, conn, forwarder) as job:
            job.run_once()
            again = job.run_once()
        assert again.decided == 0 and again.fetched == 0
        assert not forwarder.sent, "Gmail forwards natively, never through the host's forwarder"
        assert_gmail_exactly_once(conn, fake_gmail, raws, tmp_path / "state.sqlite")
    finally:
        conn.close()


def test_sigkill_mid_batch_is_exactly_once_without_subject_tags(tmp_path: Path, fake_gmail, token_json: str) -> None:
    """The job in a real subprocess, SIGKILLed after a native forward, after a tag label, before an action."""
    from assoc_ai_core.persistence import save_model
    from assoc_ai_core.testing.mailbox import _kit_batch, _run_driver, kit_model

    harness = gmail_harness(fake_gmail, token_json)
    conn = harness.make()
    conn.open()
    try:
        raws = _kit_batch(harness)
        model_path = save_model(kit_model(), tmp_path / "kit-model.skops")
        base = {"config": kit_config(harness, tmp_path, "gmail"), "base": str(tmp_path.resolve()),
                "model": str(model_path), "forwards": str(tmp_path / "forwards.jsonl"),
                "signal": str(tmp_path / "reached")}
        _run_driver({**base, "stage": "act", "at": 1, "kind": "forward"}, harness.env, kill=True)
        _run_driver({**base, "stage": "act", "at": 1, "kind": "label"}, harness.env, kill=True)
        _run_driver({**base, "stage": "intent", "at": 3}, harness.env, kill=True)
        _run_driver({**base, "stage": None, "at": 0}, harness.env, kill=False)
        assert_gmail_exactly_once(conn, fake_gmail, raws, tmp_path / "state.sqlite")
    finally:
        conn.close()


def test_second_triage_run_fetches_nothing_new(tmp_path: Path, fake_gmail, token_json: str) -> None:
    from assoc_ai_core.jobs.triage import TriageJob, TriageSettings
    from assoc_ai_core.testing.mailbox import RecordingForwarder, kit_messages, kit_model

    harness = gmail_harness(fake_gmail, token_json)
    for raw, _ in kit_messages(2, seed=5):
        harness.deliver("INBOX", raw)
    settings = TriageSettings.from_mapping(kit_config(harness, tmp_path, "gmail"), base_dir=tmp_path)
    conn = harness.make()
    with TriageJob(settings, connector=conn, model=kit_model(), model_version="kit",
                   forwarder=RecordingForwarder()) as job:
        first = job.run_once()
        gets_after_first = len(fake_gmail.calls(r"GET .*/messages/[0-9a-f]+$"))
        second = job.run_once()
    assert first.decided == 4 and first.fetched == 4
    assert second.fetched == 0 and second.decided == 0
    # the second run read history only: no message was downloaded again
    assert len(fake_gmail.calls(r"GET .*/messages/[0-9a-f]+$")) - gets_after_first <= 4  # locate (format=minimal)
    assert all(c.query["format"] == ["minimal"]
               for c in fake_gmail.calls(r"GET .*/messages/[0-9a-f]+$")[gets_after_first:])


def test_label_changed_in_gmail_web_ui_is_a_correction(tmp_path: Path, fake_gmail, token_json: str) -> None:
    """A volunteer relabels a sorted message directly on the server: the next run records a correction."""
    from assoc_ai_core.jobs.triage import TriageJob, TriageSettings
    from assoc_ai_core.mail.parsing import parse_message
    from assoc_ai_core.testing.mailbox import (
        CATEGORY_A,
        CATEGORY_B,
        FOLDER_A,
        FOLDER_B,
        REVIEW,
        RecordingForwarder,
        kit_messages,
        kit_model,
    )

    harness = gmail_harness(fake_gmail, token_json)
    raw = kit_messages(1, seed=11)[0][0]  # an Adhésion sample
    gmail_id = fake_gmail.deliver(raw)
    settings = TriageSettings.from_mapping(kit_config(harness, tmp_path, "gmail"), base_dir=tmp_path)
    with TriageJob(settings, connector=harness.make(), model=kit_model(), model_version="kit",
                   forwarder=RecordingForwarder()) as job:
        assert job.run_once().decided == 1
        placed = next(n for n in fake_gmail.labels_of(gmail_id) if n in (FOLDER_A, FOLDER_B, REVIEW))
        target, category = (FOLDER_A, CATEGORY_A) if placed == FOLDER_B else (FOLDER_B, CATEGORY_B)
        fake_gmail.relabel(gmail_id, add=(target,), remove=(placed,))  # in the Gmail web interface
        assert job.run_once().corrections == 1
        assert job.run_once().corrections == 0  # recorded once
        rows = job.state.corrections("gmail")
    assert len(rows) == 1 and rows[0]["key"] == parse_message(raw).key
    assert rows[0]["to_category"] == category and rows[0]["to_folder"] == target
