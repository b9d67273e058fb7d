"""Explanations are computed from the model's own weights."""

from __future__ import annotations

import pytest

from assoc_ai_core import explain, explain_model
from assoc_ai_core.sources import load_dataset


@pytest.fixture(scope="module")
def new_messages(example_mailbox):
    return [m for m in load_dataset(example_mailbox / "new", labelled=False).messages if m.error is None]


def test_explanation_is_faithful_to_the_logit_gap(trained_model, new_messages):
    classes = [str(c) for c in trained_model.classes_]
    for m in new_messages:
        exp = explain(trained_model, m, top_k=10_000)
        z = trained_model.decision_function(trained_model.transform_clean([m]))[0]
        gap = z[classes.index(exp.label)] - z[classes.index(exp.runner_up)]
        assert exp.total + exp.bias == pytest.approx(gap, abs=1e-3)
        listed = sum(w for _, w in exp.toward) + sum(w for _, w in exp.against)
        assert listed == pytest.approx(exp.total, abs=1e-3)  # every push is listed once


def test_explanation_signs_and_order(trained_model, new_messages):
    exp = explain(trained_model, new_messages[0], top_k=5)
    assert all(w > 0 for _, w in exp.toward) and all(w < 0 for _, w in exp.against)
    assert [abs(w) for _, w in exp.toward] == sorted((abs(w) for _, w in exp.toward), reverse=True)
    assert len(exp.toward) <= 5


def test_sentence_in_french_and_english(trained_model, new_messages):
    fr = explain(trained_model, new_messages[0], lang="fr")
    en = explain(trained_model, new_messages[0], lang="en")
    assert fr.sentence.startswith(f"Classé {fr.label} (") and "sinon :" in fr.sentence and "«" in fr.sentence
    assert en.sentence.startswith(f"Classified {en.label} (") and "otherwise:" in en.sentence
    assert fr.to_dict()["toward"][0]["term"] == fr.toward[0][0]


def test_model_top_terms(trained_model):
    top = explain_model(trained_model, top_k=10)
    assert set(top) == {str(c) for c in trained_model.classes_}
    words = {t for t, _ in top["Adhesion"]}
    assert words & {"adhésion", "cotisation", "adhérer", "carte", "adhérent"}
    for terms in top.values():
        weights = [w for _, w in terms]
        assert weights == sorted(weights, reverse=True)
