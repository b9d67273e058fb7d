"""The labelling page (``assoc-ai label``) driven by a real browser, and its door checked with plain requests.

The command runs as a real process on a folder of .eml files or a local
Maildir written here; headless Chromium clicks and types as a person would.
Screenshots go to /tmp/label_shots/ for a person to look at.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from assoc_ai_core.cli.label_page import CsvLabels, Item, LabelSession, serve
from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.records.mail import Message

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/tmp/label_shots")

TOPICS = {
    "Adhésion": ["Je souhaite adhérer à l'association, quel est le montant de la cotisation ?",
                 "Pouvez-vous renouveler ma carte de membre pour 2026 ? Je joins le règlement de la cotisation.",
                 "Adhésion couple : le tarif réduit s'applique-t-il aux étudiants ?",
                 "Bulletin d'adhésion rempli ci-joint, merci de confirmer mon inscription comme membre."],
    "Événement": ["Le festival du patrimoine aura-t-il lieu samedi ? Quels sont les horaires de la visite ?",
                  "Peut-on réserver un stand pour la fête de quartier de juin ?",
                  "Programme de la journée portes ouvertes : la visite guidée commence à quelle heure ?",
                  "Inscription à la balade commentée de dimanche pour deux personnes."],
    "Presse": ["Journaliste au quotidien régional, je prépare un article sur la restauration de la chapelle.",
               "Demande d'interview pour un reportage radio sur vos bénévoles.",
               "Communiqué de presse : pouvez-vous nous envoyer des photos libres de droits ?"],
}


def _subject(body: str) -> str:
    return body.split(",")[0].split("?")[0][:60].strip()


def _mail(i: int, body: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Camille Martin{i} <camille.martin{i}@exemple.fr>"
    msg["To"] = "contact@asso.example"
    msg["Subject"] = _subject(body)
    msg["Message-ID"] = f"<m{i}@exemple.fr>"
    msg["Date"] = f"Mon, {i + 1:02d} Jun 2026 10:00:00 +0200"
    msg.set_content(body + f"\n\nCordialement,\nCamille Martin{i}\n06 12 34 56 {i:02d}\n")
    return msg.as_bytes()


def _bodies() -> list[str]:
    # alternate topics so file order says nothing of the category
    out: list[str] = []
    lists = list(TOPICS.values())
    for j in range(max(len(v) for v in lists)):
        out.extend(v[j] for v in lists if j < len(v))
    return out


@pytest.fixture()
def mail_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "courrier"
    folder.mkdir()
    for i, body in enumerate(_bodies()):
        (folder / f"{i:04d}.eml").write_bytes(_mail(i, body))
    return folder


@pytest.fixture()
def maildir(tmp_path: Path) -> Path:
    path = tmp_path / "Maildir"
    box = LocalMailConnector(LocalMailConfig(path=str(path), create=True))
    box.open()
    for i, body in enumerate(_bodies()[:6]):
        box.deliver(_mail(i, body))
    box.close()
    return path


class Run:
    """``assoc-ai label`` running in a process of its own; ``url`` is the address it printed."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "assoc_ai_core.cli.label", *args, "--no-browser"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        deadline = time.monotonic() + 60
        self.url = ""
        assert self.proc.stdout is not None
        while not self.url and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+/\?t=[\w-]+", line)
            if found:
                self.url = found.group(0)
        if not self.url:
            self.proc.kill()
            raise AssertionError("no URL printed: " + "".join(self.lines) + self.proc.stderr.read())  # type: ignore[union-attr]

    def finish(self) -> str:
        """Wait for the process to end; its whole standard output."""
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return "".join(self.lines) + out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    # playwright is in the test extra and Chromium comes from Debian (.ci/run): a missing one is a broken set-up.
    from playwright import sync_api
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture()
def tab(chrome: Any) -> Iterator[Any]:
    context = chrome.new_context(viewport={"width": 1200, "height": 800})
    p = context.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert not errors, errors  # a CSP refusal or a script error shows here


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _wait(predicate: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_person_sorts_a_folder_with_clicks_and_keys_in_french(mail_folder: Path, tab: Any) -> None:
    labels = mail_folder / "labels.csv"
    run = Run([str(mail_folder), "--categories", "Adhésion,Événement,Presse", "--lang", "fr"])
    try:
        tab.goto(run.url)
        tab.wait_for_selector("#mail:not(.hidden)")
        assert tab.get_attribute("html", "lang") == "fr"
        assert tab.locator("#skip").inner_text().endswith("Passer")
        assert "Terminé" in tab.locator("#finish").inner_text()
        assert "Pas encore de modèle" in tab.locator("#explain").inner_text()
        assert tab.locator("button.cat kbd").all_inner_texts() == ["1", "2", "3"]
        content = tab.content()
        assert "camille.martin" not in content and "06 12 34" not in content  # sender and phone pseudonymised
        assert re.search(r"c…@exemple\.fr", tab.locator("#sender").inner_text())
        _shot(tab, "fr_first_mail")

        first = tab.locator("#subject").inner_text()
        tab.locator("button.cat", has_text="Adhésion").click()  # a click
        _wait(lambda: len(_rows(labels)) == 1)
        assert _rows(labels)[0]["category"] == "Adhésion"
        assert _rows(labels)[0]["key"].startswith("m") and _rows(labels)[0]["path"].endswith(".eml")
        _wait(lambda: tab.locator("#subject").inner_text() != first)

        second = tab.locator("#subject").inner_text()
        tab.keyboard.press("2")  # a key
        _wait(lambda: len(_rows(labels)) == 2)
        assert _rows(labels)[1]["category"] == "Événement"

        tab.keyboard.press("u")  # undo: the row goes, the mail comes back
        _wait(lambda: len(_rows(labels)) == 1)
        _wait(lambda: tab.locator("#subject").inner_text() == second)
        tab.keyboard.press("Backspace")
        _wait(lambda: _rows(labels) == [])
        _wait(lambda: tab.locator("#subject").inner_text() == first)

        tab.keyboard.press("s")  # skip
        _wait(lambda: "1 passés" in tab.locator("#counts").inner_text())
        assert _rows(labels) == []

        # sort by the true topic until a model exists and explains
        truth = {_subject(body): cat for cat, bodies in TOPICS.items() for body in bodies}
        cats = list(TOPICS)
        for _ in range(7):
            subject = tab.locator("#subject").inner_text()
            before = len(_rows(labels))
            tab.keyboard.press(str(cats.index(truth[subject]) + 1))
            _wait(lambda b=before: len(_rows(labels)) == b + 1)
            _wait(lambda s=subject: tab.locator("#subject").inner_text() != s)
        _wait(lambda: "Le modèle pense" in tab.locator("#explain").inner_text(), timeout=30)
        _wait(lambda: tab.locator("#curve path.line").count() == 1, timeout=30)
        assert re.search(r"\d+\u202f%", tab.locator("#share").inner_text())
        assert len(_rows(labels)) == 7
        _shot(tab, "fr_with_model")

        tab.locator("#finish").click()
        tab.wait_for_selector("#finished:not(.hidden)")
        _shot(tab, "fr_finished")
        out = run.finish()
    finally:
        run.stop()
    assert "7 message(s) trié(s)" in out
    assert f"assoc-ai train {mail_folder} --labels {labels} -o model.skops" in out
    assert sorted(p.name for p in mail_folder.iterdir()) == sorted(
        [f"{i:04d}.eml" for i in range(len(_bodies()))] + ["labels.csv"])  # no mail deleted or moved
    assert oct(labels.stat().st_mode & 0o777) == "0o600"


def test_a_crash_keeps_every_label_given_and_the_next_run_resumes(mail_folder: Path, tab: Any) -> None:
    labels = mail_folder / "labels.csv"
    args = [str(mail_folder), "--categories", "Adhésion,Événement,Presse", "--lang", "en"]
    run = Run(args)
    try:
        tab.goto(run.url)
        tab.wait_for_selector("#mail:not(.hidden)")
        asked = []
        for key in ("1", "3"):
            asked.append(tab.locator("#subject").inner_text())
            before = len(_rows(labels))
            tab.keyboard.press(key)
            _wait(lambda b=before: len(_rows(labels)) == b + 1)
        tab.goto("about:blank")  # the page's poll would otherwise meet the dead server
        run.proc.kill()  # no goodbye: the labels must already be on disk
        run.proc.communicate()
    finally:
        run.stop()
    assert [r["category"] for r in _rows(labels)] == ["Adhésion", "Presse"]
    run = Run(args)
    try:
        tab.goto(run.url)
        tab.wait_for_selector("#mail:not(.hidden)")
        assert "2 sorted before" in tab.locator("#counts").inner_text()
        assert "of 9" in tab.locator("#counts").inner_text()
        assert tab.locator("#subject").inner_text() not in asked
        tab.locator("#finish").click()
        tab.wait_for_selector("#finished:not(.hidden)")
        out = run.finish()
    finally:
        run.stop()
    assert "0 message(s) sorted in this session (2 sorted before)" in out
    assert len(_rows(labels)) == 2


def test_a_maildir_is_sorted_by_moving_mail_through_the_connector_in_english(maildir: Path, tab: Any) -> None:
    run = Run([str(maildir), "--categories", "Membership,Events,Press", "--lang", "en"])
    try:
        tab.goto(run.url)
        tab.wait_for_selector("#mail:not(.hidden)")
        assert tab.get_attribute("html", "lang") == "en"
        assert tab.locator("#skip").inner_text().endswith("Skip")
        assert "No model yet" in tab.locator("#explain").inner_text()
        _shot(tab, "en_maildir")
        inbox = lambda: sorted(p.name.split(":")[0] for p in (maildir / "new").iterdir()) + sorted(  # noqa: E731
            p.name.split(":")[0] for p in (maildir / "cur").iterdir())
        before = inbox()
        tab.keyboard.press("1")
        _wait(lambda: (maildir / ".Membership" / "cur").is_dir() and any((maildir / ".Membership" / "cur").iterdir()))
        moved = [p.name.split(":")[0] for p in (maildir / ".Membership" / "cur").iterdir()]
        assert len(moved) == 1 and moved[0] in before and len(inbox()) == len(before) - 1
        tab.keyboard.press("u")  # undo moves it back to the inbox
        _wait(lambda: not any((maildir / ".Membership" / "cur").iterdir()))
        assert sorted(inbox()) == sorted(before)
        tab.locator("button.cat", has_text="Press").click()
        _wait(lambda: (maildir / ".Press" / "cur").is_dir() and any((maildir / ".Press" / "cur").iterdir()))
        tab.locator("#finish").click()
        tab.wait_for_selector("#finished:not(.hidden)")
        out = run.finish()
    finally:
        run.stop()
    assert "1 message(s) sorted" in out and f"assoc-ai train {maildir} -o model.skops" in out
    assert not (maildir / "labels.csv").exists()
    assert sum(1 for _ in (maildir / ".Press" / "cur").iterdir()) + len(inbox()) == 6  # nothing lost


# ---------------------------------------------------------------------- the door, with plain requests
@pytest.fixture()
def server() -> Iterator[Any]:
    items = [Item(message=Message(key=f"<k{i}@x>", subject=f"sujet {i}", text=f"texte numéro {i}"), path=f"{i}.eml")
             for i in range(4)]
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    store = CsvLabels(tmp / f"labels-door-{os.getpid()}-{time.monotonic_ns()}.csv")
    session = LabelSession(items=items, categories=["A", "B"], store=store, lang="en")
    srv = serve(session)
    yield srv
    srv.shutdown()
    srv.server_close()
    store.path.unlink(missing_ok=True)


def _request(srv: Any, path: str, *, token: str | None = None, host: str | None = None, origin: str | None = None,
             body: dict[str, Any] | None = None) -> tuple[int, dict[str, str], bytes]:
    query = "" if token is None else f"?t={token}"
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}{query}",
                                 data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    if host is not None:
        req.add_header("Host", host)
    if origin is not None:
        req.add_header("Origin", origin)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_server_listens_on_loopback_only(server: Any) -> None:
    assert server.socket.getsockname()[0] == "127.0.0.1"
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/?t=")


