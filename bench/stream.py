"""The stream benchmark: how much mail does a person never have to touch?

The mailbox starts from a few sorted mails per category (or from a whole
training folder), then the rest arrives in batches.  In each batch the model
routes on its own what it is sure of (its own decision, ``auto``); a wrong
automatic route costs the person a fix, everything else goes to review where
the person gives the true category.  After each batch the model is trained
again on all mail whose category is now known (reviewed, fixed, and routed
right, which the person confirms by leaving it where it is).

Reported per corpus and model variant: the share of the stream untouched by a
person (routed automatically and right), the share routed automatically and
its precision, in total, over the second half of the stream, and batch by
batch.  Writes ``bench/results/stream.json`` (merged with what is already
there, so a partial run keeps the other corpora).  Not a test.

    python bench/stream.py [--corpora devA,devT,wikit,wikit-split,enron] [--draws 5] [--k 5]
                           [--batch 30] [--semantic] [--sender-key] [--max-messages 600]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "bench" / "results" / "stream.json"
sys.path.insert(0, str(ROOT))

from assoc_ai_core import predict, train  # noqa: E402
from assoc_ai_core.api import semantic_available  # noqa: E402
from assoc_ai_core.mail.cleaning import SenderKey  # noqa: E402
from assoc_ai_core.mail.parsing import message_from_text, parse_message  # noqa: E402
from assoc_ai_core.mail.sources import load_dataset  # noqa: E402
from assoc_ai_core.records.mail import Message  # noqa: E402

# The model warns about categories with a single example; early in a stream that is the normal state.
warnings.filterwarnings("ignore")

# The target, for the devA stream from 5 sorted mails per category.
TARGET = {"corpus": "devA", "untouched_share": 0.60, "auto_precision": 0.95}
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Run:
    """One stream to play: the sorted mail the model starts from and the mail arriving afterwards, in order."""

    corpus: str
    draw: int
    start: list[Message]
    stream: list[Message]
    note: str = ""


@dataclass
class Batch:
    """What happened to one batch of the stream."""

    index: int
    size: int
    auto: int
    auto_right: int
    known_before: int
    unknown_category: int
    threshold: float | None
    train_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The batch as plain JSON values."""
        return {"batch": self.index, "size": self.size, "auto": self.auto, "auto_right": self.auto_right,
                "untouched_share": round(self.auto_right / self.size, 4) if self.size else None,
                "auto_precision": round(self.auto_right / self.auto, 4) if self.auto else None,
                "known_before": self.known_before, "unknown_category": self.unknown_category,
                "threshold": None if self.threshold is None else round(self.threshold, 4),
                "train_seconds": round(self.train_seconds, 2)}


@dataclass
class Outcome:
    """A whole stream played: its batches and the totals."""

    run: Run
    batches: list[Batch] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def totals(self, batches: Sequence[Batch] | None = None) -> dict[str, Any]:
        """Untouched share, auto share and precision of auto over the given batches (default all)."""
        chosen = self.batches if batches is None else batches
        n = sum(b.size for b in chosen)
        auto = sum(b.auto for b in chosen)
        right = sum(b.auto_right for b in chosen)
        return {"messages": n, "auto": auto, "auto_right": right,
                "untouched_share": round(right / n, 4) if n else None,
                "auto_share": round(auto / n, 4) if n else None,
                "auto_precision": round(right / auto, 4) if auto else None}

    def as_dict(self) -> dict[str, Any]:
        """The run's figures as plain JSON values."""
        half = len(self.batches) // 2
        return {"draw": self.run.draw, "start": len(self.run.start), "stream": len(self.run.stream),
                "note": self.run.note, "total": self.totals(), "second_half": self.totals(self.batches[half:]),
                "batches": [b.as_dict() for b in self.batches], "failures": self.failures}


# ---------------------------------------------------------------- corpora


def _first_k_per_category(ordered: Sequence[Message], k: int) -> tuple[list[Message], list[Message]]:
    """The first ``k`` mails of each category in the given order, and the rest in that same order."""
    taken: dict[str, int] = {}
    start, rest = [], []
    for m in ordered:
        label = m.label or ""
        if taken.get(label, 0) < k:
            taken[label] = taken.get(label, 0) + 1
            start.append(m)
        else:
            rest.append(m)
    return start, rest


