"""Model files that cannot hurt: each bad file is built here, and each gets exit code 7 and a clear message.

Issue 14 (part M) and issue 16 (item 6): the root object must be the expected class, parameters are validated
on load, malformed files are refused before they cost memory, and version mismatches are said plainly.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from click.testing import CliRunner
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from assoc_ai_core.errors import IncompatibleModelError, ModelError, UntrustedModelError
from assoc_ai_core.persistence import (
    META_MEMBER,
    PEOPLE_MODEL,
    load_model,
    read_metadata,
    save_model,
)


def rewrite(src: Path, dst: Path, changes: dict[str, bytes | None]) -> Path:
    """Copy the zip ``src`` to ``dst``, replacing members (None: left out); new names are added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename in changes:
                if changes[item.filename] is not None:
                    zout.writestr(item.filename, changes[item.filename])
            else:
                zout.writestr(item, zin.read(item.filename))
        for name, data in changes.items():
            if data is not None and name not in zin.namelist():
                zout.writestr(name, data)
    return dst


def member_json(path: Path, name: str) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(name))


def cli_predict(model: Path, mailbox: Path, *, lang: str = "fr"):
    from assoc_ai_core.cli.main import _wire_optional_commands, cli

    _wire_optional_commands()
    return CliRunner().invoke(cli, ["predict", str(model), str(mailbox)], env={"ASSOC_AI_LANG": lang})


@pytest.fixture(scope="module")
def good_file(trained_model, tmp_path_factory) -> Path:
    return save_model(trained_model, tmp_path_factory.mktemp("good") / "m.skops")


@pytest.fixture()
def new_mail(example_mailbox: Path) -> Path:
    return example_mailbox / "new"


# ============================================================================ 1. the root class
def test_plain_scikit_learn_pipeline_is_refused_with_exit_7(tmp_path, new_mail) -> None:
    path = tmp_path / "pipeline.skops"
    pipe = Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())])
    pipe.fit(["don reçu fiscal", "adhésion cotisation", "don en ligne", "cotisation annuelle"], [0, 1, 0, 1])
    sio.dump(pipe, path)  # only trusted types: before, it loaded and then crashed
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(META_MEMBER, json.dumps({"format_version": 1}))
    with pytest.raises(ModelError, match=r"sklearn\.pipeline\.Pipeline, pas un modèle de courrier") as err:
        load_model(path)
    assert err.value.exit_code == 7
    r = cli_predict(path, new_mail, lang="en")
    assert r.exit_code == 7 and "not a mail model (MailClassifier)" in r.output and "Traceback" not in r.output


def test_mail_model_is_not_a_people_model_and_back(good_file: Path, tmp_path: Path) -> None:
    from assoc_ai_core.people.model import PeopleModel
    from assoc_ai_core.people.store import load_people_model

    with pytest.raises(ModelError, match="pas un modèle de données de personnes"):
        load_people_model(good_file)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    people = PeopleModel(features=["a", "b"], n_splits=3).fit(X, (X[:, 0] > 0).astype(int))
    people.threshold_ = 0.5
    people_file = save_model(people, tmp_path / "people.skops")
    with pytest.raises(ModelError, match="pas un modèle de courrier"):
        load_model(people_file, trusted=_people_types())
    assert isinstance(load_model(people_file, trusted=_people_types(), expected=PEOPLE_MODEL), PeopleModel)


def _people_types() -> tuple[str, ...]:
    from assoc_ai_core.people.store import PEOPLE_TRUSTED_TYPES

    return PEOPLE_TRUSTED_TYPES


# ============================================================================ 2. parameters
def _saved_with(trained_model, tmp_path: Path, change) -> Path:
    model = copy.deepcopy(trained_model)
    change(model)
    return save_model(model, tmp_path / "changed.skops")


def _word(model):
    return dict((n, t) for n, t, _ in model.pipeline_.named_steps["features"].transformers_)["word"]


