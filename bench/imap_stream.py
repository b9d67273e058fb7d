"""The IMAP triage job on a stream of mail with every action, then under kill -9 and an SMTP outage (issue 13).

Two runs on a throw-away Dovecot (127.0.0.1) and a real SMTP sink (aiosmtpd),
each with its own account, state file and sink, on the same mail (devA then the
SpamAssassin public corpus, each message given a unique Message-ID and a fresh
Date so that every confident message may be forwarded):

1. **throughput** — ``assoc-ai triage run --json`` as a subprocess on the whole
   INBOX, every category configured with a keyword, a ``[#Tag]``, a forward
   to the sink and a move; messages per second and the peak memory (RSS) of
   the job's process tree, polled with psutil.
2. **chaos** — the same job SIGKILLed ``--kills`` times at random points
   spread over the stream: at a random instant, while the sink is taking a
   forward (stored, before its ``250`` reply) or 3 ms after that reply; with
   one period where the sink answers ``451`` to RCPT or DATA; then run again
   until nothing is left.  Counted from the mailbox
   (Message-IDs in every folder) and the sink (forward Message-IDs): messages
   lost, messages present twice, forwards lost, forwards delivered twice.

A job only acts on mail that arrives after its first run unless
``[triage] first_run = "all"`` is set: when that key exists it is used, else
the job makes one empty first run before the mail is delivered.
Not a test: figures are printed, compared with the issue's targets and written
to ``bench/results/imap_stream.json``; nothing is asserted.

    python bench/imap_stream.py [--messages 3000] [--kills 10] [--outage 8] [--seed 13] [--profile 1000]

``--profile N`` adds an in-process cProfile run on N messages: where the job's time goes.

Needs Dovecot (``apt-get install dovecot-imapd``), the assoc-ai-imap plugin and aiosmtpd.
"""

from __future__ import annotations

import argparse
import collections
import email
import email.parser
import email.policy
import email.utils
import json
import logging
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from imap_triage import fill, real_mail  # noqa: E402  (the sibling bench: same corpus, same delivery)

from assoc_ai_core.testing.smtp import SmtpSink  # noqa: E402

DEV_A = ROOT.parent / "shared" / "corpora" / "devA"
RESULTS = ROOT / "bench" / "results" / "imap_stream.json"
PASSWORD_ENV = "ASSOC_AI_BENCH_IMAP_PASSWORD"
REVIEW = "À vérifier"
SENDER = "tri@asso.test"
TARGET_MSG_PER_S = 100.0
TARGET_PEAK_MB = 400.0
#: headers that make mail "automated" (never forwarded) or whose value is replaced
_DROPPED = frozenset({b"message-id", b"date", b"auto-submitted", b"precedence", b"x-autoreply", b"x-autorespond"})


# ============================================================================ mail
def _header_name(line: bytes) -> bytes:
    return line.split(b":", 1)[0].strip().lower()


def restamp(raw: bytes, key: str, when: str) -> bytes:
    """``raw`` with a new Message-ID ``<key>`` and Date ``when``; list and auto-reply markers removed.

    The corpus reuses Message-IDs and is years old: without this, duplicates
    would be handled once by design and no forward would go out
    (``forward_max_age_days``).  The body and every other header stay byte for byte.
    """
    crlf = b"\r\n" in raw[:2000]
    eol = b"\r\n" if crlf else b"\n"
    split = raw.find(eol + eol)
    head, body = (raw[:split + len(eol)], raw[split + len(eol):]) if split >= 0 else (raw, b"")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(eol):
        if line[:1] in (b" ", b"\t"):  # a folded continuation belongs to the header above
            if not dropping:
                kept.append(line)
            continue
        name = _header_name(line)
        dropping = name in _DROPPED or name.startswith(b"list-")
        if not dropping and line:
            kept.append(line)
    new = [b"Message-ID: <" + key.encode() + b">", b"Date: " + when.encode()]
    return eol.join(new + kept) + eol + body


def stream_mail(count: int, tag: str) -> tuple[list[str], list[bytes]]:
    """``count`` real messages (devA first, then SpamAssassin) with keys ``stream-<tag>-<i>@bench.invalid``."""
    when = email.utils.formatdate(localtime=False)
    keys = [f"stream-{tag}-{i:05d}@bench.invalid" for i in range(count)]
    return keys, [restamp(raw, key, when) for key, raw in zip(keys, real_mail(count), strict=True)]


