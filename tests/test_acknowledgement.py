"""Acknowledgements through a real SMTP server (aiosmtpd on 127.0.0.1): RFC 3834 rules, once per period, no clear address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.jobs.acknowledgement import Acknowledger, AckSettings, NoticeSender, may_acknowledge
from assoc_ai_core.jobs.forwarding import SmtpSettings
from assoc_ai_core.jobs.state import SenderPrivacy, StateStore
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.testing.smtp import SmtpSink

ASSO = "contact@jardins.example"


@pytest.fixture
def server():
    with SmtpSink() as sink:
        yield sink, sink.port


def raw(sender: str = "Marie <marie@exemple.fr>", *, extra: str = "", subject: str = "Adhésion") -> bytes:
    return (f"From: {sender}\r\nTo: {ASSO}\r\nSubject: {subject}\r\nMessage-ID: <abc-1@exemple.fr>\r\n{extra}"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour, je veux adhérer.\r\n").encode()


def make(tmp_path: Path, port: int, **kw) -> tuple[Acknowledger, StateStore]:
    state = StateStore(tmp_path / "state.sqlite")
    privacy = SenderPrivacy.from_key_file(tmp_path / "state.key")
    settings = AckSettings.from_mapping({"enabled": True, "contact": "06 00 00 00 00 ou bureau@jardins.example",
                                         "teams": {"Adhesion": "adhésions"}, **kw})
    smtp = SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender=ASSO, timeout=5)
    return Acknowledger(settings, state, privacy, NoticeSender(smtp)), state


def test_sends_bilingual_rfc3834_reply_once_per_period(tmp_path: Path, server) -> None:
    handler, port = server
    ack, state = make(tmp_path, port, period_days=30)
    msg = parse_message(raw())
    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    assert ack.acknowledge(msg, "Adhesion", now=t0) == (True, "")
    [(mail_from, rcpts, data)] = handler.envelopes
    assert mail_from == ASSO and rcpts == ["marie@exemple.fr"]
    sent = message_from_bytes(data, policy=default)
    assert sent["Auto-Submitted"] == "auto-replied" and sent["In-Reply-To"] == "<abc-1@exemple.fr>"
    assert sent["Subject"] == "Auto: Adhésion"
    body = sent.get_content()
    assert "classé automatiquement" in body and "« adhésions »" in body and "'adhésions' team" in body
    assert "bureau@jardins.example" in body
    # at most once per sender per period, even with different case
    again = ack.acknowledge(parse_message(raw("MARIE@Exemple.fr")), "Adhesion", now=t0 + timedelta(days=10))
    assert again[0] is False and "période" in again[1]
    assert ack.acknowledge(msg, "Adhesion", now=t0 + timedelta(days=31))[0] is True
    assert len(handler.envelopes) == 2
    state.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.sqlite*"))
    assert b"marie@exemple.fr" not in stored.lower()  # tracked by keyed hash only


@pytest.mark.parametrize("sender, extra, why", [
    ("Robot <no-reply@service.example>", "", "automatique"),
    ("Liste <membres@listes.example>", "List-Id: <membres.listes.example>\r\n", "liste"),
    ("Marie <marie@exemple.fr>", "Auto-Submitted: auto-replied\r\n", "automatique"),
    ("Marie <marie@exemple.fr>", "Precedence: bulk\r\n", "automatique"),
    ("MAILER-DAEMON@mx.example", "", "automatique"),
    ("Marie <marie@exemple.fr>", "Return-Path: <>\r\n", "adresse de réponse"),
    ("", "", "adresse de réponse"),
    (f"Nous <{ASSO}>", "", "boucle"),
    ("Marie <marie@exemple.fr>", "X-Assoc-AI: forwarded\r\n", "assoc-ai"),
])
def test_never_replies_to_automated_lists_noreply_or_unusable_senders(tmp_path: Path, server, sender, extra, why) -> None:
    handler, port = server
    ack, state = make(tmp_path, port)
    sent, reason = ack.acknowledge(parse_message(raw(sender, extra=extra)), "Adhesion")
    assert sent is False and why in reason
    assert handler.envelopes == []
    state.close()


def test_return_path_is_preferred_and_review_mail_is_not_acknowledged(tmp_path: Path, server) -> None:
    handler, port = server
    ack, state = make(tmp_path, port, lang="en")
    msg = parse_message(raw(extra="Return-Path: <marie+courrier@exemple.fr>\r\n"))
    assert ack.acknowledge(msg, "Adhesion", decision="review")[0] is False
    assert ack.acknowledge(msg, "Adhesion")[0] is True
    [(_, rcpts, data)] = handler.envelopes
    assert rcpts == ["marie+courrier@exemple.fr"]
    assert "classé" not in data.decode("utf-8", "replace") and "sorted automatically" in data.decode()
    state.close()


def test_off_by_default_and_config_errors_are_clear(tmp_path: Path, server) -> None:
    _, port = server
    state = StateStore(tmp_path / "s.sqlite")
    ack = Acknowledger(AckSettings(), state, SenderPrivacy.from_key_file(tmp_path / "k"), None)
    assert ack.acknowledge(parse_message(raw()), "Adhesion") == (False, "accusés de réception désactivés")
    state.close()
    with pytest.raises(ConfigError, match="contact est obligatoire"):
        AckSettings.from_mapping({"enabled": True})
    with pytest.raises(ConfigError, match="period_days"):
        AckSettings.from_mapping({"period_days": 0})
    with pytest.raises(ConfigError, match="inconnue"):
        AckSettings.from_mapping({"enable": True})
    with pytest.raises(ConfigError, match="lang"):  # built directly, the settings are checked too
        AckSettings(lang="de")
    assert may_acknowledge(parse_message(raw()))[0] is True