def test_catastrophic_token_pattern_is_refused_before_any_text_is_read(trained_model, tmp_path, new_mail) -> None:
    path = _saved_with(trained_model, tmp_path, lambda m: setattr(_word(m), "token_pattern", r"(\w+\w*)+$"))
    start = time.monotonic()
    with pytest.raises(ModelError, match="motif de mots") as err:
        load_model(path)
    assert err.value.exit_code == 7 and time.monotonic() - start < 10
    r = cli_predict(path, new_mail)
    assert r.exit_code == 7 and "motif de mots" in r.output


def test_a_model_written_by_the_previous_version_still_loads(trained_model, tmp_path) -> None:
    """Models trained before "don't" was kept whole use the older word pattern: an upgrade must not stop the job."""
    path = _saved_with(trained_model, tmp_path, lambda m: setattr(_word(m), "token_pattern", r"(?u)\b\w[\w-]*\w\b"))
    assert load_model(path).predict(["Je souhaite adhérer à l'association."])


@pytest.mark.parametrize(("value", "loads"), [(0.0, False), (-0.5, False), (float("nan"), False), (1.5, False),
                                             (1e-9, True), (0.42, True), (1.0, True), (1.01, True)])
def test_threshold_must_be_a_probability(trained_model, tmp_path, value: float, loads: bool) -> None:
    """The rule: 0 < threshold ≤ 1.01 (1.01 is what training writes for 'everything to review')."""
    path = _saved_with(trained_model, tmp_path, lambda m: setattr(m, "threshold_", value))
    if loads:
        assert load_model(path).threshold_ == value
    else:
        with pytest.raises(ModelError, match="seuil"):
            load_model(path)


def test_other_parameters_are_checked(trained_model, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    path = _saved_with(trained_model, tmp_path, lambda m: setattr(m, "temperature_", 0.0))
    with pytest.raises(ModelError, match="temperature 0.0 not positive"):
        load_model(path)
    path = _saved_with(trained_model, tmp_path, lambda m: setattr(_word(m), "ngram_range", (1, 40)))
    with pytest.raises(ModelError, match="n-grams"):
        load_model(path)


def test_people_threshold_is_checked(tmp_path) -> None:
    from assoc_ai_core.people.model import PeopleModel
    from assoc_ai_core.people.store import load_people_model

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    people = PeopleModel(features=["a", "b"], n_splits=3).fit(X, (X[:, 1] > 0).astype(int))
    people.threshold_ = 0.3
    assert load_people_model(save_model(people, tmp_path / "ok.skops")).threshold_ == 0.3
    people.threshold_ = 7.0
    with pytest.raises(ModelError, match=r"seuil 7.0 hors de \[0, 1\]"):
        load_people_model(save_model(people, tmp_path / "bad.skops"))


# ============================================================================ 3. malformed files
def test_zip_without_schema_or_metadata(good_file: Path, tmp_path: Path, new_mail) -> None:
    no_schema = rewrite(good_file, tmp_path / "no_schema.skops", {"schema.json": None})
    with pytest.raises(ModelError, match="« schema.json » absent"):
        load_model(no_schema)
    r = cli_predict(no_schema, new_mail, lang="en")
    assert r.exit_code == 7 and "no 'schema.json' inside" in r.output and "KeyError" not in r.output
    no_meta = rewrite(good_file, tmp_path / "no_meta.skops", {META_MEMBER: None})
    with pytest.raises(ModelError, match="« assoc_ai.json » absent"):
        load_model(no_meta)
    bad_schema = rewrite(good_file, tmp_path / "bad_schema.skops", {"schema.json": b"{not json"})
    with pytest.raises(ModelError, match="schema.json"):
        load_model(bad_schema)


def test_pickle_inside_an_array_is_called_what_it_is(good_file: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(good_file) as zf:
        first_array = next(n for n in zf.namelist() if n.endswith(".npy"))
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, print], dtype=object), allow_pickle=True)
    path = rewrite(good_file, tmp_path / "pickled.skops", {first_array: buf.getvalue()})
    with pytest.raises(UntrustedModelError, match="pickle") as err:
        load_model(path)
    assert "Ré-entraînez" not in str(err.value) and err.value.exit_code == 7


