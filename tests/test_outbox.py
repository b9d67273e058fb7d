"""The forward outbox, against a real SMTP server (aiosmtpd on 127.0.0.1): nothing lost, at most two copies.

Transient refusals are retried on later runs with backoff, then given up;
permanent refusals keep the server's reason; a failure affects one message
only; a forward interrupted by a kill is sent again at most once, with the
same Message-ID; mail older than ``forward_max_age_days`` is never forwarded.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from assoc_ai_core.jobs.forwarding import SmtpForwarder, SmtpSettings
from assoc_ai_core.jobs.outbox import ForwardPolicy, Outbox, OutboxStatus, outbox_status
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob
from assoc_ai_core.testing.mailbox import kit_messages, kit_model, sample_mail
from assoc_ai_core.testing.smtp import SmtpSink, kit_forward_config

TREASURER, NOBODY = "tresorier@asso.example", "nobody@asso.example"
ORIGINAL = sample_mail("Cotisation", "Bonjour,\nmon règlement.\nÉlise", message_id="cotis-1@exemple.org")


class Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs (not an Exception, so nothing catches it)."""


class KilledAfterSending:
    """A forwarder that sends for real, then the process 'dies' before the outbox can note it was sent."""

    def __init__(self, forwarder: SmtpForwarder, kills: int = 1) -> None:
        self.forwarder, self.kills = forwarder, kills

    def send(self, raw: bytes, to: str, *, category: str, key: str, subject: str = "") -> str:
        message_id = self.forwarder.send(raw, to, category=category, key=key, subject=subject)
        if self.kills > 0:
            self.kills -= 1
            raise Killed
        return message_id


def smtp(port: int) -> SmtpForwarder:
    return SmtpForwarder(SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="tri@asso.example"))


def write_config(tmp_path: Path, forward: list[str], port: int) -> Path:
    from assoc_ai_core.persistence import save_model

    model = save_model(kit_model(), tmp_path / "m.skops")
    cfg = tmp_path / "c.toml"
    cfg.write_text(kit_forward_config(port, model, forward, triage="forward_max_age_days = 0"), encoding="utf-8")
    return cfg


def deliver(tmp_path: Path, mails: list[bytes]) -> list[str]:
    from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector

    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    return [conn.deliver(raw).key for raw in mails]


def job(cfg: Path, **kwargs: Any) -> TriageJob:
    """The job, wired with its configured forward policy (as ``TriageJob`` passes it to its executor)."""
    opened = TriageJob(cfg, **kwargs)
    opened.open()
    opened.executor.outbox.policy = ForwardPolicy.from_settings(opened.settings)
    return opened


def membership_mail(n: int, *, date: datetime | None = None) -> list[bytes]:
    """Membership mail the kit model routes on its own (dated ``date`` instead of the kit's 2025 date)."""
    mails = [raw for raw, label in kit_messages(n, seed=3) if label == "Adhésion"]
    if date is None:
        return mails
    kit_date = b"Date: " + format_datetime(datetime(2025, 3, 4, 10, 0, tzinfo=UTC)).encode()
    assert all(kit_date in raw for raw in mails)
    return [raw.replace(kit_date, b"Date: " + format_datetime(date).encode()) for raw in mails]


def forwarded_keys(job_: TriageJob) -> list[str]:
    return [k for k in job_.state.auto_keys("local") if job_.state.get_message("local", k).category == "Adhésion"]


# ------------------------------------------------------------------ the schedule
def test_backoff_spreads_the_attempts_over_the_retry_window() -> None:
    policy = ForwardPolicy(attempts=10, retry_days=2)
    waits = [policy.delay(n) for n in range(1, 10)]
    assert waits == sorted(waits) and abs(waits[1] - 2 * waits[0]) < timedelta(milliseconds=1)
    assert abs(sum(waits, timedelta()) - timedelta(days=2)) < timedelta(seconds=1)
    assert timedelta(minutes=5) < waits[0] < timedelta(minutes=6)


def test_transient_refusals_are_retried_then_given_up_with_the_reason(tmp_path: Path) -> None:
    now = [datetime(2026, 1, 5, 9, 0, tzinfo=UTC)]
    with SmtpSink(transient=100) as sink, StateStore(tmp_path / "s.sqlite") as state:
        outbox = Outbox(state, "local", ForwardPolicy(attempts=3, retry_days=1), clock=lambda: now[0])
        outbox.enqueue("cotis-1@exemple.org", TREASURER, ORIGINAL, category="Adhésion", subject="Cotisation")
        assert outbox.send("cotis-1@exemple.org", TREASURER, smtp(sink.port)) is OutboxStatus.PENDING
        # not due yet: a run a minute later does not try again
        now[0] += timedelta(minutes=1)
        assert outbox.flush(smtp(sink.port)) == {}
        for _ in range(2):
            now[0] += timedelta(days=1)
            outbox.flush(smtp(sink.port))
        [row] = outbox.rows()
        assert row.status is OutboxStatus.FAILED and row.attempts == 3 and "451" in row.reason
        assert "3" in row.reason and sink.envelopes == []
        stored = state.execute("SELECT raw, subject FROM forward_outbox").fetchone()
        assert tuple(stored) == (None, None)  # given up: the message itself is no longer kept
        assert sink.replies == ["451 4.3.0 temporary failure, try again later"] * 3


