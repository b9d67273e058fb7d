"""The triage job's declared settings: one schema, one validator, and ``config show`` checking what ``triage run`` does."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.main import cli
from assoc_ai_core.cli.triage import add_commands
from assoc_ai_core.errors import ConfigError
from assoc_ai_core.jobs.schema import describe, settings_of
from assoc_ai_core.jobs.settings import DEFAULT_REVIEW_FOLDER, SECTIONS, TriageSettings
from assoc_ai_core.testing.mailbox import kit_model

add_commands(cli)
ROOT = Path(__file__).resolve().parents[1]
BASE: dict[str, Any] = {
    "mailbox": {"connector": "local", "path": "Maildir", "create": True},
    "triage": {"first_run": "all", "state": "state.sqlite"},
    "categories": {"A": {"folder": "IA/A"}, "B": {"folder": "IA/B"}},
}


def _with(section: str, **keys: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node = data
    for part in section.split("."):
        node = node.setdefault(part, {})
    node.update(keys)
    return data


# ------------------------------------------------------------------ the schema
def test_every_key_has_help_in_french_and_english_and_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = describe(SECTIONS, "fr")
    assert {r["section"] for r in rows} == {"triage", "model", "categories.<Name>", "privacy", "training"}
    for fr, en in zip(rows, describe(SECTIONS, "en"), strict=True):
        assert fr["help"] and en["help"] and fr["help"] != en["help"], fr
        assert f"| `{fr['key']}` |" in doc, f"[{fr['section']}] {fr['key']} is not documented"
    for key in SECTIONS["privacy"].delegated:  # checked by the retention module, accepted by the job
        assert f"`[privacy] {key}`" in doc


def test_defaults_are_the_declared_ones(tmp_path: Path) -> None:
    settings = TriageSettings.from_mapping({"mailbox": {"connector": "local"}}, base_dir=tmp_path)
    defaults = {r["key"]: r["default"] for r in describe(SECTIONS) if r["section"] != "categories.<Name>"}
    assert (settings.folders, settings.review_folder, settings.dry_run) == (defaults["folders"],
                                                                            DEFAULT_REVIEW_FOLDER, False)
    assert (settings.page_size, settings.poll_interval, settings.correction_window_days) == (100, 60.0, 60)
    assert (settings.target_precision, settings.min_corrections, settings.holdout_share) == (0.95, 3, 0.2)
    assert (settings.store_raw_sender, settings.keep_correction_text) == (False, True)
    assert settings.instance == "local" and settings.model_path is None and settings.categories == {}
    assert settings.state_path == tmp_path / "assoc-ai-home" / "state.sqlite"  # $ASSOC_AI_HOME (conftest)


@pytest.mark.parametrize("section, keys, french, english", [
    ("triage", {"page_size": "10"}, "[triage] page_size doit être un entier.", "[triage] page_size must be an integer."),
    ("triage", {"page_size": True}, "[triage] page_size doit être un entier.", "[triage] page_size must be an integer."),
    ("triage", {"dry_run": "yes"}, "[triage] dry_run doit être true ou false.", "[triage] dry_run must be true or false."),
    ("triage", {"poll_interval": True}, "[triage] poll_interval doit être un nombre de secondes.",
     "[triage] poll_interval must be a number of seconds."),
    ("triage", {"folders": []}, '[triage] folders doit être une liste de dossiers, ex. ["INBOX"].',
     '[triage] folders must be a list of folders, e.g. ["INBOX"].'),
    ("triage", {"state": " "}, "[triage] state doit être un chemin (texte).", "[triage] state must be a path (text)."),
    ("triage", {"instance": 3}, "[triage] instance doit être du texte.", "[triage] instance must be text."),
    ("model", {"target_precision": "0.9"}, "[model] target_precision doit être un nombre entre 0,5 et 0,999.",
     "[model] target_precision must be a number between 0.5 and 0.999."),
    ("model", {"target_precision": 1.0}, "[model] target_precision doit être entre 0,5 et 0,999.",
     "[model] target_precision must be between 0.5 and 0.999."),
    ("training", {"holdout_share": 0}, "[training] holdout_share doit être entre 0 et 0,5.",
     "[training] holdout_share must be between 0 and 0.5."),
    ("training", {"min_corrections": 2.5}, "[training] min_corrections doit être un entier.",
     "[training] min_corrections must be an integer."),
    ("privacy", {"keep_correction_text": 1}, "[privacy] keep_correction_text doit être true ou false.",
     "[privacy] keep_correction_text must be true or false."),
    ("categories.A", {"label": ""}, "[categories.A] label doit être du texte.", "[categories.A] label must be text."),
    ("categories.A", {"folder": 3}, "[categories.A] folder doit être un nom de dossier.",
     "[categories.A] folder must be a folder name."),
    ("categories.A", {"forward": ["a@b.example", "personne"]},
     "[categories.A] forward doit être une adresse ou une liste d'adresses.",
     "[categories.A] forward must be an address or a list of addresses."),
    ("categories.A", {"tag": ""}, "[categories.A] tag doit être true, false ou le texte du tag.",
     "[categories.A] tag must be true, false or the tag text."),
])
def test_a_wrong_value_names_the_key_and_what_it_must_be(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        section: str, keys: dict[str, Any], french: str,
                                                        english: str) -> None:
    data = _with(section, **keys)
    with pytest.raises(ConfigError) as err:
        TriageSettings.from_mapping(data, base_dir=tmp_path)
    assert str(err.value) == french
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    with pytest.raises(ConfigError) as err:
        TriageSettings.from_mapping(data, base_dir=tmp_path)
    assert str(err.value) == english


def test_unknown_keys_and_sections_that_are_not_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        TriageSettings.from_mapping(_with("privacy", keyfile="k"), base_dir=tmp_path)
    message = str(err.value)
    assert message.startswith("[privacy] : clé(s) inconnue(s) keyfile. Clés possibles : ")
    assert "key_file" in message and "retention_days_text" in message  # the retention keys are allowed here too
    with pytest.raises(ConfigError, match=r"^\[training\] doit être une section\.$"):
        TriageSettings.from_mapping({**BASE, "training": 3}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^\[categories\.A\] doit être une section\.$"):
        TriageSettings.from_mapping({**BASE, "categories": {"A": "IA/A"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="même dossier"):
        TriageSettings.from_mapping(_with("categories.B", folder="IA/A"), base_dir=tmp_path)
    with pytest.raises(ConfigError, match="dossier de revue"):
        TriageSettings.from_mapping(_with("categories.B", folder=DEFAULT_REVIEW_FOLDER), base_dir=tmp_path)


def test_accepted_values_and_their_reading(tmp_path: Path) -> None:
    data = _with("triage", folders="INBOX", poll_interval=5, page_size=10)
    data["model"] = {"target_precision": 0.5, "path": "m/model.skops", "registry": "/srv/models"}
    data["training"] = {"holdout_share": 0.5, "data": "~/corpus"}
    data["privacy"] = {"retention_days_text": 30, "key_file": "keys/k.key"}
    data["categories"]["A"].update(forward="tresorier@asso.example", tag=True, label="Adh")
    data["categories"]["B"].update(forward=["a@asso.example", "b@asso.example"], tag="  [Événement]  ")
    s = TriageSettings.from_mapping(data, base_dir=tmp_path)
    assert s.folders == ("INBOX",) and s.poll_interval == 5.0 and isinstance(s.poll_interval, float)
    assert (s.target_precision, s.holdout_share) == (0.5, 0.5)
    assert s.model_path == tmp_path / "m" / "model.skops" and s.registry_dir == Path("/srv/models")
    assert s.training_data == Path("~/corpus").expanduser() and s.key_file == tmp_path / "keys" / "k.key"
    a, b = s.categories["A"], s.categories["B"]
    assert (a.tag, a.forward, a.label) == ("[#A]", ("tresorier@asso.example",), "Adh")
    assert (b.tag, b.forward) == ("[Événement]", ("a@asso.example", "b@asso.example"))
    assert [f for f in settings_of(SECTIONS["categories.<Name>"])] == ["folder", "label", "tag", "forward"]


# ------------------------------------------------------------------ config show == triage run
def _toml(model: Path, *, connector: str = "local", mailbox: str = "", triage: str = "", category: str = "",
          extra: str = "") -> str:
    return (f'[mailbox]\nconnector = "{connector}"\npath = "Maildir"\ncreate = true\n{mailbox}\n'
            f'[model]\npath = "{model}"\n\n[triage]\nstate = "state.sqlite"\n{triage}\n'
            f'[categories."Adhésion"]\nfolder = "IA/Adhésion"\n{category}\n'
            f'[categories."Événement"]\nfolder = "IA/Événement"\n\n{extra}\n')


SMTP_NO_SECRET = '[smtp]\nhost = "127.0.0.1"\nusername = "tri@asso.example"\npassword = { env = "ASSOC_AI_TEST_UNSET" }\n'
BAD_CONFIGS = {
    "unknown job key": {"triage": 'folderz = ["INBOX"]'},
    "wrong type": {"triage": 'page_size = "10"'},
    "review folder watched": {"triage": 'review_folder = "INBOX"'},
    "unknown connector key": {"mailbox": 'colour = "red"'},
    "unknown connector": {"connector": "nowhere"},
    "forward without smtp": {"category": 'forward = "tresorier@asso.example"'},
    "forward, smtp secret unset": {"category": 'forward = "tresorier@asso.example"', "extra": SMTP_NO_SECRET},
    "forward, smtp both tls modes": {"category": 'forward = "t@asso.example"',
                                     "extra": '[smtp]\nhost = "h"\nssl = true\nstarttls = true\n'},
    "acknowledgement without smtp": {"extra": '[acknowledgement]\nenabled = true\ncontact = "bureau@asso.example"\n'},
    "acknowledgement language": {"extra": '[acknowledgement]\nlang = "de"\n'},
    "tag": {"category": "tag = 3"},
}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from assoc_ai_core.persistence import save_model

    return save_model(kit_model(), tmp_path_factory.mktemp("kit") / "kit.skops")


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("Erreur", "Error"))]


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_config_show_refuses_exactly_what_triage_run_refuses(tmp_path: Path, model_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.delenv("ASSOC_AI_TEST_UNSET", raising=False)
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text(_toml(model_path, **BAD_CONFIGS[case]), encoding="utf-8")
    cfg.chmod(0o600)
    show = CliRunner().invoke(cli, ["config", "show", "--config", str(cfg)])
    run = CliRunner().invoke(cli, ["triage", "run", "--config", str(cfg)])
    assert show.exit_code == run.exit_code and run.exit_code in (78, 5), (show.output, run.output)  # config or plugin
    assert _errors(show.output) == _errors(run.output) and len(_errors(run.output)) == 1, (show.output, run.output)
    assert not (tmp_path / "state.sqlite").exists()  # refused before the job touched anything


def test_a_configuration_config_show_accepts_runs(tmp_path: Path, model_path: Path) -> None:
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text(_toml(model_path, category='label = "Adhésion"\ntag = true',
                         extra='[acknowledgement]\nlang = "fr"\n[privacy]\nretention_days_text = 30\n'),
                   encoding="utf-8")
    show = CliRunner().invoke(cli, ["config", "show", "--config", str(cfg)])
    assert show.exit_code == 0 and "Configuration valide." in show.output and "Attention" not in show.output
    run = CliRunner().invoke(cli, ["triage", "run", "--config", str(cfg)])
    assert run.exit_code == 0, run.output


def test_config_show_warns_about_state_a_run_needs(tmp_path: Path) -> None:
    """No model yet is not a configuration error (``train --from-mailbox`` needs the file), but it is said."""
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text(_toml(tmp_path / "not-trained-yet.skops", extra="[privacy]\nretention_action = \"shred\"\n"),
                   encoding="utf-8")
    show = CliRunner().invoke(cli, ["config", "show", "--config", str(cfg)])
    assert show.exit_code == 0, show.output
    warnings = [line for line in show.output.splitlines() if line.startswith("Attention : ")]
    assert len(warnings) == 2 and "not-trained-yet.skops" in warnings[0] and "retention_action" in warnings[1]
    run = CliRunner().invoke(cli, ["triage", "run", "--config", str(cfg)])
    assert run.exit_code == 78 and "not-trained-yet.skops" in _errors(run.output)[0]
