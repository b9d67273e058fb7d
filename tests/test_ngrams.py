"""The numpy character n-gram counter gives scikit-learn's exact TF-IDF matrix, on real mail and odd text."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from assoc_ai_core.mail.cleaning import clean
from assoc_ai_core.mail.model import CompactTfidfVectorizer
from assoc_ai_core.mail.ngrams import CharNgramIndex
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.mail.stopwords import ENGLISH_STOP_WORDS, FRENCH_STOP_WORDS, WORD_TOKEN
from assoc_ai_core.persistence import load_model, save_model

ODD = [
    "", "   \n\t ", "a", "ab", "é à ü ø", "Jørgen ÆØÅ", "日本語のテキスト", "x\u00a8y ¨", "\udce9t\udce9",
    "emoji 😀 ok 😀😀", "A  B\tC\nD", "NUL\x00inside", "ﬁn ligature", "İstanbul ǅ", "-- \n__ init __",
]
FIT = 100  # texts the vectorizer learns from; the rest of the sample (and ODD) is transformed


@pytest.fixture(scope="module")
def real_texts(fixtures_dir) -> list[str]:
    """Cleaned openings of the 160 SpamAssassin messages in tests/fixtures (odd charsets, HTML, many languages)."""
    raws = []
    with tarfile.open(fixtures_dir / "spamassassin_sample.tar.gz") as tar:
        for member in tar:
            if member.isfile():
                raws.append(tar.extractfile(member).read())
    return [t[:600] for t in clean([parse_message(r) for r in raws])]


def _sklearn(vec: TfidfVectorizer, docs: list[str]):
    return TfidfVectorizer.transform(vec, docs)


@pytest.mark.parametrize("ngram_range", [(3, 5), (2, 4), (1, 3), (3, 3)])
@pytest.mark.parametrize("strip_accents", ["unicode", None])
def test_same_matrix_as_scikit_learn(real_texts, ngram_range, strip_accents):
    vec = CompactTfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, sublinear_tf=True,
                                 strip_accents=strip_accents, min_df=2, max_features=30_000, dtype=np.float32)
    vec.fit(real_texts[:FIT] + ODD)
    assert vec._fast_index() is not None, "the fast path must apply to this vectorizer"
    docs = real_texts[FIT:] + ODD
    fast, slow = vec.transform(docs), _sklearn(vec, docs)
    assert type(fast) is type(slow) and fast.dtype == slow.dtype and fast.shape == slow.shape
    assert np.array_equal(fast.indptr, slow.indptr) and np.array_equal(fast.indices, slow.indices)
    assert np.array_equal(fast.data, slow.data)


@pytest.mark.parametrize("ngram_range", [(1, 2), (1, 1), (2, 2)])
@pytest.mark.parametrize("stop", [True, False])
def test_same_word_matrix_as_scikit_learn(real_texts, ngram_range, stop):
    stop_words = sorted(FRENCH_STOP_WORDS | ENGLISH_STOP_WORDS) if stop else None
    vec = CompactTfidfVectorizer(sublinear_tf=True, ngram_range=ngram_range, min_df=2, max_df=0.8,
                                 token_pattern=WORD_TOKEN, stop_words=stop_words, max_features=20_000,
                                 dtype=np.float32)
    vec.fit(real_texts[:FIT] + ODD)
    assert vec._fast_index() is not None, "the fast path must apply to this vectorizer"
    docs = real_texts[FIT:] + ODD + ["the the the a", "mot-composé et mot composé", "Le LE le"]
    fast, slow = vec.transform(docs), _sklearn(vec, docs)
    assert type(fast) is type(slow) and fast.dtype == slow.dtype and fast.shape == slow.shape
    assert np.array_equal(fast.indptr, slow.indptr) and np.array_equal(fast.indices, slow.indices)
    assert np.array_equal(fast.data, slow.data)


def test_an_unknown_or_stop_word_between_two_words_is_handled_as_scikit_learn_does():
    vec = CompactTfidfVectorizer(ngram_range=(1, 2), stop_words=["le"]).fit(["adhésion cotisation annuelle"])
    docs = ["adhésion le cotisation", "adhésion inconnu cotisation", "cotisation adhésion", ""]
    assert np.array_equal(vec.transform(docs).toarray(), _sklearn(vec, docs).toarray())
    # A stop word removed before pairing joins its neighbours into a pair the vocabulary knows.
    pair = vec.vocabulary_["adhésion cotisation"]
    assert vec.transform(["adhésion le cotisation"])[0, pair] > 0


def test_a_character_outside_the_vocabulary_does_not_shift_an_ngram():
    # "ørge" holds a character the vocabulary never saw; it must not count as the 3-gram "rge".
    vec = CompactTfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit(["rge berge"])
    fast = vec.transform(["jørgen"])
    assert np.array_equal(fast.toarray(), _sklearn(vec, ["jørgen"]).toarray())


def test_large_batches_are_counted_in_chunks(monkeypatch, real_texts):
    from assoc_ai_core.mail import ngrams

    vec = CompactTfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=1).fit(real_texts[:FIT])
    monkeypatch.setattr(ngrams, "_CHUNK_CHARS", 5_000)  # many chunks, including one-document ones
    docs = real_texts[FIT:]
    assert (vec.transform(docs) != _sklearn(vec, docs)).nnz == 0


def test_many_documents_are_counted_a_batch_at_a_time(monkeypatch, real_texts):
    from assoc_ai_core.mail import model

    monkeypatch.setattr(model, "DOCS_PER_BATCH", 7)
    for vec in (CompactTfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)),
                CompactTfidfVectorizer(ngram_range=(1, 2), token_pattern=WORD_TOKEN)):
        vec.fit(real_texts[:FIT])
        docs = real_texts[FIT:]
        fast, slow = vec.transform(iter(docs)), _sklearn(vec, docs)  # a generator works too
        assert np.array_equal(fast.indptr, slow.indptr) and np.array_equal(fast.indices, slow.indices)
        assert np.array_equal(fast.data, slow.data)
        for transform in (vec.transform, lambda d, v=vec: _sklearn(v, d)):  # no document: the same error as scikit-learn
            with pytest.raises(ValueError, match="0 sample"):
                transform([])


def test_vocabularies_the_fast_path_cannot_reproduce_fall_back():
    # n-grams longer than five characters do not fit one 64-bit key; words shorter than the smallest n are
    # a special case of scikit-learn's; both keep scikit-learn's own path.
    assert CharNgramIndex.build({"abcdef": 0}, (6, 6)) is None
    assert CharNgramIndex.build({" a ": 0, "abcd": 1}, (4, 5)) is None
    assert CharNgramIndex.build({"a\x00b": 0, "abc": 1}, (3, 5)) is None  # NUL pads keys internally
    vec = CompactTfidfVectorizer(analyzer="char_wb", ngram_range=(4, 6)).fit(["a bcdefgh", "ij klmnop"])
    assert vec._fast_index() is None
    assert (vec.transform(["a bcdefg"]) != _sklearn(vec, ["a bcdefg"])).nnz == 0
    triples = CompactTfidfVectorizer(ngram_range=(1, 3)).fit(["des mots entiers", "des mots"])
    assert triples._fast_index() is None
    assert (triples.transform(["mots entiers"]) != _sklearn(triples, ["mots entiers"])).nnz == 0


def test_refitting_rebuilds_the_index():
    vec = CompactTfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit(["adhésion cotisation"])
    first = vec._fast_index()
    vec.fit(["bénévolat mission"])
    assert vec._fast_index() is not first
    docs = ["mission bénévole", "cotisation"]
    assert (vec.transform(docs) != _sklearn(vec, docs)).nnz == 0


def test_saved_model_holds_no_index_and_predicts_the_same(trained_model, example_mailbox, tmp_path):
    from assoc_ai_core import load_dataset

    msgs = load_dataset(example_mailbox / "train").messages[:40]
    before = trained_model.predict_proba(msgs)  # builds the index in the live model
    char = trained_model.pipeline_.named_steps["features"].named_transformers_["char"]
    assert "_ngram_index" in char.__dict__
    path = tmp_path / "model.skops"
    save_model(trained_model, path)
    assert "_ngram_index" in char.__dict__, "saving must not strip the live model"
    loaded = load_model(path)
    loaded_char = loaded.pipeline_.named_steps["features"].named_transformers_["char"]
    assert "_ngram_index" not in loaded_char.__dict__
    assert np.allclose(loaded.predict_proba(msgs), before)