# ============================================================================ SMTP sink with faults
class FaultySink(SmtpSink):
    """The test sink, plus a ``451`` period (by clock) and a kill armed on the next forwards.

    During ``[outage_start, outage_end)`` (monotonic seconds) it answers
    ``451`` alternately to RCPT and to the end of DATA, as a greylisting or
    overloaded relay does.  :meth:`arm_kill` SIGKILLs a process when the sink
    takes a forward: ``before_reply`` kills it once the message is stored but
    before the ``250`` is sent (the client cannot know it went out), otherwise
    a few milliseconds after the reply.
    """

    def __init__(self) -> None:
        super().__init__()
        self.outage_start = self.outage_end = 0.0
        self.outage_replies = 0
        self._turn = 0
        self._lock = threading.Lock()
        self._outage_next = 0.0
        self._armed: tuple[int, int, bool] | None = None  # (pid, forwards to let through first, before_reply)
        self.kills: list[str] = []  # how each armed kill went off

    def outage_from_next_forward(self, seconds: float) -> None:
        """Start the 451 period right after the next forward is taken, for ``seconds``."""
        with self._lock:
            self._outage_next = seconds

    def in_outage(self) -> bool:
        """True while the sink answers 451."""
        return self.outage_start <= time.monotonic() < self.outage_end

    def arm_kill(self, pid: int, skip: int, *, before_reply: bool) -> None:
        """SIGKILL ``pid`` when the sink takes its ``skip + 1``-th forward from now."""
        with self._lock:
            self._armed = (pid, skip, before_reply)

    def disarm(self) -> None:
        """Forget an armed kill that did not go off."""
        with self._lock:
            self._armed = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        """aiosmtpd hook: 451 to every other RCPT during the outage."""
        if self.in_outage():
            self._turn += 1
            if self._turn % 2:
                self.outage_replies += 1
                return "451 4.7.1 greylisted, try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd hook: 451 at the end of DATA during the outage; the armed kill otherwise."""
        if self.in_outage():
            self.outage_replies += 1
            return "451 4.3.0 queue full, try again later"
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            with self._lock:
                if self._outage_next:
                    self.outage_start, self.outage_end = time.monotonic(), time.monotonic() + self._outage_next
                    self._outage_next = 0.0
            self._maybe_kill()
        return reply

    def _maybe_kill(self) -> None:
        with self._lock:
            if self._armed is None:
                return
            pid, skip, before = self._armed
            if skip > 0:
                self._armed = (pid, skip - 1, before)
                return
            self._armed = None
        if before:
            _kill(pid)
            self.kills.append("forward stored, before the 250 reply")
        else:
            threading.Timer(0.003, _kill, (pid,)).start()
            self.kills.append("3 ms after the 250 reply of a forward")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ============================================================================ the job
