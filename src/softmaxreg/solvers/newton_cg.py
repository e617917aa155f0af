"""Full-batch Newton-CG (truncated Newton) in float64 on any array library.

Each iteration solves the Newton system H p = -g approximately by conjugate gradients on exact
Hessian-vector products (`fun.hessian_product(x, v)`, one pass over the data each, never the
(d k + k)^2 matrix), then takes a strong Wolfe line search from the full Newton step
(Nocedal and Wright, Numerical Optimization, 2nd ed., algorithm 7.1 with the line search of 3.5):

    CG on H p = -g from p = 0, stopped when |r| <= eta |g| (eta the forcing term, below), on
    negative curvature, or after max_cg steps
    x <- x + alpha p     alpha from the strong Wolfe line search, trying alpha = 1 first

The forcing term is Eisenstat and Walker's choice 2 ("Choosing the forcing terms in an inexact
Newton method", SIAM J. Sci. Comput. 17, 1996), with their safeguard:

    eta_0 = 0.5,   eta_t = min(0.5, max(0.9 (|g_t| / |g_t-1|)^2, 0.9 eta_t-1^2 if that is > 0.1))

It follows the progress Newton makes: while the iterations gain little (far from the optimum, where
the full Newton step overshoots and the line search cuts it) the CG stops early, and once the
gradient falls fast it asks for the accuracy that keeps the convergence superlinear. It also does
not depend on the scale of F (N&W's eta = min(0.5, sqrt(|g|)) does: a mean loss and a sum give
different CGs). Fashion-MNIST standardized at C = 0.01, passes to F* (1 + 1e-6): all 60,000 rows
553 with N&W's term (18 iterations; without the pairs below, 8 of its 17 steps were cut to alpha
0.15-0.70 by the line search) -> 305 (9 iterations); 10,000 rows 131 -> 149 (8 -> 7 iterations).

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

Each CG after the first is preconditioned further by the pairs (d_j, H d_j) of the one before
(Morales and Nocedal, "Automatic preconditioning by limited memory quasi-Newton updating", SIAM J.
Optim. 10, 2000): the two-loop recursion of L-BFGS over the last `cg_pairs` of them, with the data's
preconditioner as its initial map. The Hessian changes little from one Newton iteration to the
next, so what the last CG learned of it, the directions the data's preconditioner gets worst,
carries over. Fashion-MNIST standardized at C = 0.01, passes to F* (1 + 1e-6) without pairs and
with 10: 364 -> 305 on all 60,000 rows, 172 -> 149 on 10,000 (with N&W's forcing term 770 -> 553
and 155 -> 131). Not a gain everywhere: standardized digits, Hessian products to max |g| <= 1e-8
with N&W's term, 43 -> 46 at C = 0.01, 139 -> 159 at C = 1, 747 -> 666 at C = 100.
"""

from __future__ import annotations

import math

import numpy as np

from ..engines import engine_for
from ..engines.array_api import to_numpy
from ..errors import InvalidArgumentError
from .base import Function, FullBatchSolver, like, register, require_float64, state_array, state_scalars
from .lbfgs import two_loop

__all__ = ["NewtonCG", "DEFAULT_CG_PAIRS", "forcing_term"]

DEFAULT_CG_PAIRS = 10
"""The last CG's pairs kept for the next one unless told (`cg_pairs`) or the data's preconditioner
says (`newton_pairs`). On 10,000 Fashion-MNIST rows, with N&W's forcing term, passes to F* (1 +
1e-6) with the last 5 / 10 / 20 pairs: 128 / 131 / 127 (20 spread evenly over the CG: 123; none: 155)."""


def forcing_term(g_norm: float, last: tuple[float, float] | None) -> float:
    """eta for the gradient norm g_norm, given the last iteration's (gradient norm, eta) (None at the
    first): Eisenstat and Walker's choice 2 with gamma = 0.9, alpha = 2, their safeguard, at most 0.5."""
    if last is None:
        return 0.5
    g_last, eta_last = last
    eta = 0.9 * (g_norm / g_last) ** 2
    if 0.9 * eta_last ** 2 > 0.1:                # a sudden drop of |g| alone does not make the CG exact
        eta = max(eta, 0.9 * eta_last ** 2)
    return min(eta, 0.5)


