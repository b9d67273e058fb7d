"""Tests of the skeleton plugin: the core's CRM conformance kit, then what is specific to this connector."""

from __future__ import annotations

# --8<-- [start:imports]
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import assoc_ai_skeleton
import pytest
from assoc_ai_skeleton import SkeletonConfig, SkeletonConnector

from assoc_ai_core.errors import CapabilityError, ConfigError, ConnectorError, DataError
from assoc_ai_core.testing.crm import CRM_CHECKS

# --8<-- [end:imports]

# --8<-- [start:fixtures]
PEOPLE = [
    {"id": "p1", "first_name": "Camille", "last_name": "Martin", "email": "camille.martin@example.org",
     "postcode": "75011", "modified": "2025-03-04T10:00:00+00:00"},
    {"id": "p2", "first_name": "Louis", "last_name": "Bernard", "postcode": "93100",
     "modified": "2025-03-05T08:30:00+00:00", "member_since": 2019},
    {"id": "p3", "first_name": "Inès", "last_name": "Dubois", "do_not_profile": True,
     "modified": "2025-03-05T08:30:00+00:00"},
]


def write_people(path: Path, people: list[dict[str, Any]]) -> Path:
    """Write the JSON file the connector reads (our stand-in for a CRM)."""
    path.write_text(json.dumps({"people": people}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def people_file(tmp_path: Path) -> Path:
    """A fresh JSON file of three people for each test."""
    return write_people(tmp_path / "people.json", PEOPLE)


# --8<-- [end:fixtures]


# --8<-- [start:conformance]
@pytest.mark.parametrize("check", CRM_CHECKS, ids=lambda check: check.__name__)
def test_conformance(check: Any, people_file: Path) -> None:
    """Every check of the core's CRM kit, each on a fresh, unopened connector."""
    check(lambda: SkeletonConnector(SkeletonConfig(path=str(people_file))))


# --8<-- [end:conformance]


def read(conn: SkeletonConnector, cursor: dict[str, Any] | None = None, page_size: int = 100) -> tuple[list[Any], Any]:
    """Every person yielded from ``cursor``, and the last page's cursor."""
    people, last = [], cursor
    for page in conn.iter_records("person", cursor, page_size=page_size):
        people += page.records
        last = page.cursor
    return people, last


# --8<-- [start:cursor]
def test_next_run_reads_only_what_changed(people_file: Path) -> None:
    """After a full read, a modified person and a new person come back, nobody else."""
    with SkeletonConnector(SkeletonConfig(path=str(people_file))) as conn:
        everyone, cursor = read(conn)
    assert [p.source_id for p in everyone] == ["p1", "p2", "p3"]
    changed = [dict(PEOPLE[0], city="Paris", modified="2025-04-01T09:00:00+00:00"), PEOPLE[1], PEOPLE[2],
               {"id": "p4", "last_name": "Thomas", "modified": "2025-04-02T12:00:00+02:00"}]
    write_people(people_file, changed)
    with SkeletonConnector(SkeletonConfig(path=str(people_file))) as conn:
        again, _ = read(conn, json.loads(json.dumps(cursor)))  # the host stores cursors as JSON
    assert [p.source_id for p in again] == ["p1", "p4"]
    assert again[0].city == "Paris"


def test_people_sharing_a_timestamp_are_neither_lost_nor_read_twice(people_file: Path) -> None:
    """p2 and p3 share a modification instant; a run stopped between them resumes at p3."""
    with SkeletonConnector(SkeletonConfig(path=str(people_file))) as conn:
        pages = list(conn.iter_records("person", None, page_size=1))
        assert [page.records[0].source_id for page in pages] == ["p1", "p2", "p3"]
        resumed, _ = read(conn, dict(pages[1].cursor))  # the host had stored the cursor of page 2 only
    assert [p.source_id for p in resumed] == ["p3"]
# --8<-- [end:cursor]


def test_records_are_canonical_people(people_file: Path) -> None:
    """Known fields are mapped, the consent flag is kept, other fields stay in ``raw``."""
    with SkeletonConnector(SkeletonConfig(path=str(people_file))) as conn:
        people, _ = read(conn)
    louis = next(p for p in people if p.source_id == "p2")
    assert (louis.source, louis.key, louis.postcode) == ("skeleton", "skeleton:p2", "93100")
    assert louis.raw == {"member_since": 2019}
    assert next(p for p in people if p.source_id == "p3").do_not_profile is True


# --8<-- [start:errors]
def test_errors_say_what_is_wrong_without_showing_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing file, broken JSON, person without id: clear errors from the core's tree, in French and English."""
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    with pytest.raises(ConfigError, match="does not exist"):
        SkeletonConnector(SkeletonConfig(path=str(tmp_path / "missing.json"))).open()
    broken = tmp_path / "broken.json"
    broken.write_text('{"people": [{"id": "p1", "email": "secret@example.org"', encoding="utf-8")
    with pytest.raises(ConnectorError, match="not a readable JSON file") as caught:
        SkeletonConnector(SkeletonConfig(path=str(broken))).open()
    assert "secret@example.org" not in str(caught.value)
    nameless = write_people(tmp_path / "nameless.json", [{"first_name": "Nora"}])
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    with SkeletonConnector(SkeletonConfig(path=str(nameless))) as conn:
        with pytest.raises(DataError, match="n'a pas d'« id »"):
            read(conn)
        with pytest.raises(CapabilityError):
            list(conn.iter_records("gift"))
# --8<-- [end:errors]


@pytest.fixture
def registered() -> Iterator[None]:
    """The plugin known to assoc-ai: found by its entry point when installed, else registered by hand."""
    from assoc_ai_core.ext import plugins

    plugins.load_plugins()
    if plugins.pm.has_plugin("skeleton"):
        yield
        return
    plugins.register_plugin(assoc_ai_skeleton, name="skeleton")
    try:
        yield
    finally:
        plugins.pm.unregister(name="skeleton")


# --8<-- [start:host]
def test_the_host_finds_and_builds_it(registered: None, people_file: Path, tmp_path: Path) -> None:
    """Through the hook, the host finds the class and builds it from the [crm] section of a configuration."""
    from assoc_ai_core.ext.plugins import get_connector_class
    from assoc_ai_core.people.dataset import connector_from_config

    assert get_connector_class("skeleton") is SkeletonConnector
    config = tmp_path / "assoc_ai.toml"
    config.write_text(f'[crm]\nconnector = "skeleton"\npath = "{people_file.as_posix()}"\n', encoding="utf-8")
    conn = connector_from_config(config)
    assert isinstance(conn, SkeletonConnector) and conn.config.path == people_file.as_posix()
    config.write_text('[crm]\nconnector = "skeleton"\nfile = "people.json"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="file"):  # unknown key: a typo is never silently ignored
        connector_from_config(config)
# --8<-- [end:host]
