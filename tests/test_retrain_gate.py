"""The retrain gate: original data + corrections, a held-out set that means something, a paired test, erasure.

Real models, a real local Maildir, the real triage job and SQLite state file; the
statistics are checked on answers whose difference is known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector
from assoc_ai_core.ext.connectors import MailRef
from assoc_ai_core.jobs.registry import ModelRegistry
from assoc_ai_core.jobs.retrain import MIN_HOLDOUT, Scored, paired_bootstrap, retrain
from assoc_ai_core.jobs.triage import TriageJob
from assoc_ai_core.testing.mailbox import kit_messages

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "examples" / "mailbox" / "train"
NEW = ROOT / "examples" / "mailbox" / "new"
CATEGORIES = {"Adhesion": "IA/Adhésion", "Autre": "IA/Autre", "Benevolat": "IA/Bénévolat",
              "Evenement": "IA/Événement", "Partenariat": "IA/Partenariat", "Presse": "IA/Presse"}


# ============================================================================ the paired test
def answers(truth: list[str], wrong: set[int], *, auto: bool = True) -> Scored:
    """Answers right except at ``wrong`` (where the next category is given), all with the same confidence."""
    cats = sorted(set(truth))
    labels = [cats[(cats.index(t) + 1) % len(cats)] if i in wrong else t for i, t in enumerate(truth)]
    n = len(truth)
    return Scored(np.array(labels), np.full(n, 0.9), np.full(n, auto))


TRUTH = ["Adhésion", "Don", "Événement", "Presse"] * 15  # 60 messages


def test_identical_answers_are_not_worse() -> None:
    same = answers(TRUTH, {1, 7})
    f = paired_bootstrap(TRUTH, same, same, target=0.9)
    assert f.n == 60 and f.candidate_macro_f1 == f.current_macro_f1
    assert (f.macro_f1_interval, f.macro_f1_p_value, f.auto_share_p_value) == ((0.0, 0.0), 1.0, 1.0)
    assert not f.worse


def test_one_more_mistake_is_noise_many_more_is_worse() -> None:
    live = answers(TRUTH, {1})
    slightly = paired_bootstrap(TRUTH, answers(TRUTH, {1, 2}), live, target=0.9)
    assert slightly.candidate_macro_f1 < slightly.current_macro_f1  # worse by one message...
    assert not slightly.worse and slightly.macro_f1_interval[0] < 0 <= slightly.macro_f1_interval[1]  # ...inside noise
    much = paired_bootstrap(TRUTH, answers(TRUTH, set(range(0, 60, 4)) | {1}), live, target=0.9)
    assert much.worse and much.macro_f1_p_value < 0.05 and much.macro_f1_interval[1] < 0
    better = paired_bootstrap(TRUTH, live, answers(TRUTH, set(range(0, 60, 4)) | {1}), target=0.9)
    assert not better.worse and better.macro_f1_p_value == 1.0


def test_a_candidate_that_routes_nothing_is_worse_on_the_automatic_share() -> None:
    live = answers(TRUTH, {1})
    shy = answers(TRUTH, {1}, auto=False)  # the threshold of 1.01: everything to review
    f = paired_bootstrap(TRUTH, shy, live, target=0.9)
    assert f.candidate_macro_f1 == f.current_macro_f1  # same categories...
    assert (f.candidate_auto_share, f.current_auto_share) == (0.0, 1.0)  # ...but nothing done automatically
    assert f.worse and f.auto_share_p_value < 0.05
    # routing everything at 50 % precision only counts the confident part that reaches the target
    sloppy = Scored(np.array(TRUTH), np.linspace(1, 0.5, 60), np.full(60, True))
    sloppy.label[30:] = "Presse"
    assert paired_bootstrap(TRUTH, sloppy, live, target=0.9).candidate_auto_share < 0.7


# ============================================================================ on a real job
def write_config(tmp_path: Path, *, training: str = "", model: Path | None = None) -> Path:
    lines = ["[mailbox]", 'connector = "local"', 'path = "Maildir"', "create = true", "",
             "[triage]", 'first_run = "all"', 'folders = ["INBOX"]', 'state = "state/assoc_ai.sqlite"', ""]
    if model is not None:
        lines += ["[model]", f'path = "{model}"', ""]
    lines += ["[training]", training, ""]
    for name, folder in CATEGORIES.items():
        lines += [f"[categories.{name}]", f'folder = "{folder}"', ""]
    cfg = tmp_path / "assoc_ai.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    return cfg


def correct(cfg: Path, tmp_path: Path, keys: list[str]) -> int:
    """A volunteer moves each decided message to the next category's folder; the next run records the corrections."""
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir")))
    conn.open()
    folders = list(CATEGORIES.values())
    with TriageJob(cfg) as job:
        for key in keys:
            rec = job.state.get_message("local", key)
            target = folders[(list(CATEGORIES).index(rec.category) + 1) % len(folders)] if rec.category else folders[0]
            conn.move(MailRef(rec.current_folder, rec.current_uid, key), target)
        return job.run_once().corrections