def test_a_451_period_then_delivery_once(tmp_path: Path) -> None:
    now = [datetime(2026, 1, 5, 9, 0, tzinfo=UTC)]
    with SmtpSink(transient=2) as sink, StateStore(tmp_path / "s.sqlite") as state:
        outbox = Outbox(state, "local", clock=lambda: now[0])
        outbox.enqueue("cotis-1@exemple.org", TREASURER, ORIGINAL, category="Adhésion", subject="Cotisation")
        for _ in range(4):
            outbox.flush(smtp(sink.port))
            now[0] += timedelta(hours=1)
        [row] = outbox.rows()
        assert row.status is OutboxStatus.SENT and row.attempts == 3
        assert sink.message_ids() == [row.message_id]


def test_unreachable_server_keeps_the_forward_pending(tmp_path: Path) -> None:
    from assoc_ai_core.testing.smtp import free_port

    with StateStore(tmp_path / "s.sqlite") as state:
        outbox = Outbox(state, "local")
        forwarder = SmtpForwarder(SmtpSettings(host="127.0.0.1", port=free_port(), starttls=False,
                                               sender="tri@asso.example", timeout=2))
        for key in ("a@x", "b@x"):
            outbox.enqueue(key, TREASURER, ORIGINAL, category="A", subject="s")
        assert outbox.flush(forwarder) == {OutboxStatus.PENDING: 2}  # the second waits: no time-out per forward
        rows = outbox.rows()
        assert [r.status for r in rows] == [OutboxStatus.PENDING] * 2
        assert rows[0].attempts == 1 and rows[1].attempts == 0
        assert rows[0].reason and rows[1].reason == rows[0].reason and str(forwarder.settings.port) in rows[0].reason


# ------------------------------------------------------------------ the job
def test_one_bad_recipient_and_a_451_do_not_stop_the_run(tmp_path: Path) -> None:
    mails = membership_mail(4)
    with SmtpSink(transient=1, refuse={NOBODY: "550 5.1.1 <nobody@asso.example>: no such user"}) as sink:
        cfg = write_config(tmp_path, [TREASURER, NOBODY], sink.port)
        deliver(tmp_path, mails)
        j = job(cfg)
        try:
            first = j.run_once()
            keys = forwarded_keys(j)
            assert len(keys) >= 3, "the kit model routes its membership mail automatically"
            # every message went on with its plan: moved, none left pending
            assert all(j.state.get_message("local", k).current_folder == "IA/Adhésion" for k in keys)
            assert all(j.state.get_message("local", k).status == "done" for k in keys)
            assert first.exit_code == 1 and first.forwarded == len(keys) - 1
            rows = {(r.key, r.destination): r for r in outbox_status(j.settings)}
            assert {d for _, d in rows} == {TREASURER, NOBODY}
            refused = [r for r in rows.values() if r.destination == NOBODY]
            assert len(refused) == len(keys) and all(r.status is OutboxStatus.REFUSED for r in refused)
            assert all("550 5.1.1" in (r.reason or "") and "no such user" in (r.reason or "") for r in refused)
            [waiting] = [r for r in rows.values() if r.destination == TREASURER]
            assert waiting.status is OutboxStatus.PENDING and "451" in (waiting.reason or "")
            journal = [(a.kind, a.status) for a in j.state.actions_for("local", waiting.key)]
            assert ("forward", "refused") in journal and ("move", "done") in journal
            # a later run, once the wait is over, delivers it; nothing is sent twice
            j.executor.outbox.clock = lambda: datetime.now(UTC) + timedelta(hours=1)
            second = j.run_once()
            assert second.forwarded == 1 and second.exit_code == 0
            assert outbox_status(j.settings, statuses=[OutboxStatus.PENDING]) == []
        finally:
            j.close()
        # what a volunteer sees: the refused forwards with the server's reason, and exit 1 for the scheduler
        from click.testing import CliRunner

        from assoc_ai_core.cli.main import _wire_optional_commands, cli

        _wire_optional_commands()
        shown = CliRunner().invoke(cli, ["triage", "outbox", "--config", str(cfg), "--lang", "en"])
        assert shown.exit_code == 1, shown.output
        assert shown.output.count("refused") == len(keys) and "550 5.1.1" in shown.output and TREASURER not in shown.output
        listed = json.loads(CliRunner().invoke(cli, ["triage", "outbox", "--config", str(cfg), "--all", "--json"]).output)
        assert {row["destination"] for row in listed} == {TREASURER, NOBODY}
    ids = sink.message_ids()
    assert len(ids) == len(set(ids)) == len(keys)


