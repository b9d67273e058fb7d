"""``evaluate`` tells mail the model was trained on from mail it has not seen (issue 16, item 1)."""

from __future__ import annotations

import copy
import csv
import html
from dataclasses import replace

import pytest

from assoc_ai_core import evaluate
from assoc_ai_core.mail.metadata import DIGESTS_KEY, message_digests, unpack_digests
from assoc_ai_core.mail.report import write_report
from assoc_ai_core.mail.sources import load_dataset
from assoc_ai_core.persistence import load_model, read_metadata, save_model


@pytest.fixture(scope="module")
def train_msgs(example_mailbox):
    return load_dataset(example_mailbox / "train").labelled()


@pytest.fixture(scope="module")
def new_msgs(example_mailbox):
    with (example_mailbox / "new" / "EXPECTED.csv").open(encoding="utf-8") as fh:
        truth = {r["file"]: r["category"] for r in csv.DictReader(fh)}
    return [replace(m, label=truth[m.source.rsplit("/", 1)[-1]])
            for m in load_dataset(example_mailbox / "new", labelled=False).readable()
            if truth[m.source.rsplit("/", 1)[-1]] != "review"]


def _without_digests(model):
    """The same model as one saved before per-message digests existed."""
    old = copy.copy(model)
    old.metadata_ = {k: v for k, v in model.metadata_.items() if k != DIGESTS_KEY}
    return old


def test_the_model_stores_one_sorted_digest_per_training_message(trained_model, train_msgs):
    stored = unpack_digests(trained_model.metadata_[DIGESTS_KEY])
    assert len(stored) == len(set(message_digests(train_msgs).tolist()))
    assert list(stored) == sorted(stored)
    assert len(trained_model.metadata_[DIGESTS_KEY]) <= 11 * len(train_msgs)  # 8 bytes in base64 each


def test_evaluating_on_the_training_folder_says_training_data(trained_model, train_msgs):
    result = evaluate(trained_model, train_msgs, mistakes=0)
    assert result["evaluated_on"] == "training_data"
    assert result["training_overlap"]["n"] == len(train_msgs) == result["n"]
    assert result["training_overlap"]["share"] == 1.0
    assert "accuracy" in result and "at_threshold" in result  # every earlier key is still there


def test_new_mail_is_held_out(trained_model, new_msgs):
    result = evaluate(trained_model, new_msgs, mistakes=0)
    assert result["evaluated_on"] == "held_out"
    assert result["training_overlap"] == {"n": 0, "share": 0.0, "method": "digests"}


def test_a_mix_is_partly_training_data(trained_model, train_msgs, new_msgs):
    mixed = list(train_msgs[:6]) + list(new_msgs)
    result = evaluate(trained_model, mixed, mistakes=0)
    assert result["evaluated_on"] == "partly_training_data"
    assert result["training_overlap"]["n"] == 6
    assert result["training_overlap"]["share"] == pytest.approx(6 / len(mixed))


def test_a_copy_with_other_line_endings_is_still_recognised(trained_model, train_msgs):
    crlf = [replace(m, text=m.text.replace("\n", "\r\n") + "\n\n") for m in train_msgs[:5]]
    result = evaluate(trained_model, crlf, mistakes=0)
    assert result["training_overlap"]["n"] == 5


def test_digests_survive_saving_and_loading(trained_model, train_msgs, new_msgs, tmp_path):
    path = save_model(trained_model, tmp_path / "m.skops")
    assert read_metadata(path)[DIGESTS_KEY] == trained_model.metadata_[DIGESTS_KEY]
    loaded = load_model(path)
    assert evaluate(loaded, train_msgs, mistakes=0)["evaluated_on"] == "training_data"
    assert evaluate(loaded, new_msgs, mistakes=0)["evaluated_on"] == "held_out"


def test_an_older_model_falls_back_to_the_fingerprint(trained_model, train_msgs):
    result = evaluate(_without_digests(trained_model), train_msgs, mistakes=0)
    assert result["evaluated_on"] == "training_data"
    assert result["training_overlap"] == {"n": len(train_msgs), "share": 1.0, "method": "fingerprint"}


def test_an_older_model_on_other_mail_says_unknown_rather_than_guess(trained_model, train_msgs, new_msgs):
    for msgs in (new_msgs, list(train_msgs[:-1])):
        result = evaluate(_without_digests(trained_model), msgs, mistakes=0)
        assert result["evaluated_on"] == "unknown"
        assert result["training_overlap"]["n"] is None and result["training_overlap"]["share"] is None


def test_the_report_says_training_data_not_held_out(trained_model, train_msgs, tmp_path):
    result = evaluate(trained_model, train_msgs, mistakes=0)
    result["protocol"] = "held-out"  # what the CLI has always passed
    fr = html.unescape(write_report(result, tmp_path / "fr.html", model=trained_model, lang="fr").read_text("utf-8"))
    assert "held-out" not in fr and "held_out" not in fr
    assert "données d'entraînement (100\u202f% des messages déjà vus" in fr
    assert 'class="note warn"' in fr
    en = write_report(result, tmp_path / "en.html", model=trained_model, lang="en").read_text(encoding="utf-8")
    assert "training data (100% of the messages seen at training)" in en
    assert "données" not in en


def test_the_report_on_new_mail_has_no_warning(trained_model, new_msgs, tmp_path):
    result = evaluate(trained_model, new_msgs, mistakes=0)
    result["protocol"] = "held-out"
    fr = html.unescape(write_report(result, tmp_path / "fr.html", model=trained_model, lang="fr").read_text("utf-8"))
    assert "courrier non vu à l'entraînement" in fr and 'class="note warn"' not in fr
    en = write_report(result, tmp_path / "en.html", model=trained_model, lang="en").read_text(encoding="utf-8")
    assert "held-out mail (not seen at training)" in en


def test_the_report_of_a_partly_seen_set_gives_the_share(trained_model, train_msgs, new_msgs, tmp_path):
    mixed = list(train_msgs[:6]) + list(new_msgs)
    result = evaluate(trained_model, mixed, mistakes=0)
    fr = html.unescape(write_report(result, tmp_path / "fr.html", lang="fr").read_text(encoding="utf-8"))
    assert f"33\u202f% des messages, 6 sur {len(mixed)}" in fr
