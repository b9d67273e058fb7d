"""Behavioural checks every :class:`~assoc_ai_core.ext.connectors.MailboxConnector` must pass.

Third-party plugins run them in their own tests, against their real server::

    from assoc_ai_core.testing.mailbox import MailboxHarness
    from assoc_ai_core.testing import parametrize_mailbox_checks

    @parametrize_mailbox_checks()
    def test_conformance(check, tmp_path, dovecot):
        harness = MailboxHarness(
            make=lambda: ImapConnector(ImapConfig(host=..., password=Secret("s3cret"))),
            deliver=dovecot.deliver,                 # (folder, raw bytes) -> None, as the MTA would
            section={"connector": "imap", "host": ..., "password": {"env": "IMAP_PW"}},
            env={"IMAP_PW": "s3cret"},               # for the SIGKILL check's subprocess
            secret_values=("s3cret",),
        )
        check(harness, tmp_path)

Each check takes a *fresh, empty* mailbox (``harness``) and a scratch folder;
a check that needs a capability the connector does not declare raises
``CheckSkipped`` (pytest shows it as skipped with the reason).  The triage
checks run the real :class:`~assoc_ai_core.jobs.triage.TriageJob` with a tiny model
trained on the kit's own sample mail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef, Page

CATEGORY_A, CATEGORY_B = "Adhésion", "Événement"
FOLDER_A, FOLDER_B, REVIEW = "IA/Adhésion", "IA/Événement", "À vérifier"


class CheckSkipped(Exception):
    """The connector legitimately cannot be checked here (capability not declared)."""


@dataclass
class MailboxHarness:
    """How the kit reaches one fresh mailbox of the connector under test.

    ``make`` builds a new, independent connector instance over that mailbox
    (not opened); ``deliver(folder, raw)`` puts a message in as a mail server
    would.  ``section`` is the ``[mailbox]`` table (with ``connector = id``)
    that builds the same connector from configuration, used by the check that
    runs the job in a subprocess and kills it; ``env`` holds the environment
    that subprocess needs (secret references).  ``secret_values`` are secrets
    that must never appear in a ``repr``.
    """

    make: Callable[[], MailboxConnector]
    deliver: Callable[[str, bytes], None]
    inbox: str = "INBOX"
    section: Mapping[str, Any] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secret_values: Sequence[str] = ()


# ============================================================================ sample mail
def sample_mail(subject: str = "Bonjour", body: str = "Bonjour,\nune question.\nMerci", *,
                sender: str = "marie.dupont@exemple.org", to: str = "contact@asso.example",
                message_id: str | bool | None = True, headers: Mapping[str, str] | None = None,
                date: datetime | None = None) -> bytes:
    """RFC 822 bytes of a plain UTF-8 mail (``message_id=True``: a fresh one; ``False``: none)."""
    from email.header import Header

    lines = [f"From: {sender}", f"To: {to}",
             "Subject: " + (subject if subject.isascii() else Header(subject, "utf-8").encode()),
             "Date: " + format_datetime(date or datetime(2025, 3, 4, 10, 0, tzinfo=UTC))]
    if message_id is True:
        lines.append("Message-ID: " + make_msgid(domain="exemple.org"))
    elif isinstance(message_id, str):
        lines.append(f"Message-ID: <{message_id.strip('<>')}>")
    lines += ["MIME-Version: 1.0", 'Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: 8bit"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n").encode("utf-8")


_ADHESION = [
    ("Adhésion {y}", "Bonjour, je souhaite adhérer à l'association pour {y}. Comment régler la cotisation ?"),
    ("Cotisation annuelle", "Bonjour, ma carte de membre a expiré, je voudrais renouveler mon adhésion et payer la cotisation."),
    ("Renouvellement adhésion", "Je renouvelle mon adhésion, le chèque de cotisation est envoyé. Merci pour la carte de membre."),
    ("Question cotisation", "Quel est le montant de la cotisation pour un couple ? Nous voulons devenir membres."),
    ("Bulletin d'adhésion", "Ci-joint mon bulletin d'adhésion rempli et le règlement de la cotisation {y}."),
    ("Reçu de cotisation", "Pourriez-vous m'envoyer un reçu pour ma cotisation d'adhérent {y} ?"),
]
_EVENEMENT = [
    ("Inscription sortie", "Bonjour, je voudrais m'inscrire à la sortie du {d} avec deux amis. Reste-t-il des places ?"),
    ("Concert du {d}", "À quelle heure commence le concert du {d} ? Faut-il réserver les places ?"),
    ("Visite guidée", "Nous aimerions réserver la visite guidée du {d} pour un groupe de dix personnes."),
    ("Programme de la fête", "Pouvez-vous m'envoyer le programme de la fête de quartier du {d} ?"),
    ("Réservation atelier", "Je souhaite réserver une place pour l'atelier du {d}, l'inscription est-elle ouverte ?"),
    ("Annulation inscription", "Je dois annuler mon inscription à la visite du {d}, désolé. Libérez ma place."),
]


def kit_messages(n_per_category: int = 12, *, seed: int = 0) -> list[tuple[bytes, str]]:
    """Labelled sample mail of two categories (Adhésion / Événement) for the kit's model."""
    out = []
    for i in range(n_per_category):
        y, d = 2020 + (i + seed) % 6, f"{(i * 7 + seed) % 28 + 1} mai"
        for templates, label in ((_ADHESION, CATEGORY_A), (_EVENEMENT, CATEGORY_B)):
            subject, body = templates[(i + seed) % len(templates)]
            out.append((sample_mail(subject.format(y=y, d=d), body.format(y=y, d=d) + "\nBien cordialement",
                                    sender=f"personne{i}.{seed}@exemple.org"), label))
    return out


