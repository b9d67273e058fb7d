"""The installed distribution: entry point, registration, configuration from a TOML file."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest
from assoc_ai_imap import ImapConfig, ImapConnector
from imap_support import Mailbox

from assoc_ai_core.errors import ConfigError, MissingSecretError
from assoc_ai_core.ext import plugins
from assoc_ai_core.ext.config import Secret, build_config, load_config, redact
from assoc_ai_core.ext.connectors import Capability

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "imap_triage.toml"


@pytest.fixture
def only_imap_plugin(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "assoc-ai-imap")
    monkeypatch.setenv("ASSOC_AI_STRICT_PLUGINS", "1")
    plugins.reset_for_tests()
    yield
    plugins.reset_for_tests()


def test_distribution_declares_the_entry_point_and_keyword() -> None:
    dist = importlib.metadata.distribution("assoc-ai-imap")
    eps = [ep for ep in dist.entry_points if ep.group == "assoc_ai"]
    assert [(ep.name, ep.value) for ep in eps] == [("imap", "assoc_ai_imap")]
    assert "assoc-ai-plugin" in (dist.metadata["Keywords"] or "")
    requires = " ".join(dist.requires or [])
    assert "assoc-ai-core" in requires and "imapclient" in requires


def test_plugin_registers_the_connector(only_imap_plugin) -> None:
    registry = plugins.connector_registry()
    assert registry.get("imap") is ImapConnector
    assert registry.origin("imap") == "assoc-ai-imap"
    info = [p for p in plugins.get_plugins() if p.name == "imap"]
    assert info and info[0].distribution == "assoc-ai-imap" and not info[0].error
    described = info[0].connectors[0]
    assert described["kind"] == "mailbox" and "tag_subject" in described["capabilities"]
    secrets = {c["name"] for c in described["config"] if c["secret"]}
    assert secrets == {"password", "oauth2_token"}


def test_config_from_toml_with_secret_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 mailbox: Mailbox) -> None:
    token_file = tmp_path / "imap-password"
    token_file.write_text(mailbox.password + "\n")
    config_file = tmp_path / "job.toml"
    config_file.write_text(
        "[connectors.imap]\n"
        f'host = "127.0.0.1"\nport = {mailbox.server.port}\nusername = "{mailbox.user}"\n'
        f'password = {{ file = "{token_file}" }}\ntls = "none"\nlocate_folders = ["INBOX", "IA/Adhésion"]\n'
    )
    os.chmod(config_file, 0o600)
    section = load_config(config_file)["connectors"]["imap"]
    config = build_config(ImapConfig, section, where="connectors.imap")
    assert isinstance(config.password, Secret) and config.locate_folders == ("INBOX", "IA/Adhésion")
    assert mailbox.password not in repr(config) and redact({"password": config.password}) == {"password": "***"}
    with ImapConnector(config) as conn:
        assert Capability.MOVE in conn.capabilities
        assert conn.list_folders() == ["INBOX"]

    monkeypatch.delenv("IMAP_PASSWORD_MISSING", raising=False)
    with pytest.raises(MissingSecretError, match="IMAP_PASSWORD_MISSING"):
        build_config(ImapConfig, {**section, "password": {"env": "IMAP_PASSWORD_MISSING"}}, where="connectors.imap")
    with pytest.raises(ConfigError, match="hots"):
        build_config(ImapConfig, {**section, "hots": "x"}, where="connectors.imap")


def test_example_configuration_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_config(EXAMPLE)
    monkeypatch.setenv("ASSOC_AI_IMAP_PASSWORD", "exemple")
    config = build_config(ImapConfig, {k: v for k, v in data["mailbox"].items() if k != "connector"},
                          where="mailbox")
    assert data["mailbox"]["connector"] == "imap"
    assert config.tls in ("ssl", "starttls") and config.verify_tls
    assert config.password is not None and config.password.get() == "exemple"
    from assoc_ai_core.jobs.triage import TriageSettings

    settings = TriageSettings.load(EXAMPLE)  # what `assoc-ai triage run --config` reads
    assert settings.connector == "imap" and settings.review_folder == "À vérifier"
    assert {c.folder for c in settings.categories.values()} >= {"IA/Adhésion", "IA/Presse"}
