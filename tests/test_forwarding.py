"""Forwarding through a real SMTP server (aiosmtpd on 127.0.0.1): wrapping, RFC 3834, TLS, auth, loops."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import logging
import socket
import ssl
from email.policy import default as default_policy
from pathlib import Path

import aiosmtpd.controller as aiosmtpd_controller  # a test dependency: a real SMTP server on 127.0.0.1
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from assoc_ai_core.errors import AuthError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.jobs.forwarding import SmtpForwarder, SmtpSettings, build_forward, should_forward
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.testing.mailbox import sample_mail

USER, PASSWORD = "relais@asso.example", "s3cr3t-smtp-Pa55"


class Collect:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201 - aiosmtpd hook
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the CA a test client may choose to trust)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN201 - aiosmtpd hook
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER \
        and auth_data.password.decode() == PASSWORD
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def plain_server():
    handler = Collect()
    controller = aiosmtpd_controller.Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def tls_server(certificate):
    cert_path, key_path = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    handler = Collect()
    controller = aiosmtpd_controller.Controller(
        handler, hostname="127.0.0.1", port=_free_port(), tls_context=context, require_starttls=True,
        authenticator=_authenticator, auth_required=True, auth_require_tls=True)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


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
    settings = SmtpSettings(host="127.0.0.1", port=_free_port(), starttls=False, sender="t@asso.example", timeout=2)
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
    cfg.write_text(f"""
[mailbox]
connector = "local"
path = "Maildir"
[model]
path = "{model}"
[triage]
state = "state.sqlite"
[categories."Adhésion"]
folder = "IA/Adhésion"
forward = "tresorier@asso.example"
[categories."Événement"]
folder = "IA/Événement"
[smtp]
host = "127.0.0.1"
port = {port}
starttls = false
sender = "tri@asso.example"
""", encoding="utf-8")
    with TriageJob(cfg) as job:
        first = job.run_once()
        job.run_once()
        auto = [k for k in keys if job.state.get_message("local", k).decision == "auto"]
    assert auto, "the kit model should route its own sample mail automatically"
    assert first.forwarded == len(auto) == len(handler.envelopes)
    forwarded_ids = {email.message_from_bytes(d, policy=default_policy).get_payload()[1].get_payload()[0]["Message-ID"]
                     for _, _, d in handler.envelopes}
    assert forwarded_ids == {f"<{k}>" for k in auto}
