"""The model registry records each file's SHA-256 and refuses a file changed behind its back (issue 14, part M)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from assoc_ai_core.errors import ModelError
from assoc_ai_core.jobs.registry import ModelRegistry
from assoc_ai_core.testing.mailbox import kit_model


@pytest.fixture(scope="module")
def model():
    return kit_model()


def test_digest_is_recorded_when_stored(tmp_path: Path, model) -> None:
    registry = ModelRegistry(tmp_path / "models")
    version = registry.add(model, {"source": "test"}, promote=True)
    recorded = registry.info(version)["sha256"]
    assert recorded == hashlib.sha256(registry.path(version).read_bytes()).hexdigest()
    assert registry.load()[1] == version
    assert registry.list()[0].to_dict()["sha256"] == recorded


def test_file_changed_behind_its_back_is_refused(tmp_path: Path, model, trained_model) -> None:
    from assoc_ai_core.persistence import save_model

    registry = ModelRegistry(tmp_path / "models")
    v1 = registry.add(model, {"source": "test"})
    v2 = registry.add(model, {"source": "test 2"}, promote=True)
    save_model(trained_model, registry.path(v2))  # a valid model, but not the one stored as v0002
    with pytest.raises(ModelError, match=r"modèle v0002 .* a changé depuis son enregistrement") as err:
        registry.load()
    message = str(err.value)
    assert "assoc-ai model rollback" in message and "ré-importez" in message and err.value.exit_code == 7
    registry.rollback(v1)  # what the message advises
    assert registry.load()[1] == v1


def test_corrupted_byte_is_refused_in_english(tmp_path: Path, model, monkeypatch) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    registry = ModelRegistry(tmp_path / "models")
    version = registry.add(model, {"source": "test"}, promote=True)
    path = registry.path(version)
    data = bytearray(path.read_bytes())
    at = data.index(b'"assoc_ai_version"')  # one changed character in the metadata: still a valid model
    data[at + 1] = ord("A")
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"model v0001 .* changed since it was stored.*rollback.*re-import"):
        registry.load(version)


def test_replace_records_the_new_digest(tmp_path: Path, model, trained_model) -> None:
    registry = ModelRegistry(tmp_path / "models")
    version = registry.add(model, {"source": "test"}, promote=True)
    before = registry.info(version)
    digest = registry.replace(version, trained_model)
    after = registry.info(version)
    assert digest == after["sha256"] != before["sha256"] and after["source"] == "test"
    loaded, _ = registry.load()
    assert list(loaded.classes_) == list(trained_model.classes_)


def test_version_stored_before_digests_still_loads(tmp_path: Path, model) -> None:
    registry = ModelRegistry(tmp_path / "models")
    version = registry.add(model, {"source": "old"}, promote=True)
    record_path = tmp_path / "models" / f"{version}.json"
    record = json.loads(record_path.read_text())
    del record["sha256"]
    record_path.write_text(json.dumps(record))
    shutil.copy(registry.path(version), tmp_path / "copy.skops")
    assert registry.load()[1] == version
