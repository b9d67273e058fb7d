"""Files that hold personal data or models: atomic replacement, private modes whatever the umask, the job lock."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from assoc_ai_core.files import acquire_lock, atomic_write, private_dir, private_file, release_lock

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX modes and umask")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_atomic_write_replaces_the_file_instead_of_rewriting_it(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    atomic_write(target, "old content\n")
    with target.open(encoding="utf-8") as reader:  # a reader that opened the file before the write
        atomic_write(target, b"new content\n")
        assert reader.read() == "old content\n"  # still sees the whole old file, never a mix
    assert target.read_text(encoding="utf-8") == "new content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]  # no temporary file left behind


def test_atomic_write_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    target = atomic_write(tmp_path / "export.json", "{}")
    assert mode(target) == 0o600
    assert mode(atomic_write(tmp_path / "card.md", "# card", mode=0o644)) == 0o644


def test_atomic_write_leaves_no_temporary_file_on_error(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # a folder where the file should go: the final rename fails
    with pytest.raises(OSError):
        atomic_write(tmp_path / "taken", "data")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    assert list((tmp_path / "taken").iterdir()) == []


def test_exclusive_write_never_replaces_an_existing_file(tmp_path: Path) -> None:
    target = atomic_write(tmp_path / "state.key", "first\n", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write(target, "second\n", exclusive=True)
    assert target.read_text(encoding="utf-8") == "first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.key"]


def test_private_file_and_folder_are_created_private_and_existing_ones_left_alone(tmp_path: Path, umask: int) -> None:
    folder = private_dir(tmp_path / "a" / "state")
    assert mode(folder) == 0o700
    created = private_file(folder / "db")
    assert mode(created) == 0o600 and created.read_bytes() == b""
    shared = tmp_path / "shared.txt"
    shared.write_text("kept", encoding="utf-8")
    os.chmod(shared, 0o640)
    assert mode(private_file(shared)) == 0o640 and shared.read_text(encoding="utf-8") == "kept"
    os.chmod(tmp_path / "a", 0o750)
    assert mode(private_dir(tmp_path / "a")) == 0o750


def test_state_database_key_and_folder_are_private(tmp_path: Path, umask: int) -> None:
    from assoc_ai_core.jobs.state import SenderPrivacy, StateStore

    state_dir = tmp_path / "state"
    with StateStore(state_dir / "assoc_ai.sqlite") as state:
        state.start_run("local", dry_run=False, model_version=None)  # a write: the -wal and -shm files exist now
        files = sorted(p.name for p in state_dir.iterdir())
        assert files == ["assoc_ai.sqlite", "assoc_ai.sqlite-shm", "assoc_ai.sqlite-wal"]
        assert {name: mode(state_dir / name) for name in files} == dict.fromkeys(files, 0o600)
    assert mode(state_dir) == 0o700
    privacy = SenderPrivacy.from_key_file(tmp_path / "keys" / "state.key")
    assert mode(tmp_path / "keys" / "state.key") == 0o600 and mode(tmp_path / "keys") == 0o700
    again = SenderPrivacy.from_key_file(tmp_path / "keys" / "state.key")  # read back, never replaced
    assert again.hash("a@b.fr") == privacy.hash("a@b.fr")


def test_model_files_and_registry_are_private(tmp_path: Path, umask: int, trained_model) -> None:
    from assoc_ai_core.jobs.registry import ModelRegistry
    from assoc_ai_core.persistence import load_model, save_model

    path = save_model(trained_model, tmp_path / "models-by-hand" / "model.skops")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert load_model(path).metadata_ == trained_model.metadata_
    registry = ModelRegistry(tmp_path / "state" / "models")
    version = registry.add(trained_model, {"source": "test"}, promote=True)
    assert mode(registry.directory) == 0o700
    written = sorted(registry.directory.iterdir())
    assert [p.name for p in written] == ["current", f"{version}.json", f"{version}.skops"]
    assert all(mode(p) == 0o600 for p in written)


def test_lock_is_exclusive_until_released(tmp_path: Path, umask: int) -> None:
    lock = tmp_path / "state.sqlite.lock"
    fd = acquire_lock(lock)
    assert fd is not None and mode(lock) == 0o600
    try:
        assert acquire_lock(lock) is None  # a second run (another open file) must wait its turn
    finally:
        release_lock(fd)
    again = acquire_lock(lock)
    assert again is not None
    release_lock(again)


def test_one_installation_key_serves_sender_hashes_and_model_tokens(tmp_path) -> None:
    import stat

    from assoc_ai_core.files import read_secret_key
    from assoc_ai_core.jobs.audit import SenderPrivacy
    from assoc_ai_core.mail.cleaning import SenderKey

    path = tmp_path / "keys" / "state.key"
    first = read_secret_key(path, create=True)
    assert len(first) == 32 and read_secret_key(path, create=True) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    privacy = SenderPrivacy.from_key_file(path)
    assert privacy.hash("a@b.example") == SenderPrivacy(first).hash("a@b.example")
    assert SenderKey.from_file(path).fingerprint == SenderKey(first).fingerprint
    (tmp_path / "text.key").write_text("une phrase secrète assez longue\n", encoding="utf-8")
    assert read_secret_key(tmp_path / "text.key") == "une phrase secrète assez longue".encode()
