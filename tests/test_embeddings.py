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
