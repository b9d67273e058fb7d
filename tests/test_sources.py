"""Mail enters from eml folders, Maildir, mbox, CSV and JSONL; bad input is reported, never fatal."""

from __future__ import annotations

import json
import mailbox
import warnings

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


# Folder names as an old Windows zip leaves them: Windows-1252 "Adhésion", "Cœur" and DOS (cp437) "Bénévolat".
BYTE_NAMES = {b"Adh\xe9sion": "Adhésion", b"B\x82n\x82volat": "Bénévolat", b"C\x9cur": "Cœur", b"Presse": "Presse"}


def _byte_named_tree(root, messages_per_folder):
    """Category folders created under their raw byte names, as unzip does with an archive made on old Windows."""
    import os

    for i, name in enumerate(BYTE_NAMES):
        folder = os.path.join(os.fsencode(root), name)
        os.mkdir(folder)
        for j, raw in enumerate(messages_per_folder(BYTE_NAMES[name], i)):
            with open(os.path.join(folder, b"%d-r\xe9ponse.eml" % j), "wb") as handle:  # a non-UTF-8 file name too
                handle.write(raw)


def test_non_utf8_folder_names_are_decoded_and_said_once(tmp_path):
    import os

    _byte_named_tree(tmp_path, lambda label, i: [RAW % (b"sujet", f"{i}-{j}".encode(), b"x") for j in range(2)])
    assert any("\udce9" in name for name in os.listdir(tmp_path))  # the system hands back surrogate escapes
    with pytest.warns(UserWarning) as caught:
        ds = load_dataset(tmp_path)
    said = [str(w.message) for w in caught if "UTF-8" in str(w.message)]
    assert len(said) == 1 and "'Adhésion' (cp1252)" in said[0] and "'Bénévolat' (cp437)" in said[0]
    assert sorted(set(ds.labels)) == ["Adhésion", "Bénévolat", "Cœur", "Presse"] and not ds.problems
    for m in ds.messages:  # printable and savable: no surrogate left in a label or a source
        json.dumps({"label": m.label, "source": m.source}, ensure_ascii=False).encode("utf-8")
    assert any(m.source.endswith("Bénévolat/0-réponse.eml") for m in ds.messages)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(tmp_path / os.listdir(tmp_path)[0])  # one category folder alone: no folder name to decode


@pytest.mark.filterwarnings("ignore:nom\\(s\\) de dossier qui ne sont pas en UTF-8")
def test_train_and_evaluate_json_on_non_utf8_folder_names(tmp_path, fixtures_dir):
    from click.testing import CliRunner

    from assoc_ai_core.cli.main import _wire_optional_commands, cli

    sources = sorted(p for p in (fixtures_dir / "mailbox").iterdir() if p.is_dir())
    data = tmp_path / "data"
    data.mkdir()
    _byte_named_tree(data, lambda label, i: [p.read_bytes() for p in sorted(sources[i].glob("*.eml"))])
    _wire_optional_commands()
    model, report = tmp_path / "m.skops", tmp_path / "e.json"
    result = CliRunner().invoke(cli, ["train", str(data), "-o", str(model)], catch_exceptions=False)
    assert result.exit_code == 0 and model.stat().st_size > 0, result.output
    result = CliRunner().invoke(cli, ["evaluate", str(model), str(data), "--json", str(report)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert set(json.loads(report.read_text(encoding="utf-8"))["per_class"]) == set(BYTE_NAMES.values())


def test_csv_without_a_known_label_column_names_it_and_the_accepted_ones(tmp_path):
    from assoc_ai_core.mail.sources import LABEL_COLUMNS

    export = tmp_path / "export.csv"
    export.write_text("texte;classe\nJe veux adhérer;Adhesion\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        load_dataset(export)
    message = str(error.value)
    assert "colonne de catégorie" in message and "classe" in message and "rangez" not in message
    assert all(name in message for name in LABEL_COLUMNS)
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "bonjour", "classe": "A"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="classe"):
        load_dataset(tmp_path / "d.jsonl")
    # mail to classify needs no category; in a category folder, the folder gives it
    assert load_dataset(export, labelled=False).messages[0].label is None
    (tmp_path / "Adhesion").mkdir()
    export.rename(tmp_path / "Adhesion" / "export.csv")
    (tmp_path / "d.jsonl").unlink()
    assert load_dataset(tmp_path).labels == ["Adhesion"]
