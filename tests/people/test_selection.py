"""Selection by expected net: probability × expected gift − cost, against contacting everyone."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner


def test_positive_expected_net_only_best_first():
    from assoc_ai_core.people.selection import select_by_expected_net

    s = select_by_expected_net(["a", "b", "c", "d"], [0.5, 0.01, 0.2, 0.05], [20.0, 20.0, 10.0, 10.0], cost=0.68)
    # expected nets: a 9.32, b -0.48, c 1.32, d -0.18
    assert list(s.frame["person_id"]) == ["a", "c", "d", "b"]
    assert list(s.frame["selected"]) == [True, True, False, False]
    assert s.n_selected == 2 and s.n_total == 4
    assert s.expected_net_selected == pytest.approx(9.32 + 1.32)
    assert s.expected_net_everyone == pytest.approx(9.32 + 1.32 - 0.48 - 0.18)
    assert s.expected_net_selected > s.expected_net_everyone


def test_budget_caps_and_never_forces_losses():
    from assoc_ai_core.people.selection import select_by_expected_net

    p, v = [0.5, 0.4, 0.3, 0.001], [10.0, 10.0, 10.0, 10.0]
    capped = select_by_expected_net("abcd", p, v, cost=1.0, budget=2)
    assert capped.n_selected == 2 and list(capped.frame.loc[capped.frame["selected"], "person_id"]) == ["a", "b"]
    loose = select_by_expected_net("abcd", p, v, cost=1.0, budget=4)
    assert loose.n_selected == 3 and loose.notes  # d would lose money on average


def test_realised_net_matches_the_kdd_rule():
    from assoc_ai_core.people.selection import realised_net

    amounts = np.array([0, 0, 15.0, 0, 40.0])
    assert realised_net(amounts, np.ones(5, bool), 0.68) == pytest.approx(55 - 5 * 0.68)
    assert realised_net(amounts, amounts > 0, 0.68) == pytest.approx(55 - 2 * 0.68)


def test_selection_beats_everyone_on_the_outcome_that_came(association, donor_model):
    """Scored at the model's test date, the selection's realised net beats mailing everyone at a high cost."""
    import pandas as pd

    from assoc_ai_core.people.selection import realised_net, select_people

    as_of = pd.Timestamp(donor_model.metadata_["evaluation"]["as_of"])
    cost = 15.0
    sel = select_people(donor_model, association, cost=cost, as_of=as_of)
    gifts = association.frames()["gift"]
    window = gifts[(gifts["date"] >= as_of) & (gifts["date"] < as_of + pd.DateOffset(months=12))]
    amounts = window.groupby(window["person_id"].astype(str))["amount"].sum()
    got = sel.frame["person_id"].map(amounts).fillna(0.0).to_numpy()
    chosen = realised_net(got, sel.frame["selected"], cost)
    everyone = realised_net(got, np.ones(len(got), bool), cost)
    assert 0 < sel.n_selected < sel.n_total
    assert chosen > everyone


def _group():
    import click

    from assoc_ai_core.cli.common import ErrorReportingGroup
    from assoc_ai_core.cli.people_value import register_value_commands

    @click.group(cls=ErrorReportingGroup)
    def g() -> None:
        """Test group."""

    register_value_commands(g)
    return g


def test_select_command_writes_the_selection(exports, donor_model_path, tmp_path):
    out = tmp_path / "selection.csv"
    value = tmp_path / "value.skops"
    runner = CliRunner()
    r = runner.invoke(_group(), ["value", str(exports), "-o", str(value), "--lang", "en"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(_group(), ["select", str(donor_model_path), str(exports), "--cost", "0.68", "--value-model",
                                 str(value), "--budget", "50", "-o", str(out), "--lang", "en",
                                 "--fiscal-year-start", "07-01"])
    assert r.exit_code == 0, r.output
    assert "selected" in r.output and "contacting everyone" in r.output
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].split(",")[:5] == ["person_id", "probability", "expected_gift", "expected_net", "selected"]
    assert sum(1 for line in lines[1:] if line.endswith("True")) <= 50


def test_select_refuses_a_churn_model(association, tmp_path):
    from assoc_ai_core.errors import DataError
    from assoc_ai_core.people.selection import select_people

    class Churn:
        task = "membership-churn"

    with pytest.raises(DataError, match="gift|don"):
        select_people(Churn(), association, cost=1.0)
