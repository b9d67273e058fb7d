"""The shipped example configuration and the admin guide stay true to the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from assoc_ai_gmail.cli import auth
from assoc_ai_gmail.connector import GmailConfig, GmailConnector

from assoc_ai_core.jobs.triage import TriageSettings, build_connector

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "gmail_triage.toml"
GUIDE = REPO / "docs" / "gmail.md"
README = Path(__file__).resolve().parents[1] / "README.md"


def test_example_configuration_builds_a_gmail_connector(tmp_path: Path, token_json: str) -> None:
    token = tmp_path / "gmail-token.json"
    token.write_text(token_json)
    text = EXAMPLE.read_text(encoding="utf-8").replace("/var/lib/assoc-ai/gmail-token.json", str(token))
    data = tomllib.loads(text)
    settings = TriageSettings.from_mapping(data, base_dir=tmp_path)
    assert settings.connector == "gmail" and settings.folders == ("INBOX",)
    assert all(c.tag is None for c in settings.categories.values()), "Gmail cannot tag subjects"
    conn = build_connector(settings)
    assert isinstance(conn, GmailConnector) and isinstance(conn.config, GmailConfig)
    assert conn.config.token is not None and conn.config.token.get() == token_json


def test_documented_auth_options_exist() -> None:
    options = {opt for p in auth.params for opt in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    for path in (GUIDE, README, EXAMPLE):
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if "assoc-ai gmail auth" in line:
                for opt in re.findall(r"(--[a-z][a-z-]+)", line.split("assoc-ai gmail auth", 1)[1]):
                    assert opt in options, f"{path.name}: {opt} is not an option of `assoc-ai gmail auth`"


def test_guide_is_french_first_then_english_and_names_the_scope() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert text.index("Ce que fait assoc-ai dans Gmail") < text.index("## English")
    assert text.count("https://www.googleapis.com/auth/gmail.modify") >= 4
    for must in ("Gmail ne permet pas de modifier un message reçu", "Gmail cannot edit a received message",
                 "SuccessExitStatus=75", "OnUnitActiveSec", "crontab", "--console"):
        assert must in text, must
