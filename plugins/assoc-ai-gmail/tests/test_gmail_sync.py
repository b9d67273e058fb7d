"""Incremental sync through users.history.list: cursors, resume points, resync on 404, vanished mail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from assoc_ai_gmail.connector import GmailConnector

from assoc_ai_core.ext.connectors import Page


def keys(pages: list[Page]) -> list[str]:
    return [m.ref.key for p in pages for m in p.messages]


def run(conn: GmailConnector, cursor: Mapping[str, Any] | None, page_size: int = 100) -> list[Page]:
    return list(conn.fetch_new("INBOX", cursor, page_size=page_size))


def test_first_run_lists_everything_then_second_run_nothing_new(connector: GmailConnector, fake_gmail, mail) -> None:
    for i in range(5):
        fake_gmail.deliver(mail(i))
    pages = run(connector, None, page_size=2)
    assert [len(p.messages) for p in pages] == [2, 2, 1]
    assert sorted(keys(pages)) == sorted(f"demande-{i}@example.org" for i in range(5))
    assert not any(p.resync for p in pages)
    cursor = pages[-1].cursor
    assert "listing" not in cursor and cursor["history_id"]
    assert run(connector, cursor) == []
    # messages were read raw (format=raw) and decoded byte-exact
    assert all(c.query["format"] == ["raw"] for c in fake_gmail.calls(r"GET .*/messages/[0-9a-f]+$"))


def test_new_mail_is_read_from_history_only_once(connector: GmailConnector, fake_gmail, mail) -> None:
    fake_gmail.deliver(mail(0))
    cursor = run(connector, None)[-1].cursor
    fake_gmail.deliver(mail(1))
    fake_gmail.deliver(mail(2))
    pages = run(connector, cursor)
    assert keys(pages) == ["demande-1@example.org", "demande-2@example.org"]  # oldest arrival first
    assert pages[-1].cursor["history_id"] == str(fake_gmail.history_id)
    (call,) = fake_gmail.calls(r"GET .*/history$")
    assert call.query["labelId"] == ["INBOX"]
    assert sorted(call.query["historyTypes"]) == ["labelAdded", "labelRemoved", "messageAdded"]
    assert call.query["startHistoryId"] == [str(cursor["history_id"])]
    assert run(connector, pages[-1].cursor) == []


def test_only_mail_entering_the_folder_counts(connector: GmailConnector, fake_gmail, mail) -> None:
    old = fake_gmail.deliver(mail(0))
    fake_gmail.create_label("Archives")
    fake_gmail.relabel(old, add=("Archives",), remove=("INBOX",))
    cursor = run(connector, None)[-1].cursor
    fake_gmail.deliver(mail(1), labels=("SENT",))  # our own sent mail
    fake_gmail.deliver(mail(2), labels=(fake_gmail.label_id("Archives"),))  # a Gmail filter skipped the inbox
    fake_gmail.relabel(old, add=("INBOX",))  # a volunteer puts an old message back in the inbox
    bounced = fake_gmail.deliver(mail(3))
    fake_gmail.relabel(bounced, remove=("INBOX",))  # arrived and archived by hand before the job ran
    pages = run(connector, cursor)
    assert keys(pages) == ["demande-0@example.org"]


def test_killed_history_run_resumes_without_loss_or_repeat(connector: GmailConnector, fake_gmail, mail) -> None:
    fake_gmail.deliver(mail(100))
    cursor = run(connector, None)[-1].cursor
    for i in range(7):
        fake_gmail.deliver(mail(i))
    pages = run(connector, cursor, page_size=3)
    assert [len(p.messages) for p in pages] == [3, 3, 1]
    # the job handled page 1, committed its cursor, then was killed
    resumed = run(connector, pages[0].cursor, page_size=3)
    assert keys(pages[:1]) + keys(resumed) == keys(pages)
    assert len(set(keys(pages))) == 7


def test_killed_first_listing_resumes_from_its_page_token(connector: GmailConnector, fake_gmail, mail) -> None:
    for i in range(5):
        fake_gmail.deliver(mail(i))
    first = run(connector, None, page_size=2)
    assert first[0].cursor["listing"]["page_token"]
    resumed = run(connector, first[0].cursor, page_size=2)
    assert keys(first[:1]) + keys(resumed) == keys(first)
    assert resumed[-1].cursor.get("listing") is None


def test_history_too_old_triggers_full_resync(connector: GmailConnector, fake_gmail, mail) -> None:
    for i in range(3):
        fake_gmail.deliver(mail(i))
    cursor = run(connector, None)[-1].cursor
    fake_gmail.deliver(mail(3))
    fake_gmail.forget_history()  # more than a week without a run
    pages = run(connector, cursor, page_size=2)
    assert all(p.resync for p in pages)
    assert sorted(keys(pages)) == sorted(f"demande-{i}@example.org" for i in range(4))
    assert fake_gmail.calls(r"GET .*/history$")[-1].query["startHistoryId"] == [cursor["history_id"]]
    after = pages[-1].cursor
    fake_gmail.deliver(mail(4))
    nxt = run(connector, after)
    assert keys(nxt) == ["demande-4@example.org"]
    assert run(connector, nxt[-1].cursor) == []


def test_message_deleted_between_list_and_get_is_skipped_and_reported(connector: GmailConnector, fake_gmail, mail) -> None:
    ids = [fake_gmail.deliver(mail(i)) for i in range(3)]
    fake_gmail.after(r"GET .*/messages$", lambda: fake_gmail.delete(ids[1]))
    pages = run(connector, None)
    assert sorted(keys(pages)) == ["demande-0@example.org", "demande-2@example.org"]
    assert connector.skipped == [{"uid": ids[1], "folder": "INBOX", "reason": "deleted before it could be read"}]
    # the same during an incremental run
    cursor = pages[-1].cursor
    more = [fake_gmail.deliver(mail(i)) for i in range(3, 5)]
    fake_gmail.after(r"GET .*/history$", lambda: fake_gmail.delete(more[0]))
    pages = run(connector, cursor)
    assert keys(pages) == ["demande-4@example.org"]
    assert [s["uid"] for s in connector.skipped] == [more[0]]


def test_mail_arriving_during_first_listing_is_flagged_as_overlap(connector: GmailConnector, fake_gmail, mail) -> None:
    fake_gmail.deliver(mail(0))
    fake_gmail.after(r"GET .*/messages$", lambda: fake_gmail.deliver(mail(1)))
    first = run(connector, None)
    assert keys(first) == ["demande-0@example.org"]
    nxt = run(connector, first[-1].cursor)
    assert keys(nxt) == ["demande-1@example.org"]
    assert all(p.resync for p in nxt)  # the host double-checks keys it may already have handled
    assert "overlap" not in nxt[-1].cursor
    assert run(connector, nxt[-1].cursor) == []


def test_quiet_folder_still_moves_its_history_point_forward(connector: GmailConnector, fake_gmail, mail) -> None:
    fake_gmail.deliver(mail(0))
    first = run(connector, None)
    ref = first[0].messages[0].ref
    cursor = first[-1].cursor
    connector.move(ref, "IA/Adhésion")  # the job's own action: INBOX removed, history moves on
    pages = run(connector, cursor)
    assert [len(p.messages) for p in pages] == [0]
    assert int(pages[0].cursor["history_id"]) > int(cursor["history_id"])
    assert run(connector, pages[0].cursor) == []


def test_history_pages_are_followed(connector: GmailConnector, fake_gmail, mail) -> None:
    fake_gmail.deliver(mail(0))
    cursor = run(connector, None)[-1].cursor
    for i in range(1, 13):
        fake_gmail.deliver(mail(i))
    import assoc_ai_gmail.reading as mod

    original = mod.LIST_MAX_RESULTS
    mod.LIST_MAX_RESULTS = 5  # small history pages to exercise nextPageToken
    try:
        pages = run(connector, cursor, page_size=4)
    finally:
        mod.LIST_MAX_RESULTS = original
    assert len(fake_gmail.calls(r"GET .*/history$")) == 3
    assert keys(pages) == [f"demande-{i}@example.org" for i in range(1, 13)]


def test_expired_listing_page_token_restarts_the_listing_as_resync(connector: GmailConnector, fake_gmail, mail) -> None:
    for i in range(3):
        fake_gmail.deliver(mail(i))
    first = run(connector, None, page_size=2)
    stale = {**first[0].cursor, "listing": {"page_token": "expired-token", "resync": False}}
    pages = run(connector, stale, page_size=2)
    assert all(p.resync for p in pages)
    assert sorted(keys(pages)) == sorted(f"demande-{i}@example.org" for i in range(3))
    assert "listing" not in pages[-1].cursor
