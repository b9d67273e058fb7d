"""The labelling page's choice of mail against a random one: how many sorted mails until half the mail is routed alone?

A person sorts devA in the order a strategy asks (the true category is known,
so the simulation answers for them):

* ``page``: the page's choice (:func:`assoc_ai_core.api.choose_mail`): diverse
  only before a model exists, then uncertain and diverse, with the model
  retrained every ``--every`` labels as the page does;
* ``random``: the mail in a random order.

After every ``--every`` labels a model is trained on the labels so far (the
product's own :class:`MailClassifier`) and scored on the rest of the corpus
(every mail not labelled yet):

* ``best_share``: the largest share of the rest its confidence can route at
  ≥ 95 % precision (the threshold chosen on the rest itself: what the model
  *could* do, its ranking quality);
* ``untouched``: the share of the rest the model routes alone with its own
  threshold and gets right, and ``auto_precision``, the precision of what it
  routes (what the product *would* do).

Each seed draws the mailbox the person sorts from (``--mailbox-share`` of
devA, 90 % by default; the choice among the rest is the strategy's) and the
random order.  Scoring on "the rest" favours a strategy that asks about the
hard mail (the easy mail stays in the rest), so the mail left out of the
mailbox is also scored on its own (``heldout_best_share``): the same mail for
both strategies.  Reported: the curves
(mean over seeds) and how many sorted mails each strategy needs to reach 50 %
(``best_share``, and ``untouched`` with precision ≥ 95 %), mean over the seeds
that reach it.  Writes ``bench/results/label_choice.json``.  Not a test.

    python bench/label_choice.py [--seeds 5] [--max 150] [--every 5] [--mailbox-share 0.9] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream  # noqa: E402  # its devA loader and its paths

from assoc_ai_core.api import choose_mail, clean, model_ready, text_space, train  # noqa: E402
from assoc_ai_core.mail.thresholds import threshold_for  # noqa: E402

warnings.filterwarnings("ignore")  # "a category with one example" is the normal state early on

RESULTS = stream.ROOT / "bench" / "results" / "label_choice.json"
TARGET_PRECISION = 0.95
GOAL = 0.50
MAILBOX_SHARE = 0.9


def load_devA() -> list[Any]:
    """devA's labelled mail, read as bench/stream.py reads it."""
    return stream.load_dataset(stream.SHARED / "corpora" / "devA").labelled()


def score(model: Any, rest: list[Any]) -> dict[str, float]:
    """What ``model`` does on ``rest``: the best share at 95 % precision, and what its own threshold routes."""
    if model is None or not rest:
        return {"best_share": 0.0, "untouched": 0.0, "auto_share": 0.0, "auto_precision": float("nan")}
    proba = model.predict_proba(rest)
    classes = np.asarray(model.classes_)
    predicted = classes[proba.argmax(1)]
    conf = proba.max(1)
    truth = np.asarray([m.label for m in rest], dtype=object)
    correct = predicted == truth
    best = threshold_for(conf, correct, TARGET_PRECISION)[1]
    auto = conf >= float(model.threshold_)
    n_auto = int(auto.sum())
    return {"best_share": float(best), "untouched": float((auto & correct).sum() / len(rest)),
            "auto_share": n_auto / len(rest),
            "auto_precision": float(correct[auto].mean()) if n_auto else float("nan")}


def _fit(msgs: list[Any], labels: list[str]) -> Any:
    if not model_ready(labels):
        return None
    try:
        return train(msgs, labels)
    except Exception:  # too few of a category for the folds: no model yet, as on the page
        return None


def play(corpus: list[Any], space: Any, strategy: str, seed: int, max_labels: int, every: int,
         mailbox_share: float = MAILBOX_SHARE, density: float = 0.0) -> list[dict[str, Any]]:
    """One person sorting with ``strategy``: the scores after every ``every`` labels."""
    rng = random.Random(seed)
    mailbox = sorted(rng.sample(range(len(corpus)), int(mailbox_share * len(corpus))))
    outside = sorted(set(range(len(corpus))) - set(mailbox))
    order = mailbox[:]
    rng.shuffle(order)
    labelled: list[int] = []
    model = None
    proba = None
    curve = []
    while len(labelled) < min(max_labels, len(mailbox)):
        if strategy == "random":
            batch = order[len(labelled):len(labelled) + every]
        else:
            # the page chooses among its mailbox only: mail outside it counts as seen
            batch = choose_mail(space, set(labelled) | set(outside), proba=proba, k=every, seed=seed,
                                density=density)
        labelled.extend(batch)
        msgs = [corpus[i] for i in labelled]
        started = time.perf_counter()
        model = _fit(msgs, [m.label for m in msgs])
        seconds = time.perf_counter() - started
        if model is not None:
            proba = model.predict_proba(corpus)
        seen = set(labelled)
        rest = [corpus[i] for i in range(len(corpus)) if i not in seen]
        heldout = score(model, [corpus[i] for i in outside])["best_share"]
        curve.append({"labelled": len(labelled), **score(model, rest), "heldout_best_share": heldout,
                      "train_seconds": round(seconds, 2),
                      "categories_seen": len({m.label for m in msgs})})
    return curve


