"""Which message is which: a reused Message-ID is a new message; tagging keeps the Message-ID header as it was."""

from __future__ import annotations

from pathlib import Path

from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.ext.subject import message_key, tag_subject_bytes
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob
from assoc_ai_core.testing.mailbox import RecordingForwarder, mailbox_census

REVIEW = "À vérifier"


def _mail(mid: str, sender: str, date: str, body: str) -> bytes:
    return (f"Message-ID: {mid}\r\nFrom: {sender}\r\nTo: contact@asso.example\r\nDate: {date}\r\n"
            f"Subject: Adhésion 2027\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def _job(tmp_path: Path, trained_model) -> tuple[Path, LocalMailConnector]:
    from assoc_ai_core.persistence import save_model

    model = save_model(trained_model, tmp_path / "model.skops")
    lines = ["[mailbox]", 'connector = "local"', 'path = "Maildir"', "create = true", "",
             "[model]", f'path = "{model}"', "",
             "[triage]", 'first_run = "all"', f'review_folder = "{REVIEW}"', 'state = "state.sqlite"', ""]
    for name in ("Adhesion", "Autre", "Benevolat", "Evenement", "Partenariat", "Presse"):
        lines += [f"[categories.{name}]", f'folder = "IA/{name}"', ""]
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    return cfg, conn


def test_a_different_message_reusing_a_message_id_is_decided_on_its_own(tmp_path: Path, trained_model) -> None:
    cfg, conn = _job(tmp_path, trained_model)
    first = _mail("<newsletter@asso.example>", "a@x.example", "Mon, 7 Dec 2026 10:00:00 +0100",
                  "Bonjour, je souhaite adhérer à l'association.")
    conn.deliver(first)
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        assert job.run_once().fetched == 1
    other = _mail("<newsletter@asso.example>", "b@y.example", "Tue, 8 Dec 2026 09:00:00 +0100",
                  "Bonjour, pouvez-vous renouveler mon adhésion ?")
    copy = first  # the very same message delivered a second time is not a new one
    conn.deliver(other)
    conn.deliver(copy)
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        report = job.run_once()
    assert report.fetched == 2 and report.auto + report.review == 1 and report.skipped == 1
    with StateStore(tmp_path / "state.sqlite") as state:
        keys = sorted(r[0] for r in state.execute("SELECT key FROM messages"))
    assert keys[0] == "newsletter@asso.example" and keys[1].startswith("newsletter@asso.example#reused-")
    census = mailbox_census(conn)["newsletter@asso.example"]
    inbox = [raw for folder, raw in census if folder == "INBOX"]
    assert inbox == [copy]  # the second message left the inbox; only the duplicate copy, already handled, stays
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        again = job.run_once()
    assert again.auto + again.review == 0  # nothing is decided twice


def test_tagging_keeps_a_commented_or_folded_message_id_byte_for_byte() -> None:
    for field in (b"Message-ID: <abc.123@mail.example> (added by relay)", b"Message-ID:\r\n <abc.123@mail.example>"):
        raw = field + b"\r\nFrom: a@x.example\r\nSubject: Bonjour\r\n\r\nTexte\r\n"
        assert message_key(raw) == "abc.123@mail.example"
        tagged = tag_subject_bytes(raw, "[#Presse]", mark=True)
        assert field + b"\r\n" in tagged
        assert message_key(tagged) == message_key(raw)


def test_a_correction_takes_off_the_jobs_label_and_tag_and_the_stored_text_has_no_tag(tmp_path: Path,
                                                                                      trained_model) -> None:
    from assoc_ai_core.default_plugins.local_maildir import read_keywords, split_info
    from assoc_ai_core.ext.subject import read_subject
    from assoc_ai_core.persistence import save_model

    model = save_model(trained_model, tmp_path / "model.skops")
    names = ("Adhesion", "Autre", "Benevolat", "Evenement", "Partenariat", "Presse")
    lines = ["[mailbox]", 'connector = "local"', 'path = "Maildir"', "create = true", "",
             "[model]", f'path = "{model}"', "",
             "[triage]", 'first_run = "all"', f'review_folder = "{REVIEW}"', 'state = "state.sqlite"', ""]
    for name in names:
        lines += [f"[categories.{name}]", f'folder = "IA/{name}"', f'label = "{name}"', "tag = true", ""]
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    examples = Path(__file__).resolve().parents[1] / "examples" / "mailbox" / "new"
    for f in sorted(examples.glob("*.eml")):
        conn.deliver(f.read_bytes())
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        job.run_once()
    with StateStore(tmp_path / "state.sqlite") as state:
        key, category = state.execute(
            "SELECT key, category FROM messages WHERE decision='auto' ORDER BY key LIMIT 1").fetchone()
    [(folder, raw)] = mailbox_census(conn)[key]
    assert f"[#{category}]" in read_subject(raw)
    ref = next(f.ref for f in conn.fetch_all(folder) if f.ref.key == key)
    other = next(n for n in names if n != category)
    conn.move(ref, f"IA/{other}")  # a volunteer corrects the job
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        assert job.run_once().corrections == 1
    [(now_in, raw)] = mailbox_census(conn)[key]
    assert now_in == f"IA/{other}" and "[#" not in read_subject(raw)
    box = next(p for p in (tmp_path / "Maildir").rglob("*") if p.is_file() and p.read_bytes() == raw)
    keywords = read_keywords(box.parent.parent)
    letters = [c for c in split_info(box.name)[1] if "a" <= c <= "z"]
    assert category not in [keywords[ord(c) - ord("a")] for c in letters]
    with StateStore(tmp_path / "state.sqlite") as state:
        (text,) = state.execute("SELECT text FROM corrections WHERE key=?", (key,)).fetchone()
    assert text and "[#" not in text


def test_log_lines_name_messages_by_the_ref_the_audit_shows(tmp_path: Path, trained_model, caplog) -> None:
    import logging

    from assoc_ai_core.cli.triage import audit_rows

    cfg, conn = _job(tmp_path, trained_model)
    conn.deliver(_mail("<marie.dupont.42@exemple.org>", "marie.dupont@exemple.org", "Mon, 7 Dec 2026 10:00:00 +0100",
                       "Bonjour, je souhaite adhérer."))
    with caplog.at_level(logging.INFO, logger="assoc_ai_core.jobs"), TriageJob(cfg) as job:
        job.run_once()
    [row] = audit_rows(str(cfg))
    decision_lines = [r.getMessage() for r in caplog.records if row["ref"] in r.getMessage()]
    assert decision_lines  # the administrator finds the audit row from the log line, and back
    assert not any("marie" in r.getMessage() for r in caplog.records)
