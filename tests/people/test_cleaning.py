"""Cleaning values, the data-quality report, and duplicate proposals."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from assoc_ai_core.people.cleaning import (
    department_of,
    email_issue,
    normalize_city,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_postcode,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_number,
)
from assoc_ai_core.people.dataset import PeopleData
from assoc_ai_core.records.people import Gift, Person


@pytest.mark.parametrize("raw, expected", [
    ("JEAN-PIERRE", "Jean-Pierre"), ("  élodie ", "Élodie"), ("de gaulle", "de Gaulle"), ("DE LA TOUR", "de la Tour"),
    ("d'estaing", "d'Estaing"), ("o'neil", "O'Neil"), ("LE GOFF", "Le Goff"), ("n'diaye", "N'Diaye"), ("", ""),
    (None, ""), ("van der berg", "van der Berg"), ("De", "De"),
])
def test_normalize_name(raw, expected):
    assert normalize_name(raw) == expected


@pytest.mark.parametrize("raw, expected, issue", [
    ("  Jean.Dupont@Exemple.FR ", "jean.dupont@exemple.fr", None),
    ("mailto:a@b.org", "a@b.org", None),
    ("Jean <jean@asso.fr>", "jean@asso.fr", None),
    ("pas une adresse", "", "invalid"),
    ("a@b", "", "invalid"),
    ("x..y@b.fr", "", "invalid"),
    ("marie@gmial.com", "marie@gmial.com", "typo:gmail.com"),
])
def test_normalize_email(raw, expected, issue):
    assert normalize_email(raw) == expected
    assert email_issue(raw) == issue


@pytest.mark.parametrize("raw, postcode, expected", [
    ("06 12 34 56 78", "", "+33612345678"),
    ("+33 6 12 34 56 78", "", "+33612345678"),
    ("0033612345678", "", "+33612345678"),
    ("01.45.67.89.10", "75011", "+33145678910"),
    (612345678, "", "+33612345678"),  # a spreadsheet ate the leading zero
    ("0692 12 34 56", "97400", "+262692123456"),  # Réunion mobile, from the postcode
    ("0692 12 34 56", "", "+262692123456"),  # invalid in metropolitan France: overseas regions are tried
    ("0590 12 34 56", "97110", "+590590123456"),
    ("+44 20 7946 0018", "", "+442079460018"),
    ("12", "", ""), ("n/a", "", ""), ("06 12", "", ""), (None, "", ""),
])
def test_normalize_phone(raw, postcode, expected):
    assert normalize_phone(raw, postcode=postcode) == expected


@pytest.mark.parametrize("raw, code, dep", [
    ("75011", "75011", "75"), (1000, "01000", "01"), ("1000", "01000", "01"), ("F-69003", "69003", "69"),
    ("20000", "20000", "2A"), ("20090", "20090", "2A"), ("20200", "20200", "2B"), ("20600", "20600", "2B"),
    ("97400", "97400", "974"), ("97133", "97133", "971"), ("98000", "98000", "980"),
    ("00100", "", ""), ("97500", "", ""), ("ABC", "", ""), ("750", "", ""),
])
def test_postcodes_and_departements(raw, code, dep):
    assert normalize_postcode(raw) == code
    assert department_of(raw) == dep


def test_departement_codes_given_directly():
    assert department_of("2A") == "2A" and department_of("2B004") == "2B" and department_of("974") == "974"


@pytest.mark.parametrize("raw, decimal, expected", [
    ("1 234,56 €", ",", 1234.56), ("1,234.56", ".", 1234.56), ("12,5", ",", 12.5), ("12.50", ",", 12.5),
    ("1.234", ",", 1234.0), ("1,234", ".", 1234.0), ("1.234.567", ",", 1234567.0), ("(15,00)", ",", -15.0),
    ("-3", ",", -3.0), ("", ",", None), ("n/a", ",", None), (7, ",", 7.0), (float("nan"), ",", None),
    ("1\u202f000,00", ",", 1000.0),
])
def test_parse_number(raw, decimal, expected):
    assert parse_number(raw, decimal) == expected


@pytest.mark.parametrize("raw, expected", [
    ("05/03/2024", date(2024, 3, 5)), ("5/3/24", date(2024, 3, 5)), ("2024-03-05", date(2024, 3, 5)),
    ("05.03.2024", date(2024, 3, 5)), ("13/03/2024", date(2024, 3, 13)), ("5 mars 2024", date(2024, 3, 5)),
    ("1er août 2023", date(2023, 8, 1)), ("lundi 5 février 2024", date(2024, 2, 5)), ("20240305", date(2024, 3, 5)),
    ("31/02/2024", None), ("demain", None), ("", None), (datetime(2024, 1, 2, 3, 4), date(2024, 1, 2)),
])
def test_parse_date(raw, expected):
    assert parse_date(raw) == expected


def test_parse_datetime_and_month_first():
    assert parse_datetime("05/03/2024 14h30") == datetime(2024, 3, 5, 14, 30)
    assert parse_datetime("2024-03-05T10:00:00Z").tzinfo is not None
    assert parse_date("03/05/2024", dayfirst=False) == date(2024, 3, 5)


@pytest.mark.parametrize("raw, expected", [("oui", True), ("X", True), ("Non", False), ("", False), (None, False),
                                           (1, True), ("peut-être", None)])
def test_parse_bool(raw, expected):
    assert parse_bool(raw) is expected


def test_normalize_city():
    assert normalize_city("PARIS CEDEX 11") == "Paris"
    assert normalize_city("aix-en-provence") == "Aix-En-Provence"
    assert normalize_city("SAINT DENIS") == "Saint Denis"


def test_quality_report_counts_without_copying_personal_data():
    from assoc_ai_core.people.quality import quality_report

    future = date.today().replace(year=date.today().year + 1)
    data = PeopleData(
        persons=[
            Person("s", "1", first_name="Anne", email="anne@gmial.com", phone="06 12 34 56 78", postcode="75011", city="Paris"),
            Person("s", "2", first_name="", email="nope", phone="12", postcode="750", city="Lyon", birth_year=1800),
            Person("s", "2", first_name="Paul", postcode="75011", city="PARIS 11E"),
        ],
        gifts=[Gift("s", "g1", "1", 10.0, date(2024, 1, 1)), Gift("s", "g2", "404", 0.0, future),
               Gift("s", "g3", "2", -5.0, date(2024, 1, 1))],
    )
    report = quality_report(data)
    col = {(c.record_type, c.column): c for c in report.columns}
    assert (col["person", "email"].invalid, col["person", "email"].inconsistent, col["person", "email"].missing) == (1, 1, 1)
    assert col["person", "phone"].invalid == 1 and col["person", "postcode"].invalid == 1
    assert col["person", "birth_year"].invalid == 1
    assert col["gift", "person_id"].inconsistent == 1 and col["gift", "person_id"].examples == ["g2"]
    assert col["gift", "date"].inconsistent == 1 and col["gift", "amount"].invalid == 1
    codes = {f["code"] for f in report.findings}
    assert codes == {"duplicate_person_ids", "postcode_several_cities"}
    text = report.to_text("fr")
    assert "gmail.com" in text and "anne" not in text.lower()
    assert "person.email" in report.to_text("en")


def test_duplicates_found_across_sources_and_never_merged(association):
    from assoc_ai_core.people.dedupe import find_duplicates

    persons = list(association.persons)
    truth = {tuple(sorted((p.raw["duplicate_of"], p.key))) for p in persons if "duplicate_of" in p.raw}
    proposals = find_duplicates(persons)
    found = {(m.left, m.right) for m in proposals}
    assert truth <= found  # every planted duplicate is proposed
    assert len(found - truth) <= 1
    assert len(association.persons) == len(persons)  # nothing merged
    top = proposals[0]
    assert 0.8 <= top.score <= 1.0 and "last_name" in top.reasons


def test_household_sharing_an_email_is_not_a_duplicate():
    from assoc_ai_core.people.dedupe import find_duplicates

    a = Person("crm", "1", first_name="Marie", last_name="Martin", email="famille.martin@x.fr", postcode="35000")
    b = Person("crm", "2", first_name="Paul", last_name="Martin", email="famille.martin@x.fr", postcode="35000")
    c = Person("files", "9", first_name="MARIE", last_name="MARTIN", email="Famille.Martin@x.fr", postcode="35000")
    pairs = {(m.left, m.right) for m in find_duplicates([a, b, c])}
    assert pairs == {("crm:1", "files:9")}
