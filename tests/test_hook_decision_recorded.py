"""The ``decision_recorded`` hook hears every decision the job records, whatever the path that recorded it.

A real plugin module (a file imported like any plugin) observes the job on a
real Maildir: with the connector handed to the job or built from the
configuration, label-and-move plans carried out as a batch or tagged mail one
message at a time, a dry run, and auto / review / error decisions alike.  The
last test installs the module as an *entry point* only (never registered by
hand) and hands the job its connector: the job itself must load the plugins.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.ext import plugins
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob, TriageSettings
from assoc_ai_core.testing.mailbox import CATEGORY_A, CATEGORY_B, FOLDER_A, REVIEW, kit_messages, kit_model

MODULE = "assoc_ai_test_observer"
PLUGIN_SOURCE = '''
"""An observer plugin: keeps every record the job announces."""

from assoc_ai_core import hookimpl

RECORDS = []


@hookimpl
def decision_recorded(record):
    RECORDS.append(dict(record))
'''
FIELDS = {"instance", "key", "decision", "category", "probability", "runner_up", "reason", "model_version",
          "dry_run", "actions"}
UNREADABLE = b"From: inconnu@exemple.org\r\nTo: contact@asso.example\r\nMessage-ID: <vide-1@hook>\r\n\r\n"


def _write_plugin(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{MODULE}.py"
    path.write_text(PLUGIN_SOURCE, encoding="utf-8")
    return path


@pytest.fixture
def observer(tmp_path: Path) -> Iterator[ModuleType]:
    """The observer module, imported from its file and registered with ``register_plugin``."""
    spec = importlib.util.spec_from_file_location(MODULE, _write_plugin(tmp_path / "plugin"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins.register_plugin(module, name=MODULE)
    try:
        yield module
    finally:
        plugins.pm.unregister(name=MODULE)


def _deliver(maildir: Path) -> list[str]:
    """Kit mail of both categories and one unreadable message; returns their keys."""
    conn = LocalMailConnector(LocalMailConfig(path=str(maildir), create=True))
    conn.open()
    keys = [conn.deliver(raw).key for raw, _ in kit_messages(3, seed=5)]
    keys.append(conn.deliver(UNREADABLE).key)
    conn.close()
    return keys


def _config(tmp_path: Path, maildir: Path, *, tag: bool = False, dry_run: bool = False) -> dict[str, Any]:
    # Only one of the model's two categories has a section: its mail is routed, the other's goes to review.
    return {
        "mailbox": {"connector": "local", "path": str(maildir), "create": True},
        "triage": {"first_run": "all", "folders": ["INBOX"], "review_folder": REVIEW, "state": str(tmp_path / "state.sqlite"),
                   "dry_run": dry_run},
        "categories": {CATEGORY_A: {"folder": FOLDER_A, "label": CATEGORY_A, "tag": tag}},
    }


def _assert_one_record_per_decision(records: list[dict[str, Any]], state_path: Path, keys: list[str], *,
                                    dry_run: bool = False) -> None:
    """One record per decided message, saying what the audit trail says; auto, review and error all heard."""
    assert sorted(r["key"] for r in records) == sorted(keys)
    with StateStore(state_path) as state:
        for record in records:
            assert set(record) == FIELDS  # the audit fields only, never the message text
            row = state.get_message("local", record["key"])
            assert row is not None and row.dry_run is dry_run
            assert (record["decision"], record["category"], record["reason"]) == (row.decision, row.category,
                                                                                 row.reason)
            assert record["actions"] == [step["kind"] for step in row.plan]
            assert type(record["decision"]) is str and all(type(a) is str for a in record["actions"])
            assert record["dry_run"] is dry_run
    decided = {r["decision"] for r in records}
    assert decided == {"auto", "review", "error"}, decided
    assert any(r["category"] == CATEGORY_B and r["decision"] == "review" for r in records)


@pytest.mark.parametrize("tag", [False, True], ids=["batched-label-and-move", "one-by-one-with-tag"])
def test_hook_hears_each_decision_when_the_connector_is_given(tmp_path: Path, local_maildir: Path,
                                                            observer: ModuleType, tag: bool) -> None:
    keys = _deliver(local_maildir)
    settings = TriageSettings.from_mapping(_config(tmp_path, local_maildir, tag=tag), base_dir=tmp_path)
    conn = LocalMailConnector(LocalMailConfig(path=str(local_maildir)))
    with TriageJob(settings, connector=conn, model=kit_model(), model_version="kit") as job:
        report = job.run_once()
        assert job.run_once().decided == 0  # nothing new: nothing announced
    assert report.decided == len(keys) == len(observer.RECORDS)
    _assert_one_record_per_decision(observer.RECORDS, tmp_path / "state.sqlite", keys)
    assert all(r["model_version"] == "kit" and r["instance"] == "local" for r in observer.RECORDS)
    auto = [r for r in observer.RECORDS if r["decision"] == "auto"]
    assert all(r["actions"] == (["label", "tag", "move"] if tag else ["label", "move"]) for r in auto)


def test_hook_hears_a_dry_run(tmp_path: Path, local_maildir: Path, observer: ModuleType) -> None:
    keys = _deliver(local_maildir)
    settings = TriageSettings.from_mapping(_config(tmp_path, local_maildir, dry_run=True), base_dir=tmp_path)
    with TriageJob(settings, connector=LocalMailConnector(LocalMailConfig(path=str(local_maildir))),
                   model=kit_model(), model_version="kit") as job:
        report = job.run_once()
    assert report.dry_run and len(report.would) == len(observer.RECORDS) == len(keys)
    _assert_one_record_per_decision(observer.RECORDS, tmp_path / "state.sqlite", keys, dry_run=True)


def test_hook_hears_each_decision_when_the_job_builds_everything(tmp_path: Path, local_maildir: Path,
                                                               observer: ModuleType) -> None:
    from assoc_ai_core.persistence import save_model

    keys = _deliver(local_maildir)
    model = save_model(kit_model(), tmp_path / "kit.skops")
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text(f'[mailbox]\nconnector = "local"\npath = "Maildir"\n\n[model]\npath = "{model.name}"\n\n'
                   f'[triage]\nfirst_run = "all"\nstate = "state.sqlite"\nreview_folder = "{REVIEW}"\n\n'
                   f'[categories."{CATEGORY_A}"]\nfolder = "{FOLDER_A}"\n', encoding="utf-8")
    with TriageJob(cfg) as job:
        job.run_once()
    assert len(observer.RECORDS) == len(keys)
    _assert_one_record_per_decision(observer.RECORDS, tmp_path / "state.sqlite", keys)
    assert all(r["model_version"].startswith("file:kit.skops@") for r in observer.RECORDS)


@pytest.fixture
def installed_observer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The observer installed as a distribution with an ``assoc_ai`` entry point, plugins not loaded yet."""
    site = tmp_path / "site"
    _write_plugin(site)
    info = site / "assoc_ai_test_observer-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: assoc-ai-test-observer\nVersion: 0.1\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[assoc_ai]\ntest_observer = {MODULE}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    plugins.reset_for_tests()
    try:
        yield
    finally:
        plugins.reset_for_tests()  # the next user loads the plugins again, without the observer
        sys.modules.pop(MODULE, None)


