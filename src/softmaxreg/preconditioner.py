"""The full-batch solvers' preconditioner: P = (c G + lambda I)^-1 from the Gram matrix G of the
inputs as the model sees them (with a constant 1 for the bias), for any array library; or, for
sparse data of many columns (a d x d G is out of reach), the inverse of the Hessian's diagonal."""

from __future__ import annotations

import numpy as np

from .engines import engine_for
from .errors import InvalidArgumentError
from .engines.array_api import to_numpy

__all__ = ["GramPreconditioner", "HessianDiagonal", "gram_preconditioner", "input_map", "start_curvature"]


def input_map(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, shift, r) (d,) with which the model sees x' = a x - m = a (x - shift) + r:
    a = s / sigma, m = mu / sigma standardized (a = s, m = 0 else), shift = m / a (the raw mean) in
    the model's dtype (a, r float64), r = a shift - m its rounding. Sums of the centred x - shift do not cancel in float32."""
    d = model.num_inputs
    std = None if model.mean is None else to_numpy(model.std).astype(np.float64)
    a = np.full(d, model.input_scale) if model.mean is None else model.input_scale / std
    m = np.zeros(d) if model.mean is None else to_numpy(model.mean).astype(np.float64) / std
    shift = (m / a).astype(model.dtype)
    return a, shift, a * shift - m


def gram_preconditioner(xp, xx, x_sum, a, r, k: int, weight_decay: float):
    """GramPreconditioner P = (c G + lambda I)^-1 acting on (W; b) stacked as (d + 1, k),
    from the moments xx = sum w xc xc^T / N (d, d), x_sum = sum w xc / N (d,) of the centred inputs
    and the input map (a, r) (`input_map`), in namespace xp. None when xp has no linalg extension
    (then L-BFGS runs unpreconditioned).

    G = sum_i w_i a_i a_i^T / N is the Gram matrix of the inputs as the model sees them with a
    constant 1 appended (a_i = (x'_i, 1)). The softmax loss's Hessian for class j is
    sum_i w_i p_ij (1 - p_ij) a_i a_i^T / N + lambda I: about c G + lambda I, with c the typical
    p (1 - p), which falls from about 1 / k at the start towards 0 as predictions grow confident.
    So c is measured along the newest step (s, y) by the secant rule, c = (s'y - lambda |s|^2) /
    s'Gs, and P follows it; before the first step c is `start_curvature(k)` = 1 / k, exact at
    uniform predictions. Pixels are strongly correlated, so G is badly conditioned; undoing it is
    what the two-loop recursion alone learns slowly. Costs one pass
    over the rows (d^2 per row) and a (d + 1)^2 eigendecomposition, once."""
    if not hasattr(xp, "linalg"):
        return None
    ax = a * x_sum
    corner = a[:, None] * xx * a + ax[:, None] * r[None, :] + r[:, None] * ax[None, :] + r[:, None] * r[None, :]
    edge = ax + r                                            # the mean of x'
    one = xp.ones((1, 1), dtype=xx.dtype, device=engine_for(xx).device)
    G = xp.concat([xp.concat([corner, edge[:, None]], axis=1), xp.concat([edge[None, :], one], axis=1)], axis=0)
    values, vectors = xp.linalg.eigh(G)
    values = xp.where(values > 0.0, values, 0.0)
    return GramPreconditioner(xp, values, vectors, max(weight_decay, 1e-12 * float(values[-1])), k)


