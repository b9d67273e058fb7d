"""One language per run: every command's output, click's own words included, in French or in English only."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.main import _wire_optional_commands, cli
from assoc_ai_core.i18n import count, current_lang, signed, tr, use_lang

# Words a French run never shows, and words an English run never shows (the interface's words, not the mail's).
ENGLISH = re.compile(r"(?<!--)\b(Usage|Error|Show this|Try|Missing|Invalid|Aborted|Classified|because|otherwise|checked|"
                     r"labelled|categor(?:y|ies)|accuracy|recall|held-out|training data|Warning|written|language|"
                     r"default|required|confidence|review|integer|Options:|Commands:)")
FRENCH = re.compile(r"\b(Utilisation|Erreur|Afficher|Essayez|manquant|Valeur|catégories?|Classé|surtout|sinon|"
                    r"vérifier|langue|Modèle|étiquetés?|exactitude|rappel|précision|défaut|obligatoire|confiance|"
                    r"Attention|écrit|fichier|Fiche)\b")
OTHER = {"fr": ENGLISH, "en": FRENCH}


def run(args: list[str], lang: str | None = None) -> click.testing.Result:
    _wire_optional_commands()
    return CliRunner().invoke(cli, [*args, *(["--lang", lang] if lang else [])], prog_name="assoc-ai")


def assert_one_language(output: str, lang: str) -> None:
    found = OTHER[lang].findall(output)
    assert not found, f"{lang} run shows {found}:\n{output}"


def core_commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand of assoc-ai itself (installed plugins write their own help)."""
    if path and not command.callback.__module__.startswith("assoc_ai_core"):  # type: ignore[union-attr]
        return
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from core_commands(sub, (*path, name))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, example_mailbox: Path) -> Path:
    path = tmp_path_factory.mktemp("lang") / "m.skops"
    r = run(["train", str(example_mailbox / "train"), "-o", str(path)])
    assert r.exit_code == 0, r.output
    return path


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_help_page_speaks_one_language(lang: str) -> None:
    _wire_optional_commands()
    pages = list(core_commands(cli))
    assert ("train",) in pages and ("people", "train") in pages and ("model", "card") in pages
    for path in pages:
        r = run([*path, "--help"], lang)
        assert r.exit_code == 0, r.output
        assert_one_language(r.output, lang)
        assert "--lang" in r.output, path  # the option is on every command


def test_help_follows_the_locale_when_no_lang_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSOC_AI_LANG")
    monkeypatch.setenv("LC_ALL", "en_GB.UTF-8")
    r = run(["predict", "--help"])
    assert "Usage: assoc-ai predict" in r.output and "Show this message and exit." in r.output
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")
    r = run(["predict", "--help"])
    assert "Utilisation : assoc-ai predict" in r.output and "Afficher cette aide et quitter." in r.output


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_clicks_own_errors_speak_the_runs_language(lang: str, tmp_path: Path) -> None:
    for args in (["evaluate"], ["predict", str(tmp_path / "absent.skops"), "x"], ["explain", "m", "--top", "beaucoup"],
                 ["nosuchcommand"], ["train", "--nosuchoption"]):
        r = run(args, lang)
        assert r.exit_code == 2, r.output
        assert_one_language(r.output, lang)
        assert tr("Erreur :", "Error:", lang) in r.output and tr("Essayez", "Try", lang) in r.output


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_train_evaluate_predict_explain_speak_one_language(lang: str, model_file: Path, example_mailbox: Path,
                                                           tmp_path: Path) -> None:
    train_dir, new_dir = example_mailbox / "train", example_mailbox / "new"
    outputs = {
        "train": run(["train", str(train_dir), "-o", str(tmp_path / "m.skops")], lang),
        "evaluate": run(["evaluate", str(model_file), str(train_dir)], lang),
        "predict": run(["predict", str(model_file), str(new_dir)], lang),
        "explain": run(["explain", str(model_file), str(sorted(new_dir.glob("*.eml"))[0])], lang),
        "explain model": run(["explain", str(model_file)], lang),
    }
    for name, r in outputs.items():
        assert r.exit_code == 0, (name, r.output)
        assert_one_language(r.output, lang)
    if lang == "fr":  # French numbers: a decimal comma, and weights like "+1,34"
        assert re.search(r"\(\+\d,\d\d\)", outputs["explain"].output)
        assert "0,90 : " in outputs["evaluate"].output and not re.search(r"\d\.\d", outputs["evaluate"].output)
        assert "données d'entraînement (" in outputs["evaluate"].output
    else:
        assert re.search(r"\(\+\d\.\d\d\)", outputs["explain"].output) and "0.90: " in outputs["evaluate"].output
        assert "training data (" in outputs["evaluate"].output and "⟨langue" not in outputs["explain"].output


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_an_assoc_ai_error_speaks_the_runs_language(lang: str, tmp_path: Path) -> None:
    (tmp_path / "one" / "Seule").mkdir(parents=True)
    (tmp_path / "one" / "Seule" / "a.eml").write_bytes(b"Subject: a\n\nb\n")
    r = run(["train", str(tmp_path / "one"), "-o", str(tmp_path / "m.skops")], lang)
    assert r.exit_code == 4 and tr("Erreur : ", "Error: ", lang) in r.output
    assert_one_language(r.output, lang)


def test_numbers_and_plurals_follow_the_language() -> None:
    assert signed(1.3449, 2, "fr") == "+1,34" and signed(-0.06, 2, "en") == "-0.06"
    assert count(1, ("catégorie", "catégories"), ("category", "categories"), "fr") == "1 catégorie"
    assert count(0, ("catégorie", "catégories"), ("category", "categories"), "en") == "0 categories"
    assert count(2, ("catégorie", "catégories"), ("category", "categories"), "fr") == "2 catégories"


def test_the_runs_language_is_the_default_of_every_message_and_is_restored() -> None:
    previous = use_lang("en")
    try:
        assert current_lang() == "en" and tr("oui", "yes") == "yes"
    finally:
        use_lang(previous)
    assert current_lang() == "fr"  # conftest: ASSOC_AI_LANG=fr
    run(["--help"], "en")
    assert current_lang() == "fr"  # a run does not leave its language behind
    assert sys.modules["click.formatting"]._("Usage:") == "Utilisation :"  # click follows the language, as tr does


ENGLISH_MAIL = b"Subject: membership renewal\nFrom: a@b.org\n\nHello, I would like to renew my membership for this year.\n"


def test_an_english_explanation_names_the_language_in_english(model_file: Path, trained_model, tmp_path: Path) -> None:
    from assoc_ai_core.api import explain, parse_message

    (tmp_path / "en.eml").write_bytes(ENGLISH_MAIL)
    r = run(["explain", str(model_file), str(tmp_path / "en.eml"), "--top", "60"], "en")
    assert "⟨language en⟩" in r.output and "⟨langue" not in r.output, r.output
    exp = explain(trained_model, parse_message(ENGLISH_MAIL), top_k=60, lang="en")  # the locale says French
    terms = [t for t, _ in exp.toward + exp.against]
    assert "⟨language en⟩" in terms and not any(t.startswith("⟨langue") for t in terms)
