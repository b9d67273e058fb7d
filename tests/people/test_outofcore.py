"""Out-of-core retention and features (Dask partitions) against the in-memory path on the same exports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("dask.dataframe")

# gifts appended to the French exports: refunds that cancel, reduce or find nothing, zero rows, same-day ties,
# an unreadable amount (skipped by both paths), and a gift of someone absent from the people file
_EXTRA_GIFTS = """\
X1;P00001;50,00;03/02/2021;non;Appel;chèque
X2;P00001;-50,00;10/02/2021;non;Appel;chèque
X3;P00002;120,00;05/05/2022;non;Appel;carte
X4;P00002;-20,00;06/05/2022;non;Appel;carte
X5;P00003;-75,00;01/01/2019;non;Appel;carte
X6;P00004;0,00;04/04/2022;non;Appel;carte
X7;P00005;30,00;15/09/2022;non;Appel;carte
X8;P00005;45,00;15/09/2022;non;Appel;carte
X9;P00005;-30,00;20/09/2022;non;Appel;carte
X10;P00006;abc;01/03/2022;non;Appel;carte
X11;ZZ999;80,00;02/08/2022;oui;Prélèvement;prélèvement
X12;P00007;25,00;31/12/2022;oui;Prélèvement;prélèvement
X13;P00007;25,00;31/12/2022;oui;Prélèvement;prélèvement
X14;P00007;-25,00;31/12/2022;oui;Prélèvement;prélèvement
"""


@pytest.fixture(scope="module")
def big_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """French exports of a synthetic association with refunds and odd rows added to the gifts."""
    from assoc_ai_core.people.synthetic import generate_people, write_exports

    folder = tmp_path_factory.mktemp("ooc")
    write_exports(generate_people(400, seed=11), folder)
    with (folder / "dons.csv").open("a", encoding="utf-8", newline="") as fh:
        fh.write(_EXTRA_GIFTS.replace("\n", "\r\n"))
    return folder


@pytest.fixture(scope="module")
def no_plans(big_exports: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same exports without the standing-orders file (live plans are then guessed from instalments)."""
    folder = tmp_path_factory.mktemp("ooc-noplans")
    for p in big_exports.iterdir():
        if p.name != "dons_reguliers.csv":
            shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def parquet_exports(big_exports: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gifts as a folder of Parquet parts with typed columns, the other exports as CSV."""
    import pandas as pd

    from assoc_ai_core.people.dataset import load_people

    folder = tmp_path_factory.mktemp("ooc-parquet")
    for p in big_exports.iterdir():
        if p.name != "dons.csv":
            shutil.copy(p, folder / p.name)
    gifts = load_people(big_exports).gifts
    frame = pd.DataFrame({"source_id": [g.source_id for g in gifts], "person_id": [g.person_id for g in gifts],
                          "amount": [g.amount for g in gifts], "date": pd.to_datetime([g.date for g in gifts]),
                          "recurring": [g.recurring for g in gifts]})
    parts = folder / "gifts.parquet"
    parts.mkdir()
    for i, start in enumerate(range(0, len(frame), 700)):
        frame.iloc[start:start + 700].to_parquet(parts / f"part-{i:03d}.parquet", index=False)
    return folder


def _memory_reports(folder: Path, **kw):
    from assoc_ai_core.people.retention import retention_history, retention_report

    return retention_report(folder, **kw).to_dict(), [r.to_dict() for r in retention_history(folder, **{
        k: v for k, v in kw.items() if k != "year"})]


@pytest.mark.parametrize("fiscal", [None, "07-01"])
def test_retention_is_identical_in_partitions(big_exports: Path, fiscal: str | None) -> None:
    from assoc_ai_core.people.outofcore import retention_reports_out_of_core

    one, history = _memory_reports(big_exports, fiscal_year_start=fiscal)
    report, reports = retention_reports_out_of_core(big_exports, history=5, fiscal_year_start=fiscal,
                                                    blocksize=4096, scheduler="synchronous")
    assert report.to_dict() == one
    assert [r.to_dict() for r in reports] == history
    assert report.gifts_set_aside["refunds_matched"] >= 3 and report.gifts_set_aside["refunds_partial"] >= 1
    assert report.gifts_set_aside["refunds_unmatched"] >= 1 and report.gifts_set_aside["zero"] >= 1


def test_retention_of_an_incomplete_year_is_identical(big_exports: Path) -> None:
    from assoc_ai_core.people.dataset import load_people
    from assoc_ai_core.people.outofcore import retention_out_of_core
    from assoc_ai_core.people.retention import data_end_of, last_complete_year, retention_report

    end = data_end_of(load_people(big_exports))
    year = last_complete_year(end, (7, 1)) + 1
    expected = retention_report(big_exports, year=year, fiscal_year_start="07-01")
    assert not expected.complete
    got = retention_out_of_core(big_exports, year=year, fiscal_year_start="07-01", blocksize=4096)
    assert got.to_dict() == expected.to_dict()


def _memory_features(folder: Path, as_of=None, fiscal=None):
    from assoc_ai_core.people.dataset import load_people
    from assoc_ai_core.people.features import build_features
    from assoc_ai_core.people.tasks import data_end

    frames = load_people(folder).frames()
    return build_features(frames, as_of or data_end(frames), fiscal_year_start=fiscal)


@pytest.mark.parametrize("fixture,as_of,fiscal", [
    ("big_exports", None, None), ("big_exports", "2022-09-16", "07-01"), ("no_plans", "2023-01-01", None),
    ("no_plans", None, "07-01"),
])
def test_features_are_identical_in_partitions(request: pytest.FixtureRequest, fixture: str, as_of, fiscal) -> None:
    import pandas as pd

    from assoc_ai_core.people.outofcore import features_out_of_core

    folder = request.getfixturevalue(fixture)
    expected = _memory_features(folder, as_of, fiscal)
    got = features_out_of_core(folder, as_of, fiscal_year_start=fiscal, blocksize=4096, scheduler="synchronous")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got["recurring_active"].sum() > 0 and got["upgrade"].sum() > 0


def test_parquet_gifts_give_the_same_features_and_report(big_exports: Path, parquet_exports: Path) -> None:
    import pandas as pd

    from assoc_ai_core.people.outofcore import features_out_of_core, retention_out_of_core, use_out_of_core

    assert use_out_of_core(parquet_exports) and not use_out_of_core(big_exports)
    pd.testing.assert_frame_equal(features_out_of_core(parquet_exports, "2023-01-01"),
                                  _memory_features(big_exports, "2023-01-01"), check_exact=True)
    assert retention_out_of_core(parquet_exports).to_dict() == _memory_reports(big_exports)[0]


def test_cli_takes_the_partitioned_path_on_a_real_local_cluster(big_exports: Path, tmp_path: Path) -> None:
    import pandas as pd
    from click.testing import CliRunner
    from distributed import LocalCluster

    from assoc_ai_core.cli.people import people

    runner = CliRunner()
    plain = runner.invoke(people, ["retention", str(big_exports), "--history", "3", "--lang", "en",
                                   "--json", str(tmp_path / "a.json")])
    assert plain.exit_code == 0, plain.output
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        dask_run = runner.invoke(people, ["retention", str(big_exports), "--history", "3", "--lang", "en",
                                          "--json", str(tmp_path / "b.json"), "--scheduler", address])
        assert dask_run.exit_code == 0, dask_run.output
        feats = runner.invoke(people, ["features", str(big_exports), "-o", str(tmp_path / "b.csv"),
                                       "--scheduler", address])
        assert feats.exit_code == 0, feats.output
    assert "Dask" in dask_run.stderr and "Dask" not in plain.stderr
    assert dask_run.stdout == plain.stdout
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert runner.invoke(people, ["features", str(big_exports), "-o", str(tmp_path / "a.csv")]).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b.csv"), pd.read_csv(tmp_path / "a.csv"), check_exact=True)


def test_a_large_export_goes_out_of_core_by_itself(big_exports: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from assoc_ai_core.cli.people import people
    from assoc_ai_core.people import outofcore

    monkeypatch.setattr(outofcore, "OUT_OF_CORE_BYTES", 1000)
    result = CliRunner().invoke(people, ["retention", str(big_exports), "--lang", "fr"])
    assert result.exit_code == 0, result.output
    assert "Dask" in result.stderr


def test_an_unreachable_cluster_is_a_clear_error(big_exports: Path) -> None:
    from click.testing import CliRunner

    from assoc_ai_core.cli.people import people

    result = CliRunner().invoke(people, ["retention", str(big_exports), "--scheduler", "tcp://127.0.0.1:9",
                                         "--lang", "en"])
    assert result.exit_code != 0
    assert "not reachable" in result.output


def test_refunds_that_empty_the_last_days_move_the_data_end_alike(tmp_path: Path) -> None:
    import pandas as pd

    from assoc_ai_core.people.outofcore import features_out_of_core

    (tmp_path / "personnes.csv").write_text(
        "Identifiant;Prénom;Nom;Courriel;Date de création\r\nA;Ana;Roy;a@x.fr;01/01/2020\r\n"
        "B;Bob;Lee;;01/01/2020\r\nC;Cy;Ma;c@x.fr;03/03/2021\r\n", encoding="utf-8")
    (tmp_path / "dons.csv").write_text(
        "Id contact;Montant;Date du don;Récurrent\r\nA;40,00;05/05/2021;oui\r\nA;40,00;05/06/2021;oui\r\n"
        "B;10,00;01/02/2022;non\r\nC;99,00;20/11/2022;non\r\nC;-99,00;20/11/2022;non\r\n", encoding="utf-8")
    expected = _memory_features(tmp_path)
    got = features_out_of_core(tmp_path, scheduler="synchronous")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.loc["C", "never_gave"] == 1.0
