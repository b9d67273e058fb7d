"""Calibration under drift: does auto-routed mail keep its promised precision on a later period?

The model chooses its auto-routing threshold on out-of-fold predictions of the mail it learns from, so that
auto-routed mail reaches the target precision (95 %).  Mail changes with time; this bench trains on the earliest
70 % of each corpus by date and measures, on the latest 30 %, the share routed automatically and its precision.

Corpora: SpamAssassin (ham / spam, by the Date header), devT (a French association mailbox with dates), and the five
Enron users (one folder a category).  Default model and ``--semantic``; both by default.  Not a test: figures are
printed and written to ``bench/results/drift.json``.

    python bench/drift.py [--corpora spamassassin,devT,enron] [--variants default,semantic]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tarfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from assoc_ai_core import train  # noqa: E402
from assoc_ai_core.mail.parsing import parse_message  # noqa: E402
from assoc_ai_core.mail.sources import load_dataset  # noqa: E402
from assoc_ai_core.records.mail import Message  # noqa: E402

warnings.filterwarnings("ignore")
_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
VARIANTS: dict[str, dict[str, Any]] = {"default": {}, "semantic": {"embeddings": "use-multilingual"}}


def _when(m: Message) -> datetime:
    d = m.date
    if d is None:
        return _FAR_PAST
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def corpus_spamassassin() -> list[Message]:
    """The 6,046 SpamAssassin messages, labelled ham or spam by their folder."""
    out = []
    with tarfile.open(SHARED / "data" / "spamassassin_public_corpus" / "spamassassin_raw.tar.gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            folder = member.name.split("/")[-2]
            fh = tar.extractfile(member)
            if fh is None:
                continue
            raw = fh.read()
            out.append(parse_message(raw, label="spam" if folder.startswith("spam") else "ham", source=member.name))
    return out


def corpus_devT() -> list[Message]:
    """devT's labelled mail."""
    return list(load_dataset(SHARED / "corpora" / "devT").labelled())


def corpora_enron() -> dict[str, list[Message]]:
    """The five Enron users, one folder a category."""
    users: dict[str, list[Message]] = {}
    with gzip.open(SHARED / "data" / "enron_foldering" / "messages.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            users.setdefault(f"enron {row['user']}", []).append(
                parse_message(row["raw"].encode("utf-8"), label=row["folder"]))
    return users


def measure(msgs: list[Message], params: dict[str, Any], split: float = 0.7) -> dict[str, Any]:
    """Train on the earliest share by date, test on the rest: auto share and its precision."""
    msgs = sorted((m for m in msgs if m.label and m.error is None), key=_when)
    cut = int(len(msgs) * split)
    train_part, test_part = msgs[:cut], msgs[cut:]
    t0 = time.time()
    model = train(train_part, **params)
    fit_s = time.time() - t0
    proba = model.predict_proba(test_part)
    classes = np.asarray([str(c) for c in model.classes_])
    y = np.asarray([m.label for m in test_part])
    pred = classes[proba.argmax(1)]
    threshold = float(model.threshold_)
    auto = proba.max(1) >= threshold
    right = pred == y
    return {
        "n_train": len(train_part), "n_test": len(test_part),
        "train_until": _when(train_part[-1]).date().isoformat(),
        "test_from": _when(test_part[0]).date().isoformat(),
        "accuracy": float(right.mean()),
        "threshold": threshold,
        "auto_share": float(auto.mean()),
        "auto_precision": float(right[auto].mean()) if auto.any() else None,
        "untouched_share": float((auto & right).mean()),
        "unseen_category_share": float(np.mean([lbl not in set(classes) for lbl in y])),
        "fit_seconds": round(fit_s, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench and write its JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default="spamassassin,devT,enron")
    ap.add_argument("--variants", default="default,semantic")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "drift.json"))
    args = ap.parse_args(argv)
    wanted = args.corpora.split(",")
    corpora: dict[str, list[Message]] = {}
    if "spamassassin" in wanted:
        corpora["spamassassin"] = corpus_spamassassin()
    if "devT" in wanted:
        corpora["devT"] = corpus_devT()
    if "enron" in wanted:
        corpora.update(corpora_enron())
    results: dict[str, Any] = {}
    print(f"{'corpus':<22} {'variant':<9} {'accuracy':>8} {'auto':>7} {'precision':>9} {'untouched':>9}  threshold")
    for name, msgs in corpora.items():
        for variant in args.variants.split(","):
            r = measure(msgs, VARIANTS[variant])
            results.setdefault(name, {})[variant] = r
            prec = "—" if r["auto_precision"] is None else f"{100 * r['auto_precision']:.1f}%"
            print(f"{name:<22} {variant:<9} {100 * r['accuracy']:7.1f}% {100 * r['auto_share']:6.1f}% {prec:>9} "
                  f"{100 * r['untouched_share']:8.1f}%  {r['threshold']:.3f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"target_precision": 0.95, "split": "earliest 70 % by date → latest 30 %",
                               "results": results}, indent=2))
    print(f"written {out}")
    return results


if __name__ == "__main__":
    main()
