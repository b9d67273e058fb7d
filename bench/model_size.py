"""Model file size per 1,000 training messages, and the memory of a job that loads and uses the model.

Trains on the first N messages of the Enron foldering set (../shared, all five
users, their folders as categories) for several N, saves each model, then in a
fresh subprocess loads it and classifies and explains 500 other messages, as
the triage job does, and reports the peak resident memory.  Writes
``bench/results/model_size.json``.  Not a test: figures are reported and
compared with the targets (job memory under 400 MB for a 5,000-message model).

    python bench/model_size.py [--sizes 1000,2000,5000] [--categories 10] [--semantic]

``--categories N`` keeps the N most frequent folders and files the rest under
"Autre", the size of an association's set of categories.

The job's memory depends on what is installed beside the core: scikit-learn
imports pandas (and through it pyarrow and dask) whenever they are present, so
run it with the Python of a core-only install (``pip install .``) for the
figure of a mailbox-only association, and with the dev environment for one
that also installed the ``people`` extra (about 65 MB more).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ENRON = SHARED / "data" / "enron_foldering" / "messages.jsonl.gz"
RESULTS = ROOT / "bench" / "results" / "model_size.json"
sys.path.insert(0, str(ROOT))

_CHILD = r"""
import resource, sys, json, gzip
from assoc_ai_core.persistence import load_model
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.jobs.deciding import run_model
model = load_model(sys.argv[1])
start, n = int(sys.argv[2]), int(sys.argv[3])
page = []  # as the job does: one page of 100 messages in memory at a time
with gzip.open(sys.argv[4], "rt", encoding="utf-8") as fh:
    for i, line in enumerate(fh):
        if i >= start + n:
            break
        if i >= start:
            page.append(parse_message(json.loads(line)["raw"].encode("utf-8", "surrogateescape")))
        if len(page) == 100:
            run_model(model, [(m.key, m) for m in page])
            page = []
if page:
    run_model(model, [(m.key, m) for m in page])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _messages(n: int, categories: int | None = None) -> list:
    from collections import Counter
    from dataclasses import replace

    from assoc_ai_core.mail.parsing import parse_message

    out = []
    with gzip.open(ENRON, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            msg = parse_message(row["raw"].encode("utf-8", "surrogateescape"), label=f"{row['user']}/{row['folder']}")
            out.append(msg)
            if len(out) >= n:
                break
    if categories:
        kept = {label for label, _ in Counter(m.label for m in out).most_common(categories - 1)}
        out = [m if m.label in kept else replace(m, label="Autre") for m in out]
    return out


def main() -> None:
    """Train, save, measure; print a table and write the JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,2000,5000")
    parser.add_argument("--categories", type=int, default=None, help="keep this many categories (others: Autre)")
    parser.add_argument("--semantic", action="store_true", help="the model with sentence meaning (as train's default "
                        "up to 2,000 messages when the extra is installed)")
    args = parser.parse_args()
    from assoc_ai_core import train
    from assoc_ai_core.persistence import save_model

    sizes = [int(s) for s in args.sizes.split(",")]
    pool = _messages(max(sizes), args.categories)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            data = pool[:n]
            labels = {m.label for m in data}
            started = time.perf_counter()
            model = train(data, **({"embeddings": "use-multilingual"} if args.semantic else {}))
            seconds = time.perf_counter() - started
            path = save_model(model, Path(tmp) / f"m{n}.skops")
            size = path.stat().st_size
            child = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(max(sizes)), "500", str(ENRON)],
                                   capture_output=True, text=True, check=True)
            peak = float(child.stdout.strip().splitlines()[-1])
            rows.append({"messages": n, "categories": len(labels), "train_seconds": round(seconds, 1),
                         "file_mb": round(size / 1e6, 2), "mb_per_1000_messages": round(size / 1e6 / n * 1000, 2),
                         "job_peak_rss_mb": round(peak, 1)})
            print(f"{n:>6} messages, {len(labels):>3} categories: file {size / 1e6:7.2f} MB "
                  f"({size / 1e6 / n * 1000:.2f} MB per 1,000), trained in {seconds:.0f} s, "
                  f"job peak memory {peak:.0f} MB (target < 400 MB)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    key = (f"enron_{args.categories}_categories" if args.categories else "enron") + ("_semantic" if args.semantic else "")
    old = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else {}
    RESULTS.write_text(json.dumps({**old, key: rows}, indent=1), encoding="utf-8")
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
