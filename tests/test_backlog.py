"""A new job starts from now; the backlog is sorted only on purpose, after a dry run that shows its effect."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from assoc_ai_core.cli.main import cli
from assoc_ai_core.cli.triage import add_commands
from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.jobs.backlog import plan_table
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob
from assoc_ai_core.testing.mailbox import RecordingForwarder, mailbox_census

ROOT = Path(__file__).resolve().parents[1]
NEW = ROOT / "examples" / "mailbox" / "new"
CATEGORIES = {"Adhesion": "IA/Adhésion", "Autre": "IA/Autre", "Benevolat": "IA/Bénévolat",
              "Evenement": "IA/Événement", "Partenariat": "IA/Partenariat", "Presse": "IA/Presse"}
REVIEW = "À vérifier"

add_commands(cli)


def _config(tmp_path: Path, model_file: Path, first_run: str | None = None) -> Path:
    lines = ["[mailbox]", 'connector = "local"', 'path = "Maildir"', "create = true", "",
             "[model]", f'path = "{model_file}"', "",
             "[triage]", f'review_folder = "{REVIEW}"', 'state = "state.sqlite"', "forward_max_age_days = 30"]
    if first_run:
        lines.append(f'first_run = "{first_run}"')
    lines.append("")
    for name, folder in CATEGORIES.items():
        lines += [f"[categories.{name}]", f'folder = "{folder}"', f'label = "{name}"', ""]
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    return cfg


def _maildir(tmp_path: Path) -> LocalMailConnector:
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    return conn


def _deliver_all(conn: LocalMailConnector) -> list[str]:
    return [conn.deliver(f.read_bytes()).key for f in sorted(NEW.glob("*.eml"))]


def _model_file(tmp_path: Path, trained_model) -> Path:
    from assoc_ai_core.persistence import save_model

    return save_model(trained_model, tmp_path / "model.skops")


def test_first_run_leaves_existing_mail_alone_and_sorts_what_arrives_after(tmp_path: Path, trained_model) -> None:
    cfg = _config(tmp_path, _model_file(tmp_path, trained_model))
    conn = _maildir(tmp_path)
    old = _deliver_all(conn)
    before = mailbox_census(conn)
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        first = job.run_once()
    assert (first.fetched, first.decided) == (0, 0)
    assert mailbox_census(conn) == before  # not one message moved, labelled or tagged
    new = conn.deliver((NEW / sorted(p.name for p in NEW.glob("*.eml"))[0]).read_bytes().replace(
        b"Message-ID: <", b"Message-ID: <later-", 1))
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        second = job.run_once()
    assert (second.fetched, second.decided) == (1, 1)
    with StateStore(tmp_path / "state.sqlite") as state:
        decided = {r[0] for r in state.execute("SELECT key FROM messages")}
    assert decided == {new.key}
    assert not decided & set(old)


def test_first_run_all_sorts_existing_mail(tmp_path: Path, trained_model) -> None:
    cfg = _config(tmp_path, _model_file(tmp_path, trained_model), first_run="all")
    conn = _maildir(tmp_path)
    old = _deliver_all(conn)
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        report = job.run_once()
    assert report.decided == len(old)


def test_backlog_dry_run_shows_per_category_then_acts_once(tmp_path: Path, trained_model) -> None:
    cfg = _config(tmp_path, _model_file(tmp_path, trained_model))
    conn = _maildir(tmp_path)
    old = _deliver_all(conn)
    runner = CliRunner()
    assert runner.invoke(cli, ["triage", "run", "--config", str(cfg)]).exit_code == 0
    before = mailbox_census(conn)

    shown = runner.invoke(cli, ["triage", "backlog", "--config", str(cfg), "--since", "2000-01-01", "--dry-run",
                                "--lang", "en"])
    assert shown.exit_code == 0, shown.output
    assert "Dry run" in shown.output and "move → IA/" in shown.output and "Simulation" not in shown.output
    assert mailbox_census(conn) == before
    as_json = json.loads(runner.invoke(cli, ["triage", "backlog", "--config", str(cfg), "--since", "2000-01-01",
                                             "--dry-run", "--json"]).output)
    moves = sum(row["messages"] for row in as_json["plan"] if row["action"].startswith("move"))
    assert moves == len(old)  # every old message would be moved once: to its category or to review

    done = runner.invoke(cli, ["triage", "backlog", "--config", str(cfg), "--since", "2000-01-01", "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["auto"] + result["review"] + result["errors"] == len(old)
    inbox = mailbox_census(conn).get("INBOX", {})
    assert not inbox  # all of it sorted
    again = json.loads(runner.invoke(cli, ["triage", "backlog", "--config", str(cfg), "--since", "2000-01-01",
                                           "--json"]).output)
    assert again["auto"] + again["review"] + again["errors"] == 0  # nothing is handled twice


def test_backlog_since_bounds_the_dates(tmp_path: Path, trained_model) -> None:
    cfg = _config(tmp_path, _model_file(tmp_path, trained_model))
    conn = _maildir(tmp_path)
    _deliver_all(conn)
    out = CliRunner().invoke(cli, ["triage", "backlog", "--config", str(cfg), "--since", "2999-01-01", "--dry-run",
                                   "--json"])
    assert json.loads(out.output)["fetched"] == 0
    bad = CliRunner().invoke(cli, ["triage", "backlog", "--config", str(cfg), "--since", "hier", "--lang", "fr"])
    assert bad.exit_code == 2 and "AAAA-MM-JJ" in bad.output


def test_plan_table_counts_old_forwards_as_not_sent() -> None:
    would = [{"decision": "auto", "category": "Presse", "date": "2020-01-01T00:00:00+00:00",
              "actions": [{"kind": "forward", "target": "presse@asso.example"}]},
             {"decision": "auto", "category": "Presse", "date": None,
              "actions": [{"kind": "forward", "target": "presse@asso.example"}]}]
    rows = plan_table(would, max_age_days=7)
    assert len(rows) == 2 and all(n == 1 for _, _, n in rows)
    assert any("too old" in a or "trop ancien" in a for _, a, _ in rows)


def test_a_person_filing_during_an_interruption_wins_and_is_a_correction(tmp_path: Path, trained_model) -> None:
    """Kill the job with messages pending, file five by hand: the next run leaves them and records corrections."""
    from assoc_ai_core.testing.mailbox import SimulatedCrash

    cfg = _config(tmp_path, _model_file(tmp_path, trained_model), first_run="all")
    conn = _maildir(tmp_path)
    _deliver_all(conn)

    def crash(stage: str, n: int, kind: str) -> None:
        if stage == "intent":
            raise SimulatedCrash(kind)

    try:
        with TriageJob(cfg, checkpoint=crash) as job:
            job.run_once()
    except SimulatedCrash:
        pass
    with StateStore(tmp_path / "state.sqlite") as state:
        pending = {r[0]: r[1] for r in state.execute(
            "SELECT key, COALESCE(category, '') FROM messages WHERE status='pending'")}
    assert len(pending) >= 5
    # a volunteer files five of them by hand, in a category folder the job did not choose
    filed: dict[str, str] = {}
    for ref in [f.ref for f in conn.fetch_all("INBOX") if f.ref.key in pending][:5]:
        target = next(folder for name, folder in CATEGORIES.items() if name != pending[ref.key])
        conn.move(ref, target)
        filed[ref.key] = target
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        report = job.run_once()
    census = mailbox_census(conn)
    for key, folder in filed.items():
        assert [f for f, _ in census[key]] == [folder]  # never moved back
    assert report.corrections == 5
    with StateStore(tmp_path / "state.sqlite") as state:
        corrected = {r[0] for r in state.execute("SELECT key FROM corrections")}
    assert corrected == set(filed)