_MODEL_LOCK = threading.Lock()
_MODEL: Any = None


def kit_model() -> Any:
    """A tiny model trained once per process on :func:`kit_messages`."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            from assoc_ai_core.api import train
            from assoc_ai_core.mail.parsing import parse_message

            msgs = [parse_message(raw, label=label) for raw, label in kit_messages(12)]
            _MODEL = train(msgs, target_precision=0.9)
        return _MODEL


class RecordingForwarder:
    """A forwarder that only counts what it was asked to send (the kit checks 'at most once')."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.path = Path(path) if path else None

    def send(self, raw: bytes, to: str, *, category: str, key: str, subject: str = "") -> str:
        """Record the forward (to a file too, fsynced, when one was given)."""
        self.sent.append((key, to))
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps([key, to]) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return f"<fwd-{len(self.sent)}@kit>"

    def counts(self) -> dict[str, int]:
        """Forwards per message key (from the file when there is one)."""
        items = self.sent
        if self.path is not None and self.path.exists():
            items = [tuple(json.loads(line)) for line in self.path.read_text(encoding="utf-8").splitlines() if line]
        out: dict[str, int] = {}
        for key, _ in items:
            out[key] = out.get(key, 0) + 1
        return out


# ============================================================================ helpers
def _fail(message: str) -> AssertionError:
    return AssertionError("[conformance] " + message)


def _check(condition: Any, message: str) -> None:
    if not condition:
        raise _fail(message)


def _require(conn: MailboxConnector | type[MailboxConnector], *caps: Capability) -> None:
    missing = [c.value for c in caps if c not in conn.capabilities]
    if missing:
        raise CheckSkipped(f"{conn.id} does not declare {', '.join(missing)}")


def _opened(harness: MailboxHarness) -> MailboxConnector:
    conn = harness.make()
    conn.open()
    return conn


def _drain(conn: MailboxConnector, folder: str, cursor: Mapping[str, Any] | None,
           page_size: int = 100) -> tuple[list[FetchedMail], Mapping[str, Any] | None, list[Page]]:
    mails: list[FetchedMail] = []
    pages = list(conn.fetch_new(folder, cursor, page_size=page_size))
    for page in pages:
        mails.extend(page.messages)
        cursor = page.cursor
    return mails, cursor, pages


def _find(conn: MailboxConnector, folder: str, key: str) -> MailRef:
    for fetched in conn.fetch_all(folder):
        if fetched.ref.key == key:
            return fetched.ref
    raise _fail(f"message {key} not found in {folder!r} by fetch_all")


def mailbox_census(conn: MailboxConnector) -> dict[str, list[tuple[str, bytes]]]:
    """Every message of every folder, by key: [(folder, raw), ...]."""
    out: dict[str, list[tuple[str, bytes]]] = {}
    for folder in conn.list_folders():
        for fetched in conn.fetch_all(folder):
            out.setdefault(fetched.ref.key, []).append((folder, fetched.raw))
    return out


class _IOWatch:
    """Records file and network I/O while armed (``sys.addaudithook`` cannot be removed, so it is armed on demand)."""

    _installed = False
    armed = threading.local()
    _EVENTS = ("open", "socket.connect", "socket.getaddrinfo", "socket.bind", "os.mkdir", "os.rename", "os.remove",
               "os.rmdir", "os.listdir", "os.scandir", "subprocess.Popen", "shutil.copyfile", "os.truncate")

    @classmethod
    def install(cls) -> None:
        if not cls._installed:
            sys.addaudithook(cls._hook)
            cls._installed = True

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        seen = getattr(cls.armed, "events", None)
        if seen is None or event not in cls._EVENTS:
            return
        if event == "open":
            path = str(args[0]) if args and args[0] is not None else ""
            # imports and lazy module loading are not the connector talking to its mailbox
            if path.endswith((".py", ".pyc", ".so", ".pth")) or "__pycache__" in path or path.startswith(
                    (sys.prefix, sys.base_prefix, "/usr/lib", "/usr/share", "/etc/ssl", "/proc", "/dev")):
                return
            if isinstance(args[0], int):
                return
        seen.append((event, str(args[:2])[:200]))


