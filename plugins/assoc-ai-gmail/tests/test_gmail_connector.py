"""GmailConnector against the loopback Gmail API with the real google-api-python-client: labels and actions."""

from __future__ import annotations

import email
import email.policy
import json
import os
from pathlib import Path

import pytest
from assoc_ai_gmail import register_connectors
from assoc_ai_gmail.connector import GmailConfig, GmailConnector

from assoc_ai_core.errors import CapabilityError, ConfigError, ConnectorError
from assoc_ai_core.ext.config import Secret, build_config, load_config, redact
from assoc_ai_core.ext.connectors import Capability, ConnectorRegistry, MailRef
from assoc_ai_core.mail.parsing import parse_message


def test_plugin_registers_gmail_connector_by_entry_point() -> None:
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="assoc_ai") if ep.name == "gmail"]
    assert eps and eps[0].value == "assoc_ai_gmail"
    registry = ConnectorRegistry()
    register_connectors(registry=registry)
    cls = registry.get("gmail")
    assert cls is GmailConnector and cls.kind == "mailbox"
    assert registry.origin("gmail") == "assoc-ai-gmail"


def test_capabilities_say_no_subject_tagging() -> None:
    caps = GmailConnector.capabilities
    assert {Capability.READ, Capability.MOVE, Capability.LABEL, Capability.CREATE_FOLDER, Capability.FORWARD} <= caps
    assert Capability.TAG_SUBJECT not in caps
    assert "tag_subject" in GmailConnector.unsupported
    assert "cannot edit" in GmailConnector.description


def test_constructing_does_no_io_and_hides_the_token(token_json: str) -> None:
    conn = GmailConnector(GmailConfig(token=Secret(token_json), api_endpoint="http://127.0.0.1:9/"))
    assert conn._service is None  # no connection attempted (port 9 would refuse it)
    text = repr(conn.config)
    assert "refresh_token" not in text and "***" in text
    conn.close()
    conn.close()  # safe twice


def test_config_from_toml_with_token_file_reference(tmp_path: Path, fake_gmail, token_json: str, mail) -> None:
    token_file = tmp_path / "gmail-token.json"
    token_file.write_text(token_json)
    os.chmod(token_file, 0o600)
    config_file = tmp_path / "assoc_ai.toml"
    config_file.write_text(
        "[connectors.gmail]\n"
        f'token = {{ file = "{token_file}" }}\n'
        f'api_endpoint = "{fake_gmail.url}"\n'
        f'auth_endpoint = "{fake_gmail.token_uri}"\n'
    )
    os.chmod(config_file, 0o600)
    section = load_config(config_file)["connectors"]["gmail"]
    cfg = build_config(GmailConfig, section, where="connectors.gmail")
    assert isinstance(cfg.token, Secret)
    assert "refresh_token" not in json.dumps(redact({"connectors": {"gmail": {"token": cfg.token}}}))
    fake_gmail.deliver(mail(1))
    with GmailConnector(cfg) as conn:
        assert conn.email_address == "info@asso.example"
        assert len(list(conn.fetch_all("INBOX"))) == 1


def test_config_refuses_two_ways_to_sign_in(token_json: str) -> None:
    with pytest.raises(ConfigError, match="service_account_file"):
        build_config(GmailConfig, {"token": token_json, "service_account_file": "/x.json", "subject": "a@b"},
                     where="connectors.gmail")


def test_missing_authorisation_says_to_run_auth() -> None:
    conn = GmailConnector(GmailConfig())
    with pytest.raises(ConfigError) as err:
        conn.open()
    assert "assoc-ai gmail auth" in str(err.value)


def test_token_that_is_not_json_is_a_clear_config_error(fake_gmail) -> None:
    conn = GmailConnector(GmailConfig(token=Secret("not json"), api_endpoint=fake_gmail.url))
    with pytest.raises(ConfigError, match="gmail auth"):
        conn.open()


