"""Access requests and erasure on a real triage job: local Maildir, real SQLite file, real model registry."""

from __future__ import annotations

import json
import sqlite3
import unicodedata
import zipfile
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.main import cli
from assoc_ai_core.cli.triage import add_commands as add_triage_commands
from assoc_ai_core.cli.trust import add_commands as add_trust_commands
from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob
from assoc_ai_core.trust.access import export_person
from assoc_ai_core.trust.erasure import erase_person
from assoc_ai_core.trust.privacy import (
    Identity,
    PrivacyPolicy,
    apply_retention,
    clear_retrain_marks,
    drop_erased,
    load_trust_config,
    models_to_retrain,
)

add_triage_commands(cli)
add_trust_commands(cli)

ROOT = Path(__file__).resolve().parents[1]
EMAIL = "gwendoline.kerherve@breizh-mail.example"
NAME = "Gwendoline Kerhervé"
OTHER = "paul.martin@exemple.example"
CATEGORIES = {"Adhesion": "IA/Adhésion", "Autre": "IA/Autre", "Benevolat": "IA/Bénévolat",
              "Evenement": "IA/Événement", "Partenariat": "IA/Partenariat", "Presse": "IA/Presse"}

BENEVOLE = [
    ("Proposition d'aide bénévole", "Je m'appelle Gwendoline Kerhervé et je voudrais aider comme bénévole "
     "au potager le samedi matin : arrosage, désherbage, compost. Kerhervé Gwendoline, 06 12 34 56 78."),
    ("Bénévolat au jardin", "Bonjour, c'est encore Gwendoline Kerhervé : je suis disponible pour le "
     "bénévolat, plantations et entretien des parcelles, quelques heures par semaine."),
]


