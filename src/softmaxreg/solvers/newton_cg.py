"""Full-batch Newton-CG (truncated Newton) in float64 on any array library.

Each iteration solves the Newton system H p = -g approximately by conjugate gradients on exact
Hessian-vector products (`fun.hessian_product(x, v)`, one pass over the data each, never the
(d k + k)^2 matrix), then takes a strong Wolfe line search from the full Newton step
(Nocedal and Wright, Numerical Optimization, 2nd ed., algorithm 7.1 with the line search of 3.5):

    CG on H p = -g from p = 0, stopped when |r| <= eta |g|,  eta = min(0.5, sqrt(|g|))  (the forcing
    term: superlinear convergence near the optimum), on negative curvature, or after max_cg steps
    x <- x + alpha p     alpha from the strong Wolfe line search, trying alpha = 1 first

The CG is preconditioned by the data's P = (c G + lambda I)^-1 when the caller sets one
(objective.GramPreconditioner: G the inputs' Gram matrix, c the loss's typical curvature): the
softmax Hessian is close to c G + lambda I, so a badly conditioned G (correlated or unscaled
pixels) costs few CG steps. c is measured along the first CG direction of every iteration (its
Hessian product is needed anyway) and used by the next; the first is measured at `start`.
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

    `hessian_products` counts the products (passes over the data besides the `evaluations` of F
    and its gradient). `step` returns False, x unchanged, when the line search finds no point that
    lowers F (flat to rounding).
    """
    name, uses_preconditioner = "newton-cg", True

    def __init__(self, *, max_cg: int = 200, **line_search):
        if isinstance(max_cg, bool) or not isinstance(max_cg, int) or max_cg < 1:
            raise InvalidArgumentError(f"max_cg: expected an integer >= 1, got {max_cg!r}")
        super().__init__(**line_search)
        self.max_cg = max_cg
        self.hessian_products = 0
        self.curvature = 1.0                # c of the preconditioner, measured along the last CG direction

    def start(self, x0, fun: Function) -> None:
        super().start(x0, fun)
        if self.preconditioner is not None:
            d = self.preconditioner.solve(-self.g, 1.0)
            self.curvature = self.preconditioner.curvature(d, self._hessian(fun, d))

    def _hessian(self, fun: Function, v):
        self.hessian_products += 1
        return fun.hessian_product(self.x, v)

    def _precondition(self, r):
        return r if self.preconditioner is None else self.preconditioner.solve(r, self.curvature)

    def newton_direction(self, fun: Function):
        """p with H p ~ -g by (preconditioned) conjugate gradients, to the forcing term's accuracy."""
        xp = engine_for(self.g).xp
        g_norm = math.sqrt(float(self.g @ self.g))
        target = min(0.5, math.sqrt(g_norm)) * g_norm
        p, r = xp.zeros_like(self.g), -self.g                 # r = -g - H p, the residual
        z = self._precondition(r)
        d, rz = z, float(r @ z)
        next_c = self.curvature
        for i in range(self.max_cg):
            Hd = self._hessian(fun, d)
            curvature = float(d @ Hd)
            if not curvature > 0:                             # negative or no curvature along d
                return d if i == 0 else p
            if i == 0 and self.preconditioner is not None:   # for the next iteration's CG
                next_c = self.preconditioner.curvature(d, Hd)
            alpha = rz / curvature
            p, r = p + alpha * d, r - alpha * Hd
            if math.sqrt(float(r @ r)) <= target:
                break
            z = self._precondition(r)
            rz, rz_old = float(r @ z), rz
            d = z + (rz / rz_old) * d
        self.curvature = next_c
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
        return {**self.point_state(), "hessian_products": self.hessian_products, "curvature": self.curvature}

    def load_state_dict(self, state: dict, params) -> None:
        self.load_point_state(state, params)
        self.hessian_products, self.curvature = state_scalars(state, hessian_products=int, curvature=float)
