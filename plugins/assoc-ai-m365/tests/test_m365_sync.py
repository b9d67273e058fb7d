"""Incremental reading: Graph delta per folder, cursors, resync, vanished messages, corrections."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from assoc_ai_m365 import M365Connector
from m365_fakeserver import FakeM365, FakeMailbox
from m365_support import mail

from assoc_ai_core.errors import ConnectorError
from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.mail.parsing import parse_message


def run(conn: M365Connector, cursor: Any, folder: str = "Inbox", page_size: int = 100) -> tuple[list[Any], Any, bool]:
    """Read every page like the host does; return (fetched mails, last cursor, any resync)."""
    fetched, resync = [], False
    for page in conn.fetch_new(folder, cursor, page_size=page_size):
        fetched.extend(page.messages)
        cursor = page.cursor
        resync = resync or page.resync
    return fetched, cursor, resync


def test_first_run_reads_everything_in_pages_and_keys_match_the_core(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    for n in range(5):
        box.deliver(mail(n, html=n == 3, attachment=n == 4, charset="latin-1" if n == 2 else "utf-8"))
    box.deliver(mail(99), "inbox/Déjà trié")  # another folder: not part of Inbox's delta

    pages = list(connector.fetch_new("Inbox", None, page_size=2))

    assert [len(p.messages) for p in pages] == [2, 2, 1]
    assert "$skiptoken=" in pages[0].cursor["link"] and "$deltatoken=" in pages[-1].cursor["link"]
    assert not any(p.resync for p in pages)
    fetched = [m for p in pages for m in p.messages]
    assert sorted(m.ref.key for m in fetched) == sorted(f"{n}.adhesion@exemple.fr" for n in range(5))
    for m in fetched:
        parsed = parse_message(m.raw)
        assert parsed.error is None and parsed.key == m.ref.key  # the audit key the core computes
        assert m.ref.folder == "Inbox" and m.ref.uid in box.messages
    assert any("adhérer" in parse_message(m.raw).text for m in fetched)
    prefer = {s.headers.get("prefer") for s in fake.graph_requests(r"/delta$")}
    assert prefer == {'odata.maxpagesize=2, IdType="ImmutableId"'}


def test_second_run_fetches_nothing_new_even_after_our_own_changes(connector: M365Connector, box: FakeMailbox) -> None:
    for n in range(3):
        box.deliver(mail(n))
    first, cursor, _ = run(connector, None)
    assert len(first) == 3
    connector.add_label(first[0].ref, "Adhésion")  # our own update must not come back as "new"
    box.messages[first[1].ref.uid].is_read = True
    box.touch(box.messages[first[1].ref.uid])

    again, cursor2, resync = run(connector, cursor)

    assert again == [] and not resync
    assert cursor2["link"] != cursor["link"]  # a new delta link to store

    box.deliver(mail(10))
    third, _, _ = run(connector, cursor2)
    assert [m.ref.key for m in third] == ["10.adhesion@exemple.fr"]


def test_message_moved_into_the_folder_counts_as_new(connector: M365Connector, box: FakeMailbox) -> None:
    box.deliver(mail(1))
    elsewhere = box.deliver(mail(2), "inbox/Ancien")
    _, cursor, _ = run(connector, None)
    box.move(elsewhere, box.well_known("inbox").id)  # a volunteer drags it back to the Inbox

    fetched, _, _ = run(connector, cursor)

    assert [m.ref.key for m in fetched] == ["2.adhesion@exemple.fr"]


def test_expired_delta_state_410_restarts_with_resync(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    box.deliver(mail(1))
    _, cursor, _ = run(connector, None)
    box.deliver(mail(2))
    fake.expire_delta_states()

    fetched, cursor2, resync = run(connector, cursor)

    assert resync is True
    assert sorted(m.ref.key for m in fetched) == ["1.adhesion@exemple.fr", "2.adhesion@exemple.fr"]
    assert [s.status for s in fake.graph_requests(r"/delta$")][-2:] == [410, 200]
    box.deliver(mail(3))
    after, _, resync_after = run(connector, cursor2)
    assert [m.ref.key for m in after] == ["3.adhesion@exemple.fr"] and not resync_after


def test_sync_state_error_code_in_a_400_also_resyncs(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    box.deliver(mail(1))
    _, cursor, _ = run(connector, None)
    fake.fail("GET", r"/delta$", 400, code="syncStateNotFound", message="The sync state generation is not found.")

    fetched, _, resync = run(connector, cursor)

    assert resync and [m.ref.key for m in fetched] == ["1.adhesion@exemple.fr"]


def test_cursor_of_another_folder_resyncs(connector: M365Connector, box: FakeMailbox) -> None:
    box.deliver(mail(1))
    box.deliver(mail(2), "inbox/Presse")
    _, cursor_presse, _ = run(connector, None, folder="Inbox/Presse")

    fetched, _, resync = run(connector, cursor_presse, folder="Inbox")

    assert resync and [m.ref.key for m in fetched] == ["1.adhesion@exemple.fr"]


def test_message_deleted_between_list_and_get_is_skipped_and_reported(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365, caplog: pytest.LogCaptureFixture
) -> None:
    kept = box.deliver(mail(1))
    doomed = box.deliver(mail(2))
    fake.before("GET", rf"/messages/{doomed.immutable_id}/\$value$", lambda path: box.delete(doomed.id))

    with caplog.at_level(logging.WARNING, logger="assoc_ai_m365"):
        fetched, cursor, _ = run(connector, None)

    assert [m.ref.uid for m in fetched] == [kept.immutable_id]
    assert [(s.folder, s.uid) for s in connector.skipped] == [("Inbox", doomed.immutable_id)]
    assert "vanished" in caplog.text and "adhesion@exemple.fr" not in caplog.text  # no personal data in logs
    again, _, _ = run(connector, cursor)
    assert again == []


def test_killed_run_rerun_handles_every_message_exactly_once(make_config: Any, box: FakeMailbox) -> None:
    for n in range(7):
        box.deliver(mail(n))
    handled: list[str] = []
    committed = None
    with M365Connector(make_config()) as conn:
        pages = conn.fetch_new("Inbox", None, page_size=3)
        first = next(pages)
        handled += [m.ref.key for m in first.messages]
        committed = first.cursor  # the host commits after handling a page...
        second = next(pages)  # ...and is killed while handling the second one
        assert len(second.messages) == 3
        pages.close()
    with M365Connector(make_config()) as conn:
        for page in conn.fetch_new("Inbox", committed, page_size=3):
            handled += [m.ref.key for m in page.messages]
            committed = page.cursor

    assert sorted(handled) == sorted(f"{n}.adhesion@exemple.fr" for n in range(7))
    assert len(handled) == len(set(handled))


def test_fetch_all_reads_a_sorted_folder_for_training(connector: M365Connector, box: FakeMailbox) -> None:
    for n in range(4):
        box.deliver(mail(n), "inbox/Triés/Adhésion")
    box.deliver(mail(50), "inbox")

    got = list(connector.fetch_all("Inbox/Triés/Adhésion"))

    assert sorted(m.ref.key for m in got) == sorted(f"{n}.adhesion@exemple.fr" for n in range(4))
    assert {m.ref.folder for m in got} == {"Inbox/Triés/Adhésion"}


def test_unknown_folder_is_a_clear_error(connector: M365Connector) -> None:
    with pytest.raises(ConnectorError, match="Folder not found.*Existing folders: .*Inbox"):
        list(connector.fetch_new("Adhésions", None))


def test_locate_follows_moves_and_human_corrections(connector: M365Connector, box: FakeMailbox) -> None:
    box.deliver(mail(1))
    fetched, _, _ = run(connector, None)
    ref = fetched[0].ref
    moved = connector.move(ref, "IA/Adhésion")
    connector.add_label(moved, "Adhésion")

    assert connector.locate([ref]) == {ref.key: [moved]}

    # A volunteer disagrees: drags it to "IA/Bénévolat" and swaps the category in Outlook.
    msg = box.messages[moved.uid]
    corrected = box.move(msg, box.folder_by_path("IA/Bénévolat").id)
    corrected.categories = ["Bénévolat"]
    box.touch(corrected)

    where = connector.locate_detailed([moved])[ref.key]
    # The immutable id survives the person's move: the same id, found in its new folder.
    assert [(loc.ref.folder, loc.ref.uid, loc.categories) for loc in where] == [("IA/Bénévolat", moved.uid, ("Bénévolat",))]
    assert corrected.immutable_id == moved.uid != corrected.id
    assert connector.categories(MailRef("IA/Bénévolat", moved.uid, ref.key)) == ["Bénévolat"]

    box.delete(corrected.id)
    assert connector.locate([ref]) == {ref.key: []}


def test_locate_without_message_id_uses_the_graph_id(connector: M365Connector, box: FakeMailbox) -> None:
    raw = mail(7, message_id="")
    msg = box.deliver(raw)
    msg.internet_message_id = "<AM0PR01MB1234.eurprd01.prod.outlook.com>"  # Exchange invents one; the MIME has none
    fetched, _, _ = run(connector, None)
    ref = fetched[0].ref
    assert ref.key.startswith("sha256:") and ref.key == parse_message(raw).key

    assert connector.locate([ref]) == {ref.key: [MailRef("Inbox", msg.immutable_id, ref.key)]}
    moved = box.move(msg, box.folder_by_path("inbox/Presse").id)  # a person files it: found all the same
    assert connector.locate([ref]) == {ref.key: [MailRef("Inbox/Presse", msg.immutable_id, ref.key)]}
    box.delete(moved.id)
    assert connector.locate([ref]) == {ref.key: []}


def test_locate_quotes_apostrophes_in_message_ids(connector: M365Connector, box: FakeMailbox) -> None:
    box.deliver(mail(8, message_id="<l'asso.8@exemple.fr>"))
    fetched, _, _ = run(connector, None)
    ref = fetched[0].ref
    assert ref.key == "l'asso.8@exemple.fr"
    assert [r.folder for r in connector.locate([ref])[ref.key]] == ["Inbox"]
