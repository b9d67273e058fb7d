"""Models are saved without pickle; untrusted or incompatible files are refused clearly."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline

from assoc_ai_core.errors import IncompatibleModelError, ModelError, UntrustedModelError
from assoc_ai_core.persistence import TRUSTED_TYPES, load_model, read_metadata, save_model


class Sneaky:
    """A type nobody reviewed; loading a file holding it must be refused."""

    def fit(self, X, y=None):  # noqa: D102
        return self

    def transform(self, X):  # noqa: D102
        return X


def test_round_trip_gives_identical_predictions(trained_model, example_mailbox, tmp_path):
    from assoc_ai_core.mail.sources import load_dataset

    path = save_model(trained_model, tmp_path / "m.skops")
    loaded = load_model(path)
    msgs = load_dataset(example_mailbox / "new", labelled=False).readable()
    assert np.allclose(loaded.predict_proba(msgs), trained_model.predict_proba(msgs))
    assert loaded.threshold_ == trained_model.threshold_
    assert trained_model.validate_loaded() == [] and loaded.validate_loaded() == []  # what training writes loads
    assert read_metadata(path)["labels"] == trained_model.metadata_["labels"]


def test_model_file_holds_only_trusted_types(trained_model, tmp_path):
    path = save_model(trained_model, tmp_path / "m.skops")
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)
    with zipfile.ZipFile(path) as zf:
        assert not any(n.endswith(".pkl") for n in zf.namelist())


def test_untrusted_type_is_refused(tmp_path):
    path = tmp_path / "evil.skops"
    sio.dump(Pipeline([("x", Sneaky())]), path)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("assoc_ai.json", json.dumps({"format_version": 1}))
    with pytest.raises(UntrustedModelError, match="Sneaky"):
        load_model(path)


def test_incompatible_version_is_refused(trained_model, tmp_path):
    path = save_model(trained_model, tmp_path / "m.skops")
    rewritten = tmp_path / "old.skops"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "assoc_ai.json":
                meta = json.loads(data)
                meta["format_version"] = 999
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    with pytest.raises(IncompatibleModelError, match="format 999"):
        load_model(rewritten)


def test_not_a_model_and_missing_file(tmp_path):
    bogus = tmp_path / "x.skops"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="pas un modèle"):
        load_model(bogus)
    with pytest.raises(ModelError, match="introuvable"):
        load_model(tmp_path / "absent.skops")
    odd = tmp_path / "odd.skops"
    with zipfile.ZipFile(odd, "w") as zf:  # a zip whose metadata member is JSON but not an object
        zf.writestr("assoc_ai.json", json.dumps(["format_version", 1]))
    with pytest.raises(ModelError, match="métadonnées illisibles"):
        read_metadata(odd)
