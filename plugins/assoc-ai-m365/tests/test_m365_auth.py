"""Signing in with the real msal: client credentials, device code, refresh, expiry and revocation."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import msal
import pytest
from assoc_ai_m365 import M365Config, M365Connector, register_commands
from assoc_ai_m365.auth import load_token_cache, save_token_cache
from click.testing import CliRunner
from m365_fakeserver import TENANT, FakeM365
from m365_support import MAILBOX, PUBLIC_APP_ID, VOLUNTEER, mail

from assoc_ai_core.errors import AuthError
from assoc_ai_core.ext.config import Secret


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def device_login(fake: FakeM365, cache: Path, *, mailbox: str = "me", approve_as: str = VOLUNTEER,
                 lang: str = "en", wait_for_person: bool = False) -> Any:
    """Run ``assoc-ai m365 auth`` through click while a 'person' approves the code on the fake.

    With ``wait_for_person`` the code is approved only after msal's first poll
    got ``authorization_pending`` (msal then waits the 1 s ``interval``).
    """
    group = click.Group("assoc-ai")
    register_commands(cli=group)

    def person() -> None:
        deadline = time.time() + 10
        while time.time() < deadline:
            codes = [dc["user_code"] for dc in list(fake.device_codes.values())]
            if codes and any(s.path.endswith("/token") for s in fake.seen):
                fake.approve_device_code(codes[0], approve_as)
                return
            time.sleep(0.02)

    if wait_for_person:
        fake.auto_approve_as = None
    else:
        fake.auto_approve_as = approve_as
    helper = threading.Thread(target=person, daemon=True)
    if wait_for_person:
        helper.start()
    result = CliRunner(env={"ASSOC_AI_LANG": lang}).invoke(group, [
        "m365", "auth", "--client-id", PUBLIC_APP_ID, "--tenant", TENANT, "--cache", str(cache),
        "--mailbox", mailbox, "--authority-host", fake.base, "--graph-url", fake.graph_url,
        "--ca-bundle", str(fake.ca_path), "--device",
    ])
    if wait_for_person:
        helper.join(timeout=10)
    return result


def test_client_credentials_reach_the_shared_mailbox(connector: M365Connector, fake: FakeM365) -> None:
    token_posts = [s for s in fake.seen if s.path.endswith("/oauth2/v2.0/token")]
    assert len(token_posts) == 1
    assert connector.list_folders()  # the token works on Graph
    assert all(s.headers["authorization"].startswith("Bearer ") for s in fake.graph_requests())


def test_wrong_client_secret_is_an_auth_error_in_both_languages(
    make_config: Callable[..., M365Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(client_secret=Secret("wrong"))
    with pytest.raises(AuthError, match="Check the client secret") as err:
        M365Connector(cfg).open()
    assert err.value.exit_code == 3 and "wrong" not in str(err.value)
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    with pytest.raises(AuthError, match="Vérifiez le secret client"):
        M365Connector(cfg).open()


def test_application_access_policy_blocks_other_mailboxes(make_config: Callable[..., M365Config]) -> None:
    with pytest.raises(AuthError, match="New-ApplicationAccessPolicy"):
        M365Connector(make_config(mailbox="tresorier@asso-patrimoine.fr")).open()


def test_unknown_tenant_is_an_auth_error(make_config: Callable[..., M365Config]) -> None:
    with pytest.raises(AuthError, match="tenant id"):
        M365Connector(make_config(tenant="nope.onmicrosoft.com")).open()


def test_expired_access_token_is_renewed_transparently(connector: M365Connector, box: Any, fake: FakeM365) -> None:
    box.deliver(mail(1))
    fake.expire_access_tokens()

    pages = list(connector.fetch_new("Inbox", None))

    assert len(pages[0].messages) == 1
    assert connector.stats["token_renewals"] == 1
    assert len([s for s in fake.seen if s.path.endswith("/oauth2/v2.0/token")]) == 2
    assert [s.status for s in fake.graph_requests(r"/delta$")] == [401, 200]


def test_device_code_sign_in_writes_a_private_cache_and_the_connector_uses_it(
    fake: FakeM365, tmp_path: Path, make_config: Callable[..., M365Config]
) -> None:
    cache = tmp_path / "secrets" / "m365-token.json"

    result = device_login(fake, cache, wait_for_person=True)

    assert result.exit_code == 0, result.output
    assert re.search(r"enter the code [A-Z0-9]{9}", result.output)
    assert f"Signed in: {VOLUNTEER}" in result.output and 'token_cache = "' in result.output
    assert mode_of(cache) == 0o600
    stored = json.loads(cache.read_text())
    assert stored["RefreshToken"] and stored["AccessToken"]
    device_posts = [s for s in fake.seen if s.path.endswith("/devicecode")]
    assert len(device_posts) == 1
    polls = [s for s in fake.seen if s.path.endswith("/token")]
    assert [s.status for s in polls] == [400, 200]  # "authorization_pending", then the token

    fake.mailboxes[VOLUNTEER].deliver(mail(1))
    cfg = make_config(mailbox="me", client_id=PUBLIC_APP_ID, client_secret=None, token_cache=str(cache))
    with M365Connector(cfg) as conn:
        pages = list(conn.fetch_new("Inbox", None))
    assert [m.ref.key for m in pages[0].messages] == ["1.adhesion@exemple.fr"]
    assert all(s.path.startswith("/v1.0/me/") for s in fake.graph_requests())


def test_delegated_access_to_a_shared_mailbox_asks_for_shared_scopes(
    fake: FakeM365, tmp_path: Path, make_config: Callable[..., M365Config]
) -> None:
    cache = tmp_path / "m365-token.json"
    assert device_login(fake, cache, mailbox=MAILBOX).exit_code == 0
    fake.mailboxes[MAILBOX].deliver(mail(2))
    cfg = make_config(client_id=PUBLIC_APP_ID, client_secret=None, token_cache=str(cache))
    with M365Connector(cfg) as conn:
        assert [m.ref.key for p in conn.fetch_new("Inbox", None) for m in p.messages] == ["2.adhesion@exemple.fr"]
    granted = next(t.scopes for t in fake.tokens.values() if t.kind == "user")
    assert any(s.endswith("/Mail.ReadWrite.Shared") for s in granted)


def test_delegated_refresh_rotates_the_cache_and_keeps_it_private(
    fake: FakeM365, tmp_path: Path, make_config: Callable[..., M365Config]
) -> None:
    cache = tmp_path / "m365-token.json"
    assert device_login(fake, cache).exit_code == 0
    before = json.loads(cache.read_text())["RefreshToken"]
    fake.expire_access_tokens()
    cfg = make_config(mailbox="me", client_id=PUBLIC_APP_ID, client_secret=None, token_cache=str(cache))

    with M365Connector(cfg) as conn:
        assert conn.list_folders()
        assert conn.stats["token_renewals"] == 1

    after = json.loads(cache.read_text())["RefreshToken"]
    assert [v["secret"] for v in after.values()] != [v["secret"] for v in before.values()]
    assert mode_of(cache) == 0o600


@pytest.mark.parametrize("lang,expected", [
    ("en", "expired or was revoked.*Sign in again with: assoc-ai m365 auth --client-id"),
    ("fr", "expiré ou a été révoquée.*Reconnectez-vous avec : assoc-ai m365 auth --client-id"),
])
def test_revoked_sign_in_says_what_to_run(
    fake: FakeM365, tmp_path: Path, make_config: Callable[..., M365Config], monkeypatch: pytest.MonkeyPatch,
    lang: str, expected: str
) -> None:
    cache = tmp_path / "m365-token.json"
    assert device_login(fake, cache).exit_code == 0
    fake.revoke_refresh_tokens()
    fake.expire_access_tokens()
    monkeypatch.setenv("ASSOC_AI_LANG", lang)
    cfg = make_config(mailbox="me", client_id=PUBLIC_APP_ID, client_secret=None, token_cache=str(cache))

    with pytest.raises(AuthError, match=expected) as err:
        with M365Connector(cfg) as conn:
            conn.list_folders()
    assert str(cache) in str(err.value) and err.value.exit_code == 3


def test_empty_cache_says_to_sign_in(tmp_path: Path, make_config: Callable[..., M365Config]) -> None:
    cfg = make_config(mailbox="me", client_id=PUBLIC_APP_ID, client_secret=None, token_cache=str(tmp_path / "none.json"))
    with pytest.raises(AuthError, match="No signed-in account.*assoc-ai m365 auth"):
        M365Connector(cfg).open()


def test_device_code_refused_when_public_flows_are_off(fake: FakeM365, tmp_path: Path) -> None:
    group = click.Group("assoc-ai")
    register_commands(cli=group)
    from m365_support import APP_ID

    result = CliRunner().invoke(group, [
        "m365", "auth", "--client-id", APP_ID, "--tenant", TENANT, "--cache", str(tmp_path / "c.json"),
        "--authority-host", fake.base, "--graph-url", fake.graph_url, "--ca-bundle", str(fake.ca_path), "--device",
    ])
    assert isinstance(result.exception, AuthError) and "Allow public client flows" in str(result.exception)
    assert not (tmp_path / "c.json").exists()


def test_token_cache_file_is_created_0600_and_loose_files_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    cache = msal.SerializableTokenCache()
    old_umask = os.umask(0o000)  # even with a permissive umask
    try:
        save_token_cache(cache, path)
    finally:
        os.umask(old_umask)
    assert mode_of(path) == 0o600
    os.chmod(path, 0o644)
    load_token_cache(path)
    assert mode_of(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]  # no temporary file left behind
