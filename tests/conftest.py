"""Common fixtures: the example mailbox and tests/fixtures, a model trained once per session, French by default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "mailbox"
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(autouse=True)
def _french_and_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see French messages unless they ask otherwise, and never the user's own config."""
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    monkeypatch.setenv("ASSOC_AI_HOME", str(tmp_path / "assoc-ai-home"))


@pytest.fixture(scope="session")
def example_mailbox() -> Path:
    """The fictional association's mailbox shipped in examples/."""
    assert (EXAMPLES / "train").is_dir(), "examples/mailbox/train is part of the repository"
    return EXAMPLES


@pytest.fixture(scope="session")
def trained_model(example_mailbox: Path):
    """A model trained on the example mailbox (once per test session)."""
    from assoc_ai_core import load_dataset, train

    os.environ.setdefault("ASSOC_AI_LANG", "fr")
    ds = load_dataset(example_mailbox / "train")
    return train(ds.messages)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Small data written for the tests (tests/fixtures/README.md says what each file is and where it comes from).

    Tests never read the shared data folder beside the repository: the suite must pass on a clone of the repository alone; the large corpora are for
    bench/.
    """
    assert FIXTURES.is_dir(), "tests/fixtures is part of the repository"
    return FIXTURES
