"""Fuzzing the mail reader: mutated real messages and the targeted hostile shapes of issue 14.

Every input (at most 1 MB, except the targeted shapes that are larger on
purpose) is parsed, cleaned, pseudonymised and classified by a small model
trained on ``examples/mailbox/train``.  Seeds are real raw messages from
``../shared/data/spamassassin_public_corpus`` and the Enron raw tarballs of
``../shared/data/enron_foldering``; mutations flip and insert bytes, splice
messages, repeat a slice or a hostile token up to 1 MB, swap charsets and
content types.  Prints the slowest cases, the exceptions and the peak memory;
writes bench/results/fuzz.json.

Targets: every input up to 1 MB under 1 s and 300 MB, 0 exceptions.

    .venv/bin/python bench/fuzz.py --minutes 10
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import sys
import tarfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MAX_INPUT = 1_000_000
TARGET_SECONDS = 1.0
TARGET_MB = 300
HANG_SECONDS = 120  # one input this long is a hang: the watchdog saves it and stops the run

# Pieces that hostile mail repeats: nesting, blank runs, encoded-words, address look-alikes, markers.
TOKENS = [
    b"<blockquote>", b'<div class="gmail_quote">', b"<br>", b"<div>", b"<font>", b"<a", b"<table><tr><td>",
    b"\n", b"\r\n", b"\n\n", b" \n", b"\xe3\x80\x80", b"=?utf-8?q?a?= ", b"=?iso-8859-1?b?6Q==?= ", b"x@ a", b"a",
    b"@", b"a@b", b".", b"-- \n", b"> ", b"-----Original Message-----\n", b"De : a\nEnvoy\xc3\xa9 : b\n", b"wrote:\n",
    b"re: ", b"Fwd: ", b"06 12 34 56 78 ", b"FR76", b"12 rue ", b"75001 Paris ", b"http://", b"www.", b"\x00",
    b"\xff", b"\xc3", b"xn--", b"\t", b"_" * 32, b"2024/01/02 ", b"=\n", b"=C3=A9", b"&nbsp;", b"<!--",
]
CHARSETS = [b"punycode", b"idna", b"utf-16", b"utf-7", b"unicode_escape", b"iso-2022-jp", b"x-unknown", b"cp1252",
            b"utf-8", b'"utf-8', b"base64", b"rot13", b"zlib"]
CTYPES = [b"text/html", b"text/plain", b"message/rfc822", b"multipart/mixed; boundary=Q", b"multipart/alternative"]


def _seeds(limit: int) -> list[bytes]:
    """Raw messages of the shared corpora, taken in turn from each tarball."""
    tars = [SHARED / "spamassassin_public_corpus" / "spamassassin_raw.tar.gz"]
    tars += sorted((SHARED / "enron_foldering" / "raw").glob("*.tar.gz"))
    out: list[bytes] = []
    per_tar = max(1, limit // len(tars))
    for path in tars:
        taken = 0
        with tarfile.open(path) as tar:
            for member in tar:
                if taken >= per_tar:
                    break
                if member.isfile() and 0 < member.size <= MAX_INPUT:
                    fh = tar.extractfile(member)
                    if fh is not None:
                        out.append(fh.read())
                        taken += 1
    return out


def _shapes() -> dict[str, Callable[[], bytes]]:
    """The targeted shapes the tests build (tests/test_hostile_input.py), by name."""
    spec = importlib.util.spec_from_file_location("_hostile", ROOT / "tests" / "test_hostile_input.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shapes: dict[str, Callable[[], bytes]] = dict(module.SHAPES)
    mail = module._mail
    shapes["single_line_html_50m"] = lambda: mail("Subject: q\r\n", "<p>" + "a" * 50_000_000, "text/html")
    return shapes


# --- mutations: each takes the input, a random source and the seed pool, and returns new bytes ---------------

def _flip(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 20)):
        if buf:
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
    return bytes(buf)


def _insert(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    at = rnd.randint(0, len(data))
    return data[:at] + rnd.choice(TOKENS) * rnd.randint(1, 50) + data[at:]


def _repeat_token(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    token = rnd.choice(TOKENS)
    count = rnd.choice([100, 1_000, 10_000, 100_000, MAX_INPUT // max(1, len(token))])
    at = rnd.randint(0, len(data))
    return data[:at] + token * count + data[at:]


def _repeat_slice(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    if len(data) < 2:
        return data
    start = rnd.randrange(len(data) - 1)
    piece = data[start : start + rnd.randint(1, 200)]
    return data[:start] + piece * rnd.randint(2, MAX_INPUT // len(piece)) + data[start:]


def _splice(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    other = rnd.choice(pool)
    return data[: rnd.randint(0, len(data))] + other[rnd.randint(0, len(other)) :]


def _truncate(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    return data[: rnd.randint(0, len(data))]


def _headers(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    name = rnd.choice([b"Subject", b"From", b"To", b"Cc", b"Message-ID", b"Date", b"Content-Type", b"Reply-To"])
    value = rnd.choice(TOKENS) * rnd.choice([1, 100, 10_000, 100_000])
    return name + b": " + value + b"\r\n" + data


def _content_type(data: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    ctype = rnd.choice(CTYPES) + b"; charset=" + rnd.choice(CHARSETS)
    encoding = rnd.choice([b"", b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n"])
    return b"Content-Type: " + ctype + b"\r\n" + encoding + data


MUTATIONS: list[Callable[[bytes, random.Random, list[bytes]], bytes]] = [
    _flip, _insert, _repeat_token, _repeat_slice, _splice, _truncate, _headers, _content_type,
]


def _mutants(pool: list[bytes], rnd: random.Random) -> Iterator[tuple[str, bytes]]:
    """Endless mutated inputs, each of one to three mutations, cut to 1 MB."""
    while True:
        data = rnd.choice(pool)
        names = []
        for _ in range(rnd.randint(1, 3)):
            mutation = rnd.choice(MUTATIONS)
            names.append(mutation.__name__.strip("_"))
            data = mutation(data, rnd, pool)[:MAX_INPUT]
        yield "+".join(names), data


# --- running one input ------------------------------------------------------------------------------------

def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Results:
    """What the run found: per-case times, the slowest, exceptions, memory."""

    cases: int = 0
    over_target: int = 0
    exceptions: list[dict[str, str]] = field(default_factory=list)
    slowest: list[dict[str, object]] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    largest_rss_step_mb: float = 0.0
    largest_rss_step_case: str = ""
    slow_inputs: list[tuple[float, str, bytes]] = field(default_factory=list)  # the five slowest, to study

    def add(self, kind: str, raw: bytes, seconds: dict[str, float], rss_step: float) -> None:
        """Record one case."""
        total, size = sum(seconds.values()), len(raw)
        if len(self.slow_inputs) < 5 or total > self.slow_inputs[-1][0]:
            self.slow_inputs = sorted([*self.slow_inputs, (total, kind, raw)], key=lambda r: -r[0])[:5]
        self.cases += 1
        self.over_target += size <= MAX_INPUT and total > TARGET_SECONDS
        self.by_kind.setdefault(kind.split("+")[0], []).append(total)
        self.slowest.append({"kind": kind, "bytes": size, "seconds": round(total, 4),
                             **{k: round(v, 4) for k, v in seconds.items()}})
        self.slowest = sorted(self.slowest, key=lambda r: -float(r["seconds"]))[:15]  # type: ignore[arg-type]
        if rss_step > self.largest_rss_step_mb:
            self.largest_rss_step_mb, self.largest_rss_step_case = rss_step, f"{kind} ({size} bytes)"


class Reader:
    """Parse, clean + pseudonymise and classify one raw input, timing each stage."""

    def __init__(self) -> None:
        sys.path.insert(0, str(ROOT))
        from assoc_ai_core import load_dataset, train
        from assoc_ai_core.api import predict
        from assoc_ai_core.mail.cleaning import clean_message
        from assoc_ai_core.mail.parsing import parse_message

        self.parse, self.clean, self.predict = parse_message, clean_message, predict
        self.model = train(load_dataset(ROOT / "examples" / "mailbox" / "train").labelled())
        self.current: tuple[str, bytes, float] | None = None

    def run(self, raw: bytes) -> dict[str, float]:
        """Seconds spent in each stage on ``raw``."""
        t0 = time.perf_counter()
        message = self.parse(raw)
        t1 = time.perf_counter()
        self.clean(message, pseudonymize=True)
        t2 = time.perf_counter()
        self.predict(self.model, [message])
        t3 = time.perf_counter()
        return {"parse": t1 - t0, "clean": t2 - t1, "classify": t3 - t2}

    def one(self, kind: str, raw: bytes, results: Results) -> None:
        """Run one case into ``results`` (an exception is counted, never raised)."""
        before = _rss_mb()
        self.current = (kind, raw, time.perf_counter())
        try:
            seconds = self.run(raw)
        except Exception as exc:  # the point of fuzzing: count and keep, then go on
            results.exceptions.append({"kind": kind, "bytes": str(len(raw)), "error": f"{type(exc).__name__}: {exc}"[:300],
                                       "where": traceback.format_exc(limit=-3)[-600:]})
            seconds = {"parse": 0.0, "clean": 0.0, "classify": 0.0}
        finally:
            self.current = None
        results.add(kind, raw, seconds, _rss_mb() - before)


def _watchdog(reader: Reader, out: Path) -> None:
    """Stop the run, keeping the input, when one input runs longer than HANG_SECONDS."""
    while True:
        time.sleep(5)
        current = reader.current
        if current is not None and time.perf_counter() - current[2] > HANG_SECONDS:
            hang = out.with_name("fuzz_hang.eml")
            hang.write_bytes(current[1])
            print(f"HANG: {current[0]} ({len(current[1])} bytes) over {HANG_SECONDS} s, saved to {hang}", flush=True)
            os._exit(3)


def _shape(reader: Reader, name: str, raw: bytes, results: Results, shapes: dict[str, dict[str, object]]) -> None:
    reader.one("shape:" + name, raw, results)
    shapes[name] = {"bytes": len(raw), "seconds": round(results.by_kind["shape:" + name][-1], 4)}


def _summary(results: Results, seconds: float, rss: tuple[float, float], shapes: dict[str, dict[str, object]]) -> dict:
    """The figures: cases, exceptions, slowest, memory.

    Memory is the process's peak resident size, a high-water mark: the model,
    the libraries and the seed pool are there before the first input (the
    ``rss_before_fuzzing_mb``); what inputs add is the peak over inputs up to
    1 MB minus that.
    """
    kinds = {k: {"cases": len(v), "max_seconds": round(max(v), 4), "mean_seconds": round(sum(v) / len(v), 5)}
             for k, v in sorted(results.by_kind.items())}
    baseline, peak_small = rss
    added = peak_small - baseline
    return {
        "cases": results.cases, "run_seconds": round(seconds, 1), "exceptions": len(results.exceptions),
        "exception_samples": results.exceptions[:20], "inputs_up_to_1mb_over_1s": results.over_target,
        "slowest": results.slowest, "targeted_shapes": shapes, "by_mutation": kinds,
        "rss_before_fuzzing_mb": round(baseline, 1), "peak_rss_inputs_up_to_1mb_mb": round(peak_small, 1),
        "memory_added_by_inputs_up_to_1mb_mb": round(added, 1), "peak_rss_with_larger_shapes_mb": round(_rss_mb(), 1),
        "largest_rss_step_mb": round(results.largest_rss_step_mb, 1), "largest_rss_step_case": results.largest_rss_step_case,
        "targets": {"seconds_per_input": TARGET_SECONDS, "memory_added_mb": TARGET_MB, "exceptions": 0},
        "met": results.over_target == 0 and not results.exceptions and added <= TARGET_MB,
    }


def _print(summary: dict) -> None:
    print(f"{summary['cases']} cases in {summary['run_seconds']} s; exceptions: {summary['exceptions']}; "
          f"inputs <= 1 MB over 1 s: {summary['inputs_up_to_1mb_over_1s']}")
    print(f"peak RSS over inputs <= 1 MB: {summary['peak_rss_inputs_up_to_1mb_mb']} MB (before fuzzing "
          f"{summary['rss_before_fuzzing_mb']} MB, so inputs added {summary['memory_added_by_inputs_up_to_1mb_mb']} MB); "
          f"with the larger shapes {summary['peak_rss_with_larger_shapes_mb']} MB")
    print(f"largest RSS step: {summary['largest_rss_step_mb']} MB on {summary['largest_rss_step_case']}")
    print("targeted shapes:")
    for name, row in summary["targeted_shapes"].items():
        print(f"  {name:26s} {row['bytes']:>10} B  {row['seconds']:.3f} s")
    print("slowest cases:")
    for row in summary["slowest"][:10]:
        print(f"  {row['seconds']:.3f} s  {row['bytes']:>9} B  {row['kind']}  "
              f"(parse {row['parse']:.3f}, clean {row['clean']:.3f}, classify {row['classify']:.3f})")
    for exc in summary["exception_samples"][:5]:
        print(f"  EXCEPTION {exc['kind']}: {exc['error']}")
    print("targets met" if summary["met"] else "TARGETS NOT MET")


def main() -> None:
    """Fuzz for ``--minutes``, then print and write the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--seeds", type=int, default=3000, help="real messages to mutate")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "fuzz.json"))
    ap.add_argument("--save-slowest", metavar="DIR", help="write the slowest inputs there, to study them")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reader = Reader()
    threading.Thread(target=_watchdog, args=(reader, out), daemon=True).start()
    pool = _seeds(args.seeds)
    reader.run(pool[0])  # warm caches (language model, first imports)
    baseline = _rss_mb()
    results = Results()
    start = time.perf_counter()
    shapes: dict[str, dict[str, object]] = {}
    built = {name: build() for name, build in _shapes().items()}
    # Inputs over 1 MB run last: the peak memory (a high-water mark) first measures the inputs the target is for.
    order = sorted(built, key=lambda name: len(built[name]) > MAX_INPUT)
    for name in [n for n in order if len(built[n]) <= MAX_INPUT]:
        _shape(reader, name, built[name], results, shapes)
    for raw in pool:  # every seed once as it is
        reader.one("seed", raw, results)
    rnd = random.Random(args.seed)
    deadline = start + args.minutes * 60
    for kind, raw in _mutants(pool, rnd):
        if time.perf_counter() > deadline:
            break
        reader.one(kind, raw, results)
    peak_up_to_1mb = _rss_mb()
    for name in [n for n in order if len(built[n]) > MAX_INPUT]:
        _shape(reader, name, built.pop(name), results, shapes)
    summary = _summary(results, time.perf_counter() - start, (baseline, peak_up_to_1mb), shapes)
    out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _print(summary)
    if args.save_slowest:
        folder = Path(args.save_slowest)
        folder.mkdir(parents=True, exist_ok=True)
        for i, (total, kind, raw) in enumerate(results.slow_inputs):
            (folder / f"slow{i}_{total:.2f}s_{kind.replace(':', '_')}.eml").write_bytes(raw)


if __name__ == "__main__":
    main()
