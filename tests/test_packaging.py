"""Every distribution of the repository can be built and published as it is declared (.ci/run builds them).

The core and each plugin under plugins/ are separate distributions: each needs a version, an SPDX licence a build
backend understands, and (for a plugin) its entry point and a dependency on a core version that exists.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
# An SPDX string in `license` (PEP 639) needs setuptools 77; an older backend rejects the file.
SPDX_SETUPTOOLS = Version("77")


def _project(folder: Path) -> dict:
    with (folder / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def _assert_publishable(folder: Path, data: dict) -> None:
    project = data["project"]
    assert Version(project["version"]), folder
    assert project["license"] == "Apache-2.0", folder
    assert (folder / project["readme"]).is_file(), folder
    assert project["requires-python"] == ">=3.11", folder
    backend = [Requirement(r) for r in data["build-system"]["requires"] if Requirement(r).name == "setuptools"]
    assert backend and all(not r.specifier.contains(str(SPDX_SETUPTOOLS.major - 1)) for r in backend), (
        f"{folder}: the build needs setuptools>={SPDX_SETUPTOOLS} for its SPDX licence")


def test_there_are_plugins_to_check() -> None:
    assert len(PLUGINS) >= 8 and {p.name for p in PLUGINS} >= {"assoc-ai-imap", "assoc-ai-gmail", "assoc-ai-m365"}


def test_the_core_is_publishable() -> None:
    data = _project(ROOT)
    _assert_publishable(ROOT, data)
    assert data["project"]["name"] == "assoc-ai-core"
    assert data["project"]["scripts"]["assoc-ai"] == "assoc_ai_core.cli.main:main"


@pytest.mark.parametrize("folder", PLUGINS, ids=[p.name for p in PLUGINS])
def test_each_plugin_declares_its_entry_point_version_licence_and_core(folder: Path) -> None:
    data = _project(folder)
    _assert_publishable(folder, data)
    project = data["project"]
    assert project["name"] == folder.name
    entry_points = project["entry-points"]["assoc_ai"]
    assert len(entry_points) == 1, "one connector per plugin distribution"
    [(name, module)] = entry_points.items()
    assert folder.name == f"assoc-ai-{name}"
    assert (folder / module.replace(".", "/") / "__init__.py").is_file(), f"{module} is not in {folder.name}"
    cores = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "assoc-ai-core"]
    assert len(cores) == 1, f"{folder.name} must depend on assoc-ai-core"
    core_version = _project(ROOT)["project"]["version"]
    assert cores[0].specifier.contains(core_version), f"{folder.name} wants {cores[0]}, the core is {core_version}"
    assert str(cores[0].specifier), f"{folder.name}: give the oldest core it works with (assoc-ai-core>=X.Y)"
