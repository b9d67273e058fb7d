"""Fundraising figures that follow the FEP definitions: refunds, recurring gifts, complete and fiscal years."""

from __future__ import annotations

import dataclasses
import warnings
from datetime import date, datetime

import pytest
from click.testing import CliRunner

from assoc_ai_core.cli.people import people
from assoc_ai_core.people.dataset import PeopleData
from assoc_ai_core.people.features import build_features
from assoc_ai_core.people.retention import retention_history, retention_report
from assoc_ai_core.records.people import Gift, Person


def _g(pid: str, day: str, amount: float, **kw) -> Gift:
    return Gift("t", f"{pid}-{day}-{amount}", pid, amount, date.fromisoformat(day), **kw)


def _people(gifts: list[Gift]) -> PeopleData:
    return PeopleData(persons=[Person("t", pid) for pid in sorted({g.person_id for g in gifts})], gifts=gifts)


def _nine_rows() -> PeopleData:
    """Five 2023 donors; in 2024 one real gift, one gift the CRM zeroed (refunded), one gift refunded by a -40 row."""
    return _people([
        _g("a", "2023-03-01", 50), _g("b", "2023-03-01", 30), _g("c", "2023-03-01", 20), _g("d", "2023-03-01", 10),
        _g("e", "2023-03-01", 40),
        _g("a", "2024-03-01", 50),
        _g("b", "2024-03-01", 0),
        _g("e", "2024-03-01", 40), _g("e", "2024-04-15", -40),
    ])


def test_refunded_zero_and_negative_gifts_make_no_donor():
    r = retention_report(_nine_rows(), year=2024)
    assert (r.donors_prior, r.donors_current, r.retained) == (5, 1, 1)
    assert r.overall_retention == pytest.approx(0.2)  # FEP: only "a" gave money that was kept in 2024
    assert r.amount_current == 50 and r.lapsed == 4
    assert r.gifts_set_aside == {"zero": 1, "refunds_matched": 1, "refunds_partial": 0, "refunds_unmatched": 0}
    assert "1 à 0 €" in r.to_text("fr") and "1 cancelled their gift" in r.to_text("en")


def test_how_a_refund_is_matched():
    from assoc_ai_core.people.dataset import net_gifts

    kept, netting = net_gifts([
        _g("x", "2024-01-10", 30), _g("x", "2024-02-10", 30), _g("x", "2024-03-01", -30),  # the latest 30 goes
        _g("y", "2024-01-10", 100), _g("y", "2024-02-01", -25),  # partial refund: 75 still counts
        _g("z", "2024-05-01", 20), _g("z", "2024-04-01", -20),  # refund before the gift: matches nothing
        _g("w", "2024-01-10", 15, currency="USD"), _g("w", "2024-01-11", -15),  # another currency is not a match
        dataclasses.replace(_g("v", "2024-01-10", 12), date=datetime(2024, 1, 10, 9, 30)), _g("v", "2024-01-10", -12),
    ])
    assert sorted((g.person_id, str(g.date)[:10], g.amount) for g in kept) == [
        ("w", "2024-01-10", 15), ("x", "2024-01-10", 30), ("y", "2024-01-10", 75), ("z", "2024-05-01", 20)]
    assert (netting.refunds_matched, netting.refunds_partial, netting.refunds_unmatched) == (2, 1, 2)


def _monthly(pid: str, first: date, months: int, amount: float = 10.0) -> list[Gift]:
    out, y, m = [], first.year, first.month
    for _ in range(months):
        out.append(_g(pid, date(y, m, 5).isoformat(), amount, recurring=True))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def test_recurring_gifts_are_gifts_in_features_and_reactivation():
    from assoc_ai_core.people.tasks import get_task

    data = _people(_monthly("monthly", date(2021, 1, 1), 24) + _monthly("stopped", date(2020, 1, 1), 24)
                   + [_g("oneoff", "2023-06-01", 50)])
    f = build_features(data, "2024-01-01")
    m = f.loc["monthly"]
    assert m.gifts_total == 24 and m.amount_total == 240 and m.giving_years == 2 and m.never_gave == 0
    assert m.recurring_gifts_12m == 0 and m.lybunt == 1  # last instalment December 2022
    s = f.loc["stopped"]
    assert s.gifts_12m == 0 and s.sybunt == 1 and s.never_gave == 0
    lapsed = get_task("lapsed-reactivation").population(f)
    assert bool(lapsed["stopped"]) and bool(lapsed["monthly"]) and not bool(lapsed["oneoff"])