def write_config(path: Path, port: int, user: str, smtp_port: int, model: Path, state: Path,
                 categories: Sequence[str], *, first_run_key: bool) -> dict[str, list[str]]:
    """Every category with keyword, tag, forward and move; returns category -> forward addresses.

    The first category forwards to two addresses (two forwards per message).
    Retries are spread over minutes rather than days, so that a forward refused
    during the outage is due again within the benchmark.
    """
    forwards = {name: [f"{name.lower()}@asso.test"] for name in categories}
    if categories:
        forwards[categories[0]].append("bureau@asso.test")
    lines = [
        "[mailbox]", 'connector = "imap"', 'host = "127.0.0.1"', f"port = {port}", f'username = "{user}"',
        f'password = {{ env = "{PASSWORD_ENV}" }}', 'tls = "none"', "timeout = 60", "",
        "[triage]", 'folders = ["INBOX"]', f'review_folder = "{REVIEW}"', f'state = "{state}"', "page_size = 100",
        "forward_max_age_days = 30", "forward_retry_days = 0.005",
        *(['first_run = "all"'] if first_run_key else []), "",
        "[model]", f'path = "{model}"', "",
        "[smtp]", 'host = "127.0.0.1"', f"port = {smtp_port}", "starttls = false", f'sender = "{SENDER}"',
        "timeout = 20", "",
    ]
    for name in categories:
        addresses = ", ".join(f'"{a}"' for a in forwards[name])
        lines += [f"[categories.{name}]", f'folder = "IA/{name}"', f'label = "{name}"', "tag = true",
                  f"forward = [{addresses}]", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return forwards


def first_run_key_exists() -> bool:
    """Whether ``[triage] first_run`` is a setting of this version of the job."""
    from assoc_ai_core.jobs.settings import TriageSection

    return "first_run" in TriageSection.__dataclass_fields__


@dataclass
class JobRun:
    """One subprocess run of the job: how it ended and what it cost."""

    seconds: float
    returncode: int
    peak_rss: int
    report: dict[str, Any] | None
    stderr_tail: str
    killed: str | None = None


def _tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(current RSS of the process and its children, highest VmHWM among them)."""
    total, hwm = 0, 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
            with open(f"/proc/{p.pid}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]) * 1024)
        except (psutil.Error, OSError, ValueError):
            continue
    return total, hwm


def job_env(password: str) -> dict[str, str]:
    """The job's environment: the IMAP password by variable, the IMAP plugin, one thread per numeric library."""
    return {**os.environ, PASSWORD_ENV: password, "ASSOC_AI_LOAD_PLUGINS": "assoc-ai-imap", "ASSOC_AI_LANG": "en",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_job(config: Path, password: str, *, core: int | None = None,
            poll: Callable[[int, float], str | None] | None = None, timeout: float = 1800.0) -> JobRun:
    """``assoc-ai triage run --json`` as a subprocess, its memory polled every 20 ms.

    ``poll(pid, elapsed)`` is called at each poll; when it returns a reason the
    job is SIGKILLed there (it may also arm the sink to kill the job itself).
    """
    cli = Path(sys.executable).with_name("assoc-ai")
    preexec = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    started = time.perf_counter()
    proc = subprocess.Popen([str(cli), "triage", "run", "--config", str(config), "--json"], env=job_env(password),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec)
    ps = psutil.Process(proc.pid)
    peak, killed = 0, None
    # the pipes are drained by threads: a chatty job must never block on a full pipe while we poll
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
               for s, b in ((proc.stdout, out_chunks), (proc.stderr, err_chunks))]
    for reader in readers:
        reader.start()
    while proc.poll() is None:
        elapsed = time.perf_counter() - started
        reason = poll(proc.pid, elapsed) if poll is not None else None
        if reason is not None:
            _kill(proc.pid)
            killed = reason
            break
        if elapsed > timeout:
            _kill(proc.pid)
            killed = "time-out"
            break
        try:
            rss, hwm = _tree_rss(ps)
            peak = max(peak, rss, hwm)
        except psutil.Error:
            pass
        time.sleep(0.02)
    proc.wait()
    for reader in readers:
        reader.join(timeout=30)
    seconds = time.perf_counter() - started
    out, err = b"".join(out_chunks), b"".join(err_chunks).decode(errors="replace")
    report = None
    if proc.returncode in (0, 1) and out.strip():
        try:
            report = json.loads(out)
        except ValueError:
            report = None
    return JobRun(seconds, proc.returncode, peak, report, err[-1500:], killed)


# ============================================================================ counting
def census(server: Any, user: str, password: str) -> dict[str, list[tuple[str, str]]]:
    """Message-ID (brackets removed) -> every (folder, subject) holding a message with it, across all folders."""
    found: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    with server.client(user, password) as client:
        for flags, _sep, folder in client.list_folders():
            if {b"\\Noselect", b"\\NonExistent"} & {f for f in flags if isinstance(f, bytes)}:
                continue  # a parent such as "IA" holds no message
            info = client.select_folder(folder, readonly=True)
            if not info.get(b"EXISTS"):
                continue
            uids = client.search("ALL")
            for start in range(0, len(uids), 500):
                fetched = client.fetch(uids[start:start + 500], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)]"])
                for data in fetched.values():
                    head = parser.parsebytes(data[b"BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)]"])
                    mid = str(head.get("Message-ID", "")).strip().strip("<>").strip()
                    found[mid].append((folder, str(head.get("Subject", ""))))
    return found


