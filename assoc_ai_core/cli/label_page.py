"""The labelling page of ``assoc-ai label``: a local web page that asks a person to sort one mail at a time.

Three parts:

* :class:`CsvLabels` and :class:`MailboxLabels` keep each label the moment it
  is given (a row of the labels CSV, or a move through the mailbox connector);
  the source mail is never deleted, and a crash keeps every label given;
* :class:`LabelSession` holds the mail, chooses the next one (uncertain and
  diverse, :func:`assoc_ai_core.api.choose_mail`), and retrains the model in a
  background thread every few labels so the page never waits for it;
* :func:`serve` runs the page on 127.0.0.1 only.  Every request must carry the
  run's secret token and a Host naming this server (a web page elsewhere, or a
  DNS name rebound to 127.0.0.1, gets 403); a POST must come from the page's
  own Origin.  The page has no external asset, its script and style run under
  a nonce, and nothing is cached.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from assoc_ai_core.errors import DataError
from assoc_ai_core.files import atomic_write
from assoc_ai_core.i18n import percent, tr
from assoc_ai_core.records.mail import Message

__all__ = ["Item", "LabelStore", "CsvLabels", "MailboxLabels", "LabelSession", "LabelServer", "serve", "page_html",
           "RETRAIN_EVERY", "MAX_SHOWN_CHARS", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

RETRAIN_EVERY = 3  # labels between two trainings: early labels change the model most, and training takes ~1 s
MAX_SHOWN_CHARS = 3000  # of a mail's cleaned text on the page: enough to sort it, bounded for a pasted log
MAX_BODY_BYTES = 4096  # of a POST: the page only ever sends an index and a category name
MAX_KEYS = 9  # keys 1..9


@dataclass
class Item:
    """One mail the page can ask about: the parsed message and where it lives (a file, or a mailbox ref)."""

    message: Message
    path: str = ""  # relative to the folder, for a folder of files
    ref: Any = None  # a MailRef, for a mailbox reached through a connector: where the mail is now
    home: Any = None  # the MailRef it was read from, where undo puts it back


class LabelStore(Protocol):
    """Where a label goes the moment it is given."""

    def record(self, item: Item, category: str) -> None:
        """Keep that ``item`` is ``category`` (durably, before returning)."""

    def undo(self, item: Item, category: str) -> None:
        """Take back the last label given to ``item``."""


class CsvLabels:
    """Labels as rows of a CSV (``key, path, category, labelled_at``), the whole file replaced atomically each time.

    Rewriting a few hundred rows costs nothing, and a reader (or a crash)
    never sees half a row.
    """

    def __init__(self, path: Path) -> None:
        from assoc_ai_core.api import read_labels_csv

        self.path = path
        self.rows: list[dict[str, str]] = (read_labels_csv(path.read_text(encoding="utf-8-sig"))
                                           if path.is_file() else [])

    def given(self) -> dict[str, str]:
        """Category of each message already labelled, by key and by path (the last label wins)."""
        out: dict[str, str] = {}
        for row in self.rows:
            for ident in (row["key"], row["path"]):
                if ident:
                    out[ident] = row["category"]
        return out

    def _write(self) -> None:
        from assoc_ai_core.api import labels_csv_text

        atomic_write(self.path, labels_csv_text(self.rows))

    def record(self, item: Item, category: str) -> None:
        """Add a row for ``item`` and write the file."""
        self.rows.append({"key": item.message.key, "path": item.path, "category": category,
                          "labelled_at": datetime.now(UTC).isoformat(timespec="seconds")})
        self._write()

    def undo(self, item: Item, category: str) -> None:
        """Remove the last row of ``item`` and write the file."""
        for i in range(len(self.rows) - 1, -1, -1):
            if self.rows[i]["key"] == item.message.key and self.rows[i]["category"] == category:
                del self.rows[i]
                break
        self._write()


class MailboxLabels:
    """Labels as moves through a mailbox connector (``MailboxConnector.move``): the mail goes to its category's
    folder, and back to where it was on undo.  Moves are idempotent, so a retried one does no harm."""

    def __init__(self, connector: Any, folder_of: Callable[[str], str]) -> None:
        self.connector = connector
        self.folder_of = folder_of
        self._made: set[str] = set()

    def record(self, item: Item, category: str) -> None:
        """Move ``item`` to the folder of ``category`` (created first when missing) and keep its new ref."""
        folder = self.folder_of(category)
        if folder not in self._made:
            from assoc_ai_core.ext.connectors import Capability

            if Capability.CREATE_FOLDER in self.connector.capabilities:
                self.connector.ensure_folder(folder)
            self._made.add(folder)
        if item.home is None:
            item.home = item.ref
        item.ref = self.connector.move(item.ref, folder)

    def undo(self, item: Item, category: str) -> None:
        """Move ``item`` back to the folder it was read from."""
        if item.home is not None:
            item.ref = self.connector.move(item.ref, item.home.folder)


@dataclass
class _Step:
    """One thing the person did, for undo: a label or a skip."""

    index: int
    category: str | None  # None: skipped


@dataclass
class LabelSession:
    """The mail to sort, the labels given, the model of the moment and its progress, shared by the page's threads.

    ``items``: the mail to ask about.  ``known``: mail already sorted before
    this run (sorted folders, labels CSV of an earlier run), learnt from but
    never asked about.  ``store``: where each label goes.  ``model``: a model
    to start from (None: none until the labels allow one).
    """

    items: list[Item]
    categories: list[str]
    store: LabelStore
    lang: str = "fr"
    known: list[tuple[Message, str]] = field(default_factory=list)
    model: Any = None
    seed: int = 0
    retrain_every: int = RETRAIN_EVERY
    train: Callable[[list[Message], list[str]], Any] | None = None
    steps: list[_Step] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        from assoc_ai_core.api import clean, text_space

        self._lock = threading.RLock()
        self._space = text_space(clean([it.message for it in self.items]))
        self._proba: Any = None
        self._trained_at = -1
        self._training = False
        self._explained: dict[tuple[int, int], dict[str, Any]] = {}
        self._current: int | None = None
        self.error: str | None = None
        if self.model is not None:
            self._proba = self._pool_proba(self.model)

    # ------------------------------------------------------------------ what was done
    def labelled(self) -> list[tuple[int, str]]:
        """(item index, category) of every label given in this run, in order."""
        return [(s.index, s.category) for s in self.steps if s.category is not None]

    def _seen(self) -> set[int]:
        return {s.index for s in self.steps}

    def training_set(self) -> tuple[list[Message], list[str]]:
        """Every labelled message (earlier ones first) and its category."""
        msgs = [m for m, _ in self.known] + [self.items[i].message for i, _ in self.labelled()]
        labels = [c for _, c in self.known] + [c for _, c in self.labelled()]
        return msgs, labels

    # ------------------------------------------------------------------ the person's actions
    def current(self) -> int | None:
        """The mail shown now (chosen when none is): uncertain and diverse, never one already seen."""
        from assoc_ai_core.api import choose_mail

        with self._lock:
            if self._current is None:
                picked = choose_mail(self._space, self._seen(), proba=self._proba, k=1, seed=self.seed)
                self._current = picked[0] if picked else None
            return self._current

    def label(self, index: int, category: str) -> None:
        """Give ``category`` to the mail shown; kept by the store before the next mail is chosen."""
        if category not in self.categories:
            raise DataError(tr(f"Catégorie inconnue : {category}", f"Unknown category: {category}"))
        with self._lock:
            self._check_current(index)
            self.store.record(self.items[index], category)
            self.steps.append(_Step(index, category))
            self._current = None
        self._maybe_retrain()

    def skip(self, index: int) -> None:
        """Pass the mail shown: not asked again in this run."""
        with self._lock:
            self._check_current(index)
            self.steps.append(_Step(index, None))
            self._current = None

    def undo(self) -> bool:
        """Take back the last label or skip; that mail is shown again.  False when there is nothing to undo."""
        with self._lock:
            if not self.steps:
                return False
            step = self.steps.pop()
            if step.category is not None:
                self.store.undo(self.items[step.index], step.category)
            self._current = step.index
            return True

    def _check_current(self, index: int) -> None:
        # A second tab, or a double click, must not label a mail the person is not looking at.
        if index != self._current:
            raise DataError(tr("Ce message n'est plus celui affiché : rechargez la page.",
                               "This message is no longer the one shown: reload the page."))

    # ------------------------------------------------------------------ the model
    def _maybe_retrain(self) -> None:
        from assoc_ai_core.api import model_ready

        with self._lock:
            msgs, labels = self.training_set()
            n = len(self.labelled())
            if self._training or not model_ready(labels):
                return
            if self._trained_at >= 0 and n - self._trained_at < self.retrain_every:
                return
            self._training = True
            self._trained_at = n
        threading.Thread(target=self._retrain, args=(msgs, labels, n), name="assoc-ai-label-train",
                         daemon=True).start()

    def _retrain(self, msgs: list[Message], labels: list[str], n: int) -> None:
        from assoc_ai_core.api import expected_auto_share

        try:
            model = self._fit(msgs, labels)
            proba = self._pool_proba(model)
            with self._lock:
                self.model, self._proba = model, proba
                self.curve.append((len(labels), expected_auto_share(model)))
                self.error = None
        except Exception as exc:  # a failed training keeps the page (and the labels) going with the last model
            log.warning("labelling: training failed: %s", type(exc).__name__)
            with self._lock:
                self.error = tr("L'apprentissage a échoué ; les étiquettes sont gardées.",
                                "Training failed; the labels are kept.", self.lang)
        finally:
            with self._lock:
                self._training = False
        self._maybe_retrain()  # labels given while training: their turn now

    def _fit(self, msgs: list[Message], labels: list[str]) -> Any:
        if self.train is not None:
            return self.train(msgs, labels)
        import warnings

        from assoc_ai_core.api import train

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "a category with one example" is the normal state here
            return train(msgs, labels)

    def _pool_proba(self, model: Any) -> Any:
        import numpy as np

        msgs = [it.message for it in self.items]
        proba = np.full((len(msgs), max(len(model.classes_), 2)), 1.0 / max(len(model.classes_), 2))
        readable = [i for i, m in enumerate(msgs) if m.error is None]
        if readable:
            proba[readable, : len(model.classes_)] = model.predict_proba([msgs[i] for i in readable])
        return proba

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no training runs (for tests and the end of a run); False on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if not self._training:
                    return True
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ what the page shows
    def state(self) -> dict[str, Any]:
        """Everything the page shows, as JSON values: the mail, the counts, the model's view and the curve."""
        index = self.current()
        with self._lock:
            labelled = self.labelled()
            model, curve = self.model, list(self.curve)
            out: dict[str, Any] = {
                "labelled": len(labelled), "skipped": sum(1 for s in self.steps if s.category is None),
                "total": len(self.items), "known": len(self.known), "can_undo": bool(self.steps),
                "training": self._training, "error": self.error,
                "share": None if not curve else curve[-1][1],
                "share_text": None if not curve else percent(curve[-1][1], self.lang),
                "curve": [[n, round(s, 4)] for n, s in curve], "mail": None, "explanation": None,
                "done": self.done.is_set(),
            }
        if index is not None:
            out["mail"] = self._shown(index)
            if model is not None:
                out["explanation"] = self._explanation(model, index)
        return out

    def _shown(self, index: int) -> dict[str, Any]:
        from assoc_ai_core.api import clean, pseudonymise
        from assoc_ai_core.jobs.audit import pseudonymise_address

        msg = self.items[index].message
        if msg.error is not None:
            return {"index": index, "subject": "", "sender": "", "date": "", "text": "", "error": msg.error,
                    "truncated": False}
        names = (msg.sender_name,) if msg.sender_name else ()
        body = clean([replace(msg, subject="")], pseudonymize=True)[0]
        return {
            "index": index,
            "subject": pseudonymise(msg.subject or "", names=names)[:300],
            "sender": pseudonymise_address(msg.sender),
            "date": msg.date.strftime("%Y-%m-%d") if msg.date else "",
            "text": body[:MAX_SHOWN_CHARS], "truncated": len(body) > MAX_SHOWN_CHARS,
            "error": None,
        }

    def _explanation(self, model: Any, index: int) -> dict[str, Any] | None:
        from assoc_ai_core.api import explain

        cache_key = (id(model), index)
        if cache_key in self._explained:
            return self._explained[cache_key]
        msg = self.items[index].message
        if msg.error is not None:
            return None
        try:
            exp = explain(model, msg, top_k=5, lang=self.lang)
        except Exception as exc:  # an explanation is a help, never a reason to stop sorting
            log.warning("labelling: explanation failed: %s", type(exc).__name__)
            return None
        out = {"label": exp.label, "probability": percent(exp.probability, self.lang),
               "runner_up": exp.runner_up, "toward": [t for t, _ in exp.toward[:5]],
               "against": [t for t, _ in exp.against[:3]]}
        self._explained = {cache_key: out}  # one mail at a time: the previous one is not needed again
        return out