def test_a_year_is_complete_only_once_the_data_has_passed_its_end():
    data = _people([_g("a", "2022-05-01", 10), _g("a", "2023-05-01", 10), _g("a", "2024-12-22", 10)])
    r = retention_report(data)
    assert r.current == ("2023-01-01", "2023-12-31") and r.complete  # 2024 may still get year-end gifts
    r = retention_report(data, exported="2025-01-06")
    assert r.current == ("2024-01-01", "2024-12-31") and r.complete
    early = retention_report(data, year=2024)
    assert not early.complete and "pas terminée" in early.to_text("fr") and "not over" in early.to_text("en")
    assert [x.current[0] for x in retention_history(data, exported="2025-01-06")] == ["2023-01-01", "2024-01-01"]


def test_fiscal_years_in_the_report_and_the_command():
    data = _people([_g("a", "2022-09-01", 10), _g("a", "2023-08-01", 20), _g("b", "2023-02-01", 5),
                    _g("a", "2024-06-30", 1)])
    r = retention_report(data, fiscal_year_start="07-01")
    assert r.prior == ("2022-07-01", "2023-06-30") and r.current == ("2023-07-01", "2024-06-30")
    assert (r.donors_prior, r.retained, r.lapsed) == (2, 1, 1)
    from assoc_ai_core.errors import DataError
    from assoc_ai_core.people.features import parse_fiscal_year_start

    assert parse_fiscal_year_start(4) == (4, 1) == parse_fiscal_year_start("4")

    with pytest.raises(DataError, match="MM-JJ"):
        parse_fiscal_year_start("02-29")


def test_fiscal_and_rolling_lybunt_side_by_side():
    data = _people([_g("spring", "2023-03-01", 10), _g("summer", "2023-08-01", 10), _g("old", "2021-10-01", 10)])
    cal = build_features(data, "2024-02-01")
    assert (cal.loc["spring", "lybunt"], cal.loc["spring", "lybunt_fy"]) == (0, 1)  # within 12 months, but last FY
    assert (cal.loc["old", "sybunt"], cal.loc["old", "sybunt_fy"]) == (1, 1)
    july = build_features(data, "2024-02-01", fiscal_year_start="07-01")
    assert july.loc["summer", "lybunt_fy"] == 0 and cal.loc["summer", "lybunt_fy"] == 1  # this FY from July
    assert july.loc["spring", "lybunt_fy"] == 1 and july.loc["old", "sybunt_fy"] == 1


def test_commands_take_the_fiscal_year_and_print_amount_retention(exports, tmp_path):
    runner = CliRunner()
    res = runner.invoke(people, ["retention", str(exports), "--fiscal-year-start", "07-01", "--history", "2",
                                 "--lang", "en", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "-07-01 →" in res.output and "Amount retention" in res.output
    res = runner.invoke(people, ["retention", str(exports), "--lang", "fr"])
    assert "Fidélisation en montant" in res.output
    res = runner.invoke(people, ["retention", str(exports), "--fiscal-year-start", "13-01"])
    assert res.exit_code == 4 and "Début d'exercice illisible" in res.output
    table = tmp_path / "t.csv"
    res = runner.invoke(people, ["features", str(exports), "-o", str(table), "--fiscal-year-start", "07-01",
                                 "--as-of", "2024-02-01"])
    assert res.exit_code == 0, res.output
    assert "lybunt_fy" in table.read_text(encoding="utf-8").splitlines()[0]


def test_no_volunteer_file_no_pandas_warning(association):
    without = dataclasses.replace(association, hours=[], missions=[], participations=[], plans=[], memberships=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_features(without, "2023-01-01")
