"""Thread and sender memory on the stream: does a reply's parent (or a sender's past) route more mail, rightly?

The stream is played as ``bench/stream.py`` plays it (same corpora, orders,
seeds, batches and retraining), once, recording for every message the model's
scores and decision, the Message-IDs it answers, its subject's topic and its
sender.  The rule variants are then replayed over that record: none changes
what the model learns (after each batch every mail has its true category
whatever routed it), so one play measures them all with the same models.

What a variant may lean on, as in the job: a message of an earlier batch (its
true category, sorted by a person — or by the model when it routed it right —
with the model's probability); a message earlier in the same batch only when
the variant routed it automatically (with the category it routed it to, right
or wrong); a message in review is not sorted yet.

Figures: untouched share (routed automatically and right) and precision of
automatic routing, per corpus, for every variant, in
``bench/results/threads.json``.  Not a test.

    python bench/threads.py [--corpora devT,enron,devA] [--draws 5] [--sender-key]
    python bench/threads.py --replay   # the variants again from the saved record, without playing
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import stream  # noqa: E402

from assoc_ai_core import predict  # noqa: E402
from assoc_ai_core.jobs.threads import (  # noqa: E402
    AUTO,
    PERSON,
    Earlier,
    ThreadRule,
    subject_topic,
    takes_parent,
    thread_references,
)
from assoc_ai_core.mail.cleaning import SenderKey  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "threads.json"
RECORDS = ROOT / "bench" / "results" / "threads_records"

def topic(subject: str) -> tuple[str, bool]:
    """A subject's topic and whether it is a reply, as the job reads them (:func:`subject_topic`)."""
    return subject_topic(subject)


# ---------------------------------------------------------------- the record


def record(run: stream.Run, batch_size: int, params: dict[str, Any], sender_key: SenderKey | None) -> list[dict[str, Any]]:
    """Play one stream and keep, per message, what the variants need (batch -1: the sorted start)."""
    def base(m: Any, batch: int) -> dict[str, Any]:
        t, reply = topic(m.subject)
        return {"batch": batch, "mid": m.message_id or m.key, "refs": thread_references(m.headers), "topic": t,
                "reply": reply, "sender": (m.sender or "").lower(), "label": m.label}

    rows = [base(m, -1) for m in run.start]
    known = list(run.start)
    model: Any = None
    try:
        model, _ = stream._train(known, params, sender_key)
    except Exception:  # as stream.play: the first batch then goes to review
        model = None
    for index, offset in enumerate(range(0, len(run.stream), batch_size)):
        batch = run.stream[offset:offset + batch_size]
        preds = predict(model, batch, sender_key=sender_key) if model is not None else [None] * len(batch)
        classes = [str(c) for c in getattr(model, "classes_", [])]
        thresholds = {c: model.threshold_of(i) for i, c in enumerate(classes)} if model is not None else {}
        for m, p in zip(batch, preds, strict=True):
            row = base(m, index)
            if p is not None:
                row.update(pred=p.label, p=p.probability, auto=p.decision == "auto",
                           scores={c: round(v, 5) for c, v in p.scores.items() if v >= 1e-4},
                           thr={c: round(v, 5) for c, v in thresholds.items()})
            rows.append(row)
        known += batch
        if offset + batch_size < len(run.stream):
            try:
                model, _ = stream._train(known, params, sender_key)
            except Exception:  # keep the previous model, as stream.play does
                pass
    return rows


# ---------------------------------------------------------------- the variants


@dataclass(frozen=True)
class Variant:
    """One way of using the thread and the sender's past (all off: the model alone)."""

    name: str
    thread: str = ""  # "", "refs" (In-Reply-To / References), "subject" (same topic, replies only), "both"
    naive: bool = False  # any known parent, whatever the model says and however it was sorted
    rule: ThreadRule = ThreadRule()
    promote_only: bool = False  # never move a mail the model routed itself to another category
    persons_only: bool = False  # only a parent a person sorted (or confirmed) counts
    sender_guard: bool = False  # not when the sender's own past (≥ 2 mails) mostly points elsewhere
    sender: str = ""  # "", "prior" (history as a prior on the scores), "rule" (a steady sender's usual category)
    sender_min: int = 2
    sender_weight: float = 1.0
    sender_share: float = 0.8  # the steady rule: the share of the sender's past in their usual category
    sender_rule: ThreadRule | None = None  # the steady rule's gap and floor (default: ``rule``'s)


