"""Erasure by identity (issue 14): only that person, tombstones that hold, bytes checked, a complete access export.

A real triage job on a local Maildir, a real SQLite state file and a real model registry.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from test_privacy import CATEGORIES, job_config  # the same job configuration as the other privacy tests

from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.errors import TransientError
from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.jobs.audit import SenderPrivacy, participant_addresses
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob
from assoc_ai_core.trust.access import export_html, export_person
from assoc_ai_core.trust.erasure import erase_person
from assoc_ai_core.trust.privacy import load_trust_config

ROOT = Path(__file__).resolve().parents[1]
EMAIL, NAME = "gwendoline.kerherve@breizh-mail.example", "Gwendoline Kerhervé"
OTHER, OTHER_NAME = "paul.martin@exemple.example", "Paul Martin"
HERS = [("Proposition d'aide bénévole", "Je m'appelle Gwendoline Kerhervé et je voudrais aider comme bénévole au "
         "potager le samedi matin : arrosage, désherbage, compost."),
        ("Bénévolat au jardin", "Bonjour, c'est encore Gwendoline Kerhervé : je suis disponible pour le bénévolat, "
         "plantations et entretien des parcelles.")]


def mail(sender: str, name: str, subject: str, body: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = headers.pop("to", "contact@jardins-colline.example")
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2024, 5, 2, 10, 0, tzinfo=UTC))
    msg["Message-ID"] = make_msgid(domain="mail.example")
    msg.set_content(body + f"\n\nBien à vous,\n{name}\n")
    return msg.as_bytes()


@pytest.fixture()
def job(tmp_path: Path):
    """A model that saw her mail in the registry, a run of the job over her mail, Paul's and a contact form."""
    from assoc_ai_core import load_dataset, train
    from assoc_ai_core.jobs.registry import ModelRegistry
    from assoc_ai_core.mail.parsing import parse_message

    ds = load_dataset(ROOT / "examples" / "mailbox" / "train")
    extra = [parse_message(mail(EMAIL, NAME, s, b), label="Benevolat") for s, b in HERS]
    registry = ModelRegistry(tmp_path / "state" / "models")
    registry.add(train(list(ds.messages) + extra, pseudonymize=False),
                 {"created_at": "2024-05-01T00:00:00+00:00", "source": "test"}, promote=True)
    cfg = job_config(tmp_path, [])
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    raws = {"hers": [mail(EMAIL, NAME, s, b) for s, b in HERS],
            "paul": [mail(OTHER, OTHER_NAME, "Adhésion 2024", "Bonjour, je voudrais adhérer à l'association et payer "
                          "ma cotisation annuelle. Événement de printemps : je viendrai.")],
            # a web form: the site sends it, her address is in the Reply-To and the body; Paul in copy
            "form": [mail("noreply@site.example", "Formulaire du site", "Contact : inscription atelier",
                          f"Nom : {NAME}\nCourriel : {EMAIL}\nMessage : inscription à l'atelier compost.",
                          reply_to=EMAIL, cc=OTHER)]}
    keys = {who: [conn.deliver(raw).key for raw in lst] for who, lst in raws.items()}
    config = load_trust_config(cfg)
    with TriageJob(config.settings) as j:
        j.run_once()
    # what the job records besides the From (see the report: the job's _record calls this for every decision)
    with StateStore(config.settings.state_path) as state, state.transaction():
        privacy = SenderPrivacy.from_key_file(config.settings.key_file)
        from assoc_ai_core.mail.parsing import parse_message as parse
        for raw in [r for lst in raws.values() for r in lst]:
            message = parse(raw)
            state.record_participants("local", message.key, privacy, participant_addresses(message))
    with StateStore(config.settings.state_path) as state:  # a volunteer corrects her first mail and Paul's
        for key, target in ((keys["hers"][0], "IA/Événement"), (keys["paul"][0], "IA/Autre")):
            r = state.get_message("local", key)
            conn.move(MailRef(r.current_folder, r.current_uid, key), target)
    with TriageJob(config.settings) as j:
        assert j.run_once().corrections == 2
    return {"config": config, "conn": conn, "keys": keys, "raws": raws, "root": tmp_path}


def stored_files(root: Path) -> dict[str, bytes]:
    """Bytes of the state file (and its WAL), the model files and their records."""
    state = root / "state"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(state.rglob("*"))
            if p.is_file() and not p.name.endswith((".lock", "-shm"))}


