"""How well pseudonymisation hides people's names in real association mail: recall and precision.

The sample is bench/data/names_sample.json: for each of the 430 mails of the
shared corpora devA and devT, the words of its subject and body that name a
person (first names, surnames, nicknames).  Only that annotation is stored in
the repository; the mail text is read from ../shared/corpora.

Counted word by word, every occurrence: *recall* is the share of the name
words of the sample that ``pseudonymise`` replaced; *precision* the share of
the words it replaced as ``<NAME>`` that are names (initials, one letter, are left out of both).

The annotation was made word type by word type: every capitalised word of the
corpora (1,408 of them) was read once and judged a person's name or not, and
each mail lists the name words it holds.  A word that is a name in one mail
and not in another ("Pierre") is judged by its use in the corpora.  Measured on the text
alone (``names=()``), so the figure is the detector's own, without the
sender's display name the cleaning step also passes.  The speed on 1 MB of
mail text is measured too.  Prints the figures and writes
bench/results/names_recall.json.  Nothing is asserted: tests/test_names.py
checks the behaviour on written examples.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.mail.pseudonymise import person_name_spans

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = ROOT / "bench" / "data" / "names_sample.json"
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def measure(corpora: Path, sample: dict[str, Any]) -> dict[str, Any]:
    """Recall and precision over the annotated mails, with the names most often missed or taken wrongly."""
    expected_total = caught = masked_total = masked_right = 0
    missed: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    texts = []
    for row in sample["mails"]:
        msg = parse_message((corpora / row["path"]).read_bytes())
        text = (msg.subject or "") + "\n" + (msg.text or "")
        texts.append(text)
        names = set(row["names"])
        spans = set(person_name_spans(text))
        for m in _WORD.finditer(text):
            word, hit = m.group(), (m.start(), m.end()) in spans
            if len(word) == 1:
                continue  # an initial alone names nobody: neither counted nor held against
            if word in names:
                expected_total += 1
                caught += hit
                if not hit:
                    missed[word] += 1
            if hit:
                masked_total += 1
                masked_right += word in names
                if word not in names:
                    wrong[word] += 1
    # Speed: the whole sample's text, repeated to 1 MB, pseudonymised at once.
    blob = "\n\n".join(texts)
    blob = (blob * (1 + 1_000_000 // max(1, len(blob))))[:1_000_000]
    start = time.perf_counter()
    person_name_spans(blob)
    seconds = time.perf_counter() - start
    return {
        "mails": len(sample["mails"]),
        "mails_with_names": sum(1 for r in sample["mails"] if r["names"]),
        "name_words": expected_total,
        "recall": round(caught / expected_total, 4) if expected_total else None,
        "replaced_words": masked_total,
        "precision": round(masked_right / masked_total, 4) if masked_total else None,
        "most_missed": missed.most_common(15),
        "most_wrongly_replaced": wrong.most_common(15),
        "seconds_per_megabyte": round(seconds, 3),
    }


def names_in_vocabulary(corpora: Path, sample: dict[str, Any]) -> dict[str, Any]:
    """Train on devA as a user would and list the annotated people's names that are still model terms."""
    from assoc_ai_core import load_dataset, train

    model = train(load_dataset(corpora / "devA").labelled())
    names = {n.lower() for mail in sample["mails"] if mail["path"].startswith("devA/") for n in mail["names"]}
    vocab: set[str] = set()
    for _name, vec, _cols in model.pipeline_.named_steps["features"].transformers_:
        if getattr(vec, "analyzer", None) == "word" and hasattr(vec, "vocabulary_"):
            vocab |= {w for term in vec.vocabulary_ for w in term.split(" ")}
    kept = sorted(names & vocab)
    return {"devA_person_names": len(names), "devA_names_in_vocabulary": kept}


def main() -> None:
    """Measure, print, write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default=str(SHARED / "corpora"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "names_recall.json"))
    args = ap.parse_args()
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    figures = measure(Path(args.corpora), sample)
    figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    figures["python"] = platform.python_version()
    print(f"{figures['mails']} mails ({figures['mails_with_names']} naming someone), "
          f"{figures['name_words']} name words")
    print(f"recall    {figures['recall']:.1%}   precision {figures['precision']:.1%}   "
          f"({figures['replaced_words']} words replaced)")
    print(f"speed     {figures['seconds_per_megabyte']} s per MB")
    print("most missed:", ", ".join(f"{w} ×{c}" for w, c in figures["most_missed"]))
    print("wrongly replaced:", ", ".join(f"{w} ×{c}" for w, c in figures["most_wrongly_replaced"]))
    figures.update(names_in_vocabulary(Path(args.corpora), sample))
    print(f"a model trained on devA: {len(figures['devA_names_in_vocabulary'])} of {figures['devA_person_names']} "
          f"annotated name words among its word terms: {', '.join(figures['devA_names_in_vocabulary']) or '-'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
