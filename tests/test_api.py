"""The public API on plain lists of strings, and the package's public names."""

from __future__ import annotations

import importlib
from dataclasses import replace

import pytest

import assoc_ai_core
from assoc_ai_core import api

ADHESION = [
    "Bonjour, je voudrais adhérer à l'association pour cette année.",
    "Comment payer ma cotisation d'adhésion 2025 ?",
    "Nous souhaitons une adhésion couple, quel est le tarif ?",
    "Mon adhésion a-t-elle été enregistrée ? J'ai payé la cotisation.",
    "Puis-je adhérer en ligne et recevoir ma carte de membre ?",
    "Renouvellement de la cotisation annuelle de membre.",
]
EVENEMENT = [
    "Pouvons-nous tenir un stand au festival de juin ?",
    "Inscription à la visite guidée du samedi matin.",
    "Quel est le programme de la fête du village ?",
    "Reste-t-il des places pour la sortie au festival ?",
    "Je m'inscris à la conférence de jeudi soir.",
    "Horaires du concert et de la fête de fin d'année ?",
]


@pytest.fixture(scope="module")
def small_model() -> api.MailClassifier:
    return api.train(ADHESION + EVENEMENT, ["Adhésion"] * 6 + ["Événement"] * 6, target_precision=0.9)


def test_clean_keeps_the_request_and_drops_the_signature() -> None:
    text = "Bonjour,\nje souhaite adhérer.\n\nCordialement,\nMarie\n06 12 34 56 78"
    assert api.clean([text]) == ["Bonjour,\nje souhaite adhérer."]
    assert "<PHONE>" in api.clean([text], keep_signature=True, pseudonymize=True)[0]


def test_train_predict_explain_evaluate_end_to_end_on_strings(small_model: api.MailClassifier) -> None:
    assert list(small_model.classes_) == ["Adhésion", "Événement"]
    assert small_model.metadata_["n_train"] == 12 and small_model.metadata_["target_precision"] == 0.9

    preds = api.predict(small_model, ["comment adhérer et payer la cotisation ?", "programme du festival"])
    assert [p.label for p in preds] == ["Adhésion", "Événement"]
    for p in preds:
        assert 0.5 < p.probability <= 1 and p.decision in ("auto", "review")
        assert p.probability + p.runner_up_probability == pytest.approx(1.0)

    exp = api.explain(small_model, "comment adhérer et payer la cotisation ?", lang="en")
    assert exp.label == "Adhésion" and exp.runner_up == "Événement"
    assert exp.toward and all(w > 0 for _, w in exp.toward)
    assert exp.sentence.startswith("Classified Adhésion (")

    top = api.explain_model(small_model, top_k=5)
    assert set(top) == {"Adhésion", "Événement"} and all(len(terms) <= 5 for terms in top.values())

    result = api.evaluate(small_model, ["adhésion pour l'année", "stand à la fête"], ["Adhésion", "Événement"])
    assert result["n"] == 2 and result["accuracy"] == 1.0
    assert set(result["coverage_at_precision"]) == {"0.90", "0.95", "0.98"}


def test_train_needs_labelled_messages() -> None:
    with pytest.raises(assoc_ai_core.AssocAIError):
        api.train(["un message sans catégorie"], [""])


def test_an_explained_prediction_agrees_with_the_prediction(trained_model, example_mailbox) -> None:
    msgs = [m for m in api.load_dataset(example_mailbox / "new", labelled=False).messages if m.error is None]
    preds = api.predict(trained_model, msgs)
    sure = [(m, p) for m, p in zip(msgs, preds, strict=True) if p.decision == "auto"]
    assert sure, "the example model routes some new mail automatically"
    message, pred = sure[0]
    plain = api.explain(trained_model, message)
    assert api.explain_prediction(trained_model, message, pred) == plain

    # predict() sends a damaged message to review even when the model is sure: the explanation says why
    damaged = replace(message, defects=("CloseBoundaryNotFoundDefect",))
    review = api.predict(trained_model, [damaged])[0]
    assert review.decision == "review" and "CloseBoundaryNotFoundDefect" in review.reason
    exp = api.explain_prediction(trained_model, damaged, review)
    assert exp.decision == "review" and exp.sentence.endswith(f"({review.reason})")
    assert exp.sentence.startswith(plain.sentence.removesuffix("."))
    assert "à vérifier" in exp.sentence and exp.toward == plain.toward

    # unsure already: the explanation's own "to be checked" is enough, nothing is added
    unsure_message, unsure = next((m, p) for m, p in zip(msgs, preds, strict=True) if p.decision == "review")
    assert api.explain(trained_model, unsure_message).decision == "review"
    assert api.explain_prediction(trained_model, unsure_message, unsure) == api.explain(trained_model, unsure_message)


