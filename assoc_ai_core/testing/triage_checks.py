"""The triage checks of the mailbox kit: the real TriageJob on the connector, corrections, crashes.

The job runs with a tiny model trained on the kit's own sample mail
(:func:`~assoc_ai_core.testing.mail_samples.kit_model`) and the kit's two
categories; :func:`assert_exactly_once` is the verdict after every scenario.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from assoc_ai_core.ext.connectors import Capability, MailboxConnector
from assoc_ai_core.testing.mail_samples import (
    CATEGORY_A,
    CATEGORY_B,
    FOLDER_A,
    FOLDER_B,
    REVIEW,
    kit_messages,
    kit_model,
    sample_mail,
)
from assoc_ai_core.testing.mailbox_harness import (
    MailboxHarness,
    RecordingForwarder,
    connected,
    deliver_all,
    expect,
    fail,
    find_ref,
    key_of,
    mailbox_census,
)


class SimulatedCrash(BaseException):
    """Raised inside the job by the kit to stop it dead (not caught by ``except Exception``)."""


def kit_config(harness: MailboxHarness, tmp_path: Path, conn_id: str) -> dict[str, Any]:
    """The configuration the kit's triage checks run with."""
    section = dict(harness.section or {"connector": conn_id})
    return {
        "mailbox": section,
        # the kit's sample mail carries fixed dates in the past: no forward age limit, or no forward would go out
        "triage": {"first_run": "all", "folders": [harness.inbox], "review_folder": REVIEW, "state": str((tmp_path / "state.sqlite").resolve()),
                   "forward_max_age_days": 0},
        "categories": {
            CATEGORY_A: {"folder": FOLDER_A, "label": CATEGORY_A, "tag": True, "forward": "tresorier@asso.example"},
            CATEGORY_B: {"folder": FOLDER_B, "label": CATEGORY_B, "tag": True},
        },
    }


def kit_batch(harness: MailboxHarness, n: int = 3, *, seed: int = 7) -> list[bytes]:
    """Deliver the kit's crash-test batch to the inbox: 2×``n`` sorted-looking mails, one unreadable, one auto-reply."""
    raws = [raw for raw, _ in kit_messages(n, seed=seed)]
    # no body and no subject: unreadable, must go to review with its reason
    raws.append(b"From: inconnu@exemple.org\r\nTo: contact@asso.example\r\nMessage-ID: <vide-%d@kit>\r\n\r\n" % seed)
    raws.append(sample_mail("Re: absence", "Je suis absent.", headers={"Auto-Submitted": "auto-replied"}))
    deliver_all(harness, raws)
    return raws


def kit_job(harness: MailboxHarness, tmp_path: Path, conn: MailboxConnector, forwarder: RecordingForwarder,
            checkpoint: Callable[[str, int, str], None] | None = None) -> Any:
    """A TriageJob on ``conn`` with the kit's configuration and model (not opened)."""
    from assoc_ai_core.jobs.settings import TriageSettings
    from assoc_ai_core.jobs.triage import TriageJob

    settings = TriageSettings.from_mapping(kit_config(harness, tmp_path, conn.id), base_dir=tmp_path.resolve())
    return TriageJob(settings, connector=conn, model=kit_model(), model_version="kit", forwarder=forwarder,
                     checkpoint=checkpoint)


def rewriting_action(conn: MailboxConnector) -> str:
    """The riskiest action the connector performs: a subject rewrite (copy + delete), else a move."""
    return "tag" if Capability.TAG_SUBJECT in conn.capabilities else "move"


def assert_exactly_once(conn: MailboxConnector, keys: Sequence[str], state_path: Path,
                        forwarder: RecordingForwarder, *, instance: str | None = None,
                        folders: Mapping[str, str] | None = None, review: str = REVIEW) -> None:
    """Every key is in exactly one folder, once, where the state says; tagged at most once; forwarded at most once.

    ``folders`` maps each category to its folder (default: the kit's), ``review`` is the review folder.
    """
    folders = folders if folders is not None else {CATEGORY_A: FOLDER_A, CATEGORY_B: FOLDER_B}
    from assoc_ai_core.ext.subject import read_subject
    from assoc_ai_core.jobs.state import StateStore

    census = mailbox_census(conn)
    with StateStore(state_path) as state:
        for key in keys:
            copies = census.get(key, [])
            expect(len(copies) == 1, f"message {key} must exist exactly once, found {[f for f, _ in copies]}")
            folder, raw = copies[0]
            record = state.get_message(instance or conn.id, key)
            if record is None or record.status != "done":
                raise fail(f"message {key} must be recorded as done, got {record and record.status}")
            expect(record.current_folder == folder, f"state says {record.current_folder!r}, mailbox says {folder!r}")
            expected = folders.get(record.category or "") if record.decision == "auto" else review
            expect(folder == expected, f"message {key} ({record.decision} {record.category}) is in {folder!r}, "
                                       f"expected {expected!r}")
            subject = read_subject(raw)
            expect(subject.count("[#") <= 1, f"message {key} was tagged more than once: {subject!r}")
            if record.decision == "auto" and Capability.TAG_SUBJECT in conn.capabilities:
                expect(subject.count(f"[#{record.category}]") == 1, f"auto message {key} must be tagged: {subject!r}")
        pending = state.messages_with_status(instance or conn.id, "pending")
        expect(not pending, f"{len(pending)} message(s) still pending after the final run")
    for key, count in forwarder.counts().items():
        expect(count <= 1, f"message {key} was forwarded {count} times")


