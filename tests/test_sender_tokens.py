"""Models that do not identify people (issue 14, item 4): sender and recipient tokens keyed with the installation's
secret, never stored in the model, and removed by an erasure.

Real training on the example mailbox, real model files (skops), a real registry and the real erasure.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_privacy import job_config  # the same job configuration as the other privacy tests

from assoc_ai_core import load_dataset, predict, train
from assoc_ai_core.api import SenderKey, load_sender_key
from assoc_ai_core.cli.main import cli
from assoc_ai_core.jobs.registry import ModelRegistry
from assoc_ai_core.mail.cleaning import TextCleaner, clean_message, meta_tokens
from assoc_ai_core.mail.model_checks import loaded_model_problems
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.persistence import load_model, save_model
from assoc_ai_core.trust.access import export_html, export_person
from assoc_ai_core.trust.erasure import erase_person
from assoc_ai_core.trust.privacy import load_trust_config

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "examples" / "mailbox" / "train"
KEY = SenderKey(bytes(range(32)))
RAW = (b"From: Marie <marie@exemple.fr>\r\nTo: info@asso.org\r\nCc: presse@journal-local.fr\r\n"
       b"Subject: Article\r\n\r\nBonjour, un article sur votre f\xc3\xaate ?\r\n")


def meta_vocabulary(model) -> dict[str, int]:
    return model.pipeline_.named_steps["features"].named_transformers_["meta"].vocabulary_


def address_tokens(model) -> set[str]:
    return {t for t in meta_vocabulary(model) if t.startswith(("sender_", "rcpt_"))}


def unkeyed(address: str) -> str:
    """What a model held for an address before tokens were keyed (and what an attacker recomputes)."""
    return hashlib.blake2b(address.lower().encode(), digest_size=6).hexdigest()


class UnkeyedTokens(SenderKey):
    """The former scheme, for tests only: the same token for everyone, computable from the address alone."""

    def token(self, address: str) -> str:
        return unkeyed(address.strip())


@pytest.fixture(scope="module")
def messages():
    return load_dataset(TRAIN).labelled()


@pytest.fixture(scope="module")
def keyed_model(messages):
    return train(messages, sender_key=KEY)


def test_without_a_key_no_sender_or_recipient_token_is_made_and_the_other_meta_tokens_stay(messages) -> None:
    msg = parse_message(RAW)
    tokens = meta_tokens(msg, clean_message(msg)).split()
    assert not any(t.startswith(("sender_", "rcpt_")) for t in tokens)
    assert {"from_exemple_fr", "rcptdom_asso_org", "rcptdom_journal_local_fr"} <= set(tokens)
    keyed = meta_tokens(msg, clean_message(msg), sender_key=KEY).split()
    assert keyed.count("sender_" + KEY.token("Marie@Exemple.fr ")) == 1  # trimmed and lower-cased first
    assert sum(t.startswith("rcpt_") for t in keyed) == 2
    assert not any("marie" in t or "presse" in t for t in keyed)
    model = train(messages[:40])
    assert model.sender_key_id_ is None and model.metadata_["sender_tokens"] == "none"
    assert address_tokens(model) == set()
    assert any(t.startswith("from_") for t in meta_vocabulary(model))


def test_a_model_file_and_the_addresses_do_not_tell_who_wrote_without_the_key(keyed_model, messages,
                                                                             tmp_path: Path) -> None:
    path = save_model(keyed_model, tmp_path / "model.skops")
    loaded = load_model(path)
    vocab = meta_vocabulary(loaded)
    addresses = sorted({m.sender for m in messages} | {r for m in messages for r in m.to + m.cc})
    senders = sorted({m.sender for m in messages})
    assert len(senders) > 50
    # With the key the tokens are there: this installation's model does use who writes.
    assert sum("sender_" + KEY.token(a) in vocab for a in senders) == len(senders)
    # Whoever holds the file and the list of addresses: the former digest, a guessed key, no match at all.
    guesses = [UnkeyedTokens(b"\0" * 16), SenderKey(b"\0" * 32), SenderKey(bytes(range(1, 33)))]
    found = [a for a in addresses for g in guesses for p in ("sender_", "rcpt_") if p + g.token(a) in vocab]
    assert found == []
    assert not any(p + unkeyed(a) in vocab for a in addresses for p in ("sender_", "rcpt_"))
    # The key is not in the file, in any form; its fingerprint is, and says nothing of it.
    data = path.read_bytes()
    for form in (KEY._secret, KEY._secret.hex().encode(), KEY._secret.hex().encode("utf-32-le")):
        assert form not in data
    assert loaded.sender_key_id_ == KEY.fingerprint == json.loads(
        __import__("zipfile").ZipFile(path).read("assoc_ai.json"))["sender_key_id"]
    assert KEY.fingerprint not in KEY._secret.hex() and "SenderKey(fingerprint=" in repr(KEY)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(KEY)


def test_predict_with_another_key_warns_once_and_drops_the_tokens(keyed_model, messages) -> None:
    sample = messages[:12]
    cleaned_without = TextCleaner(pseudonymize=True).transform(sample)
    plain = keyed_model.predict_proba(cleaned_without)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert all(p.label for p in predict(keyed_model, sample, sender_key=KEY))
        right = keyed_model.decision_function(sample, sender_key=KEY)
        assert caught == []
        other = SenderKey(b"another installation's key")
        first = keyed_model.predict_proba(sample, sender_key=other)
        second = keyed_model.predict_proba(sample, sender_key=other)
    mismatch = [w for w in caught if "key" in str(w.message) or "clé" in str(w.message)]
    assert len(mismatch) == 1  # once per model, however many pages a job predicts
    np.testing.assert_allclose(first, plain)
    np.testing.assert_allclose(second, plain)
    assert not np.allclose(right, keyed_model.decision_function(cleaned_without))  # the tokens weigh with the key
    with warnings.catch_warnings(record=True) as none_given:
        warnings.simplefilter("always")
        np.testing.assert_allclose(keyed_model.predict_proba(sample), plain)
    assert len(none_given) == 1


def test_a_loaded_model_with_a_malformed_key_fingerprint_is_refused(keyed_model) -> None:
    assert loaded_model_problems(keyed_model) == []
    keyed_model.sender_key_id_, saved = "not-a-fingerprint", keyed_model.sender_key_id_
    try:
        assert any("fingerprint" in p or "empreinte" in p for p in loaded_model_problems(keyed_model))
    finally:
        keyed_model.sender_key_id_ = saved


def test_cli_train_creates_the_key_file_and_predict_needs_it(tmp_path: Path) -> None:
    key_file, model = tmp_path / "keys" / "assoc_ai.key", tmp_path / "m.skops"
    runner = CliRunner()
    done = runner.invoke(cli, ["train", str(TRAIN), "-o", str(model), "--key-file", str(key_file)])
    assert done.exit_code == 0, done.output
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_model(model).sender_key_id_ == load_sender_key(key_file).fingerprint
    sample = next(p for p in (TRAIN / "Adhesion").rglob("*") if p.is_file())
    keyed = runner.invoke(cli, ["predict", str(model), str(sample), "--key-file", str(key_file), "--json"])
    assert keyed.exit_code == 0, keyed.output
    assert "clé" not in keyed.output and "key" not in keyed.output.lower().replace('"key"', "")
    bare = runner.invoke(cli, ["predict", str(model), str(sample), "--json"])
    assert bare.exit_code == 0 and ("--key-file" in bare.output), bare.output
    missing = runner.invoke(cli, ["predict", str(model), str(sample), "--key-file", str(tmp_path / "none.key")])
    assert missing.exit_code != 0


# ------------------------------------------------------------------------------------------------- erasure
def _job_with_models(tmp_path: Path, messages, *, other_key: bool = False):
    cfg = job_config(tmp_path, [])
    config = load_trust_config(cfg)
    key = load_sender_key(config.settings.key_file, create=True)  # the job's own key file
    registry = ModelRegistry(config.settings.models_dir)
    registry.add(train(messages, sender_key=key), {"source": "test"}, promote=True)
    if other_key:
        registry.add(train(messages, sender_key=SenderKey(b"a key from elsewhere!!")), {"source": "test"})
    return config, key, registry


def test_erasure_removes_the_persons_tokens_and_keeps_the_others(tmp_path: Path, messages) -> None:
    config, key, registry = _job_with_models(tmp_path, messages, other_key=True)
    person, other = messages[0].sender, messages[1].sender
    assert person != other
    path = registry.path("v0001")
    before = path.read_bytes()
    # an access request says which versions hold a token of them (v0002: another key, cannot be told)
    export = export_person(config, email=person)
    assert export["model_address_tokens"] == {"v0001": 1, "v0002": None}
    assert "Address tokens in models" in export_html(export, lang="en")
    dry = erase_person(config, email=person)
    assert dry.sender_tokens == 1 and path.read_bytes() == before  # a dry run lists, changes nothing

    report = erase_person(config, email=person, apply=True)
    assert report.sender_tokens == 1 and report.verified
    assert report.models_marked == ["v0001", "v0002"]
    by_version = {c["model"]: c for c in report.changes if "model" in c}
    assert by_version["v0001"]["sender_tokens_removed"] == 1
    assert not by_version["v0001"]["sender_tokens_need_retraining"]
    assert by_version["v0002"]["sender_tokens_need_retraining"]  # another key: only retraining can forget
    assert "v0002" in report.summary("en")
    assert export_person(config, email=person)["model_address_tokens"] == {"v0002": None}
    assert export_person(config, email=other)["model_address_tokens"] == {"v0001": 1, "v0002": None}

    model, _ = registry.load("v0001")  # the registry recorded the rewritten file's digest
    vocab = meta_vocabulary(model)
    gone = "sender_" + key.token(person)
    assert gone not in vocab and "sender_" + key.token(other) in vocab
    assert gone[len("sender_"):].encode("utf-32-le") not in path.read_bytes()  # skops stores terms as UCS-4
    assert gone[len("sender_"):].encode() not in path.read_bytes()
    kept = [m for m in messages if m.sender not in (person,)]
    assert len(address_tokens(model)) >= len({m.sender for m in kept})
    # its weights are gone too: the person's mail is scored as if the sender were unknown
    rows = model.transform_clean(messages[:1], sender_key=key)
    stripped = rows.copy()
    stripped[0, 1] = " ".join(t for t in str(rows[0, 1]).split() if not t.startswith("sender_"))
    np.testing.assert_allclose(model.predict_proba(rows), model.predict_proba(stripped))


def test_erasure_finds_the_unkeyed_tokens_of_a_model_trained_before_keys(tmp_path: Path, messages) -> None:
    cfg = job_config(tmp_path, [])
    config = load_trust_config(cfg)
    legacy = train(messages, sender_key=UnkeyedTokens(b"\0" * 16))
    del legacy.sender_key_id_  # what a model saved by the former code looks like
    person = messages[3].sender
    assert "sender_" + unkeyed(person) in meta_vocabulary(legacy)
    ModelRegistry(config.settings.models_dir).add(legacy, {"source": "test"}, promote=True)
    report = erase_person(config, email=person, apply=True)  # no key file at all: the job never ran
    assert report.sender_tokens == 1
    model, _ = ModelRegistry(config.settings.models_dir).load("v0001")
    assert "sender_" + unkeyed(person) not in meta_vocabulary(model)
    assert "sender_" + unkeyed(messages[0].sender) in meta_vocabulary(model)
    with warnings.catch_warnings(record=True) as caught:  # predicting with it says to retrain
        warnings.simplefilter("always")
        predict(model, messages[:2])
    [said] = [str(w.message).lower() for w in caught]
    assert "retrain" in said or "ré-entraînez" in said
