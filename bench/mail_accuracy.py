"""Accuracy of the mail model on real data from ../shared, beside the reference figures.

Prints a table and writes bench/results/mail_accuracy.json.  Not a test: the
figures are reported, targets are compared, nothing is asserted.

    python bench/mail_accuracy.py [--only devA,fewshot,enron,20ng,wikit] [--semantic]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import binomtest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from assoc_ai_core import train  # noqa: E402
from assoc_ai_core.mail.evaluate import evaluate  # noqa: E402
from assoc_ai_core.mail.parsing import message_from_text, parse_message  # noqa: E402
from assoc_ai_core.mail.sources import load_dataset  # noqa: E402

warnings.filterwarnings("ignore")
REFERENCE = {
    "enron_linearsvc_raw": {"beck-s": 0.485, "farmer-d": 0.730, "kaminski-v": 0.555, "lokay-m": 0.766, "williams-w3": 0.993},
    "20ng_sklearn_stripped_linearsvc": 0.69,
    "20ng_raw_with_headers_linearsvc": 0.8607,
    "wikit_word_linearsvc": 0.7853,
    "wikit_char_linearsvc": 0.8127,
}


def _params(args: argparse.Namespace) -> dict:
    return {"embeddings": "use-multilingual"} if args.semantic else {}


def bench_devA(args: argparse.Namespace) -> dict:
    """5-fold stratified cross-validation on the French association mailbox."""
    msgs = load_dataset(SHARED / "corpora" / "devA").labelled()
    y = np.array([m.label for m in msgs])
    pred, conf, auto, auto_ok = [], [], 0, 0
    truth = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(msgs, y):
        model = train([msgs[i] for i in tr], **_params(args))
        proba = model.predict_proba([msgs[i] for i in te])
        p = model.classes_[proba.argmax(1)]
        c = proba.max(1)
        pred += list(p)
        conf += list(c)
        truth += list(y[te])
        mask = c >= model.threshold_
        auto += int(mask.sum())
        auto_ok += int((p[mask] == y[te][mask]).sum())
    pred, conf, truth = np.array(pred), np.array(conf), np.array(truth)
    from assoc_ai_core.mail.thresholds import threshold_for

    correct = pred == truth
    return {
        "macro_f1": float(f1_score(truth, pred, average="macro")),
        "accuracy": float(accuracy_score(truth, pred)),
        "auto_share_at_model_threshold": auto / len(truth),
        "precision_of_auto": auto_ok / max(1, auto),
        "coverage_at_0.95_oracle": threshold_for(conf, correct, 0.95)[1],
        "targets": {"macro_f1": 0.92, "auto_share_at_95": 0.85},
    }


def bench_fewshot(args: argparse.Namespace, per_class: int = 10, draws: int = 5) -> dict:
    """Only 10 mails per category to learn from, the rest as test, several random draws."""
    msgs = load_dataset(SHARED / "corpora" / "devA").labelled()
    labels = sorted({m.label for m in msgs})
    scores = []
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        train_idx = []
        for lab in labels:
            idx = [i for i, m in enumerate(msgs) if m.label == lab]
            train_idx += list(rng.choice(idx, per_class, replace=False))
        chosen = set(train_idx)
        model = train([msgs[i] for i in train_idx], **_params(args))
        test = [m for i, m in enumerate(msgs) if i not in chosen]
        scores.append(evaluate(model, test, mistakes=0)["macro_f1"])
    return {"macro_f1_mean": float(np.mean(scores)), "macro_f1_min": float(np.min(scores)), "draws": scores,
            "target": 0.80}


def _enron_users() -> dict[str, list[dict]]:
    users: dict[str, list[dict]] = {}
    with gzip.open(SHARED / "data" / "enron_foldering" / "messages.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            users.setdefault(row["user"], []).append(row)
    return users


def bench_enron(args: argparse.Namespace) -> dict:
    """Chronological 70/30 per user; baseline: TF-IDF + LinearSVC on the whole raw message."""
    out = {}
    for user, rows in sorted(_enron_users().items()):
        rows.sort(key=lambda r: (r["date"] or "", r["file"]))
        cut = int(len(rows) * 0.7)
        tr, te = rows[:cut], rows[cut:]
        base = TfidfVectorizer(sublinear_tf=True, min_df=2)
        svc = LinearSVC().fit(base.fit_transform([r["raw"] for r in tr]), [r["folder"] for r in tr])
        base_pred = svc.predict(base.transform([r["raw"] for r in te]))
        base_acc = accuracy_score([r["folder"] for r in te], base_pred)
        msgs_tr = [parse_message(r["raw"].encode("utf-8"), label=r["folder"]) for r in tr]
        msgs_te = [parse_message(r["raw"].encode("utf-8"), label=r["folder"]) for r in te]
        t0 = time.time()
        model = train(msgs_tr, **_params(args))
        fit_s = time.time() - t0
        proba = model.predict_proba(msgs_te)
        y_te = np.array([m.label for m in msgs_te])
        ours_pred = model.classes_[proba.argmax(1)]
        ours = accuracy_score(y_te, ours_pred)
        # The two models are scored on the same test mail: McNemar's exact test on the messages where
        # exactly one of them is right says whether the gap is more than the luck of this one split.
        only_ours = int(((ours_pred == y_te) & (base_pred != y_te)).sum())
        only_base = int(((ours_pred != y_te) & (base_pred == y_te)).sum())
        p_value = binomtest(only_ours, only_ours + only_base).pvalue if only_ours + only_base else 1.0
        out[user] = {"ours": float(ours), "baseline_raw_linearsvc": float(base_acc),
                     "only_ours_right": only_ours, "only_baseline_right": only_base,
                     "mcnemar_exact_p": float(p_value),
                     "reference_readme": REFERENCE["enron_linearsvc_raw"][user], "n_train": cut, "fit_seconds": fit_s}
    return out


def bench_20ng(args: argparse.Namespace) -> dict:
    """20 Newsgroups bydate, raw posts through our own cleaning (headers parsed as mail)."""
    train_msgs, test_msgs = [], []
    with gzip.open(SHARED / "data" / "20newsgroups_bydate" / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            m = parse_message(row["text"].encode("latin-1", "replace"), label=row["label"])
            (train_msgs if row["split"] == "train" else test_msgs).append(m)
    t0 = time.time()
    model = train(train_msgs, **_params(args))
    fit_s = time.time() - t0
    proba = model.predict_proba(test_msgs)
    pred = model.classes_[proba.argmax(1)]
    y = [m.label for m in test_msgs]
    return {"accuracy": float(accuracy_score(y, pred)), "macro_f1": float(f1_score(y, pred, average="macro")),
            "target_accuracy": 0.75, "reference_sklearn_stripped": REFERENCE["20ng_sklearn_stripped_linearsvc"],
            "reference_raw_with_headers": REFERENCE["20ng_raw_with_headers_linearsvc"], "fit_seconds": fit_s}


def bench_wikit(args: argparse.Namespace) -> dict:
    """Wikit French intents, official split (short requests, 15 examples per intent)."""
    def read(name: str) -> list:
        with (SHARED / "data" / "wikit_nlu_french_covid" / name).open(encoding="utf-8") as fh:
            return [message_from_text(r["utterance"], label=r["intent"]) for r in csv.DictReader(fh)]

    tr, te = read("training_dataset.csv"), read("test_dataset.csv")
    model = train(tr, **_params(args))
    r = evaluate(model, te, mistakes=0)
    return {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"],
            "reference_word_linearsvc": REFERENCE["wikit_word_linearsvc"],
            "reference_char_linearsvc": REFERENCE["wikit_char_linearsvc"]}


BENCHES = {"devA": bench_devA, "fewshot": bench_fewshot, "enron": bench_enron, "20ng": bench_20ng, "wikit": bench_wikit}


def main() -> None:
    """Run the selected benchmarks, print a table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default=",".join(BENCHES))
    ap.add_argument("--semantic", action="store_true", help="add multilingual sentence embeddings")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "mail_accuracy.json"))
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    tag = "semantic" if args.semantic else "default"
    results.setdefault(tag, {})
    for name in args.only.split(","):
        t0 = time.time()
        figures = BENCHES[name](args)
        figures["seconds"] = round(time.time() - t0, 1)
        results[tag][name] = figures
        print(f"== {tag} / {name} ({figures['seconds']} s)")
        print(json.dumps(figures, indent=1))
        sys.stdout.flush()
        out.write_text(json.dumps(results, indent=1))  # after each part: a long run interrupted keeps what it measured
    print(f"written {out}")


if __name__ == "__main__":
    main()
