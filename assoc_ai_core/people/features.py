"""Features of each person *as of* a reference date: giving (RFM, LYBUNT/SYBUNT...), membership, events, volunteering.

Only records dated strictly before ``as_of`` are used, so a feature table
built for a past date is exactly what was knowable that day — the rule that
keeps the models honest (no leakage of future data).  Windows are rolling:
"this year" is the 12 months before ``as_of``, "last year" the 12 months
before that.

Every gift counts, recurring instalments included (a monthly donor is a
donor: FEP counts them so); refunded, zero and negative gifts never do (see
:func:`~assoc_ai_core.people.dataset.net_gifts`).  Instalments are also
counted on their own (``recurring_gifts_12m``, ``recurring_active``) so a
model can tell a direct debit from answers to appeals.

Two kinds of LYBUNT/SYBUNT sit side by side: ``lybunt``/``sybunt`` are
*rolling* (the 12 months before ``as_of`` and the 12 before those), the
fundraiser's early-warning flags; ``lybunt_fy``/``sybunt_fy`` follow the
*fiscal-year* definition CRMs report (last fiscal year vs the fiscal year
to date, ``fiscal_year_start`` = 1 January unless told).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from assoc_ai_core.people.dataset import PeopleData, require_pandas

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "build_features", "FEATURES", "FEATURE_NAMES", "BY_NAME", "FeatureInfo", "as_timestamp", "person_table",
    "membership_starts", "NEVER_MONTHS", "parse_fiscal_year_start", "fiscal_year_containing",
]

NEVER_MONTHS = 120.0  # "never" is shown to the models as ten years ago, with an explicit flag beside it


@dataclass(frozen=True)
class FeatureInfo:
    """How a feature is named and phrased for people; ``{v}`` is the value, ``{y}`` a year."""

    name: str
    fr: str
    en: str
    log: bool = False  # counts and amounts enter the model as log(1 + x)
    kind: str = "giving"


FEATURES: tuple[FeatureInfo, ...] = (
    FeatureInfo("gifts_12m", "{v:.0f} don(s) sur les 12 derniers mois", "{v:.0f} gift(s) in the last 12 months", True),
    FeatureInfo("gifts_24m", "{v:.0f} don(s) sur 24 mois", "{v:.0f} gift(s) over 24 months", True),
    FeatureInfo("gifts_total", "{v:.0f} don(s) en tout", "{v:.0f} gift(s) in all", True),
    FeatureInfo("amount_12m", "{v:.0f} € donnés sur 12 mois", "{v:.0f} € given over 12 months", True),
    FeatureInfo("amount_total", "{v:.0f} € donnés en tout", "{v:.0f} € given in all", True),
    FeatureInfo("amount_last", "dernier don de {v:.0f} €", "last gift of {v:.0f} €", True),
    FeatureInfo("amount_max", "plus gros don : {v:.0f} €", "largest gift: {v:.0f} €", True),
    FeatureInfo("months_since_last_gift", "dernier don il y a {v:.0f} mois", "last gift {v:.0f} months ago"),
    FeatureInfo("months_since_first_gift", "donateur depuis {v:.0f} mois", "donor for {v:.0f} months"),
    FeatureInfo("never_gave", "n'a jamais donné", "has never given"),
    FeatureInfo("giving_years", "a donné {v:.0f} année(s) sur les 5 dernières", "gave in {v:.0f} of the last 5 years"),
    FeatureInfo("lybunt", "a donné il y a 12 à 24 mois, pas depuis (LYBUNT glissant)",
                "gave 12 to 24 months ago, not since (rolling LYBUNT)"),
    FeatureInfo("sybunt", "a donné il y a plus de 24 mois, pas depuis (SYBUNT glissant)",
                "gave over 24 months ago, not since (rolling SYBUNT)"),
    FeatureInfo("lybunt_fy", "a donné l'exercice précédent, pas encore cet exercice (LYBUNT)",
                "gave last fiscal year, not yet this fiscal year (LYBUNT)"),
    FeatureInfo("sybunt_fy", "a donné un exercice plus ancien, ni le précédent ni celui-ci (SYBUNT)",
                "gave in an earlier fiscal year, neither last nor this one (SYBUNT)"),
    FeatureInfo("first_year_donor", "premier don cette année", "first gift this year"),
    FeatureInfo("repeat_donor", "a donné cette année et l'an dernier", "gave this year and last year"),
    FeatureInfo("upgrade", "dons en hausse sur un an", "giving up on last year"),
    FeatureInfo("downgrade", "dons en baisse sur un an", "giving down on last year"),
    FeatureInfo("recurring_active", "don régulier en cours", "active regular gift"),
    FeatureInfo("recurring_gifts_12m", "{v:.0f} prélèvement(s) sur 12 mois", "{v:.0f} regular instalment(s) in 12 months", True),
    FeatureInfo("member_seasons", "adhérent {v:.0f} saison(s)", "member for {v:.0f} season(s)", True, "membership"),
    FeatureInfo("member_years", "adhérent depuis {y}", "member since {y}", False, "membership"),
    FeatureInfo("member_this_year", "adhésion en cours (12 derniers mois)", "membership in the last 12 months", False, "membership"),
    FeatureInfo("member_streak", "{v:.0f} saison(s) d'affilée", "{v:.0f} season(s) in a row", True, "membership"),
    FeatureInfo("member_lapsed", "ancien adhérent non renouvelé", "former member who did not renew", False, "membership"),
    FeatureInfo("months_since_membership", "dernière adhésion il y a {v:.0f} mois", "last membership {v:.0f} months ago", False, "membership"),
    FeatureInfo("last_fee", "cotisation de {v:.0f} €", "fee of {v:.0f} €", True, "membership"),
    FeatureInfo("events_12m", "{v:.0f} événement(s) sur 12 mois", "{v:.0f} event(s) in 12 months", True, "events"),
    FeatureInfo("events_total", "{v:.0f} événement(s) en tout", "{v:.0f} event(s) in all", True, "events"),
    FeatureInfo("months_since_event", "dernier événement il y a {v:.0f} mois", "last event {v:.0f} months ago", False, "events"),
    FeatureInfo("cancellations_12m", "{v:.0f} désistement(s) sur 12 mois", "{v:.0f} cancellation(s) in 12 months", True, "events"),
    FeatureInfo("volunteer_hours_12m", "{v:.0f} h de bénévolat sur 12 mois", "{v:.0f} volunteer hour(s) in 12 months", True, "volunteering"),
    FeatureInfo("volunteer_hours_total", "{v:.0f} h de bénévolat en tout", "{v:.0f} volunteer hour(s) in all", True, "volunteering"),
    FeatureInfo("volunteer_missions", "{v:.0f} mission(s) bénévole(s)", "{v:.0f} volunteer mission(s)", True, "volunteering"),
    FeatureInfo("months_since_volunteering", "bénévole il y a {v:.0f} mois", "volunteered {v:.0f} months ago", False, "volunteering"),
    FeatureInfo("months_known", "connu depuis {v:.0f} mois", "known for {v:.0f} months", False, "contact"),
    FeatureInfo("has_email", "courriel connu", "e-mail known", False, "contact"),
    FeatureInfo("has_phone", "téléphone connu", "phone known", False, "contact"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
BY_NAME = {f.name: f for f in FEATURES}


def as_timestamp(value: date | datetime | str | None) -> pd.Timestamp:
    """A naive pandas Timestamp at midnight of ``value`` (ISO string, date or datetime)."""
    pd = require_pandas()
    if value is None:
        raise ValueError("as_of is required")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        from assoc_ai_core.errors import DataError
        from assoc_ai_core.i18n import tr

        raise DataError(tr(f"Date de référence illisible : {value!r}. Écrivez-la AAAA-MM-JJ (ex. 2024-12-31).",
                           f"Unreadable reference date: {value!r}. Write it YYYY-MM-DD (e.g. 2024-12-31).")) from exc
    if ts.tzinfo is not None:
        ts = ts.tz_convert(None)
    return ts.normalize()


def person_table(frames: dict[str, pd.DataFrame], as_of: Any) -> pd.DataFrame:
    """People known at ``as_of`` (created before it, or with any activity before it), indexed by id."""
    require_pandas()
    t = as_timestamp(as_of)
    persons = frames["person"].drop_duplicates("source_id", keep="last").set_index("source_id")
    active_ids: set[str] = set()
    for rtype, col in (("gift", "date"), ("membership", "start"), ("participation", "date"), ("volunteer_hours", "date")):
        f = frames[rtype]
        if len(f):
            active_ids |= set(f.loc[f[col] < t, "person_id"].astype(str))
    created = persons["created"]
    known = (created.notna() & (created < t)) | persons.index.isin(list(active_ids))
    return persons[known]


def parse_fiscal_year_start(value: str | int | tuple[int, int] | None) -> tuple[int, int]:
    """(month, day) from ``"MM-DD"``, a month number (``7`` or ``"7"`` = 1 July) or a tuple; None = 1 January."""
    from assoc_ai_core.errors import DataError
    from assoc_ai_core.i18n import tr

    if value is None:
        return (1, 1)
    try:
        if isinstance(value, tuple):
            month, day = int(value[0]), int(value[1])
        elif isinstance(value, int) or str(value).strip().isdigit():
            month, day = int(value), 1
        else:
            month_text, day_text = str(value).strip().split("-")
            month, day = int(month_text), int(day_text)
        date(2001, month, day)  # a year without 29 February: a fiscal year must start every year
    except (ValueError, TypeError) as exc:
        raise DataError(tr(f"Début d'exercice illisible : {value!r}. Écrivez MM-JJ (ex. 07-01 pour le 1er juillet) "
                           "ou le numéro du mois.",
                           f"Unreadable fiscal-year start: {value!r}. Write MM-DD (e.g. 07-01 for 1 July) "
                           "or the month number.")) from exc
    return (month, day)


def fiscal_year_containing(day: Any, fiscal_year_start: tuple[int, int] = (1, 1)) -> pd.Timestamp:
    """The first day of the fiscal year that contains ``day``."""
    t = as_timestamp(day)
    month, dom = fiscal_year_start
    pd = require_pandas()
    start = pd.Timestamp(year=t.year, month=month, day=dom)
    return start if start <= t else pd.Timestamp(year=t.year - 1, month=month, day=dom)


def build_features(
    data: PeopleData | dict[str, pd.DataFrame],
    as_of: Any,
    *,
    persons: Iterable[str] | None = None,
    include_do_not_profile: bool = False,
    fiscal_year_start: str | int | tuple[int, int] | None = None,
) -> pd.DataFrame:
    """The feature table of every person known at ``as_of`` (rows indexed by person id, columns :data:`FEATURE_NAMES`).

    People flagged ``do_not_profile`` are left out unless
    ``include_do_not_profile`` (used only to count them in reports).
    ``fiscal_year_start`` (default 1 January) places the fiscal-year flags.
    """
    pd = require_pandas()
    frames = data.frames() if isinstance(data, PeopleData) else data
    w = _Windows.before(as_timestamp(as_of), parse_fiscal_year_start(fiscal_year_start))
    people = person_table(frames, w.t)
    if not include_do_not_profile:
        people = people[~people["do_not_profile"].eq(True)]
    if persons is not None:
        people = people[people.index.isin(list(persons))]
    out = pd.DataFrame(index=people.index.astype(str))
    out.index.name = "person_id"
    gifts = _before(frames["gift"], out.index, w.t)
    first_gift = _giving_features(out, gifts, w)
    _recurring_features(out, gifts, frames["recurring_plan"], w)
    first_membership = _membership_features(out, frames["membership"], w)
    _event_features(out, frames["participation"], w)
    _volunteering_features(out, frames["volunteer_hours"], w)
    _contact_features(out, people, [first_gift, first_membership], w)
    return out[list(FEATURE_NAMES)].astype(float)


@dataclass(frozen=True)
class _Windows:
    """The reference day ``t``, the starts of the rolling windows before it (12 months, 24 months, 5 years)
    and of the current and last fiscal years."""

    t: pd.Timestamp
    y1: pd.Timestamp
    y2: pd.Timestamp
    y5: pd.Timestamp
    fy0: pd.Timestamp
    fy1: pd.Timestamp

    @classmethod
    def before(cls, t: pd.Timestamp, fiscal_year_start: tuple[int, int] = (1, 1)) -> _Windows:
        """The windows that end at ``t``."""
        pd = require_pandas()
        fy0 = fiscal_year_containing(t, fiscal_year_start)
        return cls(t, t - pd.DateOffset(years=1), t - pd.DateOffset(years=2), t - pd.DateOffset(years=5),
                   fy0, fy0 - pd.DateOffset(years=1))

    def months_since(self, earlier: pd.Series) -> pd.Series:
        """Months from each date of ``earlier`` to ``t`` (NaN stays NaN)."""
        return (self.t - earlier).dt.days / 30.4375

    def months_since_or_never(self, earlier: pd.Series) -> pd.Series:
        """Like :meth:`months_since`, with "never" (NaN) and anything older shown as :data:`NEVER_MONTHS`."""
        return self.months_since(earlier).fillna(NEVER_MONTHS).clip(upper=NEVER_MONTHS)


def _per_person(values: pd.Series, index: pd.Index) -> pd.Series:
    """``values`` aligned on the feature table; people without any record get 0."""
    return values.reindex(index).fillna(0).astype(float)


def _before(frame: pd.DataFrame, index: pd.Index, t: pd.Timestamp, column: str = "date") -> pd.DataFrame:
    """The records of the people in ``index`` dated (``column``) before ``t``, with ``person_id`` as text."""
    kept = frame[(frame[column] < t) & frame["person_id"].astype(str).isin(index)]
    return kept.assign(person_id=lambda d: d["person_id"].astype(str))


def _giving_features(out: pd.DataFrame, gifts: pd.DataFrame, w: _Windows) -> pd.Series:
    """RFM and LYBUNT/SYBUNT columns from every gift; returns each person's first gift date (NaT if none)."""

    g = gifts.assign(
        in12=gifts["date"] >= w.y1, in24=gifts["date"] >= w.y2,
        prev12=(gifts["date"] >= w.y2) & (gifts["date"] < w.y1), before24=gifts["date"] < w.y2,
        this_fy=gifts["date"] >= w.fy0, last_fy=(gifts["date"] >= w.fy1) & (gifts["date"] < w.fy0),
        before_fy=gifts["date"] < w.fy1,
    )
    g["amount12"] = g["amount"].where(g["in12"], 0.0)
    g["amount_prev12"] = g["amount"].where(g["prev12"], 0.0)
    agg = g.groupby("person_id").agg(
        gifts_12m=("in12", "sum"), gifts_24m=("in24", "sum"), gifts_total=("amount", "size"),
        amount_12m=("amount12", "sum"), amount_prev_12m=("amount_prev12", "sum"), amount_total=("amount", "sum"),
        amount_max=("amount", "max"), last_date=("date", "max"), first_date=("date", "min"),
        gave_prev12=("prev12", "any"), gave_before24=("before24", "any"),
        gave_this_fy=("this_fy", "any"), gave_last_fy=("last_fy", "any"), gave_before_fy=("before_fy", "any"),
    )
    agg["amount_last"] = g.sort_values(["person_id", "date"]).groupby("person_id")["amount"].last()
    # distinct rolling years with a gift among the last five
    recent = g[g["date"] >= w.y5]
    years_back = ((w.t - recent["date"]).dt.days // 365.25).clip(upper=4)
    agg["giving_years"] = recent.assign(k=years_back).groupby("person_id")["k"].nunique()
    agg = agg.reindex(out.index)
    giving_columns(out, agg, t=w.t, y1=w.y1)
    return agg["first_date"]


def giving_columns(out: pd.DataFrame, agg: pd.DataFrame, *, t: pd.Timestamp, y1: pd.Timestamp) -> None:
    """The giving columns of the feature table from each person's gift aggregates (``agg``, aligned on ``out``).

    The in-memory path and the out-of-core path (:mod:`assoc_ai_core.people.outofcore`) both end here, so their
    tables cannot drift apart.
    """
    import numpy as np

    w = _Windows(t, y1, y1, y1, y1, y1)  # only t is read by months_since*
    for col in ("gifts_12m", "gifts_24m", "gifts_total", "amount_12m", "amount_total", "amount_last", "amount_max", "giving_years"):
        out[col] = agg[col].fillna(0).astype(float)
    out["months_since_last_gift"] = w.months_since_or_never(agg["last_date"])
    out["months_since_first_gift"] = w.months_since(agg["first_date"]).fillna(0.0).clip(upper=NEVER_MONTHS * 3)
    out["never_gave"] = agg["last_date"].isna().astype(float)
    gave12 = out["gifts_12m"] > 0
    gave_prev = agg["gave_prev12"].eq(True)
    gave_before = agg["gave_before24"].eq(True)
    out["lybunt"] = (gave_prev & ~gave12).astype(float)
    out["sybunt"] = (gave_before & ~gave_prev & ~gave12).astype(float)
    this_fy, last_fy = agg["gave_this_fy"].eq(True), agg["gave_last_fy"].eq(True)
    out["lybunt_fy"] = (last_fy & ~this_fy).astype(float)
    out["sybunt_fy"] = (agg["gave_before_fy"].eq(True) & ~last_fy & ~this_fy).astype(float)
    out["first_year_donor"] = (agg["first_date"] >= y1).fillna(False).astype(float)
    out["repeat_donor"] = (gave12 & gave_prev).astype(float)
    prev_amount = agg["amount_prev_12m"].fillna(0.0)
    both = (out["amount_12m"] > 0) & (prev_amount > 0)
    ratio = np.log((out["amount_12m"] + 1) / (prev_amount + 1))
    out["upgrade"] = (both & (ratio > np.log(1.1))).astype(float)
    out["downgrade"] = (both & (ratio < -np.log(1.1))).astype(float)


def _recurring_features(out: pd.DataFrame, gifts: pd.DataFrame, plans: pd.DataFrame, w: _Windows) -> None:
    """Whether a regular gift is running at ``t``, and its instalments over the last 12 months."""
    pd = require_pandas()
    instalments = gifts[gifts["recurring"].eq(True)]
    out["recurring_gifts_12m"] = _per_person(instalments[instalments["date"] >= w.y1].groupby("person_id").size(),
                                             out.index)
    if len(plans):
        live = plans[(plans["start"].notna()) & (plans["start"] < w.t) & (plans["end"].isna() | (plans["end"] >= w.t))]
        out["recurring_active"] = out.index.isin(live["person_id"].astype(str)).astype(float)
    else:  # exports without a plans file: an instalment in the last two months means a live plan
        recent = instalments[instalments["date"] >= w.t - pd.DateOffset(months=2)]
        out["recurring_active"] = out.index.isin(recent["person_id"]).astype(float)


def _membership_features(out: pd.DataFrame, memberships: pd.DataFrame, w: _Windows) -> pd.Series:
    """Seasons, streak, lapse and last fee; returns each person's first membership start (NaT if none)."""
    members = _before(membership_starts(memberships), out.index, w.t, "start")
    magg = members.groupby("person_id").agg(
        member_seasons=("season_key", "nunique"), first=("start", "min"), last=("start", "max"),
    ).reindex(out.index)
    out["member_seasons"] = magg["member_seasons"].fillna(0).astype(float)
    first_year = magg["first"].dt.year.astype(float)
    out["member_years"] = (w.t.year - first_year).fillna(0.0).clip(lower=0.0)
    out["member_this_year"] = (magg["last"] >= w.y1).fillna(False).astype(float)
    out["member_lapsed"] = ((out["member_seasons"] > 0) & (out["member_this_year"] == 0)).astype(float)
    out["months_since_membership"] = w.months_since_or_never(magg["last"])
    out["last_fee"] = _per_person(members.sort_values(["person_id", "start"]).groupby("person_id")["fee"].last(),
                                  out.index)
    out["member_streak"] = _per_person(_streaks(members), out.index)
    return magg["first"]


def _event_features(out: pd.DataFrame, participations: pd.DataFrame, w: _Windows) -> None:
    """Events attended (12 months, in all, how long ago) and cancellations over 12 months."""
    ev = _before(participations, out.index, w.t)
    status = ev["status"].fillna("").str.lower()
    cancelled = status.str.contains("annul|cancel|desist|désist|absent|no.show", regex=True)
    came = ev[~cancelled]
    out["events_12m"] = _per_person(came[came["date"] >= w.y1].groupby("person_id").size(), out.index)
    out["events_total"] = _per_person(came.groupby("person_id").size(), out.index)
    out["months_since_event"] = w.months_since_or_never(came.groupby("person_id")["date"].max().reindex(out.index))
    gone = ev[cancelled & (ev["date"] >= w.y1)]
    out["cancellations_12m"] = _per_person(gone.groupby("person_id").size(), out.index)


def _volunteering_features(out: pd.DataFrame, hours: pd.DataFrame, w: _Windows) -> None:
    """Volunteer hours (12 months, in all), missions, and how long ago."""
    hrs = _before(hours, out.index, w.t)
    out["volunteer_hours_12m"] = _per_person(hrs[hrs["date"] >= w.y1].groupby("person_id")["hours"].sum(), out.index)
    out["volunteer_hours_total"] = _per_person(hrs.groupby("person_id")["hours"].sum(), out.index)
    out["volunteer_missions"] = _per_person(hrs.groupby("person_id")["mission"].nunique(), out.index)
    last = hrs.groupby("person_id")["date"].max().reindex(out.index)
    out["months_since_volunteering"] = w.months_since_or_never(last)


def _contact_features(out: pd.DataFrame, people: pd.DataFrame, first_dates: list[pd.Series], w: _Windows) -> None:
    """How long the person has been known (creation, first gift or first membership) and how to reach them."""
    pd = require_pandas()
    created = people["created"].reindex(out.index)
    first_seen = pd.concat([created, *first_dates], axis=1).min(axis=1)
    out["months_known"] = w.months_since(first_seen).fillna(0.0).clip(lower=0, upper=NEVER_MONTHS * 3)
    out["has_email"] = people["email"].reindex(out.index).fillna("").astype(str).str.contains("@").astype(float)
    out["has_phone"] = (people["phone"].reindex(out.index).fillna("").astype(str).str.len() > 5).astype(float)


def membership_starts(frame: pd.DataFrame) -> pd.DataFrame:
    """Paid memberships with a start date (from ``start``, else the first year written in ``season``).

    Also used by the churn task to find who renewed; ``season_key`` counts
    ``"2024"`` and ``"2024-2025"`` as one season.
    """
    pd = require_pandas()
    if not len(frame):
        return pd.DataFrame({"person_id": [], "start": pd.Series([], dtype="datetime64[ns]"), "season_key": [], "fee": []})
    f = frame.copy()
    f["person_id"] = f["person_id"].astype(str)
    year = f["season"].astype(str).str.extract(r"((?:19|20)\d\d)")[0]
    from_season = pd.to_datetime(year + "-01-01", errors="coerce")
    f["start"] = f["start"].fillna(from_season)
    f["season_key"] = year.fillna(f["season"].astype(str))
    status = f["status"].fillna("").str.lower()
    f = f[~status.str.contains("annul|cancel|rembours|refund|impay|unpaid", regex=True)]
    return f[f["start"].notna()]


def _streaks(members: pd.DataFrame) -> pd.Series:
    """Length of the run of consecutive seasons ending with each person's latest one."""
    pd = require_pandas()
    years = members.assign(y=members["start"].dt.year)[["person_id", "y"]].drop_duplicates()
    out = {}
    for pid, ys in years.groupby("person_id")["y"]:
        ordered = sorted(ys, reverse=True)
        run = 1
        for a, b in pairwise(ordered):
            if a - b != 1:
                break
            run += 1
        out[pid] = run
    return pd.Series(out, dtype=float)
