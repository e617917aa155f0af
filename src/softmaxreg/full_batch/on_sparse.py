"""F over the rows of a sparse matrix (engines/sparse.py) in this process: FullBatch's chunks on
all cores, each chunk a CSR view read through its products (generic.py's formulas), and a
diagonal preconditioner, since the Gram matrix of 10^5 columns (d x d) is out of reach."""

from __future__ import annotations

import math

import numpy as np

from .. import generic
from ..engines.sparse import row_block
from ..model import LOGITS_PER_CHUNK
from ..objective import SoftmaxCrossEntropy
from ..preconditioner import diagonal_preconditioner
from .in_process import FullBatch

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
        """P = (c D + lambda I)^-1, D the diagonal of the inputs' Gram matrix as the model sees them
        (preconditioner.diagonal_preconditioner), from the weighted column second moments."""
        return diagonal_preconditioner(self.objective, self.column_squares() / self.divisor)

    def column_squares(self) -> np.ndarray:
        """sum_i w_i x_ij^2 (d,) float64 (unnormalised, so parts of a data set add up)."""
        X = self.X
        values = np.square(X.data.astype(np.float64))
        if self.w is not None:                                   # each non-zero weighted by its row's weight
            values *= np.repeat(np.asarray(self.w, dtype=np.float64), np.diff(X.indptr))
        return np.bincount(X.indices, weights=values, minlength=X.shape[1])


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
