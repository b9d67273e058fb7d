"""Issue 13, items 9 and 10: what a first week on a real account showed (forwards, labels, quota, start, CLI)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from assoc_ai_gmail.connector import GmailConfig, GmailConnector
from click.testing import CliRunner

from assoc_ai_core.cli.main import _wire_optional_commands, cli
from assoc_ai_core.errors import ForwardError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import MailRef


@pytest.mark.parametrize(("lang", "shown", "hidden"), [
    ("en", "Where to store the token", "Où enregistrer le jeton"),
    ("fr", "Où enregistrer le jeton", "Where to store the token"),
])
def test_auth_help_speaks_one_language(lang: str, shown: str, hidden: str, monkeypatch) -> None:
    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "assoc-ai-gmail")
    _wire_optional_commands()
    r = CliRunner().invoke(cli, ["gmail", "auth", "--help", "--lang", lang], prog_name="assoc-ai")
    assert r.exit_code == 0, r.output
    text = re.sub(r"\s+", " ", r.output)
    assert shown in text and hidden not in text, text


# -- 1. forwards: upload endpoint, 35 MB, failures that never loop -----------------------------------------


def big_mail(size: int) -> bytes:
    """A message with an attachment of about ``size`` bytes (random, so base64 cannot shrink it)."""
    import os as _os
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "Marie Dupont <marie@example.org>"
    msg["To"] = "info@asso.example"
    msg["Subject"] = "Dossier complet"
    msg["Message-ID"] = f"<gros-{size}@example.org>"
    msg.set_content("Bonjour, voici le dossier.")
    msg.add_attachment(_os.urandom(size), maintype="application", subtype="pdf", filename="dossier.pdf")
    return msg.as_bytes()


def test_a_6_mb_forward_goes_through_the_upload_endpoint(connector, fake_gmail) -> None:
    raw = big_mail(6 * 1024 * 1024)
    ref = MailRef("INBOX", fake_gmail.deliver(raw), "gros@example.org")
    connector.forward(ref, raw, "bureau@asso.example")
    (sent,) = fake_gmail.sent
    assert len(sent) > len(raw)  # the whole original travelled, attached
    (call,) = fake_gmail.calls(r"POST /upload/gmail/v1/users/me/messages/send$")
    assert call.query["uploadType"] == ["media"] and call.headers["content-type"] == "message/rfc822"
    assert fake_gmail.units["users.messages.send"] == 100


def test_a_forward_over_35_mb_is_refused_for_good_without_a_request(connector, fake_gmail, monkeypatch) -> None:
    raw = big_mail(36 * 1024 * 1024)
    connector.open()
    before = len(fake_gmail.requests)
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    with pytest.raises(ForwardError) as err:
        connector.forward(MailRef("INBOX", "x", "gros@example.org"), raw, "bureau@asso.example")
    assert not err.value.transient and not err.value.maybe_sent and err.value.connector_id == "gmail"
    assert "35" in str(err.value) and "not be tried again" in str(err.value)
    assert len(fake_gmail.requests) == before and not fake_gmail.sent


def test_a_refused_send_is_permanent_for_that_message(connector, fake_gmail, mail, sleeps) -> None:
    raw = mail(1)
    ref = MailRef("INBOX", fake_gmail.deliver(raw), "demande-1@example.org")
    fake_gmail.add_fault(r"POST .*/messages/send$", 400, body={"error": {
        "code": 400, "message": "Invalid To header", "errors": [{"reason": "invalidArgument"}]}})
    with pytest.raises(ForwardError) as err:
        connector.forward(ref, raw, "bureau@asso.example")
    assert not err.value.transient and err.value.code == 400 and sleeps == []
    assert len(fake_gmail.calls(r"POST .*/messages/send$")) == 1


def test_a_token_without_send_permission_refuses_this_forward_only(fake_gmail, oauth_client, mail) -> None:
    import json

    from gmail_oauth_fake import SCOPE_READONLY

    client_id, secret = oauth_client
    refresh = fake_gmail.issue_refresh_token(client_id, scopes=(SCOPE_READONLY,))
    token = json.dumps({"type": "authorized_user", "client_id": client_id, "client_secret": secret,
                        "refresh_token": refresh, "token_uri": fake_gmail.token_uri})
    raw = mail(1)
    ref = MailRef("INBOX", fake_gmail.deliver(raw), "demande-1@example.org")
    conn = GmailConnector(GmailConfig(token=Secret(token), api_endpoint=fake_gmail.url,
                                      auth_endpoint=fake_gmail.token_uri), sleep=fake_gmail.advance,
                          clock=fake_gmail.now)
    try:
        with pytest.raises(ForwardError) as err:
            conn.forward(ref, raw, "bureau@asso.example")
    finally:
        conn.close()
    assert not err.value.transient and err.value.code == 403
    assert "insufficientPermissions" in err.value.reason and "gmail auth" in str(err.value)
    assert not fake_gmail.sent


# -- 2. a label whose capitals differ from the configuration ------------------------------------------------


def test_label_with_other_capitals_is_used_and_reported_as_configured(connector, fake_gmail, mail, caplog) -> None:
    existing = fake_gmail.create_label("ia/adhésion")
    ids = [fake_gmail.deliver(mail(i)) for i in range(2)]
    refs = {f.ref.uid: f.ref for f in connector.fetch_all("INBOX")}
    connector.ensure_folder("IA/Adhésion")
    assert "ia/adhésion" in caplog.text and "IA/Adhésion" in caplog.text
    moved = connector.move(refs[ids[0]], "IA/Adhésion")
    assert moved.folder == "IA/Adhésion"
    assert fake_gmail.labels_of(ids[0]) == {"ia/adhésion", "UNREAD"}
    assert [lab["name"] for lab in fake_gmail.labels.values() if lab["type"] == "user"].count("ia/adhésion") == 1
    assert existing in fake_gmail.messages[ids[0]].label_ids
    # a volunteer files the other message there by hand: the job must see it in the configured folder
    fake_gmail.relabel(ids[1], add=("ia/adhésion",), remove=("INBOX",))
    where = connector.locate([refs[ids[1]], moved])
    assert [r.folder for r in where[refs[ids[1]].key]] == ["IA/Adhésion"]
    assert where[moved.key] == [moved]
    assert "IA/Adhésion" in connector.list_folders()


def test_correction_into_a_label_with_other_capitals_is_recorded(tmp_path, fake_gmail, token_json) -> None:
    from test_gmail_conformance import gmail_harness

    from assoc_ai_core.jobs.triage import TriageJob, TriageSettings
    from assoc_ai_core.testing.mailbox import (
        CATEGORY_A,
        CATEGORY_B,
        FOLDER_A,
        FOLDER_B,
        REVIEW,
        RecordingForwarder,
        kit_config,
        kit_messages,
        kit_model,
    )

    harness = gmail_harness(fake_gmail, token_json)
    for name in (FOLDER_A, FOLDER_B):
        fake_gmail.create_label(name.swapcase())  # made by hand before the job, with other capitals
    gmail_id = fake_gmail.deliver(kit_messages(1, seed=11)[0][0])
    settings = TriageSettings.from_mapping(kit_config(harness, tmp_path, "gmail"), base_dir=tmp_path)
    with TriageJob(settings, connector=harness.make(), model=kit_model(), model_version="kit",
                   forwarder=RecordingForwarder()) as job:
        assert job.run_once().decided == 1
        placed = next(n for n in fake_gmail.labels_of(gmail_id)
                      if n.casefold() in {FOLDER_A.casefold(), FOLDER_B.casefold(), REVIEW.casefold()})
        target, category = (FOLDER_A, CATEGORY_A) if placed.casefold() == FOLDER_B.casefold() else (FOLDER_B, CATEGORY_B)
        fake_gmail.relabel(gmail_id, add=(target.swapcase(),), remove=(placed,))  # in the Gmail web interface
        assert job.run_once().corrections == 1
        rows = job.state.corrections("gmail")
    assert rows[0]["to_category"] == category and rows[0]["to_folder"] == target


# -- 3. the correction check costs a few units when nothing changed -----------------------------------------


def decided(fake_gmail, connector, mail, n: int) -> list[MailRef]:
    """``n`` messages the job already filed in IA/Adhésion."""
    for i in range(n):
        fake_gmail.deliver(mail(i))
    refs = [f.ref for f in connector.fetch_all("INBOX")]
    return list(connector.move_many(refs, "IA/Adhésion").values())


def test_correction_check_reads_history_not_every_message(make_connector, fake_gmail, mail) -> None:
    refs = decided(fake_gmail, make_connector(), mail, 300)
    first = make_connector()  # a run: the first check ever looks at every message once
    where = {}
    for i in range(0, len(refs), 200):
        where.update(first.locate(refs[i:i + 200]))
    assert all(where[r.key] == [r] for r in refs)
    first.close()
    fake_gmail.reset_counters()
    before = len(fake_gmail.requests)
    second = make_connector()  # the next run, nothing changed in the mailbox
    for i in range(0, len(refs), 200):
        where.update(second.locate(refs[i:i + 200]))
    api = [r for r in fake_gmail.requests[before:] if r.path.startswith("/gmail/")]
    assert all(where[r.key] == [r] for r in refs)
    assert fake_gmail.units_total < 100 and len(api) <= 5, (fake_gmail.units, [r.path for r in api])
    assert fake_gmail.units["users.messages.get"] == 0


def test_changes_are_still_seen_and_reported_twice_in_case_a_run_died(make_connector, fake_gmail, mail) -> None:
    refs = decided(fake_gmail, make_connector(), mail, 30)
    make_connector().locate(refs)  # the first check sets the point
    fake_gmail.reset_counters()
    fake_gmail.create_label("IA/Bénévolat")
    moved, trashed, gone = refs[3], refs[4], refs[5]
    fake_gmail.relabel(moved.uid, add=("IA/Bénévolat",), remove=("IA/Adhésion",))
    fake_gmail.relabel(trashed.uid, add=("TRASH",))
    fake_gmail.delete(gone.uid)
    for _ in range(2):  # the second run re-reports: the first may have died before storing the answer
        where = make_connector().locate(refs)
        assert [r.folder for r in where[moved.key]] == ["IA/Bénévolat"]
        assert where[trashed.key] == [] and where[gone.key] == []
        assert where[refs[0].key] == [refs[0]]
    assert fake_gmail.units["users.messages.get"] == 0  # the history said it all


def test_own_moves_are_seen_by_the_next_check_of_the_same_run(make_connector, fake_gmail, mail) -> None:
    conn = make_connector()
    refs = decided(fake_gmail, conn, mail, 3)
    conn.locate(refs)
    new = conn.move(refs[0], "IA/Presse")
    assert conn.locate([new])[new.key] == [new]


def test_an_expired_checkpoint_falls_back_to_asking_each_message(make_connector, fake_gmail, mail) -> None:
    refs = decided(fake_gmail, make_connector(), mail, 5)
    make_connector().locate(refs)
    fake_gmail.create_label("IA/Bénévolat")
    fake_gmail.relabel(refs[0].uid, add=("IA/Bénévolat",), remove=("IA/Adhésion",))
    fake_gmail.advance(8 * 86400)  # more than a week without a run: Gmail forgot the point
    where = make_connector().locate(refs)
    assert [r.folder for r in where[refs[0].key]] == ["IA/Bénévolat"]
    assert fake_gmail.calls(r"GET .*/history$")[-1].status in (0, 404)


# -- 6. start from now, and the backlog by date -------------------------------------------------------------


def test_cursor_at_now_skips_the_mail_already_there(connector, fake_gmail, mail) -> None:
    for i in range(3):
        fake_gmail.deliver(mail(i))
    cursor = connector.cursor_at_now("INBOX")
    assert cursor is not None and cursor["history_id"] == str(fake_gmail.history_id)
    fake_gmail.deliver(mail(9))
    pages = list(connector.fetch_new("INBOX", cursor))
    assert [m.ref.key for p in pages for m in p.messages] == ["demande-9@example.org"]
    assert not fake_gmail.calls(r"GET .*/messages$")  # no listing of the old mail


def test_fetch_since_asks_gmail_by_date_oldest_first(connector, fake_gmail, mail) -> None:
    day = 86400 * 1000
    base = 1_735_000_000_000
    for i in range(5):
        fake_gmail.deliver(mail(i), when=base + i * day)
    since = datetime.fromtimestamp((base + 2 * day) / 1000, tz=UTC)
    got = [f.ref.key for f in connector.fetch_since("INBOX", since)]
    assert got == [f"demande-{i}@example.org" for i in (2, 3, 4)]
    (call,) = fake_gmail.calls(r"GET .*/messages$")
    assert call.query["q"] == [f"after:{int(since.timestamp())}"]


# -- 7. the loopback's quota, and a connector that stays under it -------------------------------------------


def test_reading_600_units_is_paced_under_the_per_user_rate(make_connector, fake_gmail, mail, sleeps) -> None:
    for i in range(120):
        fake_gmail.deliver(mail(i))
    conn = make_connector()
    assert len(list(conn.fetch_all("INBOX"))) == 120
    assert fake_gmail.throttled == 0, "the connector must not run into Gmail's per-user rate"
    assert fake_gmail.units["users.messages.get"] == 600 and sum(sleeps) >= 1.0


def test_loopback_throttles_beyond_250_units_a_second_with_retry_after(connector, fake_gmail) -> None:
    import urllib.error
    import urllib.request

    connector.open()
    token = connector._http.credentials.token
    statuses, retry = [], None
    for _ in range(60):  # 60 x messages.list (5 units) in well under a second
        req = urllib.request.Request(fake_gmail.url + "gmail/v1/users/me/messages",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req) as resp:  # noqa: S310 - loopback
                statuses.append(resp.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
            retry = exc.headers.get("Retry-After")
            body = exc.read().decode()
    assert statuses.count(200) == 50 - 1 and set(statuses[50:]) == {403}
    assert retry is not None and int(retry) >= 1 and "userRateLimitExceeded" in body


def test_history_points_expire_after_a_week(connector, fake_gmail, mail) -> None:
    fake_gmail.deliver(mail(0))
    cursor = list(connector.fetch_new("INBOX", None))[-1].cursor
    fake_gmail.deliver(mail(1))
    fake_gmail.advance(8 * 86400)
    pages = list(connector.fetch_new("INBOX", cursor))
    assert all(p.resync for p in pages)
    assert sorted(m.ref.key for p in pages for m in p.messages) == ["demande-0@example.org", "demande-1@example.org"]


# -- 4. the token file stays private where os.fchmod does not exist (Windows before Python 3.13) ---------------


def test_token_file_is_private_without_fchmod(tmp_path, monkeypatch) -> None:
    import os
    import stat

    from assoc_ai_gmail.credentials import write_private_file

    monkeypatch.delattr(os, "fchmod", raising=False)
    path = write_private_file(tmp_path / "t" / "gmail-token.json", "{}")
    assert path.read_text() == "{}"
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_messages_filed_between_listing_pages_do_not_hide_the_rest(connector, fake_gmail, mail) -> None:
    for i in range(5):
        fake_gmail.deliver(mail(i))
    seen = []
    for page in connector.fetch_new("INBOX", None, page_size=2):
        seen += [m.ref.key for m in page.messages]
        connector.move_many([m.ref for m in page.messages], "IA/Adhésion")  # the job files each page at once
    assert sorted(seen) == sorted(f"demande-{i}@example.org" for i in range(5))
