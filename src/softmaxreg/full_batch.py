"""The full-batch objective: F, its gradient and Hessian-vector products over all rows of a data
set, summed chunk by chunk in a fixed order (objective.py holds the formulas and conventions).

    with full_batch(objective, X, y, w) as fun:     # FullBatch, GenericFullBatch or DaskFullBatch
        f, g, (train_loss, train_acc) = fun(x)      # at the flat float64 point x = (W.ravel(), b)
        Hv = fun.hessian_product(x, v)              # Newton-CG
        P = fun.preconditioner()                    # preconditioner.GramPreconditioner, or None
"""

from __future__ import annotations

import copy
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import generic
from .engines.rows import PageRelease
from .engines import engine_for
from .engines.array_api import device_of
from .engines.gemm import block_rows, pin_block_rows
from .errors import InvalidArgumentError
from .model import StepBuffers
from .objective import SoftmaxCrossEntropy, hessian_value, objective_value, set_flat_params, split_flat
from .options import class_weight_vector
from .preconditioner import gram_preconditioner, input_map, preconditioner_from_gram
from .moments import moments_from_sums

__all__ = ["FULL_BATCH_ROWS", "FullBatch", "GenericFullBatch", "DaskFullBatch", "full_batch", "prepare_dask"]

FULL_BATCH_ROWS = 512
"""Rows per chunk of a full-batch evaluation: 1.6 MB of float32 at d = 784, so a chunk converted
from uint8 is still in cache for its second product X^T G."""


