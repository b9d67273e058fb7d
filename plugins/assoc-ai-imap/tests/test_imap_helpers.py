"""Pure helpers on real mail: keys, subject tags, keywords, folder names, error translation."""

from __future__ import annotations

import socket
import ssl
import tarfile
from pathlib import Path

import pytest
from assoc_ai_imap.errors import translate
from assoc_ai_imap.folders import FolderNames
from assoc_ai_imap.keywords import to_keyword
from imapclient import exceptions as imap_exc

from assoc_ai_core.errors import AuthError, CapabilityError, ConnectorError, TransientError
from assoc_ai_core.ext import subject as hdr
from assoc_ai_core.mail.parsing import parse_message

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
MAILBOX = FIXTURES / "mailbox"
SPAMASSASSIN = FIXTURES / "spamassassin_sample.tar.gz"


@pytest.fixture(scope="module")
def real_mail() -> list[bytes]:
    """The 24 test-mailbox mails plus 160 SpamAssassin messages (odd charsets, HTML, broken headers)."""
    assert MAILBOX.is_dir() and SPAMASSASSIN.is_file(), f"test mail is read from {FIXTURES}"
    out = [p.read_bytes() for p in sorted(MAILBOX.glob("*/*.eml"))]
    with tarfile.open(SPAMASSASSIN) as tar:
        for member in tar.getmembers():
            if member.isfile():
                out.append(tar.extractfile(member).read())  # type: ignore[union-attr]
    return out


def test_message_key_matches_the_core_parser(real_mail: list[bytes]) -> None:
    for raw in real_mail:
        assert hdr.message_key(raw) == parse_message(raw).key
        head = hdr.split_head(raw)[0]
        from_head = hdr.key_from_head(head)
        assert from_head is None or from_head == parse_message(raw).key


def test_tagging_real_mail_changes_only_the_subject(real_mail: list[bytes]) -> None:
    for raw in real_mail:
        before = parse_message(raw)
        key = before.key
        tagged = hdr.tag_subject_bytes(raw, "[#Adhésion]", key, mark=True)
        after = parse_message(tagged)
        assert after.key == key
        assert after.subject == f"[#Adhésion] {hdr.read_subject(raw)}".strip()
        assert after.text == before.text and after.attachments == before.attachments
        assert hdr.split_head(tagged)[1] == (hdr.split_head(raw)[1] or hdr.split_head(tagged)[2])
        assert hdr.original_key(tagged) == key and hdr.is_tagged(tagged, "[#Adhésion]")
        assert all(line.isascii() for line in hdr.split_head(tagged)[0].splitlines()
                   if line.lower().startswith((b"subject:", b"x-assoc-ai:")))


def test_retagging_replaces_our_own_tag_only() -> None:
    raw = b"Subject: [#Presse] [#Autre-chose] Article\r\nMessage-ID: <a@b>\r\n\r\ncorps\r\n"
    once = hdr.tag_subject_bytes(raw, "[#Presse]", "a@b", mark=True)
    assert hdr.read_subject(once) == "[#Presse] [#Presse] [#Autre-chose] Article"  # not ours before: kept
    twice = hdr.tag_subject_bytes(once, "[#Evenement]", "a@b", mark=True)
    assert hdr.read_subject(twice) == "[#Evenement] [#Presse] [#Autre-chose] Article"
    assert twice.count(b"X-Assoc-AI:") == 1 and twice.endswith(b"\r\n\r\ncorps\r\n")


def test_tagging_keeps_lf_line_endings_and_headerless_bodies() -> None:
    raw = b"From: a@b.c\nSubject: Bonjour\n\nligne 1\nligne 2\n"
    tagged = hdr.tag_subject_bytes(raw, "[#Autre]", "k@x", mark=True)
    assert b"\r" not in tagged and tagged.endswith(b"\n\nligne 1\nligne 2\n")
    only_headers = b"From: a@b.c\r\nSubject: vide"
    tagged = hdr.tag_subject_bytes(only_headers, "[#Autre]", "k@x", mark=True)
    assert hdr.read_subject(tagged) == "[#Autre] vide" and tagged.endswith(b"\r\n\r\n")