def _parent(row: dict[str, Any], v: Variant, by_id: dict[str, Earlier | None],
            by_topic: dict[str, Earlier | None]) -> Earlier | None:
    """As :meth:`ThreadMemory.parent_of`: the nearest known message named in the headers (None when it waits in
    review), else, for a reply, the latest message of its topic."""
    if v.thread in ("refs", "both"):
        for ref in row["refs"]:
            if ref in by_id:
                return by_id[ref]
    if v.thread in ("subject", "both") and row["reply"] and row["topic"]:
        return by_topic.get(row["topic"])
    return None


def _sender_prior(scores: dict[str, float], history: Counter[str], weight: float) -> dict[str, float]:
    total = sum(history.values())
    k = max(len(scores), 1)
    mixed = {c: p * ((history.get(c, 0) + 1) / (total + k)) ** weight for c, p in scores.items()}
    norm = sum(mixed.values()) or 1.0
    return {c: p / norm for c, p in mixed.items()}


def _sender_choice(row: dict[str, Any], scores: dict[str, float], history: Counter[str], v: Variant,
                   is_auto: bool) -> tuple[str, float] | None:
    """The category a sender's past routes a mail the model left in review to (with its probability), or None."""
    if not v.sender or is_auto or sum(history.values()) < v.sender_min:
        return None
    if v.sender == "prior":
        mixed = _sender_prior(scores, history, v.sender_weight)
        top = max(mixed, key=lambda c: mixed[c])
        return (top, mixed[top]) if mixed[top] >= row["thr"].get(top, 1.0) else None
    usual, count = history.most_common(1)[0]
    steady = count / sum(history.values()) >= v.sender_share
    own = scores.get(usual, 0.0)
    rule = v.sender_rule or v.rule
    return (usual, own) if steady and max(scores.values()) - own <= rule.max_gap and \
        own >= rule.min_probability else None


def _thread_choice(row: dict[str, Any], scores: dict[str, float], history: Counter[str], v: Variant, is_auto: bool,
                   category: str | None, by_id: dict[str, Earlier | None], by_topic: dict[str, Earlier | None],
                   ) -> tuple[str, float] | None:
    """The category a mail's thread routes it to (with the model's probability for it), or None."""
    parent = _parent(row, v, by_id, by_topic) if v.thread else None
    if parent is None or (is_auto and parent.category == category) or (v.persons_only and parent.how != PERSON):
        return None
    if v.naive:
        ok = parent.category in row["thr"]
    else:
        ok = takes_parent(scores, parent, v.rule, row["thr"].get(parent.category, 1.0))
    if ok and v.promote_only and is_auto:
        ok = False
    if ok and v.sender_guard and sum(history.values()) >= 2:
        usual, count = history.most_common(1)[0]
        ok = not (usual != parent.category and count / sum(history.values()) > 0.5)
    return (parent.category, scores.get(parent.category, 0.0)) if ok else None


def replay(rows: Sequence[dict[str, Any]], v: Variant) -> dict[str, Any]:
    """Untouched share and precision of one variant over one recorded stream."""
    by_id: dict[str, Earlier | None] = {}  # None: decided, waiting in review
    by_topic: dict[str, Earlier | None] = {}
    senders: dict[str, Counter[str]] = {}
    n = auto = right = used = used_right = 0
    batches: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        batches.setdefault(row["batch"], []).append(row)
    for index in sorted(batches):
        page_senders: dict[str, Counter[str]] = {}
        settled: list[tuple[dict[str, Any], bool, float | None]] = []
        for row in batches[index]:
            if index < 0:
                settled.append((row, False, None))
                continue
            n += 1
            scores: dict[str, float] = row.get("scores") or {}
            is_auto, category = bool(row.get("auto")), row.get("pred")
            own_p = row.get("p")
            by_rule = False
            history = senders.get(row["sender"], Counter()) + page_senders.get(row["sender"], Counter())
            choice = _sender_choice(row, scores, history, v, is_auto) if scores else None
            if choice is not None:
                (category, own_p), is_auto, by_rule = choice, True, True
            choice = _thread_choice(row, scores, history, v, is_auto, category, by_id, by_topic) if scores else None
            if choice is not None:
                (category, own_p), is_auto, by_rule = choice, True, True
            if is_auto:
                auto += 1
                right += category == row["label"]
                used += by_rule
                used_right += by_rule and category == row["label"]
                # later mail of this batch may lean on it: routed, right or wrong, nobody has looked yet
                e = Earlier(row["mid"], str(category), AUTO, own_p)
                by_id[row["mid"]] = e
                if row["topic"]:
                    by_topic[row["topic"]] = e
                page_senders.setdefault(row["sender"], Counter())[str(category)] += 1
            else:  # in review until the batch is over: a reply to it finds it, unsorted
                by_id[row["mid"]] = None
                if row["topic"]:
                    by_topic[row["topic"]] = None
            settled.append((row, bool(is_auto and category == row["label"]), own_p))
        # the batch is over: a person sorted what was in review and fixed what was routed wrong
        for row, routed_right, p in settled:
            e = Earlier(row["mid"], str(row["label"]), AUTO if routed_right else PERSON, p)
            by_id[row["mid"]] = e
            if row["topic"]:
                by_topic[row["topic"]] = e
            senders.setdefault(row["sender"], Counter())[str(row["label"])] += 1
    return {"messages": n, "auto": auto, "right": right, "by_rule": used, "by_rule_right": used_right}


