"""Label and move plans carried out a page at a time: the base class's batch methods, the job's phases, crashes.

The job hands the messages of a page whose plan is only labels and moves to
``add_label_many`` / ``move_many``; these tests check that it does (and keeps
tags and forwards one message at a time), that the default batch methods of
:class:`~assoc_ai_core.ext.connectors.MailboxConnector` loop over the single ones
for connectors that do not override them, that a failing batch falls back to
one message at a time, and that a run killed anywhere inside a batch — even
half-way through one batched call — is finished by the next run with every
message once, in one folder, labelled once.  The typed plans and statuses are
written to the state as the plain strings they always were.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.errors import CapabilityError, ConnectorError
from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef, Page
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob, TriageSettings
from assoc_ai_core.testing.mailbox import RecordingForwarder, SimulatedCrash, mailbox_census, run_kit_driver

ROOT = Path(__file__).resolve().parents[1]
NEW = ROOT / "examples" / "mailbox" / "new"
CATEGORIES = {"Adhesion": "IA/Adhésion", "Autre": "IA/Autre", "Benevolat": "IA/Bénévolat",
              "Evenement": "IA/Événement", "Partenariat": "IA/Partenariat", "Presse": "IA/Presse"}
REVIEW = "À vérifier"


# ------------------------------------------------------------------ the base class's default batch methods
class _Memory(MailboxConnector):
    """A connector written against the one-message interface only: no batch method of its own."""

    id = "memory"
    Config = LocalMailConfig
    capabilities = frozenset({Capability.READ, Capability.MOVE, Capability.LABEL})

    def __init__(self, config: Any = None, *, broken: str = "") -> None:
        super().__init__(config)
        self.where: dict[str, str] = {}
        self.labels: dict[str, list[str]] = {}
        self.calls: list[tuple[str, str]] = []
        self.broken = broken

    def list_folders(self) -> list[str]:
        return sorted({"INBOX", *self.where.values()})

    def fetch_new(self, folder: str, cursor: Mapping[str, Any] | None, *, page_size: int = 100) -> Iterator[Page]:
        return iter(())

    def fetch_all(self, folder: str) -> Iterator[FetchedMail]:
        return iter(())

    def locate(self, refs: Sequence[MailRef]) -> dict[str, list[MailRef]]:
        return {r.key: [MailRef(self.where[r.key], r.key, r.key)] if r.key in self.where else [] for r in refs}

    def move(self, ref: MailRef, folder: str) -> MailRef:
        self.calls.append(("move", ref.key))
        if ref.key == self.broken:
            raise ConnectorError("gone", connector_id=self.id)
        self.where[ref.key] = folder
        return MailRef(folder, f"{folder}:{ref.key}", ref.key)

    def add_label(self, ref: MailRef, label: str) -> None:
        self.calls.append(("label", ref.key))
        if ref.key == self.broken:
            raise ConnectorError("gone", connector_id=self.id)
        if label not in self.labels.setdefault(ref.key, []):
            self.labels[ref.key].append(label)


def test_default_batch_methods_loop_over_the_single_message_ones() -> None:
    conn = _Memory()
    refs = [MailRef("INBOX", str(i), f"k{i}") for i in range(3)]
    conn.add_label_many(refs, "Adhésion")
    conn.add_label_many(refs, "Adhésion")
    moved = conn.move_many(refs, "IA/Adhésion")
    assert moved == {f"k{i}": MailRef("IA/Adhésion", f"IA/Adhésion:k{i}", f"k{i}") for i in range(3)}
    assert conn.labels == {f"k{i}": ["Adhésion"] for i in range(3)}
    assert conn.calls == [("label", "k0"), ("label", "k1"), ("label", "k2")] * 2 + [
        ("move", "k0"), ("move", "k1"), ("move", "k2")]
    assert conn.move_many([], "IA/Adhésion") == {}


def test_default_batch_methods_raise_what_the_single_ones_raise() -> None:
    conn = _Memory(broken="k1")
    refs = [MailRef("INBOX", str(i), f"k{i}") for i in range(3)]
    with pytest.raises(ConnectorError):
        conn.move_many(refs, "Presse")
    with pytest.raises(ConnectorError):
        conn.add_label_many(refs, "Presse")

    class _ReadOnly(_Memory):
        capabilities = frozenset({Capability.READ})

    with pytest.raises(CapabilityError):
        _ReadOnly().move_many(refs, "Presse")
    with pytest.raises(CapabilityError):
        _ReadOnly().add_label_many(refs, "Presse")


def test_only_label_and_move_plans_are_batched_and_plans_read_back_as_written() -> None:
    from assoc_ai_core.jobs.plan import Action, Plan, Step

    label, move = Step(Action.LABEL, "Adhésion"), Step(Action.MOVE, "IA/Adhésion")
    forward = Step(Action.FORWARD, "tresorier@asso.example", "Adhésion", "auto-reply")
    assert Plan((label, move)).batchable and Plan().batchable
    assert not Plan((Step(Action.TAG, "[#Adhésion]"), move)).batchable
    assert not Plan((forward, move)).batchable
    plan = Plan((label, forward, move))
    rows = plan.to_records()
    assert rows == [{"kind": "label", "target": "Adhésion"},
                    {"kind": "forward", "target": "tresorier@asso.example", "category": "Adhésion", "skip": "auto-reply"},
                    {"kind": "move", "target": "IA/Adhésion"}]
    assert Plan.from_records(rows) == plan and plan.describe() == (
        "label:Adhésion, forward:tresorier@asso.example, move:IA/Adhésion")


# ------------------------------------------------------------------ the job on a real Maildir
class _Spy(LocalMailConnector):
    """The local connector (base class batch loops), recording calls and failing or crashing on demand.

    ``crash`` names a batch method that does the first half of its batch for
    real and then stops the process dead (``SimulatedCrash``), as a kill
    between two chunks of a server-side batch would; ``fail_batches`` makes
    every batch call raise; ``refuse`` is a key whose single move fails.
    """

    def __init__(self, config: LocalMailConfig, *, crash: str = "", fail_batches: bool = False,
                 refuse: str = "") -> None:
        super().__init__(config)
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []
        self.crash, self.fail_batches, self.refuse = crash, fail_batches, refuse

    def _batch(self, name: str, refs: Sequence[MailRef], target: str) -> Sequence[MailRef]:
        self.calls.append((name, target, tuple(r.key for r in refs)))
        if self.fail_batches:
            raise ConnectorError("batch refused", connector_id=self.id)
        if self.crash == name and len(refs) > 1:
            half = refs[: len(refs) // 2]
            getattr(super(), name)(half, target)
            raise SimulatedCrash(f"{name} stopped after {len(half)} of {len(refs)}")
        return refs

    def move_many(self, refs: Sequence[MailRef], folder: str) -> dict[str, MailRef]:
        return super().move_many(self._batch("move_many", refs, folder), folder)

    def add_label_many(self, refs: Sequence[MailRef], label: str) -> None:
        super().add_label_many(self._batch("add_label_many", refs, label), label)

    def move(self, ref: MailRef, folder: str) -> MailRef:
        self.calls.append(("move", folder, (ref.key,)))
        if ref.key == self.refuse:
            raise ConnectorError("refused for the test", connector_id=self.id)
        return super().move(ref, folder)


def _settings_mapping(tmp_path: Path, *, tag: bool = False, page_size: int = 100) -> dict[str, Any]:
    return {
        "mailbox": {"connector": "local", "path": str(tmp_path / "Maildir"), "create": True},
        "triage": {"first_run": "all", "folders": ["INBOX"], "review_folder": REVIEW, "state": str(tmp_path / "state.sqlite"),
                   "page_size": page_size},
        "categories": {name: {"folder": folder, "label": name, "tag": tag} for name, folder in CATEGORIES.items()},
    }


def _settings(tmp_path: Path, *, tag: bool = False, page_size: int = 100) -> TriageSettings:
    return TriageSettings.from_mapping(_settings_mapping(tmp_path, tag=tag, page_size=page_size), base_dir=tmp_path)


def _maildir(tmp_path: Path, **spy: Any) -> LocalMailConnector:
    config = LocalMailConfig(path=str(tmp_path / "Maildir"), create=True)
    return _Spy(config, **spy) if spy else LocalMailConnector(config)


def _deliver(tmp_path: Path, copies: int = 1) -> list[str]:
    conn = _maildir(tmp_path)
    conn.open()
    keys = []
    for n in range(copies):
        for path in sorted(NEW.glob("*.eml")):
            raw = path.read_bytes()
            if n:  # another message with the same text (the page must be long enough to crash in)
                raw, found = re.subn(rb"(?im)^(Message-ID:\s*<)", rb"\1copy%d." % n, raw, count=1)
                if not found:  # keyed by its bytes: one more header makes it another message
                    raw = b"X-Copy: %d" % n + (b"\r\n" if b"\r\n" in raw else b"\n") + raw
            keys.append(conn.deliver(raw).key)
    conn.close()
    assert len(set(keys)) == len(keys)
    return keys


def _run(tmp_path: Path, model: Any, conn: LocalMailConnector, **kwargs: Any) -> Any:
    with TriageJob(_settings(tmp_path, **kwargs.pop("settings", {})), connector=conn, model=model,
                   model_version="test", **kwargs) as job:
        return job.run_once()


def _assert_each_once_labelled_once(tmp_path: Path, keys: Sequence[str]) -> None:
    """Every key once, in the folder its decision says, recorded done there, with its category label once."""
    conn = _maildir(tmp_path)
    conn.open()
    census = mailbox_census(conn)
    with StateStore(tmp_path / "state.sqlite") as state:
        for key in keys:
            copies = census.get(key, [])
            assert len(copies) == 1, f"{key} is in {[f for f, _ in copies]}"
            folder = copies[0][0]
            record = state.get_message("local", key)
            assert record is not None and record.status == "done", (key, record and record.status)
            assert record.current_folder == folder
            labels = conn.labels(MailRef(folder, record.current_uid, key))
            if record.decision == "auto":
                assert folder == CATEGORIES[record.category] and labels == [record.category], (folder, labels)
            else:  # at most the label saying why it waits for a person
                wanted = [step["target"] for step in record.plan if step["kind"] == "label"]
                assert folder == REVIEW and labels == wanted and len(wanted) <= 1, (folder, labels)
            steps = [a.step for a in state.actions_for("local", key) if a.status == "done"]
            assert sorted(set(steps)) == list(range(len(record.plan))), steps
        assert not state.messages_with_status("local", "pending")
    conn.close()


def test_state_holds_the_same_plain_strings_as_before(tmp_path: Path, trained_model) -> None:
    """Decisions, plans and journal statuses are typed in the code and written as the strings they always were."""
    data = _settings_mapping(tmp_path, tag=True)
    data["categories"]["Adhesion"]["forward"] = ["tresorier@asso.example"]
    data["triage"]["forward_max_age_days"] = 0  # the example mail is from 2025
    conn = _maildir(tmp_path)
    conn.open()
    body = (NEW / "0001.eml").read_bytes()  # a membership question: label, tag, forward, move
    plain = conn.deliver(body)
    robot = conn.deliver(body.replace(b"Message-ID: <", b"Auto-Submitted: auto-replied\r\nMessage-ID: <auto-"))
    with TriageJob(TriageSettings.from_mapping(data, base_dir=tmp_path), connector=conn, model=trained_model,
                   model_version="test", forwarder=RecordingForwarder()) as job:
        job.run_once()
        rows = {r["key"]: r for r in job.state.execute(
            "SELECT key, decision, typeof(decision) AS t, status, plan FROM messages").fetchall()}
        journal = job.state.execute("SELECT DISTINCT kind, status, typeof(kind) AS tk, typeof(status) AS ts"
                                    " FROM actions").fetchall()
    expected = [{"kind": "label", "target": "Adhesion"}, {"kind": "tag", "target": "[#Adhesion]"},
                {"kind": "forward", "target": "tresorier@asso.example", "category": "Adhesion"},
                {"kind": "move", "target": "IA/Adhésion"}]
    assert (rows[plain.key]["decision"], rows[plain.key]["t"], rows[plain.key]["status"]) == ("auto", "text", "done")
    assert rows[plain.key]["plan"] == json.dumps(expected, ensure_ascii=False)
    skipped = json.loads(rows[robot.key]["plan"])[2]
    assert list(skipped) == ["kind", "target", "category", "skip"] and skipped["skip"]  # why it is not forwarded
    assert {(r["kind"], r["status"]) for r in journal} == {("label", "done"), ("tag", "done"), ("forward", "done"),
                                                          ("forward", "skipped"), ("move", "done")}
    assert {r["tk"] for r in journal} == {r["ts"] for r in journal} == {"text"}


def test_label_and_move_plans_are_carried_out_a_page_at_a_time(tmp_path: Path, trained_model) -> None:
    keys = _deliver(tmp_path)
    conn = _maildir(tmp_path, crash="")
    commits: list[str] = []
    with TriageJob(_settings(tmp_path), connector=conn, model=trained_model, model_version="test") as job:
        job.state._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        report = job.run_once()
    assert (report.decided, report.failed) == (len(keys), 0) and report.auto and report.review
    batches = [c for c in conn.calls if c[0].endswith("_many")]
    moves = [c for c in batches if c[0] == "move_many"]
    # one move_many per target folder, one add_label_many per label: every message of the page in one of them
    assert len(moves) == len({c[1] for c in moves}) and sorted(k for c in moves for k in c[2]) == sorted(keys)
    labels = [c for c in batches if c[0] == "add_label_many" and c[1] in CATEGORIES]  # not the review reasons
    assert len(labels) == len({c[1] for c in labels}) == len({c[1] for c in moves} - {REVIEW})
    assert len(commits) < len(keys), f"{len(commits)} commits for {len(keys)} messages: the journal is not batched"
    _assert_each_once_labelled_once(tmp_path, keys)


def test_plans_with_a_subject_tag_stay_one_message_at_a_time(tmp_path: Path, trained_model) -> None:
    keys = _deliver(tmp_path)
    conn = _maildir(tmp_path, crash="")
    report = _run(tmp_path, trained_model, conn, settings={"tag": True})
    assert report.failed == 0 and report.auto
    with StateStore(tmp_path / "state.sqlite") as state:
        decided = {k: state.get_message("local", k) for k in keys}
    batched = {k for name, _, ks in conn.calls if name.endswith("_many") for k in ks}
    assert batched == {k for k, r in decided.items() if r.decision != "auto"}  # review mail: one move, batched
    single = {ks[0] for name, _, ks in conn.calls if name == "move"} - batched
    assert single == {k for k, r in decided.items() if r.decision == "auto"}


def test_a_failing_batch_falls_back_to_one_message_at_a_time(tmp_path: Path, trained_model) -> None:
    keys = _deliver(tmp_path)
    refused = keys[3]
    conn = _maildir(tmp_path, fail_batches=True, refuse=refused)
    report = _run(tmp_path, trained_model, conn)
    assert report.decided == len(keys) and report.failed == 1 and report.exit_code == 1
    with StateStore(tmp_path / "state.sqlite") as state:
        assert [r.key for r in state.messages_with_status("local", "pending")] == [refused]
        assert state.actions_for("local", refused)[-1].status == "failed"
    again = _run(tmp_path, trained_model, _maildir(tmp_path))
    assert again.recovered == 1 and again.failed == 0 and again.decided == 0
    _assert_each_once_labelled_once(tmp_path, keys)


@pytest.mark.parametrize("crash, checkpoint", [
    ("move_many", None),          # killed between two chunks of a batched move: half of the batch moved
    ("add_label_many", None),     # the same during a batched label
    ("", ("act", "move")),        # a whole batched move done, nothing journalled as done
    ("", ("done", "label")),      # labels journalled done, next steps' intents journalled, no move yet
    ("", ("intent", "move")),     # move intents durable, the batched move not started
])
def test_killed_inside_a_batch_then_rerun_is_exactly_once(tmp_path: Path, trained_model, crash: str,
                                                         checkpoint: tuple[str, str] | None) -> None:
    keys = _deliver(tmp_path, copies=3)

    def stop(stage: str, n: int, kind: str) -> None:
        if checkpoint is not None and (stage, kind) == checkpoint:
            raise SimulatedCrash(f"{stage}:{kind}")

    with pytest.raises(SimulatedCrash):
        _run(tmp_path, trained_model, _maildir(tmp_path, crash=crash), checkpoint=stop)
    with StateStore(tmp_path / "state.sqlite") as state:
        assert len(state.messages_with_status("local", "pending")) > 1  # the whole page was in flight
    report = _run(tmp_path, trained_model, _maildir(tmp_path))
    assert report.recovered > 1 and report.failed == 0 and report.decided == 0
    _assert_each_once_labelled_once(tmp_path, keys)


def test_sigkill_in_the_middle_of_a_batched_page_then_rerun(tmp_path: Path, trained_model) -> None:
    """A real process killed with SIGKILL after its first batched move, before journalling it done."""
    from assoc_ai_core.persistence import save_model

    keys = _deliver(tmp_path, copies=2)
    settings = {
        "mailbox": {"connector": "local", "path": str(tmp_path / "Maildir")},
        "triage": {"first_run": "all", "folders": ["INBOX"], "review_folder": REVIEW, "state": str(tmp_path / "state.sqlite")},
        "categories": {name: {"folder": folder, "label": name} for name, folder in CATEGORIES.items()},
    }
    cfg = {"config": settings, "base": str(tmp_path), "model": str(save_model(trained_model, tmp_path / "m.skops")),
           "forwards": str(tmp_path / "forwards.jsonl"), "signal": str(tmp_path / "reached")}
    run_kit_driver({**cfg, "stage": "act", "at": 1, "kind": "move"}, {}, kill=True)
    conn = _maildir(tmp_path)
    conn.open()
    census = mailbox_census(conn)
    conn.close()
    inbox = [k for k in keys if [f for f, _ in census[k]] == ["INBOX"]]
    assert 0 < len(inbox) < len(keys), "the kill must land after some moves and before the last"
    run_kit_driver({**cfg, "stage": None, "at": 0}, {}, kill=False)
    _assert_each_once_labelled_once(tmp_path, keys)