def test_requests_without_the_token_or_from_elsewhere_are_refused(server: Any) -> None:
    own = f"http://127.0.0.1:{server.port}"
    assert _request(server, "/", token=server.token)[0] == 200
    assert _request(server, "/", host=f"localhost:{server.port}", token=server.token)[0] == 200
    assert _request(server, "/")[0] == 403  # no token
    assert _request(server, "/state", token=server.token[:-1] + "x")[0] == 403  # a wrong one
    assert _request(server, "/state", token="")[0] == 403
    assert _request(server, "/", token=server.token, host=f"evil.example:{server.port}")[0] == 403  # DNS rebinding
    assert _request(server, "/", token=server.token, host="127.0.0.1:1")[0] == 403
    index = json.loads(_request(server, "/state", token=server.token)[2])["mail"]["index"]
    label = {"index": index, "category": "A"}
    assert _request(server, "/label", token=server.token, origin="http://evil.example", body=label)[0] == 403
    assert _request(server, "/label", token=server.token, body=label)[0] == 403  # a POST must say its origin
    assert _request(server, "/label", origin=own, body=label)[0] == 403
    assert server.session.labelled() == []
    status, _, data = _request(server, "/label", token=server.token, origin=own, body=label)
    assert status == 200 and json.loads(data)["labelled"] == 1
    assert [r["category"] for r in server.session.store.rows] == ["A"]


