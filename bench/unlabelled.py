"""Does the mailbox's unsorted mail help?  Self-training measured on the stream protocol of ``bench/stream.py``.

A shared mailbox holds far more unsorted mail (the INBOX archive) than sorted mail.  Self-training uses it: train on
the sorted mail, predict the unsorted mail, add what the model routes automatically (its own ``auto`` decision) to
the training mail with the predicted category, and train again.  Only the second model routes the stream.

The unsorted pool here is the stream mail that has not arrived yet (past the batch being routed): it stands for an
archive of the same mailbox, and its true categories are never read.  The stream is played exactly as in
``bench/stream.py`` (same draws, same batches, same counting), with and without self-training.

    python bench/unlabelled.py [--corpora devA,devT,wikit] [--draws 5] [--semantic] [--max-pool 600]

Writes ``bench/results/unlabelled.json``.  Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

import stream  # noqa: E402  (bench/stream.py: its corpora, draws and counting)

from assoc_ai_core import predict, train  # noqa: E402
from assoc_ai_core.records.mail import Message  # noqa: E402


def self_trained(known: list[Message], pool: list[Message], params: dict[str, Any], max_pool: int) -> Any:
    """Train on ``known``, add the pool mail the model would route automatically, train again."""
    model = train(known, **params)
    if not pool:
        return model
    pool = pool[:max_pool]
    unlabelled = [Message(key=m.key, subject=m.subject, sender=m.sender, sender_name=m.sender_name, to=m.to,
                          cc=m.cc, date=m.date, text=m.text, html=m.html, attachments=m.attachments,
                          headers=m.headers, source=m.source) for m in pool]  # true categories never read
    pseudo = []
    for m, p in zip(unlabelled, predict(model, unlabelled), strict=True):
        if p.decision == "auto" and p.label:
            pseudo.append(Message(key=m.key, subject=m.subject, sender=m.sender, sender_name=m.sender_name, to=m.to,
                                  cc=m.cc, date=m.date, text=m.text, html=m.html, attachments=m.attachments,
                                  headers=m.headers, source=m.source, label=p.label))
    return train(known + pseudo, **params) if pseudo else model


def play(run: stream.Run, batch_size: int, params: dict[str, Any], max_pool: int) -> stream.Outcome:
    """The stream of ``bench/stream.py``, each model self-trained on the mail not arrived yet."""
    out = stream.Outcome(run)
    known = list(run.start)
    t0 = time.perf_counter()
    model = self_trained(known, run.stream[batch_size:], params, max_pool)
    seconds = time.perf_counter() - t0
    for index, offset in enumerate(range(0, len(run.stream), batch_size)):
        batch = run.stream[offset:offset + batch_size]
        auto = right = 0
        for m, p in zip(batch, predict(model, batch), strict=True):
            if p.decision == "auto":
                auto += 1
                right += p.label == m.label
        classes = set(getattr(model, "classes_", ()))
        out.batches.append(stream.Batch(index, len(batch), auto, right, len(known),
                                        sum(m.label not in classes for m in batch),
                                        getattr(model, "threshold_", None), seconds))
        known += batch
        if offset + batch_size < len(run.stream):
            t0 = time.perf_counter()
            model = self_trained(known, run.stream[offset + 2 * batch_size:], params, max_pool)
            seconds = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Play each corpus with and without self-training; print and write the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default="devA,devT,wikit")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--semantic", action="store_true")
    ap.add_argument("--max-pool", type=int, default=600, help="unsorted mails predicted at each retraining")
    ap.add_argument("--out", default=str(ROOT / "results" / "unlabelled.json"))
    args = ap.parse_args(argv)
    args.max_messages = 600
    params: dict[str, Any] = {"embeddings": "use-multilingual"} if args.semantic else {}
    results: dict[str, Any] = {}
    for corpus in args.corpora.split(","):
        runs = list(stream.CORPORA[corpus](args))
        plain = [stream.play(r, args.batch, params) for r in runs]
        selft = [play(r, args.batch, params, args.max_pool) for r in runs]
        results[corpus] = {"plain": stream.summarise(plain), "self_training": stream.summarise(selft)}
        for name, summary in results[corpus].items():
            print(f"{corpus:<8} {name:<14} untouched {stream._spread_text(summary['untouched_share'])}  "
                  f"precision {stream._spread_text(summary['auto_precision'])}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"semantic": args.semantic, "results": results}, indent=2))
    print(f"written {out}")
    return results


if __name__ == "__main__":
    main()
