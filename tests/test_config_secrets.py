"""Configuration of the triage job: checks, clear errors, secrets that never show."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.main import cli
from assoc_ai_core.cli.triage import add_commands
from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.errors import ConfigError, MissingSecretError
from assoc_ai_core.ext.config import Secret, build_config, is_secret_ref, redact
from assoc_ai_core.jobs.triage import TriageSettings
from assoc_ai_core.testing.mailbox import kit_messages, kit_model
from assoc_ai_core.testing.smtp import SmtpSink

add_commands(cli)
SECRET = "Tr3s-s3cret-SMTP-value"
BASE = """
[mailbox]
connector = "local"
path = "Maildir"
create = true

[triage]
first_run = "all"
state = "state.sqlite"
"""


def _write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_unknown_key_in_a_section_is_refused(tmp_path: Path) -> None:
    assert TriageSettings.load(_write(tmp_path, BASE)).folders == ("INBOX",)
    typo = BASE.replace('state = "state.sqlite"', 'state = "state.sqlite"\nfolderz = ["INBOX"]')
    with pytest.raises(ConfigError, match="inconnue") as err:
        TriageSettings.load(_write(tmp_path, typo))
    assert "folderz" in str(err.value) and "folders" in str(err.value)


@pytest.mark.parametrize("snippet, fragment", [
    ('\n[categories.A]\nfolder = "INBOX"\n', "surveillé"),
    ('\n[categories.A]\nfolder = "X"\n[categories.B]\nfolder = "X"\n', "même dossier"),
    ('\n[categories.A]\nforward = "pas-une-adresse"\n', "forward"),
    ('\n[categories.A]\ntag = 3\n', "tag"),
    ('\n[model]\ntarget_precision = 1.5\n', "target_precision"),
    ('\n[categories.A]\ncolour = "red"\n', "colour"),
])
def test_bad_values_are_explained(tmp_path: Path, snippet: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        TriageSettings.load(_write(tmp_path, BASE + snippet))


def test_review_folder_cannot_be_watched_and_connector_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="boucle"):
        TriageSettings.load(_write(tmp_path, BASE.replace('state = "state.sqlite"',
                                                           'state = "s"\nreview_folder = "INBOX"')))
    with pytest.raises(ConfigError, match="connector"):
        TriageSettings.load(_write(tmp_path, "[triage]\nstate = 's'\n"))


def test_errors_speak_english_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    with pytest.raises(ConfigError, match="must be between"):
        TriageSettings.load(_write(tmp_path, BASE + "\n[model]\ntarget_precision = 2\n"))


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = TriageSettings.load(_write(tmp_path, BASE + '\n[model]\npath = "m/model.skops"\n'))
    assert settings.state_path == tmp_path / "state.sqlite"
    assert settings.model_path == tmp_path / "m" / "model.skops"
    assert settings.models_dir == tmp_path / "models" and settings.key_file == tmp_path / "state.key"
    tags = TriageSettings.load(_write(tmp_path, BASE + '\n[categories."Adhésion"]\ntag = true\n', "t.toml"))
    assert tags.categories["Adhésion"].tag == "[#Adhésion]"


def test_config_show_hides_secrets_and_checks(tmp_path: Path) -> None:
    cfg = _write(tmp_path, BASE + f"""
[smtp]
host = "smtp.asso.example"
username = "tri@asso.example"
password = "{SECRET}"

[privacy]
store_raw_sender = false
""")
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    shown = json.loads(result.output.split("\nConfiguration valide.")[0])
    assert shown["smtp"]["password"] == "***" and shown["smtp"]["host"] == "smtp.asso.example"
    ref = _write(tmp_path, BASE + '\n[smtp]\nhost = "h"\npassword = { env = "SMTP_PW" }\n', "r.toml")
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(ref)])
    assert json.loads(result.output.split("\nConfiguration valide.")[0])["smtp"]["password"] == {"env": "SMTP_PW"}
    bad = _write(tmp_path, BASE + "\n[triage]\n", "bad.toml")
    assert CliRunner().invoke(cli, ["config", "show", "--config", str(bad)]).exit_code == 78  # EX_CONFIG


def test_config_show_masks_misspelt_and_numeric_secrets_and_refuses_the_unknown_key(tmp_path: Path) -> None:
    cfg = _write(tmp_path, BASE.replace('create = true', 'create = true\npasswrd = "hunter2-Tr3s"\npin = 482913'))
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(cfg), "--lang", "en"])
    assert "hunter2-Tr3s" not in result.output and "482913" not in result.output
    assert result.exit_code == 78 and "passwrd" in result.output  # unknown keys are errors, named


def test_missing_config_file_is_exit_78(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["triage", "run", "--config", str(tmp_path / "absent.toml")])
    assert result.exit_code == 78 and "introuvable" in result.output


def test_missing_secret_names_the_variable_and_exits_78(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assoc_ai_core.persistence import save_model

    monkeypatch.delenv("ASSOC_AI_TEST_SMTP_PW", raising=False)
    model = save_model(kit_model(), tmp_path / "m.skops")
    cfg = _write(tmp_path, BASE + f"""