def test_reading_folders_through_the_api(example_mailbox) -> None:
    ds = api.load_dataset(example_mailbox / "train")
    assert isinstance(ds, api.Dataset) and len(ds.labelled()) == 84
    one = sorted((example_mailbox / "new").glob("*.eml"))[0]
    assert [m.source for m in api.iter_messages(one, labelled=False)] == [str(one)]
    older, newer = api.chronological_split(ds.labelled(), 0.25)
    assert len(older) + len(newer) == 84 and len(newer) == 21
    assert isinstance(api.semantic_available(), bool)


def test_every_public_name_resolves() -> None:
    for name in assoc_ai_core.__all__:
        assert getattr(assoc_ai_core, name) is not None, name
    # the lazy table and the written-out list agree, and dir() shows the public names
    assert set(assoc_ai_core.__all__) == {"__version__", *assoc_ai_core._EXPORTS}
    assert dir(assoc_ai_core) == sorted(assoc_ai_core.__all__)
    assert assoc_ai_core.MailClassifier is api.MailClassifier and assoc_ai_core.Explanation is api.Explanation
    assert issubclass(assoc_ai_core.AssocAIError, Exception)
    with pytest.raises(AttributeError):
        assoc_ai_core.not_a_public_name  # noqa: B018 - the attribute access is the test
    for name in api.__all__:
        assert getattr(api, name) is not None, name


@pytest.mark.parametrize("module", [
    "assoc_ai_core.api", "assoc_ai_core.mail", "assoc_ai_core.mail.cleaning", "assoc_ai_core.mail.embeddings",
    "assoc_ai_core.mail.evaluate", "assoc_ai_core.mail.explain", "assoc_ai_core.mail.html",
    "assoc_ai_core.mail.label_names", "assoc_ai_core.mail.metadata", "assoc_ai_core.mail.model",
    "assoc_ai_core.mail.ngrams", "assoc_ai_core.mail.parsing", "assoc_ai_core.mail.pseudonymise",
    "assoc_ai_core.mail.report", "assoc_ai_core.mail.search", "assoc_ai_core.mail.sources",
    "assoc_ai_core.mail.stopwords", "assoc_ai_core.mail.thresholds", "assoc_ai_core.cli.main",
    "assoc_ai_core.cli.mail", "assoc_ai_core.cli.common",
])
def test_modules_say_what_is_public(module: str) -> None:
    mod = importlib.import_module(module)
    assert isinstance(mod.__all__, list)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names {name}, which it does not define"
        assert not name.startswith("_"), f"{module}.__all__ names the private {name}"


def test_mail_cut_at_a_reading_cap_goes_to_a_person_with_the_reason(trained_model, example_mailbox) -> None:
    """Classified on what was read, but never routed alone: the reason names the cap."""
    raw = (example_mailbox / "new" / "0008.eml").read_bytes()  # a membership request the model routes on its own
    plain = api.predict(trained_model, [api.parse_message(raw)])[0]
    assert plain.decision == "auto"
    head, sep, body = raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.partition(b"\n\n")
    huge_subject = b"Subject: adh\xc3\xa9sion " + b"cotisation " * 400  # past the subject cap
    lines = [huge_subject if line.lower().startswith(b"subject:") else line for line in head.splitlines()]
    message = api.parse_message(b"\r\n".join(lines) + sep + body)
    assert "truncated:subject" in message.defects
    cut = api.predict(trained_model, [message])[0]
    assert cut.decision == "review" and "truncated:subject" in cut.reason
