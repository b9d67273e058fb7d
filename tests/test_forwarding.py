"""Forwarding through a real SMTP server (aiosmtpd on 127.0.0.1): wrapping, RFC 3834, TLS, auth, loops."""

from __future__ import annotations

import email
import logging
import socket
from email.policy import default as default_policy
from pathlib import Path

import pytest

from assoc_ai_core.errors import AuthError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.jobs.forwarding import (
    ForwardError,
    SmtpForwarder,
    SmtpSettings,
    build_forward,
    forward_message_id,
    longest_line,
    should_forward,
)
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.testing.loopback import make_cert
from assoc_ai_core.testing.mailbox import sample_mail
from assoc_ai_core.testing.smtp import SmtpSink, free_port, kit_forward_config

USER, PASSWORD = "relais@asso.example", "s3cr3t-smtp-Pa55"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the CA a test client may choose to trust)."""
    return make_cert(tmp_path_factory.mktemp("tls"), "smtp")


@pytest.fixture
def plain_server():
    with SmtpSink() as sink:
        yield sink, sink.port


@pytest.fixture
def tls_server(certificate):
    with SmtpSink(login=USER, password=PASSWORD, certificate=certificate) as sink:
        yield sink, sink.port


ORIGINAL = sample_mail("Cotisation 2025", "Bonjour,\nje joins mon règlement de cotisation.\nÉlise",
                       sender="elise@exemple.org", message_id="cotis-42@exemple.org")


def test_forward_wraps_original_with_rfc3834_headers(plain_server) -> None:
    handler, port = plain_server
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="tri@asso.example")
    message_id = SmtpForwarder(settings).send(ORIGINAL, "tresorier@asso.example", category="Adhésion",
                                              key="cotis-42@exemple.org", subject="Cotisation 2025")
    [(mail_from, rcpts, data)] = handler.envelopes
    assert mail_from == "tri@asso.example" and rcpts == ["tresorier@asso.example"]
    msg = email.message_from_bytes(data, policy=default_policy)
    assert msg["Auto-Submitted"] == "auto-forwarded"
    assert msg["X-Assoc-AI"].startswith("forwarded; category=Adh")
    assert msg["Message-ID"] == message_id and msg["References"] == "<cotis-42@exemple.org>"
    assert "[#Adhésion]" in msg["Subject"]
    attached = [p for p in msg.iter_parts() if p.get_content_type() == "message/rfc822"]
    assert len(attached) == 1
    inner = attached[0].get_payload()[0]
    assert inner["Message-ID"] == "<cotis-42@exemple.org>"
    assert "règlement de cotisation" in inner.get_content()
    # the forward is itself recognised as automated and as ours: it can never be forwarded again
    again = parse_message(data)
    assert again.is_automated and should_forward(again)[0] is False


def test_one_connection_serves_a_run_and_a_dropped_one_is_replaced(plain_server) -> None:
    handler, port = plain_server
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="tri@asso.example")
    forwarder = SmtpForwarder(settings)
    for n in range(3):
        forwarder.send(ORIGINAL, f"membre{n}@asso.example", category="Adhésion", key=f"k{n}@exemple.org")
    assert len(handler.envelopes) == 3 and handler.greetings == 1
    assert forwarder._kept is not None
    forwarder._kept.sock.shutdown(socket.SHUT_RDWR)  # the server (or the network) dropped the idle connection
    forwarder.send(ORIGINAL, "tresorier@asso.example", category="Adhésion", key="k9@exemple.org")
    assert len(handler.envelopes) == 4 and handler.greetings == 2  # checked, replaced, sent once
    forwarder.close()
    forwarder.close()
    assert forwarder._kept is None


def test_should_forward_refuses_automated_and_our_own_mail() -> None:
    assert should_forward(parse_message(ORIGINAL)) == (True, "")
    for extra in ({"Auto-Submitted": "auto-replied"}, {"Precedence": "bulk"}, {"List-Id": "<l.asso.example>"},
                  {"X-Assoc-AI": "forwarded"}):
        ok, why = should_forward(parse_message(sample_mail("x", "y", headers=extra)))
        assert not ok and why
    assert not should_forward(parse_message(sample_mail("Undelivered", "x", sender="MAILER-DAEMON@mx.example")))[0]


def test_starttls_verifies_the_certificate_by_default(tls_server, certificate) -> None:
    handler, port = tls_server
    settings = SmtpSettings(host="127.0.0.1", port=port, username=USER, password=Secret(PASSWORD),
                            sender="tri@asso.example")
    with pytest.raises(ConnectorError, match="certificat"):
        SmtpForwarder(settings).send(ORIGINAL, "t@asso.example", category="A", key="k")
    assert handler.envelopes == []
    trusted = SmtpSettings(host="127.0.0.1", port=port, username=USER, password=Secret(PASSWORD),
                           sender="tri@asso.example", ca_file=str(certificate[0]))
    SmtpForwarder(trusted).send(ORIGINAL, "t@asso.example", category="A", key="k")
    assert len(handler.envelopes) == 1


def test_wrong_password_is_an_auth_error_without_the_password(tls_server, certificate, caplog) -> None:
    _, port = tls_server
    caplog.set_level(logging.DEBUG)
    settings = SmtpSettings(host="127.0.0.1", port=port, username=USER, password=Secret("not-the-Pa55word"),
                            sender="tri@asso.example", ca_file=str(certificate[0]), timeout=10)
    with pytest.raises(AuthError) as err:
        SmtpForwarder(settings).send(ORIGINAL, "t@asso.example", category="A", key="k")
    assert err.value.exit_code == 3
    assert "not-the-Pa55word" not in str(err.value) and "not-the-Pa55word" not in caplog.text
    assert "not-the-Pa55word" not in repr(settings)


def test_unreachable_server_is_transient_after_retries() -> None:
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), starttls=False, sender="t@asso.example", timeout=2)
    with pytest.raises(TransientError) as err:
        SmtpForwarder(settings).send(ORIGINAL, "t@asso.example", category="A", key="k")
    assert err.value.exit_code == 75


def test_server_without_starttls_is_refused_unless_configured(plain_server) -> None:
    _, port = plain_server
    settings = SmtpSettings(host="127.0.0.1", port=port, sender="t@asso.example")  # starttls on by default
    with pytest.raises(ConnectorError, match="STARTTLS"):
        SmtpForwarder(settings).send(ORIGINAL, "t@asso.example", category="A", key="k")


def test_settings_validation(monkeypatch) -> None:
    with pytest.raises(ValueError, match="ssl"):
        SmtpSettings(host="h", ssl=True, starttls=True)
    with pytest.raises(ValueError, match="password"):
        SmtpSettings(host="h", username="u@x.fr")
    monkeypatch.setenv("ASSOC_AI_TEST_SMTP_PW", PASSWORD)
    settings = SmtpSettings.from_section({"host": "smtp.asso.example", "username": USER,
                                          "password": {"env": "ASSOC_AI_TEST_SMTP_PW"}})
    assert settings.password.get() == PASSWORD and PASSWORD not in repr(settings)
    built = build_forward(ORIGINAL, to="a@b.fr", sender="c@d.fr", category="Presse", key="sha256:abc")
    assert built["References"] is None  # a digest key is not a Message-ID


def test_triage_forwards_through_smtp_once(plain_server, tmp_path: Path, monkeypatch) -> None:
    """The job with an [smtp] section and a real server: one forward per message, even over two runs."""
    from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
    from assoc_ai_core.jobs.triage import TriageJob
    from assoc_ai_core.persistence import save_model
    from assoc_ai_core.testing.mailbox import kit_messages, kit_model

    handler, port = plain_server
    model = save_model(kit_model(), tmp_path / "m.skops")
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    keys = [conn.deliver(raw).key for raw, label in kit_messages(2, seed=5) if label == "Adhésion"]
    cfg = tmp_path / "c.toml"
    # the kit mail is dated 2025: no age limit here (forward_max_age_days has tests of its own)
    cfg.write_text(kit_forward_config(port, model, ["tresorier@asso.example"], triage="forward_max_age_days = 0"),
                   encoding="utf-8")
    with TriageJob(cfg) as job:
        first = job.run_once()
        job.run_once()
        auto = [k for k in keys if job.state.get_message("local", k).decision == "auto"]
    assert auto, "the kit model should route its own sample mail automatically"
    assert first.forwarded == len(auto) == len(handler.envelopes)
    forwarded_ids = {email.message_from_bytes(d, policy=default_policy).get_payload()[1].get_payload()[0]["Message-ID"]
                     for _, _, d in handler.envelopes}
    assert forwarded_ids == {f"<{k}>" for k in auto}


def test_message_id_is_deterministic_per_message_and_destination(plain_server) -> None:
    handler, port = plain_server
    forwarder = SmtpForwarder(SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="tri@asso.example"))
    first = forwarder.send(ORIGINAL, "tresorier@asso.example", category="A", key="cotis-42@exemple.org")
    again = forwarder.send(ORIGINAL, "tresorier@asso.example", category="A", key="cotis-42@exemple.org")
    other = forwarder.send(ORIGINAL, "bureau@asso.example", category="A", key="cotis-42@exemple.org")
    assert first == again == forwarder.message_id("cotis-42@exemple.org", "tresorier@asso.example")
    assert other != first and first.endswith("@asso.example>") and first.startswith("<fwd.")
    assert handler.message_ids() == [first, first, other]
    assert forward_message_id("k", "A@b.fr", "x@y.fr") == forward_message_id("k", "a@b.fr ", "z@y.fr")


def test_original_with_unfolded_headers_is_attached_byte_for_byte(plain_server) -> None:
    handler, port = plain_server
    raw = ORIGINAL.replace(b"Subject: ", b"X-Long: " + b"mot " * 60 + b"\r\nX-Folded: a\r\n  b\r\nSubject: ")
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="tri@asso.example")
    SmtpForwarder(settings).send(raw, "t@asso.example", category="A", key="k@x")
    [(_, _, data)] = handler.envelopes
    assert raw in data  # the received headers are neither refolded nor rewritten


def test_long_lines_are_refused_by_the_sink_like_a_real_server(plain_server) -> None:
    import smtplib

    handler, port = plain_server
    long_raw = ORIGINAL.replace(b"Bonjour,", b"x" * 1500)
    with smtplib.SMTP("127.0.0.1", port) as client, pytest.raises(smtplib.SMTPDataError) as err:
        client.sendmail("a@b.fr", ["c@d.fr"], long_raw)
    assert err.value.smtp_code == 500 and handler.envelopes == []


def test_long_lines_are_re_encoded_and_the_original_stays_byte_faithful(plain_server) -> None:
    handler, port = plain_server
    html = b"<p>" + "é".encode() * 1200 + b"</p>"  # one 2,400-octet line, as HTML editors write
    raw = ORIGINAL.replace(b"Bonjour,", html) + b"bare\nlf and\rcr\r\n"
    assert longest_line(raw) > 998
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="tri@asso.example")
    SmtpForwarder(settings).send(raw, "t@asso.example", category="A", key="k@x", subject="Cotisation")
    [(_, _, data)] = handler.envelopes
    assert longest_line(data) <= 998
    msg = email.message_from_bytes(data, policy=default_policy)
    [part] = [p for p in msg.iter_parts() if p.get_filename() == "original.eml"]
    assert part.get_content_type() == "application/octet-stream" and part["Content-Transfer-Encoding"] == "base64"
    assert part.get_payload(decode=True) == raw  # exactly the received bytes


def test_refusals_say_whether_to_try_again_with_the_servers_reason() -> None:
    with SmtpSink(transient=1, refuse={"nobody@asso.example": "550 5.1.1 no such user"}) as sink:
        settings = SmtpSettings(host="127.0.0.1", port=sink.port, starttls=False, sender="tri@asso.example")
        forwarder = SmtpForwarder(settings)
        with pytest.raises(ForwardError) as later:
            forwarder.send(ORIGINAL, "t@asso.example", category="A", key="k@x")
        assert later.value.transient and not later.value.maybe_sent and later.value.code == 451
        with pytest.raises(ForwardError) as never:
            forwarder.send(ORIGINAL, "nobody@asso.example", category="A", key="k@x")
        assert not never.value.transient and "no such user" in never.value.reason and never.value.code == 550
        forwarder.send(ORIGINAL, "t@asso.example", category="A", key="k@x")
        assert len(sink.envelopes) == 1
