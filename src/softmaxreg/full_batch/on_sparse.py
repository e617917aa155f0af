"""F over the rows of a sparse matrix (engines/sparse.py) in this process: FullBatch's chunks on
all cores, each chunk a CSR view read through its products (generic.py's formulas), and a
diagonal preconditioner, since the Gram matrix of 10^5 columns (d x d) is out of reach."""

from __future__ import annotations

import math

import numpy as np

from .. import generic
from ..engines.sparse import row_block
from ..model import LOGITS_PER_CHUNK
from ..objective import SoftmaxCrossEntropy, set_flat_params, split_flat
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
    one wave and their running sum, not one per chunk.

    With no more rows than twice the columns (`by_columns`), a pass takes two phases instead
    (`_by_columns`): the chunks of rows write their rows of G (n, k) (the gradient's w (P - Y), for
    class indices without label smoothing; a Hessian product's R) into one array, then blocks of
    columns of X (rows of X^T, a CSR copy made once: nnz values and indices more) compute their rows
    of X^T G. No partial gradient is written, added or held (G is no larger than the two partials
    the waves hold), and each row of X^T G is one sum in the order of X^T's non-zeros, whatever the
    blocks or threads. TF-IDF of benchmarks/text.py's training part (50,862 x 45,804, k = 53, 2
    cores): a pass 138-154 ms in waves, 66-80 ms in two phases (medians of 8, three rounds)."""

    fused, in_waves = False, True

    def __init__(self, objective: SoftmaxCrossEntropy, X, y, w=None, *, threads: int | None = None,
                 divisor: float | None = None):
        n, d = X.shape
        chunks = sparse_chunks(n, d, X.nnz, objective.model.num_outputs)
        super().__init__(objective, X, y, w, rows=max(1, math.ceil(n / chunks)), threads=threads, divisor=divisor)
        self.squares = None                   # X's non-zeros squared (float64), for hessian_diagonal
        self.by_columns = n <= 2 * d
        self.transposed = self.column_blocks = None        # X^T as CSR and its blocks of rows, made at the first pass

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

    def sums(self) -> np.ndarray:
        """FullBatch.sums; in two phases (`by_columns`) for class indices without label smoothing."""
        if not self.by_columns or self.y.ndim == 2 or self.objective.label_smoothing:
            return super().sums()
        model = self.objective.model

        def gradient_rows(c: int, part: slice, x):
            self.losses[c], self.correct[c], G = labels_gradient(
                model, x, self.y[part], None if self.w is None else self.w[part])
            return G
        out = np.empty(2 + self.width)                                 # [loss, correct, dW.ravel(), db]
        self._by_columns(gradient_rows, out[2:])
        out[0], out[1] = float(self.losses.sum()), float(self.correct.sum())
        return out

    def hessian_sums(self, v: np.ndarray, probabilities: list | None = None) -> np.ndarray:
        """FullBatch.hessian_sums; in two phases (`by_columns`) when the data allow."""
        if not self.by_columns:
            return super().hessian_sums(v, probabilities)
        model = self.objective.model
        VW, Vb = split_flat(model, v)

        def product_rows(c: int, part: slice, x):
            p = None if probabilities is None else probabilities[c]
            if p is None:
                p = self._probabilities(x)
                if probabilities is not None:
                    probabilities[c] = p
            return generic.hessian_rows(np, model, VW, Vb, x, self.y[part], None if self.w is None else self.w[part], p)
        out = np.empty(self.width)
        self._by_columns(product_rows, out)
        return out

    def _by_columns(self, rows_of, out: np.ndarray) -> None:
        """out (d k + k float64) <- [X'^T G / N raveled, sum_i G_i / N] (generic._backward) in two
        phases: rows_of(c, part, x) gives G's rows of chunk c (its float rows x), then blocks of
        columns of X their rows of X^T G."""
        model, k = self.objective.model, self.objective.model.num_outputs
        if self.transposed is None:
            self.transposed = self.X.T.tocsr()
            self.column_blocks = _blocks_by_nonzeros(self.transposed.indptr, len(self.starts))
        G = np.empty((self.n, k), dtype=model.dtype)
        column_sums = np.empty((len(self.starts), k))

        def rows(c: int) -> None:
            part, x, _ = self._float_rows(c)
            G[part] = rows_of(c, part, x)
            column_sums[c] = G[part].sum(axis=0)
        self._each_chunk(rows)
        dW, db = out[:model.W.size].reshape(model.W.shape), out[model.W.size:]

        def columns(c: int) -> None:
            start, stop = self.column_blocks[c]
            dW[start:stop] = row_block(self.transposed, start, stop) @ G
        self._each_chunk(columns, range(len(self.column_blocks)))
        np.divide(column_sums.sum(axis=0), self.divisor, out=db)
        if model.mean is None:
            dW *= model.input_scale / self.divisor
        else:
            dW *= (model.input_scale / (self.divisor * model.std))[:, None]
            dW -= (model.mean / model.std)[:, None] * db

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
    place (`labels_gradient`), with no one-hot (n, k) targets. Between a sparse chunk's two products
    these passes over the logits are most of its time (TF-IDF, k = 53: 60 ms a chunk generic, 42 ms
    here, 33 ms the products alone)."""
    loss, correct, G = labels_gradient(model, x, y, w)
    dW, db = generic._backward(np, model, x, G, divisor)
    return loss, correct, dW, db


def labels_gradient(model, x, y: np.ndarray, w: np.ndarray | None):
    """(sum_i w_i l_i, correct rows, G = w (P - Y) (n, k)) of float rows x and class indices y (n,)."""
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
    return losses.sum(), correct, z


def _blocks_by_nonzeros(indptr: np.ndarray, blocks: int) -> list[tuple[int, int]]:
    """[(start, stop)] cutting the rows of a CSR matrix (its row pointer `indptr`) into at most
    `blocks` runs of about equal non-zeros (none empty)."""
    cuts = np.searchsorted(indptr, np.linspace(0, indptr[-1], blocks + 1)[1:-1], side="left")
    edges = np.unique(np.concatenate([[0], cuts, [len(indptr) - 1]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
