"""F over all rows of NumPy arrays in this process (in memory or memory-mapped), chunk by chunk on
all cores, added in chunk order."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import generic
from ..engines.gemm import matmul_rows, matmul_t_rows, one_blas_thread
from ..engines.rows import PageRelease
from ..model import StepBuffers
from ..objective import SoftmaxCrossEntropy, hessian_value, objective_value, set_flat_params, split_flat
from ..preconditioner import input_map, preconditioner_from_gram

__all__ = ["FULL_BATCH_ROWS", "FullBatch"]

FULL_BATCH_ROWS = 512
"""Rows per chunk of a full-batch evaluation: 1.6 MB of float32 at d = 784, so a chunk converted
from uint8 is still in cache for its second product X^T G."""


class FullBatch:
    """fun(x) -> (F, dF, (mean training loss, accuracy)) over all rows of (X, y, w) at the flat
    float64 point x = (W, b), with the divisor N = sum of the weights (the number of rows unweighted).

    The rows are cut into chunks of `rows`; the chunks run on `threads` threads (the GIL is released
    in the products and casts), each chunk into its own float64 row of partial sums, and the rows
    are added in chunk order. So the same x gives the same bits whichever thread ran which chunk,
    and whatever the number of threads. Over a read-only memory map each chunk hands its pages back
    once done (datasets.blocks.PageRelease), so a pass holds a few chunks, not the file, resident.
    Used as a context manager, which holds the thread pool
    (without one, the chunks run in the calling thread).
    """

    fused = True
    """Chunks run the objective's fused NumPy kernel (objective.chunk with scratch buffers)."""
    in_waves = False
    """Chunks run in waves of `threads`, each wave's sums added in chunk order before the next starts:
    memory for `threads` partial sums instead of one per chunk (wide W: on_sparse.py)."""

    def __init__(self, objective: SoftmaxCrossEntropy, X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
                 *, rows: int = FULL_BATCH_ROWS, threads: int | None = None, divisor: float | None = None):
        self.objective, self.X, self.y, self.w = objective, X, y, w
        model = objective.model
        self.n = X.shape[0]
        if divisor is None:             # a part of a bigger data set (full_batch.on_dask) is given the whole's
            divisor = float(w.sum(dtype=np.float64)) if w is not None else float(self.n)
        self.divisor = float(divisor)
        self.starts = range(0, self.n, rows)
        self.rows = min(rows, self.n)
        chunks = len(self.starts)
        self.losses, self.correct = np.empty(chunks), np.empty(chunks, dtype=np.int64)
        self.threads = max(1, min(threads or len(os.sched_getaffinity(0)), chunks))
        self.width = model.W.size + model.b.size
        self.parts = None if self.in_waves else np.empty((chunks, self.width))   # (chunks, d k + k) float64 sums
        self.local = threading.local()
        self.release = PageRelease(X).release
        self.pool: ThreadPoolExecutor | None = None
        self.probabilities_at = self.probabilities = None      # hessian_product's P per chunk, and where

    def __enter__(self) -> "FullBatch":
        if self.threads > 1:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="softmaxreg-chunks")
        return self

    def __exit__(self, kind, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=kind is not None)      # Ctrl-C: skip the queued chunks
            self.pool = None

    def solving(self):
        """The context of the solver's start and steps (not of validation or callbacks): BLAS on one
        thread for its own arithmetic on the flat vectors between passes (dot products over d k
        numbers: the passes set their own limit).
        That arithmetic is memory-bound, so a second thread adds little on a quiet machine and stalls
        when the cores are shared (text, 2.4 M parameters, with other work on both cores: an L-BFGS
        direction took 143 ms); and OpenBLAS splits a long dot product by threads, so with one its
        bits no longer depend on the machine's core count."""
        return one_blas_thread()

    def _each_chunk(self, task, chunks=None) -> None:
        """task(c) for every chunk c (of `chunks`, default all), on the pool's threads when there is one
        (numpy's error state is per thread: it is passed on), BLAS on one thread (gemm.one_blas_thread:
        the chunks are the parallelism, and a chunk's bits do not depend on BLAS's thread count)."""
        chunks = range(len(self.starts)) if chunks is None else chunks
        with one_blas_thread():
            if self.pool is None:
                for c in chunks:
                    task(c)
                return
            settings = np.geterr()

            def run(c: int) -> None:
                with np.errstate(**settings):
                    task(c)
            list(self.pool.map(run, chunks))

    def _sum_chunks(self, task, width: int) -> np.ndarray:
        """The sum over the chunks c, in chunk order, of the float64 arrays task(c) returns, raveled
        and joined (`width` numbers): the same bits whichever thread ran which chunk. All chunks at
        once, each into its row of `parts`, the rows added at the end; or, `in_waves`, `threads`
        chunks at a time, each wave's results added on in chunk order as they are (no copy, no rows)."""
        if not self.in_waves:
            self._each_chunk(lambda c: _add_into(self.parts[c, :width], task(c), first=True))
            return self.parts[:, :width].sum(axis=0)
        total, results = np.empty(width), {}
        for first in range(0, len(self.starts), self.threads):
            wave = range(first, min(first + self.threads, len(self.starts)))
            self._each_chunk(lambda c: results.__setitem__(c, task(c)), wave)
            for c in wave:
                _add_into(total, results.pop(c), first=c == 0)
        return total

    def _float_rows(self, c: int):
        """(rows, x, local): chunk c's rows as a slice, its inputs as floats (uint8 converted, no
        scaling, in this thread's buffer) and this thread's scratch arrays."""
        model, local = self.objective.model, self.local
        if not hasattr(local, "buffers"):                                 # per thread, made once
            local.buffers = StepBuffers(self.rows, model) if self.fused else None
            local.x = np.empty((self.rows, model.num_inputs), dtype=model.dtype) if self.fused else None
        part = slice(self.starts[c], min(self.starts[c] + self.rows, self.n))
        x = self._rows(part)
        if x.dtype != model.dtype:
            np.copyto(local.x[:x.shape[0]], x)
            x = local.x[:x.shape[0]]
        return part, x, local

    def _rows(self, part: slice):
        """The rows of X in `part`, as stored."""
        return self.X[part]

    def _chunk(self, c: int) -> tuple:
        part, x, local = self._float_rows(c)
        self.losses[c], self.correct[c], dW, db = self.objective.chunk(
            x, self.y[part], None if self.w is None else self.w[part], self.divisor, local.buffers)
        self.release(part.start, part.stop)
        return dW, db

    def hessian_sums(self, v: np.ndarray, probabilities: list | None = None) -> np.ndarray:
        """The data term's Hessian at the model's parameters applied to the flat direction v (float64,
        like x): [HW.ravel(), Hb] float64, no penalty, the chunks added in order
        (generic.hessian_product_sums on each chunk; `_fused_hessian` on NumPy rows). `probabilities`,
        one entry per chunk, keeps each chunk's P = softmax(Z) for the next product at the same
        parameters (None: computed)."""
        model = self.objective.model
        VW, Vb = split_flat(model, v)
        direction = _direction_map(model, VW, Vb) if self.fused else None

        def chunk(c: int) -> tuple:
            part, x, local = self._float_rows(c)
            p = None if probabilities is None else probabilities[c]
            if p is None:
                p = self._probabilities(x)
                if probabilities is not None:
                    probabilities[c] = p
            y, w = self.y[part], None if self.w is None else self.w[part]
            if direction is not None:
                HW_Hb = _fused_hessian(model, x, direction, p, row_factors(y, w), self.divisor, local.buffers)
            else:
                HW_Hb = generic.hessian_product_sums(np, model, VW, Vb, x, y, w, self.divisor, p)
            self.release(part.start, part.stop)
            return HW_Hb
        return self._sum_chunks(chunk, self.width)

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        """P = softmax(Z) (n, k) of a chunk's float rows x: generic.probabilities, by the blocked
        product (gemm.py) and in place on NumPy rows."""
        if not self.fused:
            return generic.probabilities(np, self.objective.model, x)
        model = self.objective.model
        p = model._logits_into(x, np.empty((x.shape[0], model.num_outputs), dtype=model.dtype))
        p -= p.max(axis=1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)
        return p

    def _probabilities_at(self, x: np.ndarray) -> list:
        """The per-chunk cache of P = softmax(Z) at the flat point x (emptied when x changes)."""
        if self.probabilities_at is None or not np.array_equal(self.probabilities_at, x):
            self.probabilities_at, self.probabilities = np.array(x), [None] * len(self.starts)
        return self.probabilities

    def class_curvature(self, x: np.ndarray) -> np.ndarray:
        """A = sum_i w_i t_i (diag(p_i) - p_i p_i^T) / N (k, k) float64 at the flat point x
        (generic.class_curvature_sums per chunk, added in order; P kept for `hessian_product`)."""
        model = self.objective.model
        set_flat_params(model, x)
        cache, k = self._probabilities_at(x), model.num_outputs

        def chunk(c: int) -> tuple:
            part, rows, _ = self._float_rows(c)
            if cache[c] is None:
                cache[c] = self._probabilities(rows)
            A = generic.class_curvature_sums(np, model, rows, self.y[part],
                                             None if self.w is None else self.w[part], cache[c])
            self.release(part.start, part.stop)
            return (A,)
        return self._sum_chunks(chunk, k * k).reshape(k, k) / self.divisor

    def hessian_product(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """H v: the Hessian of F at the flat point x applied to the flat direction v (float64). The
        chunks' probabilities at x are kept (n k numbers) while x stays the same: Newton-CG's CG
        steps at one point then cost two products a chunk instead of three."""
        cache = self._probabilities_at(x)
        set_flat_params(self.objective.model, x)
        return hessian_value(self.objective, self.hessian_sums(v, cache), v)

    def preconditioner(self):
        """P(q, s, y) -> P q for L-BFGS (`gram_preconditioner`), from one pass over the rows."""
        return preconditioner_from_gram(self.objective, self.gram_sums(), self.divisor)

    def gram_sums(self) -> np.ndarray:
        """[sum_i w_i xc_i xc_i^T (d, d) raveled, sum_i w_i xc_i (d,)] float64, the rows added in chunk
        order, with xc = x - shift the rows centred on `input_map`'s shift (sums of the centred rows do not
        cancel in float32). Unnormalised, so parts of a data set add up."""
        model = self.objective.model
        d = model.num_inputs
        shift = input_map(model)[1]
        xx, x_sum = np.zeros((d, d)), np.zeros(d)              # sums of w xc xc^T, w xc
        buffer = np.empty((self.rows, d), dtype=model.dtype)
        for start in self.starts:
            x = self.X[start:start + self.rows]
            xc = np.subtract(x, shift, out=buffer[:x.shape[0]])
            wx = xc if self.w is None else xc * self.w[start:start + x.shape[0], None]
            xx += wx.T @ xc
            x_sum += wx.sum(axis=0, dtype=np.float64)
            self.release(start, start + x.shape[0])
        return np.concatenate([xx.ravel(), x_sum])

    def sums(self) -> np.ndarray:
        """[sum_i w_i l_i, correct rows, dW.ravel(), db] float64 at the model's parameters: the data
        term's sums (gradient divided by the divisor, no penalty), the chunks added in order."""
        gradient = self._sum_chunks(self._chunk, self.width)
        return np.concatenate([[float(self.losses.sum()), float(self.correct.sum())], gradient])

    def __call__(self, x: np.ndarray):
        set_flat_params(self.objective.model, x)
        return objective_value(self.objective, self.sums(), self.divisor, self.n)


def _add_into(out: np.ndarray, arrays, *, first: bool) -> None:
    """out (float64, flat) <- the arrays raveled and joined (`first`), else out += them: piece by piece
    into views of out, with no joined copy."""
    at = 0
    for a in arrays:
        view = out[at:at + a.size].reshape(a.shape)
        if first:
            np.copyto(view, a)
        else:
            view += a
        at += a.size


def _direction_map(model, VW: np.ndarray, Vb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, c) in the model's dtype with which the direction (VW, Vb) moves the logits of rows x by
    dZ = x A + c: A = s VW, c = Vb, or standardized A = VW s / sigma, c = Vb - (mu / sigma) VW."""
    dtype = model.dtype
    if model.mean is None:
        return (VW * model.input_scale).astype(dtype), Vb.astype(dtype)
    return ((VW * (model.input_scale / model.std)[:, None]).astype(dtype),
            (Vb - (model.mean / model.std) @ VW).astype(dtype))


def row_factors(y: np.ndarray, w: np.ndarray | None) -> np.ndarray | None:
    """w_i t_i (n,), the rows' factors of their Hessian (t_i the soft targets' row sum, 1 for class
    indices); None when all are 1."""
    t = y.sum(axis=1) if y.ndim == 2 else None
    if w is None:
        return t
    return w if t is None else w * t


def _fused_hessian(model, x: np.ndarray, direction, p: np.ndarray, factors, divisor: float, scratch):
    """generic.hessian_product_sums on NumPy rows in the model's dtype, with gemm.py's blocked products
    and in place: R = f (P * dZ - P rowsum(P * dZ)) in scratch's logits, HW = X'^T R / N in its
    gradient (valid until its next use), Hb = sum_i R_i / N."""
    A, c = direction
    R = matmul_rows(x, A, scratch.z[:x.shape[0]])
    R += c                                                            # dZ
    R *= p
    R -= p * R.sum(axis=1, keepdims=True)
    if factors is not None:
        R *= factors[:, None]
    Hb = R.sum(axis=0) / model.dtype.type(divisor)
    HW = matmul_t_rows(x, R, scratch.grad_W, scratch.dW)
    if model.mean is None:
        HW *= model.dtype.type(model.input_scale / divisor)
    else:
        HW *= (model.dtype.type(model.input_scale) / (model.dtype.type(divisor) * model.std))[:, None]
        HW -= (model.mean / model.std)[:, None] * Hb
    return HW, Hb
