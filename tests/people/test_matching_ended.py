"""The volunteer matcher refuses a mission that is over and leaves out volunteers no longer available."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner


def _exports(folder: Path) -> Path:
    """Three volunteers, a mission that ended in 2017 and a mission still open (CSV as a French CRM writes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "personnes.csv").write_text(
        "Identifiant;Prénom;Nom;Code postal;Compétences;Disponible jusqu'au\n"
        "P1;Anne;Martin;75011;accueil;\n"
        "P2;Paul;Durand;75011;accueil;31/12/2018\n"
        "P3;Lina;Petit;75012;accueil;31/12/2030\n", encoding="utf-8")
    (folder / "missions.csv").write_text(
        "Id mission;Intitulé;Compétences;Code postal;Début;Fin\n"
        "M2017;Brocante 2017;accueil;75011;01/06/2017;30/06/2017\n"
        "M2026;Accueil du public;accueil;75011;01/01/2026;31/12/2027\n", encoding="utf-8")
    (folder / "benevolat.csv").write_text(
        "Id contact;Mission;Heures;Date;Compétences\n"
        "P1;M2017;4;10/06/2017;accueil\n"
        "P2;M2017;3;11/06/2017;accueil\n"
        "P3;M2017;2;12/06/2017;accueil\n", encoding="utf-8")
    return folder


def test_a_mission_that_ended_is_refused(tmp_path):
    from assoc_ai_core.errors import DataError
    from assoc_ai_core.people.matching import rank_volunteers

    data = _exports(tmp_path / "x")
    with pytest.raises(DataError) as err:
        rank_volunteers(data, "M2017", as_of="2026-12-01", lang="en")
    message = str(err.value)
    assert "over" in message and "2017-06-30" in message
    with pytest.raises(DataError, match="terminée"):
        rank_volunteers(data, "M2017", as_of="2026-12-01", lang="fr")


def test_without_as_of_today_decides(tmp_path):
    """No --as-of: the mission's end is compared with today, not with its own start date."""
    from assoc_ai_core.errors import DataError
    from assoc_ai_core.people.matching import rank_volunteers

    with pytest.raises(DataError):
        rank_volunteers(_exports(tmp_path / "y"), "M2017")


def test_a_past_ranking_can_still_be_looked_at(tmp_path):
    from assoc_ai_core.people.matching import rank_volunteers

    ranked = rank_volunteers(_exports(tmp_path / "z"), "M2017", as_of="2017-06-01")
    assert {e.person_id for e in ranked} == {"P1", "P2", "P3"}


def test_ended_availability_is_left_out(tmp_path):
    from assoc_ai_core.people.matching import rank_volunteers

    ranked = rank_volunteers(_exports(tmp_path / "w"), "M2026", as_of="2026-12-01")
    ids = [e.person_id for e in ranked]
    assert "P2" not in ids  # available until the end of 2018 only
    assert set(ids) == {"P1", "P3"}


def test_match_command_says_why(tmp_path):
    from assoc_ai_core.cli.people import people

    r = CliRunner().invoke(people, ["match", str(_exports(tmp_path / "v")), "--mission", "M2017", "--as-of",
                                    "2026-12-01", "--lang", "en"])
    assert r.exit_code != 0
    assert "is over" in r.output