def expected_forwards(keys: Sequence[str], raws: Sequence[bytes], state_path: Path,
                      forwards: Mapping[str, list[str]]) -> tuple[dict[str, tuple[str, str]], dict[str, int]]:
    """Forward Message-ID -> (key, destination) for every forward the decisions call for; and decision counts.

    Worked out here from the recorded decision (auto, category) and the
    message itself (:func:`should_forward`), not from the job's journal.
    """
    from assoc_ai_core.jobs.forwarding import forward_message_id, should_forward
    from assoc_ai_core.jobs.state import StateStore
    from assoc_ai_core.mail.parsing import parse_message

    expected: dict[str, tuple[str, str]] = {}
    decisions: collections.Counter[str] = collections.Counter()
    with StateStore(state_path) as state:
        records = state.get_messages("imap", list(keys))
    for key, raw in zip(keys, raws, strict=True):
        record = records.get(key)
        decisions[record.decision if record else "undecided"] += 1
        if record is not None and record.decision == "error":
            decisions[f"error: {record.reason}"] += 1  # the job's own reason, never the message's text
        if record is None or record.decision != "auto" or record.category is None or record.category not in forwards:
            continue
        if not should_forward(parse_message(raw))[0]:
            decisions["auto, automated mail (no forward)"] += 1
            continue
        for to in forwards[record.category]:
            expected[forward_message_id(key, to, SENDER)] = (key, to)
    return expected, dict(decisions)


