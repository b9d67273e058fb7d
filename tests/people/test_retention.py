"""Retention report with FEP definitions, on a history whose answers are known by hand."""

from __future__ import annotations

from datetime import date

import pytest

from assoc_ai_core.errors import DataError
from assoc_ai_core.people.dataset import PeopleData
from assoc_ai_core.people.retention import retention_history, retention_report
from assoc_ai_core.records.people import Gift, Person


def _gift(pid: str, year: int, amount: float, month: int = 6) -> Gift:
    return Gift("t", f"{pid}-{year}-{month}", pid, amount, date(year, month, 1))


def _data() -> PeopleData:
    gifts = [
        _gift("repeat_up", 2022, 10), _gift("repeat_up", 2023, 50), _gift("repeat_up", 2024, 80),
        _gift("repeat_down", 2022, 10), _gift("repeat_down", 2023, 100), _gift("repeat_down", 2024, 40),
        _gift("repeat_lost", 2022, 10), _gift("repeat_lost", 2023, 30),
        _gift("new_kept", 2023, 20), _gift("new_kept", 2024, 20), _gift("new_kept", 2024, 5, month=12),
        _gift("new_lost", 2023, 15),
        _gift("back", 2021, 60), _gift("back", 2024, 70),
        _gift("gone", 2021, 99),
        _gift("fresh", 2024, 35),
        _gift("returned_prior", 2020, 5), _gift("returned_prior", 2023, 5),
    ]
    return PeopleData(persons=[Person("t", g.person_id) for g in gifts], gifts=gifts)


def test_fep_figures_by_hand():
    r = retention_report(_data(), year=2024)
    assert (r.donors_prior, r.donors_current) == (6, 5)
    assert (r.retained, r.new, r.recaptured, r.lapsed) == (3, 1, 1, 3)
    assert r.overall_retention == pytest.approx(3 / 6)
    assert r.new_donor_retention == pytest.approx(1 / 2)  # new_kept stayed, new_lost left
    assert r.repeat_retention == pytest.approx(2 / 3)  # gave in 2022 and 2023: repeat_up, repeat_down, repeat_lost
    assert r.recapture_rate == pytest.approx(1 / 2)  # lapsed before 2023: back (came back), gone
    assert (r.lapsed_new, r.lapsed_repeat) == (1, 2)
    assert r.amount_prior == 220 and r.amount_current == 250
    assert (r.gain_new, r.gain_recaptured, r.gain_upgraded) == (35, 70, 35)
    assert (r.loss_lapsed, r.loss_downgraded) == (50, 60)
    assert (r.upgraded, r.downgraded) == (2, 1)
    assert r.amount_retention == pytest.approx(145 / 220)


def test_gains_and_losses_always_balance(association):
    for r in retention_history(association, years=4):
        assert r.net_count == r.donors_current - r.donors_prior
        assert r.net_amount == pytest.approx(r.amount_current - r.amount_prior, abs=0.02)
        assert sum(b["donors_prior"] for b in r.by_band) == r.donors_prior
        assert 0 <= r.overall_retention <= 1


def test_rolling_window_and_text():
    r = retention_report(_data(), current_end="2025-01-01")
    assert r.current == ("2024-01-01", "2024-12-31") and r.retained == 3
    assert "Fidélisation globale 50" in r.to_text("fr")
    assert "Overall retention 50%" in r.to_text("en")
    assert r.to_dict()["net_amount"] == 30


def test_no_gifts_is_a_clear_error():
    with pytest.raises(DataError, match="Aucun don"):
        retention_report(PeopleData(persons=[Person("t", "1")]))
