"""ImapConnector against a real Dovecot: reading, moving, labels, subject tags, folders, locate."""

from __future__ import annotations

import threading
import time

import pytest
from assoc_ai_imap import ImapConnector
from assoc_ai_imap.settings import LOCATE_SEARCH_LIMIT
from assoc_ai_imap.testing import DovecotServer
from imap_support import CAPABILITIES_WITHOUT_UIDPLUS, Mailbox, make_mail

from assoc_ai_core.errors import CapabilityError, ConnectorError
from assoc_ai_core.ext import subject as hdr
from assoc_ai_core.ext.connectors import Capability, MailRef
from assoc_ai_core.mail.parsing import parse_message


def _fetch_everything(conn: ImapConnector, folder: str = "INBOX", cursor=None, page_size: int = 100):
    pages = list(conn.fetch_new(folder, cursor, page_size=page_size))
    return pages, [m for p in pages for m in p.messages]


def test_login_and_capabilities(mailbox: Mailbox) -> None:
    with mailbox.connector() as conn:
        assert conn.list_folders() == ["INBOX"]
        assert {"MOVE", "UIDPLUS", "IDLE"} <= conn.server_capabilities
        assert {Capability.MOVE, Capability.TAG_SUBJECT, Capability.WATCH} <= conn.capabilities
        assert conn.names.separator == "/"


def test_constructing_does_no_io_and_close_is_safe_twice(mailbox: Mailbox) -> None:
    conn = mailbox.connector(port=1)  # nothing listens on port 1: any I/O would fail
    assert conn.server_capabilities == frozenset()
    conn.close()
    conn.close()
    assert mailbox.password not in repr(conn) and mailbox.password not in repr(conn.config)


def test_fetch_new_is_incremental_and_leaves_mail_unread(mailbox: Mailbox) -> None:
    sent = [make_mail(i) for i in range(5)]
    for raw in sent:
        mailbox.append(raw)
    with mailbox.connector() as conn:
        pages, got = _fetch_everything(conn, page_size=2)
        assert [len(p.messages) for p in pages] == [2, 2, 1]
        assert [m.raw for m in got] == sent
        assert [m.ref.key for m in got] == [parse_message(raw).key for raw in sent]
        assert all(not p.resync for p in pages)
        last_uids = [p.cursor["last_uid"] for p in pages]
        assert last_uids == sorted(last_uids) and last_uids[-1] == int(got[-1].ref.uid)
        cursor = pages[-1].cursor

        assert list(conn.fetch_new("INBOX", cursor)) == []  # second run: nothing new

        for raw in (make_mail(10), make_mail(11)):
            mailbox.append(raw)
        pages2, got2 = _fetch_everything(conn, cursor=cursor)
        assert [parse_message(m.raw).subject for m in got2] == ["Demande numéro 10", "Demande numéro 11"]
    assert all(b"\\Seen" not in flags for _, _, flags in mailbox.contents("INBOX"))


