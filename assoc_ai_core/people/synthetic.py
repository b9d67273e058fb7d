"""Synthetic association data for tests, examples and benchmarks (no real person in it).

People have a hidden *attachment* to the association that drives how often
they give, whether they renew their membership, come to events and
volunteer, and when they drift away — so the models have a real signal to
find, and the tests can check they find it.  Everything is seeded.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from assoc_ai_core.people.dataset import PeopleData
from assoc_ai_core.records.people import (
    Gift,
    Membership,
    Participation,
    Person,
    RecurringPlan,
    VolunteerHours,
    VolunteerMission,
)

__all__ = ["generate_people", "write_exports", "SKILLS"]

_FIRST_NAMES = ("Camille", "Léa", "Chloé", "Manon", "Inès", "Jeanne", "Louise", "Élodie", "Anne", "Marie", "Zoé",
               "Hélène", "Lucas", "Hugo", "Louis", "Jules", "Gabriel", "Arthur", "Théo", "Mathis", "Nicolas",
               "Jean-Pierre", "François", "Olivier", "Karim", "Yasmine", "Mehdi", "Sofia", "Noé", "Paul")
_LAST_NAMES = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
              "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
              "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez", "Le Goff",
              "de la Tour", "N'Diaye", "Benali", "Nguyen", "Rousseau", "Blanc", "Guérin", "Muller", "Henry", "Roussel")
_PLACES = (("75011", "Paris"), ("69003", "Lyon"), ("13001", "Marseille"), ("33000", "Bordeaux"), ("31000", "Toulouse"),
          ("44000", "Nantes"), ("59000", "Lille"), ("67000", "Strasbourg"), ("35000", "Rennes"), ("01000", "Bourg-en-Bresse"),
          ("20000", "Ajaccio"), ("20200", "Bastia"), ("97400", "Saint-Denis"), ("97200", "Fort-de-France"))
SKILLS = ("accueil", "cuisine", "logistique", "comptabilité", "informatique", "animation", "communication",
          "bricolage", "conduite", "soutien scolaire")
_CAMPAIGNS = ("Appel de printemps", "Fin d'année", "Urgence", "Gala", "Site web")
_METHODS = ("CB", "chèque", "virement", "prélèvement", "espèces")
_EVENTS = ("Assemblée générale", "Fête de quartier", "Journée du patrimoine", "Brocante", "Concert de soutien",
          "Visite guidée")


def _month_starts(start: date, end: date) -> list[date]:
    months, cur = [], date(start.year, start.month, 1)
    while cur <= end:
        months.append(cur)
        cur = date(cur.year + (cur.month == 12), cur.month % 12 + 1, 1)
    return months


def generate_people(
    n_people: int = 600,
    *,
    start: date = date(2017, 1, 1),
    end: date = date(2024, 12, 31),
    seed: int = 0,
    source: str = "synthetic",
    duplicates: int = 0,
) -> PeopleData:
    """Build a seeded association: people, gifts, plans, memberships, events, missions, volunteer hours.

    ``duplicates`` adds that many near-copies of existing people (typos,
    another source, phone written differently) for de-duplication tests.
    """
    import numpy as np

    # One generator drawn in a fixed order: the steps below must keep their order for a seed to give the same data.
    rng = np.random.default_rng(seed)
    cal = _Calendar(_month_starts(start, end), list(range(start.year, end.year + 1)), end, source)
    crowd = _draw_crowd(rng, n_people, len(cal.months))
    data = PeopleData()
    for i in range(n_people):
        _add_person_and_activity(data, rng, crowd, i, cal)
    missions = _add_missions(data, rng, n_people, cal)
    _add_volunteer_hours(data, rng, crowd, missions, cal)
    for k in range(duplicates):
        original = data.persons[int(rng.integers(len(data.persons)))]
        data.persons.append(_near_copy(original, k, rng, source="autre_source"))
    return data


@dataclass(frozen=True)
class _Calendar:
    """The months (first days) and calendar years the data spans, its last day, and the source name."""

    months: list[date]
    years: list[int]
    end: date
    source: str


@dataclass(frozen=True)
class _Crowd:
    """The hidden traits of the people, one array entry per person."""

    attachment: Any
    joined: Any  # index of the month each person first came
    alive: Any  # (people, months): still close to the association that month
    is_donor: Any
    is_member: Any
    is_volunteer: Any
    recurring: Any
    mean_gift: Any


def _draw_crowd(rng: Any, n_people: int, n_months: int) -> _Crowd:
    import numpy as np

    attachment = rng.normal(0, 1, n_people)
    joined = rng.integers(0, max(1, n_months - 6), n_people)
    alive = _alive_months(rng, joined, 1 / (1 + np.exp(3.6 + 0.9 * attachment)), n_months)
    is_donor = rng.random(n_people) < 1 / (1 + np.exp(-(0.4 + 0.8 * attachment)))
    is_member = rng.random(n_people) < 1 / (1 + np.exp(-(-0.4 + 0.9 * attachment)))
    is_volunteer = rng.random(n_people) < 1 / (1 + np.exp(-(-1.8 + 0.9 * attachment)))
    recurring = is_donor & (rng.random(n_people) < 0.10)
    mean_gift = np.exp(rng.normal(3.4 + 0.25 * attachment, 0.5))
    return _Crowd(attachment, joined, alive, is_donor, is_member, is_volunteer, recurring, mean_gift)


def _alive_months(rng: Any, joined: Any, hazard: Any, n_months: int) -> Any:
    """Whether each person is still close to the association, month by month: each month they may drift away."""
    import numpy as np

    alive = np.zeros((len(joined), n_months), dtype=bool)
    for i in range(len(joined)):
        t = joined[i]
        while t < n_months and rng.random() > hazard[i]:
            alive[i, t] = True
            t += 1
        if t < n_months and rng.random() < 0.08:  # a few come back after a break
            back = t + int(rng.integers(12, 30))
            stay = back
            while stay < n_months and rng.random() > hazard[i]:
                alive[i, stay] = True
                stay += 1
    return alive


def _add_person_and_activity(data: PeopleData, rng: Any, crowd: _Crowd, i: int, cal: _Calendar) -> None:
    """Person ``i``, then their gifts and plan (donors), memberships (members) and event registrations."""
    import numpy as np

    person = _person(rng, i, cal.months[crowd.joined[i]], cal)
    data.persons.append(person)
    active = np.flatnonzero(crowd.alive[i])
    if crowd.is_donor[i]:
        _add_gifts(data, rng, person.source_id, active, crowd.attachment[i], crowd.mean_gift[i], cal)
        if crowd.recurring[i] and len(active) > 3:
            _add_plan(data, i, person.source_id, active, crowd.mean_gift[i], cal)
    if crowd.is_member[i]:
        _add_memberships(data, rng, person.source_id, active, crowd.attachment[i], cal)
    _add_participations(data, rng, person.source_id, active, crowd.attachment[i], cal)


def _person(rng: Any, i: int, joined: date, cal: _Calendar) -> Person:
    first = _FIRST_NAMES[int(rng.integers(len(_FIRST_NAMES)))]
    last = _LAST_NAMES[int(rng.integers(len(_LAST_NAMES)))]
    postcode, city = _PLACES[int(rng.integers(len(_PLACES)))]
    gender = ("F", "M", "")[int(rng.choice(3, p=[0.5, 0.45, 0.05]))]
    birth = int(rng.integers(1940, 2006))
    age = cal.end.year - birth
    band = "<30" if age < 30 else "30-49" if age < 50 else "50-69" if age < 70 else "70+"
    # 063x and 069x are overseas mobile ranges: keep metropolitan people on metropolitan numbers
    prefix = f"06{int(rng.choice([0, 1, 2, 4, 5, 6, 7, 8]))}" if rng.random() < 0.7 else f"07{int(rng.integers(5, 9))}"
    mobile = prefix + "".join(str(int(d)) for d in rng.integers(0, 10, 10 - len(prefix)))
    if postcode.startswith("974"):
        mobile = "0692" + "".join(str(int(d)) for d in rng.integers(0, 10, 6))
    email = f"{_ascii(first)}.{_ascii(last)}{i}@exemple.fr"
    created = datetime.combine(joined, datetime.min.time()) + timedelta(days=int(rng.integers(0, 27)))
    return Person(
        source=cal.source, source_id=f"P{i + 1:05d}", first_name=first, last_name=last, email=email,
        phone=f"{mobile[:2]} {mobile[2:4]} {mobile[4:6]} {mobile[6:8]} {mobile[8:]}", postcode=postcode, city=city,
        birth_year=birth, age_band=band, gender=gender, created=created, modified=created,
        do_not_profile=bool(rng.random() < 0.03),
    )


def _add_gifts(data: PeopleData, rng: Any, pid: str, active: Any, attachment: float, mean_gift: float,
               cal: _Calendar) -> None:
    """One-off gifts in the months the donor is close, more in December and in spring."""
    import numpy as np

    p_gift = 1 / (1 + np.exp(-(-2.1 + 0.7 * attachment)))
    season = np.array([1.6 if m.month == 12 else 1.2 if m.month in (3, 4) else 0.8 for m in cal.months])
    for t in active:
        if rng.random() < min(0.95, p_gift * season[t]):
            amount = float(np.round(mean_gift * np.exp(rng.normal(0, 0.35)) / 5) * 5) or 5.0
            day = cal.months[t] + timedelta(days=int(rng.integers(0, 27)))
            data.gifts.append(Gift(
                source=cal.source, source_id=f"G{len(data.gifts) + 1:07d}", person_id=pid, amount=amount, date=day,
                campaign=_CAMPAIGNS[int(rng.integers(len(_CAMPAIGNS)))],
                payment_method=_METHODS[int(rng.integers(len(_METHODS)))],
            ))


def _add_plan(data: PeopleData, i: int, pid: str, active: Any, mean_gift: float, cal: _Calendar) -> None:
    """A monthly direct debit over the donor's active months, and its instalments."""
    first_m, last_m = int(active[0]), int(active[-1])
    plan_id = f"R{i + 1:05d}"
    amount = float(max(5, round(mean_gift / 3)))
    ended = last_m < len(cal.months) - 1
    data.plans.append(RecurringPlan(
        source=cal.source, source_id=plan_id, person_id=pid, amount=amount, start=cal.months[first_m],
        end=cal.months[last_m] + timedelta(days=27) if ended else None, status="ended" if ended else "active",
    ))
    for t in range(first_m, last_m + 1):
        data.gifts.append(Gift(
            source=cal.source, source_id=f"G{len(data.gifts) + 1:07d}", person_id=pid, amount=amount,
            date=cal.months[t] + timedelta(days=4), recurring=True, plan_id=plan_id, payment_method="prélèvement",
        ))