# ============================================================================ checks
def check_id_is_slug(harness: MailboxHarness, tmp_path: Path) -> None:
    """``id`` is a lower-case slug and the class is a MailboxConnector."""
    conn = harness.make()
    _check(isinstance(conn, MailboxConnector), f"{type(conn).__name__} is not a MailboxConnector")
    _check(isinstance(conn.id, str) and re.fullmatch(r"[a-z0-9_]+", conn.id or ""),
           f"id must be a lower-case slug [a-z0-9_]+, got {conn.id!r}")


def check_config_is_frozen_and_hides_secrets(harness: MailboxHarness, tmp_path: Path) -> None:
    """``Config`` is a frozen dataclass; no secret value shows in its ``repr`` or the connector's."""
    from assoc_ai_core.ext.config import Secret

    conn = harness.make()
    cfg = conn.config
    _check(dataclasses.is_dataclass(cfg) and isinstance(cfg, type(conn).Config),
           "connector.config must be an instance of its Config dataclass")
    _check(type(cfg).__dataclass_params__.frozen, "Config must be a frozen dataclass (@dataclass(frozen=True))")
    name = dataclasses.fields(cfg)[0].name
    try:
        setattr(cfg, name, getattr(cfg, name))
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise _fail("Config accepted an attribute assignment")
    secrets = [getattr(cfg, f.name).get() for f in dataclasses.fields(cfg) if isinstance(getattr(cfg, f.name), Secret)]
    secrets += list(harness.secret_values)
    for value in (v for v in secrets if v):
        for text in (repr(cfg), str(cfg), repr(conn)):
            _check(value not in text, "a secret value appears in the repr of the config or connector")


def check_construct_does_no_io(harness: MailboxHarness, tmp_path: Path) -> None:
    """Building a connector (``cls(config)``) opens no file or socket: ``open()`` does."""
    template = harness.make()
    _IOWatch.install()
    _IOWatch.armed.events = []
    try:
        conn = type(template)(template.config)
    finally:
        events, _IOWatch.armed.events = _IOWatch.armed.events, None
    _check(not events, f"constructing {type(conn).__name__} did I/O: {events[:3]}")


def check_capabilities_are_declared(harness: MailboxHarness, tmp_path: Path) -> None:
    """``capabilities`` is a frozenset of Capability including READ; declared actions are implemented."""
    cls = type(harness.make())
    _check(isinstance(cls.capabilities, frozenset) and all(isinstance(c, Capability) for c in cls.capabilities),
           "capabilities must be a frozenset of Capability members")
    _check(Capability.READ in cls.capabilities, "a mailbox connector must declare Capability.READ")
    for cap, method in ((Capability.MOVE, "move"), (Capability.TAG_SUBJECT, "tag_subject"),
                        (Capability.LABEL, "add_label"), (Capability.CREATE_FOLDER, "ensure_folder"),
                        (Capability.FORWARD, "forward")):
        if cap in cls.capabilities:
            _check(getattr(cls, method) is not getattr(MailboxConnector, method),
                   f"{cap.value} is declared but {method}() is not implemented")
    if Capability.WATCH in cls.capabilities:
        _check(callable(getattr(cls, "wait_for_changes", None)),
               "Capability.WATCH needs a wait_for_changes(folders, timeout) -> bool method")


def check_close_is_safe_twice(harness: MailboxHarness, tmp_path: Path) -> None:
    """``close()`` never raises, even twice or before ``open()``."""
    conn = harness.make()
    conn.close()
    conn = _opened(harness)
    conn.close()
    conn.close()


def check_list_folders_has_inbox(harness: MailboxHarness, tmp_path: Path) -> None:
    """``list_folders`` returns names, the inbox among them."""
    conn = _opened(harness)
    try:
        folders = conn.list_folders()
        _check(isinstance(folders, list) and all(isinstance(f, str) for f in folders), "list_folders must return list[str]")
        _check(harness.inbox in folders, f"{harness.inbox!r} missing from list_folders(): {folders}")
    finally:
        conn.close()


def check_ensure_folder_nested(harness: MailboxHarness, tmp_path: Path) -> None:
    """``ensure_folder('IA/Adhésion')`` creates nested, non-ASCII folders; a second call does nothing."""
    conn = _opened(harness)
    try:
        _require(conn, Capability.CREATE_FOLDER)
        conn.ensure_folder(FOLDER_A)
        conn.ensure_folder(FOLDER_A)
        conn.ensure_folder(REVIEW)
        folders = conn.list_folders()
        _check(FOLDER_A in folders and REVIEW in folders, f"created folders missing from list_folders(): {folders}")
    finally:
        conn.close()


