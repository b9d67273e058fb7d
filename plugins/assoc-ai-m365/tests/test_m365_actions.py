"""Acting on the mailbox: folders, move, Outlook categories, forward, the absent subject tag."""

from __future__ import annotations

import email
import email.policy
import logging
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from assoc_ai_m365 import M365Config, M365Connector
from m365_fakeserver import FakeM365, FakeMailbox
from m365_support import MAILBOX, mail

from assoc_ai_core.errors import CapabilityError, ConfigError, ConnectorError
from assoc_ai_core.ext.connectors import Capability, MailRef


def first_ref(conn: M365Connector) -> MailRef:
    return next(iter(conn.fetch_new("Inbox", None))).messages[0].ref


# ------------------------------------------------------------------ folders
def test_list_folders_spells_inbox_the_same_in_every_language(connector: M365Connector, box: FakeMailbox) -> None:
    box.folder_by_path("inbox/Bénévolat")
    box.folder_by_path("IA/Adhésion")

    folders = connector.list_folders()

    assert "Inbox" in folders and "Boîte de réception" not in folders
    assert {"Inbox/Bénévolat", "IA", "IA/Adhésion", "Éléments envoyés"} <= set(folders)
    # The French display name of the Inbox is accepted too.
    assert connector.folders.find("Boîte de réception") == box.well_known("inbox").id