def test_list_folders_inbox_first_then_user_labels(connector: GmailConnector, fake_gmail) -> None:
    fake_gmail.create_label("Bénévolat")
    fake_gmail.create_label("Adhésion")
    assert connector.list_folders() == ["INBOX", "Adhésion", "Bénévolat"]


def test_nested_labels_created_with_their_parents(connector: GmailConnector, fake_gmail) -> None:
    connector.ensure_folder("IA/Adhésion")
    connector.ensure_folder("IA/Bénévolat")
    names = {lab["name"] for lab in fake_gmail.labels.values() if lab["type"] == "user"}
    assert names == {"IA", "IA/Adhésion", "IA/Bénévolat"}
    creates = fake_gmail.calls(r"POST /gmail/v1/users/me/labels$")
    assert [c.body["name"] for c in creates] == ["IA", "IA/Adhésion", "IA/Bénévolat"]
    assert all(c.body["labelListVisibility"] == "labelShow" for c in creates)
    connector.ensure_folder("IA/Adhésion")  # idempotent: nothing more created
    assert len(fake_gmail.calls(r"POST /gmail/v1/users/me/labels$")) == 3
    assert "IA/Adhésion" in connector.list_folders()


def test_label_created_meanwhile_in_the_web_ui_is_reused(connector: GmailConnector, fake_gmail) -> None:
    connector.list_folders()  # label index loaded before the volunteer acts
    lid = fake_gmail.create_label("Presse")
    connector.ensure_folder("presse")  # other capitals: Gmail names are case-insensitive
    assert [lab for lab in fake_gmail.labels.values() if lab["name"].lower() == "presse"] == [fake_gmail.labels[lid]]


def test_bad_label_names_are_refused_clearly(connector: GmailConnector) -> None:
    with pytest.raises(ConfigError, match="vide|empty"):
        connector.ensure_folder("IA//Presse")


def test_move_adds_target_and_archives(connector: GmailConnector, fake_gmail, mail) -> None:
    mid = fake_gmail.deliver(mail(1))
    (fetched,) = list(connector.fetch_all("INBOX"))
    new_ref = connector.move(fetched.ref, "IA/Adhésion")
    assert new_ref == MailRef(folder="IA/Adhésion", uid=mid, key="demande-1@example.org")
    assert fake_gmail.labels_of(mid) == {"IA/Adhésion", "UNREAD"}  # out of INBOX: archived, still unread
    # idempotent: moving again changes nothing and records no history
    history_before = len(fake_gmail.history)
    assert connector.move(new_ref, "IA/Adhésion") == new_ref
    assert connector.move(fetched.ref, "IA/Adhésion").folder == "IA/Adhésion"
    assert len(fake_gmail.history) == history_before
    assert fake_gmail.labels_of(mid) == {"IA/Adhésion", "UNREAD"}


def test_label_deleted_in_web_ui_is_recreated(connector: GmailConnector, fake_gmail, mail) -> None:
    ids = [fake_gmail.deliver(mail(i)) for i in range(2)]
    refs = [f.ref for f in connector.fetch_all("INBOX")]
    connector.move(refs[0], "IA/Presse")
    fake_gmail.delete_label("IA/Presse")  # the connector still has the old label id in memory
    connector.move(refs[1], "IA/Presse")
    assert "IA/Presse" in fake_gmail.labels_of(ids[0] if refs[1].uid == ids[0] else ids[1])
    assert [lab["name"] for lab in fake_gmail.labels.values()].count("IA/Presse") == 1


def test_move_from_review_label_removes_that_label(connector: GmailConnector, fake_gmail, mail) -> None:
    connector.ensure_folder("IA/À vérifier")
    mid = fake_gmail.deliver(mail(1), labels=(fake_gmail.label_id("IA/À vérifier"),))
    ref = MailRef("IA/À vérifier", mid, "demande-1@example.org")
    connector.move(ref, "IA/Presse")
    assert fake_gmail.labels_of(mid) == {"IA/Presse"}


