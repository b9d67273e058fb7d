"""Out-of-core scoring with Dask: a real local cluster of two worker processes, same numbers as in memory."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("dask.distributed")


def test_local_cluster_scores_like_pandas_and_leaves_no_process(donor_model, donor_model_path, association, tmp_path):
    import psutil

    from assoc_ai_core.people.features import build_features
    from assoc_ai_core.people.scoring import score_table, write_feature_table

    table = write_feature_table(association, tmp_path / "features.csv", as_of="2024-06-01")
    # several copies so the table splits into several partitions
    big = pd.concat([pd.read_csv(table, dtype={"person_id": str})] * 4, ignore_index=True)
    big.to_csv(table, index=False)
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = score_table(donor_model_path, table, tmp_path / "scores.csv", scheduler="local", n_workers=2,
                         blocksize=60_000)
    assert result.partitions > 1 and result.rows == len(big)
    scored = pd.read_csv(tmp_path / "scores.csv", dtype={"person_id": str})
    expected = donor_model.predict_proba(build_features(association, "2024-06-01"))[:, 1]
    assert len(scored) == len(big)
    assert scored["probability"].to_numpy()[: len(expected)] == pytest.approx(expected, abs=1e-6)
    assert list(scored["person_id"][: len(expected)]) == list(big["person_id"][: len(expected)])
    # the workers and their nannies are gone; multiprocessing's resource tracker stays until this
    # interpreter exits (it is Python's own helper, shared by every multiprocessing user)
    leftover = [p for p in psutil.Process().children(recursive=True) if p.pid not in children_before]
    alive = [" ".join(p.cmdline()) for p in leftover
             if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())]
    assert alive == []


def test_synchronous_parquet_and_bad_input(donor_model_path, association, tmp_path):
    from assoc_ai_core.errors import DataError
    from assoc_ai_core.people.scoring import score_table, write_feature_table

    table = write_feature_table(association, tmp_path / "features.parquet")
    result = score_table(donor_model_path, table, tmp_path / "out.parquet", scheduler="synchronous")
    assert result.rows == len(pd.read_parquet(table)) == len(pd.read_parquet(tmp_path / "out.parquet"))
    pd.DataFrame({"person_id": ["1"], "gifts_12m": [1]}).to_csv(tmp_path / "thin.csv", index=False)
    with pytest.raises(DataError, match="colonnes manquantes"):
        score_table(donor_model_path, tmp_path / "thin.csv", tmp_path / "x.csv", scheduler="synchronous")
    with pytest.raises(DataError, match="n'est pas un modèle"):
        score_table(table, table, tmp_path / "x.csv", scheduler="synchronous")


def test_existing_cluster_by_address(donor_model_path, association, tmp_path):
    from dask.distributed import LocalCluster

    from assoc_ai_core.people.scoring import score_table, write_feature_table

    table = write_feature_table(association, tmp_path / "features.csv")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40) as cluster:
        result = score_table(donor_model_path, table, tmp_path / "scores", scheduler=cluster.scheduler_address)
        assert result.rows == len(pd.read_csv(table))
        # the cluster belongs to its owner: scoring must not shut it down
        assert cluster.status.name == "running"
    parts = sorted((tmp_path / "scores").glob("part-*.csv"))
    assert parts and sum(len(pd.read_csv(p)) for p in parts) == result.rows