# ====================================================================== the server
class LabelServer(ThreadingHTTPServer):
    """The page's HTTP server: 127.0.0.1 only, one session, one secret token."""

    daemon_threads = True

    def __init__(self, session: LabelSession, port: int = 0, token: str | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.session = session
        self.token = token or secrets.token_urlsafe(32)
        self.port = int(self.server_address[1])

    @property
    def url(self) -> str:
        """The address to open, token included."""
        return f"http://127.0.0.1:{self.port}/?t={self.token}"

    def allowed_hosts(self) -> set[str]:
        """The Host headers this server answers to."""
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    def allowed_origins(self) -> set[str]:
        """The Origins a POST may come from: this page's own."""
        return {f"http://{h}" for h in self.allowed_hosts()}


class _Handler(BaseHTTPRequestHandler):
    server: LabelServer
    server_version = "assoc-ai-label"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines hold the token: never logged.
        return

    # ------------------------------------------------------------------ checks
    def _allowed(self, post: bool) -> bool:
        if self.headers.get("Host", "") not in self.server.allowed_hosts():
            return False
        given = parse_qs(urlsplit(self.path).query).get("t", [""])[0]
        if not hmac.compare_digest(given.encode("utf-8"), self.server.token.encode("utf-8")):
            return False
        return not post or self.headers.get("Origin", "") in self.server.allowed_origins()

    def _send(self, status: int, body: bytes, content_type: str, nonce: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store, max-age=0")
        self.send_header("Pragma", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # the URL holds the token
        self.send_header("X-Frame-Options", "DENY")
        script = f"'nonce-{nonce}'" if nonce else "'none'"
        self.send_header("Content-Security-Policy",
                         f"default-src 'self'; script-src {script}; style-src {script}; img-src 'self' data:; "
                         "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _refuse(self) -> None:
        self._send(403, b"forbidden\n", "text/plain; charset=utf-8")

    # ------------------------------------------------------------------ routes
    def do_GET(self) -> None:
        """The page, or the state it shows."""
        if not self._allowed(post=False):
            self._refuse()
            return
        route = urlsplit(self.path).path
        if route == "/":
            nonce = secrets.token_urlsafe(16)
            body = page_html(self.server.session, nonce).encode("utf-8")
            self._send(200, body, "text/html; charset=utf-8", nonce=nonce)
        elif route == "/state":
            self._json(200, self.server.session.state())
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        """A label, a skip, an undo, or the end of the run."""
        if not self._allowed(post=True):
            self._refuse()
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, b"too large\n", "text/plain; charset=utf-8")
            return
        try:
            data = json.loads(self.rfile.read(length) or b"{}") if length else {}
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            self._send(400, b"bad request\n", "text/plain; charset=utf-8")
            return
        session = self.server.session
        route = urlsplit(self.path).path
        try:
            if route == "/label":
                session.label(int(data.get("index", -1)), str(data.get("category", "")))
            elif route == "/skip":
                session.skip(int(data.get("index", -1)))
            elif route == "/undo":
                session.undo()
            elif route == "/done":
                # Answer first: the command stops the server as soon as the run is marked done.
                self._json(200, {**session.state(), "done": True})
                session.done.set()
                return
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
                return
        except (DataError, TypeError, ValueError) as exc:
            self._json(409, {"error": str(exc)})
            return
        except OSError as exc:  # the labels file or the mailbox refused: say so, keep the page
            log.warning("labelling: could not keep a label: %s", type(exc).__name__)
            self._json(500, {"error": tr("Impossible d'enregistrer l'étiquette.", "Could not save the label.",
                                         session.lang)})
            return
        self._json(200, session.state())


def serve(session: LabelSession, *, port: int = 0, token: str | None = None) -> LabelServer:
    """A started server (in a background thread) for ``session``; call ``shutdown()`` then ``server_close()``."""
    server = LabelServer(session, port, token)
    threading.Thread(target=server.serve_forever, name="assoc-ai-label-page", daemon=True).start()
    return server


# ====================================================================== the page
def _texts(lang: str) -> dict[str, str]:
    """Every text of the page, in the run's language."""
    def t(fr: str, en: str) -> str:
        return str(tr(fr, en, lang))

    return {
        "title": t("Trier les premiers messages", "Sort the first messages"),
        "from": t("De", "From"), "date": t("Date", "Date"), "subject": t("Objet", "Subject"),
        "skip": t("Passer", "Skip"), "undo": t("Annuler", "Undo"), "finish": t("Terminé", "Done"),
        "keys": t("Touches : 1–9 une catégorie, s passer, u ou ⌫ annuler.",
                  "Keys: 1–9 a category, s skip, u or ⌫ undo."),
        "labelled": t("triés", "sorted"), "skipped": t("passés", "skipped"), "of": t("sur", "of"),
        "known": t("déjà triés avant", "sorted before"),
        "share": t("Part qui serait triée automatiquement à 95 % de précision (estimée) :",
                   "Expected share sorted automatically at 95% precision:"),
        "no_model": t("Pas encore de modèle : triez au moins 2 messages dans chacune de 2 catégories.",
                      "No model yet: sort at least 2 messages in each of 2 categories."),
        "training": t("apprentissage en cours…", "training…"),
        "guess": t("Le modèle pense", "The model thinks"), "because": t("parce que", "because of"),
        "against": t("plutôt que", "rather than"), "shown_cut": t("(texte coupé)", "(text cut)"),
        "unreadable": t("Message illisible :", "Unreadable message:"),
        "empty": t("Plus aucun message à trier. Merci !", "No message left to sort. Thank you!"),
        "finished": t("C'est terminé : vous pouvez fermer cette page. Le terminal dit comment entraîner le modèle.",
                      "All done: you may close this page. The terminal says how to train the model."),
        "curve": t("Progression de la part triée automatiquement", "Growth of the share sorted automatically"),
        "error": t("Erreur", "Error"), "no_text": t("(pas de texte)", "(no text)"),
        "colon": t("\u00a0: ", ": "),  # French puts a (non-breaking) space before a colon, English does not
    }


_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2330}
header{background:#21365c;color:#fff;padding:.7rem 1.5rem;display:flex;justify-content:space-between;
align-items:center;gap:1rem;flex-wrap:wrap}
header h1{font-size:1.15rem;margin:0;font-weight:600}
#counts{font-size:.95rem;opacity:.95}
main{max-width:1150px;margin:1.2rem auto;padding:0 1rem;display:grid;grid-template-columns:minmax(0,2fr) minmax(0,1fr);
gap:1.2rem}
@media (max-width:800px){main{grid-template-columns:1fr}}
.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:1.1rem 1.3rem}
.meta{color:#4a5468;font-size:.9rem;margin:0 0 .3rem}
#subject{font-size:1.2rem;margin:.2rem 0 .8rem;font-weight:600;overflow-wrap:anywhere}
#text{white-space:pre-wrap;overflow-wrap:anywhere;max-height:52vh;overflow:auto;border-top:1px solid #e3e6ec;
padding-top:.8rem;margin:0;font:inherit}
#cats{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:1rem}
button{font:inherit;border:1px solid #b8c0cf;background:#fff;color:#1d2330;border-radius:8px;padding:.45rem .8rem;
cursor:pointer}
button:hover,button:focus-visible{border-color:#21365c;outline:2px solid #21365c33}
button.cat{background:#eaf0fb;border-color:#9db3da}
button.cat.guess{background:#d4e6d0;border-color:#6c9c62}
button kbd{display:inline-block;min-width:1.4em;margin-right:.4em;padding:0 .3em;border-radius:4px;background:#21365c;
color:#fff;font:600 .8rem/1.4 ui-monospace,monospace;text-align:center}
#actions{display:flex;gap:.5rem;margin-top:.8rem;flex-wrap:wrap}
#finish{margin-left:auto;background:#21365c;color:#fff;border-color:#21365c}
#finish kbd{background:#fff;color:#21365c}
.hint{color:#4a5468;font-size:.85rem;margin-top:.6rem}
.card>:first-child{margin-top:0}
aside{display:flex;flex-direction:column;gap:1.2rem}
aside h2{font-size:1rem;margin:0 0 .5rem;font-weight:600}
#explain .label{font-weight:600}
#explain ul{margin:.3rem 0 0;padding-left:1.2rem}
#share{font-size:2rem;font-weight:700;color:#21365c;margin:.2rem 0}
svg{width:100%;height:120px;display:block}
.axis{fill:none;stroke:#b8c0cf;stroke-width:1}
.line{fill:none;stroke:#2e7d32;stroke-width:2.5}
.dot{fill:#2e7d32}
.muted{color:#6b7385}
.error{color:#a4262c}
.hidden{display:none}
"""

_SCRIPT = r"""
"use strict";
const T = JSON.parse(document.getElementById("texts").textContent);
const CATS = JSON.parse(document.getElementById("cats-data").textContent);
const TOKEN = new URLSearchParams(location.search).get("t") || "";
let state = null, queue = Promise.resolve();
const $ = (id) => document.getElementById(id);
function url(path) { return path + "?t=" + encodeURIComponent(TOKEN); }
function showError(message) { $("err").textContent = T.error + T.colon + message; $("err").classList.remove("hidden"); }
async function send(path, body) {
  try {
    const r = await fetch(url(path), body === undefined ? {cache: "no-store"} :
      {method: "POST", cache: "no-store", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const data = await r.json().catch(() => ({}));
    if (!r.ok) { showError(data.error || r.status); if (r.status === 409) await send("/state"); }
    else { $("err").classList.add("hidden"); render(data); }
  } catch (e) { showError(String(e)); }
}
// One request at a time, in the order the keys were pressed: a fast typist's second key waits for the first,
// and reads the mail shown after it, never the one before.
function act(make) { queue = queue.then(() => { const req = make(); return req ? send(req[0], req[1]) : null; }); }
function text(el, value) { el.textContent = value == null ? "" : String(value); }
function render(s) {
  state = s;
  let counts = s.labelled + " " + T.labelled + " · " + s.skipped + " " + T.skipped + " · " + T.of + " " + s.total;
  if (s.known) counts += " · " + s.known + " " + T.known;
  text($("counts"), counts);
  const m = s.mail;
  $("mail").classList.toggle("hidden", !m || s.done);
  $("empty").classList.toggle("hidden", !!m || s.done);
  $("finished").classList.toggle("hidden", !s.done);
  if (m) {
    text($("sender"), T.from + T.colon + (m.sender || "—") + (m.date ? "  ·  " + T.date + T.colon + m.date : ""));
    text($("subject"), m.subject || "—");
    text($("text"), m.error ? T.unreadable + " " + m.error : (m.text || T.no_text) + (m.truncated ? "\n" + T.shown_cut : ""));
  }
  $("undo").disabled = !s.can_undo;
  const ex = s.explanation;
  document.querySelectorAll("button.cat").forEach((b) => b.classList.toggle("guess", !!ex && b.dataset.cat === ex.label));
  const box = $("explain");
  box.replaceChildren();
  $("explain").classList.toggle("hidden", s.done);
  if (ex && m) {
    const p = document.createElement("p");
    const strong = document.createElement("span"); strong.className = "label";
    text(strong, ex.label + " (" + ex.probability + ")");
    p.append(T.guess + T.colon, strong);
    box.append(p);
    if (ex.toward.length) {
      const q = document.createElement("p"); text(q, T.because + T.colon.trimEnd()); box.append(q);
      const ul = document.createElement("ul");
      ex.toward.forEach((w) => { const li = document.createElement("li"); text(li, w); ul.append(li); });
      box.append(ul);
    }
    if (ex.runner_up && ex.runner_up !== ex.label) {
      const r = document.createElement("p"); r.className = "muted"; text(r, T.against + " " + ex.runner_up); box.append(r);
    }
  } else {
    const p = document.createElement("p"); p.className = "muted"; text(p, T.no_model); box.append(p);
  }
  text($("share"), s.share_text == null ? "—" : s.share_text);
  $("training").classList.toggle("hidden", !s.training);
  $("trainerr").classList.toggle("hidden", !s.error);
  text($("trainerr"), s.error || "");
  drawCurve(s.curve);
}
function drawCurve(points) {
  const svg = $("curve"), NS = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const W = 300, H = 120, P = 8;
  const axis = document.createElementNS(NS, "path");
  axis.setAttribute("class", "axis"); axis.setAttribute("d", `M${P} ${P} V${H - P} H${W - P}`);
  svg.append(axis);
  if (!points.length) return;
  const maxN = Math.max(...points.map((p) => p[0]), 1), minN = Math.min(...points.map((p) => p[0]));
  const x = (n) => P + (maxN === minN ? (W - 2 * P) : (n - minN) / (maxN - minN) * (W - 2 * P));
  const y = (v) => H - P - v * (H - 2 * P);
  const line = document.createElementNS(NS, "path");
  line.setAttribute("class", "line");
  line.setAttribute("d", points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" "));
  svg.append(line);
  const last = points[points.length - 1];
  const dot = document.createElementNS(NS, "circle");
  dot.setAttribute("class", "dot"); dot.setAttribute("r", "3.5");
  dot.setAttribute("cx", x(last[0]).toFixed(1)); dot.setAttribute("cy", y(last[1]).toFixed(1));
  svg.append(dot);
}
function labelWith(i) {
  act(() => state && state.mail && !state.done && i < CATS.length ?
    ["/label", {index: state.mail.index, category: CATS[i]}] : null);
}
function skip() { act(() => state && state.mail && !state.done ? ["/skip", {index: state.mail.index}] : null); }
function undo() { act(() => state && state.can_undo && !state.done ? ["/undo", {}] : null); }
CATS.forEach((c, i) => {
  const b = document.createElement("button");
  b.className = "cat"; b.dataset.cat = c; b.type = "button";
  if (i < 9) { const k = document.createElement("kbd"); text(k, i + 1); b.append(k); }
  b.append(c);
  b.addEventListener("click", () => labelWith(i));
  $("cats").append(b);
});
$("skip").addEventListener("click", skip);
$("undo").addEventListener("click", undo);
$("finish").addEventListener("click", () => act(() => ["/done", {}]));
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key >= "1" && e.key <= "9") { labelWith(Number(e.key) - 1); e.preventDefault(); }
  else if (e.key === "s" || e.key === "S") { skip(); e.preventDefault(); }
  else if (e.key === "u" || e.key === "U" || e.key === "Backspace") { undo(); e.preventDefault(); }
});
act(() => ["/state"]);
// While the model trains in the background, its explanation and estimate arrive through this poll.
setInterval(() => { if (state && !state.done) act(() => ["/state"]); }, 2000);
"""


def _json_for_script(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` or comment opener can appear)."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_html(session: LabelSession, nonce: str) -> str:
    """The whole page, in the session's language; its script and style carry ``nonce`` (the CSP allows nothing else)."""
    texts = _texts(session.lang)
    esc = html.escape
    return f"""<!doctype html>
<html lang="{esc(session.lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>assoc-ai · {esc(texts["title"])}</title>
<style nonce="{nonce}">{_STYLE}</style>
</head>
<body>
<header><h1>assoc-ai · {esc(texts["title"])}</h1><div id="counts"></div></header>
<main>
<section class="card">
  <div id="mail" class="hidden">
    <p class="meta" id="sender"></p>
    <h2 id="subject"></h2>
    <pre id="text"></pre>
    <div id="cats"></div>
    <div id="actions">
      <button type="button" id="skip"><kbd>s</kbd>{esc(texts["skip"])}</button>
      <button type="button" id="undo"><kbd>u</kbd>{esc(texts["undo"])}</button>
      <button type="button" id="finish">{esc(texts["finish"])}</button>
    </div>
    <p class="hint">{esc(texts["keys"])}</p>
  </div>
  <p id="empty" class="hidden">{esc(texts["empty"])}</p>
  <p id="finished" class="hidden">{esc(texts["finished"])}</p>
  <p id="err" class="error hidden" role="alert"></p>
</section>
<aside>
  <div class="card" id="explain" aria-live="polite"></div>
  <div class="card">
    <h2>{esc(texts["share"])}</h2>
    <p id="share">—</p>
    <p id="training" class="muted hidden">{esc(texts["training"])}</p>
    <p id="trainerr" class="error hidden"></p>
    <svg id="curve" viewBox="0 0 300 120" role="img" aria-label="{esc(texts["curve"])}"></svg>
  </div>
</aside>
</main>
<script type="application/json" id="texts">{_json_for_script(texts)}</script>
<script type="application/json" id="cats-data">{_json_for_script(list(session.categories))}</script>
<script nonce="{nonce}">{_SCRIPT}</script>
</body>
</html>
"""


def summary_lines(session: LabelSession, train_hint: Sequence[str]) -> list[str]:
    """What the command prints at the end: how many were sorted, and how to train on them."""
    n = len(session.labelled())
    lines = [tr(f"{n} message(s) trié(s) dans cette session ({len(session.known)} déjà triés avant).",
                f"{n} message(s) sorted in this session ({len(session.known)} sorted before).", session.lang)]
    if train_hint:
        lines.append(tr("Pour entraîner le modèle :", "To train the model:", session.lang))
        lines.extend("  " + h for h in train_hint)
    return lines