def test_array_header_promising_more_than_its_data(good_file: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(good_file) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".npy"))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
    buf.write(b"\0" * 80)
    with pytest.raises(ModelError, match="tronqué"):
        load_model(rewrite(good_file, tmp_path / "lying.skops", {name: buf.getvalue()}))


def test_inflating_metadata_is_refused_from_the_zip_directory(good_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "bomb.skops"
    with zipfile.ZipFile(good_file) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename != META_MEMBER:
                zout.writestr(item, zin.read(item.filename))
        with zout.open(META_MEMBER, "w", force_zip64=True) as fh:  # 100 MiB of JSON whitespace, ~100 KB on disk
            fh.write(b"{")
            for _ in range(100):
                fh.write(b" " * (1 << 20))
            fh.write(b"}")
    assert path.stat().st_size < good_file.stat().st_size + (1 << 20)
    tracemalloc.start()
    try:
        for read in (read_metadata, load_model):
            with pytest.raises(ModelError, match="dépasse 32 Mio"):
                read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20, peak  # the file itself (a few MB) is read, the member never inflated


def test_array_inflating_far_beyond_the_file_is_refused(good_file: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(good_file) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".npy"))
    path = tmp_path / "array_bomb.skops"
    size = 400 << 20
    with zipfile.ZipFile(good_file) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename != name:
                zout.writestr(item, zin.read(item.filename))
        with zout.open(name, "w", force_zip64=True) as fh:  # a well-formed 400 MiB array of zeros
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (size // 8,)})
            for _ in range(size >> 20):
                fh.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(ModelError, match="plus de 100 fois sa taille"):
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20, peak


def test_model_from_a_newer_skops_is_exit_7_not_a_traceback(good_file: Path, tmp_path: Path, new_mail) -> None:
    schema = member_json(good_file, "schema.json")
    schema.update(protocol=99, _skops_version="9.0")
    path = rewrite(good_file, tmp_path / "future.skops", {"schema.json": json.dumps(schema).encode()})
    with pytest.raises(IncompatibleModelError, match="skops 9.0 \\(protocole 99\\)"):
        load_model(path)
    r = cli_predict(path, new_mail, lang="en")
    assert r.exit_code == 7 and "protocol 99" in r.output and "Traceback" not in r.output
    schema = member_json(good_file, "schema.json")
    schema["__loader__"] = "NodeFromTheFuture"  # same protocol, a node type this skops does not know
    path = rewrite(good_file, tmp_path / "future_node.skops", {"schema.json": json.dumps(schema).encode()})
    with pytest.raises(IncompatibleModelError, match="skops"):
        load_model(path)


def test_future_assoc_ai_or_scikit_learn_loads_with_one_warning_line(good_file: Path, tmp_path: Path,
                                                                     monkeypatch, caplog) -> None:
    monkeypatch.setenv("ASSOC_AI_LANG", "en")
    meta = member_json(good_file, META_MEMBER)
    meta.update(assoc_ai_version="99.1", sklearn_version="99.2")
    path = rewrite(good_file, tmp_path / "newer.skops", {META_MEMBER: json.dumps(meta).encode()})
    with caplog.at_level(logging.WARNING, logger="assoc_ai_core.persistence"):
        model = load_model(path)
    mine = [r.getMessage() for r in caplog.records if r.name == "assoc_ai_core.persistence"]
    assert len(mine) == 2 and all("\n" not in m for m in mine)
    assert "assoc-ai 99.1, newer than" in mine[0] and "scikit-learn 99.2, newer than" in mine[1]
    assert model.threshold_ > 0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="assoc_ai_core.persistence"):
        load_model(good_file)  # today's versions: no warning
    assert not caplog.records


def test_not_a_zip_and_truncated(good_file: Path, tmp_path: Path, new_mail) -> None:
    truncated = tmp_path / "cut.skops"
    truncated.write_bytes(good_file.read_bytes()[: good_file.stat().st_size // 2])
    with pytest.raises(ModelError, match="pas un modèle assoc-ai"):
        load_model(truncated)
    r = cli_predict(truncated, new_mail)
    assert r.exit_code == 7 and "Traceback" not in r.output
