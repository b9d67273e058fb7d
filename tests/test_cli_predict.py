"""What ``assoc-ai predict`` prints: files told apart on a tree, long names cut visibly, an empty folder refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.main import _wire_optional_commands, cli
from assoc_ai_core.cli.predict import NAME_WIDTH


def run(args: list[str]):
    _wire_optional_commands()
    return CliRunner().invoke(cli, args, prog_name="assoc-ai")


@pytest.fixture(scope="module")
def model_file(trained_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from assoc_ai_core.persistence import save_model

    return Path(save_model(trained_model, tmp_path_factory.mktemp("predict") / "m.skops"))


def test_a_tree_shows_paths_relative_to_the_folder_given(model_file, example_mailbox, tmp_path):
    sample = sorted((example_mailbox / "new").glob("*.eml"))[:2]
    for folder, eml in zip(("adhesions/2024", "dons"), sample, strict=True):
        (tmp_path / "tri" / folder).mkdir(parents=True)
        shutil.copy(eml, tmp_path / "tri" / folder / "0001.eml")
    r = run(["predict", str(model_file), str(tmp_path / "tri"), "--no-explain"])
    assert r.exit_code == 0, r.output
    first_column = [line.split()[0] for line in r.output.splitlines()[1:]]
    assert first_column == ["adhesions/2024/0001.eml", "dons/0001.eml"]
    r = run(["predict", str(model_file), str(tmp_path / "tri"), "--json", "--no-explain"])
    assert sorted(json.loads(line)["file"] for line in r.output.splitlines()) == first_column
    r = run(["predict", str(model_file), str(tmp_path / "tri" / "dons" / "0001.eml"), "--no-explain"])
    assert r.output.splitlines()[1].startswith("0001.eml ")


def test_a_long_name_is_cut_with_an_ellipsis(model_file, example_mailbox, tmp_path):
    name = "demande-d-adhesion-de-madame-dupont-pour-l-annee-2025-avec-bulletin.eml"
    shutil.copy(sorted((example_mailbox / "new").glob("*.eml"))[0], tmp_path / name)
    r = run(["predict", str(model_file), str(tmp_path), "--no-explain"])
    assert r.exit_code == 0, r.output
    shown = r.output.splitlines()[1][:NAME_WIDTH]
    assert "…" in shown and shown.startswith("demande-d") and shown.endswith("bulletin.eml")


def test_an_empty_folder_says_so_and_fails(model_file, tmp_path):
    (tmp_path / "vide").mkdir()
    r = run(["predict", str(model_file), str(tmp_path / "vide")])
    assert r.exit_code == 4 and "Aucun message à classer" in r.output and "fichier" not in r.output
    r = run(["predict", str(model_file), str(tmp_path / "vide"), "--lang", "en"])
    assert r.exit_code == 4 and "No message to classify" in r.output