def test_add_label_is_a_tag_that_keeps_message_in_place(connector: GmailConnector, fake_gmail, mail) -> None:
    mid = fake_gmail.deliver(mail(1))
    (fetched,) = list(connector.fetch_all("INBOX"))
    connector.add_label(fetched.ref, "Adhésion")
    connector.add_label(fetched.ref, "Adhésion")
    connector.add_label(fetched.ref, "#Adhésion")  # already prefixed: same label
    assert fake_gmail.labels_of(mid) == {"INBOX", "UNREAD", "#Adhésion"}
    # a tag is not a folder: the message is still filed in the inbox only
    assert connector.locate([fetched.ref])[fetched.ref.key] == [fetched.ref]
    assert "#Adhésion" not in connector.list_folders()


def test_empty_label_prefix_makes_labels_folders(make_connector, fake_gmail, mail) -> None:
    conn = make_connector(label_prefix="")
    mid = fake_gmail.deliver(mail(1))
    (fetched,) = list(conn.fetch_all("INBOX"))
    conn.add_label(fetched.ref, "Adhésion")
    assert fake_gmail.labels_of(mid) == {"INBOX", "UNREAD", "Adhésion"}
    assert [r.folder for r in conn.locate([fetched.ref])[fetched.ref.key]] == ["INBOX", "Adhésion"]


def test_move_many_uses_batch_modify(connector: GmailConnector, fake_gmail, mail) -> None:
    ids = [fake_gmail.deliver(mail(i)) for i in range(5)]
    refs = [f.ref for f in connector.fetch_all("INBOX")]
    moved = connector.move_many(refs, "IA/Adhésion")
    assert set(moved) == {r.key for r in refs} and {r.folder for r in moved.values()} == {"IA/Adhésion"}
    assert all(fake_gmail.labels_of(i) == {"IA/Adhésion", "UNREAD"} for i in ids)
    (call,) = fake_gmail.calls(r"POST .*/messages/batchModify$")
    assert sorted(call.body["ids"]) == sorted(ids) and call.body["removeLabelIds"] == ["INBOX"]
    assert not fake_gmail.calls(r"/modify$")
    connector.add_label_many(list(moved.values()), "Suivi")
    assert len(fake_gmail.calls(r"POST .*/messages/batchModify$")) == 2
    assert all(fake_gmail.labels_of(i) == {"IA/Adhésion", "UNREAD", "#Suivi"} for i in ids)


def test_tag_subject_is_refused_with_the_reason(connector: GmailConnector, monkeypatch) -> None:
    ref = MailRef("INBOX", "x", "k")
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    with pytest.raises(CapabilityError, match="Gmail ne permet pas de modifier un message reçu"):
        connector.tag_subject(ref, "[#Adhésion]")
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    with pytest.raises(CapabilityError, match="Gmail cannot edit a received message"):
        connector.tag_subject(ref, "[#Adhésion]")


def test_forward_sends_natively_with_auto_submitted(connector: GmailConnector, fake_gmail, mail) -> None:
    raw = mail(3, subject="Proposition de partenariat été")
    fake_gmail.deliver(raw)
    (fetched,) = list(connector.fetch_all("INBOX"))
    connector.forward(fetched.ref, fetched.raw, "tresorier@asso.example")
    (sent,) = fake_gmail.sent
    msg = email.message_from_bytes(sent, policy=email.policy.default)
    assert msg["Auto-Submitted"] == "auto-forwarded"
    assert msg["X-Assoc-AI"] == "forwarded"
    assert msg["To"] == "tresorier@asso.example" and msg["From"] == "info@asso.example"
    assert msg["Subject"] == "Fwd: Proposition de partenariat été"
    attached = [p for p in msg.iter_attachments() if p.get_content_type() == "message/rfc822"]
    assert len(attached) == 1
    inner = attached[0].get_content()
    assert inner["Message-ID"] == "<demande-3@example.org>"
    assert "adhérer" in inner.get_content()
    # the forward is read back by the core as automated mail: never forwarded again
    assert parse_message(sent).is_automated
    assert fake_gmail.messages[list(fake_gmail.messages)[-1]].label_ids == ["SENT"]


