"""Thread memory in the triage job: a reply follows where the message it answers was sorted, carefully.

Real parts: the local Maildir connector, the real job, a real SQLite state
file; a person's move is a real move in the Maildir, seen by the job as a
correction.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.jobs.audit import MIGRATIONS
from assoc_ai_core.jobs.plan import log_key
from assoc_ai_core.jobs.settings import TriageSettings
from assoc_ai_core.jobs.state import SCHEMA_VERSION, MessageRecord, StateStore
from assoc_ai_core.jobs.threads import (
    AUTO,
    MAX_REFERENCES,
    PERSON,
    Earlier,
    ThreadMemory,
    ThreadRule,
    subject_topic,
    takes_parent,
    thread_references,
)
from assoc_ai_core.jobs.triage import TriageJob
from assoc_ai_core.mail.explain import thread_sentence

CATEGORIES = {"Adhesion": "IA/Adhésion", "Autre": "IA/Autre", "Benevolat": "IA/Bénévolat",
              "Evenement": "IA/Événement", "Partenariat": "IA/Partenariat", "Presse": "IA/Presse"}
REVIEW = "À vérifier"
# Texts the example model reads in known ways: the first goes to review (Partenariat 57 % under a threshold
# of 58 %, Evenement 33 %), the second to Adhesion with near certainty.
UNSURE = "Merci, c'est noté pour nous. Bonne journée."
MEMBERSHIP = ("Bonjour, je souhaite renouveler mon adhésion à l'association pour cette année et payer ma "
              "cotisation.")
MONTHS_FR = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")


@pytest.fixture()
def model_file(tmp_path: Path, trained_model: Any) -> Path:
    """The example model in this test's own folder (an erasure may rewrite the model it is given)."""
    from assoc_ai_core.persistence import save_model

    return save_model(trained_model, tmp_path / "model" / "model.skops")


def write_config(tmp_path: Path, model_file: Path, *, threads: bool | None = True) -> Path:
    lines = [
        "[mailbox]", 'connector = "local"', 'path = "Maildir"', "create = true", "",
        "[model]", f'path = "{model_file}"', "",
        "[triage]", 'first_run = "all"', 'folders = ["INBOX"]', f'review_folder = "{REVIEW}"',
        'state = "state/assoc_ai.sqlite"', "" if threads is None else f"threads = {str(threads).lower()}", "",
    ]
    for name, folder in CATEGORIES.items():
        lines += [f"[categories.{name}]", f'folder = "{folder}"', f'label = "{name}"', "tag = true", ""]
    path = tmp_path / "assoc_ai.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


def maildir(tmp_path: Path) -> LocalMailConnector:
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    return conn


def mail(mid: str, text: str, *, sender: str = "alice@exemple.fr", reply_to: str | None = None,
         subject: str = "Notre projet commun", references: bool = True) -> bytes:
    head = [f"From: {sender}", "To: contact@asso.example", f"Message-ID: <{mid}>",
            "Date: Tue, 03 Mar 2026 10:00:00 +0100", f"Subject: {'Re: ' if reply_to else ''}{subject}"]
    if reply_to and references:
        head += [f"In-Reply-To: <{reply_to}>", f"References: <{reply_to}>"]
    return ("\r\n".join(head) + "\r\n\r\n" + text + "\r\n").encode("utf-8")


def sorted_by_person(tmp_path: Path, job: TriageJob, key: str, category: str) -> None:
    """A volunteer moves a decided message to ``category``'s folder; the next pass records the correction."""
    record = decided(job.state, key)
    person = maildir(tmp_path)  # a volunteer's own mail client
    person.move(MailRef(record.current_folder or "", record.current_uid or "", key), CATEGORIES[category])
    assert job.run_once().corrections == 1


def decided(state: StateStore, key: str) -> MessageRecord:
    record = state.get_message("local", key)
    assert record is not None, "the job decided this message"
    return record