def full_batch(objective: SoftmaxCrossEntropy, X, y, w=None, *, divisor: float | None = None):
    """The full-batch objective over (X, y, w) for X's engine: FullBatch (NumPy), GenericFullBatch
    (other array libraries) or DaskFullBatch (Dask arrays, prepared by `prepare_dask`). The divisor
    N defaults to the sum of the weights (the number of rows unweighted)."""
    kind = {"numpy": FullBatch, "array_api": GenericFullBatch, "dask": DaskFullBatch}[engine_for(X).name]
    return kind(objective, X, y, w, divisor=divisor)


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

    def __init__(self, objective: SoftmaxCrossEntropy, X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
                 *, rows: int = FULL_BATCH_ROWS, threads: int | None = None, divisor: float | None = None):
        self.objective, self.X, self.y, self.w = objective, X, y, w
        model = objective.model
        self.n = X.shape[0]
        if divisor is None:             # a part of a bigger data set (dask_engine) is given the whole's
            divisor = float(w.sum(dtype=np.float64)) if w is not None else float(self.n)
        self.divisor = float(divisor)
        self.starts = range(0, self.n, rows)
        self.rows = min(rows, self.n)
        chunks = len(self.starts)
        self.parts = np.empty((chunks, model.W.size + model.b.size))     # (chunks, d k + k) float64 sums
        self.losses, self.correct = np.empty(chunks), np.empty(chunks, dtype=np.int64)
        self.threads = max(1, min(threads or len(os.sched_getaffinity(0)), chunks))
        self.local = threading.local()
        self.release = PageRelease(X).release
        self.pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> "FullBatch":
        if self.threads > 1:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="softmaxreg-chunks")
        return self

    def __exit__(self, kind, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=kind is not None)      # Ctrl-C: skip the queued chunks
            self.pool = None

    def _each_chunk(self, task) -> None:
        """task(c) for every chunk c, on the pool's threads when there is one (numpy's error state is
        per thread: it is passed on)."""
        if self.pool is None:
            for c in range(len(self.starts)):
                task(c)
            return
        settings = np.geterr()

        def run(c: int) -> None:
            with np.errstate(**settings):
                task(c)
        list(self.pool.map(run, range(len(self.starts))))

    def _float_rows(self, c: int):
        """(rows, x, local): chunk c's rows as a slice, its inputs as floats (uint8 converted, no
        scaling, in this thread's buffer) and this thread's scratch arrays."""
        model, local = self.objective.model, self.local
        if not hasattr(local, "buffers"):                                 # per thread, made once
            local.buffers = StepBuffers(self.rows, model)
            local.x = np.empty((self.rows, model.num_inputs), dtype=model.dtype)
            local.dW, local.db = np.empty_like(model.W), np.empty_like(model.b)
        part = slice(self.starts[c], min(self.starts[c] + self.rows, self.n))
        x = self.X[part]
        if x.dtype != model.dtype:
            np.copyto(local.x[:x.shape[0]], x)
            x = local.x[:x.shape[0]]
        return part, x, local

    def _chunk(self, c: int) -> None:
        part, x, local = self._float_rows(c)
        self.losses[c], self.correct[c] = self.objective.chunk_into(
            x, self.y[part], None if self.w is None else self.w[part], self.divisor, local.dW, local.db, local.buffers)
        self.parts[c, :local.dW.size] = local.dW.ravel()
        self.parts[c, local.dW.size:] = local.db
        self.release(part.start, part.stop)

    def hessian_sums(self, v: np.ndarray) -> np.ndarray:
        """The data term's Hessian at the model's parameters applied to the flat direction v (float64,
        like x): [HW.ravel(), Hb] float64, no penalty, the chunks added in order
        (generic.hessian_product_sums on each chunk)."""
        VW, Vb = split_flat(self.objective.model, v)

        def chunk(c: int) -> None:
            part, x, _ = self._float_rows(c)
            HW, Hb = generic.hessian_product_sums(np, self.objective.model, VW, Vb, x, self.y[part],
                                                  None if self.w is None else self.w[part], self.divisor)
            self.parts[c, :HW.size] = HW.ravel()
            self.parts[c, HW.size:] = Hb
            self.release(part.start, part.stop)
        self._each_chunk(chunk)
        return self.parts.sum(axis=0)

    def hessian_product(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """H v: the Hessian of F at the flat point x applied to the flat direction v (float64)."""
        set_flat_params(self.objective.model, x)
        return hessian_value(self.objective, self.hessian_sums(v), v)

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
        self._each_chunk(self._chunk)
        return np.concatenate([[float(self.losses.sum()), float(self.correct.sum())], self.parts.sum(axis=0)])

    def __call__(self, x: np.ndarray):
        set_flat_params(self.objective.model, x)
        return objective_value(self.objective, self.sums(), self.divisor, self.n)


class GenericFullBatch:
    """FullBatch's contract (fun(x) -> (F, dF, (mean training loss, accuracy)), `preconditioner`,
    a context manager) for arrays of any array API library: x, dF and the sums are float64 arrays
    on the data's device, the chunks run in order in one thread (the device runs them in parallel),
    nothing is updated in place. F is a Python float: one synchronisation per evaluation."""

    def __init__(self, objective: SoftmaxCrossEntropy, X, y, w=None, *, divisor: float | None = None):
        self.objective, self.X, self.y, self.w = objective, X, y, w
        self.xp, self.n = engine_for(X).xp, X.shape[0]
        if divisor is None:
            divisor = float(self.xp.sum(self.xp.astype(w, self.xp.float64))) if w is not None else float(self.n)
        self.divisor = float(divisor)

    def __enter__(self) -> "GenericFullBatch":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def preconditioner(self):
        """FullBatch.preconditioner's P, its Gram matrix summed on the device (None without xp.linalg)."""
        xp, model = self.xp, self.objective.model
        a, shift, r = (xp.asarray(v, device=device_of(self.X)) for v in input_map(model))
        xx, x_sum = 0.0, 0.0
        for start, x in self.objective.model._generic_chunks(self.X):
            xc = x - shift
            wx = xc if self.w is None else xc * self.w[start:start + x.shape[0], None]
            xx = xx + xp.astype(wx.T @ xc, xp.float64)
            x_sum = x_sum + xp.sum(xp.astype(wx, xp.float64), axis=0)
        return gram_preconditioner(xp, xx / self.divisor, x_sum / self.divisor, a, r, model.num_outputs,
                                    self.objective.weight_decay)

    def __call__(self, x):
        xp, objective = self.xp, self.objective
        model = objective.model
        set_flat_params(model, x)
        loss, correct, gW, gb = 0.0, 0, 0.0, 0.0
        for start, xc in self.objective.model._generic_chunks(self.X):
            end = start + xc.shape[0]
            chunk_loss, chunk_correct, dW, db = objective.chunk_grad(
                xc, self.y[start:end, ...], None if self.w is None else self.w[start:end], self.divisor)
            loss, correct = loss + xp.astype(chunk_loss, xp.float64), correct + chunk_correct
            gW, gb = gW + xp.astype(dW, xp.float64), gb + xp.astype(db, xp.float64)
        data_loss = float(loss) / self.divisor
        penalty, gW = objective.penalized(gW)
        g = xp.concat([xp.reshape(gW, (-1,)), gb])
        return data_loss + penalty, g, (data_loss, int(correct) / self.n)

    def hessian_product(self, x, v):
        """FullBatch.hessian_product on the device: H v at the flat point x, one pass over the chunks."""
        xp, objective = self.xp, self.objective
        model = objective.model
        set_flat_params(model, x)
        VW, Vb = split_flat(model, v)
        product = generic.compiled(generic.hessian_product_sums, xp)
        HW, Hb = 0.0, 0.0
        for start, xc in model._generic_chunks(self.X):
            end = start + xc.shape[0]
            dW, db = product(xp, model, VW, Vb, xc, self.y[start:end, ...],
                             None if self.w is None else self.w[start:end], self.divisor)
            HW, Hb = HW + xp.astype(dW, xp.float64), Hb + xp.astype(db, xp.float64)
        return hessian_value(objective, xp.concat([xp.reshape(HW, (-1,)), Hb]), v)


# -- Dask arrays: FullBatch per block where it lives, added in a fixed tree (engines/dask.py) --------

def prepare_dask(model, X, y, sample_weight, cfg):
    """(X, y, w) aligned Dask arrays ready for DaskFullBatch (engines.dask: persisted on a cluster),
    after one pass over the blocks that checks them, counts the classes (class_weight="balanced")
    and, with cfg.standardize, sets the model's standardization from the moments of s X. w (model
    dtype) is the sample weight times the class weight, as options.example_weights."""
    from .engines import dask as engine

    X, y, w = engine.persist(*engine.align(model, X, y, sample_weight))
    k, d = model.num_outputs, model.num_inputs
    moments = cfg.standardize and model.mean is None
    sums = engine.summarize(X, y, w, k, model.input_scale, moments)
    if moments:
        model.set_standardization(*moments_from_sums(sums[k + 1:].reshape(2, d), X.shape[0]))
    if cfg.class_weight is not None:
        if y.ndim != 1:
            raise InvalidArgumentError("class_weight: needs class-index targets, not soft targets")
        w = engine.weights_by_class(y, w, class_weight_vector(cfg.class_weight, k, sums[:k]), model.dtype)
    elif w is not None:
        if not sums[k] > 0:
            raise InvalidArgumentError("sample_weight: every weight is zero, nothing to learn from")
        w = engine.persist(w.astype(model.dtype))[0]
    return X, y, w


def _objective_at(objective: SoftmaxCrossEntropy, x: np.ndarray) -> SoftmaxCrossEntropy:
    """A private copy of `objective` with its model's parameters set to the flat point x (tasks on one
    worker may share their inputs, so they never write into them)."""
    model = copy.copy(objective.model)
    model.W, model.b = np.empty_like(model.W), np.empty_like(model.b)
    set_flat_params(model, x)
    return SoftmaxCrossEntropy(model, weight_decay=objective.weight_decay, label_smoothing=objective.label_smoothing)


def _block_sums(objective, x, divisor, rows, X, y, w) -> np.ndarray:
    """FullBatch.sums of one block at x, with the whole data set's divisor and the driver's product
    row blocking `rows` (engines/gemm.py: it changes the bits)."""
    pin_block_rows(rows)
    return FullBatch(_objective_at(objective, x), X, y, w, threads=1, divisor=divisor).sums()


def _block_hessian(objective, x, v, divisor, rows, X, y, w) -> np.ndarray:
    """FullBatch.hessian_sums of one block at x along v (as `_block_sums`)."""
    pin_block_rows(rows)
    return FullBatch(_objective_at(objective, x), X, y, w, threads=1, divisor=divisor).hessian_sums(v)


def _block_gram(objective, divisor, X, y, w) -> np.ndarray:
    return FullBatch(objective, X, y, w, threads=1, divisor=divisor).gram_sums()


class DaskFullBatch:
    """FullBatch over Dask arrays: fun(x) -> (F, dF, (mean training loss, accuracy)) at the flat
    float64 point x, `hessian_product` and `preconditioner()`, with the same contract. Each call
    computes FullBatch's sums on every block where it lives and adds them in the fixed tree
    (engines.dask.BlockSums); x travels into the graph as one small array. The divisor N is the sum
    of the weights (one pass over w when given). A context manager, like FullBatch (nothing to
    hold: the scheduler is dask's)."""

    def __init__(self, objective: SoftmaxCrossEntropy, X, y, w=None, *, divisor: float | None = None):
        from .engines.dask import BlockSums

        self.objective, self.n = objective, X.shape[0]
        self.blocks = BlockSums(X, y, w)
        self.divisor = float(divisor if divisor is not None else self.blocks.weight_sum() if w is not None else self.n)
        if not self.divisor > 0:
            raise InvalidArgumentError("sample_weight: every weight is zero, nothing to learn from")

    def __enter__(self) -> "DaskFullBatch":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def preconditioner(self):
        """FullBatch.preconditioner's P from the Gram sums of every block, added in the fixed tree."""
        gram = self.blocks.map_sum(_block_gram, self.objective, self.divisor)
        return preconditioner_from_gram(self.objective, gram, self.divisor)

    def __call__(self, x: np.ndarray):
        set_flat_params(self.objective.model, x)
        sums = self.blocks.map_sum(_block_sums, self.objective, np.array(x, dtype=np.float64), self.divisor,
                                   block_rows())
        return objective_value(self.objective, sums, self.divisor, self.n)

    def hessian_product(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """FullBatch.hessian_product over the blocks, added in the fixed tree, plus lambda VW."""
        sums = self.blocks.map_sum(_block_hessian, self.objective, np.array(x, dtype=np.float64),
                                   np.array(v, dtype=np.float64), self.divisor, block_rows())
        return hessian_value(self.objective, sums, v)