@pytest.fixture
def live_job(tmp_path: Path, trained_model) -> tuple[Path, list[str]]:
    """The issue's setup: a hand-trained model (84 messages, 6 categories), no [training] data, a first run."""
    from assoc_ai_core.persistence import save_model

    model = save_model(trained_model, tmp_path / "model.skops")
    cfg = write_config(tmp_path, model=model)
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    keys = [conn.deliver(p.read_bytes()).key for p in sorted(NEW.glob("*.eml"))]
    with TriageJob(cfg) as job:
        job.run_once()
    assert correct(cfg, tmp_path, keys[:3]) == 3
    return cfg, keys


def test_corrections_alone_are_refused_and_the_message_says_what_to_configure(live_job, tmp_path: Path) -> None:
    cfg, _ = live_job
    model_bytes = (tmp_path / "model.skops").read_bytes()
    result = retrain(cfg)
    assert result.version is None and not result.promoted
    assert "[training] data" in result.reason and "84 messages, 6 catégories" in result.reason
    assert "0 messages" in result.reason  # the folders only hold what the model filed itself, and the corrections
    assert ModelRegistry(tmp_path / "state" / "models").list() == []  # nothing stored, nothing put live
    assert (tmp_path / "model.skops").read_bytes() == model_bytes
    # doing what the message says makes retraining work, on the original data plus the corrections
    write_config(tmp_path, training=f'data = "{TRAIN}"', model=tmp_path / "model.skops")
    done = retrain(cfg)
    assert done.version == "v0002" and done.source.endswith(str(TRAIN))
    assert done.n_holdout >= MIN_HOLDOUT and done.n_holdout_corrections == 1 and done.figures is not None
    assert done.n_train == 84 - done.n_holdout_original + 2
    assert done.promoted == (not done.figures.worse and not done.dropped_categories)


def test_a_held_out_set_below_the_minimum_is_refused(tmp_path: Path) -> None:
    from assoc_ai_core.api import train
    from assoc_ai_core.mail.parsing import parse_message
    from assoc_ai_core.persistence import save_model

    small = tmp_path / "small"
    msgs = []
    for i, (raw, label) in enumerate(kit_messages(6, seed=3)):  # 12 messages: 6 per category at most
        (small / label).mkdir(parents=True, exist_ok=True)
        (small / label / f"{i:03d}.eml").write_bytes(raw)
        msgs.append(parse_message(raw, label=label))
    model = save_model(train(msgs, target_precision=0.9), tmp_path / "model.skops")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[mailbox]\nconnector = "local"\npath = "M"\ncreate = true\n[triage]\nfirst_run = "all"\nstate = "s.sqlite"\n'
                   f'[model]\npath = "{model}"\n[training]\ndata = "{small}"\nmin_corrections = 0\n'
                   '[categories."Adhésion"]\nfolder = "A"\n[categories."Événement"]\nfolder = "E"\n', encoding="utf-8")
    from assoc_ai_core.jobs.state import StateStore

    StateStore(tmp_path / "s.sqlite").close()
    result = retrain(cfg)
    assert result.version is None and f"au moins {MIN_HOLDOUT}" in result.reason
    assert 0 < result.n_holdout < MIN_HOLDOUT