def check_fetch_new_yields_pages(harness: MailboxHarness, tmp_path: Path) -> None:
    """``fetch_new`` yields Pages of FetchedMail whose key is ``parse_message(raw).key`` and a JSON cursor."""
    from assoc_ai_core.mail.parsing import parse_message

    raws = [sample_mail(f"Message {i}", f"Texte numéro {i}") for i in range(5)]
    for raw in raws:
        harness.deliver(harness.inbox, raw)
    conn = _opened(harness)
    try:
        mails, cursor, pages = _drain(conn, harness.inbox, None, page_size=2)
        _check(len(pages) >= 3, f"5 messages with page_size=2 must give at least 3 pages, got {len(pages)}")
        for page in pages:
            _check(isinstance(page, Page) and len(page.messages) <= 2, "pages must be Page objects of at most page_size")
            json.dumps(dict(page.cursor))
        _check(len(mails) == 5, f"expected 5 new messages, got {len(mails)}")
        for m in mails:
            _check(isinstance(m, FetchedMail) and isinstance(m.raw, bytes), "pages must hold FetchedMail with raw bytes")
            _check(m.ref.folder == harness.inbox, f"ref.folder must be {harness.inbox!r}, got {m.ref.folder!r}")
            _check(m.ref.key == parse_message(m.raw).key, "ref.key must equal parse_message(raw).key")
        _check(len({m.ref.key for m in mails}) == 5, "the five messages must have five distinct keys")
    finally:
        conn.close()


def check_cursor_resumes_after_restart(harness: MailboxHarness, tmp_path: Path) -> None:
    """With the stored cursor (JSON round trip, new instance) nothing old comes back; new mail does."""
    harness.deliver(harness.inbox, sample_mail("Premier", "un"))
    harness.deliver(harness.inbox, sample_mail("Deuxième", "deux"))
    conn = _opened(harness)
    try:
        first, cursor, _ = _drain(conn, harness.inbox, None)
    finally:
        conn.close()
    _check(len(first) == 2, f"expected 2 messages, got {len(first)}")
    stored = json.loads(json.dumps(dict(cursor or {})))
    conn = _opened(harness)
    try:
        again, cursor2, _ = _drain(conn, harness.inbox, stored)
        _check(not again, f"a second fetch with the stored cursor returned {len(again)} old message(s)")
        raw = sample_mail("Troisième", "trois")
        harness.deliver(harness.inbox, raw)
        latest, _, _ = _drain(conn, harness.inbox, json.loads(json.dumps(dict(cursor2 or stored))))
        keys = {m.ref.key for m in latest}
        _check(len(latest) == 1 and keys == {_key(raw)},
               f"after one delivery, exactly that message must be new (got {len(latest)})")
    finally:
        conn.close()


def _key(raw: bytes) -> str:
    from assoc_ai_core.mail.parsing import parse_message

    return parse_message(raw).key


def check_fetch_all(harness: MailboxHarness, tmp_path: Path) -> None:
    """``fetch_all`` yields every message of a folder, whatever the cursor."""
    raws = [sample_mail(f"Tout {i}", "x") for i in range(3)]
    for raw in raws:
        harness.deliver(harness.inbox, raw)
    conn = _opened(harness)
    try:
        _drain(conn, harness.inbox, None)
        keys = {m.ref.key for m in conn.fetch_all(harness.inbox)}
        _check(keys == {_key(r) for r in raws}, "fetch_all must return every message of the folder")
    finally:
        conn.close()


def check_move_is_idempotent(harness: MailboxHarness, tmp_path: Path) -> None:
    """Moving twice (old ref, then new ref) leaves one copy in the target and returns its ref."""
    raw = sample_mail("À déplacer", "x")
    harness.deliver(harness.inbox, raw)
    conn = _opened(harness)
    try:
        _require(conn, Capability.MOVE, Capability.CREATE_FOLDER)
        conn.ensure_folder(FOLDER_A)
        ref = _find(conn, harness.inbox, _key(raw))
        moved = conn.move(ref, FOLDER_A)
        _check(moved.folder == FOLDER_A and moved.key == ref.key, f"move must return a ref in {FOLDER_A!r}")
        again = conn.move(ref, FOLDER_A)
        _check(again.folder == FOLDER_A, "moving again with the old ref must return the ref in the target")
        conn.move(moved, FOLDER_A)
        census = mailbox_census(conn)
        _check([f for f, _ in census.get(ref.key, [])] == [FOLDER_A],
               f"after repeated moves the message must be once, in {FOLDER_A!r}: {census.get(ref.key)}")
    finally:
        conn.close()


