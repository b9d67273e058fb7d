"""Model card from a real model's metadata and a real chronological evaluation, split by language."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.main import cli
from assoc_ai_core.cli.triage import add_commands as add_triage_commands
from assoc_ai_core.cli.trust import add_commands as add_trust_commands
from assoc_ai_core.trust.modelcard import build_card, language_of, per_language

add_triage_commands(cli)
add_trust_commands(cli)


@pytest.fixture(scope="module")
def newer_mail(fixtures_dir: Path, trained_model) -> list:
    """The fixture mailbox (another association, so honestly unseen), in the categories the example model knows."""
    from assoc_ai_core.mail.sources import load_dataset

    known = set(trained_model.classes_)
    return [m for m in load_dataset(fixtures_dir / "mailbox").labelled() if m.label in known]


def test_per_language_accuracy_matches_predictions(trained_model, newer_mail) -> None:
    from assoc_ai_core.api import predict

    result = per_language(trained_model, newer_mail)
    for lang in ("fr", "en"):
        group = [m for m in newer_mail if language_of(m) == lang]
        assert result[lang]["n"] == len(group) > 0
        right = sum(p.label == m.label for p, m in zip(predict(trained_model, group), group, strict=True))
        assert result[lang]["accuracy"] == pytest.approx(right / len(group))
    assert result["fr"]["n"] > result["en"]["n"]  # a French association's mailbox


def test_card_has_every_section_in_markdown_and_html(trained_model, newer_mail) -> None:
    card = build_card(trained_model, messages=newer_mail, version="v0003", contact="bureau@jardins.example", lang="en")
    md = card.markdown()
    for heading in ("Intended use", "Categories and training data", "Metrics", "Coverage at precision",
                    "Known weak categories", "Accuracy per language", "Contact"):
        assert f"## {heading}" in md
    per_class = trained_model.metadata_["per_class"]
    for label, info in per_class.items():
        assert f"| {label} | {info['examples']} |" in md
    assert "Chronological protocol" in md and f"measured on {card.data['evaluation']['n']} newer" in md
    assert "bureau@jardins.example" in md
    page = card.html("en")
    assert page.startswith("<!doctype html>") and "<h2>Accuracy per language</h2>" in page and "<table>" in page
    fr = build_card(trained_model, lang="fr").markdown()  # without newer mail: said plainly, in French
    assert "Pas encore de mesure chronologique" in fr and "Non mesurée" in fr


def test_model_card_command_on_a_file_and_a_registry_version(tmp_path: Path, trained_model) -> None:
    from assoc_ai_core.jobs.registry import ModelRegistry
    from assoc_ai_core.persistence import save_model

    path = save_model(trained_model, tmp_path / "m.skops")
    out = tmp_path / "cards"
    result = CliRunner().invoke(cli, ["model", "card", str(path), "--output", str(out), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert (out / "m.card.md").read_text(encoding="utf-8").startswith("# Model card m")
    assert (out / "m.card.html").is_file()
    ModelRegistry(tmp_path / "models").add(trained_model, {"created_at": "x"}, promote=True)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mailbox]\nconnector = "local"\npath = "Maildir"\n[triage]\nfirst_run = "all"\nstate = "state.sqlite"\n'
                   '[model]\nregistry = "models"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["model", "card", "v0001", "--config", str(cfg), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "Fiche du modèle v0001" in (out / "v0001.card.md").read_text(encoding="utf-8")
    bad = CliRunner().invoke(cli, ["model", "card", "v0009", "--config", str(cfg)])
    assert bad.exit_code != 0 and "v0009" in bad.output
    assert "list" in cli.commands["model"].commands and "card" in cli.commands["model"].commands


def test_a_weak_model_is_never_called_free_of_fragile_categories(trained_model) -> None:
    from types import SimpleNamespace

    from assoc_ai_core.trust.modelcard import WEAK_MACRO_F1

    md = dict(trained_model.metadata_)
    assert md["cv_macro_f1"] >= WEAK_MACRO_F1  # the example model is a good one: nothing to flag
    good = build_card(trained_model, lang="fr").markdown()
    weak_section = good.split("## Catégories fragiles connues")[1].split("##")[0]
    assert "Aucune repérée" in weak_section and "pas encore de mesure par catégorie" in weak_section
    weak = build_card(SimpleNamespace(metadata_=dict(md, cv_macro_f1=0.72)), lang="fr").markdown()
    weak_section = weak.split("## Catégories fragiles connues")[1].split("##")[0]
    assert "Aucune repérée" not in weak_section
    assert "Le modèle entier est fragile : F1 macro 0,72 en validation croisée, sous le seuil de 0,80" in weak_section
    # a chronological measurement, when given, is the one that counts
    evaluation = {"n": 40, "accuracy": 0.7, "macro_f1": 0.66, "per_class": {}, "coverage_at_precision": {}}
    en = build_card(trained_model, evaluation=evaluation, lang="en").markdown()
    assert "The whole model is weak: macro-F1 0.66 on recent mail, under the 0.80 threshold" in en
    assert "None found" not in en