def test_the_page_is_never_cached_and_runs_only_its_own_script(server: Any) -> None:
    status, headers, body = _request(server, "/", token=server.token)
    assert status == 200
    assert "no-store" in headers["Cache-Control"]
    csp = headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([\w-]+)'", csp)
    assert nonce and "default-src 'self'" in csp and "unsafe" not in csp
    page = body.decode()
    assert f'<script nonce="{nonce.group(1)}">' in page
    assert not re.search(r'(?:src|href)\s*=\s*"(?!data:)', page)  # no external asset: everything inline
    assert "no-store" in _request(server, "/state", token=server.token)[1]["Cache-Control"]
    assert headers["Referrer-Policy"] == "no-referrer"


def test_a_label_for_a_mail_not_shown_or_an_unknown_category_is_refused(server: Any) -> None:
    own = f"http://127.0.0.1:{server.port}"
    shown = json.loads(_request(server, "/state", token=server.token)[2])["mail"]["index"]
    other = (shown + 1) % 4
    assert _request(server, "/label", token=server.token, origin=own, body={"index": other, "category": "A"})[0] == 409
    assert _request(server, "/label", token=server.token, origin=own, body={"index": shown, "category": "Z"})[0] == 409
    big = {"index": shown, "category": "A" * 5000}
    assert _request(server, "/label", token=server.token, origin=own, body=big)[0] == 413
    assert server.session.labelled() == []


def test_an_empty_folder_is_refused_with_a_reason_instead_of_serving_an_empty_page(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from assoc_ai_core.cli.main import cli

    (tmp_path / "vide").mkdir()
    res = CliRunner().invoke(cli, ["label", str(tmp_path / "vide"), "--categories", "A,B", "--no-browser", "--lang", "fr"])
    assert res.exit_code == 4, res.output
    assert "Rien à trier" in res.output and "127.0.0.1" not in res.output
