"""Speed and memory of the mail model, on one core.

1. End to end: raw SpamAssassin messages (6,046, odd charsets, HTML, attachments)
   parsed + cleaned + classified per second by a model trained on devA, and the
   process's peak memory.  Target: >= 1,000 messages/s.
2. Training on the 15,076 Enron messages (5 users, one label per user/folder):
   seconds and peak memory.  Target: < 500 MB.

Each part runs in its own process with BLAS limited to one thread, so the
peak memory is that part's alone; first as a mail-only install has it
(pandas and pyarrow, which scikit-learn imports whenever they are installed,
kept out), then with the ``people`` extra importable.  Prints a table and writes
bench/results/throughput.json.  ``--semantic`` measures the embedding option.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _one_core() -> None:
    # One thread everywhere (the Python work is single-threaded; BLAS would use both cores).
    # No CPU pinning: pinning to a fixed core measures whatever else runs there.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


class _Absent:
    """Import finder making the given top-level packages look not installed."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_predict(semantic: bool) -> dict:
    """Parse + clean + classify every SpamAssassin message."""
    import tarfile

    sys.path.insert(0, str(ROOT))
    from assoc_ai_core import load_dataset, train
    from assoc_ai_core.api import predict
    from assoc_ai_core.mail.parsing import parse_message

    model = train(load_dataset(SHARED / "corpora" / "devA").labelled(),
                  **({"embeddings": "use-multilingual"} if semantic else {}))
    raws = []
    with tarfile.open(SHARED / "data" / "spamassassin_public_corpus" / "spamassassin_raw.tar.gz") as tar:
        for member in tar:
            if member.isfile():
                raws.append(tar.extractfile(member).read())
    predict(model, [parse_message(r) for r in raws[:50]])  # warm caches (language model, first imports)
    mem_before = _peak_mb()
    t0 = time.perf_counter()
    batch = 500
    decisions = {"auto": 0, "review": 0}
    for i in range(0, len(raws), batch):
        msgs = [parse_message(r) for r in raws[i : i + batch]]
        for p in predict(model, msgs):
            decisions[p.decision] += 1
    seconds = time.perf_counter() - t0
    return {"messages": len(raws), "seconds": round(seconds, 2), "messages_per_second": round(len(raws) / seconds, 1),
            "peak_memory_mb": round(_peak_mb(), 1), "memory_before_mb": round(mem_before, 1),
            "decisions": decisions, "target_messages_per_second": 1000}


def part_train(semantic: bool) -> dict:
    """Train on all 15,076 Enron messages."""
    import gzip

    sys.path.insert(0, str(ROOT))
    from assoc_ai_core import train
    from assoc_ai_core.mail.parsing import parse_message

    msgs = []
    with gzip.open(SHARED / "data" / "enron_foldering" / "messages.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            msgs.append(parse_message(row["raw"].encode("utf-8"), label=f"{row['user']}/{row['folder']}"))
    t0 = time.perf_counter()
    model = train(msgs, **({"embeddings": "use-multilingual"} if semantic else {}))
    seconds = time.perf_counter() - t0
    return {"messages": len(msgs), "categories": len(model.classes_), "train_seconds": round(seconds, 1),
            "peak_memory_mb": round(_peak_mb(), 1), "cv_macro_f1": model.metadata_["cv_macro_f1"],
            "target_peak_memory_mb": 500}


def main() -> None:
    """Run each part in a fresh single-core process and collect the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--part", choices=["predict", "train"], help=argparse.SUPPRESS)
    ap.add_argument("--semantic", action="store_true")
    ap.add_argument("--only", default="predict,train")
    ap.add_argument("--mail-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.json"))
    args = ap.parse_args()
    if args.part:
        _one_core()
        if args.mail_only:
            # As installed for mail triage (`pip install assoc-ai-core`, no `people` extra): scikit-learn
            # imports pandas and pyarrow whenever they are installed, which costs ~65 MB of resident memory.
            sys.meta_path.insert(0, _Absent({"pandas", "pyarrow"}))
        result = part_predict(args.semantic) if args.part == "predict" else part_train(args.semantic)
        print(json.dumps(result))
        return
    results = {"config": {"semantic": args.semantic, "cpus": 1}}
    for part in args.only.split(","):
        cmd = [sys.executable, __file__, "--part", part] + (["--semantic"] if args.semantic else [])
        # Each part runs twice: as a mail-only install has it, then with the `people` extra importable.
        proc = subprocess.run(cmd + ["--mail-only"], capture_output=True, text=True, check=True)
        results[part] = json.loads(proc.stdout.strip().splitlines()[-1])
        results[part]["install"] = "mail only (pandas, pyarrow absent)"
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        full = json.loads(proc.stdout.strip().splitlines()[-1])
        results[part]["with_people_extra"] = {k: full[k] for k in full if k in (
            "peak_memory_mb", "messages_per_second", "train_seconds")}
        print(f"== {part}: {json.dumps(results[part])}")
        sys.stdout.flush()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