def test_kill_with_the_journal_at_intent_sends_once(tmp_path: Path) -> None:
    """Killed after the forward's intent was journalled, before anything went out: the next run sends it once."""
    def crash(stage: str, n: int, kind: str) -> None:
        if (stage, kind) == ("intent", "forward"):
            raise Killed

    with SmtpSink() as sink:
        cfg = write_config(tmp_path, [TREASURER], sink.port)
        [key] = deliver(tmp_path, membership_mail(1))
        with pytest.raises(Killed):
            j = job(cfg, checkpoint=crash)
            try:
                j.run_once()
            finally:
                j.close()
        with StateStore(tmp_path / "state.sqlite") as state:
            assert [a.status for a in state.actions_for("local", key) if a.kind == "forward"] == ["intent"]
        assert sink.envelopes == []
        j = job(cfg)
        try:
            j.run_once()
            j.run_once()
        finally:
            j.close()
    assert len(sink.envelopes) == 1


@pytest.mark.parametrize("kills", [1, 2])
def test_kill_during_a_send_resends_at_most_once_with_the_same_message_id(tmp_path: Path, kills: int) -> None:
    """The outbox row left 'sending' (the data went out, the kill came before 'sent'): one more copy, same id."""
    with SmtpSink() as sink:
        cfg = write_config(tmp_path, [TREASURER], sink.port)
        [key] = deliver(tmp_path, membership_mail(1))
        flaky = KilledAfterSending(smtp(sink.port), kills=kills)
        for _ in range(kills + 2):
            j = job(cfg, forwarder=flaky)
            try:
                j.run_once()
            except Killed:
                pass
            finally:
                j.close()
        rows = outbox_status(j.settings, statuses=None)
    assert [r.key for r in rows] == [key]
    copies = Counter(sink.message_ids())
    assert copies == {smtp(sink.port).message_id(key, TREASURER): 2}
    assert rows[0].status is (OutboxStatus.SENT if kills == 1 else OutboxStatus.UNCERTAIN)
    assert rows[0].maybe_sent == kills


def test_old_mail_is_never_forwarded(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with SmtpSink() as sink:
        cfg = write_config(tmp_path, [TREASURER], sink.port)
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("forward_max_age_days = 0", "forward_max_age_days = 7"),
                       encoding="utf-8")
        old, new = deliver(tmp_path, [membership_mail(1, date=now - timedelta(days=30))[0],
                                      membership_mail(1, date=now - timedelta(hours=2))[0].replace(
                                          b"Message-ID: <", b"Message-ID: <new-")])
        j = job(cfg)
        try:
            report = j.run_once()
            journal = {k: [(a.kind, a.status, a.detail) for a in j.state.actions_for("local", k)] for k in (old, new)}
        finally:
            j.close()
    assert j.settings.forward_max_age_days == 7 and report.exit_code == 0
    [(_, status, detail)] = [a for a in journal[old] if a[0] == "forward"]
    assert status == "skipped" and "7" in detail and "forward_max_age_days" in detail
    assert ("move", "done", None) in journal[old]
    assert [status for kind, status, _ in journal[new] if kind == "forward"] == ["done"]
    assert len(sink.envelopes) == 1


def test_a_refused_login_stops_the_run_but_keeps_the_forward(tmp_path: Path) -> None:
    from assoc_ai_core.errors import AuthError
    from assoc_ai_core.ext.config import Secret

    def login(password: str, port: int) -> SmtpForwarder:
        return SmtpForwarder(SmtpSettings(host="127.0.0.1", port=port, starttls=False, username="tri@asso.example",
                                          password=Secret(password), sender="tri@asso.example", timeout=5))

    now = [datetime(2026, 1, 5, 9, 0, tzinfo=UTC)]
    with SmtpSink(login="tri@asso.example", password="right-Pa55") as sink, StateStore(tmp_path / "s.sqlite") as state:
        outbox = Outbox(state, "local", clock=lambda: now[0])
        outbox.enqueue("cotis-1@exemple.org", TREASURER, ORIGINAL, category="Adhésion", subject="Cotisation")
        with pytest.raises(AuthError):
            outbox.flush(login("wrong-Pa55", sink.port))
        [row] = outbox.rows()
        assert row.status is OutboxStatus.PENDING and row.reason and row.attempts == 1
        assert "wrong-Pa55" not in (row.reason or "")
        now[0] += timedelta(hours=1)
        outbox.unreachable = None  # a new run, the password fixed
        assert outbox.flush(login("right-Pa55", sink.port)) == {OutboxStatus.SENT: 1}
        assert len(sink.envelopes) == 1
