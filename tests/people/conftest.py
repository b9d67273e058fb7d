"""Fixtures for the people-data tests: a seeded synthetic association, its French exports, trained models."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pandas", reason="people tests need the 'people' extra (pandas)")


@pytest.fixture(scope="session")
def association():
    """A synthetic association (700 people, 8 years) with a few near-duplicate people from another source."""
    from assoc_ai_core.people.synthetic import generate_people

    return generate_people(700, seed=5, duplicates=6)


@pytest.fixture(scope="session")
def exports(association, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The association written as French CRM exports (; separator, decimal comma, dd/mm/yyyy, UTF-8 BOM)."""
    from assoc_ai_core.people.synthetic import write_exports

    folder = tmp_path_factory.mktemp("exports")
    write_exports(association, folder)
    return folder


@pytest.fixture(scope="session")
def donor_model(association):
    """A donor-propensity model trained once for the session."""
    from assoc_ai_core.people.tasks import train_people_model

    return train_people_model(association, "donor-propensity")


@pytest.fixture(scope="session")
def donor_model_path(donor_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The donor model saved with skops."""
    from assoc_ai_core.people.store import save_people_model

    path = tmp_path_factory.mktemp("models") / "donors.skops"
    save_people_model(donor_model, path)
    return path


@pytest.fixture
def files_plugin():
    """Make sure the embedded files connector is registered (it is a default plugin once wired in plugins.py)."""
    from assoc_ai_core.default_plugins import people_files
    from assoc_ai_core.ext.plugins import connector_registry, register_plugin

    if "files" not in connector_registry().ids():
        register_plugin(people_files, name="assoc_ai_core.default_plugins.people_files")
    yield
