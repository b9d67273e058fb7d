"""Which mail the labelling page asks about next: uncertain first, diverse, never twice, reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assoc_ai_core.api import (
    choose_mail,
    expected_auto_share,
    labels_csv_text,
    model_ready,
    read_labels_csv,
    text_space,
    train,
    uncertainty,
)

MEMBERSHIP = [f"adhésion cotisation annuelle carte membre {w}" for w in ("2025", "couple", "tarif", "réduit", "renouveler")]
FESTIVAL = [f"festival stand programme concert {w}" for w in ("samedi", "dimanche", "scène", "horaires", "billets")]
PRESS = ["journaliste article interview presse reportage"]


def _flat(n: int, k: int = 3) -> np.ndarray:
    """Confident predictions for ``n`` mails (margin 0.8)."""
    p = np.full((n, k), 0.1 / (k - 1))
    p[:, 0] = 0.9
    return p


def test_uncertainty_is_one_minus_margin() -> None:
    proba = np.array([[0.5, 0.5, 0.0], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    assert np.allclose(uncertainty(proba), [1.0, 0.15, 0.8])


def test_the_most_uncertain_mail_comes_first() -> None:
    texts = MEMBERSHIP + FESTIVAL
    proba = _flat(len(texts))
    proba[7] = [0.34, 0.33, 0.33]  # the model cannot tell
    proba[2] = [0.6, 0.3, 0.1]  # unsure, less so
    picked = choose_mail(text_space(texts), set(), proba=proba, k=2)
    assert picked == [7, 2]


def test_a_near_copy_of_the_chosen_mail_waits_behind_a_different_one() -> None:
    texts = [MEMBERSHIP[0], MEMBERSHIP[0] + " merci", PRESS[0]] + FESTIVAL
    proba = _flat(len(texts))
    proba[0] = [0.34, 0.33, 0.33]
    proba[1] = [0.34, 0.33, 0.33]  # as uncertain, but says the same thing as mail 0
    proba[2] = [0.45, 0.35, 0.2]  # a little less uncertain, about something else
    assert choose_mail(text_space(texts), set(), proba=proba, k=2) == [0, 2]


def test_without_a_model_the_first_questions_cover_the_kinds_of_mail() -> None:
    texts = MEMBERSHIP + FESTIVAL
    space = text_space(texts)
    first_two = choose_mail(space, set(), k=2)
    assert {i < 5 for i in first_two} == {True, False}, first_two
    # a festival mail was labelled: the next question is about membership, and the reverse
    assert choose_mail(space, {6}, k=1)[0] < 5
    assert choose_mail(space, {1}, k=1)[0] >= 5


def test_a_mail_seen_is_never_asked_again_and_every_other_is_asked_once() -> None:
    texts = MEMBERSHIP + FESTIVAL + PRESS
    seen = {0, 4, 10}
    for proba in (None, _flat(len(texts))):
        picked = choose_mail(text_space(texts), seen, proba=proba, k=50)
        assert sorted(picked) == sorted(set(range(len(texts))) - seen)
        assert len(picked) == len(set(picked))
    assert choose_mail(text_space(texts), set(range(len(texts))), k=3) == []


def test_the_choice_is_reproducible_with_a_seed_and_the_seed_breaks_ties() -> None:
    texts = MEMBERSHIP + FESTIVAL
    proba = _flat(len(texts))
    space = text_space(texts)
    assert choose_mail(space, {3}, proba=proba, k=4, seed=7) == choose_mail(space, {3}, proba=proba, k=4, seed=7)
    same = text_space(["bonjour"] * 12)  # twelve identical mails: only the seed tells them apart
    firsts = {choose_mail(same, set(), k=1, seed=s)[0] for s in range(10)}
    assert len(firsts) > 1


def test_empty_mails_do_not_break_the_choice() -> None:
    space = text_space(["", "", ""])
    assert sorted(choose_mail(space, set(), k=3)) == [0, 1, 2]


@pytest.mark.parametrize(("labels", "ready"), [
    ([], False), (["A", "A", "A"], False), (["A", "A", "B"], False), (["A", "B", "A", "B"], True),
    (["A", "A", "B", "B", "C"], True), (["A", "", "A", "B", "B"], True),
])
def test_a_model_is_trained_only_from_two_categories_of_two(labels: list[str], ready: bool) -> None:
    assert model_ready(labels) is ready


def test_the_expected_share_is_the_models_cross_validated_estimate() -> None:
    texts = MEMBERSHIP * 2 + FESTIVAL * 2
    model = train(texts, ["Adhésion"] * 10 + ["Événement"] * 10)
    share = expected_auto_share(model)
    assert share == pytest.approx(model.metadata_["expected_auto_share"])
    assert 0.0 <= share <= 1.0
    assert expected_auto_share(object()) == 0.0


def test_the_labels_csv_round_trips_and_ignores_rows_without_category() -> None:
    rows = [{"key": "<a@x>", "path": "0001.eml", "category": "Adhésion", "labelled_at": "2026-01-01T00:00:00+00:00"},
            {"key": "<b@x>", "path": "d/0002.eml", "category": "Presse, radio", "labelled_at": "t"}]
    text = labels_csv_text(rows)
    assert text.splitlines()[0] == "key,path,category,labelled_at"
    assert read_labels_csv(text) == rows
    assert read_labels_csv(text + ",,,\n<c@x>,,,\n") == rows


def test_the_labels_of_the_csv_reach_the_messages_of_the_folder(tmp_path: Path) -> None:
    from assoc_ai_core.api import apply_labels, load_dataset

    (tmp_path / "Presse").mkdir()
    (tmp_path / "a.eml").write_bytes(b"Message-ID: <a@x>\nSubject: adhesion\n\nje veux adherer\n")
    (tmp_path / "b.eml").write_bytes(b"Subject: festival\n\nle stand du festival\n")
    (tmp_path / "c.eml").write_bytes(b"Subject: autre\n\nrien\n")
    (tmp_path / "Presse" / "d.eml").write_bytes(b"Subject: article\n\njournaliste\n")
    rows = read_labels_csv("key,path,category,labelled_at\n"
                           "a@x,a.eml,Evenement,t\na@x,a.eml,Adhesion,t\n,b.eml,Evenement,t\n")
    messages = load_dataset(tmp_path).messages
    assert {m.source: m.label for m in messages}[str(tmp_path / "a.eml")] is None
    labelled = {Path(str(m.source)).name: m.label for m in apply_labels(messages, tmp_path, rows)}
    assert labelled == {"a.eml": "Adhesion", "b.eml": "Evenement", "c.eml": None, "d.eml": "Presse"}
