"""``assoc-ai gmail auth`` end to end: the real command, google-auth-oauthlib's flows, the loopback OAuth server."""

from __future__ import annotations

import json
import os
import queue
import secrets
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from assoc_ai_gmail.cli import CONSOLE_REDIRECT_URI, extract_code, gmail
from assoc_ai_gmail.connector import GmailConfig, GmailConnector
from click.testing import CliRunner

from assoc_ai_core.errors import AuthError, ConfigError
from assoc_ai_core.ext.config import Secret, build_config

ASSOC_AI = Path(sys.executable).with_name("assoc-ai")


@pytest.fixture
def client_secrets(tmp_path: Path, fake_gmail, oauth_client) -> Path:
    """The JSON a Cloud console 'Desktop app' OAuth client download contains, pointed at the loopback server."""
    client_id, secret = oauth_client
    path = tmp_path / "client_secret.json"
    path.write_text(json.dumps({"installed": {
        "client_id": client_id, "client_secret": secret, "project_id": "asso-test",
        "auth_uri": fake_gmail.auth_uri, "token_uri": fake_gmail.token_uri,
        "redirect_uris": ["http://localhost"],
    }}))
    return path


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def consent_in_browser(auth_url: str) -> str:
    """What the volunteer's browser does: open Google's page, click Allow; returns where Google redirects."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(auth_url)
    except urllib.error.HTTPError as redirect:
        assert redirect.code == 302
        return redirect.headers["Location"]
    raise AssertionError("the authorisation page did not redirect")


class Command:
    """The installed ``assoc-ai`` script run as a user would, with its output read line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([str(ASSOC_AI), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, marker: str, timeout: float = 60) -> str:
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError("command ended early:\n" + "".join(self.seen))
            self.seen.append(line)
            if marker in line:
                return line.strip()

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                break
            self.seen.append(line)
        return code, "".join(self.seen)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def run_command(tmp_path: Path) -> Iterator:
    started: list[Command] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ASSOC_AI_LANG": "en", "OAUTHLIB_INSECURE_TRANSPORT": "1",
           "ASSOC_AI_HOME": str(tmp_path / "home"), "ASSOC_AI_LOAD_PLUGINS": "assoc-ai-gmail"}

    def start(*args: str) -> Command:
        cmd = Command(list(args), env)
        started.append(cmd)
        return cmd

    yield start
    for cmd in started:
        cmd.kill()


def _token_file_ok(path: Path, fake_gmail) -> dict:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = json.loads(path.read_text())
    assert info["refresh_token"] in fake_gmail.refresh_tokens
    assert info["scopes"] == ["https://www.googleapis.com/auth/gmail.modify"]
    return info


def test_console_flow_for_headless_servers(run_command, client_secrets: Path, fake_gmail, tmp_path: Path) -> None:
    token = tmp_path / "state" / "gmail-token.json"
    cmd = run_command("gmail", "auth", "--client-secrets", str(client_secrets), "--token", str(token),
                      "--console", "--api-endpoint", fake_gmail.url)
    auth_url = cmd.wait_for(fake_gmail.auth_uri)
    assert "scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fgmail.modify" in auth_url
    assert "access_type=offline" in auth_url and "code_challenge_method=S256" in auth_url
    landed = consent_in_browser(auth_url)
    assert landed.startswith(CONSOLE_REDIRECT_URI)  # nothing listens there: the volunteer copies the address
    assert cmd.proc.stdin is not None
    cmd.proc.stdin.write(landed + "\n")
    cmd.proc.stdin.flush()
    code, output = cmd.finish()
    assert code == 0, output
    info = _token_file_ok(token, fake_gmail)
    assert "Connection checked: mailbox info@asso.example" in output
    assert f'token = {{ file = "{token}" }}' in output
    assert info["refresh_token"] not in output  # the secret is never printed
    # the stored file works as the connector's secret reference
    cfg = build_config(GmailConfig, {"token": {"file": str(token)}, "api_endpoint": fake_gmail.url,
                                     "auth_endpoint": fake_gmail.token_uri}, where="connectors.gmail")
    with GmailConnector(cfg) as conn:
        assert conn.email_address == "info@asso.example"


def test_browser_flow_with_local_redirect_server(run_command, client_secrets: Path, fake_gmail, tmp_path: Path) -> None:
    token = tmp_path / "gmail-token.json"
    token.write_text("old")
    os.chmod(token, 0o644)  # an old token readable by others gets replaced by a private one
    cmd = run_command("gmail", "auth", "--client-secrets", str(client_secrets), "--token", str(token),
                      "--no-browser", "--timeout", "60", "--no-check")
    auth_url = cmd.wait_for(fake_gmail.auth_uri)
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A" in auth_url
    landed = consent_in_browser(auth_url)
    with urllib.request.urlopen(landed, timeout=30) as page:  # the browser follows to the local server
        assert "authorised" in page.read().decode()
    code, output = cmd.finish()
    assert code == 0, output
    _token_file_ok(token, fake_gmail)


def test_consent_refused_is_a_clear_error(run_command, client_secrets: Path, fake_gmail, tmp_path: Path) -> None:
    fake_gmail.deny_consent = True
    token = tmp_path / "t.json"
    cmd = run_command("gmail", "auth", "--client-secrets", str(client_secrets), "--token", str(token), "--console")
    landed = consent_in_browser(cmd.wait_for(fake_gmail.auth_uri))
    assert cmd.proc.stdin is not None
    cmd.proc.stdin.write(landed + "\n")
    cmd.proc.stdin.flush()
    code, output = cmd.finish()
    assert code == AuthError.exit_code
    assert "access_denied" in output and "access was not granted" in output
    assert not token.exists()