def _shuffled_draws(corpus: str, msgs: list[Message], args: argparse.Namespace) -> Iterator[Run]:
    # Sorting first makes a draw depend on its seed only, not on the order files were listed in.
    base = sorted(msgs, key=lambda m: (m.label or "", m.source or "", m.key))
    for draw in range(args.draws):
        order = base[:]
        random.Random(draw).shuffle(order)
        start, rest = _first_k_per_category(order, args.k)
        yield Run(corpus, draw, start, rest, f"{args.k} per category drawn at random (seed {draw}), rest shuffled")


def _by_date(m: Message) -> tuple[datetime, str]:
    return (m.date or _EARLIEST, m.source or m.key)


def runs_devA(args: argparse.Namespace) -> Iterator[Run]:
    """devA: K random sorted mails per category, the rest in random order, one run per draw."""
    yield from _shuffled_draws("devA", load_dataset(SHARED / "corpora" / "devA").labelled(), args)


def runs_devT(args: argparse.Namespace) -> Iterator[Run]:
    """devT: the first K mails per category by date, then the rest in date order (one run: time has one order)."""
    msgs = sorted(load_dataset(SHARED / "corpora" / "devT").labelled(), key=_by_date)
    start, rest = _first_k_per_category(msgs, args.k)
    undated = sum(m.date is None for m in msgs)
    yield Run("devT", 0, start, rest, f"first {args.k} per category by date, rest in date order"
              + (f" ({undated} undated first)" if undated else ""))


def _wikit(name: str) -> list[Message]:
    with (SHARED / "data" / "wikit_nlu_french_covid" / name).open(encoding="utf-8") as fh:
        return [message_from_text(r["utterance"], label=r["intent"]) for r in csv.DictReader(fh)]


def runs_wikit(args: argparse.Namespace) -> Iterator[Run]:
    """Wikit, training and test sets pooled: K random requests per intent, the rest shuffled, one run per draw."""
    msgs = _wikit("training_dataset.csv") + _wikit("test_dataset.csv")
    # Texts carry no key of their own; the position keeps the sort that fixes each draw stable.
    msgs = [replace(m, source=f"{i:05d}") for i, m in enumerate(msgs)]
    yield from _shuffled_draws("wikit", msgs, args)


def runs_wikit_split(args: argparse.Namespace) -> Iterator[Run]:
    """Wikit from a whole training folder: the official training set, then the test set shuffled, one run per draw."""
    start, test = _wikit("training_dataset.csv"), _wikit("test_dataset.csv")
    for draw in range(args.draws):
        order = test[:]
        random.Random(draw).shuffle(order)
        yield Run("wikit-split", draw, start, order, f"official training set ({len(start)}), test set shuffled "
                  f"(seed {draw})")


