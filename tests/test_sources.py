"""Mail enters from eml folders, Maildir, mbox, CSV and JSONL; bad input is reported, never fatal."""

from __future__ import annotations

import json
import mailbox

import pytest

from assoc_ai_core.errors import DataError
from assoc_ai_core.mail.sources import load_dataset

RAW = b"From: a@x.test\nSubject: %s\nMessage-ID: <%s@x>\n\nCorps %s\n"


def test_folder_tree_labels_from_folder_names(tmp_path):
    for label in ("Adhesion", "Presse"):
        (tmp_path / label).mkdir()
        for i in range(2):
            (tmp_path / label / f"{i}.eml").write_bytes(RAW % (label.encode(), f"{label}{i}".encode(), b"x"))
    (tmp_path / "labels.csv").write_text("ignored")
    ds = load_dataset(tmp_path)
    assert sorted(ds.labels) == ["Adhesion", "Adhesion", "Presse", "Presse"]


def test_maildir_plus_plus(tmp_path):
    md = mailbox.Maildir(tmp_path / "box", create=True)
    md.add(RAW % (b"inbox", b"i1", b"x"))
    sub = md.add_folder("Adhesion")
    sub.add(RAW % (b"adh", b"a1", b"x"))
    ds = load_dataset(tmp_path / "box")
    assert sorted(str(label) for label in ds.labels) == ["Adhesion", "None"]


def test_mbox_files_are_labels(tmp_path):
    box = mailbox.mbox(tmp_path / "Evenement.mbox", create=True)
    box.add(RAW % (b"visite", b"e1", b"x"))
    box.add(RAW % (b"conference", b"e2", b"x"))
    box.flush()
    box.close()
    ds = load_dataset(tmp_path)
    assert ds.labels == ["Evenement", "Evenement"]


def test_csv_french_export_and_jsonl(tmp_path):
    (tmp_path / "export.csv").write_text("Objet;Texte;Catégorie\nAdhésion;Je veux adhérer;Adhesion\n;;Vide\n",
                                         encoding="utf-8-sig")
    ds = load_dataset(tmp_path / "export.csv")
    assert ds.messages[0].label == "Adhesion" and ds.messages[0].subject == "Adhésion"
    assert ds.messages[1].error == "texte vide" and ds.problems  # reported with its line, not dropped
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "bonjour", "label": "A"}) + "\n{broken\n", encoding="utf-8")
    ds = load_dataset(tmp_path / "d.jsonl")
    assert ds.messages[0].label == "A" and ds.messages[1].error.startswith("ligne JSON invalide")


def test_csv_without_text_column_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="colonne de texte"):
        load_dataset(tmp_path / "x.csv")


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="introuvable"):
        load_dataset(tmp_path / "nope")