def test_nested_folders_with_accents_are_created_level_by_level_once(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    connector.ensure_folder("IA/Adhésion")
    connector.ensure_folder("Inbox/À vérifier")

    ia = box.folder_by_path("IA")
    adhesion = [f for f in box.children(ia.id)]
    assert [f.display_name for f in adhesion] == ["Adhésion"]
    assert unicodedata.is_normalized("NFC", adhesion[0].display_name)
    assert [f.display_name for f in box.children(box.well_known("inbox").id)] == ["À vérifier"]
    posts = fake.graph_requests(r"/(mailFolders|childFolders)$", method="POST")
    assert len(posts) == 3  # IA, IA/Adhésion, Inbox/À vérifier

    # Again, spelt differently (NFD accents, other case): nothing is created.
    connector.ensure_folder(unicodedata.normalize("NFD", "ia/ADHÉSION"))
    connector.ensure_folder("inbox/à vérifier/")
    assert len(fake.graph_requests(r"/(mailFolders|childFolders)$", method="POST")) == 3
    assert {"IA/Adhésion", "Inbox/À vérifier"} <= set(connector.list_folders())


def test_folder_created_meanwhile_by_someone_else_is_reused(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    connector.list_folders()  # the tree is cached without "IA"
    fake.before("POST", r"/mailFolders$", lambda path: box.folder_by_path("IA"))

    connector.ensure_folder("IA")

    assert [f.display_name for f in box.children(box.root_id)].count("IA") == 1
    assert fake.graph_requests(r"/mailFolders$", method="POST")[0].status == 409


# ------------------------------------------------------------------ move
def test_move_keeps_the_immutable_id_and_is_a_no_op_when_already_there(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    original = box.deliver(mail(1))
    ref = first_ref(connector)

    moved = connector.move(ref, "IA/Adhésion")

    assert moved.folder == "IA/Adhésion" and moved.key == ref.key
    # Exchange gave the moved item a new (default) id; the immutable id the connector asked for stays.
    assert moved.uid == ref.uid == original.immutable_id and original.id not in dict(box.messages)
    assert all('IdType="ImmutableId"' in s.headers.get("prefer", "") for s in fake.graph_requests())
    assert box.messages[moved.uid].folder_id == box.folder_by_path("IA/Adhésion").id
    before = len(fake.graph_requests(r"/move$"))
    assert connector.move(moved, "ia/adhésion") == moved
    assert len(fake.graph_requests(r"/move$")) == before


def test_move_after_an_interrupted_run_finds_the_message_where_it_went(connector: M365Connector, box: FakeMailbox) -> None:
    box.deliver(mail(1))
    ref = first_ref(connector)
    done = connector.move(ref, "IA/Adhésion")  # the killed run did move it, then died before recording

    again = connector.move(ref, "IA/Adhésion")  # the re-run repeats the action with the old ref

    assert again == done


def test_move_does_not_fight_a_person_who_moved_it_elsewhere(connector: M365Connector, box: FakeMailbox) -> None:
    msg = box.deliver(mail(1))
    ref = first_ref(connector)
    box.move(msg, box.folder_by_path("inbox/Presse").id)

    with pytest.raises(ConnectorError, match="moved by someone"):
        connector.move(ref, "IA/Adhésion")


# ------------------------------------------------------------------ categories
def test_categories_are_created_once_with_a_colour_and_added_without_losing_others(
    make_config: Callable[..., M365Config], box: FakeMailbox, fake: FakeM365
) -> None:
    box.deliver(mail(1), categories=["Urgent"])
    box.deliver(mail(2))
    with M365Connector(make_config(category_colors={"Adhésion": "Green"})) as conn:
        refs = [m.ref for p in conn.fetch_new("Inbox", None) for m in p.messages]
        for ref in refs:
            conn.add_label(ref, "Adhésion")
        conn.add_label(refs[0], "Adhésion")  # already there: nothing to do
        conn.add_label(refs[1], "Presse")

    assert [(c["displayName"], c["color"]) for c in box.master_categories] == [("Adhésion", "preset4"), ("Presse", "preset7")]
    assert len(fake.graph_requests(r"/masterCategories$", method="POST")) == 2
    assert box.messages[refs[0].uid].categories == ["Urgent", "Adhésion"]
    assert box.messages[refs[1].uid].categories == ["Adhésion", "Presse"]
    assert len(fake.graph_requests(r"/messages/[^/]+$", method="PATCH")) == 3


def test_existing_master_category_is_reused_whatever_its_case(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    box.master_categories.append({"id": "c1", "displayName": "ADHÉSION", "color": "preset0"})
    box.deliver(mail(1))
    ref = first_ref(connector)

    connector.add_label(ref, "Adhésion")

    assert fake.graph_requests(r"/masterCategories$", method="POST") == []
    assert box.messages[ref.uid].categories == ["ADHÉSION"]


def test_category_edit_racing_a_person_is_retried_with_a_fresh_etag(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    msg = box.deliver(mail(1))
    ref = first_ref(connector)

    def person_edits(path: str) -> None:
        msg.categories = ["Suivi Marie"]
        box.touch(msg)

    fake.before("PATCH", rf"/messages/{msg.immutable_id}$", person_edits)
    connector.add_label(ref, "Adhésion")

    assert msg.categories == ["Suivi Marie", "Adhésion"]
    assert [s.status for s in fake.graph_requests(r"/messages/[^/]+$", method="PATCH")] == [412, 200]


def test_without_mailbox_settings_permission_categories_still_work_without_colour(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365, caplog: pytest.LogCaptureFixture
) -> None:
    box.deliver(mail(1))
    ref = first_ref(connector)
    fake.fail("GET", r"/masterCategories$", 403, code="ErrorAccessDenied", message="Access is denied.")

    with caplog.at_level(logging.WARNING, logger="assoc_ai_m365"):
        connector.add_label(ref, "Adhésion")

    assert box.messages[ref.uid].categories == ["Adhésion"] and box.master_categories == []
    assert "MailboxSettings.ReadWrite" in caplog.text


@pytest.mark.parametrize("bad", ["", "Adhésion, Presse"])
def test_bad_category_names_are_refused(connector: M365Connector, box: FakeMailbox, bad: str) -> None:
    box.deliver(mail(1))
    with pytest.raises(ConfigError, match="Invalid Outlook category name"):
        connector.add_label(first_ref(connector), bad)


# ------------------------------------------------------------------ forward
def test_forward_sends_the_original_attached_and_marked_automated_once(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    raw = mail(1, subject="Proposition de partenariat – mécénat", attachment=True)
    box.deliver(raw)
    ref = first_ref(connector)

    connector.forward(ref, raw, "Trésorier <tresorier@asso-patrimoine.fr>")
    connector.forward(ref, raw, "tresorier@asso-patrimoine.fr")  # repeated after a crash: not sent twice

    assert len(fake.sent) == 1
    sent = email.message_from_bytes(fake.sent[0], policy=email.policy.default)
    assert sent["Auto-Submitted"] == "auto-forwarded"
    assert sent["X-Auto-Response-Suppress"] == "All"
    assert sent["To"] == "tresorier@asso-patrimoine.fr" and sent["From"] == MAILBOX
    assert sent["Subject"] == "Fwd: Proposition de partenariat – mécénat"
    assert sent["References"] == "<1.adhesion@exemple.fr>"
    parts = [p for p in sent.iter_attachments()]
    assert [p.get_content_type() for p in parts] == ["message/rfc822"]
    inner = parts[0].get_content()
    assert inner["Message-ID"] == "<1.adhesion@exemple.fr>"
    assert [a.get_filename() for a in inner.iter_attachments()] == ["bulletin-adhésion.pdf"]
    assert len(box.in_folder("sentitems")) == 1  # Graph keeps a copy in Sent Items


def test_forward_to_a_bad_address_is_refused(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    raw = mail(1)
    box.deliver(raw)
    with pytest.raises(ConfigError, match="Invalid forward address"):
        connector.forward(first_ref(connector), raw, "trésorier")
    assert fake.sent == []


# ------------------------------------------------------------------ subject tag
def test_subject_tag_is_declared_absent_because_graph_refuses_it_on_received_mail(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365
) -> None:
    box.deliver(mail(1))
    ref = first_ref(connector)

    assert Capability.TAG_SUBJECT not in M365Connector.capabilities
    with pytest.raises(CapabilityError, match="tag_subject"):
        connector.tag_subject(ref, "[#Adhésion]")
    # What Graph answers if one tries anyway (v1.0 "Update message": subject only while isDraft).
    with pytest.raises(ConnectorError) as err:
        connector.graph.request("PATCH", connector.graph.user_url(f"/messages/{ref.uid}"), json={"subject": "[#Adhésion] x"})
    assert getattr(err.value, "status", None) == 400
    assert box.messages[ref.uid].subject.startswith("Demande d'adhésion")


def test_capabilities_and_config_are_what_the_host_expects(make_config: Callable[..., Any]) -> None:
    assert M365Connector.capabilities == {Capability.READ, Capability.MOVE, Capability.LABEL,
                                          Capability.CREATE_FOLDER, Capability.FORWARD}
    cfg = make_config()
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in repr(M365Connector(cfg))


def test_forward_is_not_repeated_when_graph_may_have_sent_it(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    from assoc_ai_core.errors import ForwardError

    raw = mail(1)
    box.deliver(raw)
    ref = first_ref(connector)
    fake.fail("POST", r"/sendMail$", 504)

    with pytest.raises(ForwardError) as err:
        connector.forward(ref, raw, "tresorier@asso-patrimoine.fr")

    assert err.value.maybe_sent and err.value.connector_id == "m365"
    assert len(fake.graph_requests(r"/sendMail$")) == 1  # a 504 may hide a sent message: not repeated


def test_forward_throttled_is_retried_and_a_refusal_is_reported_as_not_sent(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365
) -> None:
    from assoc_ai_core.errors import ForwardError

    raw = mail(1)
    box.deliver(raw)
    ref = first_ref(connector)
    fake.fail("POST", r"/sendMail$", 429, retry_after="0")
    connector.forward(ref, raw, "tresorier@asso-patrimoine.fr")
    assert len(fake.sent) == 1 and [s.status for s in fake.graph_requests(r"/sendMail$")] == [429, 202]

    fake.fail("POST", r"/sendMail$", 400, code="ErrorMimeContentInvalidBase64String")
    with pytest.raises(ForwardError) as err:
        connector.forward(ref, raw, "bureau@asso-patrimoine.fr")
    assert err.value.maybe_sent is False and len(fake.sent) == 1
