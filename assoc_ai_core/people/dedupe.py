"""Probable duplicate people, within and across sources — merge *proposals* for a person to confirm.

Record linkage with the ``recordlinkage`` toolkit: candidate pairs come from
blocking (same e-mail, same phone number, same postcode, or neighbouring
names in sorted order), then names are compared with Jaro–Winkler and the
other fields exactly, after cleaning (so ``06 12 34 56 78`` and
``+33612345678`` agree).  The score is the weighted share of agreement over
the fields both records fill in.  Nothing is ever merged here: the output
is a list of proposals with their score and the fields that agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.people.cleaning import clean_person, fold
from assoc_ai_core.records.people import Person

__all__ = ["find_duplicates", "MergeProposal", "WEIGHTS"]

WEIGHTS = {"last_name": 0.25, "first_name": 0.15, "email": 0.25, "phone": 0.2, "postcode": 0.05, "birth_year": 0.1}


@dataclass(frozen=True)
class MergeProposal:
    """Two records that are probably the same person; a human decides."""

    left: str
    right: str
    score: float
    agreement: dict[str, float] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Fields that agree (similarity ≥ 0.9)."""
        return [k for k, v in self.agreement.items() if v >= 0.9]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"left": self.left, "right": self.right, "score": round(self.score, 4),
                "agreement": {k: round(v, 3) for k, v in self.agreement.items()}, "reasons": self.reasons}


def _frame(persons: list[Person]) -> Any:
    import pandas as pd

    rows = []
    for p in persons:
        c, _ = clean_person(p)
        rows.append({
            "key": p.key,
            "last_name": fold(c.last_name) or None,
            "first_name": fold(c.first_name) or None,
            "email": c.email or None,
            "phone": c.phone or None,
            "postcode": c.postcode or None,
            "birth_year": str(c.birth_year) if c.birth_year else None,
            "sort_key": (fold(c.last_name) + " " + fold(c.first_name)).strip() or None,
        })
    return pd.DataFrame(rows)


def find_duplicates(persons: Iterable[Person], *, threshold: float = 0.8, window: int = 5) -> list[MergeProposal]:
    """Pairs of people scoring at least ``threshold`` (0–1), best first; never merges anything."""
    try:
        import pandas as pd
        import recordlinkage
    except ImportError as exc:
        raise DataError(
            tr("La recherche de doublons demande recordlinkage : pip install 'assoc-ai-core[people]'.",
               "Finding duplicates needs recordlinkage: pip install 'assoc-ai-core[people]'.")
        ) from exc
    people = list(persons)
    if len(people) < 2:
        return []
    df = _frame(people)
    candidates = None
    for column in ("email", "phone", "postcode"):
        sub = df[df[column].notna()]
        if len(sub) < 2:
            continue
        indexer = recordlinkage.Index()
        indexer.block(column)
        pairs = indexer.index(sub)
        candidates = pairs if candidates is None else candidates.union(pairs)
    named = df[df["sort_key"].notna()]
    if len(named) >= 2:
        indexer = recordlinkage.Index()
        indexer.sortedneighbourhood("sort_key", window=window if window % 2 else window + 1)
        pairs = indexer.index(named)
        candidates = pairs if candidates is None else candidates.union(pairs)
    if candidates is None or not len(candidates):
        return []
    compare = recordlinkage.Compare()
    compare.string("last_name", "last_name", method="jarowinkler", label="last_name", missing_value=float("nan"))
    compare.string("first_name", "first_name", method="jarowinkler", label="first_name", missing_value=float("nan"))
    for column in ("email", "phone", "postcode", "birth_year"):
        compare.exact(column, column, label=column, missing_value=float("nan"))
    features = compare.compute(candidates, df)
    weights = pd.Series(WEIGHTS)[features.columns]
    present = features.notna()
    weighted = (features.fillna(0.0) * weights).sum(axis=1)
    covered = (present * weights).sum(axis=1)
    score = (weighted / covered.where(covered > 0)).fillna(0.0)
    # agreement on too few fields (a shared postcode alone) is not evidence
    score = score.where(covered >= 0.35, 0.0)
    # a shared e-mail or phone with a clearly different first name is a household, not a duplicate
    household = (features["first_name"] < 0.7) & ((features["email"] == 1) | (features["phone"] == 1))
    score = score.where(~household, score * 0.6)
    out = []
    for (i, j), s in score[score >= threshold].items():
        a, b = df.at[i, "key"], df.at[j, "key"]
        row = features.loc[(i, j)]
        agreement = {k: float(v) for k, v in row.items() if v == v}
        left, right = sorted((a, b))
        out.append(MergeProposal(left=left, right=right, score=float(s), agreement=agreement))
    out.sort(key=lambda m: (-m.score, m.left, m.right))
    return out
