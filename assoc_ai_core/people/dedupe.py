"""Probable duplicate people, within and across sources — merge *proposals* for a person to confirm.

Record linkage with the ``recordlinkage`` toolkit's comparisons.  Candidate
pairs come from several blocking keys — same e-mail, same phone number,
same postcode with the same first letters of the last name or of the first
name — and from two sorted neighbourhoods (people ordered by "last first"
and by "first last" name, so a typo at the start of either name still
meets its twin).  Inside a block, people are ordered by name and only those
within ``window`` places of each other are paired: a block of 5,000 people
sharing a postcode gives at most 5,000 × ``window`` pairs, not 12.5 million.

Names are compared with Jaro–Winkler and the other fields exactly, after
cleaning (so ``06 12 34 56 78`` and ``+33612345678`` agree).  The score is
the weighted share of agreement over the fields both records fill in.  Two
records whose names agree and nothing else does (no e-mail, phone, birth
year or postcode in common) are never *certain*: homonyms are common, so
their score is capped at :data:`NAME_ONLY_CAP`, below :data:`CERTAIN`, and
``name_only`` is added to their reasons.  Nothing is ever merged here: the
output is a list of proposals with their score and the fields that agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.people.cleaning import clean_person, fold
from assoc_ai_core.records.people import Person

__all__ = ["find_duplicates", "candidate_pairs", "MergeProposal", "WEIGHTS", "CERTAIN", "NAME_ONLY_CAP", "BLOCK_KEYS"]

WEIGHTS = {"last_name": 0.25, "first_name": 0.15, "email": 0.25, "phone": 0.2, "postcode": 0.05, "birth_year": 0.1}
CERTAIN = 0.95  # from here a proposal reads as a sure duplicate; a reviewer may accept such ones in bulk
NAME_ONLY_CAP = 0.85  # a name shared with nothing else is a lead to check, never a certainty
BLOCK_KEYS = ("email", "phone", "postcode_last", "postcode_first")
_EVIDENCE = ("email", "phone", "birth_year", "postcode")  # fields beyond the name that can confirm a match
_COMPARE_CHUNK = 500_000  # pairs compared at once: bounds memory on a million people


@dataclass(frozen=True)
class MergeProposal:
    """Two records that are probably the same person; a human decides."""

    left: str
    right: str
    score: float
    agreement: dict[str, float] = field(default_factory=dict)

    name_only: bool = False  # the names agree and nothing else does: score capped at NAME_ONLY_CAP

    @property
    def reasons(self) -> list[str]:
        """Fields that agree (similarity ≥ 0.9), then ``name_only`` when nothing but the name does."""
        return [k for k, v in self.agreement.items() if v >= 0.9] + (["name_only"] if self.name_only else [])

    @property
    def note(self) -> str:
        """Why the score was capped, for the person who decides (empty when it was not)."""
        if not self.name_only:
            return ""
        return tr("Seul le nom concorde (ni courriel, ni téléphone, ni année de naissance, ni code postal) : "
                  "des homonymes sont possibles, à vérifier.",
                  "Only the name agrees (no e-mail, phone, birth year or postcode): they may be namesakes, "
                  "check before merging.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"left": self.left, "right": self.right, "score": round(self.score, 4),
                "agreement": {k: round(v, 3) for k, v in self.agreement.items()}, "reasons": self.reasons,
                "note": self.note}


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
            "reverse_key": (fold(c.first_name) + " " + fold(c.last_name)).strip() or None,
        })
    df = pd.DataFrame(rows)
    for name, column in (("postcode_last", "last_name"), ("postcode_first", "first_name")):
        df[name] = df["postcode"] + "|" + df[column].str[:2]  # missing postcode or name: no key
    return df


def _windowed_pairs(df: Any, key: str | None, order_by: str, reach: int) -> Any:
    """Pairs of rows sharing ``key`` (all rows when None) that sit at most ``reach`` places apart once sorted
    by ``order_by``: every pair of a block up to ``reach + 1`` people, a bounded neighbourhood in bigger ones."""
    import numpy as np
    import pandas as pd

    mask = df[order_by].notna() if key is None else df[key].notna()
    rows = np.flatnonzero(mask.to_numpy())
    if len(rows) < 2:
        return np.empty((0, 2), dtype=np.int64)
    keys = np.zeros(len(rows), dtype=np.int64) if key is None else pd.factorize(df[key].to_numpy()[rows])[0]
    names = pd.factorize(df[order_by].fillna("").to_numpy()[rows], sort=True)[0]
    # twins with the same name end up side by side with the records most likely to confirm them
    births = pd.factorize(df["birth_year"].fillna("").to_numpy()[rows], sort=True)[0]
    places = pd.factorize(df["postcode"].fillna("").to_numpy()[rows], sort=True)[0]
    order = np.lexsort((places, births, names, keys))
    sorted_rows, sorted_keys = rows[order], keys[order]
    found = []
    for k in range(1, min(reach, len(rows) - 1) + 1):
        same = sorted_keys[:-k] == sorted_keys[k:]
        found.append(np.stack([sorted_rows[:-k][same], sorted_rows[k:][same]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def candidate_pairs(df: Any, *, window: int = 5, block_window: int = 20) -> Any:
    """The candidate pairs of the person frame ``df`` (rows as built for :func:`find_duplicates`), a MultiIndex.

    ``window``: width of the two sorted neighbourhoods on names (each row meets ``window // 2`` rows after it).
    ``block_window``: the most people one person is paired with inside one blocking key.
    The count is at most ``len(df) × (len(BLOCK_KEYS) × block_window + window)``, however the people cluster.
    """
    import numpy as np
    import pandas as pd

    found = [_windowed_pairs(df, key, "sort_key", block_window) for key in BLOCK_KEYS]
    half = max(1, window // 2)
    found += [_windowed_pairs(df, None, "sort_key", half), _windowed_pairs(df, None, "reverse_key", half)]
    pairs = np.concatenate(found)
    if not len(pairs):
        return pd.MultiIndex.from_arrays([[], []])
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    codes = np.unique(lo.astype(np.int64) * len(df) + hi)
    return pd.MultiIndex.from_arrays([codes // len(df), codes % len(df)])


def find_duplicates(persons: Iterable[Person], *, threshold: float = 0.8, window: int = 5,
                    block_window: int = 20) -> list[MergeProposal]:
    """Pairs of people scoring at least ``threshold`` (0–1), best first; never merges anything.

    ``window`` and ``block_window`` bound the candidate pairs (see :func:`candidate_pairs`).
    """
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
    candidates = candidate_pairs(df, window=window, block_window=block_window)
    if not len(candidates):
        return []
    compare = recordlinkage.Compare()
    compare.string("last_name", "last_name", method="jarowinkler", label="last_name", missing_value=float("nan"))
    compare.string("first_name", "first_name", method="jarowinkler", label="first_name", missing_value=float("nan"))
    for column in ("email", "phone", "postcode", "birth_year"):
        compare.exact(column, column, label=column, missing_value=float("nan"))
    columns = list(WEIGHTS)
    out = []
    for start in range(0, len(candidates), _COMPARE_CHUNK):
        features = compare.compute(candidates[start:start + _COMPARE_CHUNK], df[columns])
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
        name_only = ~(features[list(_EVIDENCE)] == 1).any(axis=1)
        score = score.where(~name_only, score.clip(upper=NAME_ONLY_CAP))
        kept = (score >= threshold).to_numpy()
        keys, names = df["key"].to_numpy(), list(features.columns)
        for (i, j), s, row, alone in zip(features.index[kept], score.to_numpy()[kept], features.to_numpy()[kept],
                                         name_only.to_numpy()[kept], strict=True):
            agreement = {k: float(v) for k, v in zip(names, row, strict=True) if v == v}
            left, right = sorted((keys[i], keys[j]))
            out.append(MergeProposal(left=left, right=right, score=float(s), agreement=agreement,
                                     name_only=bool(alone)))
    out.sort(key=lambda m: (-m.score, m.left, m.right))
    return out