def reply_after_sorting(tmp_path: Path, model_file: Path, category: str, reply_body: str, *,
                        threads: bool | None = True) -> tuple[str, MessageRecord]:
    """An unsure message a person sorts into ``category``, then a reply to it: the parent's key and the reply's record."""
    cfg = write_config(tmp_path, model_file, threads=threads)
    conn = maildir(tmp_path)
    parent = conn.deliver(mail("p1@exemple.fr", UNSURE)).key
    with TriageJob(cfg) as job:
        job.run_once()
        sorted_by_person(tmp_path, job, parent, category)
        reply = conn.deliver(mail("r1@exemple.fr", reply_body, reply_to="p1@exemple.fr")).key
        job.run_once()
        return parent, decided(job.state, reply)


def today(months: tuple[str, ...]) -> str:
    now = datetime.now(UTC).date()
    day = "1er" if months is MONTHS_FR and now.day == 1 else str(now.day)
    return f"{day} {months[now.month - 1]}"


# ---------------------------------------------------------------- the rule itself


def test_references_are_read_nearest_first_and_capped() -> None:
    headers = {"in-reply-to": "<c@x>", "references": "<a@x> <b@x>\r\n <c@x>"}
    assert thread_references(headers) == ["c@x", "b@x", "a@x"]
    hostile = {"references": " ".join(f"<{i}@x>" for i in range(5000))}
    refs = thread_references(hostile)
    assert len(refs) == MAX_REFERENCES and refs[0] == "4999@x"
    assert thread_references({}) == [] and thread_references({"in-reply-to": "no brackets"}) == []


def test_the_rule_needs_a_sorted_parent_and_a_model_that_does_not_disagree() -> None:
    scores = {"Presse": 0.50, "Evenement": 0.35, "Adhesion": 0.15}
    rule = ThreadRule(max_gap=0.2, min_probability=0.0)
    assert takes_parent(scores, Earlier("p", "Evenement", PERSON), rule, 0.6)  # 15 points behind: close enough
    assert not takes_parent(scores, Earlier("p", "Adhesion", PERSON), rule, 0.6)  # 35 points behind: disagrees
    assert not takes_parent(scores, Earlier("p", "Inconnue", PERSON), rule, 0.6)  # a category the model lost
    assert takes_parent(scores, Earlier("p", "Evenement", AUTO, 0.9), rule, 0.6)
    assert not takes_parent(scores, Earlier("p", "Evenement", AUTO, 0.55), rule, 0.6)  # routed below threshold
    assert not takes_parent(scores, Earlier("p", "Evenement", AUTO, None), rule, 0.6)
    wide = ThreadRule(max_gap=0.5, min_probability=0.3)  # close enough, but a category the model hardly considers
    assert not takes_parent(scores, Earlier("p", "Adhesion", PERSON), wide, 0.6)
    assert takes_parent(scores, Earlier("p", "Evenement", PERSON), wide, 0.6)


def test_a_topic_leaves_out_prefixes_tags_case_and_spaces() -> None:
    assert subject_topic("RE: TR: [#Partenariat] Notre  projet", ["[#Partenariat]"]) == ("notre projet", True)
    assert subject_topic("Fwd: Notre projet") == ("notre projet", False)  # a forward is no reply
    assert subject_topic("AW: Re[2]: Notre projet") == ("notre projet", True)
    assert subject_topic("Notre projet") == ("notre projet", False)
    assert subject_topic("Re:") == ("", True)


def test_the_sentence_names_date_and_category_in_both_languages() -> None:
    this_year = date.today().year
    assert thread_sentence("Partenariat", date(this_year, 3, 3), lang="fr") == \
        "même fil que le message du 3 mars, classé Partenariat"
    assert thread_sentence("Partenariat", date(this_year, 3, 3), lang="en") == \
        "same thread as the message of 3 March, sorted as Partenariat"
    assert thread_sentence("Presse", date(this_year, 5, 1), lang="fr").startswith("même fil que le message du 1er mai,")
    assert thread_sentence("Presse", date(2019, 5, 1), lang="en").startswith("same thread as the message of 1 May 2019,")
    assert thread_sentence("Presse", None, lang="fr") == "même fil qu'un message classé Presse"


