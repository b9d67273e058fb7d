"""Donor retention report, with the Fundraising Effectiveness Project (FEP) definitions.

Two periods are compared — the *prior* one and the *current* one (calendar
years by default, or any two consecutive 12-month windows).  Every donor of
either period falls in exactly one box:

* **retained**: gave in both periods;
* **new**: first gift ever in the current period;
* **recaptured**: gave in the current period and some time before the prior
  one, but not in the prior one;
* **lapsed**: gave in the prior period, not in the current one.

Rates: overall retention (retained ÷ prior donors); new-donor retention (of
the prior period's first-time donors, share who gave again); repeat-donor
retention (of prior donors who had also given in the period before, share
who gave again); recapture (of donors lapsed before the prior period, share
who came back).  Gains and losses balance exactly: by count, new +
recaptured − lapsed = current donors − prior donors; by amount, new +
recaptured + upgrades − lapsed − downgrades = current total − prior total.
All gifts count, recurring instalments included; refunded, zero and negative
gifts do not (a refund cancels the gift it refunds: see
:func:`~assoc_ai_core.people.dataset.net_gifts`).

Years are fiscal years starting on ``fiscal_year_start`` (1 January unless
told), named by the calendar year they start in.  A year is *complete* when
it ended before the data's end: the export date when given, otherwise the
day after the latest dated record of any kind (gift, membership, event,
volunteering).  Only complete years are chosen by default, so the year-end
giving peak is never missed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import percent, tr
from assoc_ai_core.people.dataset import PeopleData, load_people, require_pandas
from assoc_ai_core.people.features import as_timestamp, fiscal_year_containing, parse_fiscal_year_start

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["retention_report", "RetentionReport", "retention_history", "AMOUNT_BANDS", "data_end_of",
           "last_complete_year"]

AMOUNT_BANDS = ((0, 100), (100, 250), (250, 1000), (1000, 5000), (5000, float("inf")))


@dataclass
class RetentionReport:
    """Counts, rates and gain/loss of one prior → current comparison."""

    prior: tuple[str, str]
    current: tuple[str, str]
    donors_prior: int
    donors_current: int
    retained: int
    new: int
    recaptured: int
    lapsed: int
    lapsed_new: int
    lapsed_repeat: int
    overall_retention: float | None
    new_donor_retention: float | None
    repeat_retention: float | None
    recapture_rate: float | None
    amount_prior: float
    amount_current: float
    amount_retention: float | None
    gain_new: float
    gain_recaptured: float
    gain_upgraded: float
    loss_lapsed: float
    loss_downgraded: float
    upgraded: int = 0
    downgraded: int = 0
    by_band: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True  # False: the current period ends after the data does, its figures will still move
    data_end: str = ""  # first day not covered by the data
    gifts_set_aside: dict[str, int] = field(default_factory=dict)  # zero gifts and refunds, by kind (counts only)

    @property
    def net_count(self) -> int:
        """Donors gained minus donors lost (= current − prior)."""
        return self.new + self.recaptured - self.lapsed

    @property
    def net_amount(self) -> float:
        """Amount gained minus amount lost (= current total − prior total)."""
        return round(self.gain_new + self.gain_recaptured + self.gain_upgraded - self.loss_lapsed - self.loss_downgraded, 2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with the two net figures)."""
        out = asdict(self)
        out["net_count"] = self.net_count
        out["net_amount"] = self.net_amount
        return out

    def to_text(self, lang: str | None = None) -> str:
        """A few lines a fundraising manager can read."""
        def pc(v: float | None) -> str:
            return "—" if v is None else percent(v, lang)

        p = f"{self.prior[0]} → {self.prior[1]}"
        c = f"{self.current[0]} → {self.current[1]}"
        lines = []
        if not self.complete:
            lines.append(tr(f"Attention : la période actuelle n'est pas terminée dans les données (elles s'arrêtent "
                            f"avant le {self.data_end}) ; ses chiffres vont encore bouger.",
                            f"Warning: the current period is not over in the data (it stops before {self.data_end}); "
                            "its figures will still change.", lang))
        aside = self.gifts_set_aside
        if aside.get("zero") or aside.get("refunds_matched") or aside.get("refunds_partial") or aside.get("refunds_unmatched"):
            lines.append(tr(
                f"Dons non comptés : {aside.get('zero', 0)} à 0 € (remboursés ou annulés) ; remboursements : "
                f"{aside.get('refunds_matched', 0)} ont annulé leur don, {aside.get('refunds_partial', 0)} l'ont réduit, "
                f"{aside.get('refunds_unmatched', 0)} sans don correspondant.",
                f"Gifts not counted: {aside.get('zero', 0)} of 0 € (refunded or cancelled); refunds: "
                f"{aside.get('refunds_matched', 0)} cancelled their gift, {aside.get('refunds_partial', 0)} reduced it, "
                f"{aside.get('refunds_unmatched', 0)} without a matching gift.", lang))
        return "\n".join([*lines,
            tr(f"Période précédente {p} : {self.donors_prior} donateurs, {_money(self.amount_prior)} €",
               f"Prior period {p}: {self.donors_prior} donors, {_money(self.amount_prior)} €", lang),
            tr(f"Période actuelle {c} : {self.donors_current} donateurs, {_money(self.amount_current)} €",
               f"Current period {c}: {self.donors_current} donors, {_money(self.amount_current)} €", lang),
            tr(f"Fidélisation globale {pc(self.overall_retention)} ; nouveaux donateurs {pc(self.new_donor_retention)} ; "
               f"donateurs réguliers {pc(self.repeat_retention)} ; reconquête des perdus {pc(self.recapture_rate)}",
               f"Overall retention {pc(self.overall_retention)}; new donors {pc(self.new_donor_retention)}; "
               f"repeat donors {pc(self.repeat_retention)}; recapture of lapsed {pc(self.recapture_rate)}", lang),
            tr(f"Fidélisation en montant {pc(self.amount_retention)} (ce que les donateurs fidélisés ont donné cette "
               "période, rapporté au total de la période précédente)",
               f"Amount retention {pc(self.amount_retention)} (what retained donors gave this period, over the prior "
               "period's total)", lang),
            tr(f"Gagnés : {self.new} nouveaux + {self.recaptured} reconquis ; perdus : {self.lapsed} ; solde {self.net_count:+d}",
               f"Gained: {self.new} new + {self.recaptured} recaptured; lost: {self.lapsed}; net {self.net_count:+d}", lang),
            tr(f"Montants gagnés {self.gain_new + self.gain_recaptured + self.gain_upgraded:.0f} € "
               f"(nouveaux {self.gain_new:.0f}, reconquis {self.gain_recaptured:.0f}, hausses {self.gain_upgraded:.0f}) ; "
               f"perdus {self.loss_lapsed + self.loss_downgraded:.0f} € (départs {self.loss_lapsed:.0f}, baisses "
               f"{self.loss_downgraded:.0f}) ; solde {self.net_amount:+.0f} €",
               f"Amount gained {self.gain_new + self.gain_recaptured + self.gain_upgraded:.0f} € "
               f"(new {self.gain_new:.0f}, recaptured {self.gain_recaptured:.0f}, upgrades {self.gain_upgraded:.0f}); "
               f"lost {self.loss_lapsed + self.loss_downgraded:.0f} € (lapsed {self.loss_lapsed:.0f}, downgrades "
               f"{self.loss_downgraded:.0f}); net {self.net_amount:+.0f} €", lang),
        ])


