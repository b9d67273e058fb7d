"""Retention and feature tables on exports larger than memory: gifts read in partitions with Dask.

The in-memory path (:func:`~assoc_ai_core.people.dataset.load_people`) turns
every row of every export into a Python object; at a federation's scale
(millions of gifts) that costs minutes and gigabytes.  Here the gifts file
(CSV, or Parquet: a file or a folder of parts) is read by ``dask.dataframe``
in partitions and reduced, partition by partition, to small per-person
tables; only those reach pandas.  The people file is read with pandas (only
the columns the features need), the other exports (memberships, events,
volunteering, standing orders) through the files connector as usual.

The results are those of :func:`~assoc_ai_core.people.retention.retention_report`
and :func:`~assoc_ai_core.people.features.build_features` on the same data:

* each cell is converted by the files connector's own conversion (column
  titles found the same way, dates, amounts and yes/no read the same way,
  unreadable rows skipped the same way), applied once per distinct value;
* refunds are netted exactly as :func:`~assoc_ai_core.people.dataset.net_gifts`
  does, by that very function, on the gifts of the few people who have a
  refund (they are gathered in a second, filtered read);
* ties between gifts of the same day keep the export's row order (each row
  carries its partition and position).

Sums are added partition by partition, so an amount may differ from the
in-memory one in its last binary digit (never at the cent).

The cleaned gifts of a CSV export are written once, typed, to a private
temporary Parquet folder (deleted afterwards) so later reads need not parse
the text again.  ``scheduler``: ``None``/``"threads"`` (local threads, the
default), ``"synchronous"`` (one partition after the other), or the address
of a running Dask cluster (``tcp://host:8786``) whose workers can read the
export and the temporary folder at the same paths.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import tr
from assoc_ai_core.people.dataset import GiftNetting, PeopleData, net_gifts, require_pandas
from assoc_ai_core.people.features import (
    NEVER_MONTHS,
    as_timestamp,
    build_features,
    fiscal_year_containing,
    giving_columns,
    membership_starts,
    parse_fiscal_year_start,
)
from assoc_ai_core.people.files_connector import FILE_NAMES, FilesConfig, FilesConnector
from assoc_ai_core.people.retention import RetentionReport, last_complete_year, report_from_totals
from assoc_ai_core.people.tabular import CSV_SUFFIXES, decode_bytes, sniff_delimiter
from assoc_ai_core.records.people import Gift

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "GiftSource", "find_gift_source", "use_out_of_core", "OUT_OF_CORE_BYTES", "dask_scheduler",
    "retention_out_of_core", "retention_history_out_of_core", "retention_reports_out_of_core", "features_out_of_core",
    "write_feature_table_out_of_core",
]

OUT_OF_CORE_BYTES = 64 * 2**20  # a gifts export above this size is read in partitions
_BLOCKSIZE = "16MB"
_SEQ_BITS = 32  # a row's position within its partition; the partition number sits above it
_OTHER_TYPES = ("recurring_plan", "membership", "participation", "volunteer_mission", "volunteer_hours")
_PERSON_FIELDS = ("source_id", "email", "phone", "created", "do_not_profile")


# ------------------------------------------------------------------ finding the gifts
@dataclass(frozen=True)
class GiftSource:
    """Where the gifts of a people export are, and how to read them."""

    path: Path
    kind: str  # "csv" or "parquet"
    config: FilesConfig
    columns: dict[int, str] = field(default_factory=dict)  # column position → canonical field
    delimiter: str = ","
    encoding: str = "utf-8"
    decimal: str = "."

    @property
    def size(self) -> int:
        """Bytes on disk (all the parts of a Parquet folder)."""
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size


def _files_config(data: Any) -> FilesConfig | None:
    """The files-connector settings behind ``data`` (a folder, a file, or a TOML naming the files connector)."""
    from assoc_ai_core.people.dataset import connector_from_config

    if not isinstance(data, (str, Path)):
        return None
    p = Path(data).expanduser()
    if not p.exists():
        return None
    if p.suffix.lower() == ".toml":
        connector = connector_from_config(p)
        return connector.config if isinstance(connector, FilesConnector) else None
    return FilesConfig(path=str(p))


def _parquet_gifts(connector: FilesConnector) -> Path | None:
    config = connector.config
    named = config.files.get("gift")
    if named:
        p = Path(named).expanduser()
        p = p if p.is_absolute() else connector.root / p
        return p if p.suffix.lower() == ".parquet" and p.exists() else None
    if not Path(config.path).expanduser().is_dir():
        return None
    wanted = set(FILE_NAMES["gift"])
    for candidate in sorted(connector.root.iterdir()):
        if candidate.suffix.lower() == ".parquet" and candidate.stem.lower() in wanted:
            return candidate
    return None


def find_gift_source(data: Any) -> GiftSource | None:
    """The gifts export of ``data`` when it can be read in partitions (CSV or Parquet), else None."""
    config = _files_config(data)
    if config is None:
        return None
    connector = FilesConnector(config)
    parquet = _parquet_gifts(connector)
    if parquet is not None:
        import pyarrow.parquet as pq

        names = list(pq.read_schema(next(iter(sorted(parquet.rglob("*.parquet")))) if parquet.is_dir() else parquet).names)
        names = [n for n in names if not n.startswith("__")]
        return GiftSource(parquet, "parquet", config, _field_columns(connector, "gift", names))
    try:
        path = connector.file_for("gift")
    except Exception:  # a misconfigured export is reported by the in-memory path, with its own message
        return None
    if path is None or path.suffix.lower() not in CSV_SUFFIXES:
        return None
    columns, sep, encoding, dec = _csv_header(path, config)
    if columns is None:
        return None
    return GiftSource(path, "csv", config, _field_columns(connector, "gift", columns), sep, encoding, dec)


def _field_columns(connector: FilesConnector, record_type: str, columns: list[str]) -> dict[int, str]:
    return {idx: name for name, idx in connector.column_map(record_type, columns).items()}


def _csv_header(path: Path, config: FilesConfig) -> tuple[list[str] | None, str, str, str]:
    """Header, separator, encoding and decimal mark of a CSV export, guessed as the files connector does."""
    with path.open("rb") as fh:
        sample = fh.read(1 << 16)
    if len(sample) == 1 << 16 and b"\n" in sample:
        sample = sample[: sample.rfind(b"\n")]  # never cut a character in two: the encoding guess would go wrong
    text, encoding = decode_bytes(sample, config.encoding)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        return None, ",", encoding, "."  # a header below blank lines: left to the in-memory path
    sep = config.delimiter or ("\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(text))
    header = next(csv.reader(io.StringIO(lines[0]), delimiter=sep))
    dec = config.decimal or ("," if sep in (";", "\t") else ".")
    return [c.strip() for c in header], sep, encoding, dec


def use_out_of_core(data: Any, threshold: int | None = None) -> bool:
    """True when ``data``'s gifts are in Parquet, or in a CSV export larger than ``threshold`` bytes
    (default :data:`OUT_OF_CORE_BYTES`)."""
    source = find_gift_source(data)
    limit = OUT_OF_CORE_BYTES if threshold is None else threshold
    return source is not None and (source.kind == "parquet" or source.size > limit)


@contextlib.contextmanager
def dask_scheduler(scheduler: str | None = None) -> Iterator[None]:
    """Run the Dask computations inside on local threads, synchronously, or on the cluster at an address."""
    import dask

    if scheduler in (None, "", "local", "threads"):
        with dask.config.set(scheduler="threads"):
            yield
        return
    if scheduler == "synchronous":
        with dask.config.set(scheduler="synchronous"):
            yield
        return
    try:
        import distributed
    except ImportError as exc:
        raise DataError(tr("Un cluster Dask demande distributed : pip install 'assoc-ai-core[people]'.",
                           "A Dask cluster needs distributed: pip install 'assoc-ai-core[people]'.")) from exc
    try:
        client_class: Any = distributed.Client
        client = client_class(scheduler, timeout="10s")
    except OSError as exc:
        raise DataError(tr(f"Cluster Dask injoignable à {scheduler} : {exc}.",
                           f"Dask cluster not reachable at {scheduler}: {exc}.")) from exc
    with client:  # the client is the default scheduler until it closes
        yield


def _compute(*collections: Any) -> tuple[Any, ...]:
    """``dask.compute`` under whichever scheduler :func:`dask_scheduler` set."""
    import dask

    compute: Any = getattr(dask, "compute")  # noqa: B009 - dask exports it untyped
    return tuple(compute(*collections))


# ------------------------------------------------------------------ reading and converting
def _converter(connector: FilesConnector, record_type: str, name: str, decimal: str) -> Callable[[Any], Any]:
    """The files connector's own conversion of one field, returning :data:`_BAD` instead of raising."""
    import typing

    from assoc_ai_core.records.people import RECORD_TYPES

    hint = typing.get_type_hints(RECORD_TYPES[record_type])[name]
    convert = connector._convert  # noqa: SLF001 - the one place cells are read, so both paths read them alike

    def one(cell: Any) -> Any:
        try:
            return convert(name, hint, cell, decimal)
        except ValueError:
            return _BAD

    return one


