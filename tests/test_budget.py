"""A budget per message: too large, too slow, or stalling a killed run — to review with the reason, the run goes on."""

from __future__ import annotations

import time
from pathlib import Path

from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.jobs.triage import TriageJob
from assoc_ai_core.testing.mailbox import RecordingForwarder, mailbox_census

ROOT = Path(__file__).resolve().parents[1]
NEW = ROOT / "examples" / "mailbox" / "new"
REVIEW = "À vérifier"


def _setup(tmp_path: Path, trained_model, triage: str = "") -> tuple[Path, LocalMailConnector, list[str]]:
    from assoc_ai_core.persistence import save_model

    model = save_model(trained_model, tmp_path / "model.skops")
    lines = ["[mailbox]", 'connector = "local"', 'path = "Maildir"', "create = true", "",
             "[model]", f'path = "{model}"', "",
             "[triage]", 'first_run = "all"', f'review_folder = "{REVIEW}"', 'state = "state.sqlite"', triage, ""]
    for name in ("Adhesion", "Autre", "Benevolat", "Evenement", "Partenariat", "Presse"):
        lines += [f"[categories.{name}]", f'folder = "IA/{name}"', ""]
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    keys = [conn.deliver(f.read_bytes()).key for f in sorted(NEW.glob("*.eml"))[:4]]
    return cfg, conn, keys


def _reasons(tmp_path: Path) -> dict[str, str | None]:
    with StateStore(tmp_path / "state.sqlite") as state:
        return {r[0]: r[1] for r in state.execute("SELECT key, reason FROM messages")}


def test_a_message_over_the_size_limit_goes_to_review_unread(tmp_path: Path, trained_model) -> None:
    cfg, conn, keys = _setup(tmp_path, trained_model, "message_max_mb = 0.1")
    big = conn.deliver(b"Message-ID: <big@x>\r\nSubject: scan\r\nFrom: a@b.example\r\n\r\n" + b"x" * 200_000)
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        report = job.run_once()
    assert report.fetched == 5 and report.errors == 1
    assert "message_max_mb" in (_reasons(tmp_path)[big.key] or "")
    assert [f for f, _ in mailbox_census(conn)[big.key]] == [REVIEW]
    [ref] = [f.ref for f in conn.fetch_all(REVIEW) if f.ref.key == big.key]
    assert conn.labels(ref) in (["Illisible"], ["Unreadable"])  # the person sees why in the mail client


def test_a_message_too_slow_to_read_goes_to_review_and_the_run_goes_on(tmp_path: Path, trained_model,
                                                                        monkeypatch) -> None:
    cfg, conn, keys = _setup(tmp_path, trained_model, "message_seconds = 0.5")
    slow = keys[1]
    real = type(trained_model).transform_clean

    def transform_clean(self, X, **kwargs):  # stands for a message whose cleaning never ends
        if any(getattr(m, "key", None) == slow for m in X):
            time.sleep(30)
        return real(self, X, **kwargs)

    monkeypatch.setattr(type(trained_model), "transform_clean", transform_clean)
    started = time.monotonic()
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        report = job.run_once()
    assert time.monotonic() - started < 15
    assert report.fetched == 4 and report.errors == 1 and report.auto + report.review == 3
    assert "message_seconds" in (_reasons(tmp_path)[slow] or "")
    assert [f for f, _ in mailbox_census(conn)[slow]] == [REVIEW]


def test_the_message_a_killed_run_was_reading_is_not_read_again(tmp_path: Path, trained_model) -> None:
    cfg, conn, keys = _setup(tmp_path, trained_model)
    (tmp_path / "state.sqlite.reading").write_text(keys[2], encoding="utf-8")  # what a run killed mid-read leaves
    with TriageJob(cfg, forwarder=RecordingForwarder()) as job:
        report = job.run_once()
    assert report.errors == 1 and report.auto + report.review == 3
    assert "stopped while reading" in (_reasons(tmp_path)[keys[2]] or "") or "arrêtée en lisant" in (
        _reasons(tmp_path)[keys[2]] or "")
    assert (tmp_path / "state.sqlite.reading").read_bytes() == b""  # the next run starts clean
