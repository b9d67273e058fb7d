"""Does a cleaning change win on several corpora and lose on none?  Two variants of the pipeline compared.

The rule of the project: keep a model change only if it wins on at least two
corpora and loses on none.  This bench compares the current pipeline with a
variant where one step is switched off (``--off names``: person names and
member/contract numbers left in the text), on the French association
mailboxes (devA, devT) and the French requests set (wikit), with the same
folds for both: macro-F1, accuracy, the share the model routes on its own at
its threshold and the precision of that share, and the oracle share at 95 %
precision.  Writes ``bench/results/variants.json``.  Not a test.

    python bench/variants.py [--off names] [--only devA,devT,wikit]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "bench" / "results" / "variants.json"
sys.path.insert(0, str(ROOT))

from assoc_ai_core import train  # noqa: E402
from assoc_ai_core.mail.parsing import message_from_text  # noqa: E402
from assoc_ai_core.mail.sources import load_dataset  # noqa: E402
from assoc_ai_core.mail.thresholds import threshold_for  # noqa: E402

warnings.filterwarnings("ignore")


@contextlib.contextmanager
def switched_off(step: str) -> Iterator[None]:
    """The pipeline with one cleaning step switched off, for the time of the block."""
    from assoc_ai_core.mail import pseudonymise as ps

    saved = {}
    if step == "names":
        for name in ("_person_name_spans", "_number_spans"):
            saved[name] = getattr(ps, name)
            setattr(ps, name, lambda text: [])
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(ps, name, fn)


def _corpus(name: str) -> tuple[list, np.ndarray]:
    if name in ("devA", "devT"):
        msgs = load_dataset(SHARED / "corpora" / name).labelled()
        return msgs, np.array([m.label for m in msgs])
    msgs = []
    for split in ("training_dataset.csv", "test_dataset.csv"):  # pooled: the same 5 folds as the mailboxes
        with (SHARED / "data" / "wikit_nlu_french_covid" / split).open(encoding="utf-8") as fh:
            msgs += [message_from_text(r["utterance"], label=r["intent"]) for r in csv.DictReader(fh)]
    return msgs, np.array([m.label for m in msgs])


def _cv(msgs: list, y: np.ndarray) -> dict:
    pred, conf, truth, auto, auto_ok = [], [], [], 0, 0
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(msgs, y):
        model = train([msgs[i] for i in tr])
        proba = model.predict_proba([msgs[i] for i in te])
        p, c = model.classes_[proba.argmax(1)], proba.max(1)
        pred += list(p)
        conf += list(c)
        truth += list(y[te])
        mask = c >= model.threshold_
        auto += int(mask.sum())
        auto_ok += int((p[mask] == y[te][mask]).sum())
    pred_a, conf_a, truth_a = np.array(pred), np.array(conf), np.array(truth)
    return {"macro_f1": round(float(f1_score(truth_a, pred_a, average="macro")), 4),
            "accuracy": round(float(accuracy_score(truth_a, pred_a)), 4),
            "auto_share": round(auto / len(truth_a), 4), "auto_precision": round(auto_ok / max(1, auto), 4),
            "oracle_share_at_95": round(float(threshold_for(conf_a, pred_a == truth_a, 0.95)[1]), 4)}


def main() -> None:
    """Both variants on each corpus; a table and the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--off", default="names")
    ap.add_argument("--only", default="devA,devT,wikit")
    args = ap.parse_args()
    out: dict = {"switched_off": args.off, "corpora": {}}
    for name in args.only.split(","):
        msgs, y = _corpus(name)
        current = _cv(msgs, y)
        with switched_off(args.off):
            msgs, y = _corpus(name)  # parsed again: nothing cached from the other variant
            without = _cv(msgs, y)
        out["corpora"][name] = {"current": current, f"without_{args.off}": without}
        print(f"{name:6} current          {current}")
        print(f"{name:6} without {args.off:8} {without}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
