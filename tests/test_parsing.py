"""Reading raw mail: charsets, MIME structures, attachments, broken input."""

from __future__ import annotations

import base64
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from assoc_ai_core.mail.parsing import decode_bytes, decode_header, parse_message

HEAD = b"From: =?utf-8?q?H=C3=A9l=C3=A8ne?= <helene@exemple.test>\r\nTo: info@asso.test\r\nMessage-ID: <abc@x>\r\n"


def test_declared_latin1_quoted_printable():
    raw = HEAD + (b"Subject: =?iso-8859-1?q?Adh=E9sion?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
                  b"Content-Transfer-Encoding: quoted-printable\r\n\r\nJe souhaite adh=E9rer =E0 l'association.\r\n")
    m = parse_message(raw)
    assert m.error is None
    assert m.subject == "Adhésion"
    assert "adhérer à l'association" in m.text
    assert m.sender == "helene@exemple.test" and m.sender_name == "Hélène"
    assert m.key == "abc@x"


def test_undeclared_charset_with_8bit_bytes_is_read_as_windows_1252():
    raw = HEAD + b"Subject: test\r\nContent-Type: text/plain\r\n\r\nCotisation pay\xe9e : 15 \x80\r\n"
    m = parse_message(raw)
    assert "payée : 15 €" in m.text
    assert any("8-bit" in d for d in m.defects)


def test_wrong_declared_charset_utf8_labelled_latin1():
    raw = HEAD + b"Subject: t\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n" + "Bénévolat été".encode()
    assert "Bénévolat été" in parse_message(raw).text


def test_wrong_declared_charset_latin1_labelled_utf8():
    raw = HEAD + b"Subject: t\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nB\xe9n\xe9volat\r\n"
    assert "Bénévolat" in parse_message(raw).text


def test_unknown_charset_does_not_crash():
    raw = HEAD + b"Subject: t\r\nContent-Type: text/plain; charset=x-made-up\r\n\r\nBonjour\r\n"
    m = parse_message(raw)
    assert "Bonjour" in m.text and m.error is None


