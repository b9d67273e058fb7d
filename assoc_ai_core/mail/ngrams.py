"""Counting a fitted vocabulary's n-grams in documents, with numpy.

scikit-learn builds every n-gram of every document as a Python string and
looks each one up in a dict: about 1,800 look-ups for the 600 characters of a
mail whose character n-grams we count, and a few hundred for its words,
which made feature extraction the costliest step of classifying a message
after cleaning.  Here each n-gram becomes one integer, exactly (characters,
or word numbers, packed side by side: no hashing), and the look-ups are done
for a whole batch at once in an open-addressing table.

The result is the very count matrix scikit-learn computes (tests compare
them on real mail).  Character n-grams: up to five characters from an
alphabet of fewer than 4,095 symbols (the characters of the vocabulary),
starting at three characters or fewer, so that scikit-learn's special case
for words shorter than the smallest n never arises.  Word n-grams: single
words and pairs.  Otherwise the caller keeps scikit-learn's own path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["CharNgramIndex", "WordNgramIndex"]

_BITS = 12  # bits per character: five characters fit in one 64-bit integer
_UNKNOWN = (1 << _BITS) - 1  # the code of a character no vocabulary term holds
_MAX_SYMBOLS = _UNKNOWN - 1  # ranks 1 .. _MAX_SYMBOLS; 0 is never a character's code
_CHUNK_CHARS = 100_000  # characters looked up at once: bounds the temporary arrays (about 80 bytes a character)


class _KeyTable:
    """Open-addressing hash table from non-zero 64-bit keys to vocabulary columns (keys compared in full)."""

    def __init__(self, keys: np.ndarray, columns: np.ndarray) -> None:
        size = 1 << max(4, (2 * len(keys)).bit_length())  # at most half full: short probe chains
        self.slot_keys = np.zeros(size, dtype=np.uint64)  # 0 marks an empty slot
        self.slot_columns = np.full(size, -1, dtype=np.int64)
        self._shift = np.uint64(64 - (size - 1).bit_length())
        self._mask = np.uint64(size - 1)
        self._size_mask = size - 1
        pending = np.arange(len(keys))
        slot = self._slot(keys)
        while pending.size:
            free = self.slot_keys[slot] == 0
            # One key per free slot in this round; the others probe the next slot.
            first = np.unique(slot[free], return_index=True)[1]
            chosen = np.flatnonzero(free)[first]
            self.slot_keys[slot[chosen]] = keys[pending[chosen]]
            self.slot_columns[slot[chosen]] = columns[pending[chosen]]
            waiting = np.ones(pending.size, dtype=bool)
            waiting[chosen] = False
            pending = pending[waiting]
            slot = (slot[waiting] + np.uint64(1)) & self._mask

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        # Fibonacci hashing: the top bits of key × 2^64/φ (the multiplication wraps modulo 2^64).
        return (keys * np.uint64(0x9E3779B97F4A7C15)) >> self._shift

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Column of each key, -1 where the key is not in the table."""
        found = np.full(len(keys), -1, dtype=np.int64)
        todo = np.arange(len(keys))
        slot = self._slot(keys)
        while todo.size:
            if todo.size <= _FEW:
                # The last keys of long probe chains: one by one, rather than a round of array
                # operations per step of the longest chain.
                for i, at in zip(todo.tolist(), slot.tolist(), strict=True):
                    key = keys[i]
                    stored = self.slot_keys[at]
                    while stored != 0 and stored != key:
                        at = (at + 1) & self._size_mask
                        stored = self.slot_keys[at]
                    if stored != 0:
                        found[i] = self.slot_columns[at]
                break
            stored = self.slot_keys[slot]
            hit = stored == keys[todo]
            found[todo[hit]] = self.slot_columns[slot[hit]]
            again = ~hit & (stored != 0)
            todo = todo[again]
            slot = (slot[again] + np.uint64(1)) & self._mask
        return found


def _count_matrix(row: np.ndarray, col: np.ndarray, n_docs: int, n_features: int, dtype: Any) -> sp.csr_array:
    """CSR counts of (document, column) hits, laid out as scikit-learn's: rows in order, columns sorted."""
    # One sort of the pairs gives that layout, and repeats side by side to be summed into counts.
    flat = row.astype(np.int64) * n_features + col
    flat.sort()
    first = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]])) if len(flat) else flat
    counts = np.diff(np.append(first, len(flat)))
    pairs = flat[first]
    doc = pairs // n_features
    index_dtype = np.int64 if max(len(pairs), n_features) >= np.iinfo(np.int32).max else np.int32
    indptr = np.searchsorted(doc, np.arange(n_docs + 1)).astype(index_dtype)
    return sp.csr_array((counts.astype(dtype), (pairs - doc * n_features).astype(index_dtype), indptr),
                        shape=(n_docs, n_features))