def first_reaching(curve: list[dict[str, Any]], key: str) -> int | None:
    """The first number of labels at which ``key`` reaches the goal (``untouched`` also needs 95 % precision)."""
    for point in curve:
        ok = point[key] >= GOAL
        if key == "untouched":
            ok = ok and point["auto_precision"] >= TARGET_PRECISION
        if ok:
            return int(point["labelled"])
    return None


def _mean(values: list[float]) -> float | None:
    kept = [v for v in values if v == v]  # NaN: no mail routed
    return round(statistics.fmean(kept), 4) if kept else None


def main() -> None:
    """Run both strategies over the seeds, print the curves and the labels needed, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max", type=int, default=150, help="labels per simulated person")
    ap.add_argument("--every", type=int, default=5, help="labels between two trainings")
    ap.add_argument("--mailbox-share", type=float, default=MAILBOX_SHARE, help="share of devA the person sorts from")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--density", type=float, default=0.0, help="the page's typicality weight (choose_mail density=)")
    args = ap.parse_args()
    corpus = load_devA()
    space = text_space(clean(corpus))
    started = time.perf_counter()
    runs: dict[str, list[list[dict[str, Any]]]] = {"page": [], "random": []}
    for seed in range(args.seeds):
        for strategy in runs:
            runs[strategy].append(play(corpus, space, strategy, seed, args.max, args.every, args.mailbox_share,
                                       args.density))
            print(f"seed {seed} {strategy}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    summary: dict[str, Any] = {}
    for strategy, curves in runs.items():
        points = []
        for j in range(min(len(c) for c in curves)):
            at = [c[j] for c in curves]
            points.append({"labelled": at[0]["labelled"],
                           **{k: _mean([p[k] for p in at]) for k in ("best_share", "untouched", "auto_share",
                                                                       "auto_precision", "heldout_best_share")}})
        needed = {}
        for key in ("best_share", "untouched", "heldout_best_share"):
            reached = [first_reaching(c, key) for c in curves]
            hits = [r for r in reached if r is not None]
            needed[key] = {"per_seed": reached, "mean": round(statistics.fmean(hits), 1) if hits else None,
                           "seeds_reaching": len(hits)}
        summary[strategy] = {"curve": points, "labels_to_reach_50pct": needed}
    print(f"\ndevA ({len(corpus)} mails), mean over {args.seeds} seeds; share of the rest of the corpus")
    print(f"{'labels':>6} | {'best share @95%':^17} | {'untouched (own threshold)':^27} | {'auto precision':^17} | "
          f"{'held-out best @95%':^17}")
    print(f"{'':>6} | {'page':>8} {'random':>8} | {'page':>13} {'random':>13} | {'page':>8} {'random':>8} | "
          f"{'page':>8} {'random':>8}")

    def pct(v: float | None) -> str:
        return "   -" if v is None else f"{100 * v:5.1f}%"

    for p, r in zip(summary["page"]["curve"], summary["random"]["curve"], strict=False):
        print(f"{p['labelled']:>6} | {pct(p['best_share']):>8} {pct(r['best_share']):>8} | "
              f"{pct(p['untouched']):>13} {pct(r['untouched']):>13} | "
              f"{pct(p['auto_precision']):>8} {pct(r['auto_precision']):>8} | "
              f"{pct(p['heldout_best_share']):>8} {pct(r['heldout_best_share']):>8}")
    for strategy in runs:
        for key, label in (("best_share", "best share at 95 % precision"),
                           ("untouched", "untouched by its own threshold, precision >= 95 %"),
                           ("heldout_best_share", "best share at 95 % precision on the held-out mail")):
            n = summary[strategy]["labels_to_reach_50pct"][key]
            print(f"{strategy:>6}: labels to reach 50 % {label}: mean {n['mean']} "
                  f"({n['seeds_reaching']}/{args.seeds} seeds reach it; per seed {n['per_seed']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "corpus": "devA", "messages": len(corpus), "seeds": args.seeds, "max_labels": args.max,
        "every": args.every, "mailbox_share": args.mailbox_share, "density": args.density, "target_precision": TARGET_PRECISION, "goal": GOAL,
        "seconds": round(time.perf_counter() - started, 1), "machine": platform.platform(),
        "summary": summary, "runs": runs,
    }, indent=1, default=float), encoding="utf-8")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