class _Bad:
    """Marks a cell the connector could not read (its row is skipped)."""


_BAD = _Bad()


def _map_unique(series: pd.Series, fn: Callable[[Any], Any]) -> pd.Series:
    """``fn`` applied once per distinct value (exports repeat dates, amounts and flags a lot)."""
    values = series.unique()
    return series.map(dict(zip(values, (fn(v) for v in values), strict=True)))


def _clean_gifts(frame: pd.DataFrame, source: GiftSource, partition_info: dict[str, Any] | None = None) -> pd.DataFrame:
    """One partition of the gifts export as typed rows (person_id, amount, date, currency, recurring, seq)."""
    pd = require_pandas()
    import numpy as np

    number = int((partition_info or {}).get("number", 0))
    if source.kind == "csv":
        frame = frame.set_axis([source.columns[i] for i in sorted(source.columns)], axis=1)
    else:
        frame = frame.rename(columns={c: source.columns[i] for i, c in enumerate(frame.columns) if i in source.columns})
    n = len(frame)
    ok = np.ones(n, dtype=bool)
    out: dict[str, Any] = {}
    for name in frame.columns:
        if name in ("campaign", "payment_method", "plan_id", "source_id", "source"):
            continue  # text fields never fail and are not used
        values, good = _typed_column(frame[name], name, source)
        ok &= good
        out[name] = values
    seq = (np.int64(number) << _SEQ_BITS) + np.arange(n, dtype=np.int64)
    return pd.DataFrame({
        "person_id": out["person_id"][ok], "seq": seq[ok], "amount": out["amount"][ok], "date": out["date"][ok],
        "currency": out["currency"][ok] if "currency" in out else "EUR",
        "recurring": out["recurring"][ok] if "recurring" in out else False,
    })


