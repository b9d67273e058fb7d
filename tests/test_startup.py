"""Starting up stays light: ``import assoc_ai_core`` and ``assoc-ai --help`` load no numerical library.

Each check runs in a fresh interpreter, with Python's own import log
(``PYTHONPROFILEIMPORTTIME``), so it sees every module imported, by us or by
an installed plugin.  No timing is asserted here: ``bench/cli_startup.py``
measures it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = {"sklearn", "numpy", "pandas", "scipy"}


def _imported(cmd: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``cmd`` with the import log on; return the process and the top-level packages it imported."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1", ASSOC_AI_LANG="en")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                names.add(name.split(".")[0])
    return done, names


def _assoc_ai() -> list[str]:
    """The installed ``assoc-ai`` script of this interpreter, else the same entry point through ``-m``."""
    script = Path(sys.executable).with_name("assoc-ai")
    if script.is_file():
        return [str(script)]
    found = shutil.which("assoc-ai")
    return [found] if found else [sys.executable, "-m", "assoc_ai_core.cli.main"]


def test_the_import_log_sees_heavy_imports() -> None:
    # The check below would pass vacuously if the log were not read: here it must find numpy.
    done, names = _imported([sys.executable, "-c", "import numpy"])
    assert done.returncode == 0 and "numpy" in names


def test_importing_the_package_loads_no_numerical_library() -> None:
    done, names = _imported([sys.executable, "-c", "import assoc_ai_core; print(assoc_ai_core.__version__)"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "assoc_ai_core" in names
    assert not names & HEAVY, sorted(names & HEAVY)


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["predict", "--help"], ["explain", "--help"]])
def test_help_loads_no_numerical_library(args: list[str]) -> None:
    done, names = _imported([*_assoc_ai(), *args])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage:" in done.stdout
    assert not names & HEAVY, sorted(names & HEAVY)


def test_help_lists_the_mail_commands() -> None:
    done, _ = _imported([*_assoc_ai(), "--help"])
    for command in ("train", "evaluate", "predict", "explain", "demo"):
        assert f"  {command} " in done.stdout, done.stdout