[model]
path = "{model}"
[categories."Adhésion"]
forward = "tresorier@asso.example"
[smtp]
host = "127.0.0.1"
username = "tri@asso.example"
password = {{ env = "ASSOC_AI_TEST_SMTP_PW" }}
""")
    result = CliRunner().invoke(cli, ["triage", "run", "--config", str(cfg)])
    assert result.exit_code == 78
    assert "ASSOC_AI_TEST_SMTP_PW" in result.output


@pytest.fixture
def auth_server():
    with SmtpSink(login="tri@asso.example", password=SECRET) as sink:
        yield sink.port, sink.envelopes


@pytest.mark.parametrize("password_ok", [True, False])
def test_secret_never_reaches_logs_or_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog, capsys,
                                             auth_server, password_ok: bool) -> None:
    from assoc_ai_core.persistence import save_model

    port, received = auth_server
    monkeypatch.setenv("ASSOC_AI_TEST_SMTP_PW", SECRET if password_ok else SECRET + "-wrong")
    caplog.set_level(logging.DEBUG)
    model = save_model(kit_model(), tmp_path / "m.skops")
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    for raw, _ in kit_messages(2, seed=9):
        conn.deliver(raw)
    cfg = _write(tmp_path, BASE.replace('state = "state.sqlite"\n', 'state = "state.sqlite"\nforward_max_age_days = 0\n') + f"""
[model]
path = "{model}"
[categories."Adhésion"]
folder = "IA/Adhésion"
forward = "tresorier@asso.example"
[categories."Événement"]
folder = "IA/Événement"
[smtp]
host = "127.0.0.1"
port = {port}
starttls = false
username = "tri@asso.example"
password = {{ env = "ASSOC_AI_TEST_SMTP_PW" }}
""")
    result = CliRunner().invoke(cli, ["-vv", "triage", "run", "--config", str(cfg), "--json"])
    outputs = result.output + capsys.readouterr().err + caplog.text
    for leaked in (SECRET, base64.b64encode(SECRET.encode()).decode(),
                   base64.b64encode(f"\0tri@asso.example\0{SECRET}".encode()).decode()):
        assert leaked not in outputs
    if password_ok:
        assert result.exit_code == 0 and received
    else:
        assert result.exit_code == 3 and "identification" in result.output and not received
    audit = CliRunner().invoke(cli, ["audit", "--config", str(cfg), "--format", "json"])
    assert SECRET not in audit.output


def test_plugins_and_connectors_commands_list_the_local_connector() -> None:
    plugins = json.loads(CliRunner().invoke(cli, ["plugins"]).output)
    local = [p for p in plugins if p["name"] == "assoc_ai_core.default_plugins.local_mail"]
    assert local and local[0]["connectors"][0]["id"] == "local" and "register_connectors" in local[0]["hooks"]
    connectors = json.loads(CliRunner().invoke(cli, ["connectors"]).output)
    entry = next(c for c in connectors if c["id"] == "local")
    assert {"read", "move", "label", "tag_subject", "create_folder", "watch"} == set(entry["capabilities"])
    assert [f["name"] for f in entry["config"]] == ["path", "create", "poll_interval"]
    assert entry["config"][0]["required"] is True and not any(f["secret"] for f in entry["config"])


@dataclasses.dataclass(frozen=True)
class _SecretConfig:
    password: Secret
    api_key: Secret | None = None


def test_secret_references_are_read_from_env_and_file_without_plugins(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSOC_AI_TEST_PW", SECRET)
    (tmp_path / "key").write_text("from-file\n", encoding="utf-8")
    config = build_config(_SecretConfig, {"password": {"$env": "ASSOC_AI_TEST_PW"},
                                          "api_key": {"file": str(tmp_path / "key")}}, where="smtp")
    assert config.password == Secret(SECRET) and config.api_key == Secret("from-file")
    assert SECRET not in repr(config) and build_config(_SecretConfig, {"password": "lit"}, where="s").api_key is None
    monkeypatch.delenv("ASSOC_AI_TEST_PW")
    with pytest.raises(MissingSecretError, match="ASSOC_AI_TEST_PW"):
        build_config(_SecretConfig, {"password": {"env": "ASSOC_AI_TEST_PW"}}, where="smtp")
    with pytest.raises(MissingSecretError, match=str(tmp_path / "absent")):
        build_config(_SecretConfig, {"password": {"file": str(tmp_path / "absent")}}, where="smtp")


def test_a_plugin_reference_needs_the_plugins_as_secret_source() -> None:
    section = {"password": {"plugin": "keyring"}}
    assert is_secret_ref(section["password"]) and redact(section) == section  # shown: it names no secret
    with pytest.raises(MissingSecretError, match="keyring"):
        build_config(_SecretConfig, section, where="smtp")
    asked: list[tuple[str, str]] = []

    def source(connector_id: str, field: str) -> Secret | None:
        asked.append((connector_id, field))
        return Secret("from-source")

    assert build_config(_SecretConfig, section, where="smtp", secrets=source).password == Secret("from-source")
    assert build_config(_SecretConfig, {"connector": "imap"}, where="mailbox", secrets=source).api_key is None
    assert asked == [("smtp", "password"), ("imap", "password")]  # the connector id, else the section name
