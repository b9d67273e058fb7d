"""Gmail API requests and quota units per triage run, against the faithful loopback Gmail server.

The loopback (plugins/assoc-ai-gmail/tests/gmail_loopback.py) charges each
call the quota units of Google's "Usage limits" page and throttles above 250
units per user per second, like the real service.  A mailbox gets
``--recent`` messages, which the job decides (and files) first; a second run
sets the correction check's history point.  Then the figures of one run are
measured with 0 new messages, with ``--new`` new messages, and with 0 again
(the run after: it sees the job's own moves in the history).

Each row gives the HTTP requests sent to the API (a batch of 20 calls is one
request; the OAuth token request is not counted), the API calls inside them,
the quota units charged, and the time the connector waited to stay under the
per-user rate (on the loopback's clock: nothing really sleeps).  Writes
``bench/results/gmail_requests.json``.  Not a test: figures are reported and
compared with the target, nothing is asserted.

    python bench/gmail_requests.py [--recent 3000] [--new 50]

Needs the assoc-ai-gmail plugin (``pip install -e plugins/assoc-ai-gmail``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "assoc-ai-gmail" / "tests"))  # the loopback server lives with the tests

from assoc_ai_gmail.connector import GmailConfig, GmailConnector  # noqa: E402
from gmail_loopback import FakeGmail  # noqa: E402

from assoc_ai_core.ext.config import Secret  # noqa: E402
from assoc_ai_core.jobs.triage import TriageJob, TriageSettings  # noqa: E402
from assoc_ai_core.testing.mail_samples import kit_messages, kit_model  # noqa: E402
from assoc_ai_core.testing.mailbox import RecordingForwarder  # noqa: E402
from assoc_ai_core.testing.triage_checks import CATEGORY_A, CATEGORY_B, FOLDER_A, FOLDER_B, REVIEW  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gmail_requests.json"
TARGET_UNITS, TARGET_REQUESTS = 100, 5  # a run with no change, whatever the number of recent messages


def config(fake: FakeGmail, token: str, state: Path) -> dict[str, Any]:
    """A job on the inbox with two categories filed and labelled (no forward: it is not what is measured)."""
    return {
        "mailbox": {"connector": "gmail", "token": token, "api_endpoint": fake.url, "auth_endpoint": fake.token_uri},
        "triage": {"first_run": "all", "folders": ["INBOX"], "review_folder": REVIEW, "state": str(state),
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


def one_run(fake: FakeGmail, settings: TriageSettings, token: str) -> dict[str, Any]:
    """One ``triage run`` with a fresh connector, as cron starts it; what it cost."""
    fake.reset_counters()
    before = len(fake.requests)
    waited_before = fake.skew
    conn = GmailConnector(GmailConfig(token=Secret(token), api_endpoint=fake.url, auth_endpoint=fake.token_uri),
                          sleep=fake.advance, clock=fake.now)
    started = time.perf_counter()
    with TriageJob(settings, connector=conn, model=kit_model(), model_version="kit",
                   forwarder=RecordingForwarder()) as job:
        report = job.run_once()
    seconds = time.perf_counter() - started
    http = [r for r in fake.requests[before:] if r.path.startswith(("/gmail/", "/upload/", "/batch/"))
            and "x-batch-part" not in r.headers]
    return {
        "fetched": report.fetched, "decided": report.auto + report.review, "corrections": report.corrections,
        "http_requests": len(http), "api_calls": sum(fake.calls_by_method.values()),
        "quota_units": fake.units_total, "units_by_method": dict(sorted(fake.units.items())),
        "throttled_answers": fake.throttled, "paced_wait_s": round(fake.skew - waited_before, 2),
        "wall_s": round(seconds, 2),
    }


def main() -> None:
    """Fill, warm up, measure, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recent", type=int, default=3000, help="messages already decided (recent)")
    parser.add_argument("--new", type=int, default=50, help="new messages in the measured run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    fake = FakeGmail().start()
    try:
        client_id, secret = fake.add_client()
        token = json.dumps({"type": "authorized_user", "client_id": client_id, "client_secret": secret,
                            "refresh_token": fake.issue_refresh_token(client_id), "token_uri": fake.token_uri})
        with tempfile.TemporaryDirectory() as tmp:
            import os

            os.environ["ASSOC_AI_HOME"] = tmp  # the correction checkpoint goes with the throw-away state
            settings = TriageSettings.from_mapping(config(fake, token, Path(tmp) / "state.sqlite"),
                                                   base_dir=Path(tmp))
            for i, (raw, _) in enumerate(kit_messages((args.recent + 1) // 2, seed=1)[: args.recent]):
                fake.deliver(unique(raw, f"recent-{i}"))
            rows: dict[str, Any] = {"decide_recent": one_run(fake, settings, token)}
            rows["first_check"] = one_run(fake, settings, token)  # the correction check's first point
            rows["no_new_mail"] = one_run(fake, settings, token)
            for i, (raw, _) in enumerate(kit_messages((args.new + 1) // 2, seed=2)[: args.new]):
                fake.deliver(unique(raw, f"new-{i}"))
            rows[f"{args.new}_new_mail"] = one_run(fake, settings, token)
            rows["no_new_mail_after"] = one_run(fake, settings, token)
    finally:
        fake.stop()
    quiet = rows["no_new_mail"]
    result = {
        "benchmark": "gmail_requests", "recent_messages": args.recent, "new_messages": args.new,
        "python": platform.python_version(), "runs": rows,
        "target": {"quota_units_below": TARGET_UNITS, "http_requests_at_most": TARGET_REQUESTS},
        "meets_target": quiet["quota_units"] < TARGET_UNITS and quiet["http_requests"] <= TARGET_REQUESTS,
    }
    print(f"{'run':<22}{'fetched':>8}{'HTTP req':>10}{'API calls':>10}{'units':>8}{'throttled':>10}{'paced s':>9}")
    for name, row in rows.items():
        print(f"{name:<22}{row['fetched']:>8}{row['http_requests']:>10}{row['api_calls']:>10}{row['quota_units']:>8}"
              f"{row['throttled_answers']:>10}{row['paced_wait_s']:>9}")
    print(f"target (no change): < {TARGET_UNITS} units and <= {TARGET_REQUESTS} requests -> "
          f"{'met' if result['meets_target'] else 'NOT met'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
