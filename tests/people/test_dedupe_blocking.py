"""Dedupe at scale: bounded candidate pairs however people cluster, typo twins still found, namesakes never certain."""

from __future__ import annotations

import random

import pytest

from assoc_ai_core.records.people import Person

pytest.importorskip("recordlinkage")

_LAST = ["Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent",
         "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard"]
_FIRST = ["Marie", "Jean", "Pierre", "Michel", "Anne", "Nathalie", "Isabelle", "Jacques", "Philippe", "Sylvie",
          "Catherine", "Françoise", "Nicolas", "Christophe", "Sophie", "Julien", "Camille", "Léa", "Hugo", "Lucas"]


def _typo(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(name) - 1)
    return name[:i] + name[i + 1] + name[i] + name[i + 2:]  # two letters swapped, the commonest slip


@pytest.fixture(scope="module")
def one_postcode() -> tuple[list[Person], set[tuple[str, str]]]:
    """5,000 people of one postcode (many namesakes), 25 of them entered twice with a typo in the last name."""
    rng = random.Random(17)
    people, truth = [], set()
    for i in range(5000):
        last = rng.choice(_LAST) + rng.choice(["", "", "-" + rng.choice(_LAST)])
        first = rng.choice(_FIRST)
        email = f"p{i}@exemple.fr" if rng.random() < 0.6 else ""
        phone = f"06{rng.randrange(10**8):08d}" if rng.random() < 0.5 else ""
        year = rng.randrange(1930, 2005) if rng.random() < 0.5 else None
        people.append(Person("crm", f"{i}", first_name=first, last_name=last, email=email, phone=phone,
                             postcode="75015", birth_year=year))
    for i in rng.sample(range(5000), 25):
        p = people[i]
        twin = Person("files", f"d{i}", first_name=p.first_name, last_name=_typo(p.last_name, rng),
                      email=p.email, phone=p.phone if not p.email else "", postcode="75015",
                      birth_year=p.birth_year if (p.email or p.phone) else rng.randrange(1930, 2005))
        if p.email or p.phone:
            people.append(twin)
            truth.add(tuple(sorted((p.key, twin.key))))
    return people, truth


def test_candidate_pairs_are_bounded_in_a_crowded_postcode(one_postcode) -> None:
    from assoc_ai_core.people.dedupe import BLOCK_KEYS, _frame, candidate_pairs

    people, _ = one_postcode
    n = len(people)
    pairs = candidate_pairs(_frame(people), window=5, block_window=20)
    bound = n * (len(BLOCK_KEYS) * 20 + 5)
    assert len(pairs) <= bound
    assert len(pairs) < n * (n - 1) // 2 // 50  # all pairs would be ~12.5 million
    assert len(set(zip(*pairs.codes, strict=True))) == len(pairs)  # each pair once


def test_typo_twins_are_still_found(one_postcode) -> None:
    from assoc_ai_core.people.dedupe import find_duplicates

    people, truth = one_postcode
    assert len(truth) >= 15
    found = {(m.left, m.right) for m in find_duplicates(people)}
    assert truth <= found


def test_namesakes_with_nothing_else_in_common_are_never_certain(one_postcode) -> None:
    from assoc_ai_core.people.dedupe import CERTAIN, NAME_ONLY_CAP, find_duplicates

    people, _ = one_postcode
    a = Person("crm", "h1", first_name="Jeanne", last_name="Dupont-Aignan")
    b = Person("files", "h2", first_name="JEANNE", last_name="Dupont Aignan")
    proposals = find_duplicates([*people, a, b], threshold=0.5)
    pair = next(m for m in proposals if {m.left, m.right} == {a.key, b.key})
    assert pair.score == pytest.approx(NAME_ONLY_CAP) and pair.score < CERTAIN
    assert "name_only" in pair.reasons and pair.note
    assert pair.to_dict()["note"] == pair.note
    name_only = [m for m in proposals if m.name_only]
    assert name_only and all(m.score < CERTAIN for m in name_only)
    for m in proposals:  # nothing beyond the name agrees → flagged and capped
        if not any(m.agreement.get(k) == 1.0 for k in ("email", "phone", "birth_year", "postcode")):
            assert m.name_only and m.score <= NAME_ONLY_CAP


def test_same_name_with_a_shared_phone_can_still_be_certain() -> None:
    from assoc_ai_core.people.dedupe import CERTAIN, find_duplicates

    a = Person("crm", "1", first_name="Paul", last_name="Durand", phone="06 12 34 56 78")
    b = Person("files", "2", first_name="Paul", last_name="Durand", phone="+33612345678")
    (m,) = find_duplicates([a, b])
    assert m.score >= CERTAIN and not m.name_only and "phone" in m.reasons


def test_a_huge_shared_email_block_stays_bounded() -> None:
    from assoc_ai_core.people.dedupe import _frame, candidate_pairs

    people = [Person("crm", str(i), first_name=f"P{i}", last_name=f"N{i:05d}", email="contact@asso.fr")
              for i in range(3000)]
    assert len(candidate_pairs(_frame(people), window=5, block_window=10)) <= 3000 * (10 + 2 * 2)
