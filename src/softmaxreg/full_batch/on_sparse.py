"""F over the rows of a sparse matrix (engines/sparse.py) in this process: FullBatch's chunks on
all cores, each chunk a CSR view read through its products (generic.py's formulas), and a
diagonal preconditioner, since the Gram matrix of 10^5 columns (d x d) is out of reach."""

from __future__ import annotations

import math

import numpy as np

from .. import generic
from ..engines.sparse import row_block
from ..model import LOGITS_PER_CHUNK
from ..objective import SoftmaxCrossEntropy, set_flat_params
from ..preconditioner import HessianDiagonal, input_map
from .in_process import FullBatch, row_factors

__all__ = ["SPARSE_CHUNKS", "SparseFullBatch", "sparse_chunks"]

SPARSE_CHUNKS = 8
"""The most chunks a pass is cut into for the cores' sake (more only to bound a chunk's logits)."""
NONZEROS_PER_COLUMN = 8
"""A chunk costs its non-zeros times k in the products and d times k in its own dense gradient
(written, scaled, added): chunks for the cores are cut only while each keeps this many non-zeros per
column. TF-IDF of package descriptions (63,578 x 54,783, 672,000 non-zeros, k = 53, 2 cores): a pass
took 0.159 s in 8 chunks, 0.138 s in 2 (medians of 5, interleaved)."""


def sparse_chunks(n: int, d: int, nonzeros: int, k: int) -> int:
    """The number of chunks of a pass over n sparse rows: a power of two, at least 2 (for two cores)
    and at most SPARSE_CHUNKS while each keeps NONZEROS_PER_COLUMN non-zeros per column, and
    enough that a chunk's logits take at most max(LOGITS_PER_CHUNK, d k) numbers (no more than W).
    It depends on the data alone, not on the threads: so the bits do not either."""
    for_cores = 2
    while for_cores < SPARSE_CHUNKS and nonzeros >= 2 * for_cores * NONZEROS_PER_COLUMN * d:
        for_cores *= 2
    return max(min(for_cores, n), math.ceil(n / max(LOGITS_PER_CHUNK // k, d, 1)))


class SparseFullBatch(FullBatch):
    """FullBatch over X a CSR array (checked_csr: already in the model's dtype), in `sparse_chunks`
    chunks run in waves of `threads` (`in_waves`): a pass holds the partial gradients (d k each) of
    one wave and their running sum, not one per chunk."""

    fused, in_waves = False, True

    def __init__(self, objective: SoftmaxCrossEntropy, X, y, w=None, *, threads: int | None = None,
                 divisor: float | None = None):
        n, d = X.shape
        chunks = sparse_chunks(n, d, X.nnz, objective.model.num_outputs)
        super().__init__(objective, X, y, w, rows=max(1, math.ceil(n / chunks)), threads=threads, divisor=divisor)
        self.squares = None                   # X's non-zeros squared (float64), for hessian_diagonal

    def _rows(self, part: slice):
        return row_block(self.X, part.start, part.stop)

    def _chunk(self, c: int) -> tuple:
        """FullBatch._chunk, with class indices (no smoothing) by `labels_chunk`: in place."""
        if self.y.ndim == 2 or self.objective.label_smoothing:
            return super()._chunk(c)
        part, x, _ = self._float_rows(c)
        self.losses[c], self.correct[c], dW, db = labels_chunk(
            self.objective.model, x, self.y[part], None if self.w is None else self.w[part], self.divisor)
        return dW, db

    def preconditioner(self):
        """P = (D + lambda I)^-1, D the diagonal of the Hessian at a recent point
        (preconditioner.HessianDiagonal, measured by `hessian_diagonal`), since the Gram matrix of
        10^5 columns (d x d) is out of reach."""
        return HessianDiagonal(self.hessian_diagonal, self.objective.weight_decay)

    def hessian_diagonal(self, x: np.ndarray, keep: bool = False) -> np.ndarray:
        """The diagonal of the data term's Hessian at the flat point x, laid out as x (float64):
        sum_i w_i t_i x'_ij^2 p_ic (1 - p_ic) / N for W_jc, sum_i w_i t_i p_ic (1 - p_ic) / N for b_c
        (x' = a x: sparse rows are scaled, never centred). One pass, the squares of the non-zeros
        made once. `keep`: each chunk's P is kept for the Hessian products at x (Newton-CG; n k
        numbers that L-BFGS has no use for)."""
        model = self.objective.model
        set_flat_params(model, x)
        cache = self._probabilities_at(x) if keep else [None] * len(self.starts)
        if self.squares is None:
            X = self.X
            self.squares = type(X)((np.square(X.data, dtype=np.float64), X.indices, X.indptr), shape=X.shape)

        def chunk(c: int) -> tuple:
            part, rows, _ = self._float_rows(c)
            if cache[c] is None:
                cache[c] = self._probabilities(rows)
            p = cache[c]
            q = p * (1 - p)
            factors = row_factors(self.y[part], None if self.w is None else self.w[part])
            if factors is not None:
                q *= factors[:, None]
            return row_block(self.squares, part.start, part.stop).T @ q, q.sum(axis=0)
        D = self._sum_chunks(chunk, self.width)
        a = input_map(model)[0]
        D[:model.W.size] *= np.repeat(a * a, model.num_outputs)
        return D / self.divisor


def labels_chunk(model, x, y: np.ndarray, w: np.ndarray | None, divisor: float):
    """generic.loss_and_grad_sums for class indices y (n,) without smoothing, on NumPy: the same
    numbers, bit for bit, but the (n, k) logits are made once and turned into G = w (P - Y) in
    place, with no one-hot (n, k) targets. Between a sparse chunk's two products these passes over
    the logits are most of its time (TF-IDF, k = 53: 60 ms a chunk generic, 42 ms here, 33 ms the
    products alone)."""
    z = generic.logits(np, model, x)                                   # (n, k), a new array: ours
    rows = np.arange(y.shape[0])
    correct = np.count_nonzero(z.argmax(axis=1) == y)
    z -= z.max(axis=1, keepdims=True)
    losses = -z[rows, y]                                               # - (Z_iy - m_i)
    np.exp(z, out=z)
    sums = z.sum(axis=1)
    losses += np.log(sums)
    z /= sums[:, None]
    z[rows, y] -= 1                                                    # G = P - Y
    if w is not None:
        losses *= w
        z *= w[:, None]
    dW, db = generic._backward(np, model, x, z, divisor)
    return losses.sum(), correct, dW, db