def check_triage_detects_human_correction(harness: MailboxHarness, tmp_path: Path) -> None:
    """A person moving a triaged mail to another category (via a second instance) is recorded as a correction."""
    from assoc_ai_core.jobs.state import StateStore

    raws = [raw for raw, _ in kit_messages(1, seed=3)]
    deliver_all(harness, raws)
    with connected(harness, Capability.MOVE, Capability.CREATE_FOLDER) as conn:
        with kit_job(harness, tmp_path, conn, RecordingForwarder()) as job:
            first = job.run_once()
            expect(first.decided == len(raws), f"the job must decide {len(raws)} messages, decided {first.decided}")
            record = job.state.get_message(conn.id, key_of(raws[0]))
            expect(record is not None and record.current_folder in (FOLDER_A, REVIEW),
                   f"the Adhésion sample must be in {FOLDER_A!r} or the review folder, got {record}")
            with connected(harness) as person:
                person.move(find_ref(person, record.current_folder, record.key), FOLDER_B)
            second = job.run_once()
            expect(second.corrections == 1, f"the job must see 1 correction, saw {second.corrections}")
        with StateStore(tmp_path / "state.sqlite") as state:
            rows = state.corrections(conn.id)
            expect(len(rows) == 1 and rows[0]["key"] == record.key and rows[0]["to_category"] == CATEGORY_B
                   and rows[0]["to_folder"] == FOLDER_B, f"correction not recorded as expected: {rows}")
            text = json.loads(rows[0]["text"] or "{}")
            expect(text.get("subject") and text.get("text"),
                   "the corrected message's pseudonymised text must be kept for retraining")


def _crash_at(stage: str, at: int, kind: str | None) -> Callable[[str, int, str], None]:
    """A job checkpoint that stops the job dead at ``stage`` once ``at`` actions (of ``kind``) are reached."""
    def crash(s: str, n: int, k: str) -> None:
        if s == stage and n >= at and kind in (None, k):
            raise SimulatedCrash(f"{s}@{n}:{k}")
    return crash


def check_triage_killed_mid_batch_is_exactly_once(harness: MailboxHarness, tmp_path: Path) -> None:
    """Crashes at chosen instants (before, during and after an action) then a re-run: each message once."""
    from assoc_ai_core.jobs.state import StateStore

    with connected(harness, Capability.MOVE, Capability.CREATE_FOLDER) as conn:
        forwarder = RecordingForwarder()
        keys: list[str] = []
        automated: list[str] = []
        unreadable_keys: list[str] = []
        crashes = 0
        # (stage, minimum action count, action kind or None for any)
        points = (("act", 1, "forward"), ("act", 2, rewriting_action(conn)), ("intent", 3, None), ("done", 2, None),
                  ("act", 1, None))
        for seed, (stage, at, kind) in enumerate(points, 7):
            # new mail before each crash point: the job files label-and-move plans of a page together and
            # tags or forwards one message at a time, so one delivery could be all done before the later points
            raws = kit_batch(harness, seed=seed)
            keys += [key_of(r) for r in raws]
            unreadable_keys.append(key_of(raws[-2]))
            automated.append(key_of(raws[-1]))
            try:
                with kit_job(harness, tmp_path, conn, forwarder, _crash_at(stage, at, kind)) as job:
                    job.run_once()
            except SimulatedCrash:
                crashes += 1
        expect(crashes >= 4, f"only {crashes} of the 5 crash points were reached: the scenario did not run")
        with kit_job(harness, tmp_path, conn, forwarder) as job:
            job.run_once()
            again = job.run_once()
            expect(again.decided == 0, f"a run after completion must decide nothing, decided {again.decided}")
        assert_exactly_once(conn, keys, tmp_path / "state.sqlite", forwarder)
        expect(not any(forwarder.counts().get(k, 0) for k in automated),
               "an automated message (auto-reply) must never be forwarded")
        with StateStore(tmp_path / "state.sqlite") as state:
            for key in unreadable_keys:
                unreadable = state.get_message(conn.id, key)
                expect(unreadable is not None and unreadable.decision == "error" and unreadable.reason,
                       f"an unreadable message must be recorded as an error with its reason: {unreadable}")