def mail(sender: str, name: str, subject: str, body: str, *, date: datetime | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = "contact@jardins-colline.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2024, 5, 2, 10, 0, tzinfo=UTC))
    msg["Message-ID"] = make_msgid(domain="mail.example")
    msg.set_content(body + f"\n\nBien à vous,\n{name}\n{sender}\n")
    return msg.as_bytes()


def variants(text: str) -> list[bytes]:
    """Byte forms a stored string can take: UTF-8/16/32, lower-case, without accents."""
    forms = {text, text.lower(), text.upper()}
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    forms |= {folded, folded.lower()}
    out = []
    for f in forms:
        for enc in ("utf-8", "utf-16-le", "utf-32-le"):
            out.append(f.encode(enc))
    return out


def file_blobs(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    blobs = [(str(path), data)]
    if zipfile.is_zipfile(path):  # skops models are zip files, possibly compressed: look inside too
        with zipfile.ZipFile(path) as zf:
            blobs += [(f"{path}!{n}", zf.read(n)) for n in zf.namelist()]
    return blobs


def scan(root: Path, needles: list[str], *, skip: tuple[Path, ...]) -> list[str]:
    """Every (file, needle) where a form of the needle occurs in the bytes of a file under ``root``."""
    hits = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(s in p.parents for s in skip):
            continue
        for where, blob in file_blobs(p):
            low = blob.lower()
            for needle in needles:
                if any(v in blob or v.lower() in low for v in variants(needle)):
                    hits.append(f"{where}: {needle}")
    return hits


def job_config(root: Path, privacy: list[str]) -> Path:
    """The configuration of a job on a local Maildir under ``root``, raw senders kept, with ``privacy`` lines."""
    lines = ['[mailbox]', 'connector = "local"', 'path = "Maildir"', 'create = true', '',
             '[triage]', 'first_run = "all"', 'folders = ["INBOX"]', 'state = "state/assoc_ai.sqlite"', '',
             '[privacy]', 'store_raw_sender = true', *privacy, '',
             '[training]', f'data = "{ROOT / "examples" / "mailbox" / "train"}"', 'min_corrections = 1', '']
    for name, folder in CATEGORIES.items():
        lines += [f"[categories.{name}]", f'folder = "{folder}"', ""]
    cfg = root / "assoc_ai.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    return cfg


@pytest.fixture()
def job_setup(tmp_path: Path):
    """A trained model (that saw the person's mail) in the registry, two runs of the job, corrections, people files."""
    from assoc_ai_core import load_dataset, train
    from assoc_ai_core.jobs.registry import ModelRegistry
    from assoc_ai_core.mail.parsing import parse_message

    ds = load_dataset(ROOT / "examples" / "mailbox" / "train")
    extra = [parse_message(mail(EMAIL, NAME, s, b), label="Benevolat") for s, b in BENEVOLE]
    # A model trained on raw text (the opt-in): its vocabulary holds her name, so the scrub of models is exercised.
    model = train(list(ds.messages) + extra, pseudonymize=False)
    registry = ModelRegistry(tmp_path / "state" / "models")
    registry.add(model, {"created_at": "2024-05-01T00:00:00+00:00", "source": "test"}, promote=True)

    people = tmp_path / "people"
    people.mkdir()
    (people / "contacts_scores.csv").write_text(
        "person_id,email,name,probability\n"
        f"P-17,{EMAIL},{NAME},0.81\nP-18,{OTHER},Paul Martin,0.22\n", encoding="utf-8")
    (people / "features.csv").write_text("person_id,gifts_12m,recency_months\nP-17,3,2\nP-18,0,30\n",
                                         encoding="utf-8")
    cfg = job_config(tmp_path, ['retention_days_text = 365',
                                'people_files = ["people/contacts_scores.csv", "people/features.csv"]'])

    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    mine = [conn.deliver(mail(EMAIL, NAME, s + " (suite)", b)).key for s, b in BENEVOLE]
    theirs = [conn.deliver(mail(OTHER, "Paul Martin", "Adhésion 2024",
                                "Bonjour, je voudrais adhérer à l'association et payer ma cotisation annuelle.")).key]
    config = load_trust_config(cfg)
    with TriageJob(config.settings) as job:
        job.run_once()
    with StateStore(config.settings.state_path) as state:  # a volunteer moves both people's mail elsewhere
        for key, target in ((mine[0], "IA/Événement"), (theirs[0], "IA/Autre")):
            r = state.get_message("local", key)
            conn.move(MailRef(r.current_folder, r.current_uid, key), target)
    with TriageJob(config.settings) as job:
        assert job.run_once().corrections == 2
    return {"cfg": cfg, "config": config, "conn": conn, "mine": mine, "theirs": theirs, "root": tmp_path}


def test_export_gathers_decisions_models_corrections_and_people_rows(job_setup, tmp_path: Path) -> None:
    data = export_person(job_setup["config"], email=EMAIL.upper())  # addresses are compared case-insensitively
    decisions = data["mail_decisions"]
    assert {d["message_key"] for d in decisions} == set(job_setup["mine"])
    assert all(d["model_version"] == "v0001" and d["category"] and d["explanation"] for d in decisions)
    assert data["model_versions"]["v0001"]["categories"] == sorted(CATEGORIES)
    corrected = [d for d in decisions if d["corrections"]]
    assert len(corrected) == 1 and corrected[0]["corrections"][0]["to_category"] == "Evenement"
    stored = json.dumps(corrected[0]["corrections"][0]["stored_text"], ensure_ascii=False)
    assert "Kerhervé" not in stored and EMAIL not in stored  # correction text is kept pseudonymised
    files = {Path(k).name: v for k, v in data["people_data"].items()}
    assert [r["probability"] for r in files["contacts_scores.csv"]] == ["0.81"]
    assert files["features.csv"] == [{"person_id": "P-17", "gifts_12m": "3", "recency_months": "2"}]
    by_id = export_person(job_setup["config"], person_id="P-17")  # the CRM id finds the mail too, via the address
    assert {d["message_key"] for d in by_id["mail_decisions"]} == set(job_setup["mine"])

    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["privacy", "export", "--config", str(job_setup["cfg"]), "--email", EMAIL,
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    [jpath], [hpath] = list(out.glob("*.json")), list(out.glob("*.html"))
    assert len(json.loads(jpath.read_text(encoding="utf-8"))["mail_decisions"]) == 2
    page = hpath.read_text(encoding="utf-8")
    assert "Messages triés" in page and "Evenement" in page and "0.81" in page
    bad = CliRunner().invoke(cli, ["privacy", "export", "--config", str(job_setup["cfg"]), "--email", "pas-une-adresse"])
    assert bad.exit_code != 0 and "Adresse e-mail invalide" in bad.output


def test_erase_leaves_no_byte_of_the_person_anywhere(job_setup) -> None:
    root: Path = job_setup["root"]
    cfg = job_setup["cfg"]
    needles = [EMAIL, NAME, "Kerhervé"]
    skip = (root / "Maildir",)  # the mailbox belongs to the association, not to the library's stores
    before = scan(root, needles, skip=skip)
    assert any("assoc_ai.sqlite" in h for h in before), before  # the scanner does see the person when present
    assert any("models" in h and "Kerhervé" in h for h in before), before  # ...also inside the model's vocabulary
    assert any("contacts_scores.csv" in h for h in before)

    def snapshot_of() -> dict:
        files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and root / "Maildir" not in p.parents
                 and "sqlite" not in p.name}
        db = sqlite3.connect(root / "state" / "assoc_ai.sqlite")
        files["dump"] = list(db.iterdump())
        db.close()
        return files

    snapshot = snapshot_of()
    dry = CliRunner().invoke(cli, ["privacy", "erase", "--config", str(cfg), "--email", EMAIL, "--name", NAME, "--json"])
    assert dry.exit_code == 0, dry.output
    counts = json.loads(dry.output)
    assert counts["applied"] is False and counts["decisions"] == 2 and counts["corrections"] == 1
    assert counts["people_rows"] == 2 and counts["model_terms"] > 0
    assert snapshot_of() == snapshot  # the dry run changed nothing

    done = CliRunner().invoke(cli, ["privacy", "erase", "--config", str(cfg), "--email", EMAIL, "--name", NAME, "--yes"])
    assert done.exit_code == 0, done.output
    assert "Effacement effectué" in done.output
    after = scan(root, needles, skip=skip)
    assert after == [], after

    state_path = root / "state" / "assoc_ai.sqlite"
    db = sqlite3.connect(state_path)
    [(decisions, corrections, people_rows, marked)] = db.execute(
        "SELECT decisions, corrections, people_rows, models_marked FROM privacy_erasures").fetchall()
    assert (decisions, corrections, people_rows, json.loads(marked)) == (2, 1, 2, ["v0001"])
    assert db.execute("SELECT COUNT(*) FROM messages WHERE reason='erased' AND sender_hash IS NULL").fetchone()[0] == 2
    db.close()
    # the other person's data is untouched
    other = export_person(job_setup["config"], email=OTHER)
    assert len(other["mail_decisions"]) == 1 and other["mail_decisions"][0]["corrections"]
    assert export_person(job_setup["config"], email=EMAIL)["mail_decisions"] == []
    # the erased mail is not handled again (tombstones), and the model still loads and predicts
    config = load_trust_config(cfg)
    with TriageJob(config.settings) as job:
        report = job.run_once()
    assert report.decided == 0
    assert models_to_retrain(config.settings) == ["v0001"]


def test_retrain_excludes_erased_examples(job_setup) -> None:
    from assoc_ai_core.jobs.retrain import retrain
    from assoc_ai_core.mail.parsing import parse_message

    config = job_setup["config"]
    erase_person(config, email=EMAIL, names=[NAME], apply=True)
    assert models_to_retrain(config.settings)  # the erasure marked the models trained on her mail
    result = retrain(config.settings)  # only the other person's correction is left to learn from
    assert result.n_corrections == 1 and result.version == "v0002"
    with StateStore(config.settings.state_path) as state:
        assert [c["key"] for c in state.corrections()] == job_setup["theirs"]
    assert models_to_retrain(config.settings) == []  # retrain cleared the marks
    assert clear_retrain_marks(config.settings, result.version) == 0
    # mail of the erased person still in the association's mailbox is left out of (re)training
    pool = [parse_message(mail(EMAIL, NAME, "x", "y")), parse_message(mail(OTHER, "Paul Martin", "x", "y"))]
    assert [m.sender for m in drop_erased(pool, config.settings)] == [OTHER]


def test_retention_pseudonymises_old_text_and_training_still_works(job_setup) -> None:
    from assoc_ai_core.jobs.retrain import correction_examples

    config = job_setup["config"]
    later = datetime.now(UTC) + timedelta(days=400)
    with StateStore(config.settings.state_path) as state:
        assert state.execute("SELECT COUNT(*) FROM messages WHERE sender_raw IS NOT NULL").fetchone()[0] == 3
        from assoc_ai_core.trust.privacy import retention_for_job

        result = retention_for_job(config.settings, state, now=later)  # what the job calls, policy read from the file
        assert (result.corrections, result.decisions) == (2, 3)
        assert state.execute("SELECT COUNT(*) FROM messages WHERE sender_raw IS NOT NULL").fetchone()[0] == 0
        examples = correction_examples(state.corrections())
        assert len(examples) == 2 and all(m.text for m in examples)  # retraining still has text to learn from
        again = apply_retention(state, config.privacy, now=later)
        assert (again.corrections, again.decisions) == (0, 0)  # applied once, not on every run
        deleted = apply_retention(state, PrivacyPolicy(retention_days_text=1, retention_action="delete"), now=later)
        assert deleted.corrections == 2
        assert all(c["text"] is None for c in state.corrections())


def test_identity_blanks_names_with_or_without_accents() -> None:
    ident = Identity("marie.l@exemple.fr", ("Marie-Hélène Le Bihan",))
    text = "Signé MARIE-HELENE le bihan (marie.l@exemple.fr), merci Bihan"
    # name words alone only in text known to come from the person (issue 14: by identity, not by substring)
    blanked = ident.blank(text, words=True)
    assert "bihan" not in blanked.lower() and "exemple.fr" not in blanked and "helene" not in blanked.lower()
    assert blanked.startswith("Signé ") and blanked.endswith("merci <ERASED>")
    assert ident.blank(text) == "Signé <ERASED> (<ERASED>), merci Bihan"  # full name and address, whole
    eve = Identity("val@exemple.fr", ("Ève Martin",))
    structural = "Evenement uidvalidity Martine Eve-Martinez xval@exemple.fr val@exemple.fr.evil Martin"
    assert eve.blank(structural) == structural
    assert eve.blank(structural, words=True) == ("Evenement uidvalidity Martine <ERASED>-Martinez xval@exemple.fr "
                                                 "val@exemple.fr.evil <ERASED>")
    assert eve.blank("Merci à EVE  martin et à martin ève !") == "Merci à <ERASED> et à <ERASED> !"
    with pytest.raises(Exception, match="retention_action"):
        PrivacyPolicy.from_mapping({"retention_action": "shred"})