def verdict(keys: Sequence[str], raws: Sequence[bytes], found: Mapping[str, list[tuple[str, str]]],
            sink_ids: Sequence[str], state_path: Path, forwards: Mapping[str, list[str]]) -> dict[str, Any]:
    """The four counts of the issue, with the details that explain them."""
    from assoc_ai_core.jobs.outbox import OutboxStatus
    from assoc_ai_core.jobs.state import StateStore

    lost = [k for k in keys if k not in found]
    twice = {k: [f for f, _ in found[k]] for k in keys if len(found.get(k, ())) > 1}
    in_inbox = [k for k in keys if any(f == "INBOX" for f, _ in found.get(k, ()))]
    tagged_twice = [k for k in keys for _, subject in found.get(k, ()) if subject.count("[#") > 1]
    expected, decisions = expected_forwards(keys, raws, state_path, forwards)
    at_sink = collections.Counter(s.strip() for s in sink_ids)
    forwards_lost = [mid for mid in expected if mid not in at_sink]
    forwards_twice = {mid: n for mid, n in at_sink.items() if n > 1}
    unexpected = [mid for mid in at_sink if mid not in expected]
    with StateStore(state_path) as state:
        outbox = dict(state.execute("SELECT status, COUNT(*) FROM forward_outbox GROUP BY status").fetchall())
        resent = state.execute("SELECT COUNT(*) FROM forward_outbox WHERE maybe_sent > 0").fetchone()[0]
        pending = len(state.messages_with_status("imap", "pending"))
        lost_in_state = len(state.messages_with_status("imap", "lost"))
        runs = dict(state.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    return {
        "messages": len(keys), "decisions": decisions,
        "messages_lost": len(lost), "messages_present_twice": len(twice), "left_in_inbox": len(in_inbox),
        "subjects_tagged_twice": len(tagged_twice),
        "forwards_expected": len(expected), "forwards_at_sink": sum(at_sink.values()),
        "forwards_lost": len(forwards_lost), "forwards_delivered_twice": len(forwards_twice),
        "forwards_unexpected": len(unexpected), "forward_copies_at_most": max(at_sink.values(), default=0),
        "outbox": {str(OutboxStatus(k)): v for k, v in outbox.items()},
        "outbox_sent_again_after_an_interrupted_send": resent,
        "state_pending_messages": pending, "state_lost_messages": lost_in_state, "runs_by_status": runs,
        "examples": {"lost": lost[:5], "present_twice": dict(list(twice.items())[:5]),
                     "forwards_lost": [expected[m] for m in forwards_lost[:5]],
                     "forwards_twice": [(expected.get(m, ("?", "?")), n) for m, n in list(forwards_twice.items())[:5]]},
    }


def nothing_left(state_path: Path, server: Any, user: str, password: str) -> tuple[bool, float]:
    """Whether the job has nothing left to do; and seconds until the next forward retry is due (0: none)."""
    from datetime import UTC, datetime

    from assoc_ai_core.jobs.state import StateStore

    with StateStore(state_path) as state:
        pending = len(state.messages_with_status("imap", "pending"))
        rows = state.execute("SELECT next_attempt_at FROM forward_outbox WHERE status IN ('pending', 'sending')"
                             ).fetchall()
    with server.client(user, password) as client:
        inbox = client.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"]
    now = datetime.now(UTC)
    waits = [max(0.0, (datetime.fromisoformat(r[0]) - now).total_seconds()) for r in rows if r[0]]
    return (pending == 0 and not rows and inbox == 0), (min(waits) if waits else 0.0)


# ============================================================================ the two runs
@dataclass
class Setup:
    """What both runs share: the model, its categories, the mail, the work folder."""

    work: Path
    model: Path
    categories: list[str]
    count: int
    seed: int
    core: int | None
    storage: str
    first_run_key: bool = field(default_factory=first_run_key_exists)


def train_model(work: Path) -> tuple[Path, list[str], float]:
    """``assoc-ai train`` on devA; returns the model file, its categories and the seconds taken."""
    from assoc_ai_core.persistence import load_model

    model = work / "model.skops"
    cli = Path(sys.executable).with_name("assoc-ai")
    started = time.perf_counter()
    done = subprocess.run([str(cli), "train", str(DEV_A), "-o", str(model)], capture_output=True,
                          env={**os.environ, "ASSOC_AI_LANG": "en"})
    if done.returncode != 0:
        raise SystemExit(f"assoc-ai train failed ({done.returncode}):\n{done.stderr.decode(errors='replace')[-2000:]}")
    seconds = time.perf_counter() - started
    return model, [str(c) for c in load_model(model).classes_], seconds


class Stage:
    """One Dovecot account, one sink, one state file and one configuration: a run's world."""

    def __init__(self, setup: Setup, server: Any, name: str) -> None:
        self.setup, self.server, self.name = setup, server, name
        self.user, self.password = server.add_user()
        self.sink = FaultySink()
        self.sink.start()
        self.state = setup.work / f"{name}.sqlite"
        self.config = setup.work / f"{name}.toml"
        self.forwards = write_config(self.config, server.port, self.user, self.sink.port, setup.model, self.state,
                                     setup.categories, first_run_key=setup.first_run_key)
        self.keys, self.raws = stream_mail(setup.count, name)

    def deliver(self) -> float:
        """The mail into the INBOX, after an empty first run when ``first_run`` does not exist yet."""
        if not self.setup.first_run_key:
            first = run_job(self.config, self.password, core=self.setup.core)
            if first.returncode != 0:
                raise SystemExit(f"empty first run failed ({first.returncode}):\n{first.stderr_tail}")
        return fill(self.server, self.user, self.password, self.raws)

    def run(self, **kwargs: Any) -> JobRun:
        """One run of the job on this stage."""
        return run_job(self.config, self.password, core=self.setup.core, **kwargs)

    def verdict(self) -> dict[str, Any]:
        """The counts after the runs."""
        return verdict(self.keys, self.raws, census(self.server, self.user, self.password), self.sink.message_ids(),
                       self.state, self.forwards)

    def close(self) -> None:
        """Stop the sink."""
        self.sink.stop()


def throughput(setup: Setup, server: Any) -> dict[str, Any]:
    """One uninterrupted run on the whole INBOX: rate, peak memory, and the same counts as the chaos run."""
    stage = Stage(setup, server, "throughput")
    try:
        empty = stage.run() if setup.first_run_key else None  # start-up, model, login, folders: the fixed cost
        fill_s = stage.deliver()
        run = stage.run()
        if run.report is None:
            raise SystemExit(f"throughput run failed ({run.returncode}):\n{run.stderr_tail}")
        handled = run.report["auto"] + run.report["review"] + run.report["errors"]
        rate = handled / run.seconds
        fixed = empty.seconds if empty is not None else None
        counts = stage.verdict()
    finally:
        stage.close()
    return {"fill_seconds": round(fill_s, 2), "job_seconds": round(run.seconds, 2), "exit_code": run.returncode,
            "messages_decided": handled, "messages_per_second": round(rate, 1),
            "empty_run_seconds": round(fixed, 2) if fixed is not None else None,
            "messages_per_second_after_fixed_cost": round(handled / (run.seconds - fixed), 1) if fixed else None,
            "peak_rss_mb": round(run.peak_rss / 2**20, 1),
            "report": {k: run.report[k] for k in ("fetched", "auto", "review", "errors", "skipped", "failed",
                                                  "forwarded")},
            "counts": counts}


class Progress:
    """How many decisions the job has recorded so far, read from its state file while it runs (WAL: no lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def decided(self) -> int:
        """Rows of the ``messages`` table (0 before the job made the file)."""
        try:
            if self._db is None:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1)
            return int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        except sqlite3.Error:
            return 0

    def close(self) -> None:
        """Close the reading connection."""
        if self._db is not None:
            self._db.close()
            self._db = None


class Killer:
    """When to kill one run: ``poll`` waits for the job to reach decision ``point``, then kills or arms the sink."""

    def __init__(self, mode: str, point: int, progress: Progress, sink: FaultySink, outage: float,
                 rng: random.Random) -> None:
        self.mode, self.point, self.progress, self.sink, self.outage = mode, point, progress, sink, outage
        self.delay = rng.uniform(0.5, 6.0) if point == 0 else rng.uniform(0.0, 0.4)
        self.skip = rng.randrange(0, 5)
        self.reached: float | None = None

    def poll(self, pid: int, elapsed: float) -> str | None:
        """Called by :func:`run_job` every 20 ms; a reason means "kill it now"."""
        if self.reached is None:
            if self.progress.decided() < self.point:
                return None
            self.reached = elapsed
            if self.outage and not self.sink.outage_end:
                self.sink.outage_from_next_forward(self.outage)
            if self.mode != "random":
                self.sink.arm_kill(pid, self.skip, before_reply=self.mode == "before_reply")
        waited = elapsed - self.reached
        if self.mode == "random" and waited >= self.delay:
            return f"{waited:.2f} s after decision {self.point} (random instant)"
        if self.mode != "random" and waited >= 10.0:
            return f"10 s after decision {self.point}: no forward reached the sink (random instant)"
        return None


def finish(stage: Stage) -> list[dict[str, Any]]:
    """Run the job until it has nothing left (waiting for forward retries to fall due); each run's summary."""
    finishing: list[dict[str, Any]] = []
    for _ in range(40):
        run = stage.run()
        finishing.append({"returncode": run.returncode, "seconds": round(run.seconds, 2),
                          "report": {k: (run.report or {}).get(k) for k in
                                     ("fetched", "auto", "review", "skipped", "failed", "forwarded", "recovered")}})
        if run.returncode not in (0, 1):
            raise SystemExit(f"finishing run failed ({run.returncode}):\n{run.stderr_tail}")
        done, wait = nothing_left(stage.state, stage.server, stage.user, stage.password)
        if done:
            break
        time.sleep(min(wait, 60.0) + 0.2)
    return finishing


def chaos(setup: Setup, server: Any, *, kills: int, outage: float) -> dict[str, Any]:
    """Kill the job ``kills`` times, spread over the stream, with one 451 period; then run it until nothing is left.

    Kill ``i`` waits until the job has recorded a random number of decisions
    (sorted random points over the whole stream), then: ``random`` kills it
    after a further random 0-400 ms (once every message is decided: 0.5-6 s
    after the start, in recovery or outbox retries); ``before_reply`` / ``after_reply`` arm
    the sink, which kills it while it takes one of the next forwards (falling
    back to a random instant when no forward comes within 10 s).  The 451
    period starts with the first forward the sink takes after the progress
    point of one randomly chosen kill, so it falls among forwards.
    """
    rng = random.Random(setup.seed)
    stage = Stage(setup, server, "chaos")
    sink = stage.sink
    modes = [("random", "before_reply", "after_reply")[i % 3] for i in range(kills)]
    rng.shuffle(modes)
    points = sorted(rng.randrange(1, max(2, setup.count)) for _ in range(kills))
    outage_in = rng.randrange(0, max(1, kills))
    log: list[dict[str, Any]] = []
    delivered = 0
    progress = Progress(stage.state)
    try:
        stage.deliver()
        attempt = 0
        while delivered < kills and attempt < kills * 3:
            attempt += 1
            # a run killed past the next point: that kill still waits for fresh progress, not the start-up
            mode, point = modes[delivered], max(points[delivered], progress.decided() + rng.randrange(1, 30))
            if point >= setup.count:  # every message decided: this kill falls in recovery or outbox retries
                point = 0
            killer = Killer(mode, point, progress, sink, outage if delivered == outage_in else 0.0, rng)
            fired = len(sink.kills)
            run = stage.run(poll=killer.poll)
            sink.disarm()
            if len(sink.kills) > fired:
                run.killed = f"{sink.kills[-1]}, after decision {point}"
            ended = time.monotonic()
            entry = {"mode": mode, "progress_point": point, "killed": run.killed, "returncode": run.returncode,
                     "seconds": round(run.seconds, 2), "sink_accepted_so_far": len(sink.envelopes),
                     "decided_so_far": progress.decided(),
                     "during_outage": bool(sink.outage_end) and sink.outage_start < ended
                     and ended - run.seconds < sink.outage_end}
            log.append(entry)
            if run.returncode == -signal.SIGKILL:
                delivered += 1
                continue
            if run.returncode not in (0, 1):
                raise SystemExit(f"chaos run failed ({run.returncode}):\n{run.stderr_tail}")
            if nothing_left(stage.state, server, stage.user, stage.password)[0]:
                entry["note"] = "the job finished before its kill: nothing left to kill"
                break
        while time.monotonic() < sink.outage_end:
            time.sleep(0.2)
        finishing = finish(stage)
        counts = stage.verdict()
    finally:
        progress.close()
        stage.close()
    return {"kills_asked": kills, "kills_delivered": delivered, "outage_seconds": outage,
            "outage_451_replies": sink.outage_replies, "kill_runs": log, "finishing_runs": finishing,
            "counts": counts}


# ============================================================================ profile
#: label -> (end of the file's path, function name) summed from cProfile's cumulative times
_PROFILED = {
    "fetch pages (ImapConnector.fetch_new)": ("assoc_ai_imap/fetch.py", "fetch_new"),
    "parse (parse_message)": ("assoc_ai_core/mail/parsing.py", "parse_message"),
    "decide a page: clean, predict, explain (decide_page)": ("assoc_ai_core/jobs/deciding.py", "decide_page"),
    "record decisions + first intents (TriageJob._record)": ("assoc_ai_core/jobs/triage.py", "_record"),
    "batched plans: review moves (TriageJob._handle_batch)": ("assoc_ai_core/jobs/triage.py", "_handle_batch"),
    "one-by-one plans: label, tag, forward, move (Executor.execute)": ("assoc_ai_core/jobs/execute.py", "execute"),
    "  IMAP keyword (add_label)": ("assoc_ai_imap/actions.py", "add_label"),
    "  IMAP subject tag: APPEND + EXPUNGE (tag_subject)": ("assoc_ai_imap/tagging.py", "tag_subject"),
    "  IMAP move (move)": ("assoc_ai_imap/actions.py", "move"),
    "  forward through the outbox (Outbox.send)": ("assoc_ai_core/jobs/outbox.py", "send"),
    "    SMTP: connect, EHLO, send, QUIT (SmtpForwarder.send)": ("assoc_ai_core/jobs/forwarding.py", "send"),
    "SQLite execute (COMMIT and its fsync included)": ("~", "<method 'execute' of 'sqlite3.Connection' objects>"),
}


def profile(setup: Setup, server: Any, count: int) -> dict[str, Any]:
    """Where the job's time goes with every action: cProfile of an in-process run on ``count`` messages.

    The sink's thread shares this process (and its GIL), so the SMTP share is a little high.
    """
    import cProfile
    import pstats

    from assoc_ai_core.jobs.settings import TriageSettings
    from assoc_ai_core.jobs.triage import TriageJob
    from assoc_ai_core.persistence import load_model

    small = Setup(setup.work, setup.model, setup.categories, count, setup.seed, setup.core, setup.storage,
                  setup.first_run_key)
    stage = Stage(small, server, "profile")
    os.environ[PASSWORD_ENV] = stage.password
    profiler = cProfile.Profile()
    try:
        stage.deliver()
        model = load_model(setup.model)
        with TriageJob(TriageSettings.load(stage.config), model=model) as job:
            started = time.perf_counter()
            profiler.enable()
            report = job.run_once()
            profiler.disable()
            total = time.perf_counter() - started
    finally:
        os.environ.pop(PASSWORD_ENV, None)
        stage.close()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    shares = {}
    for label, (file_end, func) in _PROFILED.items():
        seconds = sum(v[3] for (f, _, name), v in stats.items() if name == func and f.endswith(file_end))
        shares[label] = {"seconds": round(seconds, 2), "share": round(seconds / total, 3)}
    return {"messages": count, "auto": report.auto, "review": report.review, "forwarded": report.forwarded,
            "seconds": round(total, 2), "messages_per_second": round(count / total, 1), "cumulative_time": shares}


# ============================================================================ main
def main() -> None:
    """Run both measurements and write the JSON results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--outage", type=float, default=8.0, help="seconds of 451 replies from the sink")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--core", type=int, default=None, help="pin the job to this CPU core (default: not pinned)")
    parser.add_argument("--storage", default="maildir", choices=["maildir", "sdbox", "mdbox"])
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-chaos", action="store_true")
    parser.add_argument("--profile", type=int, default=0, help="messages for an in-process cProfile run (0: none)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    from assoc_ai_imap.testing import DovecotServer

    logging.getLogger("assoc_ai_imap").setLevel(logging.ERROR)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd: one line per connection
    work = Path(tempfile.mkdtemp(prefix="assoc-ai-stream-"))
    model, categories, train_s = train_model(work)
    setup = Setup(work, model, categories, args.messages, args.seed, args.core, args.storage)
    result: dict[str, Any] = {
        "messages": args.messages, "actions": ["label", "tag_subject", "forward (SMTP sink)", "move"],
        "categories": categories, "dovecot_storage": args.storage, "pinned_core": args.core,
        "first_run": 'first_run = "all"' if setup.first_run_key else "an empty first run, then the mail delivered",
        "train_seconds": round(train_s, 2),
        "targets": {"messages_per_second": TARGET_MSG_PER_S, "peak_rss_mb": TARGET_PEAK_MB, "messages_lost": 0,
                    "messages_moved_twice": 0, "forwards_lost": 0, "forwards_delivered_twice": 0},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
    }
    with DovecotServer(mail_format=args.storage) as server:
        if not args.skip_throughput:
            result["throughput"] = tp = throughput(setup, server)
            _print_throughput(tp)
        if not args.skip_chaos:
            result["chaos"] = ch = chaos(setup, server, kills=args.kills, outage=args.outage)
            _print_chaos(ch)
        if args.profile:
            result["job_profile"] = prof = profile(setup, server, args.profile)
            print(f"profile of the job on {prof['messages']} messages ({prof['auto']} auto, {prof['forwarded']} "
                  f"forwarded) in-process: {prof['messages_per_second']:.1f} msg/s")
            for label, figures in prof["cumulative_time"].items():
                print(f"  {label:<66} {figures['seconds']:>7.2f} s  {figures['share']:>6.1%}")
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["meets_targets"] = _meets(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"targets met: {result['meets_targets']}")
    print(f"results in {args.output}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


def _meets(result: Mapping[str, Any]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    if "throughput" in result:
        out["messages_per_second"] = result["throughput"]["messages_per_second"] >= TARGET_MSG_PER_S
        out["peak_rss_mb"] = result["throughput"]["peak_rss_mb"] < TARGET_PEAK_MB
    if "chaos" in result:
        c = result["chaos"]["counts"]
        for name in ("messages_lost", "forwards_lost", "forwards_delivered_twice"):
            out[name] = c[name] == 0
        out["messages_moved_twice"] = c["messages_present_twice"] == 0
    return out


def _counts_line(c: Mapping[str, Any]) -> str:
    return (f"lost {c['messages_lost']}, present twice {c['messages_present_twice']}, left in INBOX "
            f"{c['left_in_inbox']}, tagged twice {c['subjects_tagged_twice']}; forwards expected "
            f"{c['forwards_expected']}, at sink {c['forwards_at_sink']}, lost {c['forwards_lost']}, delivered twice "
            f"{c['forwards_delivered_twice']}, unexpected {c['forwards_unexpected']}; outbox {c['outbox']} "
            f"({c['outbox_sent_again_after_an_interrupted_send']} sent again after an interrupted send); "
            f"decisions {c['decisions']}")


def _print_throughput(tp: Mapping[str, Any]) -> None:
    print(f"throughput: {tp['messages_decided']} messages in {tp['job_seconds']:.1f} s -> "
          f"{tp['messages_per_second']:.1f} msg/s (target {TARGET_MSG_PER_S:.0f}); peak RSS {tp['peak_rss_mb']:.0f} MiB "
          f"(target < {TARGET_PEAK_MB:.0f}); an empty run takes {tp['empty_run_seconds']} s "
          f"({tp['messages_per_second_after_fixed_cost']} msg/s without it); report {tp['report']}")
    print(f"  {_counts_line(tp['counts'])}")


def _print_chaos(ch: Mapping[str, Any]) -> None:
    print(f"chaos: {ch['kills_delivered']}/{ch['kills_asked']} kills, {ch['outage_451_replies']} replies 451 in "
          f"{ch['outage_seconds']:.0f} s, {len(ch['finishing_runs'])} finishing run(s)")
    for entry in ch["kill_runs"]:
        print(f"  {entry['mode']:<13} {entry['killed'] or 'not killed'} (exit {entry['returncode']}, "
              f"{entry['seconds']} s, sink {entry['sink_accepted_so_far']})")
    print(f"  {_counts_line(ch['counts'])}")


if __name__ == "__main__":
    main()