def check_locate_sees_moves_by_another_instance(harness: MailboxHarness, tmp_path: Path) -> None:
    """A move made through a second, independent instance is found by ``locate`` on the first."""
    raw = sample_mail("Où suis-je ?", "x")
    harness.deliver(harness.inbox, raw)
    first = _opened(harness)
    second = _opened(harness)
    try:
        _require(first, Capability.MOVE, Capability.CREATE_FOLDER)
        first.ensure_folder(FOLDER_B)
        ref = _find(first, harness.inbox, _key(raw))
        found = first.locate([ref])
        _check([r.folder for r in found.get(ref.key, [])] == [harness.inbox], f"locate before the move: {found}")
        second.move(_find(second, harness.inbox, ref.key), FOLDER_B)
        found = first.locate([ref])
        _check([r.folder for r in found.get(ref.key, [])] == [FOLDER_B],
               f"locate must find the message in {FOLDER_B!r} after a move by another instance: {found}")
        missing = MailRef(harness.inbox, "no-such-uid", "no-such-key@kit")
        _check(first.locate([missing]).get(missing.key) == [], "locate of an unknown key must map it to []")
    finally:
        first.close()
        second.close()


def check_tag_subject_is_idempotent(harness: MailboxHarness, tmp_path: Path) -> None:
    """Tagging twice gives one copy whose subject carries the tag once, with the same key (also without Message-ID)."""
    from assoc_ai_core.ext.subject import read_subject

    raws = [sample_mail("Adhésion 2025", "x"), sample_mail("Sans identifiant", "y", message_id=False)]
    for raw in raws:
        harness.deliver(harness.inbox, raw)
    conn = _opened(harness)
    try:
        _require(conn, Capability.TAG_SUBJECT)
        for raw in raws:
            ref = _find(conn, harness.inbox, _key(raw))
            tagged = conn.tag_subject(ref, "[#Adhésion]")
            _check(tagged.key == ref.key, "tag_subject must keep the message's key")
            conn.tag_subject(tagged, "[#Adhésion]")
            conn.tag_subject(ref, "[#Adhésion]")
            copies = mailbox_census(conn).get(ref.key, [])
            _check(len(copies) == 1, f"after tagging three times there must be one copy, found {len(copies)}")
            subject = read_subject(copies[0][1])
            _check(subject.count("[#Adhésion]") == 1, f"the tag must appear once in the subject: {subject!r}")
    finally:
        conn.close()


def check_add_label_is_idempotent(harness: MailboxHarness, tmp_path: Path) -> None:
    """Adding the same label twice works and leaves the message in place."""
    raw = sample_mail("Étiquette", "x")
    harness.deliver(harness.inbox, raw)
    conn = _opened(harness)
    try:
        _require(conn, Capability.LABEL)
        ref = _find(conn, harness.inbox, _key(raw))
        conn.add_label(ref, "Adhésion")
        conn.add_label(ref, "Adhésion")
        found = conn.locate([ref]).get(ref.key, [])
        _check([r.folder for r in found] == [harness.inbox], f"labelling must not move or copy the message: {found}")
    finally:
        conn.close()


def check_batch_actions_are_idempotent(harness: MailboxHarness, tmp_path: Path) -> None:
    """``add_label_many`` / ``move_many`` (overridden or the base loops) keep the one-message contract."""
    raws = [sample_mail(f"Lot {i}", "x") for i in range(3)]
    for raw in raws:
        harness.deliver(harness.inbox, raw)
    conn = _opened(harness)
    try:
        _require(conn, Capability.MOVE, Capability.CREATE_FOLDER)
        conn.ensure_folder(FOLDER_A)
        refs = [_find(conn, harness.inbox, _key(raw)) for raw in raws]
        if Capability.LABEL in conn.capabilities:
            conn.add_label_many(refs, CATEGORY_A)
            conn.add_label_many(refs, CATEGORY_A)
            found = conn.locate(refs)
            _check(all([r.folder for r in found.get(ref.key, [])] == [harness.inbox] for ref in refs),
                   f"labelling a batch must not move or copy its messages: {found}")
        moved = conn.move_many(refs, FOLDER_A)
        _check(set(moved) == {ref.key for ref in refs} and all(m.folder == FOLDER_A for m in moved.values()),
               f"move_many must return, by key, a ref in {FOLDER_A!r} for every message: {moved}")
        again = conn.move_many(refs, FOLDER_A)
        _check({k: m.folder for k, m in again.items()} == {k: FOLDER_A for k in moved},
               f"move_many again with the old refs must find every message in {FOLDER_A!r}: {again}")
        conn.move_many(list(moved.values()), FOLDER_A)
        census = mailbox_census(conn)
        for ref in refs:
            _check([f for f, _ in census.get(ref.key, [])] == [FOLDER_A],
                   f"after repeated batch moves {ref.key} must be once, in {FOLDER_A!r}: {census.get(ref.key)}")
        located = conn.locate(list(moved.values()))
        _check(all(located.get(k) == [m] for k, m in moved.items()),
               f"the refs move_many returned must be where locate finds the messages: {moved} / {located}")
    finally:
        conn.close()


