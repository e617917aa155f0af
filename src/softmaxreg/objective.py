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

`chunk` returns the chunk's sums and its share of the gradient; callers add chunks in a
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

import numpy as np

from . import generic
from .engines import engine_for
from .engines.array_api import to_numpy
from .engines.gemm import WIDE, matmul_t_rows
from .errors import InvalidArgumentError
from .functional import softmax_cross_entropy_, softmax_cross_entropy_rows_
from .model import SoftmaxRegression, StepBuffers

__all__ = ["SoftmaxCrossEntropy", "flat_params", "set_flat_params", "split_flat", "objective_value", "hessian_value"]

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

    def chunk(self, x, y, w, divisor: float, scratch: StepBuffers | None = None):
        """One chunk's forward and backward, the one function every solver's step and every full
        batch calls: (sum_i w_i l_i, number of rows whose argmax is the target's, dW (d, k), db (k,)),
        dW and db the gradient of sum_i w_i l_i / divisor. No penalty here (`penalized`,
        `add_penalty`); no validation (callers check inputs once).

        The formulas are generic.loss_and_grad_sums on x's namespace (NumPy's too). A NumPy caller
        that reuses `scratch` buffers gets, for the training hot path (class indices, no weights, no
        smoothing), the NumPy engine's fused kernel instead: the same math class-major and in place
        (functional.softmax_cross_entropy_), the products blocked (engines/gemm.py); from gemm.WIDE
        classes on, the row-major form (functional.softmax_cross_entropy_rows_, `_fused_wide`).
        dW and db are then scratch's arrays, valid until its next use."""
        if scratch is not None and y.ndim == 1 and w is None and not self.label_smoothing:
            if self.model.num_outputs >= WIDE:
                return self._fused_wide(x, y, divisor, scratch)
            return self._fused_labels(x, y, divisor, scratch)
        xp = engine_for(x).xp
        return generic.compiled(generic.loss_and_grad_sums, xp)(xp, self.model, x, y, w, float(divisor),
                                                                 self.label_smoothing)

    def _fused_labels(self, x: np.ndarray, y: np.ndarray, divisor: float, scratch: StepBuffers):
        """`chunk` for class indices on NumPy: zt <- (P - Y)^T in place, then the blocked X^T G."""
        model, n = self.model, x.shape[0]
        dtype = model.dtype.type
        zt, dW, db = scratch.zt[:, :n], scratch.grad_W, scratch.grad_b
        np.copyto(zt, model._logits_into(x, scratch.z[:n]).T)                     # Z^T (k, n)
        loss_sum, correct = softmax_cross_entropy_(zt, y, scratch.cols[:n])
        np.sum(zt, axis=1, out=db)
        db *= dtype(1.0 / divisor)                                 # sum_i G_i
        if model.mean is None:
            zt *= dtype(model.input_scale / divisor)               # zt <- s G^T
            matmul_t_rows(x, zt.T, dW, scratch.dW)                 # (d, k)  s X^T G
        else:
            zt *= dtype(1.0 / divisor)                             # zt <- G^T
            matmul_t_rows(x, zt.T, dW, scratch.dW)                 # X^T G
            dW *= (dtype(model.input_scale) / model.std)[:, None]
            dW -= (model.mean / model.std)[:, None] * db
        return loss_sum, correct, dW, db

    def _fused_wide(self, x: np.ndarray, y: np.ndarray, divisor: float, scratch: StepBuffers):
        """`_fused_labels` for many classes: z <- G = (P - Y) / N in place, row-major (no class-major
        copy), the divisor folded into the softmax's normalisation, then X^T G in one product."""
        model, n = self.model, x.shape[0]
        dtype = model.dtype.type
        z, dW, db = model._logits_into(x, scratch.z[:n]), scratch.grad_W, scratch.grad_b    # Z (n, k)
        loss_sum, correct = softmax_cross_entropy_rows_(z, y, scratch.cols[:n], 1.0 / divisor)   # z <- G
        np.sum(z, axis=0, out=db)                                  # sum_i G_i
        matmul_t_rows(x, z, dW, scratch.dW)                        # (d, k)  X^T G
        if model.mean is None:
            if model.input_scale != 1.0:
                dW *= dtype(model.input_scale)                     # s X^T G
        else:
            dW *= (dtype(model.input_scale) / model.std)[:, None]
            dW -= (model.mean / model.std)[:, None] * db
        return loss_sum, correct, dW, db

    def penalized(self, dW) -> tuple[float, object]:
        """((lambda / 2) |W|^2, dW + lambda W): in place for NumPy (`add_penalty`), a new array for
        the other libraries (generic.penalty)."""
        engine = engine_for(dW)
        if engine.in_process:
            return self.add_penalty(dW), dW
        return generic.penalty(engine.xp, self.model.W, self.weight_decay, dW)

    def add_penalty(self, dW: np.ndarray | None = None) -> float:
        """(lambda / 2) |W|^2; with dW, also adds its gradient lambda W to dW in place."""
        if not self.weight_decay:
            return 0.0
        W = self.model.W
        if dW is not None:
            dW += W.dtype.type(self.weight_decay) * W
        return 0.5 * self.weight_decay * float(np.vdot(W, W))

    def _inputs(self, X, y, what: str, *arrays):
        """The checked rows X (n, d) as floats, targets y, the model in X's library (`like`), X's
        engine and `arrays` (None or per-row weights, directions) in the model's dtype there."""
        model = self.model
        X = model._flatten(X)
        y = model._check_targets(y, X.shape[0], like=X)
        if X.shape[0] == 0:
            raise InvalidArgumentError(f"X: cannot compute {what} on 0 examples")
        like, data = model._like(X), engine_for(X)
        converted = [None if a is None else data.asarray(np.asarray(to_numpy(a)), dtype=model.dtype) for a in arrays]
        return data.float_rows(X, 0, X.shape[0], like.W.dtype), y, like, data, converted

    def loss_and_grad(self, X, y, *, sample_weight=None) -> tuple[float, np.ndarray, np.ndarray]:
        """F on (X, y), divided by the number of rows, and its gradient (dW (d, k), db (k,)).

        X (n, d) or (n, *input_shape); y class indices (n,) or soft targets (n, k);
        sample_weight (n,) weights each example's loss: F = (1/n) sum_i w_i l_i + (lambda/2) |W|^2.
        """
        X, y, like, data, (w,) = self._inputs(X, y, "a loss", sample_weight)
        objective = SoftmaxCrossEntropy(like, weight_decay=self.weight_decay, label_smoothing=self.label_smoothing)
        scratch = StepBuffers(X.shape[0], like) if data.in_process else None
        loss_sum, _, dW, db = objective.chunk(X, y, w, X.shape[0], scratch)
        penalty, dW = objective.penalized(dW)
        return float(loss_sum) / X.shape[0] + penalty, dW, db

    def hessian_product(self, X, y, VW, Vb, *, sample_weight=None):
        """(HW (d, k), Hb (k,)): the Hessian of `loss_and_grad`'s F at the model's parameters applied
        to the direction (VW, Vb), in X's library, without forming the (d k + k)^2 matrix
        (generic.hessian_product_sums; full_batch/ sums it over chunks of any data set)."""
        X, y, like, data, (w, VW, Vb) = self._inputs(X, y, "a Hessian", sample_weight, VW, Vb)
        HW, Hb = generic.hessian_product_sums(data.xp, like, VW, Vb, X, y, w, float(X.shape[0]))
        return (HW + self.weight_decay * VW if self.weight_decay else HW), Hb


def flat_params(model: SoftmaxRegression):
    """The parameters as one float64 vector x = (W.ravel(), b), as full-batch solvers see them
    (in the parameters' library and on their device)."""
    xp = model.engine.xp
    return xp.astype(xp.concat([xp.reshape(model.W, (-1,)), model.b]), xp.float64)


def set_flat_params(model: SoftmaxRegression, x) -> None:
    """Bind W and b to new arrays (in the model's dtype, library and device) holding a flat vector
    laid out as `flat_params` (new arrays: some libraries' are immutable)."""
    model.W, model.b = split_flat(model, x)


def split_flat(model: SoftmaxRegression, v):
    """(VW (d, k), Vb (k,)) of a flat vector laid out as `flat_params`, in the model's dtype."""
    size = model.num_inputs * model.num_outputs
    xp = engine_for(v).xp
    return xp.reshape(xp.astype(v[:size], model.W.dtype), tuple(model.W.shape)), xp.astype(v[size:], model.W.dtype)


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
    xp = engine_for(v).xp
    return sums + objective.weight_decay * xp.concat([v[:size], xp.zeros_like(v[size:])])
