"""The contract checks of the mailbox kit: one connector at a time, no triage job.

Each check takes a *fresh, empty* mailbox (``harness``) and a scratch folder.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef, Page
from assoc_ai_core.testing.mail_samples import CATEGORY_A, FOLDER_A, FOLDER_B, REVIEW, sample_mail
from assoc_ai_core.testing.mailbox_harness import (
    IOWatch,
    MailboxHarness,
    connected,
    deliver_all,
    drain,
    expect,
    fail,
    find_ref,
    key_of,
    mailbox_census,
    opened,
)


def check_id_is_slug(harness: MailboxHarness, tmp_path: Path) -> None:
    """``id`` is a lower-case slug and the class is a MailboxConnector."""
    conn = harness.make()
    expect(isinstance(conn, MailboxConnector), f"{type(conn).__name__} is not a MailboxConnector")
    expect(isinstance(conn.id, str) and re.fullmatch(r"[a-z0-9_]+", conn.id or ""),
           f"id must be a lower-case slug [a-z0-9_]+, got {conn.id!r}")


def check_config_is_frozen_and_hides_secrets(harness: MailboxHarness, tmp_path: Path) -> None:
    """``Config`` is a frozen dataclass; no secret value shows in its ``repr`` or the connector's."""
    from assoc_ai_core.ext.config import Secret

    conn = harness.make()
    cfg = conn.config
    expect(dataclasses.is_dataclass(cfg) and isinstance(cfg, type(conn).Config),
           "connector.config must be an instance of its Config dataclass")
    expect(type(cfg).__dataclass_params__.frozen, "Config must be a frozen dataclass (@dataclass(frozen=True))")
    name = dataclasses.fields(cfg)[0].name
    try:
        setattr(cfg, name, getattr(cfg, name))
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise fail("Config accepted an attribute assignment")
    secrets = [getattr(cfg, f.name).get() for f in dataclasses.fields(cfg) if isinstance(getattr(cfg, f.name), Secret)]
    secrets += list(harness.secret_values)
    for value in (v for v in secrets if v):
        for text in (repr(cfg), str(cfg), repr(conn)):
            expect(value not in text, "a secret value appears in the repr of the config or connector")


def check_construct_does_no_io(harness: MailboxHarness, tmp_path: Path) -> None:
    """Building a connector (``cls(config)``) opens no file or socket: ``open()`` does."""
    template = harness.make()
    IOWatch.install()
    IOWatch.armed.events = []
    try:
        conn = type(template)(template.config)
    finally:
        events, IOWatch.armed.events = IOWatch.armed.events, None
    expect(not events, f"constructing {type(conn).__name__} did I/O: {events[:3]}")


def check_capabilities_are_declared(harness: MailboxHarness, tmp_path: Path) -> None:
    """``capabilities`` is a frozenset of Capability including READ; declared actions are implemented."""
    cls = type(harness.make())
    expect(isinstance(cls.capabilities, frozenset) and all(isinstance(c, Capability) for c in cls.capabilities),
           "capabilities must be a frozenset of Capability members")
    expect(Capability.READ in cls.capabilities, "a mailbox connector must declare Capability.READ")
    for cap, method in ((Capability.MOVE, "move"), (Capability.TAG_SUBJECT, "tag_subject"),
                        (Capability.LABEL, "add_label"), (Capability.CREATE_FOLDER, "ensure_folder"),
                        (Capability.FORWARD, "forward")):
        if cap in cls.capabilities:
            expect(getattr(cls, method) is not getattr(MailboxConnector, method),
                   f"{cap.value} is declared but {method}() is not implemented")
    if Capability.WATCH in cls.capabilities:
        expect(callable(getattr(cls, "wait_for_changes", None)),
               "Capability.WATCH needs a wait_for_changes(folders, timeout) -> bool method")


def check_close_is_safe_twice(harness: MailboxHarness, tmp_path: Path) -> None:
    """``close()`` never raises, even twice or before ``open()``."""
    conn = harness.make()
    conn.close()
    conn = opened(harness)
    conn.close()
    conn.close()


def check_list_folders_has_inbox(harness: MailboxHarness, tmp_path: Path) -> None:
    """``list_folders`` returns names, the inbox among them."""
    with connected(harness) as conn:
        folders = conn.list_folders()
        expect(isinstance(folders, list) and all(isinstance(f, str) for f in folders), "list_folders must return list[str]")
        expect(harness.inbox in folders, f"{harness.inbox!r} missing from list_folders(): {folders}")


