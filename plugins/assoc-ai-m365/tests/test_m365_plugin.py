"""The plugin as a user meets it: entry point, configuration file, ``assoc-ai m365`` commands."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path

import pytest
from assoc_ai_m365 import M365Config, M365Connector
from click.testing import CliRunner
from m365_fakeserver import TENANT, FakeM365
from m365_support import APP_ID, APP_SECRET, MAILBOX, mail

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.config import Secret, build_config, load_config


def test_entry_point_registers_the_connector_and_its_command() -> None:
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="assoc_ai")}
    assert eps.get("m365") == "assoc_ai_m365"
    from assoc_ai_core.ext.plugins import connector_registry, describe_connector

    cls = connector_registry().get("m365")
    assert cls is M365Connector
    described = describe_connector(cls)
    fields = {f["name"]: f for f in described["config"]}
    assert fields["client_secret"]["secret"] and not fields["client_secret"]["required"]
    assert fields["mailbox"]["required"] and fields["tenant"]["required"]
    assert "tag_subject" not in described["capabilities"] and "forward" in described["capabilities"]


def _write_config(tmp_path: Path, fake: FakeM365, secret_ref: str = "ASSOC_AI_TEST_M365_SECRET") -> Path:
    path = tmp_path / "assoc_ai.toml"
    path.write_text(
        "[mailbox]\n"
        'connector = "m365"\n'
        f'mailbox = "{MAILBOX}"\n'
        f'client_id = "{APP_ID}"\n'
        f'tenant = "{TENANT}"\n'
        f'client_secret = {{ env = "{secret_ref}" }}\n'
        f'authority_host = "{fake.base}"\n'
        f'graph_url = "{fake.graph_url}"\n'
        f'ca_bundle = "{fake.ca_path}"\n'
        'category_colors = { "Adhésion" = "Green", "Presse" = "preset9" }\n'
        "\n[triage]\nfolders = [\"Inbox\"]\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def test_config_from_a_toml_file_resolves_the_secret_reference(fake: FakeM365, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSOC_AI_TEST_M365_SECRET", APP_SECRET)
    section = dict(load_config(_write_config(tmp_path, fake))["mailbox"])
    cfg = build_config(M365Config, section, where="mailbox")

    assert isinstance(cfg.client_secret, Secret) and cfg.client_secret.get() == APP_SECRET
    assert cfg.category_colors == {"Adhésion": "preset4", "Presse": "preset9"} and cfg.app_only
    assert APP_SECRET not in repr(cfg)
    fake.seen.clear()
    M365Connector(cfg)  # building does no I/O: open() does
    assert fake.seen == []


def test_cli_check_signs_in_and_lists_folders(fake: FakeM365, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assoc_ai_core.cli import main as core_cli

    monkeypatch.setenv("ASSOC_AI_TEST_M365_SECRET", APP_SECRET)
    fake.mailboxes[MAILBOX].folder_by_path("IA/Adhésion")
    core_cli._wire_optional_commands()  # what the assoc-ai script does before parsing

    result = CliRunner().invoke(core_cli.cli, ["m365", "check", "--config", str(_write_config(tmp_path, fake))])

    assert result.exit_code == 0, result.output
    assert f"Connected to {MAILBOX}" in result.output and "IA/Adhésion" in result.output


def test_cli_reports_a_refused_sign_in_with_exit_code_3(fake: FakeM365, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from assoc_ai_core.cli import main as core_cli

    monkeypatch.setenv("ASSOC_AI_TEST_M365_SECRET", "not-the-secret")
    core_cli._wire_optional_commands()
    result = CliRunner().invoke(core_cli.cli, ["m365", "check", "--config", str(_write_config(tmp_path, fake))])

    assert result.exit_code == 3
    assert "Check the client secret" in result.output and "not-the-secret" not in result.output


@pytest.mark.parametrize("overrides,message", [
    ({"client_secret": None}, "set client_secret .* or token_cache"),
    ({"graph_url": "http://graph.microsoft.com/v1.0"}, "graph_url must be an https:// address"),
    ({"authority_host": "login.microsoftonline.com"}, "authority_host must be an https:// address"),
    ({"mailbox": "me"}, "no signed-in user"),
    ({"tenant": " "}, "key 'tenant' is empty"),
    ({"category_colors": {"Adhésion": "fuchsia"}}, "unknown colour 'fuchsia'"),
    ({"max_retries": -1}, "max_retries must be an integer"),
])
def test_bad_settings_are_clear_config_errors(make_config: Callable[..., M365Config], overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(**overrides)


def test_bad_settings_are_explained_in_french_too(make_config: Callable[..., M365Config],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    with pytest.raises(ConfigError, match="indiquez client_secret .* ou token_cache"):
        make_config(client_secret=None)


def test_unknown_config_key_is_refused_by_the_core(fake: FakeM365) -> None:
    with pytest.raises(ConfigError, match="unknown key.*folder_name"):
        build_config(M365Config, {"mailbox": MAILBOX, "client_id": APP_ID, "tenant": TENANT,
                                  "client_secret": "x", "folder_name": "Inbox"}, where="mailbox")


def test_folder_names_come_back_spelt_like_the_configuration(connector: M365Connector, fake: FakeM365) -> None:
    box = fake.mailboxes[MAILBOX]
    box.deliver(mail(1))
    page = next(iter(connector.fetch_new("INBOX", None)))
    ref = page.messages[0].ref
    assert ref.folder == "INBOX"  # what [triage] folders says, not "Inbox"

    moved = connector.move(ref, "ia/adhésion")
    assert moved.folder == "ia/adhésion"
    assert connector.locate([ref])[ref.key][0].folder == "ia/adhésion"
    assert "IA" not in connector.list_folders() and "ia/adhésion" in connector.list_folders()


def test_the_shipped_example_configuration_is_valid() -> None:
    from assoc_ai_core.jobs.triage import TriageSettings

    example = Path(__file__).resolve().parents[3] / "examples" / "m365_triage.toml"
    settings = TriageSettings.from_mapping(load_config(example), base_dir=example.parent)
    assert settings.connector == "m365" and settings.folders == ("Inbox",)
    section = dict(settings.mailbox)
    assert section["client_secret"] == {"file": "/etc/assoc-ai/m365-secret"}  # a reference, never a value
    cfg = build_config(M365Config, {**section, "client_secret": "resolved-elsewhere"}, where="mailbox")
    assert cfg.category_colors["Adhésion"] == "preset4"
    assert not any(c.tag for c in settings.categories.values())  # tag is not possible on Microsoft 365


def test_folder_spelling_survives_a_reconnect(connector: M365Connector, fake: FakeM365) -> None:
    box = fake.mailboxes[MAILBOX]
    box.deliver(mail(2))
    ref = next(iter(connector.fetch_new("INBOX", None))).messages[0].ref
    moved = connector.move(ref, "ia/adhésion")
    connector.close()  # the triage job reconnects after a transient error
    connector.open()
    assert connector.locate([moved])[ref.key][0].folder == "ia/adhésion"