def test_original_data_missing_a_live_category_is_refused(live_job, tmp_path: Path) -> None:
    cfg, _ = live_job
    partial = tmp_path / "partial"  # the original data without 'Presse': the candidate would drop it
    for folder in TRAIN.iterdir():
        if folder.name != "Presse":
            (partial / folder.name).mkdir(parents=True)
            for p in folder.iterdir():
                (partial / folder.name / p.name).write_bytes(p.read_bytes())
    write_config(tmp_path, training=f'data = "{partial}"', model=tmp_path / "model.skops")
    result = retrain(cfg)
    assert result.version is None and "Presse" in result.reason and "[training] data" in result.reason


# ============================================================================ after an erasure
def test_retraining_after_an_erasure_works_without_the_person(tmp_path: Path, trained_model) -> None:
    """End to end on a local Maildir: the original data is the category folders, one person asks to be forgotten."""
    from assoc_ai_core.jobs.examples import train_from_mailbox
    from assoc_ai_core.jobs.retention import models_to_retrain
    from assoc_ai_core.persistence import save_model
    from assoc_ai_core.testing.mailbox import sample_mail
    from assoc_ai_core.trust.erasure import erase_person
    from assoc_ai_core.trust.privacy import load_trust_config

    email = "gwendoline.kerherve@breizh-mail.example"
    cfg = write_config(tmp_path, model=tmp_path / "model.skops")
    conn = LocalMailConnector(LocalMailConfig(path=str(tmp_path / "Maildir"), create=True))
    conn.open()
    for name, folder in CATEGORIES.items():  # what volunteers sorted by hand over the years
        conn.ensure_folder(folder)
        for p in sorted((TRAIN / name).iterdir()):
            conn.deliver(p.read_bytes(), folder=folder)
    hers = [sample_mail(f"Bénévolat potager {i}", "Je voudrais aider comme bénévole au potager, arrosage et "
                        "compost, le samedi matin.", sender=email) for i in range(3)]
    for raw in hers:
        conn.deliver(raw, folder=CATEGORIES["Benevolat"])
    settings = load_trust_config(cfg).settings
    save_model(train_from_mailbox(settings), tmp_path / "model.skops")  # the live model learnt from her mail
    keys = [conn.deliver(sample_mail("Aide au jardin", "Je peux venir aider au potager samedi.", sender=email)).key]
    with TriageJob(cfg) as job:
        job.run_once()
    assert correct(cfg, tmp_path, keys) == 1  # her only correction: fewer than min_corrections (3)
    assert retrain(cfg).version is None  # before the erasure, one correction is not enough to retrain

    erase_person(load_trust_config(cfg), email=email, names=[], apply=True)
    assert models_to_retrain(settings)  # the erasure marked the live model
    result = retrain(cfg)  # what docs/privacy.md advises next
    assert result.after_erasure and result.n_corrections == 0  # her correction went with the erasure
    assert result.version == "v0002" and result.promoted, result.summary()
    assert result.compared_with == "reference" and result.figures is not None  # compared, not promoted blindly
    assert result.n_train == 84 - result.n_holdout_original  # her three sorted mails are left out
    assert models_to_retrain(settings) == []
    assert ModelRegistry(tmp_path / "state" / "models").current() == "v0002"
    with TriageJob(cfg) as job:  # the job now runs the model that never saw her mail
        assert job.model_version == "v0002"