# ---------------------------------------------------------------------------- triage checks
def kit_config(harness: MailboxHarness, tmp_path: Path, conn_id: str) -> dict[str, Any]:
    """The configuration the kit's triage checks run with."""
    section = dict(harness.section or {"connector": conn_id})
    return {
        "mailbox": section,
        "triage": {"folders": [harness.inbox], "review_folder": REVIEW, "state": str((tmp_path / "state.sqlite").resolve())},
        "categories": {
            CATEGORY_A: {"folder": FOLDER_A, "label": CATEGORY_A, "tag": True, "forward": "tresorier@asso.example"},
            CATEGORY_B: {"folder": FOLDER_B, "label": CATEGORY_B, "tag": True},
        },
    }


def kit_batch(harness: MailboxHarness, n: int = 3, *, seed: int = 7) -> list[bytes]:
    """Deliver the kit's crash-test batch to the inbox: 2×``n`` sorted-looking mails, one unreadable, one auto-reply."""
    raws = [raw for raw, _ in kit_messages(n, seed=seed)]
    # no body and no subject: unreadable, must go to review with its reason
    raws.append(b"From: inconnu@exemple.org\r\nTo: contact@asso.example\r\nMessage-ID: <vide-%d@kit>\r\n\r\n" % seed)
    raws.append(sample_mail("Re: absence", "Je suis absent.", headers={"Auto-Submitted": "auto-replied"}))
    for raw in raws:
        harness.deliver(harness.inbox, raw)
    return raws


def kit_job(harness: MailboxHarness, tmp_path: Path, conn: MailboxConnector, forwarder: RecordingForwarder,
            checkpoint: Callable[[str, int, str], None] | None = None) -> Any:
    """A TriageJob on ``conn`` with the kit's configuration and model (not opened)."""
    from assoc_ai_core.jobs.triage import TriageJob, TriageSettings

    settings = TriageSettings.from_mapping(kit_config(harness, tmp_path, conn.id), base_dir=tmp_path.resolve())
    return TriageJob(settings, connector=conn, model=kit_model(), model_version="kit", forwarder=forwarder,
                     checkpoint=checkpoint)


def assert_exactly_once(conn: MailboxConnector, keys: Sequence[str], state_path: Path,
                        forwarder: RecordingForwarder, *, instance: str | None = None,
                        folders: Mapping[str, str] | None = None, review: str = REVIEW) -> None:
    """Every key is in exactly one folder, once, where the state says; tagged at most once; forwarded at most once.

    ``folders`` maps each category to its folder (default: the kit's), ``review`` is the review folder.
    """
    folders = folders if folders is not None else {CATEGORY_A: FOLDER_A, CATEGORY_B: FOLDER_B}
    from assoc_ai_core.ext.subject import read_subject
    from assoc_ai_core.jobs.state import StateStore

    census = mailbox_census(conn)
    with StateStore(state_path) as state:
        for key in keys:
            copies = census.get(key, [])
            _check(len(copies) == 1, f"message {key} must exist exactly once, found {[f for f, _ in copies]}")
            folder, raw = copies[0]
            record = state.get_message(instance or conn.id, key)
            _check(record is not None and record.status == "done",
                   f"message {key} must be recorded as done, got {record and record.status}")
            _check(record.current_folder == folder, f"state says {record.current_folder!r}, mailbox says {folder!r}")
            expected = folders.get(record.category or "") if record.decision == "auto" else review
            _check(folder == expected, f"message {key} ({record.decision} {record.category}) is in {folder!r}, "
                                       f"expected {expected!r}")
            subject = read_subject(raw)
            _check(subject.count("[#") <= 1, f"message {key} was tagged more than once: {subject!r}")
            if record.decision == "auto" and Capability.TAG_SUBJECT in conn.capabilities:
                _check(subject.count(f"[#{record.category}]") == 1, f"auto message {key} must be tagged: {subject!r}")
        pending = state.messages_with_status(instance or conn.id, "pending")
        _check(not pending, f"{len(pending)} message(s) still pending after the final run")
    for key, count in forwarder.counts().items():
        _check(count <= 1, f"message {key} was forwarded {count} times")


