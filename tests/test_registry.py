"""Model versions (registry) and retraining with corrections, on real models, a real Maildir and SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.main import cli
from assoc_ai_core.cli.triage import add_commands
from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.jobs.registry import ModelRegistry
from assoc_ai_core.jobs.retrain import retrain
from assoc_ai_core.jobs.triage import TriageJob
from assoc_ai_core.testing.mailbox import kit_messages, kit_model, sample_mail

add_commands(cli)

DONATIONS = [
    ("Don pour l'association", "Je souhaite faire un don de 50 euros. Pouvez-vous m'envoyer un reçu fiscal ?"),
    ("Reçu fiscal", "Suite à mon don de décembre, je n'ai pas reçu le reçu fiscal pour ma déclaration d'impôts."),
    ("Soutien financier", "Nous voulons soutenir votre action par un don, la défiscalisation est-elle possible ?"),
    ("Don mensuel", "Est-il possible de faire un don mensuel par prélèvement ? Merci pour le reçu fiscal."),
    ("Legs et dons", "Mon père souhaite faire un don important, quelle est la déduction d'impôt ?"),
    ("Don en ligne", "J'ai fait un don en ligne hier, le reçu fiscal arrive-t-il par courriel ?"),
]


def test_registry_add_promote_rollback_load(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    assert registry.list() == [] and registry.current() is None
    v1 = registry.add(kit_model(), {"source": "test"}, promote=True)
    v2 = registry.add(kit_model(), {"source": "test 2"})
    assert (v1, v2) == ("v0001", "v0002") and registry.current() == "v0001"
    registry.promote(v2)
    assert [v.version for v in registry.list() if v.current] == ["v0002"]
    registry.rollback("v0001")
    model, version = registry.load()
    assert version == "v0001" and list(model.classes_) == list(kit_model().classes_)
    assert registry.info("v0002")["source"] == "test 2"
    assert registry.info("v0002")["model_metadata"]["labels"] == ["Adhésion", "Événement"]
    assert (tmp_path / "models" / "current").read_text().strip() == "v0001"
    with pytest.raises(ConfigError, match="v0001, v0002"):
        registry.rollback("v0009")
    with pytest.raises(ConfigError):
        registry.path("../../etc/passwd")


@pytest.fixture
def job_with_corrections(tmp_path: Path) -> tuple[Path, list[str]]:
    """A job whose volunteers moved six donation mails from where the model put them to a new 'Don' folder."""
    from assoc_ai_core.persistence import save_model

    train = tmp_path / "train"
    for i, (raw, label) in enumerate(kit_messages(6, seed=1)):
        (train / label).mkdir(parents=True, exist_ok=True)
        (train / label / f"{i:03d}.eml").write_bytes(raw)
    save_model(kit_model(), tmp_path / "model.skops")
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text("""
[mailbox]
connector = "local"
path = "Maildir"
create = true
[model]
path = "model.skops"
target_precision = 0.9
[triage]
state = "state.sqlite"
[training]
data = "train"
min_corrections = 3
holdout_share = 0.34
[categories."Adhésion"]
folder = "IA/Adhésion"
[categories."Événement"]
folder = "IA/Événement"
[categories.Don]
folder = "IA/Don"
""", encoding="utf-8")
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    keys = [conn.deliver(sample_mail(s, b + "\nMerci", sender=f"donateur{i}@exemple.org")).key
            for i, (s, b) in enumerate(DONATIONS)]
    with TriageJob(cfg) as job:
        job.run_once()
        person = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir")))
        for key in keys:
            rec = job.state.get_message("local", key)
            person.move(MailRef(rec.current_folder, rec.current_uid, key), "IA/Don")
        assert job.run_once().corrections == len(keys)
    return cfg, keys


def test_retrain_learns_the_corrections_and_promotes(job_with_corrections) -> None:
    cfg, keys = job_with_corrections
    result = retrain(cfg)
    assert result.version == "v0002" and result.promoted
    assert (result.n_corrections, result.n_holdout) == (6, 2)
    assert result.current_accuracy == 0.0  # the original model does not even know 'Don'
    assert result.candidate_accuracy >= result.current_accuracy
    registry = ModelRegistry(cfg.parent / "models")
    assert [v.version for v in registry.list()] == ["v0001", "v0002"]
    assert registry.current() == "v0002"
    assert registry.info("v0001")["source"].startswith("imported")
    info = registry.info("v0002")
    assert info["parent"] == "v0001" and info["evaluation"]["n_holdout"] == 2 and info["n_train"] == 12 + 4
    model, _ = registry.load()
    assert "Don" in list(model.classes_)
    with TriageJob(cfg) as job:  # the job now runs the promoted version
        assert job.model_version == "v0002"


def test_worse_candidate_is_kept_aside(job_with_corrections, monkeypatch: pytest.MonkeyPatch) -> None:
    import assoc_ai_core.jobs.retrain as registry_module

    cfg, _ = job_with_corrections
    scores = iter([0.25, 0.75])  # candidate first, live model second: the unit under test is the rule
    monkeypatch.setattr(registry_module, "_accuracy", lambda model, messages: next(scores))
    result = retrain(cfg)
    assert result.version == "v0002" and not result.promoted
    assert ModelRegistry(cfg.parent / "models").current() == "v0001"
    assert "moins bonne" in result.summary()


def test_retrain_needs_enough_corrections(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mailbox]\nconnector = "local"\npath = "M"\ncreate = true\n[triage]\nstate = "s.sqlite"\n',
                   encoding="utf-8")
    assert retrain(cfg).version is None
    from assoc_ai_core.jobs.state import StateStore

    StateStore(tmp_path / "s.sqlite").close()
    result = retrain(cfg)
    assert result.version is None and "0 sur 3" in result.summary()


def test_model_commands(job_with_corrections) -> None:
    cfg, _ = job_with_corrections
    runner = CliRunner()
    assert "aucune version" in runner.invoke(cli, ["model", "current", "--config", str(cfg)]).output
    out = runner.invoke(cli, ["retrain", "--config", str(cfg)])
    assert out.exit_code == 0 and "v0002" in out.output
    listed = json.loads(runner.invoke(cli, ["model", "list", "--config", str(cfg), "--json"]).output)
    assert [(v["version"], v["current"]) for v in listed] == [("v0001", False), ("v0002", True)]
    table = runner.invoke(cli, ["model", "list", "--config", str(cfg)]).output
    assert "* v0002" in table
    assert runner.invoke(cli, ["model", "rollback", "v0001", "--config", str(cfg)]).exit_code == 0
    assert runner.invoke(cli, ["model", "current", "--config", str(cfg)]).output.strip() == "v0001"
    bad = runner.invoke(cli, ["model", "rollback", "v0042", "--config", str(cfg)])
    assert bad.exit_code == 2 and "v0042" in bad.output


def test_audit_command_answers_an_access_request(job_with_corrections, tmp_path: Path) -> None:
    cfg, keys = job_with_corrections
    runner = CliRunner()
    rows = json.loads(runner.invoke(cli, ["audit", "--config", str(cfg), "--sender", "Donateur2@Exemple.org",
                                          "--format", "json"]).output)
    assert [r["key"] for r in rows] == [keys[2]]
    row = rows[0]
    assert row["sender"] == "d…@exemple.org" and row["corrections"][0]["to_category"] == "Don"
    assert row["actions"] and row["explanation"] and row["model_version"].startswith("file:")
    out = tmp_path / "audit.csv"
    result = runner.invoke(cli, ["audit", "--config", str(cfg), "--format", "csv", "--output", str(out)])
    assert result.exit_code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("decided_at,key,decision") and len(lines) == 1 + len(keys)
    assert "donateur" not in out.read_text(encoding="utf-8")
    table = runner.invoke(cli, ["audit", "--config", str(cfg), "--since", "2000-01-01"]).output
    assert "correction:" in table and keys[0] in table
    assert "Aucune" in runner.invoke(cli, ["audit", "--config", str(cfg), "--since", "2999-01-01"]).output
    assert runner.invoke(cli, ["audit", "--config", str(cfg), "--since", "hier"]).exit_code == 2
