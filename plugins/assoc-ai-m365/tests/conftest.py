"""Fixtures: a loopback Microsoft 365 (Entra ID + Graph over HTTPS) and connectors pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from assoc_ai_m365 import M365Config, M365Connector
from m365_fakeserver import TENANT, FakeM365, FakeMailbox, make_tls_files
from m365_support import APP_ID, APP_SECRET, MAILBOX, PUBLIC_APP_ID, VOLUNTEER

from assoc_ai_core.ext.config import Secret


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "live: talks to a real Microsoft 365 tenant; needs ASSOC_AI_M365_LIVE_CONFIG")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tls_files(tmp_path_factory.mktemp("m365-tls"))


@pytest.fixture()
def fake(tls_files: tuple[Path, Path, Path]) -> Iterator[FakeM365]:
    server = FakeM365(tls_files).start()
    server.register_app(APP_ID, APP_SECRET, mailboxes={MAILBOX})
    server.register_app(PUBLIC_APP_ID, None)
    server.add_mailbox(MAILBOX)
    server.add_mailbox("tresorier@asso-patrimoine.fr")
    server.add_mailbox(VOLUNTEER)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def box(fake: FakeM365) -> FakeMailbox:
    return fake.mailboxes[MAILBOX]


@pytest.fixture()
def make_config(fake: FakeM365) -> Callable[..., M365Config]:
    def build(**overrides: Any) -> M365Config:
        values: dict[str, Any] = {
            "mailbox": MAILBOX,
            "client_id": APP_ID,
            "tenant": TENANT,
            "client_secret": Secret(APP_SECRET),
            "authority_host": fake.base,
            "graph_url": fake.graph_url,
            "ca_bundle": str(fake.ca_path),
            "timeout": 10.0,
            "max_retries": 3,
            "retry_backoff": 0.02,
            "max_retry_wait": 5.0,
        }
        values.update(overrides)
        return M365Config(**values)

    return build


@pytest.fixture()
def connector(make_config: Callable[..., M365Config]) -> Iterator[M365Connector]:
    conn = M365Connector(make_config())
    conn.open()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture()
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep loopback requests away from any proxy set in the environment."""
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(autouse=True)
def _english(no_proxy: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages in English unless a test asks for French (both are checked where it matters)."""
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