def test_base64_html_only_becomes_text():
    html = "<html><body><p>Bonjour,</p><p>Je veux <b>adhérer</b>.</p><script>x()</script></body></html>"
    raw = HEAD + (b"Subject: t\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                  + base64.encodebytes(html.encode("utf-8")))
    m = parse_message(raw)
    assert m.html is True
    assert "Je veux adhérer." in m.text and "x()" not in m.text


def test_multipart_alternative_prefers_plain_and_keeps_attachment_names():
    raw = HEAD + b"""Subject: t
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="B1"

--B1
Content-Type: multipart/alternative; boundary="B2"

--B2
Content-Type: text/plain; charset=utf-8

Texte brut
--B2
Content-Type: text/html; charset=utf-8

<p>Texte HTML</p>
--B2--
--B1
Content-Type: application/pdf
Content-Disposition: attachment; filename*=utf-8''bulletin%20d%27adh%C3%A9sion.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--B1--
"""
    m = parse_message(raw)
    assert m.text.strip() == "Texte brut"
    assert [(a.filename, a.content_type) for a in m.attachments] == [("bulletin d'adhésion.pdf", "application/pdf")]


def test_truncated_multipart_is_salvaged_and_flagged():
    raw = HEAD + b"Subject: t\r\nContent-Type: multipart/mixed; boundary=ZZ\r\n\r\n--ZZ\r\nContent-Type: text/plain\r\n\r\nD\xe9but du message"
    m = parse_message(raw)
    assert m.error is None and "Début du message" in m.text
    assert "CloseBoundaryNotFoundDefect" in m.defects


def test_garbage_and_empty_input_reported_not_raised(monkeypatch):
    assert parse_message(b"").error == "message vide"
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    assert parse_message(b"").error == "empty message"
    m = parse_message(b"\x00\x01\x02 not an email at all")
    assert m.error is not None or m.text  # either salvaged as text or reported, never an exception
    assert parse_message(b"texte str").key.startswith("sha256:")


def test_message_without_id_gets_stable_digest_key():
    raw = b"Subject: a\r\n\r\nbody\r\n"
    assert parse_message(raw).key == parse_message(raw).key
    assert parse_message(raw).key != parse_message(raw + b"x").key


def test_automated_mail_detected():
    raw = b"From: mailer-daemon@x.test\r\nAuto-Submitted: auto-replied\r\nSubject: absent\r\n\r\nje suis absent\r\n"
    assert parse_message(raw).is_automated
    assert not parse_message(HEAD + b"Subject: s\r\n\r\nb\r\n").is_automated


def test_decode_helpers():
    assert decode_header("=?utf-8?q?Conf=C3=A9rence?= du 14") == "Conférence du 14"
    assert decode_header("=?broken") == "=?broken"
    assert decode_bytes(b"caf\xc3\xa9", "latin-1")[0] == "café"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_never_raises_on_random_bytes(data: bytes):
    m = parse_message(data)
    assert m.key


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_parse_never_raises_on_random_mime_bodies(body: str):
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=Q\r\n\r\n--Q\r\n" + body.encode("utf-8", "surrogatepass")
    assert parse_message(raw).key


def test_every_fixture_message_reads(fixtures_dir):
    from assoc_ai_core.mail.sources import load_dataset

    ds = load_dataset(fixtures_dir / "mailbox")
    assert len(ds.messages) == 24
    assert ds.problems == []
    assert all(m.text.strip() and m.subject for m in ds.messages)
    # Latin-1 / Windows-1252 quoted-printable, HTML-only and an attachment all read as plain French text
    assert any("adhésion" in m.text and "Lefèvre" in m.text for m in ds.messages)
    assert not any("<p>" in m.text or "=E9" in m.text for m in ds.messages)


def test_spamassassin_sample_reads_without_crash(fixtures_dir):
    read = 0
    with tarfile.open(fixtures_dir / "spamassassin_sample.tar.gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            m = parse_message(tar.extractfile(member).read(), source=member.name)
            assert m.key
            read += 1
    assert read == 160


def test_raw_8bit_headers_are_decoded_not_blanked():
    raw = "From: Hélène Côté <h@x.test>\r\nSubject: Adhésion été\r\n\r\ncorps\r\n".encode()
    m = parse_message(raw)
    assert m.subject == "Adhésion été" and m.sender_name == "Hélène Côté"
    latin = "Subject: Bénévolat\r\n\r\ncorps\r\n".encode("latin-1")
    assert parse_message(latin).subject == "Bénévolat"


def test_simple_address_headers_read_as_the_standard_parser_reads_them():
    import email.utils

    from assoc_ai_core.mail.parsing import _addresses, _sender

    values = [
        "marie@exemple.fr", "Marie Dupont <marie@exemple.fr>", "<marie@exemple.fr>",
        "Marie  Dupont   <Marie@Exemple.FR>, bob@x.org ,, <c@d.e>", "undisclosed-recipients",
        '"Dupont, Marie" <marie@exemple.fr>', "marie@exemple.fr (Marie)", "J. Dupont <j@x.fr>",
        "liste: a@b.c, d@e.f;", "a@b@c.d", "Marie <marie@exemple.fr> extra", "Marie <marie@exemple.fr",
        "Éloïse Müller <eloise@exemple.fr>", "a@b.c <a@b.c>", "",
    ]
    for value in values:
        expected = tuple(a.lower() for _, a in email.utils.getaddresses([value]) if a)
        assert _addresses([value]) == expected, value
        assert _sender(value) == email.utils.parseaddr(value), value


def test_files_that_are_not_mail_are_reported_with_what_they_are(monkeypatch):
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    outlook = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)
    assert parse_message(outlook).error.startswith("Outlook .msg file") and ".eml" in parse_message(outlook).error
    assert parse_message(b"%PDF-1.7\n%\xe2\xe3\n1 0 obj").error.startswith("PDF document")
    assert parse_message(b"PK\x03\x04\x14\x00word/document.xml").error.startswith("ZIP / Office document")
    assert parse_message(b"\x89PNG\r\n\x1a\n\x00\x00").error.startswith("PNG document")
    assert parse_message(b"Subject: hi\n\n\x00\x01\x02 binary").error.startswith("binary file")
    monkeypatch.setenv("ASSOC_AI_LANG", "fr")
    assert parse_message(outlook).error.startswith("fichier Outlook .msg")
    # Mail that merely talks about such files, or carries them as attachments, is mail.
    assert parse_message(b"Subject: %PDF-1.7 ci-joint\n\nVoir le PDF.").error is None


# Pieces hostile and sloppy mail is made of: 8-bit bytes, encoded-words, odd line ends, folding, blank lines.
_KEY_PIECES = st.sampled_from([
    b"<a@b>", b"<\xe9t\xe9@x>", b"\xc3\xa9", b"\xff", b" ", b"\t", b"=?utf-8?q?a=C3=A9?=", b"=?bad", b"<", b">",
    b"x", b"@", b"\r\n", b"\n", b"\r", b"\r\n ", b"\n\t", b":", b"\x00", b"Message-ID: ", b"message-id:",
])
_HEADER_NAMES = st.sampled_from([b"Message-ID", b"message-id", b"MESSAGE-ID", b"Subject", b"From", b"X-Pad", b"Received"])


@st.composite
def _raw_mail(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        value = b"".join(draw(st.lists(_KEY_PIECES, max_size=8)))
        lines.append(draw(_HEADER_NAMES) + b":" + draw(st.sampled_from([b" ", b"", b"\t"])) + value)
    if draw(st.booleans()):  # a header block over the 256 KB connectors read, before or after the Message-ID
        pad = b"X-Pad: " + b"y" * draw(st.integers(250_000, 270_000))
        lines.insert(draw(st.integers(0, len(lines))), pad)
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    body = draw(st.binary(max_size=50)) if draw(st.booleans()) else b"Bonjour"
    return eol.join(lines) + draw(st.sampled_from([eol + eol, eol, b""])) + body


@settings(max_examples=300, deadline=None)
@given(_raw_mail())
def test_message_key_equals_the_parsers_key(raw: bytes):
    from assoc_ai_core.ext.subject import message_key

    assert message_key(raw) == parse_message(raw).key


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_message_key_equals_the_parsers_key_on_random_bytes(raw: bytes):
    from assoc_ai_core.ext.subject import message_key

    assert message_key(raw) == parse_message(raw).key
