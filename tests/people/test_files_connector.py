"""The embedded files connector on real CSV and Excel files: French formats, mapping, cursor, write-back."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path

import pytest

from assoc_ai_core.errors import ConfigError, DataError
from assoc_ai_core.people.files_connector import FilesConfig, FilesConnector
from assoc_ai_core.records.people import Score, score_field_names


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reads_french_exports_back_exactly(association, exports):
    conn = FilesConnector(FilesConfig(path=str(exports)))
    assert set(conn.available_record_types()) == {"person", "gift", "recurring_plan", "membership", "participation",
                                                  "volunteer_mission", "volunteer_hours"}
    persons = conn.read_all("person")
    gifts = conn.read_all("gift")
    assert [p.source_id for p in persons] == [p.source_id for p in association.persons]
    assert [(g.person_id, g.amount, g.date, g.recurring) for g in gifts] == \
        [(g.person_id, g.amount, g.date, g.recurring) for g in association.gifts]
    original = association.persons[0]
    assert (persons[0].first_name, persons[0].email, persons[0].postcode, persons[0].birth_year) == \
        (original.first_name, original.email, original.postcode, original.birth_year)
    assert [p.do_not_profile for p in persons] == [p.do_not_profile for p in association.persons]
    missions = conn.read_all("volunteer_mission")
    assert [m.weekdays for m in missions] == [m.weekdays for m in association.missions]
    assert conn.problems == []


def test_cp1252_comma_decimals_and_bad_rows(tmp_path, monkeypatch):
    (tmp_path / "contacts.csv").write_bytes(
        "N° adhérent;Prénom;Nom;Courriel;Code postal\n1;Hélène;Dupré;h@x.fr;2000\n2;Zoé;Bœuf;z@x.fr;20200\n".encode("cp1252"))
    (tmp_path / "dons.csv").write_bytes(
        "Id contact;Montant;Date du don;Campagne\n1;1 234,50 €;05/03/2024;Noël\n2;abc;06/03/2024;\n2;10,00;31/02/2024;\n"
        "1;12.50;2024-03-07;\n".encode("cp1252"))
    conn = FilesConnector(FilesConfig(path=str(tmp_path)))
    persons = conn.read_all("person")
    assert [(p.first_name, p.last_name, p.postcode) for p in persons] == [("Hélène", "Dupré", "2000"), ("Zoé", "Bœuf", "20200")]
    gifts = conn.read_all("gift")
    assert [(g.amount, g.date) for g in gifts] == [(1234.5, date(2024, 3, 5)), (12.5, date(2024, 3, 7))]
    assert gifts[0].campaign == "Noël"
    # unreadable rows are reported by row and column only: no value (personal data) in the report
    assert conn.problems == [{"file": "dons.csv", "row": 3, "fields": ["amount"]},
                             {"file": "dons.csv", "row": 4, "fields": ["date"]}]
    assert "abc" not in repr(conn.problems)


def test_column_mapping_from_toml_config(tmp_path, files_plugin):
    from assoc_ai_core.people.dataset import connector_from_config, load_people

    data = tmp_path / "exports"
    data.mkdir()
    (data / "export_crm.csv").write_text("Réf;Mél;Nom de naissance\nA1;a@x.fr;Martin\n", encoding="utf-8-sig")
    (data / "paiements.csv").write_text("Qui;Combien;Quand\nA1;15;01/02/2023\n", encoding="utf-8")
    config = tmp_path / "assoc_ai.toml"
    config.write_text(
        '[crm]\nconnector = "files"\npath = "exports"\n'
        '[crm.files]\nperson = "export_crm.csv"\ngift = "paiements.csv"\n'
        '[crm.mapping]\nemail = "Mél"\nlast_name = "Nom de naissance"\nsource_id = "Réf"\n'
        '[crm.mapping.gift]\nperson_id = "Qui"\namount = "Combien"\ndate = "Quand"\n', encoding="utf-8")
    config.chmod(0o600)
    conn = connector_from_config(config)
    assert isinstance(conn, FilesConnector)
    people = load_people(config)
    assert [(p.source_id, p.email, p.last_name) for p in people.persons] == [("A1", "a@x.fr", "Martin")]
    assert [(g.person_id, g.amount, g.date) for g in people.gifts] == [("A1", 15.0, date(2023, 2, 1))]
    config.write_text(config.read_text(encoding="utf-8").replace('date = "Quand"', 'date = "Date"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="Quand"):  # the error lists the real columns
        load_people(config)


def test_missing_required_column_is_explained(tmp_path, monkeypatch):
    (tmp_path / "personnes.csv").write_text("Identifiant;Nom\n1;A\n", encoding="utf-8")
    (tmp_path / "dons.csv").write_text("Identifiant;Somme versée\n1;10\n", encoding="utf-8")
    conn = FilesConnector(FilesConfig(path=str(tmp_path)))
    with pytest.raises(DataError, match=r"person_id, amount, date.*\[crm.mapping.gift\]"):
        conn.read_all("gift")
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    with pytest.raises(DataError, match="no column found for person_id"):
        conn.read_all("gift")


def test_excel_export(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    sheet.append(["Identifiant", "Prénom", "Nom", "Téléphone", "Code postal", "Date de création", "Ne pas profiler"])
    sheet.append([101, "jean-pierre", "DE LA TOUR", 612345678, 1000, datetime(2020, 5, 17), "X"])
    sheet.append([102, "Anne", "Roux", "0692 12 34 56", 97400, datetime(2021, 1, 2, 14, 30), None])
    book.save(tmp_path / "personnes.xlsx")
    conn = FilesConnector(FilesConfig(path=str(tmp_path)))
    people = conn.read_all("person")
    assert [p.source_id for p in people] == ["101", "102"]
    assert people[0].postcode == "1000" and people[0].do_not_profile and not people[1].do_not_profile
    assert people[0].created == datetime(2020, 5, 17)
    from assoc_ai_core.people.cleaning import clean_person

    cleaned, issues = clean_person(people[0])
    assert (cleaned.first_name, cleaned.last_name, cleaned.phone, cleaned.postcode) == \
        ("Jean-Pierre", "de la Tour", "+33612345678", "01000")
    assert clean_person(people[1])[0].phone == "+262692123456"
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(DataError, match=r"\.xlsx"):
        FilesConnector(FilesConfig(path=str(tmp_path / "old.xls"))).read_all("person")


def test_cursor_second_run_yields_nothing_and_resumes_after_a_crash(exports, tmp_path):
    conn = FilesConnector(FilesConfig(path=str(exports)))
    pages = list(conn.iter_records("gift", None, page_size=1000))
    total = sum(len(p.records) for p in pages)
    assert total == len(conn.read_all("gift")) and len(pages) > 1
    assert list(FilesConnector(FilesConfig(path=str(exports))).iter_records("gift", pages[-1].cursor)) == []
    # a run killed after the first page starts again where it stopped, nothing read twice
    resumed = list(FilesConnector(FilesConfig(path=str(exports))).iter_records("gift", pages[0].cursor, page_size=1000))
    assert sum(len(p.records) for p in resumed) == total - len(pages[0].records)
    assert resumed[0].records[0].source_id == pages[1].records[0].source_id


def test_cursor_on_modification_dates(tmp_path):
    path = tmp_path / "personnes.csv"
    path.write_text("Identifiant;Nom;Modifié le\n1;A;01/01/2024 10:00\n2;B;02/01/2024 10:00\n", encoding="utf-8")
    conn = FilesConnector(FilesConfig(path=str(tmp_path)))
    first = list(conn.iter_records("person"))
    assert [r.source_id for p in first for r in p.records] == ["1", "2"]
    path.write_text("Identifiant;Nom;Modifié le\n1;A;01/01/2024 10:00\n2;B2;03/01/2024 09:00\n3;C;02/01/2024 10:00\n",
                    encoding="utf-8")
    again = list(FilesConnector(FilesConfig(path=str(tmp_path))).iter_records("person", first[-1].cursor))
    assert sorted(r.source_id for p in again for r in p.records) == ["2", "3"]


def test_write_scores_dry_run_then_apply_is_idempotent_and_never_touches_exports(exports, tmp_path):
    out = tmp_path / "scores.csv"
    conn = FilesConnector(FilesConfig(path=str(exports), output=str(out)))
    before = {p.name: _digest(p) for p in exports.iterdir()}
    scores = [Score("P00001", "donor-propensity", 0.72, "72 % : …", "v1"),
              Score("P00002", "donor-propensity", 0.1, "10 % : …", "v1"),
              Score("NOBODY", "donor-propensity", 0.5, "", "v1")]
    dry = conn.write_scores(scores)
    assert dry.dry_run and dry.counts == {"create": 2, "update": 0, "unchanged": 0, "skipped": 1}
    assert not out.exists()
    done = conn.write_scores(scores, dry_run=False)
    assert done.counts["create"] == 2 and out.exists()
    text = out.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("person_id;assoc_ai_donor_propensity;")
    assert "0,72" in text  # the export was French: so is the scores file
    again = conn.write_scores(scores, dry_run=False)
    assert again.counts == {"create": 0, "update": 0, "unchanged": 2, "skipped": 1}
    changed = conn.write_scores([Score("P00002", "donor-propensity", 0.2, "20 % : …", "v2")], dry_run=False)
    diff = changed.diffs[0]
    name = score_field_names("donor-propensity")["probability"]
    assert diff.action == "update" and diff.before[name] == pytest.approx(0.1) and diff.after[name] == 0.2
    assert "0,72" in out.read_text(encoding="utf-8-sig")  # other people's scores are kept
    assert {p.name: _digest(p) for p in exports.iterdir()} == before
    fields = conn.ensure_fields(task="membership-churn")
    assert fields.counts["create"] == 3 and fields.dry_run


def test_output_over_an_export_is_refused(exports):
    conn = FilesConnector(FilesConfig(path=str(exports), output="personnes.csv"))
    with pytest.raises(ConfigError, match="jamais"):
        conn.write_scores([Score("P00001", "donor-propensity", 0.5)], dry_run=False)


def test_people_who_object_to_profiling_are_never_written(tmp_path, monkeypatch):
    (tmp_path / "personnes.csv").write_text("Identifiant;Nom;Ne pas profiler\n1;Durand;\n2;Haddad;oui\n", encoding="utf-8")
    out = tmp_path / "scores.csv"
    conn = FilesConnector(FilesConfig(path=str(tmp_path), output=str(out)))
    scores = [Score("1", "donor-propensity", 0.4, "40 % : …", "v1"), Score("2", "donor-propensity", 0.9, "90 % : …", "v1")]
    done = conn.write_scores(scores, dry_run=False)
    assert [d.record_id for d in done.diffs] == ["1"]
    assert dict(done.skipped) == {"2": "la personne refuse le profilage (do_not_profile)"}
    rows = out.read_text(encoding="utf-8-sig").splitlines()
    assert [r.split(";")[0] for r in rows] == ["person_id", "1"]
    assert out.stat().st_mode & 0o777 == 0o600  # scores are personal data
