"""Row-sparse SGD steps on sparse rows: a minibatch touches only the rows of W its non-zeros use.

Conventions as in objective.py: x (n, d) a scipy.sparse CSR batch, y (n,), w (n,) or None,
W (d, k), b (k,), Z = s X W + b.

With hashed one-hots (a few non-zeros a row out of d ~ 10^4 columns) a batch of n rows reads at
most nnz(x) rows R of W. The gradient s X^T G has non-zero rows only in R, so the step

    dW_R = s x_R^T G / N            (r, k)   x_R: x's columns renumbered to R (`active_rows`)
    W_R <- W_R - lr (dW_R + lambda W_R),    b <- b - lr db

touches the block W[R, :] only, as an embedding bag's update does, and never forms a dense (d, k)
array. Without weight decay it is the dense step exactly (the other rows' gradient is zero).
With weight decay the penalty's gradient lambda W is applied to the touched rows only, when they
are touched (a lazy L2, as sampled softmax's block step): a row no batch uses keeps its value,
where the dense step would shrink it by (1 - lr lambda) every step.

The full softmax's block is all k columns; sampled softmax's (sampled.py) is (R, C) with C the
batch's and the sampled classes: both share `active_rows`, `Block` and `block_step`. Only plain
SGD (no momentum: a velocity would move every row each step) and no centring (a mean of the
inputs makes every row of X' non-zero).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import generic
from .engines import engine_for
from .functional import softmax_cross_entropy_

__all__ = ["Block", "active_rows", "block_params", "block_step", "full_loss_and_grad_rows", "BlockSteps", "RowSparseSteps",
           "row_sparse_steps"]


class Block(NamedTuple):
    """The part of W a step reads and writes: rows R (None: all) and columns C (None: all), and
    W[R, C] as read (a copy: the step updates it and writes it back)."""
    rows: np.ndarray | None
    cols: np.ndarray | None
    W: np.ndarray


def active_rows(x, params):
    """(R, x_R): for a sparse batch x (CSR) and no centring, the rows R (r,) of W its non-zeros use
    (sorted) and x re-indexed to them (n, r), so a step touches the rows W[R] only (as an embedding
    bag's); else (None, x), every row of W."""
    if engine_for(x).name != "sparse" or (params.mean is not None and np.any(params.mean)):
        return None, x
    R = np.unique(x.indices)
    return R, type(x)((x.data, np.searchsorted(R, x.indices), x.indptr), shape=(x.shape[0], R.size))


def block_params(params, R, cols) -> generic._Params:
    """The model's parameters restricted to rows R (None: all) and columns cols (None: all), W and b
    copied (fancy indices), mean and std to R: what generic.logits and generic._backward take."""
    b = params.b if cols is None else params.b[cols]
    if R is None:
        W = params.W.copy() if cols is None else params.W[:, cols]
        return generic._Params(W, b, params.mean, params.std, params.input_scale)
    W = params.W[R] if cols is None else _block_index(params.W, R, cols)
    return generic._Params(W, b, None if params.mean is None else params.mean[R],
                           None if params.std is None else params.std[R], params.input_scale)


def block_step(model, block: Block, dW: np.ndarray, db: np.ndarray, lr: float, weight_decay: float) -> None:
    """W_RC <- W_RC - lr (dW_RC + lambda W_RC), b_C <- b_C - lr db_C in place: plain SGD on the block
    (W unchanged since block.W was read); the L2 penalty on the block only (lazy). dW is overwritten."""
    R, cols, W_RC = block
    rate = model.W.dtype.type(lr)
    if weight_decay:
        dW += model.W.dtype.type(weight_decay) * W_RC
    dW *= rate
    W_RC -= dW
    if cols is None:
        model.W[slice(None) if R is None else R] = W_RC
        model.b -= rate * db
    else:
        if R is None:
            model.W[:, cols] = W_RC
        else:
            _block_index(model.W, R, cols, W_RC)
        model.b[cols] -= rate * db


def _flat_index(W: np.ndarray, R: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
    """The flat indices (r c,) of W[np.ix_(R, cols)] in a C-contiguous W (int32 where they fit), else None."""
    if not W.flags.c_contiguous:
        return None
    kind = np.int32 if W.size < 2**31 else np.int64
    return (R.astype(kind)[:, None] * kind(W.shape[1]) + cols.astype(kind)[None, :]).ravel()


def _block_index(W: np.ndarray, R: np.ndarray, cols: np.ndarray, values: np.ndarray | None = None):
    """W[R][:, cols] (a copy, values None), or W[R][:, cols] = values: through flat indices into a
    C-contiguous W (`_flat_index`: ~30% faster than W[np.ix_(R, cols)]; a gather of scattered
    cache lines either way)."""
    flat = _flat_index(W, R, cols)
    if flat is None:
        if values is None:
            return W[np.ix_(R, cols)]
        W[np.ix_(R, cols)] = values
        return None
    if values is None:
        return W.reshape(-1).take(flat).reshape(R.size, cols.size)
    W.reshape(-1)[flat] = values.ravel()
    return None


def full_loss_and_grad_rows(params, x, y, w, divisor: float, smoothing: float = 0.0):
    """The full softmax's chunk on the rows of W that x uses: (sum_i w_i l_i, correct count, Block,
    dW_R (r, k), db (k,)), the gradient that of sum_i w_i l_i / divisor (objective.py's formulas).
    For class indices without weights or smoothing the loss and G = P - Y come from the fused
    kernel (functional.softmax_cross_entropy_, on Z^T in place), else from generic.loss_and_grad_sums."""
    R, x = active_rows(x, params)
    local = block_params(params, R, None)
    if y.ndim == 1 and w is None and not smoothing:
        z = generic.logits(np, local, x)                              # (n, k)
        loss, correct = softmax_cross_entropy_(z.T, y)                # z <- G = P - Y, in place
        dW, db = generic._backward(np, local, x, z, divisor)
    else:
        loss, correct, dW, db = generic.loss_and_grad_sums(np, local, x, y, w, divisor, smoothing)
    return loss, int(correct), Block(R, None, local.W), dW, db


class BlockSteps:
    """train.py's minibatch steps that update a block of W in place: the batches and rows of `inner`
    (minibatch._NumpySteps or _GenericSteps), `gradient` and `step` the subclass's (`update` holds what
    the gradient hands the step)."""

    def __init__(self, inner):
        self.inner, self.objective = inner, inner.objective
        self.update = None

    @property
    def x_batch(self):
        return self.inner.x_batch

    def batches(self):
        return self.inner.batches()


class RowSparseSteps(BlockSteps):
    """BlockSteps for the full softmax on sparse rows with plain SGD: each step's gradient on the
    rows of W the batch uses (`full_loss_and_grad_rows`) and the step on those rows in place
    (`block_step`, lazy L2)."""
    counts_hits = True

    def gradient(self, batch) -> tuple[int, float, int]:
        x, y, w = self.inner.rows(batch)
        loss, correct, *self.update = full_loss_and_grad_rows(self.objective.model, x, y, w, x.shape[0],
                                                              self.objective.label_smoothing)
        return x.shape[0], float(loss), correct

    def step(self, lr: float) -> None:
        block_step(self.objective.model, *self.update, lr, self.objective.weight_decay)


def row_sparse_steps(steps, objective, optimizer, X):
    """`steps` wrapped in RowSparseSteps where the row-sparse step applies: sparse X, NumPy
    parameters, plain SGD (no momentum), the full softmax, no centring; else `steps` unchanged."""
    model = objective.model
    plain_sgd = optimizer.name == "sgd" and not getattr(optimizer, "momentum", 0)
    centred = model.mean is not None and np.any(model.mean)
    if engine_for(X).name == "sparse" and engine_for(model.W).name == "numpy" and plain_sgd and not centred:
        return RowSparseSteps(steps)
    return steps