def _money(value: float) -> str:
    return f"{value:,.0f}".replace(",", "\u202f")


def _rate(num: int | float, den: int | float) -> float | None:
    return float(num) / float(den) if den else None


def _given(gifts: pd.DataFrame, start: Any, end: Any) -> pd.Series:
    """The amount each donor gave from ``start`` (included) to ``end`` (excluded)."""
    w = gifts[(gifts["date"] >= start) & (gifts["date"] < end)]
    return w.groupby("person_id")["amount"].sum()


def data_end_of(people: PeopleData, exported: Any = None) -> pd.Timestamp:
    """The first day the data does not cover: the export date if given, else the day after the latest record."""
    pd = require_pandas()
    if exported is not None:
        return as_timestamp(exported)
    latest = people.latest_date()
    if latest is None:
        raise DataError(tr("Aucun don dans les données.", "No gifts in the data."))
    return as_timestamp(latest) + pd.Timedelta(days=1)


def last_complete_year(end: Any, fiscal_year_start: tuple[int, int] = (1, 1)) -> int:
    """The (starting calendar year of the) latest fiscal year that ended on or before ``end`` (exclusive end)."""
    pd = require_pandas()
    # the fiscal year holding the last covered day is complete only if that day is its last one
    last_day = as_timestamp(end) - pd.Timedelta(days=1)
    start = fiscal_year_containing(last_day, fiscal_year_start)
    complete = start + pd.DateOffset(years=1) <= as_timestamp(end)
    return int(start.year) if complete else int(start.year) - 1


def retention_report(
    data: Any,
    *,
    year: int | None = None,
    current_end: Any = None,
    fiscal_year_start: str | int | tuple[int, int] | None = None,
    exported: Any = None,
) -> RetentionReport:
    """Compare the prior and current periods.

    ``year``: the fiscal year of the current period, named by the calendar
    year it starts in (prior = the fiscal year before); fiscal years start on
    ``fiscal_year_start`` (``"MM-DD"`` or a month; default 1 January).
    ``current_end``: end (exclusive) of a rolling current 12-month window
    instead.  Default: the last fiscal year complete before the data's end —
    ``exported`` (the export date) when given, else the day after the latest
    dated record.
    """
    pd = require_pandas()
    people = load_people(data)
    gifts = people.frames()["gift"]
    if not len(gifts):
        raise DataError(tr("Aucun don dans les données : pas de rapport de fidélisation possible.",
                           "No gifts in the data: no retention report possible."))
    gifts = gifts.assign(person_id=gifts["person_id"].astype(str))
    end = data_end_of(people, exported)
    if current_end is not None:
        c1 = pd.Timestamp(current_end).normalize()
        c0 = c1 - pd.DateOffset(years=1)
    else:
        month, day = parse_fiscal_year_start(fiscal_year_start)
        if year is None:
            year = last_complete_year(end, (month, day))
        c0 = pd.Timestamp(year=year, month=month, day=day)
        c1 = c0 + pd.DateOffset(years=1)
    p0 = c0 - pd.DateOffset(years=1)
    pp0 = p0 - pd.DateOffset(years=1)

    cur, pri = _given(gifts, c0, c1), _given(gifts, p0, c0)
    before_prior = set(gifts.loc[gifts["date"] < p0, "person_id"])
    year_before_prior = set(_given(gifts, pp0, p0).index)
    return report_from_totals(cur, pri, before_prior, year_before_prior, c0=c0, c1=c1, end=end,
                              netting=people.gift_netting())