class GramPreconditioner:
    """P = (c G + lambda I)^-1 on flat (W; b) vectors, from G's eigendecomposition (values, vectors):
    `solve(q, c)` -> P q, `curvature(s, y)` -> c measured along a step s whose gradient change is
    y (y = H s for a Hessian-vector product), and P(q, s, y) (L-BFGS: c from its newest pair,
    `start_curvature(k)` before the first); `for_classes(A)` -> (A (x) G + lambda I)^-1 for the
    logits' curvature A (Newton-CG)."""

    def __init__(self, xp, values, vectors, lam: float, k: int):
        self.xp, self.values, self.vectors, self.lam, self.k = xp, values, vectors, lam, k
        self._pair = None                  # (s, y, c): the newest pair's curvature, measured once

    def curvature(self, s, y) -> float:
        """c = (s'y - lambda |s|^2) / s'Gs, at least 1e-8: the secant rule."""
        xp = self.xp
        Vs = self.vectors.T @ xp.reshape(s, (self.values.shape[0], self.k))
        return max((float(s @ y) - self.lam * float(s @ s)) / float(self.values @ xp.sum(xp.square(Vs), axis=1)), 1e-8)

    def solve(self, q, c: float):
        xp, V = self.xp, self.vectors
        return xp.reshape(V @ ((V.T @ xp.reshape(q, (self.values.shape[0], self.k))) / (c * self.values + self.lam)[:, None]),
                          (-1,))

    def for_classes(self, A: np.ndarray):
        """q -> (A (x) G + lambda I)^-1 q on flat (W; b) vectors, for the logits' curvature A (k, k)
        (`class_curvature`): the softmax Hessian is sum_i (diag(p_i) - p_i p_i^T) (x) a_i a_i^T / N +
        lambda I, and A (x) G replaces each row's p_i by their mean, so each class keeps its own
        curvature (a confidently predicted class has little) and the classes' coupling. With
        A = U diag(alpha) U^T and G = V diag(s) V^T the inverse is diagonal in V (x) U: applied as
        V ((V^T Q U) / (s alpha^T + lambda)) U^T on Q, q laid out as (d + 1, k)."""
        xp, V = self.xp, self.vectors
        alpha, U = _class_eigen(A)
        device = engine_for(V).device
        U, alpha = (xp.asarray(a, dtype=V.dtype, device=device) for a in (U, alpha))
        scale = self.values[:, None] * alpha[None, :] + self.lam              # (d + 1, k)

        def apply(q):
            Q = V.T @ xp.reshape(q, (self.values.shape[0], self.k)) @ U
            return xp.reshape(V @ (Q / scale) @ U.T, (-1,))
        return apply

    def adapt(self, x) -> None:
        """Called by L-BFGS at each new point x: nothing here (c follows its newest pair)."""

    def newton(self, fun, x):
        """Newton-CG's preconditioner at the point x: `for_classes` of the logits' curvature there
        (`fun.class_curvature`, one pass)."""
        return self.for_classes(fun.class_curvature(x))

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __call__(self, q, s=None, y=None):
        if s is None:
            return self.solve(q, start_curvature(self.k))
        if self._pair is None or self._pair[0] is not s or self._pair[1] is not y:    # L-BFGS asks twice a pair
            self._pair = (s, y, self.curvature(s, y))
        return self.solve(q, self._pair[2])


def start_curvature(k: int) -> float:
    """c before L-BFGS's first pair: 1 / k, the softmax's curvature at uniform predictions.

    At p_i = 1/k for every row (W = 0, b = 0; the small random W of a fresh model is close) each
    row's logit curvature diag(p) - p p^T is (I - 11^T / k) / k, so the data term's Hessian is
    (I - 11^T / k) / k (x) G: exactly G / k on the directions whose entries sum to 0 over the
    classes, which the gradient's data term is (sum_j (p_ij - y_ij) = 0). P = (G / k + lambda
    I)^-1 is then the inverse Hessian there (the penalty's lambda I, which P also puts on the
    unpenalised bias, aside), and L-BFGS's first direction -P g the Newton step. Starting from c = 1 instead made the first step k times too short: at k = 1,000 the line
    search spent seven evaluations doubling it (BENCHMARKS.md, issue #21)."""
    return 1.0 / max(int(k), 1)


