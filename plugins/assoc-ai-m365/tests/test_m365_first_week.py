"""Issue 13, items 8 and 10: what a first week on a real tenant showed (corrections' cost, forwards, ids, start,
sign-in, scopes, CLI), against the loopback Microsoft 365 with the service's limits switched on."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
import requests
from assoc_ai_m365 import M365Config, M365Connector, register_commands
from click.testing import CliRunner
from m365_fakeserver import TENANT, FakeM365, FakeMailbox
from m365_support import APP_ID, MAILBOX, PUBLIC_APP_ID, VOLUNTEER, mail

from assoc_ai_core.errors import AuthError, CapabilityError, ForwardError
from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.testing.mailbox import (
    CATEGORY_A,
    FOLDER_A,
    REVIEW,
    MailboxHarness,
    RecordingForwarder,
    kit_config,
    kit_messages,
    kit_model,
)

LOCATE_CHUNK = 200  # what the core's correction pass asks in one locate() call


def refs_of(conn: M365Connector) -> list[MailRef]:
    return [m.ref for p in conn.fetch_new("Inbox", None, page_size=1000) for m in p.messages]


def locate_like_the_core(conn: M365Connector, refs: list[MailRef]) -> dict[str, list[MailRef]]:
    out: dict[str, list[MailRef]] = {}
    for start in range(0, len(refs), LOCATE_CHUNK):
        out.update(conn.locate(refs[start:start + LOCATE_CHUNK]))
    return out


# -- 1 and 5. corrections: a cost that does not grow with the recent messages; ids that survive a move ---------
@pytest.mark.parametrize("n", [60, 450])
def test_correction_check_costs_the_same_for_60_or_450_recent_messages(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365, n: int
) -> None:
    for i in range(n):
        box.deliver(mail(i))
    refs = refs_of(connector)
    moved_by_person = box.move(box.messages[refs[3].uid], box.folder_by_path("inbox/Presse").id)
    box.delete(box.messages[refs[4].uid].id)
    before = len(fake.seen)

    where = locate_like_the_core(connector, refs)

    spent = len(fake.seen) - before
    # One listing (1000 a page), the folder tree for the new folder, one batch by id and one by Message-ID for
    # the deleted message: the same for 60 or 450 messages (before: one search per message).
    assert spent <= 6, spent
    assert where[refs[3].key] == [MailRef("Inbox/Presse", moved_by_person.immutable_id, refs[3].key)]
    assert where[refs[4].key] == []
    assert all(where[r.key] == [r] for r in refs[5:])


def test_messages_older_than_the_listing_are_found_20_to_a_batch_even_when_throttled(
    make_config: Callable[..., M365Config], box: FakeMailbox, fake: FakeM365
) -> None:
    old = time.time() - 200 * 86400  # received long before the window: not in the dated listing
    for i in range(30):
        box.deliver(mail(i, message_id=""), received=old)  # no Message-ID: only the id can find them
    with M365Connector(make_config(max_retry_wait=5.0)) as conn:
        refs = refs_of(conn)
        for ref in refs[:5]:  # a person files five of them
            box.move(box.messages[ref.uid], box.folder_by_path("inbox/Archives 2024").id)
        fake.throttle(limit=12, window=1.0)

        where = conn.locate(refs)

        assert [where[r.key][0].folder for r in refs[:5]] == ["Inbox/Archives 2024"] * 5
        assert all(where[r.key] == [r] for r in refs[5:])
        assert conn.stats["throttled"] >= 1 and fake.throttled >= 1  # sub-requests refused, then sent again
    batches = fake.graph_requests(r"/\$batch$", method="POST")
    assert 2 <= len(batches) <= 6


def test_ids_change_on_a_move_unless_immutable_ids_are_asked_for(connector: M365Connector, box: FakeMailbox) -> None:
    msg = box.deliver(mail(1))
    url = connector.graph.user_url(f"/messages/{msg.immutable_id}")
    plain = connector.graph.session.get(url, params={"$select": "id"}, timeout=10,
                                        headers={"Authorization": f"Bearer {connector.graph.tokens.token()}"}).json()
    assert plain["id"] == msg.id != msg.immutable_id  # without the Prefer header Graph shows the default id
    ref = refs_of(connector)[0]
    box.move(msg, box.folder_by_path("inbox/Presse").id)
    assert connector.locate([ref])[ref.key][0].uid == ref.uid == msg.immutable_id


# -- 2. a refused send affects that message only ----------------------------------------------------------------
@pytest.mark.parametrize("code", ["ErrorSendAsDenied", "ErrorAccessDenied"])
def test_send_refused_with_403_is_a_per_message_forward_error(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365, code: str
) -> None:
    raw = mail(1)
    box.deliver(raw)
    ref = refs_of(connector)[0]
    fake.send_denied[MAILBOX] = code

    with pytest.raises(ForwardError) as err:
        connector.forward(ref, raw, "tresorier@asso-patrimoine.fr")

    assert (err.value.code, err.value.reason, err.value.transient, err.value.maybe_sent) == (403, code, False, False)
    assert err.value.connector_id == "m365" and fake.sent == []


def test_triage_goes_on_when_graph_refuses_to_send(
    fake: FakeM365, box: FakeMailbox, make_config: Callable[..., M365Config], tmp_path: Path
) -> None:
    from assoc_ai_core.jobs.triage import TriageJob, TriageSettings

    raws = [raw for raw, label in kit_messages(8, seed=3) if label == CATEGORY_A]
    for raw in raws:
        box.deliver(raw)
    fake.send_denied[MAILBOX] = "ErrorSendAsDenied"
    harness = MailboxHarness(make=lambda: M365Connector(make_config()), deliver=lambda f, r: None, inbox="Inbox")
    settings = TriageSettings.from_mapping(kit_config(harness, tmp_path, "m365"), base_dir=tmp_path)
    with M365Connector(make_config()) as conn, TriageJob(settings, connector=conn, model=kit_model(),
                                                          model_version="kit", forwarder=RecordingForwarder()) as job:
        job.run_once()
    assert fake.sent == []
    handled = box.in_folder("inbox/" + FOLDER_A) + box.in_folder(FOLDER_A) + box.in_folder(REVIEW)
    assert len(handled) == len(raws) == 8  # every message triaged, none left in the Inbox
    assert box.in_folder("inbox") == []


# -- 3. forwards over Graph's 4 MB request limit ----------------------------------------------------------------
def big_mail(size: int) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = "Marie Dupont <marie@exemple.fr>"
    msg["To"] = MAILBOX
    msg["Subject"] = "Bulletin d'adhésion scanné"
    msg["Message-ID"] = "<scan.1@exemple.fr>"
    msg.set_content("Bonjour, voici mon bulletin scanné.")
    msg.add_attachment(os.urandom(size), maintype="application", subtype="pdf", filename="bulletin.pdf")
    return bytes(msg)


def test_a_forward_over_4_mb_goes_through_a_draft_and_an_upload_session(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365
) -> None:
    raw = big_mail(6 * 1024 * 1024)
    box.deliver(raw)
    ref = refs_of(connector)[0]

    connector.forward(ref, raw, "tresorier@asso-patrimoine.fr")
    connector.forward(ref, raw, "tresorier@asso-patrimoine.fr")  # repeated after a crash: not sent twice

    assert len(fake.sent) == 1
    sent = email.message_from_bytes(fake.sent[0], policy=email.policy.default)
    assert sent["Auto-Submitted"] == "auto-forwarded"
    inner = next(p for p in sent.iter_attachments() if p.get_content_type() == "message/rfc822").get_content()
    original = email.message_from_bytes(raw, policy=email.policy.default)
    assert next(inner.iter_attachments()).get_content() == next(original.iter_attachments()).get_content()
    assert all(s.status != 413 for s in fake.seen)
    puts = [s for s in fake.seen if s.path.startswith("/upload/")]
    assert len(puts) >= 2 and all("authorization" not in s.headers for s in puts)  # chunks; no token off Graph
    assert box.in_folder("drafts") == []


def test_a_forward_refused_for_its_size_is_sent_by_upload_session(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365
) -> None:
    raw = big_mail(1024 * 1024)
    box.deliver(raw)
    ref = refs_of(connector)[0]
    fake.max_request_bytes = 512 * 1024  # a tenant stricter than documented: 413 from sendMail, nothing sent

    connector.forward(ref, raw, "tresorier@asso-patrimoine.fr")

    assert [s.status for s in fake.graph_requests(r"/sendMail$")] == [413]
    assert len(fake.sent) == 1


# -- 4. 409 is retried like 412 ---------------------------------------------------------------------------------
def test_irresolvable_conflict_409_on_a_category_is_read_again_and_retried(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365
) -> None:
    box.deliver(mail(1))
    ref = refs_of(connector)[0]
    fake.fail("PATCH", r"/messages/[^/]+$", 409, code="ErrorIrresolvableConflict",
              message="The send or update operation could not be performed because the change key passed in the "
                      "request does not match the current change key for the item.")

    connector.add_label(ref, "Adhésion")

    assert box.messages[ref.uid].categories == ["Adhésion"]
    assert [s.status for s in fake.graph_requests(r"/messages/[^/]+$", method="PATCH")] == [409, 200]


# -- 8. start from now; backlog by date -------------------------------------------------------------------------
def test_cursor_at_now_skips_the_backlog_in_one_request_and_survives_a_resync(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365
) -> None:
    for i in range(40):
        box.deliver(mail(i), received=time.time() - 86400 - i)
    cursor = connector.cursor_at_now("Inbox")
    assert cursor is not None
    time.sleep(1.05)  # the server's clock has a one-second grain
    box.deliver(mail(100))
    before = len(fake.seen)

    pages = list(connector.fetch_new("Inbox", cursor))

    assert [m.ref.key for p in pages for m in p.messages] == ["100.adhesion@exemple.fr"]
    assert len(fake.seen) - before == 2  # the delta round and the one message's MIME
    fake.expire_delta_states()
    box.deliver(mail(101))
    again = list(connector.fetch_new("Inbox", pages[-1].cursor))
    assert again[0].resync and sorted(m.ref.key for p in again for m in p.messages) == [
        "100.adhesion@exemple.fr", "101.adhesion@exemple.fr"]  # the resync keeps the start: no backlog


def test_fetch_since_lists_by_reception_date_on_the_server(connector: M365Connector, box: FakeMailbox, fake: FakeM365) -> None:
    now = time.time()
    for i in range(6):
        box.deliver(mail(i), received=now - i * 86400)  # Date headers are from 2024: only Graph's date is right
    since = dt.datetime.fromtimestamp(now - 2.5 * 86400, dt.UTC)

    got = list(connector.fetch_since("Inbox", since))

    assert sorted(m.ref.key for m in got) == [f"{i}.adhesion@exemple.fr" for i in range(3)]
    listing = fake.graph_requests(r"/mailFolders/[^/]+/messages$")
    assert listing and listing[0].query["$filter"][0].startswith("receivedDateTime ge ")


# -- 6. sign-in: browser with PKCE on a loopback address; certificates for app-only ----------------------------
def _browser_login(fake: FakeM365, cache: Path, monkeypatch: pytest.MonkeyPatch, *, tamper: bool = False,
                   actions: str | None = None) -> Any:
    """Run ``assoc-ai m365 auth`` with a 'browser' that signs in on the fake and comes back to the loopback."""
    import assoc_ai_m365.commands as commands

    def browser(url: str) -> bool:
        page = requests.get(url, verify=str(fake.ca_path), allow_redirects=False, timeout=10).text
        action = re.search(r'action="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))
        if tamper:
            form["state"] = "forged"
        requests.post(action, data=form, timeout=10, proxies={"http": "", "https": ""})  # the page's auto-submit
        return True

    monkeypatch.setattr(commands.webbrowser, "open", browser)
    fake.auto_approve_as = VOLUNTEER
    group = click.Group("assoc-ai")
    register_commands(cli=group)
    args = ["m365", "auth", "--client-id", PUBLIC_APP_ID, "--tenant", TENANT, "--cache", str(cache),
            "--authority-host", fake.base, "--graph-url", fake.graph_url, "--ca-bundle", str(fake.ca_path)]
    if actions is not None:
        args += ["--actions", actions]
    return CliRunner().invoke(group, args)


def test_browser_sign_in_with_pkce_on_localhost_writes_the_cache(
    fake: FakeM365, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_config: Callable[..., M365Config]
) -> None:
    cache = tmp_path / "m365-token.json"

    result = _browser_login(fake, cache, monkeypatch)

    assert result.exit_code == 0, result.output
    assert f"Signed in: {VOLUNTEER}" in result.output and (cache.stat().st_mode & 0o777) == 0o600
    authorize = next(s for s in fake.seen if s.path.endswith("/authorize"))
    assert authorize.query["code_challenge_method"] == ["S256"] and authorize.query["response_mode"] == ["form_post"]
    assert re.fullmatch(r"http://localhost:\d+", authorize.query["redirect_uri"][0])
    assert [s.status for s in fake.seen if s.path.endswith("/token")] == [200]
    fake.mailboxes[VOLUNTEER].deliver(mail(1))
    cfg = make_config(mailbox="me", client_id=PUBLIC_APP_ID, client_secret=None, token_cache=str(cache))
    with M365Connector(cfg) as conn:
        assert [r.key for r in refs_of(conn)] == ["1.adhesion@exemple.fr"]


def test_browser_answer_with_another_state_is_refused(fake: FakeM365, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "m365-token.json"

    result = _browser_login(fake, cache, monkeypatch, tamper=True)

    assert result.exit_code != 0 and "state" in str(result.exception)
    assert not cache.exists() and not [s for s in fake.seen if s.path.endswith("/token")]


def _certificate(directory: Path) -> tuple[Path, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "assoc-ai job")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    path = directory / "assoc-ai-job.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) + cert_pem)
    path.chmod(0o600)
    return path, cert_pem


def test_certificate_credentials_sign_in_as_the_application(
    fake: FakeM365, tmp_path: Path, make_config: Callable[..., M365Config], box: FakeMailbox
) -> None:
    pem_path, cert_pem = _certificate(tmp_path)
    fake.app_certificates[APP_ID] = cert_pem
    box.deliver(mail(1))

    with M365Connector(make_config(client_secret=None, client_certificate=str(pem_path))) as conn:
        assert [r.key for r in refs_of(conn)] == ["1.adhesion@exemple.fr"]
    form = next(s for s in fake.seen if s.path.endswith("/token"))
    assert form.status == 200

    (tmp_path / "other").mkdir()
    unregistered, _ = _certificate(tmp_path / "other")
    with pytest.raises(AuthError, match="secret or certificate"):
        M365Connector(make_config(client_secret=None, client_certificate=str(unregistered))).open()


# -- 7. only the scopes the actions need ------------------------------------------------------------------------
@pytest.mark.parametrize(("actions", "expected"), [
    ("", ["Mail.Read"]),
    ("move,label", ["Mail.ReadWrite", "MailboxSettings.ReadWrite"]),
    ("move,label,forward", ["Mail.ReadWrite", "Mail.Send", "MailboxSettings.ReadWrite"]),
])
def test_sign_in_asks_only_for_what_the_actions_need(
    fake: FakeM365, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, actions: str, expected: list[str]
) -> None:
    result = _browser_login(fake, tmp_path / "c.json", monkeypatch, actions=actions)

    assert result.exit_code == 0, result.output
    authorize = next(s for s in fake.seen if s.path.endswith("/authorize"))
    asked = sorted(s.rsplit("/", 1)[-1] for s in authorize.query["scope"][0].split() if s.startswith("https://"))
    assert asked == sorted(expected)


def test_read_only_job_refuses_actions_before_graph_does(make_config: Callable[..., M365Config], box: FakeMailbox) -> None:
    box.deliver(mail(1))
    with M365Connector(make_config(actions=[])) as conn:
        ref = refs_of(conn)[0]
        with pytest.raises(CapabilityError, match="not in \\[mailbox\\] actions"):
            conn.move(ref, "IA/Adhésion")
    assert M365Config.permissions(make_config(actions=["forward"])) == ["Mail.ReadWrite", "Mail.Send"]


def test_delegated_shared_mailbox_never_asks_for_its_category_list(
    fake: FakeM365, tmp_path: Path, make_config: Callable[..., M365Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_m365_auth import device_login

    cache = tmp_path / "m365-token.json"
    assert device_login(fake, cache, mailbox=MAILBOX).exit_code == 0
    fake.mailboxes[MAILBOX].deliver(mail(2))
    cfg = make_config(client_id=PUBLIC_APP_ID, client_secret=None, token_cache=str(cache))
    with M365Connector(cfg) as conn:
        ref = refs_of(conn)[0]
        conn.add_label(ref, "Adhésion")
    assert fake.mailboxes[MAILBOX].messages[ref.uid].categories == ["Adhésion"]
    assert fake.graph_requests(r"/masterCategories$") == []  # a certain 403: not even asked
    granted = next(t.scopes for t in fake.tokens.values() if t.kind == "user")
    assert not any("MailboxSettings" in s for s in granted)


def test_the_fake_refuses_a_delegate_the_shared_category_list(fake: FakeM365, tmp_path: Path,
                                                             make_config: Callable[..., M365Config]) -> None:
    from test_m365_auth import device_login

    cache = tmp_path / "m365-token.json"
    assert device_login(fake, cache, mailbox=MAILBOX).exit_code == 0
    cfg = make_config(client_id=PUBLIC_APP_ID, client_secret=None, token_cache=str(cache))
    with M365Connector(cfg) as conn:
        resp = conn.graph.session.get(conn.graph.user_url("/outlook/masterCategories"), timeout=10,
                                      headers={"Authorization": f"Bearer {conn.graph.tokens.token()}"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "ErrorAccessDenied"


# -- 10. bilingual help -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("lang", "shown", "hidden"), [
    ("en", "Token cache file", "Fichier du cache de jetons"),
    ("fr", "Fichier du cache de jetons", "Token cache file"),
])
def test_auth_help_speaks_one_language(lang: str, shown: str, hidden: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from assoc_ai_core.cli.main import _wire_optional_commands, cli

    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "assoc-ai-m365")
    _wire_optional_commands()
    r = CliRunner().invoke(cli, ["m365", "auth", "--help", "--lang", lang], prog_name="assoc-ai")
    assert r.exit_code == 0, r.output
    text = re.sub(r"\s+", " ", r.output)
    assert shown in text and hidden not in text, text



# -- a page's moves and categories in batches of 20 --------------------------------------------------------------
def test_a_page_is_moved_and_labelled_20_to_a_batch_and_a_person_s_move_is_left_to_the_host(
    connector: M365Connector, box: FakeMailbox, fake: FakeM365
) -> None:
    for i in range(30):
        box.deliver(mail(i), categories=["Suivi Marie"] if i == 0 else None)
    refs = refs_of(connector)
    filed = box.move(box.messages[refs[1].uid], box.folder_by_path("inbox/Presse").id)  # a person was quicker
    before = len(fake.seen)

    moved = connector.move_many(refs, "IA/Adhésion")
    connector.add_label_many(list(moved.values()), "Adhésion")

    assert refs[1].key not in moved and filed.folder_id == box.folder_by_path("inbox/Presse").id
    assert len(moved) == 29 and {r.folder for r in moved.values()} == {"IA/Adhésion"}
    target = box.folder_by_path("IA/Adhésion").id
    assert all(box.messages[r.uid].folder_id == target and "Adhésion" in box.messages[r.uid].categories
               for r in moved.values())
    assert box.messages[refs[0].uid].categories == ["Suivi Marie", "Adhésion"]
    http = [s for s in fake.seen[before:] if s.path.startswith("/v1.0/")]
    assert len(http) <= 16, [s.path for s in http]  # 4 batch rounds of 2, folder creation, category list
    assert fake.mailbox_requests[MAILBOX] >= 4 * 29  # Outlook still counts each request inside a batch


@pytest.mark.parametrize("code", ["SyncStateNotFound", "resyncRequired"])
def test_delta_tokens_that_expire_with_time_restart_the_folder(connector: M365Connector, box: FakeMailbox,
                                                              fake: FakeM365, code: str) -> None:
    box.deliver(mail(1))
    cursor = list(connector.fetch_new("Inbox", None))[-1].cursor
    fake.delta_ttl, fake.delta_gone_code = 0.2, code
    time.sleep(0.3)
    box.deliver(mail(2))

    pages = list(connector.fetch_new("Inbox", cursor))

    assert pages[0].resync and sorted(m.ref.key for p in pages for m in p.messages) == [
        "1.adhesion@exemple.fr", "2.adhesion@exemple.fr"]
    assert [s.status for s in fake.graph_requests(r"/delta$")][-2:] == [410, 200]


def test_a_locate_window_shorter_than_the_correction_window_is_warned(tmp_path, monkeypatch) -> None:
    from assoc_ai_core.jobs.preflight import check_config

    monkeypatch.setenv("M365_SECRET_FOR_TEST", "not-a-real-secret")
    cfg = tmp_path / "job.toml"
    cfg.write_text(
        '[mailbox]\nconnector = "m365"\nmailbox = "info@asso.example"\n'
        'client_id = "00000000-0000-0000-0000-000000000000"\ntenant = "asso.onmicrosoft.com"\n'
        'client_secret = { env = "M365_SECRET_FOR_TEST" }\nlocate_window_days = 30\n'
        '[triage]\nstate = "s.sqlite"\ncorrection_window_days = 60\n', encoding="utf-8")
    warnings = check_config(cfg).warnings
    assert any("locate_window_days" in w and "correction_window_days" in w for w in warnings)
