"""Quotas, server errors and authorisation problems, injected by the loopback server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from assoc_ai_gmail.calls import retry_after_seconds
from assoc_ai_gmail.connector import GmailConfig, GmailConnector

from assoc_ai_core.errors import AuthError, ConnectorError, ForwardError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import MailRef

MESSAGES = r"GET /gmail/v1/users/me/messages$"


def test_429_waits_what_retry_after_asks(connector: GmailConnector, fake_gmail, mail, sleeps) -> None:
    fake_gmail.deliver(mail(1))
    fake_gmail.add_fault(MESSAGES, 429, headers={"Retry-After": "7"})
    assert len(list(connector.fetch_all("INBOX"))) == 1
    assert sleeps == [7.0]
    assert len(fake_gmail.calls(MESSAGES)) == 2


def test_retry_after_is_really_honoured_on_the_wall_clock(fake_gmail, token_json: str, mail) -> None:
    fake_gmail.deliver(mail(1))
    conn = GmailConnector(GmailConfig(token=Secret(token_json), api_endpoint=fake_gmail.url,
                                      auth_endpoint=fake_gmail.token_uri))  # real time.sleep
    try:
        conn.open()
        fake_gmail.add_fault(MESSAGES, 429, headers={"Retry-After": "1"})
        list(conn.fetch_all("INBOX"))
    finally:
        conn.close()
    first, second = fake_gmail.calls(MESSAGES)
    assert 1.0 <= second.at - first.at < 3.0


def test_retry_after_as_http_date() -> None:
    from googleapiclient.errors import HttpError
    from httplib2 import Response

    resp = Response({"status": 503, "retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"})
    err = HttpError(resp, b"{}", uri="http://x")
    now = 1445412500.0  # 10 s before that date
    assert retry_after_seconds(err, now=lambda: now) == pytest.approx(10.0)


def test_5xx_backs_off_exponentially_with_jitter(connector: GmailConnector, fake_gmail, mail, sleeps) -> None:
    fake_gmail.deliver(mail(1))
    fake_gmail.add_fault(MESSAGES, 503, times=3)
    assert len(list(connector.fetch_all("INBOX"))) == 1
    assert len(sleeps) == 3
    # initial 0.5 s: waits 0.5, 1, 2 (+ jitter up to 0.5)
    for wait, base in zip(sleeps, (0.5, 1.0, 2.0), strict=True):
        assert base <= wait <= base + 0.5


def test_403_rate_limit_is_retried_but_other_403_are_not(connector: GmailConnector, fake_gmail, mail, sleeps) -> None:
    fake_gmail.deliver(mail(1))
    fake_gmail.add_fault(MESSAGES, 403)  # userRateLimitExceeded
    assert len(list(connector.fetch_all("INBOX"))) == 1
    assert len(sleeps) == 1
    fake_gmail.add_fault(MESSAGES, 403, body={"error": {"code": 403, "message": "Gmail API has not been used",
                                                        "errors": [{"reason": "accessNotConfigured"}]}})
    with pytest.raises(ConnectorError, match="Gmail API|API Gmail"):
        list(connector.fetch_all("INBOX"))
    assert len(sleeps) == 1


def test_retries_are_bounded_then_transient_error(make_connector, fake_gmail, mail, sleeps) -> None:
    conn = make_connector(max_retries=3)
    fake_gmail.deliver(mail(1))
    conn.open()
    fake_gmail.add_fault(MESSAGES, 500, times=100)
    with pytest.raises(TransientError) as err:
        list(conn.fetch_all("INBOX"))
    assert err.value.exit_code == 75 and err.value.connector_id == "gmail"
    assert len(sleeps) == 3 and len(fake_gmail.calls(MESSAGES)) == 4
    assert "4" in str(err.value)


def test_retry_after_longer_than_allowed_gives_up_at_once(make_connector, fake_gmail, sleeps) -> None:
    conn = make_connector(backoff_max_seconds=10)
    conn.open()
    fake_gmail.add_fault(MESSAGES, 429, headers={"Retry-After": "3600"})
    with pytest.raises(TransientError):
        list(conn.fetch_all("INBOX"))
    assert sleeps == []


def test_bad_request_is_not_retried(connector: GmailConnector, fake_gmail, sleeps) -> None:
    connector.open()
    fake_gmail.add_fault(MESSAGES, 400)
    with pytest.raises(ConnectorError) as err:
        list(connector.fetch_all("INBOX"))
    assert not isinstance(err.value, TransientError) and sleeps == []


def test_expired_access_token_is_refreshed(connector: GmailConnector, fake_gmail, mail) -> None:
    fake_gmail.deliver(mail(1))
    connector.open()
    assert len(fake_gmail.calls(r"POST /token$")) == 1  # first access token
    fake_gmail.expire_access_tokens()
    assert len(list(connector.fetch_all("INBOX"))) == 1
    refreshes = fake_gmail.calls(r"POST /token$")
    assert len(refreshes) == 2
    assert "grant_type=refresh_token" in refreshes[-1].body.decode()


def test_revoked_grant_says_to_run_auth_again(connector: GmailConnector, fake_gmail, monkeypatch) -> None:
    fake_gmail.revoke_all_refresh_tokens()
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    with pytest.raises(AuthError) as err:
        connector.open()
    assert "assoc-ai gmail auth" in str(err.value) and "révoquée ou a expiré" in str(err.value)
    assert "invalid_grant" in str(err.value)
    assert err.value.exit_code == 3


def test_revoked_grant_mid_run_in_english(connector: GmailConnector, fake_gmail, mail, monkeypatch) -> None:
    fake_gmail.deliver(mail(1))
    connector.open()
    fake_gmail.revoke_all_refresh_tokens()  # also invalidates access tokens
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    with pytest.raises(AuthError, match=r"revoked or has expired.*Run `assoc-ai gmail auth"):
        list(connector.fetch_all("INBOX"))


def test_missing_scope_is_an_auth_error(connector: GmailConnector, fake_gmail) -> None:
    fake_gmail.add_fault(r"GET .*/profile$", 403, body={"error": {
        "code": 403, "message": "Request had insufficient authentication scopes.",
        "errors": [{"reason": "insufficientPermissions"}], "status": "PERMISSION_DENIED"}})
    with pytest.raises(AuthError, match="gmail.modify"):
        connector.open()


def test_network_down_is_transient(token_json: str, sleeps) -> None:
    conn = GmailConnector(GmailConfig(token=Secret(token_json), api_endpoint="http://127.0.0.1:9/",
                                      auth_endpoint="http://127.0.0.1:9/token", max_retries=2,
                                      backoff_initial_seconds=0.01), sleep=sleeps.append)
    with pytest.raises(TransientError):
        conn.open()
    assert len(sleeps) == 2
    conn.close()


def test_forward_is_retried_when_throttled_but_never_after_a_server_error(connector: GmailConnector, fake_gmail,
                                                                        mail, sleeps) -> None:
    raw = mail(1)
    ref = MailRef("INBOX", fake_gmail.deliver(raw), "demande-1@example.org")
    fake_gmail.add_fault(r"POST .*/messages/send$", 429, headers={"Retry-After": "2"})
    connector.forward(ref, raw, "bureau@asso.example")
    assert len(fake_gmail.sent) == 1 and sleeps == [2.0]
    fake_gmail.add_fault(r"POST .*/messages/send$", 502)
    with pytest.raises(ForwardError) as err:
        connector.forward(ref, raw, "bureau@asso.example")
    assert err.value.maybe_sent and err.value.connector_id == "gmail"
    assert len(fake_gmail.calls(r"POST .*/messages/send$")) == 3  # 429, ok, 502: no retry of the 502
    assert sleeps == [2.0]


# -- service account with domain-wide delegation --------------------------------------------------------


@pytest.fixture
def service_account_file(tmp_path: Path, fake_gmail) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    email_addr = "assoc-ai@asso-project.iam.gserviceaccount.com"
    fake_gmail.add_service_account(email_addr, public_pem, {"info@asso.example"})
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "asso-project", "private_key_id": "k1",
        "private_key": private_pem, "client_email": email_addr, "client_id": "1234567890",
        "token_uri": fake_gmail.token_uri,
    }))
    return path


def test_service_account_acts_as_subject(fake_gmail, service_account_file: Path, mail) -> None:
    fake_gmail.deliver(mail(1))
    cfg = GmailConfig(service_account_file=str(service_account_file), subject="info@asso.example",
                      api_endpoint=fake_gmail.url)
    with GmailConnector(cfg) as conn:
        assert conn.email_address == "info@asso.example"
        assert len(list(conn.fetch_all("INBOX"))) == 1
    (grant,) = fake_gmail.calls(r"POST /token$")
    assert "jwt-bearer" in grant.body.decode()
    token = next(iter(fake_gmail.access_tokens.values()))
    assert token["scopes"] == ["https://www.googleapis.com/auth/gmail.modify"]
    assert token["subject"] == "info@asso.example"


def test_service_account_without_delegation_explains_the_admin_console(fake_gmail, service_account_file: Path) -> None:
    cfg = GmailConfig(service_account_file=str(service_account_file), subject="autre@asso.example",
                      api_endpoint=fake_gmail.url)
    with pytest.raises(AuthError, match="(?i)delegation|délégation"):
        GmailConnector(cfg).open()


def test_service_account_needs_a_subject(service_account_file: Path) -> None:
    from assoc_ai_core.errors import ConfigError

    with pytest.raises(ConfigError, match="subject"):
        GmailConnector(GmailConfig(service_account_file=str(service_account_file))).open()


def test_no_message_content_in_logs(connector: GmailConnector, fake_gmail, mail, caplog) -> None:
    caplog.set_level("DEBUG")
    fake_gmail.deliver(mail(1, subject="Secret médical", body="Mon diagnostic confidentiel"))
    fake_gmail.add_fault(MESSAGES, 429, headers={"Retry-After": "1"})
    ids = list(fake_gmail.messages)
    fake_gmail.after(MESSAGES, lambda: fake_gmail.delete(ids[0]))
    list(connector.fetch_new("INBOX", None))
    text = caplog.text
    assert "Retry" in text or "retry" in text
    assert "médical" not in text and "diagnostic" not in text and "marie@example.org" not in text


def test_timeouts_are_configured(make_connector) -> None:
    conn = make_connector(timeout_seconds=3.5)
    conn.open()
    assert conn._http.http.timeout == 3.5
    start = time.monotonic()
    conn.close()
    assert time.monotonic() - start < 1


def test_401_after_refresh_is_an_auth_error_with_googles_words(connector: GmailConnector, fake_gmail) -> None:
    fake_gmail.add_fault(r"GET .*/profile$", 401, times=5, body={"error": {
        "code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
    with pytest.raises(AuthError) as err:
        connector.open()
    text = str(err.value)
    assert "HTTP 401 Request had invalid authentication credentials." in text
    assert "gmail auth" in text and "{'" not in text  # Google's message, not a dump of response headers


def test_token_endpoint_outage_is_transient_but_refused_grant_is_auth() -> None:
    from assoc_ai_gmail.calls import is_retryable, translate
    from google.auth.exceptions import RefreshError

    outage = RefreshError("Unable to refresh: 503 Service Unavailable", {}, retryable=True)
    refused = RefreshError("invalid_grant: Token has been expired or revoked.", {}, retryable=False)
    assert is_retryable(outage) and not is_retryable(refused)
    assert isinstance(translate(outage, what="users.getProfile", connector_id="gmail", attempts=6), TransientError)
    assert isinstance(translate(refused, what="users.getProfile", connector_id="gmail"), AuthError)
