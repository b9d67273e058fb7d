"""Monitoring on a real state file: figures over time, drift flags, alert text, alert mail through a real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.main import cli
from assoc_ai_core.cli.trust import add_commands
from assoc_ai_core.errors import ConfigError
from assoc_ai_core.jobs.monitoring import MonitorSettings, monitor, monitoring_html
from assoc_ai_core.jobs.state import SenderPrivacy, StateStore
from assoc_ai_core.testing.smtp import SmtpSink

add_commands(cli)
META = {"expected_auto_share": 0.8, "per_class": {"Adhesion": {"examples": 50}, "Benevolat": {"examples": 50}}}


def fill(state: StateStore, privacy: SenderPrivacy, *, when: datetime, n: int, review: int, mix: dict[str, int],
         domain: str = "exemple.fr", corrections: int = 0, tag: str = "a") -> None:
    """One run as the triage job records it, with its decisions (and corrections)."""
    run = state.start_run("local", dry_run=False, model_version="v0001")
    state.execute("UPDATE runs SET started_at=? WHERE id=?", (when.isoformat(timespec="seconds"), run))
    for i in range(n):
        key = f"{tag}{run}-{i}"
        state.record_decision(instance="local", key=key, run_id=run, dry_run=False, status="done", folder="INBOX",
                              uid=str(i), sender=f"p{i}@{domain}", privacy=privacy,
                              decision="review" if i < review else "auto", category="Adhesion", probability=0.9,
                              runner_up="Benevolat", runner_up_probability=0.1, explanation=None,
                              model_version="v0001", reason=None, plan=[])
        state.execute("UPDATE messages SET decided_at=? WHERE key=?", (when.isoformat(timespec="seconds"), key))
        if i < corrections:
            cid = state.record_correction(instance="local", key=key, from_category="Adhesion", from_folder="A",
                                          to_category="Benevolat", to_folder="B", model_version="v0001", text=None)
            state.execute("UPDATE corrections SET detected_at=? WHERE id=?", (when.isoformat(timespec="seconds"), cid))
    state.finish_run(run, status="ok", exit_code=0, stats={
        "fetched": n, "auto": n - review, "review": review, "review_share": review / n, "mean_confidence": 0.85,
        "category_mix": mix, "corrections": corrections})


@pytest.fixture
def store(tmp_path: Path):
    state = StateStore(tmp_path / "state" / "s.sqlite")
    privacy = SenderPrivacy.from_key_file(tmp_path / "state" / "s.key")
    yield state, privacy
    state.close()


NOW = datetime(2024, 6, 30, tzinfo=UTC)


def test_normal_weeks_raise_no_flag(store) -> None:
    state, privacy = store
    for d in (20, 12, 3, 1):
        fill(state, privacy, when=NOW - timedelta(days=d), n=30, review=6, mix={"Adhesion": 15, "Benevolat": 15})
    report = monitor(state, META, now=NOW)
    assert report.flags == [] and report.decided == 60 and report.review_share == pytest.approx(0.2)
    assert len(report.runs) == 4 and report.mean_confidence == pytest.approx(0.85)
    assert "Rien d'anormal" in report.text()


def test_drift_is_flagged_in_plain_language(store) -> None:
    state, privacy = store
    for d in (20, 15, 10):
        fill(state, privacy, when=NOW - timedelta(days=d), n=30, review=6, mix={"Adhesion": 15, "Benevolat": 15})
    for d in (3, 1):  # a new sender cluster, much more review, a lopsided mix, many corrections
        fill(state, privacy, when=NOW - timedelta(days=d), n=30, review=18, mix={"Adhesion": 28, "Benevolat": 2},
             domain="nouvelle-mairie.fr", corrections=4, tag="b")
    report = monitor(state, META, MonitorSettings(lang="en"), now=NOW)
    kinds = {f.kind for f in report.flags}
    assert kinds == {"review_share", "category_mix", "new_domain", "corrections"}
    text = report.text()
    assert "60% of mail goes to review, against 20% expected" in text
    assert "nouvelle-mairie.fr" in text and "Corrections are rising" in text and "assoc-ai retrain" in text
    page = monitoring_html(report)
    assert page.count("<tr>") == 1 + 5 and "nouvelle-mairie.fr" in page


def test_small_windows_do_not_cry_wolf(store) -> None:
    state, privacy = store
    fill(state, privacy, when=NOW - timedelta(days=1), n=5, review=4, mix={"Adhesion": 5})
    assert monitor(state, META, now=NOW).flags == []  # 5 messages: too few to call it drift


def test_monitor_command_mails_the_alert(tmp_path: Path, store) -> None:
    state, privacy = store
    for d in (3, 1):
        fill(state, privacy, when=datetime.now(UTC) - timedelta(days=d), n=30, review=25,
             mix={"Adhesion": 15, "Benevolat": 15})

    handler = SmtpSink().start()
    port = handler.port
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text('[mailbox]\nconnector = "local"\npath = "Maildir"\n[triage]\nfirst_run = "all"\nstate = "state/s.sqlite"\n'
                       f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nstarttls = false\nsender = "ia@asso.example"\n'
                       '[monitor]\nalert_to = "bureau@asso.example"\nlang = "fr"\n', encoding="utf-8")
        (tmp_path / "state" / "models").mkdir()
        from sklearn.base import BaseEstimator

        from assoc_ai_core.persistence import save_model

        class Meta(BaseEstimator):
            metadata_ = META
        save_model(Meta(), tmp_path / "state" / "models" / "v0001.skops")
        (tmp_path / "state" / "models" / "current").write_text("v0001\n")
        html = tmp_path / "monitor.html"
        result = CliRunner().invoke(cli, ["monitor", "--config", str(cfg), "--alert", "--html", str(html)])
    finally:
        handler.stop()
    assert result.exit_code == 3, result.output
    assert "envoyés en vérification" in result.output and "Alerte envoyée à bureau@asso.example" in result.output
    [(_, rcpts, data)] = handler.envelopes
    sent = message_from_bytes(data, policy=default)
    assert rcpts == ["bureau@asso.example"] and sent["Auto-Submitted"] == "auto-generated"
    assert "part en vérification" in sent.get_content()
    assert "Surveillance du modèle" in html.read_text(encoding="utf-8")


def test_settings_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="alert_to"):
        MonitorSettings.from_mapping({"alert_to": "pas une adresse"})
    with pytest.raises(ConfigError, match="review_margin"):
        MonitorSettings.from_mapping({"review_margin": 2})
    with pytest.raises(ConfigError, match="inconnue"):
        MonitorSettings.from_mapping({"window": 3})
    with pytest.raises(ConfigError, match="window_days"):  # built directly, the settings are checked too
        MonitorSettings(window_days=0)
    assert MonitorSettings.from_mapping({"alert_to": "bureau@asso.example"}).alert_to == ("bureau@asso.example",)
