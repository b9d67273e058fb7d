"""Scoring a large people export out of core, partitions in parallel with Dask.

The input is a *feature table* (one row per person: ``person_id`` and the
model's feature columns, as written by ``assoc-ai people features``), in CSV
or Parquet, possibly larger than memory.  ``dask.dataframe`` reads it in
partitions; each worker loads the model itself from its ``.skops`` file
(only the path travels between processes) and scores its partitions.

By default a ``dask.distributed.LocalCluster`` of worker *processes* is
started for the run and stopped afterwards; ``scheduler="tcp://host:8786"``
uses an existing cluster instead (the model file and the data must then be
readable at the same paths from every worker), and
``scheduler="synchronous"`` scores in this process, one partition after the
other (the one-core baseline).

Worker processes are *spawned*: a script that calls :func:`score_table` with
the local cluster must keep its top-level code under
``if __name__ == "__main__":`` (the command line already does).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.files import PRIVATE_FILE, atomic_write, private_dir
from assoc_ai_core.i18n import tr

__all__ = ["score_table", "ScoringResult", "score_partition", "write_feature_table", "cached_people_model"]


@dataclass(frozen=True)
class ScoringResult:
    """What a scoring run did: rows scored, seconds, where the output is, and how it ran."""

    rows: int
    seconds: float
    output: str
    scheduler: str
    partitions: int
    startup_seconds: float = 0.0  # starting a local cluster, not counted in ``seconds``

    @property
    def rows_per_second(self) -> float:
        """Throughput."""
        return self.rows / self.seconds if self.seconds else float("inf")


@functools.lru_cache(maxsize=4)
def cached_people_model(path: str) -> Any:
    """The people model at ``path``, loaded once per process (each Dask worker keeps its own copy)."""
    from assoc_ai_core.people.store import load_people_model

    return load_people_model(path)


def score_partition(frame: Any, model_path: str, id_column: str = "person_id") -> Any:
    """Score one pandas partition: ``id_column`` and ``probability`` (the model is loaded once per process)."""
    import pandas as pd

    model = cached_people_model(model_path)
    if not len(frame):
        return pd.DataFrame({id_column: pd.Series([], dtype=str), "probability": pd.Series([], dtype=float)})
    proba = model.predict_proba(frame)[:, 1]
    return pd.DataFrame({id_column: frame[id_column].astype(str).to_numpy(), "probability": proba.round(6)})


def _score_and_write(frame: Any, model_path: str, id_column: str, folder: str, fmt: str,
                     partition_info: dict[str, Any] | None = None) -> Any:
    """Score one partition, write it as ``part-NNNNN`` in ``folder``, return its row count (one pass over the data)."""
    import pandas as pd

    number = (partition_info or {}).get("number", 0)
    scored = score_partition(frame, model_path, id_column)
    data = scored.to_parquet(None, index=False) if fmt == "parquet" else scored.to_csv(index=False)
    atomic_write(Path(folder) / f"part-{number:05d}.{fmt}", data)
    return pd.DataFrame({"rows": [len(scored)]})


def _read(path: str, blocksize: str | int, id_column: str) -> Any:
    import dask.dataframe as dd

    p = str(path)
    lower = p.lower()
    if lower.endswith(".parquet") or Path(p).is_dir():
        return dd.read_parquet(p)
    if lower.endswith((".csv", ".csv.gz", ".txt")) or "*" in p:
        return dd.read_csv(p, blocksize=None if lower.endswith(".gz") else blocksize, dtype={id_column: str})
    raise DataError(tr(f"{p} : format non pris en charge (CSV ou Parquet).", f"{p}: unsupported format (CSV or Parquet)."))


def score_table(
    model_path: str | Path,
    data: str | Path,
    output: str | Path,
    *,
    scheduler: str = "local",
    n_workers: int = 2,
    blocksize: str | int = "32MB",
    id_column: str = "person_id",
) -> ScoringResult:
    """Score every row of a feature table and write ``id_column,probability`` to ``output``.

    ``output`` ending in ``.csv`` gets one file; ending in ``.parquet``, a folder
    of Parquet parts; otherwise a folder of CSV parts.  ``scheduler``: ``"local"`` (a LocalCluster of ``n_workers``
    processes), ``"synchronous"`` (this process), or a cluster address.
    """
    import pandas as pd

    from assoc_ai_core.people.store import is_people_model

    model_path = str(Path(model_path).resolve())
    if not is_people_model(model_path):
        raise DataError(tr(f"{model_path} n'est pas un modèle de données de personnes.", f"{model_path} is not a people-data model."))
    features = list(cached_people_model(model_path).features_)
    ddf = _read(str(data), blocksize, id_column)
    missing = [c for c in [id_column, *features] if c not in ddf.columns]
    if missing:
        raise DataError(
            tr(f"{data} : colonnes manquantes {', '.join(missing)}. Produisez la table avec « assoc-ai people features ».",
               f"{data}: missing columns {', '.join(missing)}. Produce the table with 'assoc-ai people features'.")
        )
    ddf = ddf[[id_column, *features]]
    out = str(output)
    single = out.lower().endswith(".csv")
    folder = private_dir(out + ".parts" if single else out)
    for old in folder.glob("part-*.*"):  # parts of an earlier run must not mix with this one
        old.unlink()
    fmt = "parquet" if out.lower().endswith(".parquet") else "csv"
    counts = ddf.map_partitions(_score_and_write, model_path, id_column, str(folder), fmt,
                                meta=pd.DataFrame({"rows": pd.Series([], dtype=int)}))
    started = time.perf_counter()
    with _scheduler(scheduler, n_workers, model_path) as ctx:
        startup = time.perf_counter() - started
        started = time.perf_counter()
        with ctx:
            rows = int(counts["rows"].sum().compute())
        if single:
            _stitch(folder, out)
        seconds = time.perf_counter() - started
    return ScoringResult(rows=int(rows), seconds=seconds, output=out, scheduler=scheduler,
                         partitions=int(ddf.npartitions), startup_seconds=startup)


@contextlib.contextmanager
def _scheduler(scheduler: str, n_workers: int, model_path: str) -> Iterator[Any]:
    """The dask configuration to compute under; a local cluster or a client started here is closed on exit."""
    import dask

    if scheduler == "synchronous":
        yield dask.config.set(scheduler="synchronous")
        return
    from dask import distributed

    # distributed's classes carry no type hints: handled as Any rather than silenced call by call
    client_class: Any = distributed.Client
    cluster: Any = None
    if scheduler == "local":
        cluster_class: Any = distributed.LocalCluster
        cluster = cluster_class(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                silence_logs=40)
    try:
        client = client_class(cluster if cluster is not None else scheduler)
        try:
            client.run(cached_people_model, model_path)  # load the model once on every worker before the clock starts
            yield dask.config.set(scheduler=client.get)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _stitch(folder: Path, out: str) -> None:
    """Join the CSV parts in order into the one file asked for, then remove them.

    Streamed part by part rather than through ``atomic_write``: the whole
    score file need not fit in memory.  A new file is created 0600, like every file of scores.
    """
    parts = sorted(folder.glob("part-*.csv"))
    with open(out, "w", encoding="utf-8", newline="", opener=_private_opener) as fh:
        for k, part in enumerate(parts):
            lines = part.read_text(encoding="utf-8").splitlines(keepends=True)
            fh.writelines(lines if k == 0 else lines[1:])
    for part in parts:
        part.unlink()
    folder.rmdir()


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, PRIVATE_FILE)


def write_feature_table(data: Any, path: str | Path, *, as_of: Any = None,
                        fiscal_year_start: str | int | tuple[int, int] | None = None) -> Path:
    """Write the feature table of ``data`` as of ``as_of`` (default: end of data) for :func:`score_table`.

    ``fiscal_year_start`` places the fiscal-year flags (LYBUNT/SYBUNT by fiscal year); default 1 January.
    """
    from assoc_ai_core.people.dataset import load_people
    from assoc_ai_core.people.features import as_timestamp, build_features
    from assoc_ai_core.people.tasks import data_end

    people = load_people(data)
    frames = people.frames()
    t = as_timestamp(as_of) if as_of is not None else data_end(frames)
    table = build_features(frames, t, fiscal_year_start=fiscal_year_start).reset_index()
    p = Path(path)
    private_dir(p.parent)
    if p.suffix.lower() == ".parquet":
        return atomic_write(p, table.to_parquet(None, index=False))
    return atomic_write(p, table.to_csv(index=False))
