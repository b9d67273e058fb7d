"""How long ``assoc-ai --help`` takes, and how much memory it needs.

A volunteer's first contact with the tool is its help; a scheduled triage job
starts it every few minutes.  Both should feel instant: the target is a
median under 0.5 s.  Each run is a fresh process (as from a shell), so the
figure includes the interpreter's own start and the plugins' registration.

Prints the median and spread of ``--runs`` runs (10 by default) and the
largest peak memory (resident set) of a run, and writes
bench/results/cli_startup.json.  It measures twice: with every installed
plugin (what a user runs), then with the core alone
(``ASSOC_AI_LOAD_PLUGINS=none``), so the plugins' share is visible.  Nothing is asserted: tests/test_startup.py
checks that no numerical library is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.5


def _command() -> list[str]:
    """The ``assoc-ai`` script of this interpreter's environment, else the same entry point through ``-m``."""
    script = Path(sys.executable).with_name("assoc-ai")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "assoc_ai_core.cli.main"]


def _run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one run, read from the kernel's accounting of that child."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, not the sum of all children
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in kilobytes on Linux


def measure(runs: int, args: list[str], extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``assoc-ai ARGS`` ``runs`` times after one warm-up run (which fills the file cache)."""
    cmd = [*_command(), *args]
    env = dict(os.environ, **(extra_env or {}))
    _run_once(cmd, env)
    samples = [_run_once(cmd, env) for _ in range(runs)]
    seconds = [s for s, _ in samples]
    return {
        "command": " ".join([*(f"{k}={v}" for k, v in (extra_env or {}).items()), "assoc-ai", *args]),
        "runs": runs,
        "median_seconds": round(statistics.median(seconds), 4),
        "min_seconds": round(min(seconds), 4),
        "max_seconds": round(max(seconds), 4),
        "peak_memory_mb": round(max(mb for _, mb in samples), 1),
        "target_seconds": TARGET_SECONDS,
        "meets_target": statistics.median(seconds) < TARGET_SECONDS,
    }


def main() -> None:
    """Measure, print, and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cli_startup.json")
    opts = parser.parse_args()
    measured = {
        "with_plugins": measure(opts.runs, ["--help"]),
        "core_alone": measure(opts.runs, ["--help"], {"ASSOC_AI_LOAD_PLUGINS": "none"}),
    }
    for row in measured.values():
        print(f"{row['command']}: median {row['median_seconds']:.3f} s "
              f"(min {row['min_seconds']:.3f}, max {row['max_seconds']:.3f}, {opts.runs} runs), "
              f"peak memory {row['peak_memory_mb']:.1f} MB; target < {TARGET_SECONDS} s: "
              f"{'met' if row['meets_target'] else 'NOT met'}")
    result: dict[str, Any] = {
        **measured,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # other work on the machine slows every run
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"written: {opts.out}")


if __name__ == "__main__":
    main()