def check_triage_detects_human_correction(harness: MailboxHarness, tmp_path: Path) -> None:
    """A person moving a triaged mail to another category (via a second instance) is recorded as a correction."""
    from assoc_ai_core.jobs.state import StateStore

    raws = [raw for raw, _ in kit_messages(1, seed=3)]
    for raw in raws:
        harness.deliver(harness.inbox, raw)
    conn = _opened(harness)
    forwarder = RecordingForwarder()
    try:
        _require(conn, Capability.MOVE, Capability.CREATE_FOLDER)
        with kit_job(harness, tmp_path, conn, forwarder) as job:
            first = job.run_once()
            _check(first.decided == len(raws), f"the job must decide {len(raws)} messages, decided {first.decided}")
            record = job.state.get_message(conn.id, _key(raws[0]))
            _check(record is not None and record.current_folder in (FOLDER_A, REVIEW),
                   f"the Adhésion sample must be in {FOLDER_A!r} or the review folder, got {record}")
            person = _opened(harness)
            try:
                person.move(_find(person, record.current_folder, record.key), FOLDER_B)
            finally:
                person.close()
            second = job.run_once()
            _check(second.corrections == 1, f"the job must see 1 correction, saw {second.corrections}")
        with StateStore(tmp_path / "state.sqlite") as state:
            rows = state.corrections(conn.id)
            _check(len(rows) == 1 and rows[0]["key"] == record.key and rows[0]["to_category"] == CATEGORY_B
                   and rows[0]["to_folder"] == FOLDER_B, f"correction not recorded as expected: {rows}")
            text = json.loads(rows[0]["text"] or "{}")
            _check(text.get("subject") and text.get("text"),
                   "the corrected message's pseudonymised text must be kept for retraining")
    finally:
        conn.close()


class SimulatedCrash(BaseException):
    """Raised inside the job by the kit to stop it dead (not caught by ``except Exception``)."""


def check_triage_killed_mid_batch_is_exactly_once(harness: MailboxHarness, tmp_path: Path) -> None:
    """Crashes at chosen instants (before, during and after an action) then a re-run: each message once."""
    from assoc_ai_core.jobs.state import StateStore

    conn = _opened(harness)
    forwarder = RecordingForwarder()
    try:
        _require(conn, Capability.MOVE, Capability.CREATE_FOLDER)
        keys: list[str] = []
        automated: list[str] = []
        unreadable_keys: list[str] = []
        # (stage, minimum action count, action kind or None for any)
        crashes = 0
        for seed, (stage, at, kind) in enumerate((("act", 1, "forward"), ("act", 2, _rewriting_action(conn)),
                                                  ("intent", 3, None), ("done", 2, None), ("act", 1, None)), 7):
            # new mail before each crash point: the job files label-and-move plans of a page together and
            # tags or forwards one message at a time, so one delivery could be all done before the later points
            raws = kit_batch(harness, seed=seed)
            keys += [_key(r) for r in raws]
            unreadable_keys.append(_key(raws[-2]))
            automated.append(_key(raws[-1]))

            def crash(s: str, n: int, k: str, stage: str = stage, at: int = at, kind: str | None = kind) -> None:
                if s == stage and n >= at and kind in (None, k):
                    raise SimulatedCrash(f"{s}@{n}:{k}")
            try:
                with kit_job(harness, tmp_path, conn, forwarder, crash) as job:
                    job.run_once()
            except SimulatedCrash:
                crashes += 1
        _check(crashes >= 4, f"only {crashes} of the 5 crash points were reached: the scenario did not run")
        with kit_job(harness, tmp_path, conn, forwarder) as job:
            job.run_once()
            again = job.run_once()
            _check(again.decided == 0, f"a run after completion must decide nothing, decided {again.decided}")
        assert_exactly_once(conn, keys, tmp_path / "state.sqlite", forwarder)
        _check(not any(forwarder.counts().get(k, 0) for k in automated),
               "an automated message (auto-reply) must never be forwarded")
        with StateStore(tmp_path / "state.sqlite") as state:
            for key in unreadable_keys:
                unreadable = state.get_message(conn.id, key)
                _check(unreadable is not None and unreadable.decision == "error" and unreadable.reason,
                       f"an unreadable message must be recorded as an error with its reason: {unreadable}")
    finally:
        conn.close()


_DRIVER = r"""
import json, os, sys, time
cfg = json.load(open(sys.argv[1], encoding="utf-8"))
from assoc_ai_core.testing.mailbox import RecordingForwarder
from assoc_ai_core.persistence import load_model
from assoc_ai_core.jobs.triage import TriageJob, TriageSettings

settings = TriageSettings.from_mapping(cfg["config"], base_dir=cfg["base"])
stage, at, kind, signal_file = cfg["stage"], cfg["at"], cfg.get("kind"), cfg["signal"]

def checkpoint(s, n, k):
    if stage and s == stage and n >= at and kind in (None, k):
        with open(signal_file, "w") as fh:
            fh.write(f"{s} {n}\n")
        time.sleep(600)  # the parent kills us here

with TriageJob(settings, model=load_model(cfg["model"]), model_version="kit",
               forwarder=RecordingForwarder(cfg["forwards"]), checkpoint=checkpoint) as job:
    job.run_once()
"""


def _rewriting_action(conn: MailboxConnector) -> str:
    """The riskiest action the connector performs: a subject rewrite (copy + delete), else a move."""
    return "tag" if Capability.TAG_SUBJECT in conn.capabilities else "move"


