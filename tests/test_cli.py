"""The assoc-ai command line, as a volunteer would use it."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from assoc_ai_core.cli.main import cli, main  # noqa: F401 - main wires optional commands


def run(args, env=None):
    from assoc_ai_core.cli.main import _wire_optional_commands

    _wire_optional_commands()
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def test_train_evaluate_predict_explain(example_mailbox, tmp_path):
    model = tmp_path / "m.skops"
    r = run(["train", str(example_mailbox / "train"), "-o", str(model), "--target-precision", "0.9"])
    assert r.exit_code == 0, r.output
    assert model.is_file() and "Validation croisée" in r.output

    out_json, out_html = tmp_path / "e.json", tmp_path / "e.html"
    r = run(["evaluate", str(model), str(example_mailbox / "train"), "--json", str(out_json), "--html", str(out_html),
             "--chronological", "0.3"])
    assert r.exit_code == 0, r.output
    data = json.loads(out_json.read_text())
    for key in ("accuracy", "macro_f1", "per_class", "confusion", "coverage_at_precision"):
        assert key in data
    assert data["protocol"].startswith("chronological")
    assert set(data["coverage_at_precision"]) == {"0.90", "0.95", "0.98"}
    assert out_html.read_text().startswith("<!doctype html>")

    r = run(["predict", str(model), str(example_mailbox / "new"), "--json"])
    assert r.exit_code == 0
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert len(rows) == 13 and all(row["decision"] in ("auto", "review") for row in rows)
    assert all("explanation" in row for row in rows)

    one = sorted((example_mailbox / "new").glob("*.eml"))[0]
    r = run(["explain", str(model), str(one), "--lang", "en"])
    assert r.exit_code == 0 and "Classified" in r.output and "for " in r.output
    r = run(["explain", str(model)])
    assert r.exit_code == 0 and "Adhesion:" in r.output


def test_errors_have_exit_codes_and_french_or_english(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "Seule").mkdir()
    (tmp_path / "one" / "Seule" / "a.eml").write_bytes(b"Subject: a\n\nb\n")
    r = run(["train", str(tmp_path / "one"), "-o", str(tmp_path / "m.skops")])
    assert r.exit_code == 4 and "Erreur" in r.output
    r = run(["train", str(tmp_path / "one"), "-o", str(tmp_path / "m.skops")], env={"ASSOC_AI_LANG": "en"})
    assert r.exit_code == 4 and "Error" in r.output and "categories" in r.output
    bogus = tmp_path / "m.skops"
    bogus.write_bytes(b"zzz")
    r = run(["predict", str(bogus), str(tmp_path / "one")])
    assert r.exit_code == 7


def test_demo_end_to_end(example_mailbox, tmp_path):
    r = run(["demo", str(example_mailbox), "--out", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "demo" / "report.html").is_file() and (tmp_path / "demo" / "model.skops").is_file()
    assert "à vérifier" in r.output and "corrects" in r.output


def test_category_names_can_be_left_out_and_the_card_says_when_they_are_used(example_mailbox, tmp_path):
    from assoc_ai_core.persistence import read_metadata

    with_names, without = tmp_path / "a.skops", tmp_path / "b.skops"
    assert run(["train", str(example_mailbox / "train"), "-o", str(with_names)]).exit_code == 0
    assert run(["train", str(example_mailbox / "train"), "-o", str(without), "--no-label-names"]).exit_code == 0
    assert read_metadata(with_names)["label_names"] is True and read_metadata(without)["label_names"] is False
    cards = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.md")}
    assert len(cards) == 2, cards.keys()
    named = [text for name, text in cards.items() if name.startswith("a")]
    plain = [text for name, text in cards.items() if name.startswith("b")]
    assert "nom de chaque catégorie" in named[0] and "nom de chaque catégorie" not in plain[0]


def test_a_small_mailbox_gets_sentence_meaning_by_default_and_can_refuse_it(example_mailbox, tmp_path):
    from assoc_ai_core import load_model

    model = tmp_path / "m.skops"
    r = run(["train", str(example_mailbox / "train"), "-o", str(model)])
    assert r.exit_code == 0 and "Sens des phrases activé" in r.output and "--no-semantic" in r.output
    assert "Sens des phrases" not in r.stdout  # said on stderr, so scripts reading stdout are not disturbed
    assert load_model(model).embeddings == "use-multilingual"
    r = run(["train", str(example_mailbox / "train"), "-o", str(model)], env={"ASSOC_AI_LANG": "en"})
    assert "Sentence meaning on" in r.output
    r = run(["train", str(example_mailbox / "train"), "-o", str(model), "--no-semantic"])
    assert r.exit_code == 0 and "Sens des phrases" not in r.output and "Conseil" not in r.output
    assert load_model(model).embeddings is None


def test_a_small_mailbox_without_the_extra_is_told_how_to_get_it(example_mailbox, tmp_path, monkeypatch):
    import assoc_ai_core.api as api

    monkeypatch.setattr(api, "_embeddings_available", lambda: False)
    r = run(["train", str(example_mailbox / "train"), "-o", str(tmp_path / "m.skops")])
    assert r.exit_code == 0 and "Conseil" in r.output and "semantic" in r.output
    assert "Conseil" not in r.stdout
    r = run(["train", str(example_mailbox / "train"), "-o", str(tmp_path / "m.skops")], env={"ASSOC_AI_LANG": "en"})
    assert "Tip:" in r.output


def test_training_says_what_it_left_out_in_plain_words(example_mailbox, tmp_path):
    import shutil

    data = tmp_path / "mail"
    shutil.copytree(example_mailbox / "train", data)
    lone = tmp_path / "lone.eml"
    shutil.copy(sorted((data / "Presse").glob("*.eml"))[0], lone)
    (data / "Seule").mkdir()
    shutil.copy(lone, data / "Seule" / "1.eml")  # a category with a single example
    shutil.copy(lone, data / "a-la-racine.eml")  # mail beside the category folders
    r = run(["train", str(data), "-o", str(tmp_path / "m.skops")])
    assert r.exit_code == 0, r.output
    assert "1 message(s) hors de tout dossier de catégorie" in r.output and "a-la-racine.eml" in r.output
    assert "Attention : Catégories avec un seul exemple" in r.output and "Seule" in r.output
    assert "UserWarning" not in r.output and ".py:" not in r.output  # no Python warning dump for a volunteer


def test_numbers_are_written_the_way_each_language_writes_them(example_mailbox, tmp_path):
    import re

    model = tmp_path / "m.skops"
    r = run(["train", str(example_mailbox / "train"), "-o", str(model)])
    assert re.search(r"F1 macro \d,\d{3}\.", r.output), r.output
    card = model.with_suffix(".card.md").read_text(encoding="utf-8")
    assert re.search(r"F1 macro \d,\d{3}", card) and re.search(r"Seuil de ce modèle : \d,\d{2} ", card)
    r = run(["evaluate", str(model), str(example_mailbox / "train")])
    assert "précision  rappel  F1" in r.output and re.search(r"F1 macro \d,\d{3}", r.output)
    r = run(["train", str(example_mailbox / "train"), "-o", str(model)], env={"ASSOC_AI_LANG": "en"})
    assert re.search(r"macro-F1 \d\.\d{3}\.", r.output), r.output


def _core_commands(command, path=()):
    import click

    if path and not command.callback.__module__.startswith("assoc_ai_core"):
        return
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _core_commands(sub, (*path, name))


def test_every_option_says_what_it_does_and_required_ones_look_required():
    import click

    from assoc_ai_core.cli.main import _wire_optional_commands

    _wire_optional_commands()
    missing = [(" ".join(path), p.opts) for path, command in _core_commands(cli) for p in command.params
               if isinstance(p, click.Option) and not p.help]
    assert not missing
    r = run(["train", "--help"])
    assert "train [OPTIONS] DATA\n" in r.output and re.search(r"--output CHEMIN\s+Fichier du modèle \(\.skops\)\.\s+"
                                                               r"\[obligatoire\]", r.output)
    r = run(["train", str(tmp_dir := __import__("tempfile").mkdtemp())])
    assert r.exit_code == 2 and "Option manquante '-o' / '--output'." in r.output, (tmp_dir, r.output)


def test_exit_code_2_is_for_usage_errors_only(tmp_path):
    assert run(["predict", "--nosuchoption"]).exit_code == 2
    r = run(["triage", "run", "--config", str(tmp_path / "absent.toml")])
    assert r.exit_code == 78 and "introuvable" in r.output  # a configuration error: EX_CONFIG


def test_evaluate_writes_its_json_whole_and_private(trained_model, example_mailbox, tmp_path):
    from assoc_ai_core.persistence import save_model

    model = save_model(trained_model, tmp_path / "m.skops")
    out = tmp_path / "e.json"
    r = run(["evaluate", str(model), str(example_mailbox / "train"), "--json", str(out), "--lang", "en"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text(encoding="utf-8"))["n"] > 0 and out.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".e.json.*"))  # no temporary file left beside it
    assert "training data (" in r.output and "held-out" not in r.output


def test_the_progress_bar_never_counts_past_its_end():
    import io

    from tqdm import tqdm

    from assoc_ai_core.cli.mail import BoundedProgress

    out = io.StringIO()
    with BoundedProgress(tqdm(total=5, file=out, mininterval=0, miniters=1, ascii=True)) as bar:
        for _ in range(7):  # two more steps than planned (more folds)
            bar.update(1)
            assert bar.bar.n < bar.bar.total  # 100 % only once done
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+)", out.getvalue())]
    assert counts and all(done <= total for done, total in counts) and counts[-1][0] == counts[-1][1]


def test_ctrl_c_ends_in_one_line_and_exit_code_130(example_mailbox, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    model = tmp_path / "m.skops"
    cmd = [sys.executable, "-m", "assoc_ai_core.cli.main", "train", str(example_mailbox / "train"), "-o", str(model),
           "--no-semantic"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, ASSOC_AI_LANG="fr"))
    first = proc.stderr.readline()  # "84 messages étiquetés, …": learning has begun
    assert "étiquetés" in first, first + proc.stderr.read()
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines() == ["Interrompu (Ctrl-C) : rien n'a été écrit à moitié."], err
    assert not model.exists() and "Traceback" not in err


def test_verbose_works_after_the_subcommand_too(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "j.toml"
    cfg.write_text('[mailbox]\nconnector = "local"\npath = "M"\ncreate = true\n[triage]\nstate = "s.sqlite"\n',
                   encoding="utf-8")
    for args in (["-v", "triage", "run", "--config", str(cfg)], ["triage", "run", "--config", str(cfg), "-v"]):
        done = subprocess.run([sys.executable, "-m", "assoc_ai_core.cli.main", *args, "--lang", "en"],
                              capture_output=True, text=True, timeout=120)
        # not a usage error (exit 2, "No such option: -v"): the configuration names no model, exit 78
        assert done.returncode == 78 and "model" in done.stderr.lower(), done.stderr
