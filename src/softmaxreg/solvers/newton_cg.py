"""Full-batch Newton-CG (truncated Newton) in float64 on any array library.

Each iteration solves the Newton system H p = -g approximately by conjugate gradients on exact
Hessian-vector products (`fun.hessian_product(x, v)`, one pass over the data each, never the
(d k + k)^2 matrix), then takes a strong Wolfe line search from the full Newton step
(Nocedal and Wright, Numerical Optimization, 2nd ed., algorithm 7.1 with the line search of 3.5):

    CG on H p = -g from p = 0, stopped when |r| <= eta |g|,  eta = min(0.5, sqrt(|g|))  (the forcing
    term: superlinear convergence near the optimum), on negative curvature, or after max_cg steps
    x <- x + alpha p     alpha from the strong Wolfe line search, trying alpha = 1 first

The CG is preconditioned, when the caller sets the data's preconditioner
(preconditioner.GramPreconditioner, G the Gram matrix of the inputs as the model sees them), by
(A (x) G + lambda I)^-1, A = mean_i (diag(p_i) - p_i p_i^T) (k, k) the loss's curvature in the
logits at the current point (`fun.class_curvature(x)`, one pass, which also keeps P for the
iteration's Hessian products). The softmax Hessian is sum_i (diag(p_i) - p_i p_i^T) (x) a_i a_i^T / N
+ lambda I: replacing each row's p_i by the mean keeps every class's own curvature and their
coupling, so correlated or unscaled pixels (a badly conditioned G) cost few CG steps.
Sparse data (no d x d G): the CG is Jacobi-preconditioned by the exact Hessian diagonal at the
current point (preconditioner.HessianDiagonal, one pass). The preconditioner's `newton(fun, x)`
builds either; `curvatures` counts those passes.
"""

from __future__ import annotations

import math

from ..engines import engine_for
from ..errors import InvalidArgumentError
from .base import Function, FullBatchSolver, register, state_scalars

__all__ = ["NewtonCG"]


@register
class NewtonCG(FullBatchSolver):
    """Truncated Newton: CG on exact Hessian-vector products, the shared strong Wolfe line search.

    `hessian_products` counts the products and `curvatures` the passes that measured A (passes over
    the data besides the `evaluations` of F and its gradient). `step` returns False, x unchanged, when the line search finds no point that
    lowers F (flat to rounding).
    """
    name, uses_preconditioner = "newton-cg", True

    def __init__(self, *, max_cg: int = 200, **line_search):
        if isinstance(max_cg, bool) or not isinstance(max_cg, int) or max_cg < 1:
            raise InvalidArgumentError(f"max_cg: expected an integer >= 1, got {max_cg!r}")
        super().__init__(**line_search)
        self.max_cg = max_cg
        self.hessian_products = 0
        self.curvatures = 0                 # passes that measured the preconditioner at x (one an iteration)

    def _hessian(self, fun: Function, v):
        self.hessian_products += 1
        return fun.hessian_product(self.x, v)

    def newton_direction(self, fun: Function):
        """p with H p ~ -g by (preconditioned) conjugate gradients, to the forcing term's accuracy."""
        xp = engine_for(self.g).xp
        g_norm = math.sqrt(float(self.g @ self.g))
        target = min(0.5, math.sqrt(g_norm)) * g_norm
        precondition = lambda r: r                           # noqa: E731
        if self.preconditioner is not None:
            self.curvatures += 1
            precondition = self.preconditioner.newton(fun, self.x)
        p, r = xp.zeros_like(self.g), -self.g                 # r = -g - H p, the residual
        z = precondition(r)
        d, rz = z, float(r @ z)
        for i in range(self.max_cg):
            Hd = self._hessian(fun, d)
            curvature = float(d @ Hd)
            if not curvature > 0:                             # negative or no curvature along d
                return d if i == 0 else p
            alpha = rz / curvature
            p, r = p + alpha * d, r - alpha * Hd
            if math.sqrt(float(r @ r)) <= target:
                break
            z = precondition(r)
            rz, rz_old = float(r @ z), rz
            d = z + (rz / rz_old) * d
        return p

    def step(self, fun: Function) -> bool:
        """One iteration; False if the line search found no acceptable point (x unchanged)."""
        d = self.newton_direction(fun)
        slope = float(self.g @ d)
        if not slope < 0:                                    # rounding: fall back on steepest descent
            d = -self.g
            slope = float(self.g @ d)
        found = self.line_search(fun, d, slope, 1.0)
        if found is None:
            return False
        alpha, self.f, self.g, self.extra = found
        self.x = self.x + alpha * d
        return True

    def state_dict(self) -> dict:
        return {**self.point_state(), "hessian_products": self.hessian_products, "curvatures": self.curvatures}

    def load_state_dict(self, state: dict, params) -> None:
        self.load_point_state(state, params)
        self.hessian_products, self.curvatures = state_scalars(state, hessian_products=int, curvatures=int)