def test_the_setting_is_declared_and_off_by_default(tmp_path: Path, model_file: Path) -> None:
    assert TriageSettings.load(write_config(tmp_path, model_file, threads=None)).threads is False
    assert TriageSettings.load(write_config(tmp_path, model_file, threads=True)).threads is True


# ---------------------------------------------------------------- the job


def test_a_reply_to_a_person_sorted_message_takes_its_category_and_says_why(tmp_path: Path,
                                                                           model_file: Path) -> None:
    parent, record = reply_after_sorting(tmp_path, model_file, "Partenariat", UNSURE)
    assert record.decision == "auto" and record.category == "Partenariat"
    assert record.current_folder == CATEGORIES["Partenariat"]
    assert record.reason == f"même fil que le message du {today(MONTHS_FR)}, classé Partenariat"
    thread = record.explanation["thread"]
    assert thread["sorted_by"] == "person" and thread["parent"] == log_key(parent)
    assert thread["model_decision"] == "review" and thread["model_category"] == "Partenariat"
    assert "p1@exemple.fr" not in str(record.explanation)  # the parent by its log reference only
    assert record.explanation["sentence"].startswith("même fil que le message du")


def test_a_reply_without_references_finds_its_thread_by_subject(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    parent = conn.deliver(mail("p1@exemple.fr", UNSURE, subject="Notre projet  commun")).key
    with TriageJob(cfg) as job:
        job.run_once()
        sorted_by_person(tmp_path, job, parent, "Partenariat")
        # an old client: no In-Reply-To, only the subject says which thread it answers
        reply = conn.deliver(mail("r1@exemple.fr", UNSURE, subject="RE: TR: notre projet commun",
                                  references=False)).key
        same_subject = conn.deliver(mail("n1@exemple.fr", UNSURE, subject="Notre projet commun")).key
        job.run_once()
        record = decided(job.state, reply)
        not_a_reply = decided(job.state, same_subject)
        stored = job.state.execute("SELECT topic FROM thread_topics WHERE key=?", (parent,)).fetchone()[0]
    assert record.decision == "auto" and record.category == "Partenariat"
    assert record.explanation["thread"]["parent"] == log_key(parent)
    assert not_a_reply.decision == "review"  # same topic, but it does not say it answers anything
    assert "projet" not in stored and len(stored) == 64  # a keyed hash, never the subject


def test_the_model_alone_sends_that_reply_to_review(tmp_path: Path, model_file: Path) -> None:
    _, record = reply_after_sorting(tmp_path, model_file, "Partenariat", UNSURE, threads=False)
    assert record.decision == "review" and "thread" not in (record.explanation or {})


def test_a_thread_decision_corrected_by_a_person_is_recorded_as_a_correction(tmp_path: Path,
                                                                           model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    parent = conn.deliver(mail("p1@exemple.fr", UNSURE)).key
    with TriageJob(cfg) as job:
        job.run_once()
        sorted_by_person(tmp_path, job, parent, "Partenariat")
        reply = conn.deliver(mail("r1@exemple.fr", UNSURE, reply_to="p1@exemple.fr")).key
        job.run_once()
        assert decided(job.state, reply).explanation["thread"]["category"] == "Partenariat"
        sorted_by_person(tmp_path, job, reply, "Evenement")
        rows = [r for r in job.state.corrections("local") if r["key"] == reply]
        record = decided(job.state, reply)
    assert [(r["from_category"], r["to_category"]) for r in rows] == [("Partenariat", "Evenement")]
    assert record.effective_category == "Evenement"
    # the corrected reply now speaks for its thread as a person's choice
    with StateStore(tmp_path / "state" / "assoc_ai.sqlite") as state:
        found = ThreadMemory(state, "local").parent_of({"in-reply-to": f"<{reply}>"})
    assert found is not None and (found.category, found.how) == ("Evenement", PERSON)


def test_a_reply_the_model_is_sure_belongs_elsewhere_keeps_the_models_category(tmp_path: Path,
                                                                              model_file: Path) -> None:
    _, record = reply_after_sorting(tmp_path, model_file, "Presse", MEMBERSHIP)
    assert record.decision == "auto" and record.category == "Adhesion"
    assert "thread" not in record.explanation and not record.reason


def test_a_reply_to_a_message_still_in_review_goes_to_review(tmp_path: Path, model_file: Path) -> None:
    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    parent = conn.deliver(mail("p1@exemple.fr", UNSURE)).key
    with TriageJob(cfg) as job:
        job.run_once()
        assert decided(job.state, parent).decision == "review"  # nobody sorted it
        reply = conn.deliver(mail("r1@exemple.fr", UNSURE, reply_to="p1@exemple.fr")).key
        job.run_once()
        record = decided(job.state, reply)
    assert record.decision == "review" and "thread" not in (record.explanation or {})
    assert "fil" not in (record.reason or "")


def test_the_thread_sentence_is_in_the_runs_language(tmp_path: Path, model_file: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    parent, record = reply_after_sorting(tmp_path, model_file, "Partenariat", UNSURE)
    assert record.reason == f"same thread as the message of {today(MONTHS_EN)}, sorted as Partenariat"
    assert record.explanation["sentence"].startswith("same thread as the message of")


def test_erasure_removes_the_thread_memory(tmp_path: Path, model_file: Path) -> None:
    from assoc_ai_core.trust.erasure import erase_person
    from assoc_ai_core.trust.privacy import load_trust_config

    cfg = write_config(tmp_path, model_file)
    conn = maildir(tmp_path)
    parent = conn.deliver(mail("p1@exemple.fr", UNSURE, sender="alice@exemple.fr")).key
    state_path = tmp_path / "state" / "assoc_ai.sqlite"
    with TriageJob(cfg) as job:
        job.run_once()
        sorted_by_person(tmp_path, job, parent, "Partenariat")
    with StateStore(state_path) as state:
        memory = ThreadMemory(state, "local", privacy=state.privacy())
        assert memory.parent_of({"in-reply-to": "<p1@exemple.fr>"}) is not None
        assert memory.sender_history("alice@exemple.fr") == {"Partenariat": 1}
        assert memory.parent_of({}, "Re: Notre projet commun") is not None
        assert state.execute("SELECT count(*) FROM thread_topics").fetchone()[0] == 1
    erase_person(load_trust_config(cfg), email="alice@exemple.fr", names=[], apply=True)
    with StateStore(state_path) as state:
        memory = ThreadMemory(state, "local", privacy=state.privacy())
        assert memory.parent_of({"in-reply-to": "<p1@exemple.fr>"}) is None
        assert memory.parent_of({}, "Re: Notre projet commun") is None
        assert state.execute("SELECT count(*) FROM thread_topics").fetchone()[0] == 0
        assert not memory.sender_history("alice@exemple.fr")
        assert not state.execute("SELECT 1 FROM messages WHERE key LIKE '%p1@exemple.fr%'").fetchall()
    reply = conn.deliver(mail("r1@exemple.fr", UNSURE, sender="bob@exemple.fr", reply_to="p1@exemple.fr")).key
    with TriageJob(cfg) as job:
        job.run_once()
        record = decided(job.state, reply)
    assert record.decision == "review" and "thread" not in (record.explanation or {})


def test_an_old_state_file_opens_and_its_decisions_speak_for_their_threads(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[1])  # a state file written before participants and identities existed
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO messages (instance, key, status, decision, category, probability, effective_category,"
               " decided_at, updated_at) VALUES ('local', 'old@x', 'done', 'auto', 'Presse', 0.97, 'Presse',"
               " '2026-03-03T09:00:00+00:00', '2026-03-03T09:00:00+00:00')")
    db.commit()
    db.close()
    shutil.copy(path, tmp_path / "copy.sqlite")
    with StateStore(path) as state:
        assert state.schema_version == SCHEMA_VERSION
        found = ThreadMemory(state, "local").parent_of({"references": "<unknown@x> <old@x>"})
    assert found == Earlier("old@x", "Presse", AUTO, 0.97, "2026-03-03T09:00:00+00:00")
    assert found.date is not None and found.date.date() == date(2026, 3, 3)