def _typed_column(col: pd.Series, name: str, source: GiftSource) -> tuple[Any, Any]:
    """One gift column as a typed NumPy array, and which rows the files connector would keep."""
    pd = require_pandas()
    import numpy as np

    if name == "date" and pd.api.types.is_datetime64_any_dtype(col.dtype):  # typed Parquet
        values = (col.dt.tz_localize(None) if col.dt.tz is not None else col).dt.normalize()
        return values.to_numpy(dtype="datetime64[ns]"), values.notna().to_numpy()
    if name == "amount" and pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        values = col.astype(float)
        return values.to_numpy(), values.notna().to_numpy()
    if name in ("person_id", "currency") and (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)):
        # what the connector does to a text cell, for a whole column at once (ids are nearly all distinct)
        text = col.astype(object).where(col.notna(), "").astype(str).str.strip().to_numpy(dtype=object)
        return text, (text != "") if name == "person_id" else np.ones(len(text), dtype=bool)
    # everything else through the connector's own conversion, once per distinct value
    codes, uniques = pd.factorize(col.astype(object).to_numpy(), use_na_sentinel=True)
    cells = [*uniques, None]  # code -1 (missing) reads the last one
    conv = _converter(FilesConnector(source.config), "gift", name, source.decimal)
    converted = [conv(c) for c in cells]
    required = name in ("person_id", "amount", "date")
    good = np.array([v is not _BAD and not (required and (v is None or v == "")) for v in converted], dtype=bool)
    if name == "amount":
        typed: Any = np.array([v if isinstance(v, (int, float)) else np.nan for v in converted], dtype=float)
    elif name == "date":
        typed = np.array([np.datetime64(v, "D") if isinstance(v, date) else np.datetime64("NaT") for v in converted],
                         dtype="datetime64[D]").astype("datetime64[ns]")
    elif name == "recurring":
        typed = np.array([v is True for v in converted], dtype=bool)
    else:
        typed = np.array([str(v) if isinstance(v, str) else "" for v in converted], dtype=object)
    return typed[codes], good[codes]


_GIFT_META = {"person_id": object, "seq": "int64", "amount": float, "date": "datetime64[ns]", "currency": object,
              "recurring": bool}


def _meta() -> pd.DataFrame:
    pd = require_pandas()
    return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in _GIFT_META.items()})


def _read_gifts(source: GiftSource, blocksize: str | int = _BLOCKSIZE) -> Any:
    """The gifts export as a Dask frame of typed rows."""
    import dask.dataframe as dd

    if source.kind == "parquet":
        raw = dd.read_parquet(str(source.path))
        names = [c for c in raw.columns if not str(c).startswith("__")]
        raw = raw[names]
    else:
        raw = dd.read_csv(str(source.path), sep=source.delimiter, encoding=source.encoding, dtype=str,
                          usecols=sorted(source.columns), keep_default_na=False, na_filter=False,
                          blocksize=blocksize, skip_blank_lines=True)
    return raw.map_partitions(_clean_gifts, source, meta=_meta())


# ------------------------------------------------------------------ the reductions
def _first_pass_chunk(frame: pd.DataFrame) -> pd.DataFrame:
    """Per partition: negative rows kept whole; counts of zero rows and of positive gifts per day."""
    pd = require_pandas()
    refunds = frame[frame["amount"] < 0].assign(kind="refund", count=1)
    zero = int((frame["amount"] == 0).sum())
    positive = frame[frame["amount"] > 0]
    days = positive.groupby("date").size().rename("count").reset_index().assign(kind="day")
    latest = frame["date"].max() if len(frame) else pd.NaT
    marks = pd.DataFrame({"kind": ["zero", "latest"], "count": [zero, 1], "date": [pd.NaT, latest]})
    return pd.concat([refunds, days, marks], ignore_index=True)


def _first_pass_combine(frame: pd.DataFrame) -> pd.DataFrame:
    pd = require_pandas()
    days = frame[frame["kind"] == "day"].groupby("date", as_index=False)["count"].sum().assign(kind="day")
    zero = int(frame.loc[frame["kind"] == "zero", "count"].sum())
    latest = frame.loc[frame["kind"] == "latest", "date"].max()
    marks = pd.DataFrame({"kind": ["zero", "latest"], "count": [zero, 1], "date": [pd.NaT, latest]})
    return pd.concat([frame[frame["kind"] == "refund"], days, marks], ignore_index=True)


