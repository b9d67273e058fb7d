"""Microsoft Graph requests per triage run, against the faithful loopback Microsoft 365.

The loopback (plugins/assoc-ai-m365/tests/m365_fakeserver.py) applies the
service's limits: 4 MB per request, 20 requests per ``$batch``, 1000 messages
per page, and here Outlook's throttling of 10,000 requests per 10 minutes per
mailbox (429 with ``Retry-After``), each request inside a ``$batch`` counted
on its own.  A mailbox gets ``--recent`` messages, which a first run of the
real ``TriageJob`` decides and files (not measured, throttling off).  Then
one run is measured with 0 new messages, one with ``--new`` new messages, and
0 again; a last row runs with no new mail under a deliberately tight limit
(``--tight`` requests per second) to show what throttling costs in waits.

Each row gives the HTTP requests sent (a ``$batch`` is one; sign-in is not
counted), the requests Outlook's throttling counts (a batch's sub-requests
one by one), the 429 answers met and the seconds the connector waited on
``Retry-After``.  Writes ``bench/results/m365_requests.json``.  Not a test:
figures are reported and compared with the target, nothing is asserted.

    python bench/m365_requests.py [--recent 3000] [--new 50]

Needs the assoc-ai-m365 plugin (``pip install -e plugins/assoc-ai-m365[test]``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "assoc-ai-m365" / "tests"))  # the loopback server lives with the tests

from assoc_ai_m365 import M365Config, M365Connector  # noqa: E402
from m365_fakeserver import TENANT, FakeM365, make_tls_files  # noqa: E402

from assoc_ai_core.ext.config import Secret  # noqa: E402
from assoc_ai_core.jobs.triage import TriageJob, TriageSettings  # noqa: E402
from assoc_ai_core.testing.mail_samples import (  # noqa: E402
    CATEGORY_A,
    CATEGORY_B,
    FOLDER_A,
    FOLDER_B,
    REVIEW,
    kit_messages,
    kit_model,
)
from assoc_ai_core.testing.mailbox import RecordingForwarder  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "m365_requests.json"
MAILBOX = "info@asso-patrimoine.fr"
APP_ID, APP_SECRET = "6d1f0c2e-8a51-4b8e-9c7f-2b0a4e9d1a11", "bench~secret"
TARGET_REQUESTS = 20  # a run with no new mail, whatever the number of recent messages
OUTLOOK_LIMIT, OUTLOOK_WINDOW = 10_000, 600.0


def connector_config(fake: FakeM365) -> M365Config:
    """App-only access to the shared mailbox on the loopback, category colours included."""
    return M365Config(mailbox=MAILBOX, client_id=APP_ID, tenant=TENANT, client_secret=Secret(APP_SECRET),
                      authority_host=fake.base, graph_url=fake.graph_url, ca_bundle=str(fake.ca_path),
                      retry_backoff=0.05, max_retries=6, max_retry_wait=30.0, actions=("move", "label"))


def job_config(state: Path) -> dict[str, Any]:
    """Two categories filed and labelled (no forward: it is not what is measured)."""
    return {
        "mailbox": {"connector": "m365"},
        "triage": {"first_run": "all", "folders": ["Inbox"], "review_folder": REVIEW, "state": str(state),
                   "forward_max_age_days": 0},
        "categories": {CATEGORY_A: {"folder": FOLDER_A, "label": CATEGORY_A},
                       CATEGORY_B: {"folder": FOLDER_B, "label": CATEGORY_B}},
    }


def unique(raw: bytes, name: str) -> bytes:
    """The sample with a Message-ID of its own (the kit's samples repeat, the job would skip copies)."""
    head, _, body = raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.partition(b"\n\n")
    sep = b"\r\n" if b"\r\n" in head else b"\n"
    lines = [line for line in head.split(sep) if not line.lower().startswith(b"message-id:")]
    lines.append(b"Message-ID: <bench-" + name.encode() + b"@exemple.org>")
    return sep.join(lines) + sep + sep + body


def one_run(fake: FakeM365, settings: TriageSettings) -> dict[str, Any]:
    """One ``triage run`` with a fresh connector, as cron starts it; what it cost."""
    before = len(fake.seen)
    counted_before = fake.mailbox_requests.get(MAILBOX, 0)
    throttled_before = fake.throttled
    conn = M365Connector(connector_config(fake))
    graph = conn.graph  # opened here so its counters outlive the job's close()
    started = time.perf_counter()
    with TriageJob(settings, connector=conn, model=kit_model(), model_version="kit",
                   forwarder=RecordingForwarder()) as job:
        report = job.run_once()
    seconds = time.perf_counter() - started
    http = [r for r in fake.seen[before:] if r.path.startswith(("/v1.0/", "/upload/"))]
    by_kind: dict[str, int] = {}
    for r in http:
        kind = _kind(r.method, r.path)
        by_kind[kind] = by_kind.get(kind, 0) + 1
    return {
        "fetched": report.fetched, "decided": report.auto + report.review, "corrections": report.corrections,
        "http_requests": len(http), "counted_by_outlook": fake.mailbox_requests.get(MAILBOX, 0) - counted_before,
        "requests_by_kind": dict(sorted(by_kind.items())),
        "throttled_429": fake.throttled - throttled_before, "retry_after_wait_s": round(graph.stats["waited_ms"] / 1000, 2),
        "wall_s": round(seconds, 2),
    }


def _kind(method: str, path: str) -> str:
    """A request's shape without ids: ``GET /messages/{id}/$value``."""
    parts = path.split("/")[1:]
    if parts[:2] == ["v1.0", "users"]:
        parts = parts[3:]
    shown = [p if p in ("messages", "mailFolders", "childFolders", "$value", "delta", "move", "outlook",
                        "masterCategories", "$batch", "send", "sendMail", "upload") or p.startswith("$")
             else "{id}" for p in parts if p != "v1.0"]
    return f"{method} /{'/'.join(shown)}"


def main() -> None:
    """Fill, decide, measure, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recent", type=int, default=3000, help="messages already decided (recent)")
    parser.add_argument("--new", type=int, default=50, help="new messages in the measured run")
    parser.add_argument("--tight", type=int, default=2, help="requests per second in the throttled row")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeM365(make_tls_files(Path(tmp) / "tls")).start()
        try:
            fake.register_app(APP_ID, APP_SECRET, mailboxes={MAILBOX})
            box = fake.add_mailbox(MAILBOX)
            os.environ["ASSOC_AI_HOME"] = tmp
            settings = TriageSettings.from_mapping(job_config(Path(tmp) / "state.sqlite"), base_dir=Path(tmp))
            now = time.time()
            for i, (raw, _) in enumerate(kit_messages((args.recent + 1) // 2, seed=1)[: args.recent]):
                box.deliver(unique(raw, f"recent-{i}"), received=now - 86400 - i * 600)  # the last three weeks
            setup = one_run(fake, settings)
            fake.throttle(OUTLOOK_LIMIT, OUTLOOK_WINDOW)
            rows: dict[str, Any] = {"no_new_mail": one_run(fake, settings)}
            for i, (raw, _) in enumerate(kit_messages((args.new + 1) // 2, seed=2)[: args.new]):
                box.deliver(unique(raw, f"new-{i}"))
            rows[f"{args.new}_new_mail"] = one_run(fake, settings)
            rows["no_new_mail_after"] = one_run(fake, settings)
            fake.throttle(args.tight, 1.0)
            rows[f"no_new_mail_{args.tight}_per_s"] = one_run(fake, settings)
        finally:
            fake.stop()
    quiet = rows["no_new_mail"]
    result = {
        "benchmark": "m365_requests", "recent_messages": args.recent, "new_messages": args.new,
        "python": platform.python_version(), "setup_run_deciding_recent": setup, "runs": rows,
        "throttling": {"outlook_limit": OUTLOOK_LIMIT, "window_s": OUTLOOK_WINDOW, "tight_row_per_s": args.tight},
        "target": {"http_requests_at_most": TARGET_REQUESTS, "with_recent_messages": args.recent},
        "meets_target": quiet["http_requests"] <= TARGET_REQUESTS and quiet["counted_by_outlook"] <= TARGET_REQUESTS,
    }
    print(f"setup: {setup['decided']} recent messages decided with {setup['http_requests']} requests "
          f"in {setup['wall_s']} s")
    print(f"{'run':<24}{'fetched':>8}{'HTTP req':>10}{'counted':>9}{'429s':>6}{'waited s':>10}{'wall s':>8}")
    for name, row in rows.items():
        print(f"{name:<24}{row['fetched']:>8}{row['http_requests']:>10}{row['counted_by_outlook']:>9}"
              f"{row['throttled_429']:>6}{row['retry_after_wait_s']:>10}{row['wall_s']:>8}")
    print(f"target (no new mail, {args.recent} recent): <= {TARGET_REQUESTS} requests -> "
          f"{'met' if result['meets_target'] else 'NOT met'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
