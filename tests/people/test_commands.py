"""The command line of people data, run through click's runner on real files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.people import (
    evaluate_task,
    explain_task,
    is_people_model,
    people,
    predict_task,
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _private(*paths: Path) -> bool:
    """Files that name people are readable by their owner only."""
    return all(p.stat().st_mode & 0o777 == 0o600 for p in paths)


def test_is_people_model(donor_model_path, tmp_path):
    assert is_people_model(donor_model_path)
    (tmp_path / "x.skops").write_bytes(b"PK not really")
    assert not is_people_model(tmp_path / "x.skops")


def test_predict_evaluate_explain_functions(donor_model_path, exports, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    frame = predict_task(str(donor_model_path), str(exports), str(out), lang="fr")
    text = out.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "person_id;probability;selected;explanation"
    assert len(text.splitlines()) == len(frame) + 1 and "," in text.splitlines()[1].split(";")[1]
    assert out.read_bytes().startswith(b"\xef\xbb\xbf") and _private(out)
    result = evaluate_task(str(donor_model_path), str(exports), str(tmp_path / "m.json"), str(tmp_path / "r.html"))
    saved = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert saved["in_sample"] is True and saved["chronological"]["metrics"]["roc_auc"] > 0.8
    assert result["retention"] and "<svg" in (tmp_path / "r.html").read_text(encoding="utf-8")
    capsys.readouterr()
    explain_task(str(donor_model_path), str(exports), frame.iloc[0].person_id, "en")
    said = capsys.readouterr().out
    assert said.startswith(frame.iloc[0].person_id) and "starting point" in said
    weights = explain_task(str(donor_model_path), None, None, "fr")
    assert set(weights) == set(json.loads((tmp_path / "m.json").read_text())["chronological"]["weights"])


def test_train_command_and_data_errors(runner, exports, tmp_path):
    model = tmp_path / "churn.skops"
    res = runner.invoke(people, ["train", "--task", "churn", str(exports), "-o", str(model), "--lang", "en"])
    assert res.exit_code == 0, res.output
    assert "Chronological check" in res.output and is_people_model(model)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "dons.csv").write_text("Id contact;Montant;Date\n1;10;01/01/2024\n", encoding="utf-8")
    res = runner.invoke(people, ["train", "--task", "donor-propensity", str(empty), "-o", str(tmp_path / "m.skops")])
    assert res.exit_code == 4 and "Aucune personne trouvée" in res.output
    res = runner.invoke(people, ["train", "--task", "astrology", str(exports), "-o", str(tmp_path / "m.skops")])
    assert res.exit_code == 4 and "Tâche inconnue" in res.output


def test_clean_dedupe_retention_fairness_match(runner, exports, donor_model_path, tmp_path):
    res = runner.invoke(people, ["clean", str(exports), "-o", str(tmp_path / "clean.csv"), "--json", str(tmp_path / "q.json")])
    assert res.exit_code == 0, res.output
    assert "Qualité des données" in res.output and (tmp_path / "clean.csv").exists()
    assert json.loads((tmp_path / "q.json").read_text())["counts"]["person"] > 700
    cleaned = (tmp_path / "clean.csv").read_text(encoding="utf-8-sig").splitlines()
    assert cleaned[0].endswith(";do_not_profile;issues") and len(cleaned) > 700
    assert _private(tmp_path / "clean.csv", tmp_path / "q.json")
    res = runner.invoke(people, ["clean", str(exports), "-o", str(exports / "personnes.csv")])
    assert res.exit_code == 4 and "exports d'origine" in res.output
    res = runner.invoke(people, ["dedupe", str(exports), "-o", str(tmp_path / "dup.csv")])
    assert res.exit_code == 0 and "6 fusion(s) proposée(s)" in res.output
    assert (tmp_path / "dup.csv").read_text(encoding="utf-8-sig").splitlines()[0] == "left;right;score;reasons;decision"
    assert _private(tmp_path / "dup.csv")
    res = runner.invoke(people, ["retention", str(exports), "--history", "3", "--html", str(tmp_path / "ret.html"),
                                 "--json", str(tmp_path / "ret.json")])
    assert res.exit_code == 0 and "Fidélisation globale" in res.output
    assert len(json.loads((tmp_path / "ret.json").read_text())) == 3
    res = runner.invoke(people, ["fairness", str(donor_model_path), str(exports), "--attribute", "gender", "--min-group", "30"])
    assert res.exit_code == 0 and res.output.startswith("gender:") and "sel=" in res.output
    res = runner.invoke(people, ["match", str(exports), "--mission", "MI0003", "--top", "2", "--as-of", "2023-01-01"])
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 2


def test_write_scores_through_the_configured_connector(runner, exports, donor_model_path, tmp_path, files_plugin):
    config = tmp_path / "assoc_ai.toml"
    out = tmp_path / "crm_scores.csv"
    config.write_text(f'[crm]\nconnector = "files"\npath = "{exports}"\noutput = "{out}"\n', encoding="utf-8")
    config.chmod(0o600)
    res = runner.invoke(people, ["write-scores", str(donor_model_path), str(config)])
    assert res.exit_code == 0, res.output
    assert "simulation" in res.output and "--apply" in res.output and not out.exists()
    res = runner.invoke(people, ["write-scores", str(donor_model_path), str(config), "--apply", "--json", str(tmp_path / "w.json")])
    assert res.exit_code == 0 and out.exists()
    written = json.loads((tmp_path / "w.json").read_text())
    assert written["counts"]["create"] > 100 and written["dry_run"] is False and _private(tmp_path / "w.json")
    res = runner.invoke(people, ["write-scores", str(donor_model_path), str(config), "--apply"])
    assert " 0 nouveaux, 0 modifiés" in res.output  # idempotent
    res = runner.invoke(people, ["write-scores", str(donor_model_path), str(config), "--lang", "en"])
    assert "0 new, " in res.output and "0 unchanged" in res.output  # the English explanations differ: an update


def test_out_of_core_score_command(runner, exports, donor_model_path, tmp_path):
    res = runner.invoke(people, ["features", str(exports), "-o", str(tmp_path / "f.csv")])
    assert res.exit_code == 0
    res = runner.invoke(people, ["score", str(donor_model_path), str(tmp_path / "f.csv"), "-o", str(tmp_path / "s.csv"),
                                 "--scheduler", "synchronous"])
    assert res.exit_code == 0 and "lignes notées" in res.output
    assert Path(tmp_path / "s.csv").read_text().splitlines()[0] == "person_id,probability"
    assert _private(tmp_path / "f.csv", tmp_path / "s.csv") and not (tmp_path / "s.csv.parts").exists()


def test_example_script_runs_as_a_dry_run(capsys):
    import runpy

    root = Path(__file__).resolve().parents[2]
    module = runpy.run_path(str(root / "examples" / "score_crm_contacts.py"))
    module["main"]([])
    out = capsys.readouterr().out
    assert "Vérification chronologique" in out and "Rien n'a été écrit" in out
    assert re.search(r"AUC \d,\d{2},", out)  # French numbers take a decimal comma
    assert "'create': " in out


def test_predict_command_on_a_people_model_prints_everyone_in_json_and_english(donor_model_path, exports):
    from assoc_ai_core.cli.main import _wire_optional_commands, cli

    _wire_optional_commands()
    res = CliRunner().invoke(cli, ["predict", str(donor_model_path), str(exports), "--json", "--lang", "en"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    scored = int(re.search(r"(\d+) people scored", res.stderr).group(1))
    assert len(rows) == scored > 20 and {"person_id", "probability", "explanation"} <= set(rows[0])
    assert not re.search(r"\b(personnes|notées|exclue)\b", res.output)
    res = CliRunner().invoke(cli, ["predict", str(donor_model_path), str(exports), "--top", "3"])
    assert res.exit_code == 0 and len(res.stdout.strip().splitlines()) == 3
    assert "autre(s)" in res.stderr and "--top" in res.stderr


def test_money_commands_and_evaluate_are_people_subcommands(runner):
    for name in ("value", "select", "bgbb", "evaluate"):
        res = runner.invoke(people, [name, "--help"])
        assert res.exit_code == 0, (name, res.output)
    assert "--fiscal-year-start" in runner.invoke(people, ["evaluate", "--help"]).output
    assert "--scheduler" in runner.invoke(people, ["retention", "--help"]).output
    assert "--as-of" in runner.invoke(people, ["train", "--help"]).output