@dataclass
class _Netted:
    """What the first two reads learnt: the refunds netted, the people they touch, and dates."""

    refund_people: set[str]
    netted: pd.DataFrame  # net positive gifts of refund_people, typed like the partitions
    netting: Any
    raw_latest: Any  # latest date of any gift row, refunds and zeros included (what retention calls the data's end)
    net_days: pd.Series  # net positive gifts per day (to find the first and last day with a gift)


def _first_pass(gifts: Any) -> Any:
    """Refund rows, zero rows and positive gifts per day, as one small frame (a Dask reduction)."""
    return gifts.reduction(_first_pass_chunk, aggregate=_first_pass_combine, combine=_first_pass_combine,
                           meta=_first_pass_chunk(_meta()), split_every=4)


def _second_pass(gifts: Any, summary: pd.DataFrame, aggregate: Callable[[Any], Any] | None = None) -> tuple[_Netted, Any]:
    """One more read: the gifts of the people with a refund (netted here, exactly as in memory), and, in the same
    read, ``aggregate`` of everybody else's positive gifts."""
    pd = require_pandas()
    refunds = summary[summary["kind"] == "refund"]
    days = summary[summary["kind"] == "day"].set_index("date")["count"].astype("int64")
    zero = int(summary.loc[summary["kind"] == "zero", "count"].sum())
    raw_latest = summary.loc[summary["kind"] == "latest", "date"].max()
    people = set(refunds["person_id"].astype(str))
    main = gifts[(gifts["amount"] > 0) & ~gifts["person_id"].isin(list(people))] if people else gifts[gifts["amount"] > 0]
    wanted = [gifts[(gifts["amount"] > 0) & gifts["person_id"].isin(list(people))]] if people else []
    if aggregate is not None:
        wanted.append(aggregate(main))
    results = list(_compute(*wanted)) if wanted else []
    table = results.pop() if aggregate is not None else None
    if not people:
        return _Netted(people, _meta(), GiftNetting(zero=zero), raw_latest, days), table
    # net_gifts breaks ties between same-day gifts by their order: the export's
    theirs = results[0].sort_values("seq", kind="stable").reset_index(drop=True)
    refunds = refunds[list(_GIFT_META)].astype({"seq": "int64", "amount": float}).sort_values("seq", kind="stable")
    rows = pd.concat([theirs, refunds], ignore_index=True)
    columns = zip(rows["seq"].tolist(), rows["person_id"].astype(object).tolist(), rows["amount"].tolist(),
                  rows["date"].dt.date.tolist(), rows["currency"].astype(object).tolist(), strict=True)
    records = [Gift(source="", source_id=str(seq), person_id=str(pid), amount=float(amount), date=day,
                    currency=str(currency))
               for seq, pid, amount, day, currency in columns]
    kept, netting = net_gifts(records)
    netting = GiftNetting(zero=zero, refunds_matched=netting.refunds_matched,
                          refunds_partial=netting.refunds_partial, refunds_unmatched=netting.refunds_unmatched)
    amounts = {int(g.source_id): g.amount for g in kept}
    netted = theirs[theirs["seq"].isin(list(amounts))].copy()
    netted["amount"] = netted["seq"].map(amounts).astype(float)
    netted = netted.sort_values("seq", kind="stable").reset_index(drop=True)
    before = theirs.groupby("date").size()
    after = netted.groupby("date").size()
    net_days = days.sub(before, fill_value=0).add(after, fill_value=0).astype("int64")
    return _Netted(people, netted[list(_GIFT_META)], netting, raw_latest, net_days[net_days > 0]), table


def _main_gifts(gifts: Any, netted: _Netted) -> Any:
    """The positive gifts of everyone without a refund (theirs are in ``netted.netted``)."""
    if not netted.refund_people:
        return gifts[gifts["amount"] > 0]
    return gifts[(gifts["amount"] > 0) & ~gifts["person_id"].isin(list(netted.refund_people))]


@contextlib.contextmanager
def _typed_gifts(source: GiftSource, blocksize: str | int = _BLOCKSIZE) -> Iterator[tuple[Any, pd.DataFrame]]:
    """The gifts as a Dask frame, with the first pass's summary.  A CSV export is parsed once: its typed rows go
    to a private temporary Parquet folder while the first pass reads them."""
    gifts = _read_gifts(source, blocksize)
    if source.kind != "csv":
        (summary,) = _compute(_first_pass(gifts))
        yield gifts, summary
        return
    import dask.dataframe as dd

    folder = Path(tempfile.mkdtemp(prefix="assoc-ai-gifts-"))  # 0700: the rows are personal data
    try:
        write = gifts.to_parquet(str(folder), write_index=False, compute=False)
        _, summary = _compute(write, _first_pass(gifts))
        yield dd.read_parquet(str(folder)), summary
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------ retention
def _year_sums_chunk(frame: pd.DataFrame, fiscal_year_start: tuple[int, int], years: list[int]) -> pd.DataFrame:
    """Per person: the first fiscal year with a gift, and the total given in each fiscal year of ``years``."""
    pd = require_pandas()
    month, day = fiscal_year_start
    d = frame["date"]
    after_start = (d.dt.month > month) | ((d.dt.month == month) & (d.dt.day >= day))
    fy = d.dt.year - (~after_start).astype("int64")
    cols = {"first_fy": fy}
    for y in years:
        cols[f"y{y}"] = frame["amount"].where(fy == y, 0.0)
        cols[f"n{y}"] = (fy == y).astype("int64")
    wide = pd.DataFrame(cols, index=frame.index).assign(person_id=frame["person_id"])
    return _year_sums_combine(wide, years, grouped=False)