def test_eight_bit_subjects_are_read_and_reencoded() -> None:
    raw = "Subject: Adhésion café\r\nMessage-ID: <z@y>\r\n\r\nx\r\n".encode()
    tagged = hdr.tag_subject_bytes(raw, "[#Adhésion]", "z@y", mark=True)
    assert hdr.read_subject(tagged) == "[#Adhésion] Adhésion café"
    assert hdr.split_head(tagged)[0].isascii()


def test_keyless_copies_keep_their_key() -> None:
    raw = b"From: a@b.c\r\nSubject: Sans identifiant\r\n\r\ntexte\r\n"
    key = parse_message(raw).key
    assert key.startswith("sha256:")
    tagged = hdr.tag_subject_bytes(raw, "[#Autre]", key, mark=True)
    assert parse_message(tagged).key == key == hdr.message_key(tagged)
    assert hdr.key_from_head(hdr.split_head(tagged)[0]) == key
    assert hdr.key_from_head(hdr.split_head(raw)[0]) is None  # the bytes are needed for this one


@pytest.mark.parametrize("label, keyword", [
    ("Adhésion", "$Adhesion"),
    ("Question générale", "$Question_generale"),
    ("À vérifier", "$A_verifier"),
    ("Presse/Médias (urgent) *", "$Presse_Medias_urgent"),
    ("\\Seen", "$Seen"),
    ("Événement", "$Evenement"),
])
def test_keywords_are_imap_atoms(label: str, keyword: str) -> None:
    assert to_keyword(label) == keyword


def test_keyword_of_a_label_without_latin_letters_is_stable() -> None:
    first, second = to_keyword("会员"), to_keyword("会员")
    assert first == second and first.startswith("$label_") and first.isascii()
    assert len(to_keyword("x" * 500)) <= 61


@pytest.mark.parametrize("names, host, server", [
    (FolderNames("/", ""), "IA/Adhésion", "IA/Adhésion"),
    (FolderNames(".", ""), "IA/Adhésion", "IA.Adhésion"),
    (FolderNames(".", "INBOX."), "IA/Adhésion", "INBOX.IA.Adhésion"),
    (FolderNames(".", "INBOX."), "INBOX", "INBOX"),
    (FolderNames(".", "INBOX."), "inbox", "INBOX"),
    (FolderNames(".", "INBOX."), "INBOX/Dons", "INBOX.Dons"),
    (FolderNames("/", ""), "/À vérifier/", "À vérifier"),
])
def test_folder_names_round_trip(names: FolderNames, host: str, server: str) -> None:
    assert names.to_server(host) == server
    expected = "INBOX" if host.upper() == "INBOX" else host.strip("/")
    if host.startswith("INBOX/"):
        expected = "Dons"  # INBOX/Dons and Dons are the same folder under an INBOX. prefix
    assert names.to_host(server) == expected


def test_lineage_lists_parents_below_the_prefix() -> None:
    assert FolderNames(".", "INBOX.").lineage("INBOX.IA.Adhésion") == ["INBOX.IA", "INBOX.IA.Adhésion"]
    assert FolderNames("/", "").lineage("IA/Adhésion") == ["IA", "IA/Adhésion"]


@pytest.mark.parametrize("exc, kind", [
    (imap_exc.LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'"), AuthError),
    (imap_exc.LoginError("[UNAVAILABLE] Temporary authentication failure."), TransientError),
    (imap_exc.CapabilityError("Server does not support MOVE"), CapabilityError),
    (imap_exc.IMAPClientAbortError("socket error: EOF"), TransientError),
    (ConnectionRefusedError(111, "Connection refused"), TransientError),
    (TimeoutError("timed out"), TransientError),
    (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), TransientError),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), ConnectorError),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), ConnectorError),
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), TransientError),
    (imap_exc.IMAPClientError("select failed: Mailbox doesn't exist"), ConnectorError),
    (imap_exc.IMAPClientError("[INUSE] Mailbox is locked"), TransientError),
    (ValueError("odd response"), ConnectorError),
])
def test_library_errors_become_assoc_ai_errors(exc: BaseException, kind: type, monkeypatch: pytest.MonkeyPatch) -> None:
    for lang in ("fr", "en"):
        monkeypatch.setenv("ASSOC_AI_LANG", lang)
        err = translate(exc, action="fetch_new", host="imap.example.org")
        assert type(err) is kind and err.connector_id == "imap"
        assert "imap.example.org" in str(err)
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    english = str(translate(exc, action="fetch_new", host="h"))
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    assert str(translate(exc, action="fetch_new", host="h")) != english
