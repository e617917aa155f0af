"""The training objective: softmax cross-entropy summed over a chunk of rows, and the L2 penalty.

Conventions
-----------
x : (n, d) float rows of one chunk, raw (the model folds its input scale s and standardization in)
y : (n,) integer class indices, or (n, k) soft targets T (non-negative; one-hot rows are class indices)
w : (n,) per-example weights (sample weight times class weight), or None for all 1
W : (d, k), b : (k,) the model's parameters;  Z = s X W + b : (n, k) logits

Every solver minimises the same function of (W, b) over a data set split into chunks c:

    F(W, b) = (1 / N) sum_c sum_{i in c} w_i l_i  +  (lambda / 2) |W|^2        (the bias is not penalised)
    l_i     = -sum_j T'_ij log softmax(Z_i)_j,     T'_i = (1 - eps) T_i + eps sum_j T_ij / k  (label smoothing eps)

`chunk_into` returns the chunk's sums and writes its share of the gradient; callers add chunks in a
fixed order and choose the divisor N: the minibatch size B for SGD (the lesson's mean), the sum of
the weights for the full batch (so a weight of 2 equals a repeated row, and with lambda = 1 / (C N)
F is scikit-learn's `LogisticRegression` objective divided by C N). The divisor is folded into the
small (k, n) gradient block before the big product, never applied to the (n, d) data.

Backward (the lesson's derivation, by the chain rule through Z):

    G = dF/dZ = w_i (sum_j T'_ij softmax(Z_i) - T'_i) / N          (n, k)   (softmax(Z) - Y) / N for labels
    dF/dW = s X^T G + lambda W,       dF/db = sum_i G_i
    standardized (X' = (s X - mu) / sigma):   dF/dW = (s X^T G - mu sum_i G_i) / sigma + lambda W  (row-wise)
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .datasets.blocks import PageRelease, is_dask
from . import generic
from .backends import device_of, is_numpy, namespace, to_device, to_numpy
from .errors import InvalidArgumentError
from .functional import smoothed_targets, soft_cross_entropy_rows, softmax_cross_entropy_
from .gemm import matmul_t_rows
from .model import SoftmaxRegression, StepBuffers

__all__ = ["SoftmaxCrossEntropy", "FullBatch", "GenericFullBatch", "full_batch", "flat_params", "set_flat_params"]

FULL_BATCH_ROWS = 512
"""Rows per chunk of a full-batch evaluation: 1.6 MB of float32 at d = 784, so a chunk converted
from uint8 is still in cache for its second product X^T G."""


class SoftmaxCrossEntropy:
    """The softmax cross-entropy objective of `model`, with an L2 penalty and label smoothing.

    >>> objective = SoftmaxCrossEntropy(model, weight_decay=1e-3)
    >>> loss, dW, db = objective.loss_and_grad(X, y)          # F and its gradient on (X, y)
    """

    def __init__(self, model: SoftmaxRegression, *, weight_decay: float = 0.0, label_smoothing: float = 0.0):
        weight_decay, label_smoothing = float(weight_decay), float(label_smoothing)
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise InvalidArgumentError(f"weight_decay: expected a finite value >= 0, got {weight_decay}")
        if not 0.0 <= label_smoothing < 1.0:
            raise InvalidArgumentError(f"label_smoothing: expected a value in [0, 1), got {label_smoothing}")
        self.model = model
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing

    def chunk_into(self, x: np.ndarray, y: np.ndarray, w: np.ndarray | None, divisor: float,
                   dW: np.ndarray, db: np.ndarray, buffers: StepBuffers) -> tuple[float, int]:
        """One chunk's forward and backward: returns (sum_i w_i l_i, number of rows whose argmax is
        the target's), and writes dW (d, k), db (k,) <- the gradient of sum_i w_i l_i / divisor.
        No penalty here (see `add_penalty`); no validation (callers check inputs once)."""
        model, n = self.model, x.shape[0]
        dtype = model.dtype.type
        zt = buffers.zt[:, :n]
        if y.ndim == 1 and w is None and not self.label_smoothing:
            # fast path: class-major fused kernel, zt <- (P - Y)^T in place
            np.copyto(zt, model._logits_into(x, buffers.z[:n]).T)                 # Z^T (k, n)
            loss_sum, correct = softmax_cross_entropy_(zt, y, buffers.cols[:n])
        else:
            z = model._logits_into(x, buffers.z[:n])                               # (n, k)
            losses, g = soft_cross_entropy_rows(z, smoothed_targets(y, model.num_outputs, model.dtype,
                                                                    self.label_smoothing))
            correct = int(np.count_nonzero(z.argmax(axis=1) == (y if y.ndim == 1 else y.argmax(axis=1))))
            if w is not None:
                losses, g = losses * w, g * w[:, None]
            loss_sum = float(losses.sum())
            np.copyto(zt, g.T)
        np.sum(zt, axis=1, out=db)
        db *= dtype(1.0 / divisor)                                 # sum_i G_i
        if model.mean is None:
            zt *= dtype(model.input_scale / divisor)               # zt <- s G^T
            matmul_t_rows(x, zt.T, dW, buffers.dW)                # (d, k)  s X^T G
        else:
            zt *= dtype(1.0 / divisor)                             # zt <- G^T
            matmul_t_rows(x, zt.T, dW, buffers.dW)                # X^T G
            dW *= (dtype(model.input_scale) / model.std)[:, None]
            dW -= (model.mean / model.std)[:, None] * db
        return loss_sum, correct

    def chunk_grad(self, x, y, w, divisor: float):
        """The generic path's `chunk_into` (model and arrays of any array API library, see generic.py):
        returns (sum_i w_i l_i, correct count) as 0-D arrays and new arrays dW (d, k), db (k,)."""
        xp = namespace(x)
        return generic.compiled(generic.loss_and_grad_sums, xp)(xp, self.model, x, y, w, float(divisor),
                                                                 self.label_smoothing)

    def penalized(self, dW) -> tuple[float, object]:
        """((lambda / 2) |W|^2, dW + lambda W) for either path: in place for NumPy (`add_penalty`),
        a new array for the generic path."""
        if is_numpy(dW):
            return self.add_penalty(dW), dW
        return generic.penalty(namespace(dW), self.model.W, self.weight_decay, dW)

    def add_penalty(self, dW: np.ndarray | None = None) -> float:
        """(lambda / 2) |W|^2; with dW, also adds its gradient lambda W to dW in place."""
        if not self.weight_decay:
            return 0.0
        W = self.model.W
        if dW is not None:
            dW += W.dtype.type(self.weight_decay) * W
        return 0.5 * self.weight_decay * float(np.vdot(W, W))

    def loss_and_grad(self, X, y, *, sample_weight=None) -> tuple[float, np.ndarray, np.ndarray]:
        """F on (X, y), divided by the number of rows, and its gradient (dW (d, k), db (k,)).

        X (n, d) or (n, *input_shape); y class indices (n,) or soft targets (n, k);
        sample_weight (n,) weights each example's loss: F = (1/n) sum_i w_i l_i + (lambda/2) |W|^2.
        """
        model = self.model
        X = model._flatten(X)
        y = model._check_targets(y, X.shape[0], like=X)
        if X.shape[0] == 0:
            raise InvalidArgumentError("X: cannot compute a loss on 0 examples")
        if not is_numpy(X, model.W):                      # the generic path, in X's library
            xp, like = namespace(X), model._like(X)
            w = None if sample_weight is None else xp.asarray(sample_weight, dtype=like.W.dtype, device=device_of(X))
            objective = SoftmaxCrossEntropy(like, weight_decay=self.weight_decay, label_smoothing=self.label_smoothing)
            loss_sum, _, dW, db = objective.chunk_grad(xp.astype(X, like.W.dtype), y, w, X.shape[0])
            penalty, dW = objective.penalized(dW)
            return float(loss_sum) / X.shape[0] + penalty, dW, db
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=model.dtype)
        dW, db = np.empty_like(model.W), np.empty_like(model.b)
        loss_sum, _ = self.chunk_into(X.astype(model.dtype), y, w, X.shape[0], dW, db,
                                      StepBuffers(X.shape[0], model))
        return loss_sum / X.shape[0] + self.add_penalty(dW), dW, db


    def hessian_product(self, X, y, VW, Vb, *, sample_weight=None):
        """(HW (d, k), Hb (k,)): the Hessian of `loss_and_grad`'s F at the model's parameters applied
        to the direction (VW, Vb), in X's library (NumPy for Dask arrays). Never forms the
        (d k + k)^2 matrix: one pass over the rows (generic.hessian_product_sums)."""
        model = self.model
        if is_dask(X):
            from .dask_engine import align
            X, y, w = align(model, X, y, sample_weight)
            like, n = model, X.shape[0]
        else:
            X = model._flatten(X)
            y = model._check_targets(y, X.shape[0], like=X)
            like, n = model._like(X), X.shape[0]
            w = None if sample_weight is None else np.asarray(to_numpy(sample_weight), dtype=model.dtype)
            if not is_numpy(X):
                w = None if w is None else to_device(w, namespace(X), device_of(X))
                X = namespace(X).astype(X, like.W.dtype)
        if n == 0:
            raise InvalidArgumentError("X: cannot compute a Hessian on 0 examples")
        objective = SoftmaxCrossEntropy(like, weight_decay=self.weight_decay, label_smoothing=self.label_smoothing)
        x = flat_params(like)
        xp = namespace(x)
        v = xp.concat([xp.reshape(xp.asarray(VW), (-1,)), xp.reshape(xp.asarray(Vb), (-1,))])
        v = xp.astype(v, xp.float64) if not is_numpy(v) else v.astype(np.float64)
        with full_batch(objective, X, y, w, divisor=float(n)) as fun:
            hv = fun.hessian_product(x, v)
        size = model.num_inputs * model.num_outputs
        return xp.reshape(hv[:size], tuple(model.W.shape)), hv[size:]


def flat_params(model: SoftmaxRegression):
    """The parameters as one float64 vector x = (W.ravel(), b), as full-batch solvers see them
    (in the parameters' library and on their device)."""
    if not is_numpy(model.W):
        xp = namespace(model.W)
        return xp.astype(xp.concat([xp.reshape(model.W, (-1,)), model.b]), xp.float64)
    return np.concatenate([model.W.ravel(), model.b]).astype(np.float64)


def set_flat_params(model: SoftmaxRegression, x) -> None:
    """Write a flat vector from `flat_params` back into W and b (in the model's dtype); the generic
    path binds new arrays (immutable libraries)."""
    if not is_numpy(model.W):
        xp, size = namespace(model.W), model.num_inputs * model.num_outputs
        model.W = xp.reshape(xp.astype(x[:size], model.W.dtype), tuple(model.W.shape))
        model.b = xp.astype(x[size:], model.b.dtype)
        return
    model.W[...] = x[:model.W.size].reshape(model.W.shape)
    model.b[...] = x[model.W.size:]


def split_flat(model: SoftmaxRegression, v):
    """(VW (d, k), Vb (k,)) of a flat vector laid out as `flat_params`, in the model's dtype."""
    size = model.num_inputs * model.num_outputs
    if is_numpy(v):
        return v[:size].reshape(model.W.shape).astype(model.dtype), v[size:].astype(model.dtype)
    xp = namespace(v)
    return xp.reshape(xp.astype(v[:size], model.W.dtype), tuple(model.W.shape)), xp.astype(v[size:], model.W.dtype)


def full_batch(objective: SoftmaxCrossEntropy, X, y, w=None, *, divisor: float | None = None):
    """The full-batch objective over (X, y, w): FullBatch for NumPy arrays, dask_engine.DaskFullBatch
    for Dask arrays (prepared by dask_engine.prepare), GenericFullBatch for other libraries. The
    divisor N defaults to the sum of the weights (the number of rows unweighted)."""
    if is_dask(X):
        from .dask_engine import DaskFullBatch
        return DaskFullBatch(objective, X, y, w, divisor=divisor)
    kind = FullBatch if is_numpy(X) else GenericFullBatch
    return kind(objective, X, y, w, divisor=divisor)


def _input_map(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, shift, r) (d,) with which the model sees x' = a x - m = a (x - shift) + r:
    a = s / sigma, m = mu / sigma standardized (a = s, m = 0 else), shift = m / a (the raw mean) in
    the model's dtype (a, r float64), r = a shift - m its rounding. Sums of the centred x - shift do not cancel in float32."""
    d = model.num_inputs
    std = None if model.mean is None else to_numpy(model.std).astype(np.float64)
    a = np.full(d, model.input_scale) if model.mean is None else model.input_scale / std
    m = np.zeros(d) if model.mean is None else to_numpy(model.mean).astype(np.float64) / std
    shift = (m / a).astype(model.dtype)
    return a, shift, a * shift - m


def _gram_preconditioner(xp, xx, x_sum, a, r, k: int, weight_decay: float):
    """GramPreconditioner P = (c G + lambda I)^-1 acting on (W; b) stacked as (d + 1, k),
    from the moments xx = sum w xc xc^T / N (d, d), x_sum = sum w xc / N (d,) of the centred inputs
    and the input map (a, r) (`_input_map`), in namespace xp. None when xp has no linalg extension
    (then L-BFGS runs unpreconditioned).

    G = sum_i w_i a_i a_i^T / N is the Gram matrix of the inputs as the model sees them with a
    constant 1 appended (a_i = (x'_i, 1)). The softmax loss's Hessian for class j is
    sum_i w_i p_ij (1 - p_ij) a_i a_i^T / N + lambda I: about c G + lambda I, with c the typical
    p (1 - p), which falls from 0.09 at the start towards 0 as predictions grow confident. So c
    is measured along the newest step (s, y) by the secant rule, c = (s'y - lambda |s|^2) / s'Gs
    (1 before the first step), and P follows it. Pixels are strongly correlated, so G is badly
    conditioned; undoing it is what the two-loop recursion alone learns slowly. Costs one pass
    over the rows (d^2 per row) and a (d + 1)^2 eigendecomposition, once."""
    if not hasattr(xp, "linalg"):
        return None
    d = a.shape[0]
    ax = a * x_sum
    corner = a[:, None] * xx * a + ax[:, None] * r[None, :] + r[:, None] * ax[None, :] + r[:, None] * r[None, :]
    edge = ax + r                                            # the mean of x'
    one = xp.ones((1, 1), dtype=xx.dtype, **({} if xp is np else {"device": device_of(xx)}))
    G = xp.concat([xp.concat([corner, edge[:, None]], axis=1), xp.concat([edge[None, :], one], axis=1)], axis=0)
    values, vectors = xp.linalg.eigh(G)
    values = xp.where(values > 0.0, values, 0.0)
    return GramPreconditioner(xp, values, vectors, max(weight_decay, 1e-12 * float(values[-1])), k)


class GramPreconditioner:
    """P = (c G + lambda I)^-1 on flat (W; b) vectors, from G's eigendecomposition (values, vectors):
    `solve(q, c)` -> P q, `curvature(s, y)` -> c measured along a step s whose gradient change is
    y (y = H s for a Hessian-vector product), and P(q, s, y) (L-BFGS: c from its newest pair, 1
    before the first)."""

    def __init__(self, xp, values, vectors, lam: float, k: int):
        self.xp, self.values, self.vectors, self.lam, self.k = xp, values, vectors, lam, k

    def curvature(self, s, y) -> float:
        """c = (s'y - lambda |s|^2) / s'Gs, at least 1e-8: the secant rule."""
        xp = self.xp
        Vs = self.vectors.T @ xp.reshape(s, (self.values.shape[0], self.k))
        return max((float(s @ y) - self.lam * float(s @ s)) / float(self.values @ xp.sum(xp.square(Vs), axis=1)), 1e-8)

    def solve(self, q, c: float):
        xp, V = self.xp, self.vectors
        return xp.reshape(V @ ((V.T @ xp.reshape(q, (self.values.shape[0], self.k))) / (c * self.values + self.lam)[:, None]),
                          (-1,))

    def __call__(self, q, s=None, y=None):
        return self.solve(q, 1.0 if s is None else self.curvature(s, y))


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
        """P(q, s, y) -> P q for L-BFGS (`_gram_preconditioner`), from one pass over the rows."""
        return preconditioner_from_gram(self.objective, self.gram_sums(), self.divisor)

    def gram_sums(self) -> np.ndarray:
        """[sum_i w_i xc_i xc_i^T (d, d) raveled, sum_i w_i xc_i (d,)] float64, the rows added in chunk
        order, with xc = x - shift the rows centred on `_input_map`'s shift (sums of the centred rows do not
        cancel in float32). Unnormalised, so parts of a data set add up."""
        model = self.objective.model
        d = model.num_inputs
        shift = _input_map(model)[1]
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


def objective_value(objective: SoftmaxCrossEntropy, sums: np.ndarray, divisor: float, n: int):
    """(F, dF, (mean training loss, accuracy)) from `FullBatch.sums` of all n rows, at the model's
    parameters: F = sums[0] / N + (lambda / 2) |W|^2 and dF = sums[2:] + lambda W (in place)."""
    model = objective.model
    g = sums[2:]
    data_loss = float(sums[0]) / divisor
    dW = g[:model.W.size].reshape(model.W.shape)                      # a view: the penalty lands in g
    f = data_loss + objective.add_penalty(dW)
    return f, g, (data_loss, int(sums[1]) / n)


def hessian_value(objective: SoftmaxCrossEntropy, sums, v):
    """H v from the data term's `hessian_sums` and the flat direction v: the penalty adds lambda VW
    (the bias is not penalised). In v's library."""
    if not objective.weight_decay:
        return sums
    size = objective.model.num_inputs * objective.model.num_outputs
    xp = namespace(v)
    return sums + objective.weight_decay * xp.concat([v[:size], xp.zeros_like(v[size:])])


def preconditioner_from_gram(objective: SoftmaxCrossEntropy, gram: np.ndarray, divisor: float):
    """P(q, s, y) -> P q for L-BFGS (`_gram_preconditioner`) from `FullBatch.gram_sums` of all rows."""
    model = objective.model
    d = model.num_inputs
    a, _, r = _input_map(model)
    return _gram_preconditioner(np, gram[:d * d].reshape(d, d) / divisor, gram[d * d:] / divisor, a, r,
                                model.num_outputs, objective.weight_decay)


class GenericFullBatch:
    """FullBatch's contract (fun(x) -> (F, dF, (mean training loss, accuracy)), `preconditioner`,
    a context manager) for arrays of any array API library: x, dF and the sums are float64 arrays
    on the data's device, the chunks run in order in one thread (the device runs them in parallel),
    nothing is updated in place. F is a Python float: one synchronisation per evaluation."""

    def __init__(self, objective: SoftmaxCrossEntropy, X, y, w=None, *, divisor: float | None = None):
        self.objective, self.X, self.y, self.w = objective, X, y, w
        self.xp, self.n = namespace(X), X.shape[0]
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
        a, shift, r = (xp.asarray(v, device=device_of(self.X)) for v in _input_map(model))
        xx, x_sum = 0.0, 0.0
        for start, x in self.objective.model._generic_chunks(self.X):
            xc = x - shift
            wx = xc if self.w is None else xc * self.w[start:start + x.shape[0], None]
            xx = xx + xp.astype(wx.T @ xc, xp.float64)
            x_sum = x_sum + xp.sum(xp.astype(wx, xp.float64), axis=0)
        return _gram_preconditioner(xp, xx / self.divisor, x_sum / self.divisor, a, r, model.num_outputs,
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