VARIANTS = [
    Variant("model alone"),
    Variant("thread naive (refs)", thread="refs", naive=True, rule=ThreadRule(max_gap=1.0, min_probability=0.0)),
    *(Variant(f"thread refs gap≤{g}", thread="refs", rule=ThreadRule(max_gap=g, min_probability=0.0)) for g in (0.1, 0.2, 0.3, 0.5)),
    Variant("thread refs gap≤0.2 promote-only", thread="refs", rule=ThreadRule(max_gap=0.2, min_probability=0.0), promote_only=True),
    Variant("thread refs gap≤0.2 +sender guard", thread="refs", rule=ThreadRule(max_gap=0.2, min_probability=0.0), sender_guard=True),
    Variant("thread refs gap≤0.2 parent +0.02", thread="refs", rule=ThreadRule(max_gap=0.2, auto_parent_margin=0.02)),
    Variant("thread refs gap≤0.2 person parents", thread="refs", rule=ThreadRule(max_gap=0.2, min_probability=0.0), persons_only=True),
    Variant("thread refs gap≤0.2 p≥0.3", thread="refs", rule=ThreadRule(max_gap=0.2, min_probability=0.3)),
    Variant("thread refs gap≤0.2 p≥0.5", thread="refs", rule=ThreadRule(max_gap=0.2, min_probability=0.5)),
    Variant("thread subject naive", thread="subject", naive=True, rule=ThreadRule(max_gap=1.0, min_probability=0.0)),
    *(Variant(f"thread subject gap≤{g}", thread="subject", rule=ThreadRule(max_gap=g, min_probability=0.0)) for g in (0.1, 0.2, 0.3)),
    Variant("thread both gap≤0.2", thread="both", rule=ThreadRule(max_gap=0.2, min_probability=0.0)),
    Variant("thread subject gap≤0.2 person parents", thread="subject", rule=ThreadRule(max_gap=0.2, min_probability=0.0),
            persons_only=True),
    Variant("thread subject gap≤0.2 p≥0.3", thread="subject", rule=ThreadRule(max_gap=0.2, min_probability=0.3)),
    Variant("thread subject gap≤0.2 p≥0.5", thread="subject", rule=ThreadRule(max_gap=0.2, min_probability=0.5)),
    Variant("thread both (job)", thread="both", rule=ThreadRule()),
    *(Variant(f"thread both gap≤0.2 p≥{p}", thread="both", rule=ThreadRule(max_gap=0.2, min_probability=p))
      for p in (0.2, 0.3, 0.4, 0.5)),
    Variant("thread both gap≤0.3 p≥0.3", thread="both", rule=ThreadRule(max_gap=0.3, min_probability=0.3)),
    Variant("thread both gap≤0.2 p≥0.5 person parents", thread="both",
            rule=ThreadRule(max_gap=0.2, min_probability=0.5), persons_only=True),
    Variant("sender prior (≥2)", sender="prior"),
    Variant("sender prior (≥2, weight ½)", sender="prior", sender_weight=0.5),
    Variant("sender steady rule (≥2, ≥80 %, gap≤0.2)", sender="rule", rule=ThreadRule(max_gap=0.2, min_probability=0.0)),
    Variant("sender steady rule (≥3, ≥90 %, gap≤0.1)", sender="rule", rule=ThreadRule(max_gap=0.1, min_probability=0.0), sender_min=3,
            sender_share=0.9),
    Variant("sender steady rule (≥3, ≥90 %, gap≤0.2, p≥0.5)", sender="rule",
            rule=ThreadRule(max_gap=0.2, min_probability=0.5), sender_min=3, sender_share=0.9),
    Variant("sender steady rule (≥3, ≥90 %, gap≤0.2, p≥0.3)", sender="rule",
            rule=ThreadRule(max_gap=0.2, min_probability=0.3), sender_min=3, sender_share=0.9),
    Variant("thread both (job) + sender steady (≥3, ≥90 %, p≥0.5)", thread="both", rule=ThreadRule(), sender="rule",
            sender_rule=ThreadRule(max_gap=0.2, min_probability=0.5), sender_min=3, sender_share=0.9),
    Variant("sender steady rule (≥5, 100 %, gap≤0.2)", sender="rule", rule=ThreadRule(max_gap=0.2, min_probability=0.0), sender_min=5,
            sender_share=1.0),
]