def check_ensure_folder_nested(harness: MailboxHarness, tmp_path: Path) -> None:
    """``ensure_folder('IA/Adhésion')`` creates nested, non-ASCII folders; a second call does nothing."""
    with connected(harness, Capability.CREATE_FOLDER) as conn:
        conn.ensure_folder(FOLDER_A)
        conn.ensure_folder(FOLDER_A)
        conn.ensure_folder(REVIEW)
        folders = conn.list_folders()
        expect(FOLDER_A in folders and REVIEW in folders, f"created folders missing from list_folders(): {folders}")


def check_fetch_new_yields_pages(harness: MailboxHarness, tmp_path: Path) -> None:
    """``fetch_new`` yields Pages of FetchedMail whose key is ``parse_message(raw).key`` and a JSON cursor."""
    deliver_all(harness, [sample_mail(f"Message {i}", f"Texte numéro {i}") for i in range(5)])
    with connected(harness) as conn:
        mails, cursor, pages = drain(conn, harness.inbox, None, page_size=2)
        expect(len(pages) >= 3, f"5 messages with page_size=2 must give at least 3 pages, got {len(pages)}")
        for page in pages:
            expect(isinstance(page, Page) and len(page.messages) <= 2, "pages must be Page objects of at most page_size")
            json.dumps(dict(page.cursor))
        expect(len(mails) == 5, f"expected 5 new messages, got {len(mails)}")
        for m in mails:
            expect(isinstance(m, FetchedMail) and isinstance(m.raw, bytes), "pages must hold FetchedMail with raw bytes")
            expect(m.ref.folder == harness.inbox, f"ref.folder must be {harness.inbox!r}, got {m.ref.folder!r}")
            expect(m.ref.key == key_of(m.raw), "ref.key must equal parse_message(raw).key")
        expect(len({m.ref.key for m in mails}) == 5, "the five messages must have five distinct keys")


def check_cursor_resumes_after_restart(harness: MailboxHarness, tmp_path: Path) -> None:
    """With the stored cursor (JSON round trip, new instance) nothing old comes back; new mail does."""
    deliver_all(harness, [sample_mail("Premier", "un"), sample_mail("Deuxième", "deux")])
    with connected(harness) as conn:
        first, cursor, _ = drain(conn, harness.inbox, None)
    expect(len(first) == 2, f"expected 2 messages, got {len(first)}")
    stored = json.loads(json.dumps(dict(cursor or {})))
    with connected(harness) as conn:
        again, cursor2, _ = drain(conn, harness.inbox, stored)
        expect(not again, f"a second fetch with the stored cursor returned {len(again)} old message(s)")
        raw = sample_mail("Troisième", "trois")
        harness.deliver(harness.inbox, raw)
        latest, _, _ = drain(conn, harness.inbox, json.loads(json.dumps(dict(cursor2 or stored))))
        keys = {m.ref.key for m in latest}
        expect(len(latest) == 1 and keys == {key_of(raw)},
               f"after one delivery, exactly that message must be new (got {len(latest)})")


def check_fetch_all(harness: MailboxHarness, tmp_path: Path) -> None:
    """``fetch_all`` yields every message of a folder, whatever the cursor."""
    raws = [sample_mail(f"Tout {i}", "x") for i in range(3)]
    deliver_all(harness, raws)
    with connected(harness) as conn:
        drain(conn, harness.inbox, None)
        keys = {m.ref.key for m in conn.fetch_all(harness.inbox)}
        expect(keys == {key_of(r) for r in raws}, "fetch_all must return every message of the folder")


def _expect_once_in(conn: MailboxConnector, keys: list[str], folder: str, what: str) -> None:
    census = mailbox_census(conn)
    for key in keys:
        expect([f for f, _ in census.get(key, [])] == [folder],
               f"after {what} {key} must be once, in {folder!r}: {census.get(key)}")


def check_move_is_idempotent(harness: MailboxHarness, tmp_path: Path) -> None:
    """Moving twice (old ref, then new ref) leaves one copy in the target and returns its ref."""
    raw = sample_mail("À déplacer", "x")
    harness.deliver(harness.inbox, raw)
    with connected(harness, Capability.MOVE, Capability.CREATE_FOLDER) as conn:
        conn.ensure_folder(FOLDER_A)
        ref = find_ref(conn, harness.inbox, key_of(raw))
        moved = conn.move(ref, FOLDER_A)
        expect(moved.folder == FOLDER_A and moved.key == ref.key, f"move must return a ref in {FOLDER_A!r}")
        again = conn.move(ref, FOLDER_A)
        expect(again.folder == FOLDER_A, "moving again with the old ref must return the ref in the target")
        conn.move(moved, FOLDER_A)
        _expect_once_in(conn, [ref.key], FOLDER_A, "repeated moves")


