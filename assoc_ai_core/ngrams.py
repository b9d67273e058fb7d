"""Counting a fitted vocabulary's character n-grams in documents, with numpy.

scikit-learn's ``char_wb`` analyzer builds every n-gram of every word as a
Python string and looks each one up in a dict: about 1,800 dictionary
look-ups for the 600 characters we keep of a mail, which made character
n-grams the costliest step of classifying a message.  Here the documents of
a batch are laid end to end as one array of code points, each n-gram becomes
one integer (its characters packed side by side, exactly, with no hashing),
and the look-ups are a sorted search over the whole batch at once.

The result is the very count matrix scikit-learn computes (a test compares
them on real mail).  It applies when the n-grams are at most five characters
from an alphabet of fewer than 4,096 symbols (the characters of the
vocabulary) and start at three characters or fewer, so that scikit-learn's
special case for words shorter than the smallest n never arises; otherwise
the caller keeps scikit-learn's own path.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

_BITS = 12  # bits per character: five characters fit in one 64-bit integer
_UNKNOWN = (1 << _BITS) - 1  # the code of a character no vocabulary term holds
_MAX_SYMBOLS = _UNKNOWN - 1  # ranks 1 .. _MAX_SYMBOLS; 0 is never a character's code
_CHUNK_CHARS = 2_000_000  # bounds the temporary arrays when a large batch is transformed at once


class CharNgramIndex:
    """The vocabulary of a ``char_wb`` vectorizer as an open-addressing hash table of integer keys.

    A key packs an n-gram's characters, ``_BITS`` bits each, by their rank in
    the vocabulary's alphabet (from 1), so no key has a 0 character and keys
    of different lengths never collide; a character outside the alphabet gets
    a code no rank takes, so an n-gram holding one matches no key.  Keys are
    compared in full: the table is exact.
    """

    def __init__(self, alphabet: np.ndarray, slot_keys: np.ndarray, slot_columns: np.ndarray,
                 lengths: frozenset[int], ngram_range: tuple[int, int], n_features: int) -> None:
        self.alphabet = alphabet
        self.slot_keys = slot_keys
        self.slot_columns = slot_columns
        self.lengths = lengths
        self.ngram_range = ngram_range
        self.n_features = n_features
        self._shift = np.uint64(64 - (len(slot_keys) - 1).bit_length())

    @classmethod
    def build(cls, vocabulary: dict[str, int], ngram_range: tuple[int, int]) -> "CharNgramIndex | None":
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
        size = 1 << max(4, (2 * len(keys)).bit_length())  # at most half full: short probe chains
        slot_keys = np.zeros(size, dtype=np.uint64)  # 0 marks an empty slot (no key has a 0 character)
        slot_columns = np.full(size, -1, dtype=np.int64)
        index = cls(alphabet, slot_keys, slot_columns, frozenset(lengths), ngram_range, len(vocabulary))
        pending = np.arange(len(keys))
        slot = index._slot(keys)
        mask = np.uint64(size - 1)
        while pending.size:
            free = slot_keys[slot] == 0
            # One key per free slot in this round; the others probe the next slot.
            first = np.unique(slot[free], return_index=True)[1]
            chosen = np.flatnonzero(free)[first]
            slot_keys[slot[chosen]] = keys[pending[chosen]]
            slot_columns[slot[chosen]] = columns[pending[chosen]]
            waiting = np.ones(pending.size, dtype=bool)
            waiting[chosen] = False
            pending = pending[waiting]
            slot = (slot[waiting] + np.uint64(1)) & mask
        return index

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        # Fibonacci hashing: the top bits of key × 2^64/φ (the multiplication wraps modulo 2^64).
        return (keys * np.uint64(0x9E3779B97F4A7C15)) >> self._shift

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Column of each key, -1 where the key is not in the vocabulary."""
        found = np.full(len(keys), -1, dtype=np.int64)
        todo = np.arange(len(keys))
        slot = self._slot(keys)
        mask = np.uint64(len(self.slot_keys) - 1)
        while todo.size:
            stored = self.slot_keys[slot]
            wanted = keys[todo]
            hit = stored == wanted
            found[todo[hit]] = self.slot_columns[slot[hit]]
            again = ~hit & (stored != 0)
            todo = todo[again]
            slot = (slot[again] + np.uint64(1)) & mask
        return found

    def counts(self, docs: Sequence[str], dtype: Any) -> sp.csr_array:
        """Document × term counts of the n-grams of already preprocessed documents."""
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
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
            r, c = self._chunk(texts)
            rows.append(r + start)
            cols.append(c)
            start = stop
        row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        # One sort of (row, column) pairs gives scikit-learn's layout: rows in order, columns sorted
        # within a row, repeats summed into counts.
        flat = row * self.n_features + col
        flat.sort()
        first = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]])) if len(flat) else flat
        counts = np.diff(np.append(first, len(flat)))
        pairs = flat[first]
        doc = pairs // self.n_features
        large = max(len(pairs), self.n_features) >= np.iinfo(np.int32).max
        index_dtype = np.int64 if large else np.int32
        indptr = np.searchsorted(doc, np.arange(len(docs) + 1)).astype(index_dtype)
        return sp.csr_array((counts.astype(dtype), (pairs - doc * self.n_features).astype(index_dtype), indptr),
                            shape=(len(docs), self.n_features))

    def _chunk(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        joined = "".join(texts)
        if not joined:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
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
            columns = self.lookup(key[starts])
            hit = columns >= 0
            rows_out.append(np.searchsorted(ends, starts[hit], side="right"))
            cols_out.append(columns[hit])
        if not rows_out:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(rows_out), np.concatenate(cols_out)