class _MemoryKeyring:
    """Stands in for the desktop's secret service (the keyring library's own backend API)."""

    def __init__(self) -> None:
        import keyring.backend

        class Backend(keyring.backend.KeyringBackend):
            priority = 1  # type: ignore[assignment]
            store: dict[tuple[str, str], str] = {}

            def get_password(self, service: str, username: str) -> str | None:
                return self.store.get((service, username))

            def set_password(self, service: str, username: str, password: str) -> None:
                self.store[(service, username)] = password

            def delete_password(self, service: str, username: str) -> None:
                self.store.pop((service, username), None)

        self.backend = Backend()


@pytest.fixture
def memory_keyring() -> Iterator:
    import keyring
    previous = keyring.get_keyring()
    mem = _MemoryKeyring().backend
    keyring.set_keyring(mem)
    try:
        yield mem
    finally:
        keyring.set_keyring(previous)


def test_keyring_storage_and_bare_code(client_secrets: Path, fake_gmail, oauth_client, memory_keyring,
                                       monkeypatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    code = "4/" + secrets.token_urlsafe(8)  # what Google shows when the user copies only the code
    fake_gmail.codes[code] = {"client_id": oauth_client[0], "redirect_uri": CONSOLE_REDIRECT_URI,
                              "scopes": ["https://www.googleapis.com/auth/gmail.modify"], "challenge": ""}
    result = CliRunner().invoke(gmail, ["auth", "--client-secrets", str(client_secrets), "--keyring", "info-asso",
                                        "--console", "--api-endpoint", fake_gmail.url], input=code + "\n")
    assert result.exit_code == 0, result.output
    stored = memory_keyring.store[("assoc-ai-gmail", "info-asso")]
    assert json.loads(stored)["refresh_token"] in fake_gmail.refresh_tokens
    assert 'token_keyring = "info-asso"' in result.output
    with GmailConnector(GmailConfig(token_keyring="info-asso", api_endpoint=fake_gmail.url,
                                    auth_endpoint=fake_gmail.token_uri)) as conn:
        assert conn.email_address == "info@asso.example"


def test_keyring_entry_missing_says_to_run_auth(memory_keyring) -> None:
    with pytest.raises(ConfigError, match="gmail auth"):
        GmailConnector(GmailConfig(token_keyring="absent")).open()


def test_reused_code_is_refused(client_secrets: Path, fake_gmail, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    result = CliRunner().invoke(gmail, ["auth", "--client-secrets", str(client_secrets), "--token",
                                        str(tmp_path / "t.json"), "--console"], input="4/already-used\n")
    assert isinstance(result.exception, AuthError)
    assert "invalid_grant" in str(result.exception)


def test_token_destination_is_required_once(client_secrets: Path, tmp_path: Path) -> None:
    for args in ([], ["--token", str(tmp_path / "a"), "--keyring", "x"]):
        result = CliRunner().invoke(gmail, ["auth", "--client-secrets", str(client_secrets), *args])
        assert isinstance(result.exception, ConfigError)


def test_client_secrets_problems_are_explained(tmp_path: Path) -> None:
    result = CliRunner().invoke(gmail, ["auth", "--client-secrets", str(tmp_path / "absent.json"),
                                        "--token", str(tmp_path / "t.json")])
    assert isinstance(result.exception, ConfigError) and "absent.json" in str(result.exception)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"type": "service_account"}))
    result = CliRunner().invoke(gmail, ["auth", "--client-secrets", str(wrong), "--token", str(tmp_path / "t.json")])
    assert isinstance(result.exception, ConfigError)
    assert "Desktop app" in str(result.exception) or "Application de bureau" in str(result.exception)


def test_extract_code_checks_state_and_errors() -> None:
    assert extract_code("  4/abc  ", "s1") == "4/abc"
    assert extract_code("http://127.0.0.1:1/?state=s1&code=4/xyz&scope=a", "s1") == "4/xyz"
    with pytest.raises(AuthError):
        extract_code("http://127.0.0.1:1/?state=other&code=4/xyz", "s1")
    with pytest.raises(AuthError, match="access_denied"):
        extract_code("http://127.0.0.1:1/?error=access_denied&state=s1", "s1")
    with pytest.raises(AuthError):
        extract_code("   ", "s1")


def test_plugin_command_is_registered_in_the_core_cli() -> None:
    import click
    from assoc_ai_gmail import register_commands

    group = click.Group("assoc-ai")
    register_commands(cli=group)
    assert "auth" in group.commands["gmail"].commands  # type: ignore[attr-defined]


def test_secret_token_file_survives_in_config_as_reference(tmp_path: Path, token_json: str) -> None:
    from assoc_ai_gmail.credentials import write_private_file

    path = write_private_file(tmp_path / "deep" / "dir" / "token.json", token_json)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    cfg = build_config(GmailConfig, {"token": {"file": str(path)}}, where="connectors.gmail")
    assert cfg.token == Secret(token_json)
    assert [p.name for p in path.parent.iterdir()] == ["token.json"]  # no temp file left behind