def test_move_uses_move_and_is_idempotent(mailbox: Mailbox) -> None:
    raw = make_mail(1)
    mailbox.append(raw)
    with mailbox.connector() as conn:
        (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
        moved = conn.move(ref, "IA/Adhésion")
        assert moved.folder == "IA/Adhésion" and moved.key == ref.key and moved.uid.isdigit()
        again = conn.move(ref, "IA/Adhésion")  # a re-run after a crash: the message is found where it went
        assert again == moved
        assert conn.move(moved, "IA/Adhésion") == moved  # already there: no-op
    assert mailbox.contents("INBOX") == []
    target = mailbox.contents("IA/Adhésion")
    assert [r for _, r, _ in target] == [raw]
    assert [str(uid) for uid, _, _ in target] == [moved.uid]


def test_copy_fallback_expunges_only_our_message(copy_only_mailbox: Mailbox) -> None:
    box = copy_only_mailbox
    keep = make_mail(1, subject="Supprimé par quelqu'un d'autre")
    box.append(keep, flags=(b"\\Deleted",))  # someone else's deleted mail: a plain EXPUNGE would remove it
    raw = make_mail(2)
    box.append(raw)
    with box.connector() as conn:
        assert "MOVE" not in conn.server_capabilities and Capability.MOVE in conn.capabilities
        refs = {parse_message(m.raw).subject: m.ref for m in conn.fetch_all("INBOX")}
        assert list(refs) == ["Demande numéro 2"]  # messages flagged \Deleted are not offered
        moved = conn.move(refs["Demande numéro 2"], "Bénévolat")
        assert moved.folder == "Bénévolat"
    inbox = box.contents("INBOX")
    assert [r for _, r, _ in inbox] == [keep]
    assert [r for _, r, _ in box.contents("Bénévolat")] == [raw]


def test_copy_fallback_after_crash_between_copy_and_expunge(copy_only_mailbox: Mailbox) -> None:
    box = copy_only_mailbox
    raw = make_mail(3)
    box.append(raw)
    box.append(make_mail(99), folder="Presse")
    with box.connector() as conn:
        (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
        with box.server.client(box.user, box.password) as other:  # the crashed run had copied already
            other.select_folder("INBOX")
            other.copy([int(ref.uid)], "Presse")
        moved = conn.move(ref, "Presse")
    assert box.contents("INBOX") == []
    presse = [r for _, r, _ in box.contents("Presse")]
    assert presse.count(raw) == 1 and len(presse) == 2
    assert moved.uid == str([uid for uid, r, _ in box.contents("Presse") if r == raw][0])


def test_server_without_uidplus_or_move_refuses_to_move() -> None:
    with DovecotServer(capabilities=CAPABILITIES_WITHOUT_UIDPLUS) as server:
        user, password = server.add_user()
        box = Mailbox(server, user, password)
        box.append(make_mail(1))
        with box.connector() as conn:
            assert Capability.MOVE not in conn.capabilities and Capability.TAG_SUBJECT not in conn.capabilities
            (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
            with pytest.raises(CapabilityError):
                conn.move(ref, "Presse")
            with pytest.raises(CapabilityError):
                conn.tag_subject(ref, "[#Presse]")
        assert len(box.contents("INBOX")) == 1 and box.contents("Presse") == []


def test_labels_become_sanitised_keywords(mailbox: Mailbox) -> None:
    mailbox.append(make_mail(1))
    with mailbox.connector() as conn:
        (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
        conn.add_label(ref, "Adhésion")
        conn.add_label(ref, "Adhésion")
        conn.add_label(ref, "Question générale (urgent)")
    ((_, _, flags),) = mailbox.contents("INBOX")
    assert b"$Adhesion" in flags and b"$Question_generale_urgent" in flags
    assert len([f for f in flags if f.startswith(b"$")]) == 2


def test_tag_subject_replaces_the_message_once(mailbox: Mailbox) -> None:
    raw = make_mail(1, subject="Cotisation 2024")
    mailbox.append(raw, flags=(b"\\Seen", b"$Adhesion"))
    with mailbox.connector() as conn:
        (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
        with mailbox.server.client(mailbox.user, mailbox.password) as other:
            other.normalise_times = False
            other.select_folder("INBOX", readonly=True)
            before_date = other.fetch([int(ref.uid)], ["INTERNALDATE"])[int(ref.uid)][b"INTERNALDATE"]
        tagged = conn.tag_subject(ref, "[#Adhésion]")
        assert tagged.key == ref.key and tagged.uid != ref.uid and tagged.folder == "INBOX"
        assert conn.tag_subject(tagged, "[#Adhésion]") == tagged  # already tagged: nothing happens
        assert conn.tag_subject(ref, "[#Adhésion]") == tagged  # the old ref too
    ((uid, new_raw, flags),) = mailbox.contents("INBOX")
    assert str(uid) == tagged.uid
    message = parse_message(new_raw)
    assert message.subject == "[#Adhésion] Cotisation 2024"
    assert message.key == ref.key and message.text == parse_message(raw).text
    assert new_raw.split(b"\r\n\r\n", 1)[1] == raw.split(b"\r\n\r\n", 1)[1]  # body byte for byte
    subject_line = [line for line in new_raw.split(b"\r\n") if line.lower().startswith(b"subject:")][0]
    assert subject_line.isascii() and b"=?utf-8?" in subject_line.lower()
    assert hdr.original_key(new_raw) == ref.key
    assert b"\\Seen" in flags and b"$Adhesion" in flags
    with mailbox.server.client(mailbox.user, mailbox.password) as other:
        other.normalise_times = False
        other.select_folder("INBOX", readonly=True)
        assert other.fetch([uid], ["INTERNALDATE"])[uid][b"INTERNALDATE"] == before_date


def test_tag_subject_resumes_after_a_crash_between_append_and_delete(mailbox: Mailbox) -> None:
    raw = make_mail(1, subject="Exposition de printemps")
    mailbox.append(raw)
    with mailbox.connector() as conn:
        (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
        mailbox.append(hdr.tag_subject_bytes(raw, "[#Evenement]", ref.key, mark=True))  # the crashed run's copy
        copy_uid = max(uid for uid, _, _ in mailbox.contents("INBOX"))
        tagged = conn.tag_subject(ref, "[#Evenement]")
    assert tagged.uid == str(copy_uid)
    remaining = mailbox.contents("INBOX")
    assert [uid for uid, _, _ in remaining] == [copy_uid]
    assert parse_message(remaining[0][1]).subject == "[#Evenement] Exposition de printemps"


def test_tag_subject_after_original_was_already_deleted(mailbox: Mailbox) -> None:
    raw = make_mail(1, subject="Partenariat mairie")
    mailbox.append(raw)
    with mailbox.connector() as conn:
        (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
        mailbox.append(hdr.tag_subject_bytes(raw, "[#Partenariat]", ref.key, mark=True))
        with mailbox.server.client(mailbox.user, mailbox.password) as other:
            other.select_folder("INBOX")
            other.add_flags([int(ref.uid)], [b"\\Deleted"])
            other.uid_expunge([int(ref.uid)])
        tagged = conn.tag_subject(ref, "[#Partenariat]")
        assert tagged.uid != ref.uid
    assert len(mailbox.contents("INBOX")) == 1


def test_tag_then_move_keeps_one_copy(mailbox: Mailbox) -> None:
    mailbox.append(make_mail(1))
    with mailbox.connector() as conn:
        (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
        tagged = conn.tag_subject(ref, "[#Bénévolat]")
        moved = conn.move(tagged, "IA/Bénévolat")
        conn.move(tagged, "IA/Bénévolat")
        assert conn.tag_subject(moved, "[#Bénévolat]") == moved
    assert mailbox.contents("INBOX") == []
    (message,) = mailbox.contents("IA/Bénévolat")
    assert parse_message(message[1]).subject.startswith("[#Bénévolat] ")


def test_nested_and_accented_folders_are_created_and_subscribed(mailbox: Mailbox) -> None:
    with mailbox.connector() as conn:
        for name in ("IA/Adhésion", "À vérifier", "IA/Adhésion"):
            conn.ensure_folder(name)
        folders = conn.list_folders()
        assert "IA/Adhésion" in folders and "À vérifier" in folders and folders[0] == "INBOX"
    with mailbox.server.client(mailbox.user, mailbox.password) as other:
        subscribed = {name for _, _, name in other.list_sub_folders()}
        names = {name for _, _, name in other.list_folders()}
    assert {"IA/Adhésion", "À vérifier"} <= subscribed
    assert "IA/Adhésion" in names
    raw_dirs = {p.name for p in mailbox.server.maildir(mailbox.user).iterdir()}
    assert ".IA.Adh&AOk-sion" in raw_dirs  # stored in modified UTF-7, as IMAP requires


def test_locate_follows_messages_moved_by_someone_else(mailbox: Mailbox) -> None:
    sent = [make_mail(i) for i in range(3)]
    for raw in sent:
        mailbox.append(raw)
    with mailbox.connector() as conn:
        refs = [m.ref for m in conn.fetch_all("INBOX")]
        moved = conn.move(refs[0], "IA/Adhésion")
        with mailbox.server.client(mailbox.user, mailbox.password) as other:  # a volunteer corrects and deletes
            other.create_folder("Presse")
            other.select_folder("IA/Adhésion")
            other.move([int(moved.uid)], "Presse")
            other.select_folder("INBOX")
            other.add_flags([int(refs[1].uid)], [b"\\Deleted"])
            other.uid_expunge([int(refs[1].uid)])
        where = conn.locate([moved, refs[1], refs[2]])
    assert [r.folder for r in where[refs[0].key]] == ["Presse"]
    assert where[refs[1].key] == []
    assert where[refs[2].key] == [refs[2]]


def test_locate_many_keys_uses_one_scan_per_folder(mailbox: Mailbox) -> None:
    count = LOCATE_SEARCH_LIMIT + 5
    for i in range(count):
        mailbox.append(make_mail(i))
    mailbox.append(make_mail(500, message_id=None, subject="Sans identifiant"))
    with mailbox.connector() as conn:
        refs = [m.ref for m in conn.fetch_all("INBOX")]
        keyless = [r for r in refs if r.key.startswith("sha256:")]
        assert len(keyless) == 1
        for ref in refs[:5]:
            conn.move(ref, "Archives")
        where = conn.locate(refs)
        assert len(where) == count + 1
        assert all([r.folder for r in where[ref.key]] == ["Archives"] for ref in refs[:5])
        assert all([r.folder for r in where[ref.key]] == ["INBOX"] for ref in refs[5:])
        small = conn.locate(keyless)  # the search path finds a message without Message-ID by its digest
        assert [r.uid for r in small[keyless[0].key]] == [keyless[0].uid]
        with mailbox.server.client(mailbox.user, mailbox.password) as other:  # the folder indexes are now stale
            other.select_folder("Archives")
            other.move([int(where[refs[0].key][0].uid)], "INBOX")
            other.select_folder("INBOX")
            other.add_flags([int(refs[6].uid)], [b"\\Deleted"])  # flagged, not expunged: seen via HIGHESTMODSEQ
        again = conn.locate(refs)
        assert [r.folder for r in again[refs[0].key]] == ["INBOX"]
        assert again[refs[6].key] == []
        assert again[refs[7].key] == where[refs[7].key]


def test_message_without_message_id_can_be_moved_and_tagged(mailbox: Mailbox) -> None:
    raw = make_mail(7, message_id=None, subject="Sans identifiant")
    mailbox.append(raw)
    with mailbox.connector() as conn:
        (mail,) = list(conn.fetch_all("INBOX"))
        assert mail.ref.key == parse_message(raw).key and mail.ref.key.startswith("sha256:")
        tagged = conn.tag_subject(mail.ref, "[#Autre]")
        assert conn.tag_subject(mail.ref, "[#Autre]") == tagged
        moved = conn.move(tagged, "Autre")
        assert conn.locate([mail.ref])[mail.ref.key] == [moved]
        (fetched,) = list(conn.fetch_all("Autre"))
        assert fetched.ref.key == mail.ref.key  # the copy keeps the original's key


def test_uidvalidity_change_of_a_recreated_folder_resyncs_without_double_work(mailbox: Mailbox) -> None:
    old = [make_mail(i) for i in range(3)]
    for raw in old:
        mailbox.append(raw, folder="Dons")
    handled: dict[str, int] = {}

    def host_run(conn: ImapConnector, cursor):
        last, resync_seen = cursor, False
        for page in conn.fetch_new("Dons", cursor):
            resync_seen |= page.resync
            for mail in page.messages:
                if mail.ref.key in handled:
                    continue  # what the host does with Page.resync: skip keys already handled
                handled[mail.ref.key] = handled.get(mail.ref.key, 0) + 1
            last = page.cursor
        return last, resync_seen

    with mailbox.connector() as conn:
        cursor, resync = host_run(conn, None)
        assert not resync and len(handled) == 3
        with mailbox.server.client(mailbox.user, mailbox.password) as other:
            other.delete_folder("Dons")
            other.create_folder("Dons")
            for raw in [*old, make_mail(3)]:
                other.append("Dons", raw)
        conn._folders = None
        new_cursor, resync = host_run(conn, cursor)
        assert resync and new_cursor["uidvalidity"] != cursor["uidvalidity"]
        assert len(handled) == 4 and set(handled.values()) == {1}
        assert host_run(conn, new_cursor) == (new_cursor, False)


def test_malformed_message_is_delivered_intact_for_review(mailbox: Mailbox) -> None:
    broken = (b"Subject: =?utf-8?q?incomplet\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\n--zz\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n"
              b"\xff\xfe\x80 ceci n'est pas du base64 !!!\r\n")
    garbage = b"\x01\x02\x03 pas un message du tout\r\n"  # no NUL: IMAP servers may not store it
    mailbox.append(broken)
    mailbox.append(garbage)
    with mailbox.connector() as conn:
        _, got = _fetch_everything(conn)
        assert [m.raw for m in got] == [broken, garbage]
        for mail in got:
            assert mail.ref.key == parse_message(mail.raw).key
        moved = conn.move(got[1].ref, "À vérifier")
        assert conn.locate([got[1].ref])[got[1].ref.key] == [moved]


def test_fetch_all_reads_a_sorted_folder(mailbox: Mailbox) -> None:
    for i in range(4):
        mailbox.append(make_mail(i), folder="Adhesion")
    with mailbox.connector() as conn:
        mails = list(conn.fetch_all("Adhesion"))
    assert len(mails) == 4 and all(m.ref.folder == "Adhesion" for m in mails)
    assert len({m.ref.key for m in mails}) == 4


def test_wait_for_changes_uses_idle(mailbox: Mailbox) -> None:
    with mailbox.connector() as conn:
        started = time.monotonic()
        assert conn.wait_for_changes(0.4) is False
        assert 0.35 <= time.monotonic() - started < 5

        timer = threading.Timer(0.3, lambda: mailbox.append(make_mail(1)))
        timer.start()
        try:
            started = time.monotonic()
            assert conn.wait_for_changes(10) is True
            assert time.monotonic() - started < 5
        finally:
            timer.join()
        _, got = _fetch_everything(conn)  # the connection is usable after IDLE
        assert len(got) == 1


def test_wait_for_changes_watches_several_folders(mailbox: Mailbox) -> None:
    mailbox.append(make_mail(0), folder="Dons")
    with mailbox.connector() as conn:
        assert conn.wait_for_changes(["INBOX", "Dons"], 0.3) is False
        timer = threading.Timer(0.3, lambda: mailbox.append(make_mail(1), folder="Dons"))
        timer.start()
        try:
            started = time.monotonic()
            assert conn.wait_for_changes(["INBOX", "Dons"], 20) is True
            assert time.monotonic() - started < 15
        finally:
            timer.join()


def test_missing_message_gives_a_clear_error(mailbox: Mailbox) -> None:
    with mailbox.connector() as conn:
        conn.ensure_folder("Presse")
        ghost = MailRef("INBOX", "4242", "absent@example.org")
        with pytest.raises(ConnectorError, match="absent@example.org"):
            conn.move(ghost, "Presse")
        with pytest.raises(ConnectorError):
            conn.add_label(ghost, "Presse")
        with pytest.raises(ConnectorError):
            conn.tag_subject(ghost, "[#Presse]")
        with pytest.raises(ConnectorError, match="(?i)dossier|folder"):
            list(conn.fetch_new("N'existe pas", None))


def test_cursor_at_now_skips_the_mail_already_there_and_deleted_mail_is_left_alone(mailbox: Mailbox) -> None:
    for raw in (make_mail(1), make_mail(2)):
        mailbox.append(raw)
    with mailbox.connector() as conn:
        cursor = conn.cursor_at_now("INBOX")
        assert cursor is not None
        assert list(conn.fetch_new("INBOX", cursor)) == []  # the backlog is not "new"
        later, gone = make_mail(3), make_mail(4)
        mailbox.append(later)
        mailbox.append(gone, flags=(b"\\Deleted",))  # a person deleted it before the job ran
        _, got = _fetch_everything(conn, cursor=cursor)
        assert [m.raw for m in got] == [later]


def test_fetch_since_reads_by_delivery_date(mailbox: Mailbox) -> None:
    import datetime as dt

    for raw in (make_mail(1), make_mail(2)):
        mailbox.append(raw)
    with mailbox.connector() as conn:
        today = dt.datetime.now(dt.UTC)
        assert len(list(conn.fetch_since("INBOX", today - dt.timedelta(days=1)))) == 2
        assert list(conn.fetch_since("INBOX", today + dt.timedelta(days=2))) == []


def test_untag_and_remove_label_undo_what_the_job_did(mailbox: Mailbox) -> None:
    raw = make_mail(7)
    mailbox.append(raw)
    with mailbox.connector() as conn:
        (ref,) = [m.ref for m in conn.fetch_all("INBOX")]
        conn.add_label(ref, "Presse")
        tagged = conn.tag_subject(ref, "[#Presse]")
        clean = conn.untag_subject(tagged, "[#Presse]")
        assert conn.untag_subject(clean, "[#Presse]") == clean  # idempotent
        conn.remove_label(clean, "Presse")
        conn.remove_label(clean, "Presse")
    [(uid, now, flags)] = mailbox.contents("INBOX")
    assert hdr.read_subject(now) == "Demande numéro 7"
    assert not any(f.lower().startswith(b"$presse") for f in flags)
    assert hdr.message_key(now) == hdr.message_key(raw)


def test_files_named_in_the_config_are_found_beside_it_from_any_folder(tmp_path, monkeypatch) -> None:
    from assoc_ai_core.jobs.preflight import build_connector
    from assoc_ai_core.jobs.settings import TriageSettings

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "imap.secret").write_text("s3cret\n", encoding="utf-8")
    (conf / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    (conf / "job.toml").write_text(
        '[mailbox]\nconnector = "imap"\nhost = "127.0.0.1"\nusername = "u"\n'
        'password = { file = "imap.secret" }\nca_file = "ca.pem"\n[triage]\nstate = "s.sqlite"\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a scheduler starts the job from another folder
    conn = build_connector(TriageSettings.load(conf / "job.toml"))
    assert conn.config.password.get() == "s3cret"
    assert conn.config.ca_file == str(conf / "ca.pem")
