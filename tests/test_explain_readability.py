"""Explanations a volunteer can read: signs explained, strongest reasons named, contractions whole, no names."""

from __future__ import annotations

import re

from sklearn.feature_extraction.text import CountVectorizer

from assoc_ai_core import explain
from assoc_ai_core.mail.explain import Explanation, reason_lines, sentence
from assoc_ai_core.mail.stopwords import ENGLISH_STOP_WORDS, WORD_TOKEN


def _exp(**kw) -> Explanation:
    base = dict(label="Adhesion", probability=0.8, runner_up="Evenement", runner_up_probability=0.1,
                toward=[("adhésion", 1.34), ("cotisation", 0.8)], against=[("concert", -1.2), ("salle", -0.5)])
    return Explanation(**{**base, **kw})


def test_negative_weights_are_said_to_pull_toward_the_runner_up():
    fr = reason_lines(_exp(), lang="fr")
    assert fr[0].startswith("Raisons pour Adhesion plutôt que Evenement") and "adhésion (+1,34)" in fr[0]
    assert "vers Evenement" in fr[1] and "contre Adhesion" in fr[1] and "concert (-1,20)" in fr[1]
    en = reason_lines(_exp(lang="en"), lang="en")
    assert "toward Evenement instead" in en[1] and "against Adhesion" in en[1] and "concert (-1.20)" in en[1]
    assert any("Weights" in line for line in en)


def test_one_class_only_has_a_single_line():
    assert reason_lines(_exp(runner_up="Adhesion", against=[]), lang="en") == ["Reasons for Adhesion: adhésion (+1.34), cotisation (+0.80)"]


def test_the_sentence_names_the_strongest_reasons_not_weak_ones():
    exp = _exp(toward=[("⟨expéditeur déjà vu⟩", 2.0), ("adhésion", 0.9), ("pour", 0.6), ("salle", 0.1)])
    s = sentence(exp, lang="fr")
    assert "surtout à cause de expéditeur déjà vu, « adhésion »" in s
    assert "salle" not in s  # a twentieth of the strongest push is no main reason
    en = sentence(_exp(toward=[("⟨a link⟩", 2.0), ("membership", 1.5)], lang="en"), lang="en")
    assert "mainly because of a link, \u201cmembership\u201d" in en


def test_english_contractions_stay_whole_words():
    analyse = CountVectorizer(token_pattern=WORD_TOKEN, stop_words=sorted(ENGLISH_STOP_WORDS)).build_analyzer()
    assert analyse("I don't want it and we can't come") == ["don't", "want", "can't", "come"]
    # French elision still splits: "l'adhésion" is the word "adhésion".
    assert CountVectorizer(token_pattern=WORD_TOKEN).build_analyzer()("l'adhésion qu'il") == ["adhésion", "qu", "il"]
    s = sentence(_exp(toward=[("don't", 1.0), ("cancel", 0.9)], lang="en"), lang="en")
    assert "\u201cdon't\u201d" in s


def test_no_first_name_or_contract_number_in_a_message_explanation(trained_model):
    text = ("Bonjour Lucie,\nje suis Bernard Lacombe, adhérent n° 48213 (contrat CT-2023-0456), "
            "je voudrais renouveler mon adhésion.\nCordialement,\nBernard Lacombe")
    exp = explain(trained_model, text, top_k=10_000)
    terms = " ".join(t for t, _ in exp.toward + exp.against).lower()
    for gone in ("lucie", "bernard", "lacombe", "48213", "0456"):
        assert not re.search(rf"\b{gone}\b", terms), terms
    assert "⟨un nom de personne⟩" in terms or "⟨un numéro" in terms
