"""BG/BB from the command line: repeat-giving inputs built from a gifts export by fiscal year, fit, holdout check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

TRUE = (1.2, 0.75, 0.66, 2.78)


def _simulate(n: int = 4000, years: int = 11, seed: int = 3) -> list[list[int]]:
    """Per donor, the opportunities (1..years) with a gift, drawn from the BG/BB story itself."""
    a, b, g, d = TRUE
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p, theta = rng.beta(a, b), rng.beta(g, d)
        gave = []
        for t in range(1, years + 1):
            if rng.random() < theta:  # drops out for good before this opportunity
                break
            if rng.random() < p:
                gave.append(t)
        out.append(gave)
    return out


def _write_exports(folder: Path, histories: list[list[int]], *, first_year: int = 2014, fy_month: int = 1) -> Path:
    """people.csv and gifts.csv: a first gift in ``first_year``, then one gift in each fiscal year listed."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    people = ["id;created"]
    gifts = ["id;person_id;amount;date"]
    k = 0
    for i, gave in enumerate(histories):
        pid = f"D{i:05d}"
        people.append(f"{pid};01/01/{first_year}")
        for t in [0, *gave]:
            start = np.datetime64(f"{first_year + t}-{fy_month:02d}-01")
            day = start + np.timedelta64(int(rng.integers(0, 360)), "D")
            y, m, dd = str(day).split("-")
            k += 1
            gifts.append(f"G{k};{pid};{rng.integers(10, 200)},00;{dd}/{m}/{y}")
    (folder / "personnes.csv").write_text("\n".join(people) + "\n", encoding="utf-8")
    (folder / "dons.csv").write_text("\n".join(gifts) + "\n", encoding="utf-8")
    return folder


def _group():
    import click

    from assoc_ai_core.cli.common import ErrorReportingGroup
    from assoc_ai_core.cli.people_value import register_value_commands

    @click.group(cls=ErrorReportingGroup)
    def g() -> None:
        """Test group."""

    register_value_commands(g)
    return g


@pytest.fixture(scope="module")
def histories():
    return _simulate()


@pytest.fixture(scope="module")
def calendar_exports(histories, tmp_path_factory):
    return _write_exports(tmp_path_factory.mktemp("bgbb_cal"), histories)


def test_inputs_from_gifts_by_year(calendar_exports, histories):
    from assoc_ai_core.people.bgbb import repeat_giving_table
    from assoc_ai_core.people.dataset import load_people

    table = repeat_giving_table(load_people(calendar_exports).frames()["gift"], "2020-12-31", "2025-12-31")
    row = table.loc["D00000"]
    gave = histories[0]
    cal = [t for t in gave if t <= 6]
    assert row["periods"] == 6
    assert row["frequency"] == len(cal)
    assert row["recency"] == (max(cal) if cal else 0)
    assert row["holdout_periods"] == 5
    assert row["holdout_gifts"] == len([t for t in gave if 6 < t <= 11])


def test_cli_fits_forecasts_and_checks_the_holdout(calendar_exports, tmp_path):
    out_json = tmp_path / "bgbb.json"
    per_person = tmp_path / "expected.csv"
    r = CliRunner().invoke(_group(), ["bgbb", str(calendar_exports), "--calibration-end", "2020-12-31",
                                      "--holdout-end", "2025-12-31", "-o", str(per_person), "--json", str(out_json),
                                      "--lang", "en"])
    assert r.exit_code == 0, r.output
    assert "alpha" in r.output and "actual" in r.output
    result = json.loads(out_json.read_text())
    fitted = [result["params"][k] for k in ("alpha", "beta", "gamma", "delta")]
    np.testing.assert_allclose(fitted, TRUE, rtol=0.35)
    h = result["holdout"]
    assert h["predicted_total"] == pytest.approx(h["actual_total"], rel=0.08)
    for group in h["by_frequency"]:
        if group["actual"] >= 200:  # small groups are noisy even under the true parameters
            assert group["predicted"] == pytest.approx(group["actual"], rel=0.2)
    assert len(per_person.read_text(encoding="utf-8-sig").splitlines()) == 4001


def test_aggregated_table_gives_the_same_fit(calendar_exports, tmp_path):
    from assoc_ai_core.people.bgbb import repeat_giving_table
    from assoc_ai_core.people.dataset import load_people

    table = repeat_giving_table(load_people(calendar_exports).frames()["gift"], "2020-12-31")
    summary = table.groupby(["frequency", "recency", "periods"]).size().reset_index(name="weights")
    summary = summary.rename(columns={"periods": "n"})
    path = tmp_path / "rf.csv"
    summary.to_csv(path, index=False)
    runner = CliRunner()
    a_json, b_json = tmp_path / "a.json", tmp_path / "b.json"
    ra = runner.invoke(_group(), ["bgbb", str(path), "--holdout-periods", "5", "--json", str(a_json)])
    rb = runner.invoke(_group(), ["bgbb", str(calendar_exports), "--calibration-end", "2020-12-31", "--json",
                                  str(b_json)])
    assert ra.exit_code == 0 and rb.exit_code == 0, ra.output + rb.output
    a, b = json.loads(a_json.read_text()), json.loads(b_json.read_text())
    for k in ("alpha", "beta", "gamma", "delta"):
        assert a["params"][k] == pytest.approx(b["params"][k], abs=1e-4)
    assert a["holdout"]["holdout_periods"] == [5] and "actual_total" not in a["holdout"]


def test_fit_reaches_the_maximum_of_the_likelihood(histories):
    """Each parameter's small move lowers the likelihood: the optimum other fitters report, not a nearby point."""
    from assoc_ai_core.people.bgbb import bgbb_log_likelihood, fit_bgbb

    x = [len([t for t in h if t <= 6]) for h in histories]
    tx = [max([t for t in h if t <= 6], default=0) for h in histories]
    n = [6] * len(histories)
    fit = fit_bgbb(x, tx, n)
    for j in range(4):
        for step in (1e-3, -1e-3):
            moved = list(fit.params)
            moved[j] *= 1 + step
            assert bgbb_log_likelihood(moved, x, tx, n) < fit.log_likelihood


def test_fiscal_years_starting_in_july(histories, tmp_path):
    folder = _write_exports(tmp_path / "fy", histories[:1500], fy_month=7)
    args = ["bgbb", str(folder), "--calibration-end", "2021-06-30", "--holdout-end", "2026-06-30", "--json"]
    runner = CliRunner()
    r = runner.invoke(_group(), [*args, str(tmp_path / "fy.json"), "--fiscal-year-start", "07-01"])
    assert r.exit_code == 0, r.output
    h = json.loads((tmp_path / "fy.json").read_text())["holdout"]
    truth = sum(len([t for t in g if 6 < t <= 11]) for g in histories[:1500])
    assert h["actual_total"] == truth
    # calendar years on July-to-June gifts cut each giving year in two: the count differs
    r = runner.invoke(_group(), ["bgbb", str(folder), "--calibration-end", "2020-12-31", "--holdout-end",
                                 "2025-12-31", "--json", str(tmp_path / "cal.json")])
    assert r.exit_code == 0
    assert json.loads((tmp_path / "cal.json").read_text())["holdout"]["actual_total"] != truth


def test_a_date_inside_a_fiscal_year_is_refused(calendar_exports):
    r = CliRunner().invoke(_group(), ["bgbb", str(calendar_exports), "--calibration-end", "2020-06-15",
                                      "--lang", "en"])
    assert r.exit_code != 0
    assert "last day of a fiscal year" in str(r.exception) + r.output