def _add_memberships(data: PeopleData, rng: Any, pid: str, active: Any, attachment: float, cal: _Calendar) -> None:
    """A membership for most years in which the person is close for at least three months."""
    import numpy as np

    for y in cal.years:
        idx = [t for t in active if cal.months[t].year == y]
        if len(idx) >= 3 and rng.random() < 1 / (1 + np.exp(-(1.2 + 0.8 * attachment))):
            day = cal.months[idx[0]] + timedelta(days=int(rng.integers(0, 20)))
            data.memberships.append(Membership(
                source=cal.source, source_id=f"M{len(data.memberships) + 1:06d}", person_id=pid, season=str(y),
                fee=float(rng.choice([15.0, 25.0, 40.0])), start=day, end=date(y, 12, 31),
            ))


def _add_participations(data: PeopleData, rng: Any, pid: str, active: Any, attachment: float, cal: _Calendar) -> None:
    """Registrations to the March, June, September and November events; some are cancelled."""
    import numpy as np

    for t in active:
        if cal.months[t].month in (3, 6, 9, 11) and rng.random() < 1 / (1 + np.exp(-(-1.5 + 0.9 * attachment))):
            day = cal.months[t] + timedelta(days=int(rng.integers(0, 27)))
            status = "attended" if rng.random() < 0.85 else "cancelled"
            data.participations.append(Participation(
                source=cal.source, source_id=f"E{len(data.participations) + 1:06d}", person_id=pid,
                event=_EVENTS[int(rng.integers(len(_EVENTS)))], date=day, status=status,
            ))


