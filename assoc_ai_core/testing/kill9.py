"""The kill -9 driver: the triage job in a real subprocess, SIGKILLed at a chosen checkpoint.

A crash simulated by an exception still runs ``finally`` blocks and closes
files; SIGKILL does not.  The child writes a signal file when it reaches the
checkpoint and then sleeps; the parent kills it there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.files import atomic_write
from assoc_ai_core.testing.mail_samples import kit_model
from assoc_ai_core.testing.mailbox_harness import (
    CheckSkipped,
    MailboxHarness,
    RecordingForwarder,
    connected,
    expect,
    fail,
    key_of,
)
from assoc_ai_core.testing.triage_checks import assert_exactly_once, kit_batch, kit_config, rewriting_action

_DRIVER = r"""
import json, os, sys, time
cfg = json.load(open(sys.argv[1], encoding="utf-8"))
from assoc_ai_core.testing.mailbox_harness import RecordingForwarder
from assoc_ai_core.persistence import load_model
from assoc_ai_core.jobs.settings import TriageSettings
from assoc_ai_core.jobs.triage import TriageJob

settings = TriageSettings.from_mapping(cfg["config"], base_dir=cfg["base"])
stage, at, kind, signal_file = cfg["stage"], cfg["at"], cfg.get("kind"), cfg["signal"]

def checkpoint(s, n, k):
    if stage and s == stage and n >= at and kind in (None, k):
        with open(signal_file, "w") as fh:
            fh.write(f"{s} {n}\n")
        time.sleep(600)  # the parent kills us here

with TriageJob(settings, model=load_model(cfg["model"]), model_version="kit",
               forwarder=RecordingForwarder(cfg["forwards"]), checkpoint=checkpoint) as job:
    job.run_once()
"""


def run_kit_driver(cfg: dict[str, Any], env: Mapping[str, str], *, kill: bool, timeout: float = 120.0) -> None:
    """Run the triage job in a subprocess; with ``kill``, SIGKILL it at the checkpoint named in ``cfg``.

    ``cfg`` holds ``config`` (the job's configuration mapping), ``base`` (its
    folder), ``model`` (a saved model), ``forwards`` (file recording forwards),
    ``signal`` (file the child writes when it reaches the kill point) and
    ``stage``/``at``/``kind`` (the checkpoint, see :class:`~assoc_ai_core.jobs.triage.TriageJob`).
    """
    path = Path(cfg["base"]) / "driver.json"
    atomic_write(path, json.dumps(cfg))
    signal_file = Path(cfg["signal"])
    signal_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(path)], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if kill and signal_file.exists():
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        else:
            raise fail("the triage subprocess neither reached its kill point nor finished in time")
        _, err = proc.communicate(timeout=30)
        if kill:
            raise fail(f"the triage subprocess ended (code {proc.returncode}) before its kill point: "
                       f"{err.decode(errors='replace')[-800:]}")
        expect(proc.returncode == 0, f"the final triage run failed ({proc.returncode}): "
                                     f"{err.decode(errors='replace')[-800:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def check_triage_survives_sigkill(harness: MailboxHarness, tmp_path: Path) -> None:
    """The job in a real subprocess is SIGKILLed mid-batch, twice, then re-run: each message exactly once."""
    if harness.section is None:
        raise CheckSkipped("harness.section (the [mailbox] table) is needed to build the connector in a subprocess")
    from assoc_ai_core.persistence import save_model

    with connected(harness, Capability.MOVE, Capability.CREATE_FOLDER) as conn:
        raws = kit_batch(harness)
        keys = [key_of(r) for r in raws]
        model_path = save_model(kit_model(), tmp_path / "kit-model.skops")
        forwards = tmp_path / "forwards.jsonl"
        base = {"config": kit_config(harness, tmp_path, conn.id), "base": str(tmp_path.resolve()),
                "model": str(model_path), "forwards": str(forwards), "signal": str(tmp_path / "reached")}
        # killed right after a forward went out (not journalled), then after a subject-tag copy was written
        run_kit_driver({**base, "stage": "act", "at": 1, "kind": "forward"}, harness.env, kill=True)
        run_kit_driver({**base, "stage": "act", "at": 1, "kind": rewriting_action(conn)}, harness.env, kill=True)
        run_kit_driver({**base, "stage": "intent", "at": 3}, harness.env, kill=True)
        run_kit_driver({**base, "stage": None, "at": 0}, harness.env, kill=False)
        assert_exactly_once(conn, keys, tmp_path / "state.sqlite", RecordingForwarder(forwards))