def _year_sums_combine(frame: pd.DataFrame, years: list[int], grouped: bool = True) -> pd.DataFrame:
    key = frame.index if grouped else frame["person_id"]
    spec = {"first_fy": "min", **{f"y{y}": "sum" for y in years}, **{f"n{y}": "sum" for y in years}}
    out = frame.groupby(key).agg(spec)
    out.index.name = "person_id"
    return out


def _retention_inputs(
    data: Any, scheduler: str | None, fiscal_year_start: tuple[int, int], exported: Any, year_range: Callable[[Any], list[int]],
    blocksize: str | int = _BLOCKSIZE,
) -> tuple[pd.DataFrame, Any, Any, Any, Any]:
    """Per-person fiscal-year totals for the years ``year_range(data_end)`` asks, with the netting and dates."""

    pd = require_pandas()
    source = _require_source(data)
    others = _other_frames(source)
    with dask_scheduler(scheduler), _typed_gifts(source, blocksize) as (gifts, summary):
        latest = summary.loc[summary["kind"] == "latest", "date"].max()
        if exported is not None:
            end = as_timestamp(exported)
        else:
            dates = [latest, *(_latest_other(others))]
            known = [d for d in dates if d is not None and not pd.isna(d)]
            if not known:
                raise DataError(tr("Aucun don dans les données.", "No gifts in the data."))
            end = as_timestamp(max(known)) + pd.Timedelta(days=1)
        years = year_range(end)

        def sums(main: Any) -> Any:
            return main.reduction(_year_sums_chunk, aggregate=_year_sums_combine, combine=_year_sums_combine,
                                  chunk_kwargs={"fiscal_year_start": fiscal_year_start, "years": years},
                                  aggregate_kwargs={"years": years}, combine_kwargs={"years": years},
                                  meta=_year_sums_chunk(_meta(), fiscal_year_start, years), split_every=4)

        netted, table = _second_pass(gifts, summary, sums)
    if not len(netted.net_days):
        raise DataError(tr("Aucun don dans les données : pas de rapport de fidélisation possible.",
                           "No gifts in the data: no retention report possible."))
    if len(netted.netted):
        table = pd.concat([table, _year_sums_chunk(netted.netted, fiscal_year_start, years)])
    first_day = netted.net_days.index.min()
    return table.sort_index(), netted.netting, end, first_day, years


def _require_source(data: Any) -> GiftSource:
    source = find_gift_source(data)
    if source is None:
        raise DataError(tr("Lecture par morceaux impossible : il faut un export des dons en CSV ou en Parquet.",
                           "Reading in partitions needs a gifts export in CSV or Parquet."))
    connector = FilesConnector(source.config)
    if connector.file_for("person") is None:
        raise DataError(tr("Aucune personne trouvée : l'export des personnes (personnes.csv, contacts.csv…) manque.",
                           "No people found: the people export (people.csv, contacts.csv…) is missing."))
    return source


def _other_frames(source: GiftSource) -> dict[str, pd.DataFrame]:
    """Memberships, events, volunteering and standing orders: small exports, read the usual way."""
    connector = FilesConnector(source.config)
    data = PeopleData()
    with connector:
        for rtype in _OTHER_TYPES:
            data.add(connector.read_all(rtype))
    frames = data.frames()
    return {t: frames[t] for t in _OTHER_TYPES}


def _latest_other(frames: dict[str, pd.DataFrame]) -> list[Any]:
    pd = require_pandas()
    out = []
    for rtype, col in (("participation", "date"), ("volunteer_hours", "date"), ("membership", "start")):
        f = frames[rtype]
        if len(f) and f[col].notna().any():
            out.append(pd.Timestamp(f[col].max()))
    return out