def test_forward_refuses_a_bad_address(connector: GmailConnector) -> None:
    with pytest.raises(ConfigError):
        connector.forward(MailRef("INBOX", "x", "k"), b"Subject: x\r\n\r\nx", "pas-une-adresse")


def test_locate_reports_human_corrections(connector: GmailConnector, fake_gmail, mail) -> None:
    mid = fake_gmail.deliver(mail(1))
    other = fake_gmail.deliver(mail(2))
    gone = fake_gmail.deliver(mail(3))
    refs = {f.ref.uid: f.ref for f in connector.fetch_all("INBOX")}
    placed = connector.move(refs[mid], "IA/Adhésion")
    connector.move(refs[other], "IA/Adhésion")
    connector.move(refs[gone], "IA/Adhésion")
    # a volunteer disagrees in the Gmail web interface
    fake_gmail.create_label("IA/Bénévolat")
    fake_gmail.relabel(mid, add=("IA/Bénévolat",), remove=("IA/Adhésion",))
    fake_gmail.relabel(other, add=("TRASH",))
    fake_gmail.delete(gone)
    where = connector.locate([placed, MailRef("IA/Adhésion", other, "demande-2@example.org"),
                              MailRef("IA/Adhésion", gone, "demande-3@example.org")])
    assert where == {
        "demande-1@example.org": [MailRef("IA/Bénévolat", mid, "demande-1@example.org")],
        "demande-2@example.org": [],
        "demande-3@example.org": [],
    }


def test_locate_without_gmail_id_searches_by_message_id(connector: GmailConnector, fake_gmail, mail) -> None:
    mid = fake_gmail.deliver(mail(4))
    fake_gmail.create_label("Presse")
    fake_gmail.relabel(mid, add=("Presse",))
    where = connector.locate([MailRef("INBOX", "", "demande-4@example.org")])
    assert where["demande-4@example.org"] == [MailRef("INBOX", mid, "demande-4@example.org"),
                                               MailRef("Presse", mid, "demande-4@example.org")]
    assert "rfc822msgid:demande-4@example.org" in fake_gmail.calls(r"GET .*/messages$")[-1].query["q"]


def test_fetch_all_reads_a_sorted_label_for_training(connector: GmailConnector, fake_gmail, mail) -> None:
    fake_gmail.create_label("Adhésion")
    for i in range(3):
        fake_gmail.deliver(mail(i), labels=(fake_gmail.label_id("Adhésion"),))
    fake_gmail.deliver(mail(9))
    got = list(connector.fetch_all("Adhésion"))
    assert sorted(f.ref.key for f in got) == [f"demande-{i}@example.org" for i in range(3)]
    assert all(f.ref.folder == "Adhésion" and parse_message(f.raw).subject.startswith("Demande") for f in got)


def test_unknown_folder_lists_existing_labels(connector: GmailConnector, fake_gmail) -> None:
    fake_gmail.create_label("Presse")
    with pytest.raises(ConnectorError, match="Presse"):
        list(connector.fetch_new("Inexistant", None))


def test_real_french_mail_round_trips_byte_exact(connector: GmailConnector, fake_gmail) -> None:
    corpus = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mailbox"
    files = sorted(corpus.glob("*/*.eml"))[:20]
    if not files:
        pytest.fail(f"test mailbox missing at {corpus}")
    raws = [p.read_bytes() for p in files]
    for raw in raws:
        fake_gmail.deliver(raw)
    got = sorted(f.raw for f in connector.fetch_all("INBOX"))
    assert got == sorted(raws)