def _add_missions(data: PeopleData, rng: Any, n_people: int, cal: _Calendar) -> list[tuple[VolunteerMission, date, date]]:
    """Missions, each open a few months; returns them with their first and last day."""
    out = []
    for k in range(max(8, n_people // 25)):
        postcode, city = _PLACES[int(rng.integers(len(_PLACES)))]
        skills = tuple(sorted(set(str(s) for s in rng.choice(SKILLS, size=int(rng.integers(1, 4)), replace=False))))
        begin = cal.months[int(rng.integers(0, max(1, len(cal.months) - 3)))]
        finish = begin + timedelta(days=int(rng.integers(90, 360)))
        mission = VolunteerMission(
            source=cal.source, source_id=f"MI{k + 1:04d}", title=f"Mission {k + 1} : {skills[0]}", skills=skills,
            place=city, postcode=postcode, start=begin, end=finish,
            hours=float(rng.integers(2, 40)), weekdays=tuple(sorted(set(int(d) for d in rng.integers(0, 7, 2)))),
        )
        data.missions.append(mission)
        out.append((mission, begin, finish))
    return out


def _add_volunteer_hours(data: PeopleData, rng: Any, crowd: _Crowd, missions: list[tuple[VolunteerMission, date, date]],
                         cal: _Calendar) -> None:
    """Volunteers' hours: in some active months, on a mission open then (mostly the best fit, by place and skills)."""
    import numpy as np

    person_skills = {
        p.source_id: tuple(str(s) for s in rng.choice(SKILLS, size=int(rng.integers(1, 4)), replace=False))
        for p, v in zip(data.persons, crowd.is_volunteer, strict=True) if v
    }
    for i, person in enumerate(data.persons):
        if person.source_id not in person_skills:
            continue
        skills = person_skills[person.source_id]
        for t in np.flatnonzero(crowd.alive[i]):
            if rng.random() >= 0.3:
                continue
            day = cal.months[t] + timedelta(days=int(rng.integers(0, 27)))
            open_now = [(m, last) for m, first, last in missions if first <= day <= last]
            if not open_now:
                continue
            fit = [2.0 * (m.postcode[:2] == person.postcode[:2]) + len(set(m.skills) & set(skills)) + rng.random()
                   for m, _ in open_now]
            mission, last = open_now[int(np.argmax(fit))] if rng.random() < 0.75 else open_now[int(rng.integers(len(open_now)))]
            if mission.weekdays and rng.random() < 0.7:  # come on one of the mission's days
                shift = (int(rng.choice(mission.weekdays)) - day.weekday()) % 7
                day = min(day + timedelta(days=shift), last)
            data.hours.append(VolunteerHours(
                source=cal.source, source_id=f"H{len(data.hours) + 1:07d}", person_id=person.source_id,
                mission=mission.source_id, hours=float(rng.integers(2, 9)), date=day,
                skills=tuple(sorted(set(skills) & set(mission.skills))) or skills[:1], place=mission.place,
            ))


def _near_copy(person: Person, k: int, rng: Any, *, source: str) -> Person:
    last = person.last_name
    if len(last) > 4 and rng.random() < 0.6:  # one letter typo
        j = int(rng.integers(1, len(last) - 1))
        last = last[:j] + last[j + 1] + last[j] + last[j + 2:]
    phone = person.phone.replace(" ", "")
    phone = "+33 " + phone[1:] if rng.random() < 0.5 and not phone.startswith("0692") else phone
    return Person(
        source=source, source_id=f"D{k + 1:04d}", first_name=person.first_name.upper(), last_name=last.upper(),
        email=person.email.upper() if rng.random() < 0.6 else "", phone=phone, postcode=person.postcode,
        city=person.city.upper(), birth_year=person.birth_year, gender=person.gender,
        raw={"duplicate_of": person.key},
    )


def _ascii(text: str) -> str:
    from assoc_ai_core.people.cleaning import fold

    return "".join(c for c in fold(text) if c.isalnum())


_FR_HEADERS = {
    "person": ("Identifiant", ["source_id", "first_name", "last_name", "email", "phone", "postcode", "city", "birth_year",
                               "gender", "created", "do_not_profile"],
               ["Identifiant", "Prénom", "Nom", "Courriel", "Téléphone", "Code postal", "Ville", "Année de naissance",
                "Sexe", "Date de création", "Ne pas profiler"]),
    "gift": ("", ["source_id", "person_id", "amount", "date", "recurring", "campaign", "payment_method"],
             ["Id don", "Id contact", "Montant", "Date du don", "Récurrent", "Campagne", "Moyen de paiement"]),
    "membership": ("", ["source_id", "person_id", "season", "fee", "start", "end", "status"],
                   ["Id adhésion", "Id contact", "Saison", "Cotisation", "Début", "Fin", "Statut"]),
    "participation": ("", ["source_id", "person_id", "event", "date", "status"],
                      ["Id inscription", "Id contact", "Événement", "Date", "Statut"]),
    "volunteer_mission": ("", ["source_id", "title", "skills", "place", "postcode", "start", "end", "hours", "weekdays"],
                          ["Id mission", "Intitulé", "Compétences", "Lieu", "Code postal", "Début", "Fin", "Heures", "Jours"]),
    "volunteer_hours": ("", ["source_id", "person_id", "mission", "hours", "date", "skills", "place"],
                        ["Id saisie", "Id contact", "Mission", "Heures", "Date", "Compétences", "Lieu"]),
    "recurring_plan": ("", ["source_id", "person_id", "amount", "frequency", "start", "end", "status"],
                       ["Id mandat", "Id contact", "Montant", "Fréquence", "Début", "Fin", "Statut"]),
}
_FR_FILES = {"person": "personnes", "gift": "dons", "membership": "adhesions", "participation": "participations",
             "volunteer_mission": "missions", "volunteer_hours": "benevolat", "recurring_plan": "dons_reguliers"}
_DAYS_FR = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def write_exports(data: PeopleData, folder: str | Path, *, encoding: str = "utf-8-sig") -> dict[str, Path]:
    """Write ``data`` as French CRM exports (``;``, decimal comma, dd/mm/yyyy) in ``folder``; returns the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for rtype, (_, fields, headers) in _FR_HEADERS.items():
        path = out / f"{_FR_FILES[rtype]}.csv"
        with path.open("w", encoding=encoding, newline="", errors="replace") as fh:
            writer = csv.writer(fh, delimiter=";")
            writer.writerow(headers)
            for record in data.records(rtype):
                writer.writerow([_fr(getattr(record, f), f) for f in fields])
        paths[rtype] = path
    return paths


def _fr(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, float):
        return f"{value:.2f}".replace(".", ",")
    if isinstance(value, tuple):
        if name == "weekdays":
            return ", ".join(_DAYS_FR[d] for d in value)
        return ", ".join(value)
    return str(value)