def retention_reports_out_of_core(
    data: Any, *, year: int | None = None, history: int = 0, fiscal_year_start: str | int | tuple[int, int] | None = None,
    exported: Any = None, scheduler: str | None = None, blocksize: str | int = _BLOCKSIZE,
) -> tuple[RetentionReport, list[RetentionReport]]:
    """The report of ``year`` (default: the last complete fiscal year) and, when ``history``, one per year of the
    last ``history`` complete years — as ``people retention`` prints them, all from one read of the gifts."""
    start = parse_fiscal_year_start(fiscal_year_start)
    span: dict[str, int] = {}

    def wanted(end: Any) -> list[int]:
        span["last"] = last_complete_year(end, start)
        span["year"] = year if year is not None else span["last"]
        years = {span["year"] - 2, span["year"] - 1, span["year"]}
        if history:
            years |= set(range(span["last"] - history - 1, span["last"] + 1))
        return sorted(years)

    table, netting, end, first_day, _ = _retention_inputs(data, scheduler, start, exported, wanted, blocksize)
    report = _report(table, span["year"], start, end, netting)
    if not history:
        return report, []
    first_year = int(fiscal_year_containing(first_day, start).year)
    return report, [_report(table, y, start, end, netting)
                    for y in range(max(first_year + 1, span["last"] - history + 1), span["last"] + 1)]


def retention_out_of_core(
    data: Any, *, year: int | None = None, fiscal_year_start: str | int | tuple[int, int] | None = None,
    exported: Any = None, scheduler: str | None = None, blocksize: str | int = _BLOCKSIZE,
) -> RetentionReport:
    """:func:`~assoc_ai_core.people.retention.retention_report` for fiscal years, gifts read in partitions."""
    return retention_reports_out_of_core(data, year=year, fiscal_year_start=fiscal_year_start, exported=exported,
                                         scheduler=scheduler, blocksize=blocksize)[0]


def retention_history_out_of_core(
    data: Any, *, years: int = 5, fiscal_year_start: str | int | tuple[int, int] | None = None, exported: Any = None,
    scheduler: str | None = None, blocksize: str | int = _BLOCKSIZE,
) -> list[RetentionReport]:
    """:func:`~assoc_ai_core.people.retention.retention_history`, gifts read in partitions (one pass for all years)."""
    return retention_reports_out_of_core(data, history=years, fiscal_year_start=fiscal_year_start, exported=exported,
                                         scheduler=scheduler, blocksize=blocksize)[1]


def _report(table: pd.DataFrame, year: int, start: tuple[int, int], end: Any, netting: Any) -> RetentionReport:
    """The report of one fiscal year from the per-person fiscal-year totals (finished by retention.py)."""
    pd = require_pandas()
    month, day = start
    c0 = pd.Timestamp(year=year, month=month, day=day)
    c1 = c0 + pd.DateOffset(years=1)

    def given(y: int) -> Any:
        counts = table[f"n{y}"] if f"n{y}" in table else pd.Series(0, index=table.index)
        return table.loc[counts > 0, f"y{y}"].astype(float).rename("amount")

    before_prior = set(table.index[table["first_fy"] < year - 1])
    return report_from_totals(given(year), given(year - 1), before_prior, set(given(year - 2).index), c0=c0, c1=c1,
                              end=end, netting=netting)


# ------------------------------------------------------------------ features
_COUNTS = ("gifts_12m", "gifts_24m", "gifts_total", "recurring_12m")
_AMOUNTS = ("amount_12m", "amount_prev_12m", "amount_total")
_FLAGS = ("gave_prev12", "gave_before24", "gave_this_fy", "gave_last_fy", "gave_before_fy", "k0", "k1", "k2", "k3",
          "k4", "recurring_recent")


def _giving_chunk(frame: pd.DataFrame, w: dict[str, Any]) -> pd.DataFrame:
    """Per person, the sums, extremes and flags the giving features are made of (gifts before ``t`` only)."""
    pd = require_pandas()
    g = frame[frame["date"] < w["t"]]
    d = g["date"]
    in12, prev12 = d >= w["y1"], (d >= w["y2"]) & (d < w["y1"])
    years_back = ((w["t"] - d).dt.days // 365.25).clip(upper=4).where(d >= w["y5"])
    rec = g["recurring"].eq(True)
    cols = {
        "gifts_12m": in12.astype("int64"), "gifts_24m": (d >= w["y2"]).astype("int64"), "gifts_total": 1,
        "amount_12m": g["amount"].where(in12, 0.0), "amount_prev_12m": g["amount"].where(prev12, 0.0),
        "amount_total": g["amount"], "amount_max": g["amount"], "last_date": d, "first_date": d,
        "gave_prev12": prev12, "gave_before24": d < w["y2"], "gave_this_fy": d >= w["fy0"],
        "gave_last_fy": (d >= w["fy1"]) & (d < w["fy0"]), "gave_before_fy": d < w["fy1"],
        **{f"k{k}": years_back.eq(k) for k in range(5)},
        "recurring_12m": (rec & in12).astype("int64"), "recurring_recent": rec & (d >= w["recent"]),
    }
    wide = pd.DataFrame(cols, index=g.index)
    wide["person_id"] = g["person_id"]
    wide["last_key"] = d.astype("int64")  # ns since 1970: with seq below, the export's order among same-day gifts
    wide["last_seq"] = g["seq"]
    wide["amount_last"] = g["amount"]
    return _giving_combine(wide, grouped=False)


def _giving_combine(frame: pd.DataFrame, grouped: bool = True) -> pd.DataFrame:
    """Rows (gifts, or per-person partial results) to one row per person: counts and flags with bincount,
    amounts with pandas' compensated sum (the in-memory groupby's), extremes and the last gift by sorting."""
    pd = require_pandas()
    import numpy as np

    key = frame.index if grouped else frame["person_id"]
    codes, people = pd.factorize(np.asarray(key, dtype=object), sort=True)
    n = len(people)
    out: dict[str, Any] = {}
    for col in _COUNTS:
        out[col] = np.bincount(codes, weights=frame[col].to_numpy(dtype=float), minlength=n).astype(np.int64)
    for col in _FLAGS:
        out[col] = np.bincount(codes, weights=frame[col].to_numpy(dtype=float), minlength=n) > 0
    sums = frame[list(_AMOUNTS)].groupby(codes, sort=True).sum()
    for col in _AMOUNTS:
        out[col] = sums[col].to_numpy()

    def ends(order: Any) -> Any:
        ranked = codes[order]
        return order[np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])] if n else order

    def starts(order: Any) -> Any:
        ranked = codes[order]
        return order[np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])] if n else order

    amount_max = frame["amount_max"].to_numpy(dtype=float)
    out["amount_max"] = amount_max[ends(np.lexsort((amount_max, codes)))]
    first = frame["first_date"].to_numpy(dtype="datetime64[ns]")
    out["first_date"] = first[starts(np.lexsort((first.view("int64"), codes)))]
    last_key, last_seq = frame["last_key"].to_numpy(dtype=np.int64), frame["last_seq"].to_numpy(dtype=np.int64)
    latest = ends(np.lexsort((last_seq, last_key, codes)))  # the latest day, and the export's last row that day
    out["last_key"], out["last_seq"] = last_key[latest], last_seq[latest]
    out["amount_last"] = frame["amount_last"].to_numpy(dtype=float)[latest]
    out["last_date"] = frame["last_date"].to_numpy(dtype="datetime64[ns]")[latest]
    return pd.DataFrame(out, index=pd.Index(people, name="person_id", dtype=object))