def rows(root: Path) -> dict[str, set[tuple]]:
    db = sqlite3.connect(root / "state" / "assoc_ai.sqlite")
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
                                       "'sqlite_%' AND name NOT LIKE 'privacy_%'")]
    out = {t: set(db.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    db.close()
    return out


@pytest.mark.parametrize(("email", "name"), [("eve.martin@exemple.example", "Ève Martin"),
                                             ("val.martin@exemple.example", "Val Martin"),
                                             ("paul@exemple.example", "Paul")])
def test_erasing_someone_who_never_wrote_changes_nothing(job, email: str, name: str) -> None:
    before = stored_files(job["root"])
    assert any(k.endswith(".skops") for k in before) and "state/assoc_ai.sqlite" in before
    dry = erase_person(job["config"], email=email, names=[name])
    assert dry.changes == [] and dry.texts_blanked == dry.model_terms == dry.decisions == 0
    done = erase_person(job["config"], email=email, names=[name], apply=True)
    assert done.changes == [] and done.models_marked == [] and done.erasure_id is None and done.verified
    assert stored_files(job["root"]) == before  # byte for byte: database, WAL, models and their records


def test_erasing_someone_who_wrote_changes_their_rows_and_nobody_elses(job) -> None:
    root, keys = job["root"], job["keys"]
    before = rows(root)
    mine = set(keys["hers"]) | set(keys["form"])  # the form is about her: Reply-To and body

    def about_her(table: str, row: tuple) -> bool:
        return table != "runs" and any(v in mine for v in row)

    theirs_before = {t: {r for r in rs if not about_her(t, r)} for t, rs in before.items()}
    hers_before = {t: {r for r in rs if about_her(t, r)} for t, rs in before.items()}
    assert len(hers_before["messages"]) == 3 and hers_before["corrections"] and hers_before["participants"]

    dry = erase_person(job["config"], email=EMAIL, names=[NAME])
    assert rows(root) == before  # the dry run writes nothing
    assert dry.decisions == 3 and dry.corrections == 1 and dry.model_terms > 0 and dry.models_marked == ["v0001"]
    assert sum(c.get("change") == "tombstone" for c in dry.changes) == 3
    listed = dry.summary("en")
    assert "messages: tombstone × 3" in listed and "corrections: delete × 1 (rowid " in listed
    assert "model v0001: " in listed and "Dry run" in listed
    done = erase_person(job["config"], email=EMAIL, names=[NAME], apply=True)
    assert done.to_dict() | {"applied": False, "erasure_id": None, "verified": False} == dry.to_dict()
    after = rows(root)
    for table, kept in theirs_before.items():
        assert kept <= after[table], table  # nobody else's row changed
        assert not hers_before[table] & after[table], table  # every row about her changed (or went)
    raw = (root / "state" / "assoc_ai.sqlite").read_bytes().lower()
    assert EMAIL.encode() not in raw and b"kerherv" not in raw and keys["hers"][0].encode().lower() not in raw


def test_erased_mail_seen_again_is_not_decided_again(job) -> None:
    config, conn = job["config"], job["conn"]
    erase_person(config, email=EMAIL, names=[NAME], apply=True)
    for raw in job["raws"]["hers"] + job["raws"]["form"]:  # the same mail comes back (a re-sync, a copy)
        conn.deliver(raw)
    with TriageJob(config.settings) as j:
        report = j.run_once()
    assert report.fetched == 3 and report.skipped == 3 and report.auto + report.review == 0
    privacy = SenderPrivacy.from_key_file(config.settings.key_file)
    with StateStore(config.settings.state_path) as state:
        assert state.audit(sender_hash=privacy.hash(EMAIL), sender_raw=EMAIL) == []
        assert state.participant_keys([privacy.hash(EMAIL)]) == set()
        assert state.execute("SELECT COUNT(*) FROM messages WHERE key LIKE 'erased:%' AND sender_hash IS NULL"
                             " AND explanation IS NULL").fetchone()[0] == 3
    raw = (config.settings.state_path).read_bytes().lower()
    assert EMAIL.encode() not in raw and b"kerherv" not in raw
    assert export_person(config, email=EMAIL)["mail_decisions"] == []


def test_a_reader_holding_a_transaction_makes_erasure_fail_loudly(job) -> None:
    config = job["config"]
    path = config.settings.state_path
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 4  # a snapshot is held
    with pytest.raises(TransientError) as info:
        erase_person(config, email=EMAIL, names=[NAME], apply=True)
    assert info.value.exit_code == 75 and "relancez" in str(info.value)
    assert EMAIL.encode() in path.read_bytes()  # the old pages are still there: hence the error
    reader.execute("COMMIT")
    reader.close()
    again = erase_person(config, email=EMAIL, names=[NAME], apply=True)  # run again once the reader is gone
    assert again.verified and again.decisions == 0
    wal = path.with_name(path.name + "-wal")
    assert EMAIL.encode() not in path.read_bytes() and (not wal.exists() or EMAIL.encode() not in wal.read_bytes())


def test_access_export_finds_every_place_the_person_appears(job) -> None:
    keys = job["keys"]
    data = export_person(job["config"], email=EMAIL)
    roles = {d["message_key"]: d["roles"] for d in data["mail_decisions"]}
    assert roles == {keys["hers"][0]: ["from"], keys["hers"][1]: ["from"], keys["form"][0]: ["body", "reply-to"]}
    assert data["model_versions"]["v0001"]["categories"] == sorted(CATEGORIES)
    form = next(d for d in data["mail_decisions"] if d["message_key"] == keys["form"][0])
    assert form["sender_as_stored"] is None  # the form's From is the web site, not her
    assert "body, reply-to" in export_html(data)
    from assoc_ai_core.jobs.retrain import retrain

    assert retrain(job["config"].settings).version == "v0002"  # learns from the corrections, hers among them
    models = export_person(job["config"], email=EMAIL)["model_versions"]
    assert models["v0001"]["decided_about_them"] and not models["v0001"]["trained_with_their_mail"]
    assert models["v0002"]["trained_with_their_mail"] and not models["v0002"]["decided_about_them"]
    assert "v0002" not in export_person(job["config"], email="personne@exemple.example")["model_versions"]
    paul = export_person(job["config"], email=OTHER)
    assert {d["message_key"]: d["roles"] for d in paul["mail_decisions"]} == {
        keys["paul"][0]: ["from"], keys["form"][0]: ["cc"]}