@register
class NewtonCG(FullBatchSolver):
    """Truncated Newton: CG on exact Hessian-vector products, the shared strong Wolfe line search.

    `hessian_products` counts the products and `curvatures` the passes that measured A (passes over
    the data besides the `evaluations` of F and its gradient). `pairs`, the last CG's last
    `cg_pairs` (d, H d, 1 / d'Hd), newest first, precondition the next CG (0: none kept);
    `forcing`, the last iteration's (|g|, eta), sets the next forcing term. `step` returns False, x
    unchanged, when the line search finds no point that lowers F (flat to rounding).
    """
    name, uses_preconditioner = "newton-cg", True

    def __init__(self, *, max_cg: int = 200, cg_pairs: int | None = None, **line_search):
        for name, value, low in (("max_cg", max_cg, 1), ("cg_pairs", cg_pairs, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise InvalidArgumentError(f"{name}: expected an integer >= {low}, got {value!r}")
        super().__init__(**line_search)
        self.max_cg, self.requested_pairs = max_cg, cg_pairs
        self.pairs, self.forcing = [], None
        self.hessian_products = 0
        self.curvatures = 0                 # passes that measured the preconditioner at x (one an iteration)

    def start(self, x0, fun: Function) -> None:
        super().start(x0, fun)
        self.pairs, self.forcing = [], None

    @property
    def cg_pairs(self) -> int:
        """The pairs kept: `cg_pairs` if given, else the preconditioner's `newton_pairs`, else
        DEFAULT_CG_PAIRS."""
        if self.requested_pairs is not None:
            return self.requested_pairs
        return getattr(self.preconditioner, "newton_pairs", DEFAULT_CG_PAIRS)

    def _hessian(self, fun: Function, v):
        self.hessian_products += 1
        return fun.hessian_product(self.x, v)

    def newton_direction(self, fun: Function):
        """p with H p ~ -g by (preconditioned) conjugate gradients, to the forcing term's accuracy."""
        xp = engine_for(self.g).xp
        g_norm = math.sqrt(float(self.g @ self.g))
        self.forcing = (g_norm, forcing_term(g_norm, self.forcing))
        target = self.forcing[1] * g_norm
        data = lambda r: r                                    # noqa: E731
        if self.preconditioner is not None:
            self.curvatures += 1
            data = self.preconditioner.newton(fun, self.x)
        last, self.pairs, keep = self.pairs, [], self.cg_pairs

        def precondition(r):
            return two_loop(xp.asarray(r, copy=True), last, data) if last else data(r)
        p, r = xp.zeros_like(self.g), -self.g                 # r = -g - H p, the residual
        z = precondition(r)
        d, rz = z, float(r @ z)
        for i in range(self.max_cg):
            Hd = self._hessian(fun, d)
            curvature = float(d @ Hd)
            if not curvature > 0:                             # negative or no curvature along d
                return d if i == 0 else p
            if keep:
                self.pairs = [(d, Hd, 1.0 / curvature), *self.pairs[:keep - 1]]
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
        width = self.x.shape[0]
        S, Y = (np.array([to_numpy(pair[j]) for pair in self.pairs]).reshape(-1, width) for j in (0, 1))
        return {**self.point_state(), "hessian_products": self.hessian_products, "curvatures": self.curvatures,
                "S": S, "Y": Y, "forcing": None if self.forcing is None else list(self.forcing)}

    def load_state_dict(self, state: dict, params) -> None:
        p = self.load_point_state(state, params)
        self.hessian_products, self.curvatures = state_scalars(state, hessian_products=int, curvatures=int)
        kept = np.shape(to_numpy(state.get("S", np.zeros((0, p)))))[0]
        S, Y = (require_float64(like(state_array(state, key, (kept, p)), params[0], np.float64), self.name)
                if kept else [] for key in ("S", "Y"))
        self.pairs = [(S[j, ...], Y[j, ...], 1.0 / float(S[j, ...] @ Y[j, ...])) for j in range(kept)]
        (self.forcing,) = state_scalars({"forcing": state.get("forcing")},
                                        forcing=lambda f: None if f is None else (float(f[0]), float(f[1])))