def _windows(t: Any, fiscal_year_start: tuple[int, int]) -> dict[str, Any]:
    pd = require_pandas()
    fy0 = fiscal_year_containing(t, fiscal_year_start)
    return {"t": t, "y1": t - pd.DateOffset(years=1), "y2": t - pd.DateOffset(years=2),
            "y5": t - pd.DateOffset(years=5), "fy0": fy0, "fy1": fy0 - pd.DateOffset(years=1),
            "recent": t - pd.DateOffset(months=2)}


def _read_persons(source: GiftSource) -> pd.DataFrame:
    """The people export's columns the features use, converted as the files connector converts them."""
    pd = require_pandas()
    import dataclasses

    from assoc_ai_core.records.people import Person

    connector = FilesConnector(source.config)
    path = connector.file_for("person")
    if path is None:
        raise DataError(tr("Aucune personne trouvée.", "No people found."))
    if path.suffix.lower() not in CSV_SUFFIXES:  # Excel: small enough for the usual reader
        persons = connector.read_all("person")
        names = [f.name for f in dataclasses.fields(Person) if f.name != "raw"]
        frame = pd.DataFrame.from_records([tuple(getattr(p, n) for n in names) for p in persons], columns=names)
        return _person_frame(frame)
    columns, sep, encoding, dec = _csv_header(path, source.config)
    if columns is None:
        raise DataError(tr(f"{path.name} : en-tête introuvable.", f"{path.name}: no header found."))
    cmap = connector.column_map("person", columns)
    checked = [n for n in cmap if n in _PERSON_FIELDS or n in ("birth_year", "modified")]
    raw = pd.read_csv(path, sep=sep, encoding=encoding, dtype=str, keep_default_na=False, na_filter=False,
                      usecols=[cmap[n] for n in checked], skip_blank_lines=True)
    raw = raw.set_axis([n for n in sorted(checked, key=lambda n: cmap[n])], axis=1)
    ok = pd.Series(True, index=raw.index)
    out = pd.DataFrame(index=raw.index)
    for name in checked:
        if name in ("source_id", "email", "phone"):  # text never fails: stripped as the connector strips it
            out[name] = raw[name].astype(str).str.strip()
            continue
        mapped = _map_unique(raw[name], _converter(connector, "person", name, dec))
        ok &= ~mapped.map(lambda v: v is _BAD).astype(bool)
        out[name] = mapped
    ids = out["source_id"] if "source_id" in out else pd.Series("", index=out.index)
    email = out["email"] if "email" in out else pd.Series("", index=out.index)
    fallback = email.map(lambda v: str(v or "").strip().lower())
    ids = ids.where(ids.map(bool), fallback)
    out["source_id"] = ids
    ok &= ids.map(bool)
    out = out[ok]
    for name, default in (("email", ""), ("phone", ""), ("created", None), ("do_not_profile", False)):
        if name not in out:
            out[name] = default
    return _person_frame(out[list(_PERSON_FIELDS)])


