"""Explanations are computed from the model's own weights."""

from __future__ import annotations

import numpy as np
import pytest

from assoc_ai_core import explain, explain_model
from assoc_ai_core.mail.sources import load_dataset


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


def test_batched_numpy_sharing_gives_the_word_by_word_explanation(trained_model, new_messages, monkeypatch):
    # The batch path finds each word's character n-grams with the vectorizer's numpy index; the plain
    # path builds them as strings.  Both must give every word the same push.
    import sys

    from assoc_ai_core.mail.explain import _layout, explain_many

    monkeypatch.setattr(sys.modules["assoc_ai_core.mail.explain"], "_GRAMS_BATCH", 3)  # several blocks of words
    fast = explain_many(trained_model, new_messages, top_k=1000)
    layout = _layout(trained_model.pipeline_.named_steps["features"])
    assert layout.char_index is not None, "the example model must use the numpy path"
    monkeypatch.setattr(layout, "char_index", None)
    slow = explain_many(trained_model, new_messages, top_k=1000)
    for a, b in zip(fast, slow, strict=True):
        assert (a.label, a.runner_up, a.sentence) == (b.label, b.runner_up, b.sentence)
        assert [t for t, _ in a.toward + a.against] == [t for t, _ in b.toward + b.against]
        assert np.allclose([w for _, w in a.toward + a.against], [w for _, w in b.toward + b.against], atol=1e-12)
        assert abs(a.total - b.total) < 1e-12


def test_placeholders_are_shown_as_what_they_stand_for(trained_model):
    text = "Offre spéciale livraison gratuite : https://promo.example.com/offre et https://promo.example.com/b"
    for lang, shown in (("fr", "⟨un lien⟩"), ("en", "⟨a link⟩")):
        exp = explain(trained_model, text, top_k=10_000, lang=lang)
        terms = [t for t, _ in exp.toward + exp.against]
        assert shown in terms and "url" not in [t.lower() for t in terms]
        listed = sum(w for _, w in exp.toward) + sum(w for _, w in exp.against)
        assert listed == pytest.approx(exp.total, abs=1e-3)  # renaming merges pushes, never drops one
    # A word that only looks like a placeholder is left as written.
    exp = explain(trained_model, "Quelle est l'url de votre site ?", top_k=10_000)
    assert not any(t.startswith("⟨un lien") for t, _ in exp.toward + exp.against)


def test_sentence_names_each_content_word_once():
    from assoc_ai_core.mail.explain import Explanation, sentence

    exp = Explanation(label="Autre", probability=0.9, runner_up="Evenement", runner_up_probability=0.05,
                      toward=[("jusqu", 0.9), ("jusqu'à", 0.8), ("l’adhésion", 0.7), ("adhésion", 0.6),
                              ("⟨un lien⟩", 0.5), ("d'adhérent", 0.4), ("offre", 0.3), ("carte", 0.2)])
    because = sentence(exp, lang="fr").split("surtout à cause de ")[1].split(" ; sinon")[0]
    # The link is a stronger reason than "d'adhérent": named in its place, as what it is; "carte" (0.2,
    # under a quarter of the strongest push) is no main reason.
    assert because == "« l’adhésion », un lien, « d'adhérent », « offre »"
