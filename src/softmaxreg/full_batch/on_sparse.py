"""F over the rows of a sparse matrix (engines/sparse.py) in this process: FullBatch's chunks on
all cores, each chunk a CSR view read through its products (generic.py's formulas), and a
diagonal preconditioner, since the Gram matrix of 10^5 columns (d x d) is out of reach."""

from __future__ import annotations

import math

import numpy as np

from ..engines.sparse import row_block
from ..model import LOGITS_PER_CHUNK
from ..objective import SoftmaxCrossEntropy
from ..preconditioner import diagonal_preconditioner
from .in_process import FullBatch

__all__ = ["SPARSE_CHUNKS", "SparseFullBatch"]

SPARSE_CHUNKS = 8
"""The chunks of a pass are a multiple of this many, whatever the number of threads: so the bits
do not depend on it, and 1, 2, 4 or 8 threads share the chunks evenly."""


class SparseFullBatch(FullBatch):
    """FullBatch over X a CSR array (checked_csr: already in the model's dtype). A chunk's logits are
    at most LOGITS_PER_CHUNK numbers; the chunks run in waves of `threads` (`in_waves`), so a pass
    holds `threads` partial gradients (d k each), not one per chunk."""

    fused, in_waves = False, True

    def __init__(self, objective: SoftmaxCrossEntropy, X, y, w=None, *, threads: int | None = None,
                 divisor: float | None = None):
        n, k = X.shape[0], objective.model.num_outputs
        chunks = SPARSE_CHUNKS * math.ceil(n * k / LOGITS_PER_CHUNK / SPARSE_CHUNKS)
        super().__init__(objective, X, y, w, rows=max(1, math.ceil(n / chunks)), threads=threads, divisor=divisor)

    def _rows(self, part: slice):
        return row_block(self.X, part.start, part.stop)

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
