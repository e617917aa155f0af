"""Next-word data: a corpus of sentences as word ids, split by article, a vocabulary, and the
previous n words of every word as hashed sparse one-hots.

    data = next_word_data(read_articles(max_tokens=10**6), vocab=20000, held_out=0.1, seed=0)
    X = hashed_contexts(data.train_contexts(2), buckets=4096)      # (N, B) CSR, <= n non-zeros a row
    y = data.train.targets                                          # (N,) class ids, 0 = <unk>

Classes: id 0 is `<unk>` (every word outside the vocabulary), ids 1..V the V most frequent words
of the training split by falling count (ties alphabetical), so k = V + 1. A context position
before the start of a sentence holds the boundary id V + 1 (`<s>`), which is never a target.

Split: each article (one headword's definitions) goes to the held-out part with probability
`held_out`, by a seeded generator: the senses of one word never straddle the split.

Features: position j = 1..n back of word t is the key (id(t - j), j), hashed by a fixed
multiplicative (Fibonacci) hash to one of B = 2^b buckets, value 1 (two keys of one row that
collide add up). Python's hash() is salted per process; this one is the same in every run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["UNK", "Tokens", "NextWordData", "next_word_data", "context_ids", "hashed_contexts", "bucket_of",
           "buckets_for", "MAX_WEIGHT_BYTES"]

UNK = "<unk>"
GOLDEN = np.uint64(0x9E3779B97F4A7C15)           # 2^64 / golden ratio: Knuth's multiplicative hash
MAX_CONTEXT = 8
MAX_WEIGHT_BYTES = 512 * 2**20
"""W (B x (V + 1) float32) stays within this: `buckets_for` picks B by V."""
MAX_BUCKETS = 2**14


@dataclass
class Tokens:
    """One split as flat arrays: ids (N,) int64 word ids, position (N,) each word's index in its sentence."""
    ids: np.ndarray
    position: np.ndarray

    @property
    def targets(self) -> np.ndarray:
        return self.ids


@dataclass
class NextWordData:
    """A corpus split and numbered: `words` (V + 1,) the class names (`<unk>` first), train and
    held_out Tokens."""
    words: list[str]
    train: Tokens
    held_out: Tokens

    @property
    def num_classes(self) -> int:
        return len(self.words)

    @property
    def boundary(self) -> int:
        """The context id of a position before a sentence's start (`<s>`): V + 1."""
        return len(self.words)


def next_word_data(articles: Iterable[list[list[str]]], vocab: int | None, held_out: float = 0.1,
                   seed: int = 0) -> NextWordData:
    """Split `articles` (each a list of sentences, each a list of words) into train and held-out by
    article (seeded), number the words by the training split's counts (the `vocab` most frequent,
    or all of them for None, get ids 1..vocab, every other word id 0, `<unk>`)."""
    if vocab is not None and int(vocab) < 1:
        raise InvalidArgumentError(f"vocab: expected an integer >= 1, got {vocab}")
    if not 0.0 < held_out < 1.0:
        raise InvalidArgumentError(f"held_out: expected a fraction in (0, 1), got {held_out}")
    rng = np.random.default_rng(seed)
    parts: tuple[list, list] = ([], [])
    for article in articles:
        parts[bool(rng.random() < held_out)].extend(article)
    train, held = parts
    if not train or not held:
        raise InvalidArgumentError(f"the corpus has too few articles to split ({len(train)} training sentences, "
                                   f"{len(held)} held out): give it more tokens")
    counts = Counter(word for sentence in train for word in sentence)
    ranked = sorted(counts, key=lambda word: (-counts[word], word))[:None if vocab is None else int(vocab)]
    words = [UNK, *ranked]
    index = {word: i for i, word in enumerate(words)}

    def numbered(sentences) -> Tokens:
        ids = np.fromiter((index.get(word, 0) for s in sentences for word in s), dtype=np.int64)
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        return Tokens(ids, np.arange(ids.size, dtype=np.int64) - starts)

    return NextWordData(words, numbered(train), numbered(held))


def context_ids(tokens: Tokens, n: int, boundary: int) -> np.ndarray:
    """(N, n) int64: column j - 1 holds the id of the word j places back, or `boundary` before the
    sentence's start."""
    if not 1 <= n <= MAX_CONTEXT:
        raise InvalidArgumentError(f"context: expected 1 <= n <= {MAX_CONTEXT} previous words, got {n}")
    N = tokens.ids.size
    out = np.full((N, n), boundary, dtype=np.int64)
    for j in range(1, n + 1):
        inside = tokens.position >= j                                  # (N,) word j back is in the sentence
        out[inside, j - 1] = tokens.ids[np.flatnonzero(inside) - j]
    return out


def bucket_of(ids: np.ndarray, position: int, bits: int) -> np.ndarray:
    """The bucket in [0, 2^bits) of the keys (id, position): the top `bits` bits of
    (id * (MAX_CONTEXT + 1) + position) * GOLDEN mod 2^64 (Fibonacci hashing: keys that differ
    spread over all buckets)."""
    keys = np.asarray(ids, dtype=np.uint64) * np.uint64(MAX_CONTEXT + 1) + np.uint64(position)
    with np.errstate(over="ignore"):
        return ((keys * GOLDEN) >> np.uint64(64 - bits)).astype(np.int64)


def hashed_contexts(contexts: np.ndarray, buckets: int, dtype=np.float32):
    """The (N, B) CSR array of hashed one-hots of contexts (N, n) (`bucket_of` each position j = 1..n),
    duplicates within a row summed, columns sorted: the sparse engine's canonical form."""
    import scipy.sparse as sp

    bits = int(buckets).bit_length() - 1
    if buckets < 2 or 1 << bits != buckets:
        raise InvalidArgumentError(f"buckets: expected a power of two >= 2, got {buckets}")
    N, n = contexts.shape
    columns = np.stack([bucket_of(contexts[:, j], j + 1, bits) for j in range(n)], axis=1)   # (N, n)
    X = sp.csr_array((np.ones(N * n, dtype=dtype), columns.ravel(), np.arange(0, N * n + 1, n)), shape=(N, buckets))
    X.sum_duplicates()
    return X


def buckets_for(num_classes: int, max_bytes: int = MAX_WEIGHT_BYTES, itemsize: int = 4) -> int:
    """B: the largest power of two up to MAX_BUCKETS with B x num_classes weights of `itemsize` bytes
    within `max_bytes` (2^14 at V = 1,000 and 5,000, 2^12 at V = 20,000: 328 MB), at least 2^8."""
    fit = max_bytes // (num_classes * itemsize)
    return int(min(MAX_BUCKETS, max(2**8, 2 ** int(math.floor(math.log2(max(fit, 1)))))))