_EMPTY = np.zeros(0, dtype=np.int64)
_FEW = 16  # keys left in a look-up below which probing goes on one key at a time


class CharNgramIndex:
    """The vocabulary of a ``char_wb`` vectorizer as a table of integer keys.

    A key packs an n-gram's characters, ``_BITS`` bits each, by their rank in
    the vocabulary's alphabet (from 1), so no key has a 0 character and keys
    of different lengths never collide; a character outside the alphabet gets
    a code no rank takes, so an n-gram holding one matches no key.  Keys are
    compared in full: the table is exact.
    """

    def __init__(self, alphabet: np.ndarray, table: _KeyTable, lengths: frozenset[int],
                 ngram_range: tuple[int, int], n_features: int) -> None:
        self.alphabet = alphabet
        self.table = table
        self.lengths = lengths
        self.ngram_range = ngram_range
        self.n_features = n_features

    @classmethod
    def build(cls, vocabulary: dict[str, int], ngram_range: tuple[int, int]) -> CharNgramIndex | None:
        """Index a fitted vocabulary, or None when the fast path cannot reproduce scikit-learn exactly."""
        min_n, max_n = ngram_range
        if not (1 <= min_n <= 3 and max_n <= 64 // _BITS):
            return None
        terms = list(vocabulary)
        lengths = {len(t) for t in terms}
        if not all(min_n <= n <= max_n for n in lengths) or any("\x00" in t for t in terms):
            return None  # not a char_wb vocabulary of this range (or a NUL, which pads below)
        # Fixed-width code points, zero-padded after a short term's last character.
        points = np.asarray(terms, dtype=f"<U{max(lengths, default=1)}").view(np.uint32).reshape(len(terms), -1)
        alphabet = np.unique(points[points != 0])
        if len(alphabet) > _MAX_SYMBOLS:
            return None
        ranks = (np.searchsorted(alphabet, points) + 1).astype(np.uint64)
        keys = np.zeros(len(terms), dtype=np.uint64)
        for j in range(points.shape[1]):
            present = points[:, j] != 0
            keys[present] = (keys[present] << np.uint64(_BITS)) | ranks[present, j]
        columns = np.fromiter(vocabulary.values(), dtype=np.int64, count=len(terms))
        return cls(alphabet, _KeyTable(keys, columns), frozenset(lengths), ngram_range, len(vocabulary))

    def counts(self, docs: Sequence[str], dtype: Any) -> sp.csr_array:
        """Document × term counts of the n-grams of already preprocessed documents."""
        parts: list[sp.csr_array] = []
        start = 0
        while start < len(docs):
            # Each word is padded with one space on each side, as char_wb does; two spaces then mark
            # every boundary between words and between documents, which no n-gram may cross.
            texts: list[str] = []
            size = 0
            stop = start
            while stop < len(docs) and (size < _CHUNK_CHARS or stop == start):
                words = docs[stop].split()
                text = " " + "  ".join(words) + " " if words else ""
                texts.append(text)
                size += len(text)
                stop += 1
            # Each chunk becomes its compact CSR rows at once: the raw (document, column) hits of a
            # whole batch would take more memory than everything else classification holds.
            parts.append(_count_matrix(*self._chunk(texts), len(texts), self.n_features, dtype))
            start = stop
        if len(parts) == 1:
            return parts[0]
        return sp.vstack(parts, format="csr") if parts else _count_matrix(_EMPTY, _EMPTY, 0, self.n_features, dtype)

    def _chunk(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        joined = "".join(texts)
        if not joined:
            return _EMPTY, _EMPTY
        points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        pos = np.searchsorted(self.alphabet, points)
        np.minimum(pos, len(self.alphabet) - 1, out=pos)
        code = np.where(self.alphabet[pos] == points, pos + 1, _UNKNOWN).astype(np.uint64)
        space = points == 32
        # boundary[j]: characters j and j+1 are both spaces, i.e. a cut between two padded words.
        cuts = np.concatenate([[0], np.cumsum(space[:-1] & space[1:], dtype=np.int64)])
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        ends = np.cumsum(lengths)
        rows_out: list[np.ndarray] = []
        cols_out: list[np.ndarray] = []
        total = len(points)
        key = np.zeros(total, dtype=np.uint64)
        shift = np.uint64(_BITS)
        min_n, max_n = self.ngram_range
        for n in range(1, max_n + 1):
            m = total - n + 1
            if m <= 0:
                break
            # key[i] now packs the characters i .. i+n-1
            key = (key[:m] << shift) | code[n - 1 : n - 1 + m]
            if n < min_n or n not in self.lengths:
                continue
            starts = np.flatnonzero(cuts[n - 1 : n - 1 + m] == cuts[:m])
            columns = self.table.lookup(key[starts])
            hit = columns >= 0
            rows_out.append(np.searchsorted(ends, starts[hit], side="right"))
            cols_out.append(columns[hit])
        if not rows_out:
            return _EMPTY, _EMPTY
        return np.concatenate(rows_out), np.concatenate(cols_out)



class WordNgramIndex:
    """The vocabulary of a word vectorizer (single words and pairs) as word numbers and a table of pairs.

    Every word that appears in a vocabulary term gets a number from 1; a
    single word's key is its number, a pair's is ``first × (W + 1) + second``,
    always above W, so both kinds share one table.  Stop words are dropped
    before pairs are formed, as scikit-learn does; an unknown word breaks a
    pair, since no term holds it.
    """

    def __init__(self, numbers: dict[str, int], stop_words: frozenset[str], table: _KeyTable,
                 ngram_range: tuple[int, int], n_features: int) -> None:
        self.numbers = numbers
        self.stop_words = stop_words
        self.table = table
        self.ngram_range = ngram_range
        self.n_features = n_features

    @classmethod
    def build(cls, vocabulary: dict[str, int], ngram_range: tuple[int, int],
              stop_words: frozenset[str] | None) -> WordNgramIndex | None:
        """Index a fitted vocabulary, or None when the fast path cannot reproduce scikit-learn exactly."""
        min_n, max_n = ngram_range
        if not 1 <= min_n <= max_n <= 2:
            return None
        numbers: dict[str, int] = {}
        keys = np.empty(len(vocabulary), dtype=np.uint64)
        columns = np.fromiter(vocabulary.values(), dtype=np.int64, count=len(vocabulary))
        parts = [term.split(" ") for term in vocabulary]
        for words in parts:
            if not 1 <= len(words) <= 2 or "" in words:
                return None  # terms that are not one word or a pair of words
            for w in words:
                numbers.setdefault(w, len(numbers) + 1)
        base = len(numbers) + 1
        for i, words in enumerate(parts):
            keys[i] = numbers[words[0]] if len(words) == 1 else numbers[words[0]] * base + numbers[words[1]]
        stop = frozenset(stop_words or ())
        # A stop word is dropped before pairs are formed; it must not also be a numbered word.
        if stop & numbers.keys():
            return None
        return cls(numbers, stop, _KeyTable(keys, columns), ngram_range, len(vocabulary))

    def counts(self, token_lists: Sequence[list[str]], dtype: Any) -> sp.csr_array:
        """Document × term counts from each document's tokens (as the vectorizer's tokenizer gives them)."""
        number = self.numbers.get
        stop = self.stop_words
        # One array for the batch: the word numbers of each document, then a 0 that no pair crosses.
        flat: list[int] = []
        lengths = np.empty(len(token_lists), dtype=np.int64)
        for i, tokens in enumerate(token_lists):
            kept = [number(t, 0) for t in tokens if t not in stop]
            flat.extend(kept)
            flat.append(0)
            lengths[i] = len(kept) + 1
        ids = np.asarray(flat, dtype=np.uint64)
        ends = np.cumsum(lengths)
        min_n, max_n = self.ngram_range
        rows = [_EMPTY]
        cols = [_EMPTY]
        if min_n == 1:
            where = np.flatnonzero(ids)
            found = self.table.lookup(ids[where])
            hit = found >= 0
            rows.append(np.searchsorted(ends, where[hit], side="right"))
            cols.append(found[hit])
        if max_n == 2 and len(ids) > 1:
            first, second = ids[:-1], ids[1:]
            where = np.flatnonzero((first != 0) & (second != 0))
            found = self.table.lookup(first[where] * np.uint64(len(self.numbers) + 1) + second[where])
            hit = found >= 0
            rows.append(np.searchsorted(ends, where[hit], side="right"))
            cols.append(found[hit])
        return _count_matrix(np.concatenate(rows), np.concatenate(cols), len(token_lists), self.n_features, dtype)
