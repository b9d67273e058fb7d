"""Throughput of the triage job end to end on a real IMAP server (Dovecot on 127.0.0.1).

Fills a throw-away Dovecot mailbox with real mail (the SpamAssassin public
corpus and the devA association mailbox from ../shared), trains a model on
devA, then runs ``assoc-ai triage run --config FILE --once`` once as a
subprocess pinned to one CPU core, and reports messages per second and the
job's peak memory; then measures the IMAP connector alone on the same mail
(one message at a time, and batched per page and category as the job does)
and profiles an in-process run to show where the job's time goes.  Writes
``bench/results/imap_triage.json``.  Not a test:
figures are reported and compared with the target, nothing is asserted.

    python bench/imap_triage.py [--messages 5000] [--tag] [--storage maildir|mdbox] [--profile 300]

Needs Dovecot (``apt-get install dovecot-imapd``) and the assoc-ai-imap plugin
(``pip install -e plugins/assoc-ai-imap``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SPAMASSASSIN = SHARED / "data" / "spamassassin_public_corpus" / "spamassassin_raw.tar.gz"
DEV_A = SHARED / "corpora" / "devA"
RESULTS = ROOT / "bench" / "results" / "imap_triage.json"
TARGET_MSG_PER_S = 200.0
PASSWORD_ENV = "ASSOC_AI_BENCH_IMAP_PASSWORD"
REVIEW = "À vérifier"


def real_mail(count: int) -> list[bytes]:
    """All of devA, then SpamAssassin messages in archive order, ``count`` in all."""
    mails = [p.read_bytes() for p in sorted(DEV_A.glob("*/*.eml"))]
    with tarfile.open(SPAMASSASSIN) as tar:
        for member in tar:
            if len(mails) >= count:
                break
            if member.isfile():
                mails.append(tar.extractfile(member).read())  # type: ignore[union-attr]
    if len(mails) < count:
        raise SystemExit(f"only {len(mails)} messages available, {count} asked")
    return mails[:count]


def fill(server, user: str, password: str, mails: list[bytes]) -> float:
    """Deliver ``mails`` into the INBOX with MULTIAPPEND batches; return seconds taken."""
    started = time.perf_counter()
    with server.client(user, password) as client:
        for start in range(0, len(mails), 200):
            client.multiappend("INBOX", mails[start:start + 200])
    return time.perf_counter() - started


def write_config(path: Path, server, user: str, model: Path, state: Path, categories: list[str], *,
                 tag: bool, page_size: int) -> None:
    """The job's configuration: every category gets a keyword, a folder (and a subject tag with --tag)."""
    lines = [
        "[mailbox]", 'connector = "imap"', 'host = "127.0.0.1"', f"port = {server.port}", f'username = "{user}"',
        f'password = {{ env = "{PASSWORD_ENV}" }}', 'tls = "none"', "timeout = 60", "",
        "[triage]", 'folders = ["INBOX"]', f'review_folder = "{REVIEW}"', f'state = "{state}"',
        f"page_size = {page_size}", "",
        "[model]", f'path = "{model}"', "",
    ]
    for name in categories:
        lines += [f"[categories.{name}]", f'folder = "IA/{name}"', f'label = "{name}"',
                  f"tag = {'true' if tag else 'false'}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)


def run_job(config: Path, password: str, core: int) -> tuple[float, dict, int, str]:
    """Run the job once on one core; return (seconds, JSON report, peak RSS in bytes, stderr tail)."""
    env = {**os.environ, PASSWORD_ENV: password, "ASSOC_AI_LOAD_PLUGINS": "assoc-ai-imap", "ASSOC_AI_LANG": "en",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cli = Path(sys.executable).with_name("assoc-ai")
    started = time.perf_counter()
    proc = subprocess.Popen([str(cli), "triage", "run", "--config", str(config), "--once", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)  # Linux: KiB
    if proc.returncode != 0:
        raise SystemExit(f"triage run failed ({proc.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    return seconds, json.loads(out), peak, err.decode(errors="replace")[-500:]


def startup_seconds(core: int) -> float:
    """Time of ``assoc-ai --help`` on the same core: the fixed cost included in the end-to-end figure."""
    cli = Path(sys.executable).with_name("assoc-ai")
    started = time.perf_counter()
    subprocess.run([str(cli), "triage", "--help"], capture_output=True, check=True,
                   env={**os.environ, "ASSOC_AI_LOAD_PLUGINS": "assoc-ai-imap"},
                   preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    return time.perf_counter() - started


def connector_alone(mails: list[bytes], categories: list[str], core: int, mail_format: str, *,
                    batched: bool = False) -> dict:
    """The IMAP layer by itself on the same mail: fetch every page, add a keyword, move (one core).

    Run on Dovecot's Maildir storage and on mdbox: with thousands of messages
    in one Maildir folder, each expunge costs the server several milliseconds.
    ``batched`` uses ``add_label_many`` / ``move_many`` once per category and
    page, as the job does, instead of one command per message.
    """
    from assoc_ai_imap import ImapConnector
    from assoc_ai_imap.testing import DovecotServer

    previous = os.sched_getaffinity(0)
    with DovecotServer(mail_format=mail_format) as server:
        user, password = server.add_user()
        fill(server, user, password, mails)
        os.sched_setaffinity(0, {core})
        try:
            conn = ImapConnector(server.config(user, password, timeout=60.0))
            seconds, count, timings = _label_and_move(conn, categories, batched)
        finally:
            os.sched_setaffinity(0, previous)
    return {"dovecot_storage": mail_format, "batched": batched, "messages": count, "seconds": round(seconds, 2),
            "messages_per_second": round(count / seconds, 1),
            "ms_per_message": {k: round(1000 * v / max(1, count), 3) for k, v in timings.items()}}


def _label_and_move(conn, categories: list[str], batched: bool) -> tuple[float, int, dict[str, float]]:
    """Fetch every new message, add its keyword and move it; return (seconds, count, time per step).

    ``batched``: one keyword STORE and one MOVE per category and page (as the job does), else one
    message at a time.
    """
    timings = {"fetch": 0.0, "label": 0.0, "move": 0.0}
    count = 0
    with conn:
        for name in categories:
            conn.ensure_folder(f"IA/{name}")
        started = mark = time.perf_counter()
        for page in conn.fetch_new("INBOX", None, page_size=100):
            timings["fetch"] += time.perf_counter() - mark
            groups: dict[str, list] = {}
            for mail in page.messages:
                groups.setdefault(categories[count % len(categories)], []).append(mail.ref)
                count += 1
            for category, refs in groups.items():
                for chunk in ([refs] if batched else [[ref] for ref in refs]):
                    t0 = time.perf_counter()
                    if batched:
                        conn.add_label_many(chunk, category)
                    else:
                        conn.add_label(chunk[0], category)
                    t1 = time.perf_counter()
                    if batched:
                        moved = conn.move_many(chunk, f"IA/{category}")
                        if len(moved) != len(chunk):
                            raise SystemExit(f"move_many moved {len(moved)} of {len(chunk)} messages")
                    else:
                        conn.move(chunk[0], f"IA/{category}")
                    timings["label"] += t1 - t0
                    timings["move"] += time.perf_counter() - t1
            mark = time.perf_counter()
        seconds = time.perf_counter() - started
    return seconds, count, timings


def profile_job(server, mails: list[bytes], model, categories: list[str], work: Path, core: int) -> dict:
    """Where the job's time goes, from cProfile of an in-process run on ``mails`` (one core)."""
    import cProfile
    import pstats

    from assoc_ai_core.jobs.triage import TriageJob, TriageSettings

    user, password = server.add_user()
    fill(server, user, password, mails)
    config = work / "profile.toml"
    write_config(config, server, user, work / "model.skops", work / "profile.sqlite", categories, tag=False,
                 page_size=100)
    os.environ[PASSWORD_ENV] = password
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    profiler = cProfile.Profile()
    try:
        with TriageJob(TriageSettings.load(config), model=model) as job:
            started = time.perf_counter()
            profiler.enable()
            job.run_once()
            profiler.disable()
            total = time.perf_counter() - started
    finally:
        os.sched_setaffinity(0, previous)
        os.environ.pop(PASSWORD_ENV, None)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    wanted = {
        "decide a page: clean, predict, explain (jobs.deciding.decide_page)": ("assoc_ai_core/jobs/deciding.py",
                                                                              "decide_page"),
        "explain (assoc_ai_core.mail.explain.explain_many)": ("assoc_ai_core/mail/explain.py", "explain_many"),
        "clean (MailClassifier.transform_clean)": ("assoc_ai_core/mail/model.py", "transform_clean"),
        "predict (MailClassifier.predictions)": ("assoc_ai_core/mail/model.py", "predictions"),
        "parse (parse_message)": ("assoc_ai_core/mail/parsing.py", "parse_message"),
        "batched mailbox actions + journal (TriageJob._handle_batch)": ("assoc_ai_core/jobs/triage.py",
                                                                       "_handle_batch"),
        "one-by-one mailbox actions + journal (Executor.execute)": ("assoc_ai_core/jobs/execute.py", "execute"),
        "IMAP connector calls (ImapConnector._call)": ("assoc_ai_imap/session.py", "_call"),
        # the state store commits with an explicit COMMIT statement: its fsyncs are counted here
        "SQLite execute (COMMIT included)": ("~", "<method 'execute' of 'sqlite3.Connection' objects>"),
    }
    shares = {}
    for label, (file_end, func) in wanted.items():
        cumulative = sum(v[3] for (f, _, name), v in stats.items() if name == func and f.endswith(file_end))
        shares[label] = {"seconds": round(cumulative, 2), "share": round(cumulative / total, 3)}
    return {"messages": len(mails), "seconds": round(total, 2), "messages_per_second": round(len(mails) / total, 1),
            "cumulative_time": shares}


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--tag", action="store_true", help="also tag subjects (APPEND + UID EXPUNGE per message)")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--core", type=int, default=0, help="CPU core the job is pinned to")
    parser.add_argument("--storage", default="maildir", choices=["maildir", "sdbox", "mdbox"],
                        help="Dovecot storage of the job's mailbox")
    parser.add_argument("--profile", type=int, default=300, help="messages for the in-process profile (0: none)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    from assoc_ai_imap.testing import DovecotServer

    from assoc_ai_core.api import train
    from assoc_ai_core.jobs.state import StateStore
    from assoc_ai_core.mail.sources import load_dataset
    from assoc_ai_core.persistence import save_model

    logging.getLogger("assoc_ai_imap").setLevel(logging.ERROR)  # the loopback "no TLS" notice, once per connection
    mails = real_mail(args.messages)
    work = Path(tempfile.mkdtemp(prefix="assoc-ai-bench-"))
    started = time.perf_counter()
    dataset = load_dataset(DEV_A)
    model = train(dataset.messages)
    train_s = time.perf_counter() - started
    save_model(model, work / "model.skops")
    categories = [str(c) for c in model.classes_]

    with DovecotServer(mail_format=args.storage) as server:
        user, password = server.add_user()
        fill_s = fill(server, user, password, mails)
        config = work / "imap_triage.toml"
        state_path = work / "state.sqlite"
        write_config(config, server, user, work / "model.skops", state_path, categories, tag=args.tag,
                     page_size=args.page_size)
        startup = startup_seconds(args.core)
        seconds, report, peak, _ = run_job(config, password, args.core)
        with StateStore(state_path) as state:
            run = state.runs("imap", limit=1)[0]
        with server.client(user, password) as client:
            left = client.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"]
    alone = [connector_alone(mails, categories, args.core, storage, batched=batched)
             for storage in ("maildir", "mdbox") for batched in (False, True)]
    with DovecotServer() as server:
        profile = profile_job(server, mails[:args.profile], model, categories, work, args.core) if args.profile else None

    handled = report["auto"] + report["review"] + report["errors"]
    rate = handled / seconds
    result = {
        "messages": len(mails),
        "sources": {"devA": min(len(mails), 210), "spamassassin": max(0, len(mails) - 210)},
        "actions": ["label", "move"] + (["tag_subject"] if args.tag else []),
        "page_size": args.page_size,
        "pinned_core": args.core,
        "dovecot_storage": args.storage,
        "fill_seconds": round(fill_s, 2),
        "train_seconds": round(train_s, 2),
        "job_seconds_end_to_end": round(seconds, 2),
        "process_startup_seconds": round(startup, 2),
        "messages_per_second_end_to_end": round(rate, 1),
        "messages_per_second_after_startup": round(handled / max(1e-9, seconds - startup), 1),
        "peak_rss_mb": round(peak / 2**20, 1),
        "target_messages_per_second": TARGET_MSG_PER_S,
        "meets_target": rate >= TARGET_MSG_PER_S,
        "report": {k: report[k] for k in ("fetched", "auto", "review", "errors", "skipped", "failed")},
        "left_in_inbox": left,
        "connector_alone": alone,
        "job_profile": profile,
        "run_started_at": run["started_at"],
        "run_ended_at": run["ended_at"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(mails)} messages: {handled} decided in {seconds:.1f} s end to end "
          f"(startup {startup:.1f} s) -> {rate:.0f} msg/s on one core; peak memory {peak / 2**20:.0f} MiB; "
          f"target {TARGET_MSG_PER_S:.0f} msg/s: {'met' if rate >= TARGET_MSG_PER_S else 'NOT met'}")
    print(f"auto {report['auto']}, review {report['review']}, unreadable {report['errors']}, "
          f"failed {report['failed']}, left in INBOX {left}")
    for figures in alone:
        how = "batched per page and category" if figures["batched"] else "one message at a time"
        print(f"IMAP connector alone (fetch + keyword + move, {how}), Dovecot {figures['dovecot_storage']}: "
              f"{figures['messages_per_second']:.0f} msg/s, ms per message {figures['ms_per_message']}")
    if profile:
        print(f"profile of the job on {profile['messages']} messages ({profile['messages_per_second']:.0f} msg/s):")
        for label, figures in profile["cumulative_time"].items():
            print(f"  {label:<50} {figures['seconds']:>7.2f} s  {figures['share']:>6.1%}")
    print(f"results in {args.output}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
