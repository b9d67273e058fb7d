"""HTTP batches (googleapiclient BatchHttpRequest): fewer round trips, per-part retries and errors."""

from __future__ import annotations

import pytest
from assoc_ai_gmail.connector import GmailConnector

from assoc_ai_core.errors import TransientError
from assoc_ai_core.ext.connectors import MailRef

BATCH = r"POST /batch/gmail/v1$"
GET_ONE = r"GET /gmail/v1/users/me/messages/[0-9a-f]+$"


def test_messages_are_read_in_batches(make_connector, fake_gmail, mail) -> None:
    conn: GmailConnector = make_connector(batch_size=3)
    for i in range(7):
        fake_gmail.deliver(mail(i))
    pages = list(conn.fetch_new("INBOX", None, page_size=100))
    assert sorted(m.ref.key for p in pages for m in p.messages) == sorted(f"demande-{i}@example.org" for i in range(7))
    assert len(fake_gmail.calls(BATCH)) == 3  # 3 + 3 + 1 messages
    assert len(fake_gmail.calls(GET_ONE)) == 7
    assert all(c.query["format"] == ["raw"] for c in fake_gmail.calls(GET_ONE))


def test_a_throttled_part_alone_is_sent_again(make_connector, fake_gmail, mail, sleeps) -> None:
    conn: GmailConnector = make_connector(batch_size=10)
    ids = [fake_gmail.deliver(mail(i)) for i in range(4)]
    conn.open()
    fake_gmail.add_fault(rf"GET .*/messages/{ids[2]}$", 429, headers={"Retry-After": "3"})
    got = list(conn.fetch_all("INBOX"))
    assert len(got) == 4
    assert sleeps == [3.0]
    assert len(fake_gmail.calls(BATCH)) == 2
    assert [c.path.rsplit("/", 1)[1] for c in fake_gmail.calls(GET_ONE)].count(ids[2]) == 2
    assert len(fake_gmail.calls(GET_ONE)) == 5  # the other three were not fetched twice


def test_parts_failing_every_time_end_in_transient_error(make_connector, fake_gmail, mail, sleeps) -> None:
    conn: GmailConnector = make_connector(batch_size=10, max_retries=2)
    ids = [fake_gmail.deliver(mail(i)) for i in range(3)]
    conn.open()
    fake_gmail.add_fault(rf"GET .*/messages/{ids[0]}$", 503, times=10)
    with pytest.raises(TransientError):
        list(conn.fetch_all("INBOX"))
    assert len(sleeps) == 2


def test_whole_batch_throttled_is_retried(make_connector, fake_gmail, mail, sleeps) -> None:
    conn: GmailConnector = make_connector(batch_size=10)
    for i in range(3):
        fake_gmail.deliver(mail(i))
    conn.open()
    fake_gmail.add_fault(BATCH, 429, headers={"Retry-After": "2"})
    assert len(list(conn.fetch_all("INBOX"))) == 3
    assert sleeps == [2.0]


def test_locate_many_messages_in_few_round_trips(make_connector, fake_gmail, mail) -> None:
    conn: GmailConnector = make_connector(batch_size=20)
    ids = [fake_gmail.deliver(mail(i)) for i in range(45)]
    refs = [MailRef("INBOX", gid, f"demande-{i}@example.org") for i, gid in enumerate(ids)]
    fake_gmail.delete(ids[5])
    before = len(fake_gmail.requests)
    where = conn.locate(refs + [MailRef("INBOX", "no-such-id", "absent@kit")])
    assert where["demande-5@example.org"] == [] and where["absent@kit"] == []
    assert where["demande-0@example.org"] == [refs[0]]
    outer = [r for r in fake_gmail.requests[before:] if not r.path.startswith("/gmail/v1/users/me/messages/")]
    assert len(fake_gmail.calls(BATCH)) == 3  # 46 lookups, 20 per batch
    assert len(outer) == 6  # token + profile + labels + 3 batches: no per-message round trip