def runs_enron(args: argparse.Namespace) -> Iterator[Run]:
    """Each Enron user in time order: the first 10 % as the sorted start, the rest as the stream."""
    users: dict[str, list[dict[str, Any]]] = {}
    with gzip.open(SHARED / "data" / "enron_foldering" / "messages.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            users.setdefault(row["user"], []).append(row)
    for user, rows in sorted(users.items()):
        rows.sort(key=lambda r: (r["date"] or "", r["file"]))
        capped = rows[:args.max_messages] if args.max_messages else rows
        msgs = [parse_message(r["raw"].encode("utf-8"), label=r["folder"]) for r in capped]
        cut = max(1, len(msgs) // 10)
        note = f"first 10 % by date as start, rest in date order; {len(msgs)} of {len(rows)} messages"
        if len(msgs) < len(rows):
            note += f" (the earliest {len(msgs)}, capped for time)"
        yield Run(f"enron/{user}", 0, msgs[:cut], msgs[cut:], note)


CORPORA: dict[str, Callable[[argparse.Namespace], Iterator[Run]]] = {
    "devA": runs_devA, "devT": runs_devT, "wikit": runs_wikit, "wikit-split": runs_wikit_split, "enron": runs_enron,
}


# ---------------------------------------------------------------- the stream


def _train(known: list[Message], params: dict[str, Any], sender_key: SenderKey | None) -> tuple[Any, float]:
    t0 = time.perf_counter()
    model = train(known, sender_key=sender_key, **params)
    return model, time.perf_counter() - t0


def play(run: Run, batch_size: int, params: dict[str, Any], verbose: bool = False,
         sender_key: SenderKey | None = None) -> Outcome:
    """Play one stream: predict a batch, count what the person would touch, retrain on all that is known.

    ``sender_key``: learn correspondents as the job does with its key file (None: no sender tokens).
    """
    out = Outcome(run)
    known = list(run.start)
    model: Any = None
    seconds = 0.0
    try:
        model, seconds = _train(known, params, sender_key)
    except Exception as exc:  # a start the model cannot learn from sends the first batch to review, as the job does
        out.failures.append(f"initial training: {type(exc).__name__}: {exc}")
    for index, offset in enumerate(range(0, len(run.stream), batch_size)):
        batch = run.stream[offset:offset + batch_size]
        auto = right = 0
        if model is not None:
            for m, p in zip(batch, predict(model, batch, sender_key=sender_key), strict=True):
                if p.decision == "auto":
                    auto += 1
                    right += p.label == m.label
        classes = set(getattr(model, "classes_", ()))
        out.batches.append(Batch(index, len(batch), auto, right, len(known),
                                 sum(m.label not in classes for m in batch),
                                 getattr(model, "threshold_", None), seconds))
        if verbose:
            print(f"   batch {index:3d}: {right:2d}/{len(batch)} untouched, {auto:2d} auto "
                  f"(known {len(known)}, {seconds:.1f} s)", flush=True)
        # Every mail of the batch now has its true category: reviewed, fixed, or left where it was routed.
        known += batch
        if offset + batch_size < len(run.stream):
            try:
                model, seconds = _train(known, params, sender_key)
            except Exception as exc:  # keep the previous model, as a failed retraining in the job does
                out.failures.append(f"retraining after batch {index}: {type(exc).__name__}: {exc}")
    return out


# ---------------------------------------------------------------- summaries


def _spread(values: list[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    if not got:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    return {"mean": round(statistics.fmean(got), 4), "sd": round(statistics.stdev(got), 4) if len(got) > 1 else 0.0,
            "min": round(min(got), 4), "max": round(max(got), 4), "n": len(got)}


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """Mean and spread over the draws of one corpus, and the course batch by batch (mean over draws)."""
    totals = [o.totals() for o in outcomes]
    halves = [o.totals(o.batches[len(o.batches) // 2:]) for o in outcomes]
    summary: dict[str, Any] = {
        "draws": len(outcomes),
        "start": outcomes[0].as_dict()["start"], "stream": outcomes[0].as_dict()["stream"],
        "untouched_share": _spread([t["untouched_share"] for t in totals]),
        "auto_share": _spread([t["auto_share"] for t in totals]),
        "auto_precision": _spread([t["auto_precision"] for t in totals]),
        "second_half_untouched_share": _spread([t["untouched_share"] for t in halves]),
        "second_half_auto_precision": _spread([t["auto_precision"] for t in halves]),
    }
    course = []
    for i in range(max(len(o.batches) for o in outcomes)):
        rows = [o.batches[i] for o in outcomes if i < len(o.batches)]
        n = sum(b.size for b in rows)
        auto = sum(b.auto for b in rows)
        right = sum(b.auto_right for b in rows)
        course.append({"batch": i, "known_before": round(statistics.fmean(b.known_before for b in rows)),
                       "untouched_share": round(right / n, 4) if n else None,
                       "auto_share": round(auto / n, 4) if n else None,
                       "auto_precision": round(right / auto, 4) if auto else None})
    summary["course"] = course
    return summary


def _pct(v: float | None) -> str:
    return "   —  " if v is None else f"{100 * v:5.1f}%"


def _spread_text(s: dict[str, Any]) -> str:
    if s["mean"] is None:
        return "—"
    if s["n"] > 1:
        return f"{_pct(s['mean'])} ± {100 * s['sd']:4.1f} [{_pct(s['min'])}–{_pct(s['max'])}]"
    return _pct(s["mean"])


def print_summary(name: str, variant: str, summary: dict[str, Any]) -> None:
    """The corpus's line of figures and its course batch by batch."""
    print(f"\n== {name} / {variant}: start {summary['start']}, stream {summary['stream']}, draws {summary['draws']}")
    print(f"   untouched      {_spread_text(summary['untouched_share'])}")
    print(f"   auto-routed    {_spread_text(summary['auto_share'])}")
    print(f"   precision auto {_spread_text(summary['auto_precision'])}")
    print(f"   second half: untouched {_spread_text(summary['second_half_untouched_share'])}, "
          f"precision {_spread_text(summary['second_half_auto_precision'])}")
    print("   batch  known  untouched  auto    precision")
    for row in summary["course"]:
        print(f"   {row['batch']:5d}  {row['known_before']:5d}  {_pct(row['untouched_share'])}     "
              f"{_pct(row['auto_share'])}  {_pct(row['auto_precision'])}")
    if name == TARGET["corpus"]:
        u, p = summary["untouched_share"]["mean"], summary["auto_precision"]["mean"]
        met = u is not None and p is not None and u >= TARGET["untouched_share"] and p >= TARGET["auto_precision"]
        print(f"   target ≥ {TARGET['untouched_share']:.0%} untouched at ≥ {TARGET['auto_precision']:.0%} precision: "
              + ("met" if met else "not met"))
    sys.stdout.flush()


def _machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(), "commit": commit}


def _store(out: Path, variant: str, corpus: str, entry: dict[str, Any]) -> None:
    # Read again at each write: runs of other corpora or variants may be writing to the same file meanwhile.
    results: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    results.setdefault(variant, {})[corpus] = entry
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out)


def main() -> None:
    """Play the selected corpora, print the tables, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=",".join(CORPORA), help="comma-separated, among " + ", ".join(CORPORA))
    ap.add_argument("--draws", type=int, default=5, help="random draws for devA, wikit and wikit-split")
    ap.add_argument("--k", type=int, default=5, help="sorted mails per category to start from")
    ap.add_argument("--batch", type=int, default=30, help="mails per batch")
    ap.add_argument("--semantic", action="store_true", help="the model with multilingual sentence embeddings")
    ap.add_argument("--sender-key", action="store_true",
                    help="learn correspondents with a random installation key, as the job does with its key file")
    ap.add_argument("--max-messages", type=int, default=600,
                    help="Enron: the earliest N messages per user (0: all; retraining on thousands is slow)")
    ap.add_argument("--category-thresholds", action="store_true",
                    help="one auto-routing threshold per category (MailClassifier(category_thresholds=True))")
    ap.add_argument("--verbose", action="store_true", help="print each batch as it is played")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if args.semantic and not semantic_available():
        sys.exit("--semantic: the 'semantic' extra is not installed")
    variant = (("semantic" if args.semantic else "default") + ("+sender-key" if args.sender_key else "")
               + ("+category-thresholds" if args.category_thresholds else ""))
    # A fresh random key per run: the figures must not depend on any installation's secret.
    sender_key = SenderKey(os.urandom(32)) if args.sender_key else None
    params: dict[str, Any] = {"embeddings": "use-multilingual"} if args.semantic else {}
    if args.category_thresholds:
        params["category_thresholds"] = True
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"k": args.k, "batch": args.batch, "draws": args.draws, "max_messages_enron": args.max_messages}
    for corpus in args.corpora.split(","):
        if corpus not in CORPORA:
            sys.exit(f"unknown corpus {corpus!r}; choose among {', '.join(CORPORA)}")
        by_name: dict[str, list[Outcome]] = {}
        for run in CORPORA[corpus](args):
            t0 = time.perf_counter()
            outcome = play(run, args.batch, params, verbose=args.verbose, sender_key=sender_key)
            t = outcome.totals()
            print(f"-- {run.corpus} draw {run.draw}: untouched {_pct(t['untouched_share'])}, auto {_pct(t['auto_share'])}"
                  f" at {_pct(t['auto_precision'])} ({time.perf_counter() - t0:.0f} s)", flush=True)
            for failure in outcome.failures:
                print(f"   ! {failure}")
            by_name.setdefault(run.corpus, []).append(outcome)
            entry = {"protocol": run.note, "settings": settings, "machine": _machine(),
                     "summary": summarise(by_name[run.corpus]),
                     "runs": [o.as_dict() for o in by_name[run.corpus]]}
            # Written after each run: a long run interrupted keeps what it measured.
            _store(out, variant, run.corpus, entry)
        for name, outcomes in by_name.items():
            print_summary(name, variant, summarise(outcomes))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
