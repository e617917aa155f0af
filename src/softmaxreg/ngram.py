"""Count models of the next word, the honest baselines of next-word softmax regression.

Classes 0..K-1 (K = V + 1, `<unk>` included); contexts u are the previous word's id or the
sentence boundary (any id >= 0). Both are fitted by counting the training split once.

Unigram, add-k (Laplace for k = 1):

    P(w) = (c(w) + k) / (N + k K)

Bigram, interpolated with the unigram by Witten-Bell (no parameter to tune: the weight of the
counts grows with how often u was seen and shrinks with how many different words followed it):

    P(w | u) = (c(u, w) + T(u) P(w)) / (c(u) + T(u)),     T(u) = #{w : c(u, w) > 0}
    P(w | u) = P(w)                                          if u was never seen

`figures` gives the held-out perplexity exp(-mean log P(y_i | u_i)) and the top-1 / top-5
accuracy of the most probable words (ties to the smaller id).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Unigram", "WittenBellBigram"]


class Unigram:
    """P(w) = (c(w) + k) / (N + k K) from the training targets y (N,) over K classes."""

    def __init__(self, y: np.ndarray, num_classes: int, k: float = 1.0):
        counts = np.bincount(y, minlength=num_classes).astype(np.float64)
        self.p = (counts + k) / (counts.sum() + k * num_classes)                 # (K,)
        self.order = np.lexsort((np.arange(num_classes), -self.p))              # most probable first

    def log_proba(self, u: np.ndarray | None, y: np.ndarray) -> np.ndarray:
        """log P(y_i) (n,); the contexts u are ignored."""
        return np.log(self.p[y])

    def top(self, u: np.ndarray | None, n: int, count: int = 5) -> np.ndarray:
        """(n, count) the most probable classes, the same for every row."""
        return np.broadcast_to(self.order[:count], (n, count))

    def figures(self, u, y) -> dict:
        return _figures(self, u, y)


class WittenBellBigram:
    """P(w | u) interpolated with `unigram` by Witten-Bell (see the module's docstring), from the
    training pairs (u (N,) contexts, y (N,) next words)."""

    def __init__(self, u: np.ndarray, y: np.ndarray, unigram: Unigram):
        self.unigram, K = unigram, unigram.p.size
        self.K = K
        self.keys, pair_counts = np.unique(u.astype(np.int64) * K + y, return_counts=True)   # sorted (u, w) pairs
        self.pair_counts = pair_counts.astype(np.float64)
        size = int(u.max()) + 1
        self.context_counts = np.bincount(u, minlength=size).astype(np.float64)             # c(u)
        self.types = np.bincount(self.keys // K, minlength=size).astype(np.float64)         # T(u)

    def _context(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(c(u), T(u)) (n,), 0 for contexts never seen."""
        seen = u < self.context_counts.size
        c, t = np.zeros(u.shape), np.zeros(u.shape)
        c[seen], t[seen] = self.context_counts[u[seen]], self.types[u[seen]]
        return c, t

    def pair_count(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        """c(u_i, y_i) (n,) float64."""
        q = u.astype(np.int64) * self.K + y
        at = np.minimum(np.searchsorted(self.keys, q), self.keys.size - 1)
        return np.where(self.keys[at] == q, self.pair_counts[at], 0.0)

    def log_proba(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        """log P(y_i | u_i) (n,)."""
        c, t = self._context(u)
        p_uni = self.unigram.p[y]
        seen = c > 0
        p = p_uni.copy()
        p[seen] = (self.pair_count(u[seen], y[seen]) + t[seen] * p_uni[seen]) / (c[seen] + t[seen])
        return np.log(p)

    def top(self, u: np.ndarray, n: int, count: int = 5) -> np.ndarray:
        """(n, count) the most probable next words of each row's context: among the words seen after
        u and the unigram's top `count` (a word never seen after u has P = T(u) P(w) / (c(u) + T(u)),
        largest for the unigram's most probable words)."""
        contexts, inverse = np.unique(u, return_inverse=True)
        return np.stack([self._top_of(int(context), count) for context in contexts])[inverse]   # (n, count)

    def _top_of(self, context: int, count: int) -> np.ndarray:
        base = self.unigram.order[:count]
        if context >= self.context_counts.size or not self.context_counts[context]:
            return base
        lo, hi = np.searchsorted(self.keys, [context * self.K, (context + 1) * self.K])
        words = np.union1d(self.keys[lo:hi] - context * self.K, base)                      # sorted ids
        p = np.exp(self.log_proba(np.full(words.size, context), words))
        return words[np.lexsort((words, -p))][:count]

    def figures(self, u, y) -> dict:
        return _figures(self, u, y)


def _figures(model, u, y) -> dict:
    """{"perplexity", "top1_accuracy", "top5_accuracy"} of `model` on held-out contexts u and words y."""
    y = np.asarray(y)
    top = model.top(u, y.size, min(5, model.unigram.p.size if hasattr(model, "unigram") else model.p.size))
    return {"perplexity": math.exp(-float(np.mean(model.log_proba(u, y)))),
            "top1_accuracy": float(np.mean(top[:, 0] == y)),
            "top5_accuracy": float(np.mean((top == y[:, None]).any(axis=1)))}
