"""Throttling and faults: Retry-After, backoff, bounded retries, network and TLS trouble."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from assoc_ai_m365 import M365Config, M365Connector
from assoc_ai_m365.graph import parse_retry_after
from m365_fakeserver import FakeM365, FakeMailbox
from m365_support import mail

from assoc_ai_core.errors import ConnectorError, TransientError


def test_429_retry_after_is_honoured(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    box.deliver(mail(1))
    fake.fail("GET", r"/\$value$", 429, retry_after="1")

    pages = list(connector.fetch_new("Inbox", None))

    assert len(pages[0].messages) == 1
    tries = fake.graph_requests(r"/\$value$")
    assert [t.status for t in tries] == [429, 200]
    assert tries[1].at - tries[0].at >= 0.95  # waited what the server asked, not the tiny backoff
    assert connector.stats["throttled"] == 1 and connector.stats["retries"] == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_backoff(connector: M365Connector, box: FakeMailbox, fake: FakeM365, status: int) -> None:
    box.deliver(mail(1))
    fake.fail("GET", r"/delta$", status, times=2)

    pages = list(connector.fetch_new("Inbox", None))

    assert len(pages[0].messages) == 1
    assert [t.status for t in fake.graph_requests(r"/delta$")] == [status, status, 200]


def test_persistent_throttling_ends_in_transient_error_after_bounded_retries(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365
) -> None:
    box.deliver(mail(1))
    fake.fail("GET", r"/delta$", 503, times=100, retry_after="0")

    with pytest.raises(TransientError) as err:
        list(connector.fetch_new("Inbox", None))

    assert err.value.exit_code == 75
    assert len(fake.graph_requests(r"/delta$")) == 4  # 1 + max_retries (3)
    assert "next run" in str(err.value)


def test_retry_after_longer_than_allowed_is_not_slept_through(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    box.deliver(mail(1))
    fake.fail("GET", r"/delta$", 429, retry_after="3600")

    with pytest.raises(TransientError, match="3600"):
        list(connector.fetch_new("Inbox", None))
    assert len(fake.graph_requests(r"/delta$")) == 1


def test_http_date_retry_after_is_understood() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_graph_is_a_transient_error(make_config: Callable[..., M365Config]) -> None:
    cfg = make_config(graph_url=f"https://127.0.0.1:{_closed_port()}/v1.0", max_retries=1)
    with pytest.raises(TransientError):
        M365Connector(cfg).open()


def test_tls_is_verified_by_default(make_config: Callable[..., M365Config], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(ConnectorError, match="ca_bundle"):
        M365Connector(make_config(ca_bundle=None)).open()


def test_links_to_another_host_are_not_followed(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    box.deliver(mail(1))
    cursor: dict[str, Any] = {"folder_id": box.well_known("inbox").id, "link": "https://evil.example/v1.0/x"}

    pages = list(connector.fetch_new("Inbox", cursor))  # a tampered cursor: replay the folder instead

    assert pages[0].resync and len(pages[0].messages) == 1
    with pytest.raises(ConnectorError, match="another server"):
        connector.graph.get_json("https://evil.example/v1.0/users")