def _class_eigen(A) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, U): the eigendecomposition of the logits' curvature A (k, k), its eigenvalues kept
    above 1e-6 of the largest (A is singular: the softmax is shift-invariant)."""
    alpha, U = np.linalg.eigh(np.asarray(A, dtype=np.float64))
    return np.maximum(alpha, 1e-6 * max(float(alpha[-1]), 1e-300)), U


HESSIAN_DIAGONAL_EVERY = 10
"""L-BFGS iterations per measurement of the Hessian's diagonal (`HessianDiagonal`, one pass each).
TF-IDF of Debian package descriptions (63,578 x 54,783, k = 53, C = 1), L-BFGS iterations to
F* (1 + 1e-6): 56 with the Gram matrix's diagonal (the column moments) scaled by the secant rule as
GramPreconditioner's c; 31, 32, 34 and 36 with the Hessian's diagonal measured every 5, 10, 15 and
20 iterations; 64 measured once, at the start. Newton-CG's Hessian products: 86 with (A (x)
diag(G) + lambda I)^-1, 67 Jacobi-preconditioned."""


class HessianDiagonal:
    """P = (D + lambda I)^-1, D the diagonal of the data term's Hessian at a recent point, (d + 1) x k
    numbers laid out as the flat (W; b): D_jc = sum_i w_i t_i x'_ij^2 p_ic (1 - p_ic) / N, with
    x' = 1 for the bias. `measure(x, keep)` measures it at the flat point x (one pass over the data:
    SparseFullBatch.hessian_diagonal, which keeps the probabilities at x if asked).

    Beside the Gram matrix's diagonal scaled by one curvature c for every class, each class keeps
    its own curvature here: a class predicted with confidence has little, and which words
    are confidently placed differs by class. L-BFGS calls `adapt(x)` at each iteration, which
    measures D every HESSIAN_DIAGONAL_EVERY calls (the first included), so P follows the point
    while the pairs stay consistent with it for a while; `state_dict` (D, the calls) goes into
    checkpoints, so a resumed run continues bit for bit. Newton-CG's `newton(fun, x)` measures D
    at every iteration: Jacobi-preconditioned CG (one pass, which also keeps the probabilities for
    the iteration's Hessian products)."""

    lbfgs_memory = 5
    """The pairs L-BFGS keeps with this preconditioner (its `memory` when not given): measured at the
    point, it leaves little for the pairs to learn. benchmarks/text.py's training part (50,862 x
    45,804, k = 53, C = 1), iterations to F* (1 + 1e-6) with 3 / 4 / 5 / 7 / 10 pairs: 32 / 31 / 31 /
    30 / 30; 5.0 s with 5 pairs against 7.2 s with 10 (the two-loop recursion's passes over the
    pairs halved, and 10 vectors of d k numbers held, not 20)."""

    newton_pairs = 0
    """The last CG's pairs Newton-CG keeps to precondition the next (its `cg_pairs` when not given):
    none. On benchmarks/text.py's training part 10 pairs saved 5 of 65 Hessian products, and would
    hold 40 more vectors of d k numbers (760 MB there) while a CG runs."""

    def __init__(self, measure, lam: float):
        self.measure, self.lam = measure, lam
        self.diagonal, self.calls = None, 0

    def _measured(self, x, keep: bool = False) -> np.ndarray:
        D = self.measure(x, keep)
        return D + max(self.lam, 1e-12 * float(D.max()))

    def adapt(self, x) -> None:
        if self.calls % HESSIAN_DIAGONAL_EVERY == 0:
            self.diagonal = self._measured(x)
        self.calls += 1

    def newton(self, fun, x):
        diagonal = self._measured(x, keep=True)          # the probabilities kept for the CG's products
        return lambda r: r / diagonal

    def __call__(self, q, s=None, y=None):
        return q / self.diagonal

    def state_dict(self) -> dict:
        return {} if self.diagonal is None else {"diagonal": self.diagonal.copy(), "calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.diagonal, self.calls = np.array(state["diagonal"], dtype=np.float64), int(state["calls"])


def preconditioner_from_gram(objective, gram: np.ndarray, divisor: float):
    """P(q, s, y) -> P q for L-BFGS (`gram_preconditioner`) from `FullBatch.gram_sums` of all rows."""
    model = objective.model
    d = model.num_inputs
    a, _, r = input_map(model)
    if not np.isfinite(gram).all():           # the squares of the inputs overflow: so does the loss
        raise InvalidArgumentError("values too large: the loss overflowed (the inputs' squares are not finite in "
                                   f"{model.dtype}); scale the data down or standardize it (--standardize)")
    return gram_preconditioner(np, gram[:d * d].reshape(d, d) / divisor, gram[d * d:] / divisor, a, r,
                                model.num_outputs, objective.weight_decay)