def _person_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns typed as :meth:`PeopleData.frames` types them."""
    pd = require_pandas()
    out = frame[list(_PERSON_FIELDS)].copy()
    out["created"] = pd.to_datetime(out["created"], errors="coerce", utc=True).dt.tz_localize(None)
    return out.reset_index(drop=True)


def features_out_of_core(
    data: Any, as_of: Any = None, *, fiscal_year_start: str | int | tuple[int, int] | None = None,
    persons: Iterable[str] | None = None, include_do_not_profile: bool = False, scheduler: str | None = None,
    blocksize: str | int = _BLOCKSIZE,
) -> pd.DataFrame:
    """:func:`~assoc_ai_core.people.features.build_features` with the gifts read in partitions.

    ``as_of`` defaults to the data's end (the day after the latest dated record), as ``people features`` does.
    """

    pd = require_pandas()
    source = _require_source(data)
    start = parse_fiscal_year_start(fiscal_year_start)
    others = _other_frames(source)
    person = _read_persons(source)
    with dask_scheduler(scheduler), _typed_gifts(source, blocksize) as (gifts, summary):
        days = summary.loc[summary["kind"] == "day", "date"]

        def end_of(gift_days: Any) -> Any:
            if as_of is not None:
                return as_timestamp(as_of)
            stamps = [*([gift_days.max()] if len(gift_days) else []), *_latest_other(others)]
            if not stamps:
                raise DataError(tr("Aucune date dans les données (dons, adhésions, événements...).",
                                   "No dates in the data (gifts, memberships, events...)."))
            return as_timestamp(max(stamps)) + pd.Timedelta(days=1)

        def giving(main: Any, w: dict[str, Any]) -> Any:
            return main.reduction(_giving_chunk, aggregate=_giving_combine, combine=_giving_combine,
                                  chunk_kwargs={"w": w}, meta=_giving_chunk(_meta(), w), split_every=4)

        # the data's end is known before netting unless refunds cancel every gift of the last days: then read again
        guess = end_of(days)
        w = _windows(guess, start)
        netted, table = _second_pass(gifts, summary, lambda main: giving(main, w))
        t = end_of(netted.net_days.index)
        if t != guess:
            w = _windows(t, start)
            (table,) = _compute(giving(_main_gifts(gifts, netted), w))
    if len(netted.netted):
        table = pd.concat([table, _giving_chunk(netted.netted, w)])
    table = table.sort_index()
    # the in-memory code only needs to know who gave before t to decide who is known: one row each tells it
    stand_in = pd.DataFrame({"person_id": table.index.astype(str), "date": t - pd.Timedelta(days=1),
                             "amount": 1.0, "recurring": False})
    frames = {"person": person, "gift": stand_in, **others}
    out = build_features(frames, t, persons=persons, include_do_not_profile=include_do_not_profile,
                         fiscal_year_start=start)
    _fill_giving(out, table, w, bool(len(others["recurring_plan"])))
    _fill_known(out, person, table, others["membership"], t)
    return out


def _fill_giving(out: pd.DataFrame, table: pd.DataFrame, w: dict[str, Any], plans: bool) -> None:
    """The giving and recurring columns from the per-person table (finished by features.giving_columns)."""
    agg = table.reindex(out.index)
    agg["giving_years"] = sum(agg[f"k{k}"].eq(True).astype(int) for k in range(5))
    giving_columns(out, agg, t=w["t"], y1=w["y1"])
    out["recurring_gifts_12m"] = agg["recurring_12m"].fillna(0).astype(float)
    if not plans:  # without a plans export, an instalment in the last two months means a live plan
        out["recurring_active"] = agg["recurring_recent"].eq(True).astype(float)


def _fill_known(out: pd.DataFrame, person: pd.DataFrame, table: pd.DataFrame, memberships: pd.DataFrame,
                t: Any) -> None:
    """``months_known`` with the real first gift (the stand-in rows only told who gave)."""
    pd = require_pandas()
    people = person.drop_duplicates("source_id", keep="last").set_index("source_id")
    created = people["created"].reindex(out.index)
    members = membership_starts(memberships)
    members = members[members["start"] < t]
    first_membership = members.groupby("person_id")["start"].min().reindex(out.index)
    first_gift = table["first_date"].reindex(out.index)
    first_seen = pd.concat([created, first_gift, first_membership], axis=1).min(axis=1)
    months = (t - first_seen).dt.days / 30.4375
    out["months_known"] = months.fillna(0.0).clip(lower=0, upper=NEVER_MONTHS * 3)


def write_feature_table_out_of_core(
    data: Any, path: str | Path, *, as_of: Any = None, fiscal_year_start: str | int | tuple[int, int] | None = None,
    scheduler: str | None = None, blocksize: str | int = _BLOCKSIZE,
) -> Path:
    """:func:`~assoc_ai_core.people.scoring.write_feature_table` with the gifts read in partitions."""
    from assoc_ai_core.files import atomic_write, private_dir

    table = features_out_of_core(data, as_of, fiscal_year_start=fiscal_year_start, scheduler=scheduler,
                                 blocksize=blocksize).reset_index()
    p = Path(path)
    private_dir(p.parent)
    if p.suffix.lower() == ".parquet":
        return atomic_write(p, table.to_parquet(None, index=False))
    return atomic_write(p, table.to_csv(index=False))