# ---------------------------------------------------------------- main


def _shares(t: Any) -> dict[str, float]:
    return {"untouched_share": t["right"] / t["messages"] if t["messages"] else math.nan,
            "auto_precision": t["right"] / t["auto"] if t["auto"] else math.nan}


#: the variants shown stream by stream (Enron user by user): a pooled win may hide a user's loss
SHOWN = ("model alone", "thread both (job)", "sender steady rule (≥3, ≥90 %, gap≤0.2, p≥0.5)",
         "thread both (job) + sender steady (≥3, ≥90 %, p≥0.5)")


def _print_streams(table: dict[str, dict[str, Any]], corpora: Sequence[str]) -> None:
    shown = [name for name in SHOWN if name in table]
    print("\nstream by stream".ljust(30) + "".join(f"{n[:30]:>32}" for n in shown))
    for corpus in corpora:
        streams = table[shown[0]].get(corpus, {}).get("per_stream", {}) if shown else {}
        for stream_name in streams:
            cells = []
            for name in shown:
                e = table[name][corpus]["per_stream"][stream_name]
                cells.append(f"{100 * e['untouched_share']:5.1f}% @ {100 * e['auto_precision']:5.1f}% ({e['right']}/{e['auto']})")
            print(stream_name[:29].ljust(30) + "".join(f"{c:>32}" for c in cells))


def _runs(corpora: Sequence[str], args: argparse.Namespace) -> Iterator[stream.Run]:
    for corpus in corpora:
        yield from stream.CORPORA[corpus](args)


def _group(name: str) -> str:
    return name.split("/")[0]


def main() -> None:
    """Record the selected corpora (unless --replay), replay every variant, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default="devT,enron,devA")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--max-messages", type=int, default=600)
    ap.add_argument("--sender-key", action="store_true")
    ap.add_argument("--replay", action="store_true", help="only replay the variants over the saved records")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    tag = "sender-key" if args.sender_key else "default"
    folder = RECORDS / tag
    folder.mkdir(parents=True, exist_ok=True)
    corpora = args.corpora.split(",")
    if not args.replay:
        import os
        key = SenderKey(os.urandom(32)) if args.sender_key else None
        for run in _runs(corpora, args):
            t0 = time.perf_counter()
            rows = record(run, args.batch, {}, key)
            path = folder / f"{run.corpus.replace('/', '+')}+{run.draw}.jsonl.gz"
            with gzip.open(path, "wt", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            print(f"-- recorded {run.corpus} draw {run.draw} ({time.perf_counter() - t0:.0f} s)", flush=True)
    table: dict[str, dict[str, Any]] = {}
    for corpus in corpora:
        paths = sorted(folder.glob(f"{corpus}+*.jsonl.gz"))
        records = {}
        for path in paths:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                records[path.name.removesuffix(".jsonl.gz")] = [json.loads(line) for line in fh]
        if not records:
            continue
        for v in VARIANTS:
            tot = Counter[str]()
            per_stream = {}
            for name, rows in records.items():
                one = replay(rows, v)
                tot.update(one)
                per_stream[name] = {**one, **_shares(one)}
            table.setdefault(v.name, {})[corpus] = {**tot, **_shares(tot), "streams": len(records),
                                                    "per_stream": per_stream}
    print(f"\nvariant ({tag})".ljust(44) + "".join(f"{c:>26}" for c in corpora))
    for name, by_corpus in table.items():
        cells = []
        for c in corpora:
            e = by_corpus.get(c)
            cells.append("—" if e is None else f"{100 * e['untouched_share']:5.1f}% @ {100 * e['auto_precision']:5.1f}%"
                         f" ({e['by_rule']:3d}/{e['by_rule_right']:3d})")
        print(name.ljust(44) + "".join(f"{x:>26}" for x in cells))
    _print_streams(table, corpora)
    out = Path(args.out)
    results = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    results[tag] = {"machine": stream._machine(), "settings": vars(args), "variants": table,
                    "cells": "untouched share @ auto precision (mail routed by the rule / of which right)"}
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