def test_an_installed_observer_hears_a_job_given_its_connector(tmp_path: Path, local_maildir: Path,
                                                              installed_observer: None) -> None:
    keys = _deliver(local_maildir)
    settings = TriageSettings.from_mapping(_config(tmp_path, local_maildir), base_dir=tmp_path)
    # nothing has loaded the plugins: neither a connector built from the configuration nor register_plugin
    assert not plugins.pm.has_plugin("test_observer")
    with TriageJob(settings, connector=LocalMailConnector(LocalMailConfig(path=str(local_maildir))),
                   model=kit_model(), model_version="kit") as job:
        job.run_once()
    records = sys.modules[MODULE].RECORDS
    assert len(records) == len(keys)
    _assert_one_record_per_decision(records, tmp_path / "state.sqlite", keys)


def test_a_failing_observer_does_not_stop_the_triage(tmp_path: Path, local_maildir: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    from assoc_ai_core import hookimpl

    class Broken:
        @hookimpl
        def decision_recorded(self, record: dict[str, Any]) -> None:
            raise RuntimeError("observer down")

    keys = _deliver(local_maildir)
    broken = Broken()
    plugins.register_plugin(broken, name="broken-observer")
    try:
        settings = TriageSettings.from_mapping(_config(tmp_path, local_maildir), base_dir=tmp_path)
        with TriageJob(settings, connector=LocalMailConnector(LocalMailConfig(path=str(local_maildir))),
                       model=kit_model(), model_version="kit") as job:
            report = job.run_once()
    finally:
        plugins.pm.unregister(broken)
    assert report.decided == len(keys) and report.failed == 0 and report.exit_code == 0
    assert caplog.text.count("decision_recorded : RuntimeError") == 1  # said once, not once per message
    with StateStore(tmp_path / "state.sqlite") as state:
        assert not state.messages_with_status("local", "pending")
