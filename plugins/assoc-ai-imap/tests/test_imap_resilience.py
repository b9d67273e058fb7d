"""Logins, TLS, XOAUTH2, server restarts and error messages, against real Dovecot servers."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from assoc_ai_imap import ImapConnector
from assoc_ai_imap.testing import DovecotServer
from imap_support import Mailbox, make_mail

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError, MissingSecretError, TransientError


def test_wrong_password_is_an_auth_error(private_dovecot: DovecotServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    user, password = private_dovecot.add_user()
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    conn = ImapConnector(private_dovecot.config(user, "pas-le-bon"))
    with pytest.raises(AuthError) as caught:
        conn.open()
    message = str(caught.value)
    assert "mot de passe" in message and "pas-le-bon" not in message
    assert caught.value.exit_code == 3 and caught.value.connector_id == "imap"
    assert isinstance(caught.value.__cause__, Exception)  # the imapclient error stays chained for developers
    conn.close()


def test_server_down_is_transient_then_reconnects(private_dovecot: DovecotServer) -> None:
    user, password = private_dovecot.add_user()
    box = Mailbox(private_dovecot, user, password)
    box.append(make_mail(1))
    conn = box.connector(retries=1, retry_wait=0.01)
    with conn:
        assert conn.list_folders() == ["INBOX"]
        private_dovecot.stop()
        with pytest.raises(TransientError) as caught:
            conn.list_folders()
        assert caught.value.exit_code == 75
        private_dovecot.start()
        assert conn.list_folders() == ["INBOX"]  # same object: it reconnected by itself
        assert len(list(conn.fetch_all("INBOX"))) == 1


def test_restart_during_a_read_is_retried_transparently(private_dovecot: DovecotServer) -> None:
    user, password = private_dovecot.add_user()
    box = Mailbox(private_dovecot, user, password)
    for i in range(6):
        box.append(make_mail(i))
    conn = box.connector(retries=6, retry_wait=0.2)
    with conn:
        pages = conn.fetch_new("INBOX", None, page_size=2)
        first = next(pages)
        private_dovecot.stop()
        with ThreadPoolExecutor(1) as pool:
            rest = pool.submit(lambda: list(pages))  # retries with back-off while the server is down
            private_dovecot.start()  # from this thread: Dovecot is tied to the thread that starts it
            remaining = rest.result(timeout=60)
    keys = [m.ref.key for page in [first, *remaining] for m in page.messages]
    assert len(keys) == 6 and len(set(keys)) == 6
    assert remaining[-1].cursor["uidvalidity"] == first.cursor["uidvalidity"]


def test_write_during_an_outage_raises_transient_and_succeeds_later(private_dovecot: DovecotServer) -> None:
    user, password = private_dovecot.add_user()
    box = Mailbox(private_dovecot, user, password)
    box.append(make_mail(1))
    conn = box.connector(retries=0)
    with conn:
        (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
        conn.ensure_folder("Presse")
        private_dovecot.stop()
        with pytest.raises(TransientError):
            conn.move(ref, "Presse")
        private_dovecot.start()
        moved = conn.move(ref, "Presse")
    assert moved.folder == "Presse" and len(box.contents("Presse")) == 1 and box.contents("INBOX") == []


def test_uidvalidity_change_after_a_server_restore(private_dovecot: DovecotServer) -> None:
    user, password = private_dovecot.add_user()
    box = Mailbox(private_dovecot, user, password)
    for i in range(3):
        box.append(make_mail(i))
    with box.connector() as conn:
        pages = list(conn.fetch_new("INBOX", None))
        cursor = pages[-1].cursor
        keys = {m.ref.key for p in pages for m in p.messages}
    private_dovecot.stop()
    new_value = private_dovecot.change_uidvalidity(user)
    private_dovecot.start()
    box.append(make_mail(3))
    with box.connector() as conn:
        replay = list(conn.fetch_new("INBOX", cursor))
    assert replay and all(p.resync for p in replay)
    assert replay[-1].cursor["uidvalidity"] == new_value != cursor["uidvalidity"]
    seen = [m.ref.key for p in replay for m in p.messages]
    assert len(seen) == 4 and set(seen) > keys
    fresh = [k for k in seen if k not in keys]  # what a host that skips known keys would process
    assert len(fresh) == 1


def test_tls_certificate_is_verified_by_default() -> None:
    with DovecotServer(tls=True) as server:
        user, password = server.add_user()
        strict = ImapConnector(server.config(user, password, tls="ssl", port=server.tls_port, retries=3))
        with pytest.raises(ConnectorError, match="(?i)certifica") as caught:
            strict.open()
        assert not isinstance(caught.value, TransientError)  # not retried: a wrong certificate stays wrong
        trusted = ImapConnector(server.config(user, password, tls="ssl", port=server.tls_port,
                                              ca_file=str(server.cert_file)))
        with trusted:
            assert trusted.list_folders() == ["INBOX"]
        upgraded = ImapConnector(server.config(user, password, tls="starttls", ca_file=str(server.cert_file)))
        with upgraded:
            assert upgraded.list_folders() == ["INBOX"]
        wrong_name = ImapConnector(server.config(user, password, host="localhost", tls="ssl", port=server.tls_port,
                                                 ca_file=str(server.cert_file)))
        with wrong_name:  # the certificate names localhost too
            assert wrong_name.list_folders() == ["INBOX"]


def test_starttls_refused_when_the_server_does_not_offer_it(mailbox: Mailbox) -> None:
    conn = mailbox.connector(tls="starttls")
    with pytest.raises(ConnectorError, match="STARTTLS"):
        conn.open()


class _UserInfo(http.server.BaseHTTPRequestHandler):
    """A token-introspection endpoint (OpenID 'userinfo'), as Dovecot's oauth2 passdb queries it."""

    tokens: dict[str, dict[str, object]] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        info = self.tokens.get(token)
        body = json.dumps(info or {"error": "invalid_token"}).encode()
        self.send_response(200 if info else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def oauth2_server() -> Iterator[tuple[DovecotServer, dict[str, dict[str, object]]]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _UserInfo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    tokens: dict[str, dict[str, object]] = {}
    _UserInfo.tokens = tokens
    server = DovecotServer(oauth2_url=f"http://127.0.0.1:{httpd.server_address[1]}/userinfo")
    try:
        server.start()
        yield server, tokens
    finally:
        server.cleanup()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_xoauth2_login(oauth2_server) -> None:
    server, tokens = oauth2_server
    user, _ = server.add_user()
    tokens["jeton-valide"] = {"email": user, "active": True}
    tokens["jeton-revoque"] = {"email": user, "active": False}
    conn = ImapConnector(server.config(user, password=None, oauth2_token="jeton-valide"))
    with conn:
        assert conn.list_folders() == ["INBOX"]
    bearer = ImapConnector(server.config(user, password=None, oauth2_token="jeton-valide",
                                         oauth2_mechanism="OAUTHBEARER"))
    with bearer:
        assert bearer.list_folders() == ["INBOX"]
    revoked = ImapConnector(server.config(user, password=None, oauth2_token="jeton-revoque", retries=0))
    with pytest.raises(AuthError, match="OAuth2"):
        revoked.open()
    unknown = ImapConnector(server.config(user, password=None, oauth2_token="jeton-inconnu", retries=0))
    with pytest.raises(TransientError, match=r"UNAVAILABLE"):  # the identity provider said 401: Dovecot says "try later"
        unknown.open()


def test_xoauth2_token_from_another_plugin(oauth2_server, monkeypatch: pytest.MonkeyPatch) -> None:
    from assoc_ai_core.ext import plugins
    from assoc_ai_core.ext.hookspecs import hookimpl
    from assoc_ai_core.ext.plugins import load_plugins

    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "assoc-ai-imap")  # only this plugin and the test's provider
    plugins.reset_for_tests()

    server, tokens = oauth2_server
    user, _ = server.add_user()
    tokens["jeton-du-plugin"] = {"email": user, "active": True}
    asked: list[tuple[str, str]] = []

    class TokenProvider:
        @hookimpl
        def resolve_secret(self, connector_id: str, field: str) -> str | None:
            asked.append((connector_id, field))
            return "jeton-du-plugin" if (connector_id, field) == ("imap", "oauth2_token") else None

    pm = load_plugins()
    provider = TokenProvider()
    pm.register(provider, name="test-token-provider")
    try:
        with ImapConnector(server.config(user, password=None)) as conn:
            assert conn.list_folders() == ["INBOX"]
    finally:
        pm.unregister(provider)
        plugins.reset_for_tests()
    assert ("imap", "oauth2_token") in asked


def test_a_configured_password_is_used_without_asking_plugins(mailbox: Mailbox,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from assoc_ai_core.ext import plugins
    from assoc_ai_core.ext.hookspecs import hookimpl

    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "assoc-ai-imap")
    plugins.reset_for_tests()
    asked: list[tuple[str, str]] = []

    class Provider:
        @hookimpl
        def resolve_secret(self, connector_id: str, field: str) -> str | None:
            asked.append((connector_id, field))
            return "not-the-password"

    provider = Provider()
    plugins.load_plugins().register(provider, name="test-provider")
    try:
        with mailbox.connector() as conn:
            assert conn.list_folders() == ["INBOX"]
    finally:
        plugins.pm.unregister(provider)
        plugins.reset_for_tests()
    assert asked == []


def test_no_secret_anywhere_is_a_clear_error(mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from assoc_ai_core.ext import plugins

    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "")  # no installed plugin may answer for the secret
    plugins.reset_for_tests()
    try:
        conn = ImapConnector(mailbox.server.config(mailbox.user, password=None))
        with pytest.raises(MissingSecretError, match="password"):
            conn.open()
    finally:
        plugins.reset_for_tests()


def test_namespace_with_prefix_and_dot_separator() -> None:
    with DovecotServer(separator=".", prefix="INBOX.") as server:
        user, password = server.add_user()
        box = Mailbox(server, user, password)
        box.append(make_mail(1))
        with box.connector() as conn:
            assert conn.names.separator == "." and conn.names.prefix == "INBOX."
            assert conn.server_name("IA/Adhésion") == "INBOX.IA.Adhésion"
            conn.ensure_folder("IA/Adhésion")
            assert "IA/Adhésion" in conn.list_folders()
            (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
            moved = conn.move(ref, "IA/Adhésion")
            assert moved.folder == "IA/Adhésion"
            assert conn.locate([ref])[ref.key] == [moved]
        with server.client(user, password) as other:
            assert "INBOX.IA.Adhésion" in {name for _, _, name in other.list_folders()}


@pytest.mark.parametrize("overrides, key", [
    ({"tls": "none", "host": "imap.example.org"}, "tls"),
    ({"verify_tls": False, "host": "imap.example.org", "tls": "ssl"}, "verify_tls"),
    ({"tls": "plaintext"}, "tls"),
    ({"port": 70000}, "port"),
    ({"timeout": 0}, "timeout"),
    ({"oauth2_token": "x"}, "password"),
    ({"oauth2_mechanism": "PLAIN"}, "oauth2_mechanism"),
    ({"ca_file": "/nowhere/ca.pem"}, "ca_file"),
    ({"host": " "}, "host"),
])
def test_unsafe_or_wrong_settings_are_refused(overrides: dict, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from assoc_ai_imap import ImapConfig

    values = {"host": "127.0.0.1", "username": "info@asso.test", "password": "secret", "tls": "none"}
    values.update(overrides)
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    with pytest.raises(ConfigError, match=rf"IMAP setting '{key}': "):
        ImapConfig(**values)
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    with pytest.raises(ConfigError, match=rf"Réglage IMAP « {key} » : "):
        ImapConfig(**values)