def check_locate_sees_moves_by_another_instance(harness: MailboxHarness, tmp_path: Path) -> None:
    """A move made through a second, independent instance is found by ``locate`` on the first."""
    raw = sample_mail("Où suis-je ?", "x")
    harness.deliver(harness.inbox, raw)
    with connected(harness, Capability.MOVE, Capability.CREATE_FOLDER) as first, connected(harness) as second:
        first.ensure_folder(FOLDER_B)
        ref = find_ref(first, harness.inbox, key_of(raw))
        found = first.locate([ref])
        expect([r.folder for r in found.get(ref.key, [])] == [harness.inbox], f"locate before the move: {found}")
        second.move(find_ref(second, harness.inbox, ref.key), FOLDER_B)
        found = first.locate([ref])
        expect([r.folder for r in found.get(ref.key, [])] == [FOLDER_B],
               f"locate must find the message in {FOLDER_B!r} after a move by another instance: {found}")
        missing = MailRef(harness.inbox, "no-such-uid", "no-such-key@kit")
        expect(first.locate([missing]).get(missing.key) == [], "locate of an unknown key must map it to []")


def check_tag_subject_is_idempotent(harness: MailboxHarness, tmp_path: Path) -> None:
    """Tagging twice gives one copy whose subject carries the tag once, with the same key (also without Message-ID)."""
    from assoc_ai_core.ext.subject import read_subject

    raws = [sample_mail("Adhésion 2025", "x"), sample_mail("Sans identifiant", "y", message_id=False)]
    deliver_all(harness, raws)
    with connected(harness, Capability.TAG_SUBJECT) as conn:
        for raw in raws:
            ref = find_ref(conn, harness.inbox, key_of(raw))
            tagged = conn.tag_subject(ref, "[#Adhésion]")
            expect(tagged.key == ref.key, "tag_subject must keep the message's key")
            conn.tag_subject(tagged, "[#Adhésion]")
            conn.tag_subject(ref, "[#Adhésion]")
            copies = mailbox_census(conn).get(ref.key, [])
            expect(len(copies) == 1, f"after tagging three times there must be one copy, found {len(copies)}")
            subject = read_subject(copies[0][1])
            expect(subject.count("[#Adhésion]") == 1, f"the tag must appear once in the subject: {subject!r}")


def check_add_label_is_idempotent(harness: MailboxHarness, tmp_path: Path) -> None:
    """Adding the same label twice works and leaves the message in place."""
    raw = sample_mail("Étiquette", "x")
    harness.deliver(harness.inbox, raw)
    with connected(harness, Capability.LABEL) as conn:
        ref = find_ref(conn, harness.inbox, key_of(raw))
        conn.add_label(ref, "Adhésion")
        conn.add_label(ref, "Adhésion")
        found = conn.locate([ref]).get(ref.key, [])
        expect([r.folder for r in found] == [harness.inbox], f"labelling must not move or copy the message: {found}")


def check_batch_actions_are_idempotent(harness: MailboxHarness, tmp_path: Path) -> None:
    """``add_label_many`` / ``move_many`` (overridden or the base loops) keep the one-message contract."""
    raws = [sample_mail(f"Lot {i}", "x") for i in range(3)]
    deliver_all(harness, raws)
    with connected(harness, Capability.MOVE, Capability.CREATE_FOLDER) as conn:
        conn.ensure_folder(FOLDER_A)
        refs = [find_ref(conn, harness.inbox, key_of(raw)) for raw in raws]
        if Capability.LABEL in conn.capabilities:
            conn.add_label_many(refs, CATEGORY_A)
            conn.add_label_many(refs, CATEGORY_A)
            found = conn.locate(refs)
            expect(all([r.folder for r in found.get(ref.key, [])] == [harness.inbox] for ref in refs),
                   f"labelling a batch must not move or copy its messages: {found}")
        moved = conn.move_many(refs, FOLDER_A)
        expect(set(moved) == {ref.key for ref in refs} and all(m.folder == FOLDER_A for m in moved.values()),
               f"move_many must return, by key, a ref in {FOLDER_A!r} for every message: {moved}")
        again = conn.move_many(refs, FOLDER_A)
        expect({k: m.folder for k, m in again.items()} == {k: FOLDER_A for k in moved},
               f"move_many again with the old refs must find every message in {FOLDER_A!r}: {again}")
        conn.move_many(list(moved.values()), FOLDER_A)
        _expect_once_in(conn, [ref.key for ref in refs], FOLDER_A, "repeated batch moves")
        located = conn.locate(list(moved.values()))
        expect(all(located.get(k) == [m] for k, m in moved.items()),
               f"the refs move_many returned must be where locate finds the messages: {moved} / {located}")