def report_from_totals(cur: pd.Series, pri: pd.Series, before_prior: set[str], year_before_prior: set[str], *,
                       c0: pd.Timestamp, c1: pd.Timestamp, end: pd.Timestamp, netting: Any) -> RetentionReport:
    """The FEP report from each donor's total in the current and prior fiscal years.

    ``cur`` and ``pri`` are indexed by person (donors only); ``before_prior``
    holds who gave before the prior year, ``year_before_prior`` who gave in the
    year before it.  The in-memory and the out-of-core paths both end here, so
    their reports cannot drift apart.
    """
    pd = require_pandas()
    p0 = c0 - pd.DateOffset(years=1)
    # plain dicts for the per-donor look-ups (a Series look-up costs ~10 µs; a million of them add up)
    cur_d, pri_d = cur.to_dict(), pri.to_dict()
    C, P = set(cur_d), set(pri_d)
    retained = P & C
    new = C - P - before_prior
    recaptured = (C & before_prior) - P
    lapsed = P - C
    prior_new = P - before_prior
    prior_repeat = P & year_before_prior
    lapsed_pool = before_prior - P
    upgrades = {d: cur_d[d] - pri_d[d] for d in retained if cur_d[d] > pri_d[d]}
    downgrades = {d: pri_d[d] - cur_d[d] for d in retained if cur_d[d] < pri_d[d]}
    bands = []
    for lo, hi in AMOUNT_BANDS:
        group = {d for d in P if lo <= pri_d[d] < hi}
        bands.append({"band": f"{lo:g}–{hi:g} €" if hi != float("inf") else f"{lo:g}+ €", "donors_prior": len(group),
                      "retained": len(group & C), "retention": _rate(len(group & C), len(group))})
    return RetentionReport(
        prior=(p0.date().isoformat(), (c0 - pd.Timedelta(days=1)).date().isoformat()),
        current=(c0.date().isoformat(), (c1 - pd.Timedelta(days=1)).date().isoformat()),
        donors_prior=len(P), donors_current=len(C), retained=len(retained), new=len(new), recaptured=len(recaptured),
        lapsed=len(lapsed), lapsed_new=len(lapsed & prior_new), lapsed_repeat=len(lapsed - prior_new),
        overall_retention=_rate(len(retained), len(P)),
        new_donor_retention=_rate(len(prior_new & C), len(prior_new)),
        repeat_retention=_rate(len(prior_repeat & C), len(prior_repeat)),
        recapture_rate=_rate(len(recaptured), len(lapsed_pool)),
        amount_prior=round(float(pri.sum()), 2), amount_current=round(float(cur.sum()), 2),
        amount_retention=_rate(float(cur[list(retained)].sum()), float(pri.sum())),
        gain_new=round(float(cur[list(new)].sum()), 2), gain_recaptured=round(float(cur[list(recaptured)].sum()), 2),
        gain_upgraded=round(float(sum(upgrades.values())), 2), loss_lapsed=round(float(pri[list(lapsed)].sum()), 2),
        loss_downgraded=round(float(sum(downgrades.values())), 2), upgraded=len(upgrades), downgraded=len(downgrades),
        by_band=bands, complete=bool(c1 <= end), data_end=end.date().isoformat(),
        gifts_set_aside={"zero": netting.zero, "refunds_matched": netting.refunds_matched,
                         "refunds_partial": netting.refunds_partial, "refunds_unmatched": netting.refunds_unmatched},
    )


def retention_history(
    data: Any, *, years: int = 5, fiscal_year_start: str | int | tuple[int, int] | None = None, exported: Any = None,
) -> list[RetentionReport]:
    """One report per fiscal year for the last ``years`` complete years that have a prior year."""
    people = load_people(data)
    gifts = people.frames()["gift"]
    if not len(gifts):
        raise DataError(tr("Aucun don dans les données.", "No gifts in the data."))
    start = parse_fiscal_year_start(fiscal_year_start)
    first_year = int(fiscal_year_containing(gifts["date"].min(), start).year)
    last_year = last_complete_year(data_end_of(people, exported), start)
    return [retention_report(people, year=y, fiscal_year_start=start, exported=exported)
            for y in range(max(first_year + 1, last_year - years + 1), last_year + 1)]