def run_kit_driver(cfg: dict[str, Any], env: Mapping[str, str], *, kill: bool, timeout: float = 120.0) -> None:
    """Run the triage job in a subprocess; with ``kill``, SIGKILL it at the checkpoint named in ``cfg``.

    ``cfg`` holds ``config`` (the job's configuration mapping), ``base`` (its
    folder), ``model`` (a saved model), ``forwards`` (file recording forwards),
    ``signal`` (file the child writes when it reaches the kill point) and
    ``stage``/``at``/``kind`` (the checkpoint, see :class:`~assoc_ai_core.jobs.triage.TriageJob`).
    """
    path = Path(cfg["base"]) / "driver.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    signal_file = Path(cfg["signal"])
    signal_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(path)], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if kill and signal_file.exists():
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        else:
            raise _fail("the triage subprocess neither reached its kill point nor finished in time")
        _, err = proc.communicate(timeout=30)
        if kill:
            raise _fail(f"the triage subprocess ended (code {proc.returncode}) before its kill point: "
                        f"{err.decode(errors='replace')[-800:]}")
        _check(proc.returncode == 0, f"the final triage run failed ({proc.returncode}): "
                                     f"{err.decode(errors='replace')[-800:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def check_triage_survives_sigkill(harness: MailboxHarness, tmp_path: Path) -> None:
    """The job in a real subprocess is SIGKILLed mid-batch, twice, then re-run: each message exactly once."""
    if harness.section is None:
        raise CheckSkipped("harness.section (the [mailbox] table) is needed to build the connector in a subprocess")
    from assoc_ai_core.persistence import save_model

    conn = _opened(harness)
    try:
        _require(conn, Capability.MOVE, Capability.CREATE_FOLDER)
    except CheckSkipped:
        conn.close()
        raise
    raws = kit_batch(harness)
    keys = [_key(r) for r in raws]
    model_path = save_model(kit_model(), tmp_path / "kit-model.skops")
    forwards = tmp_path / "forwards.jsonl"
    base = {"config": kit_config(harness, tmp_path, conn.id), "base": str(tmp_path.resolve()), "model": str(model_path),
            "forwards": str(forwards), "signal": str(tmp_path / "reached")}
    try:
        # killed right after a forward went out (not journalled), then after a subject-tag copy was written
        run_kit_driver({**base, "stage": "act", "at": 1, "kind": "forward"}, harness.env, kill=True)
        run_kit_driver({**base, "stage": "act", "at": 1, "kind": _rewriting_action(conn)}, harness.env, kill=True)
        run_kit_driver({**base, "stage": "intent", "at": 3}, harness.env, kill=True)
        run_kit_driver({**base, "stage": None, "at": 0}, harness.env, kill=False)
        assert_exactly_once(conn, keys, tmp_path / "state.sqlite", RecordingForwarder(forwards))
    finally:
        conn.close()


MAILBOX_CHECKS: tuple[Callable[[MailboxHarness, Path], None], ...] = (
    check_id_is_slug,
    check_config_is_frozen_and_hides_secrets,
    check_construct_does_no_io,
    check_capabilities_are_declared,
    check_close_is_safe_twice,
    check_list_folders_has_inbox,
    check_ensure_folder_nested,
    check_fetch_new_yields_pages,
    check_cursor_resumes_after_restart,
    check_fetch_all,
    check_move_is_idempotent,
    check_locate_sees_moves_by_another_instance,
    check_tag_subject_is_idempotent,
    check_add_label_is_idempotent,
    check_batch_actions_are_idempotent,
    check_triage_detects_human_correction,
    check_triage_killed_mid_batch_is_exactly_once,
    check_triage_survives_sigkill,
)


def mailbox_checks(*, triage: bool = True, subprocess: bool = True) -> list[Callable[[MailboxHarness, Path], None]]:
    """The checks to run; ``triage=False`` leaves out the job-level ones, ``subprocess=False`` the SIGKILL one."""
    out = []
    for check in MAILBOX_CHECKS:
        if not triage and check.__name__.startswith("check_triage"):
            continue
        if not subprocess and check is check_triage_survives_sigkill:
            continue
        out.append(check)
    return out


def check_mailbox_connector(harness_factory: Callable[[Path], MailboxHarness], tmp_path: Path, *,
                            triage: bool = True, subprocess: bool = True) -> dict[str, str]:
    """Run every check, each on a fresh harness in its own sub-folder; raise on the first failure.

    Returns ``{check name: "ok" | "skipped: why"}``.
    """
    results: dict[str, str] = {}
    for check in mailbox_checks(triage=triage, subprocess=subprocess):
        where = tmp_path / check.__name__
        where.mkdir(parents=True, exist_ok=True)
        try:
            check(harness_factory(where), where)
        except CheckSkipped as why:
            results[check.__name__] = f"skipped: {why}"
        else:
            results[check.__name__] = "ok"
    return results


# Earlier private names, kept because plugin test suites already import them.
_job, _kit_batch, _run_driver = kit_job, kit_batch, run_kit_driver
