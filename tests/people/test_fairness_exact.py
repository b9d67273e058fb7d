"""Fairness warnings judge chance with an exact test on the counts behind each rate."""

from __future__ import annotations

import numpy as np
import pytest

from assoc_ai_core.people.fairness import fairness_report


def _two_of_two_against_none_of_two() -> tuple[np.ndarray, np.ndarray, dict[str, list[str]]]:
    """Two groups of 25; each has 2 people who really gave: both found in F, neither in M; no one else selected."""
    y = np.zeros(50, dtype=int)
    y[[0, 1, 25, 26]] = 1
    p = np.zeros(50)
    p[[0, 1]] = 0.9
    return y, p, {"gender": ["F"] * 25 + ["M"] * 25}


def test_two_of_two_against_none_of_two_is_not_called_beyond_chance():
    y, p, attrs = _two_of_two_against_none_of_two()
    report = fairness_report(y, p, attrs, threshold=0.5, bound=0.1, min_group_size=20, lang="en")
    [warning] = report.warnings  # the other gaps (2 of 25) stay under the bound
    assert "beyond" not in warning and "p = 0.33" in warning and "'F' 2 of 2, 'M' 0 of 2" in warning
    assert "chance can produce such a gap" in warning
    gender = report.attributes[0]
    assert gender.gaps["true_positive_rate"] == 1.0
    test = gender.chance["true_positive_rate"]
    assert test["high_counts"] == [2, 2] and test["low_counts"] == [0, 2]
    assert test["p_value"] == pytest.approx(1 / 3)
    fr = fairness_report(y, p, attrs, threshold=0.5, lang="fr").warnings[0]
    assert "au-delà" not in fr and "p = 0,33" in fr and "test exact de Fisher" in fr
    assert report.to_dict()["attributes"]["gender"]["chance"]["true_positive_rate"]["test"] == "fisher_exact"


def test_a_large_gap_on_many_people_is_flagged_with_its_corrected_p_value():
    rng = np.random.default_rng(1)
    n = 300
    group = np.array(["A", "B", "C"] * (n // 3))
    y = rng.integers(0, 2, n)
    p = np.where(group == "A", 0.9, 0.1) * y + rng.uniform(0, 0.3, n)
    report = fairness_report(y, p, {"department": group}, threshold=0.5, lang="en")
    dept = report.attributes[0]
    assert dept.chance["true_positive_rate"]["pairs"] == 3
    assert dept.chance["true_positive_rate"]["p_corrected"] < 0.001
    assert any("beyond what chance usually explains" in w and "p < 0.001" in w and "corrected for 3 pairs" in w
               for w in report.warnings)


def test_groups_below_the_minimum_are_never_tested():
    y, p, _ = _two_of_two_against_none_of_two()
    report = fairness_report(y, p, {"gender": ["F"] * 25 + ["M"] * 25}, min_group_size=30)
    assert report.attributes[0].chance == {} and report.warnings == []
