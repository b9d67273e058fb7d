"""Fixtures: a loopback Gmail server per test, and connectors pointed at it with the real Google client."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the loopback server module lives beside the tests

from assoc_ai_gmail.connector import GmailConfig, GmailConnector  # noqa: E402
from gmail_loopback import FakeGmail  # noqa: E402

from assoc_ai_core.ext.config import Secret  # noqa: E402


@pytest.fixture(autouse=True)
def private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ASSOC_AI_HOME`` in a fresh folder: the correction checkpoint of one test never leaks into another."""
    home = tmp_path_factory.mktemp("assoc-ai-home")
    monkeypatch.setenv("ASSOC_AI_HOME", str(home))
    return home


@pytest.fixture
def fake_gmail() -> Iterator[FakeGmail]:
    """A running loopback Gmail API + OAuth server, stopped after the test."""
    fake = FakeGmail().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def oauth_client(fake_gmail: FakeGmail) -> tuple[str, str]:
    """A registered OAuth desktop client (id, secret)."""
    return fake_gmail.add_client()


@pytest.fixture
def token_json(fake_gmail: FakeGmail, oauth_client: tuple[str, str]) -> str:
    """The authorized-user JSON ``assoc-ai gmail auth`` would have stored."""
    client_id, secret = oauth_client
    refresh = fake_gmail.issue_refresh_token(client_id)
    return json.dumps({"type": "authorized_user", "client_id": client_id, "client_secret": secret,
                       "refresh_token": refresh, "token_uri": fake_gmail.token_uri,
                       "scopes": ["https://www.googleapis.com/auth/gmail.modify"]})


@pytest.fixture
def sleeps() -> list[float]:
    """Every back-off wait the connector asked for (a fake clock: nothing really sleeps)."""
    return []


@pytest.fixture
def make_connector(fake_gmail: FakeGmail, token_json: str, sleeps: list[float]) -> Iterator[Callable[..., GmailConnector]]:
    """Build connectors on the loopback server; all closed after the test."""
    made: list[GmailConnector] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        fake_gmail.advance(seconds)  # the server's quota window and history age move on as if we had waited

    def make(**overrides: object) -> GmailConnector:
        settings: dict[str, object] = {
            "token": Secret(token_json), "api_endpoint": fake_gmail.url, "auth_endpoint": fake_gmail.token_uri,
            "backoff_initial_seconds": 0.5, "backoff_max_seconds": 30.0, "timeout_seconds": 10.0,
        }
        settings.update(overrides)
        conn = GmailConnector(GmailConfig(**settings), sleep=fake_sleep, clock=fake_gmail.now)  # type: ignore[arg-type]
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()


@pytest.fixture
def connector(make_connector: Callable[..., GmailConnector]) -> GmailConnector:
    """One connector with default test settings."""
    return make_connector()


def make_mail(n: int, *, subject: str | None = None, body: str | None = None, sender: str = "marie@example.org",
              message_id: str | None = None) -> bytes:
    """A small French e-mail as raw RFC 5322 bytes (unique Message-ID per ``n``)."""
    msg = EmailMessage()
    msg["From"] = f"Marie Dupont <{sender}>"
    msg["To"] = "info@asso.example"
    msg["Subject"] = subject or f"Demande d'adhésion n°{n}"
    msg["Message-ID"] = message_id or f"<demande-{n}@example.org>"
    msg["Date"] = "Mon, 06 Jan 2025 10:00:00 +0100"
    msg.set_content(body or f"Bonjour,\nJe souhaite adhérer à l'association pour l'année {2025 + n % 3}.\nMerci,\nMarie")
    return msg.as_bytes()


@pytest.fixture
def mail() -> Callable[..., bytes]:
    """The :func:`make_mail` factory."""
    return make_mail
