"""Full-batch L-BFGS in float64 on any array library: the two-loop recursion, a preconditioner
from the data, and the strong Wolfe line search (line_search.py).

Its vectors stay in the parameters' library and device; only dot products come back as Python
floats. State dicts hold NumPy arrays whatever the library.
"""

from __future__ import annotations

import math

import numpy as np

from ..engines import engine_for
from ..engines.array_api import to_numpy
from ..errors import InvalidArgumentError
from .base import Function, FullBatchSolver, like, register, require_float64, state_array, state_scalars

__all__ = ["LBFGS", "DEFAULT_MEMORY", "two_loop"]

DEFAULT_MEMORY = 10
"""The pairs L-BFGS keeps unless told (`memory`) or its preconditioner says (`lbfgs_memory`): scipy's default."""


@register
class LBFGS(FullBatchSolver):
    """Full-batch L-BFGS (Nocedal and Wright, Numerical Optimization, 2nd ed., algorithms 7.4, 3.5, 3.6).

    The point x, the gradient g and the last `memory` pairs s = x_{t+1} - x_t, y = g_{t+1} - g_t
    are float64, whatever the model's dtype. Each iteration:

        d = -H g     two-loop recursion over the stored pairs, H_0 = (s'y / y'P y) P of the newest pair
        x <- x + alpha d   alpha from a line search meeting the strong Wolfe conditions
                           f(x + alpha d) <= f + c1 alpha g'd   and   |g(x + alpha d)'d| <= c2 |g'd|

    P is `preconditioner(q, s, y)`, a symmetric positive definite map q -> P q that may adapt to
    the newest pair (s, y) (None before the first), set by the caller as an approximate inverse
    Hessian; the identity when None. The full-batch driver sets the objective's
    (FullBatch.preconditioner), which cuts the iterations on correlated pixels several-fold. It is
    derived from the data and the stored pairs, not state: a resumed run sets it again.
    A pair is kept only if s'y > 0 (always true under the Wolfe conditions, kept as a guard against
    rounding), so H stays positive definite. The first step is scaled to length 1 of d.
    `step` returns False, leaving x as it was, when the line search finds no acceptable point (the
    objective is flat to rounding along d): further iterations cannot make progress.
    """
    name, uses_preconditioner = "lbfgs", True

    def __init__(self, *, memory: int | None = None, **line_search):
        bad = isinstance(memory, bool) or not isinstance(memory, (int, np.integer)) or memory < 1
        if memory is not None and bad:
            raise InvalidArgumentError(f"memory: expected an integer >= 1, got {memory!r}")
        super().__init__(**line_search)
        self.requested = None if memory is None else int(memory)
        self._keep(self.requested or DEFAULT_MEMORY)
        self.S = self.Y = None
        self.pairs = 0                 # pairs stored so far; the newest is row (pairs - 1) % memory
        self._preconditioner_state = None   # a checkpoint's state of P, given to P at the next step

    def _keep(self, memory: int) -> None:
        self.memory = memory
        self.rho = [0.0] * memory      # 1 / y's of each stored pair (rows of S and Y)

    def start(self, x0, fun: Function) -> None:
        """As FullBatchSolver's; the pairs kept are `memory` if given, else the preconditioner's
        `lbfgs_memory` (HessianDiagonal), else DEFAULT_MEMORY."""
        super().start(x0, fun)
        self._keep(self.requested or getattr(self.preconditioner, "lbfgs_memory", DEFAULT_MEMORY))
        self.S = self._zeros()
        self.Y = self._zeros()

    def _zeros(self):
        """(memory, p) float64 zeros in x's library and on its device."""
        return engine_for(self.x).zeros((self.memory, self.x.shape[0]))

    def direction(self) -> np.ndarray:
        """d = -H g by the two-loop recursion, newest pair first, H_0 = (s'y / y'Py) P."""
        q = -self.g
        kept = min(self.pairs, self.memory)
        order = [(self.pairs - 1 - j) % self.memory for j in range(kept)]       # newest to oldest
        newest = (self.S[order[0], ...], self.Y[order[0], ...]) if kept else (None, None)

        def initial(q):                                                   # H_0 q
            if self.preconditioner is not None:
                q = self.preconditioner(q, *newest)
            if kept:
                s, y = newest
                Py = y if self.preconditioner is None else self.preconditioner(y, s, y)
                q = q * (float(s @ y) / float(y @ Py))
            return q
        return two_loop(q, [(self.S[i, ...], self.Y[i, ...], self.rho[i]) for i in order], initial)

    def step(self, fun: Function) -> bool:
        """One iteration; False if the line search found no acceptable point (x unchanged)."""
        if self.preconditioner is not None:
            if self._preconditioner_state is not None:         # a resumed run: P as it was
                self.preconditioner.load_state_dict(self._preconditioner_state)
                self._preconditioner_state = None
            self.preconditioner.adapt(self.x)
        d = self.direction()
        slope = float(self.g @ d)
        if not slope < 0:                       # not a descent direction (rounding): restart from -g
            self.pairs, d = 0, -self.g
            slope = float(self.g @ d)
        alpha0 = 1.0 if self.pairs else min(1.0, 1.0 / math.sqrt(-slope))
        found = self.line_search(fun, d, slope, alpha0)
        if found is None:
            return False
        alpha, f, g, extra = found
        s, y = alpha * d, g - self.g
        if float(s @ y) > 1e-10 * float(y @ y):
            row = self.pairs % self.memory
            engine = engine_for(self.S)
            self.S, self.Y = engine.set_row(self.S, row, s), engine.set_row(self.Y, row, y)
            self.rho[row] = self._rho(row)
            self.pairs += 1
        self.x = self.x + s
        self.f, self.g, self.extra = f, g, extra
        return True

    def _rho(self, row: int) -> float:
        return 1.0 / float(self.Y[row, ...] @ self.S[row, ...])

    def state_dict(self) -> dict:
        point = self.point_state()
        adapted = {} if self.preconditioner is None else self.preconditioner.state_dict()
        return {"x": point.pop("x"), "g": point.pop("g"), "S": to_numpy(self.S).copy(), "Y": to_numpy(self.Y).copy(),
                "f": point.pop("f"), "pairs": self.pairs, **point,
                **{f"preconditioner_{key}": value for key, value in adapted.items()}}

    def load_state_dict(self, state: dict, params) -> None:
        p = self.load_point_state(state, params)
        stored = np.shape(to_numpy(state.get("S", np.zeros((0, 0)))))
        self._keep(self.requested or (stored[0] if len(stored) == 2 and stored[0] >= 1 else DEFAULT_MEMORY))
        self.S, self.Y = (require_float64(like(state_array(state, key, (self.memory, p)), params[0], np.float64),
                                          self.name) for key in ("S", "Y"))
        (self.pairs,) = state_scalars(state, pairs=int)
        self._preconditioner_state = None
        if "preconditioner_diagonal" in state:             # HessianDiagonal's (the other preconditioners keep none)
            diagonal = state_array(state, "preconditioner_diagonal", (p,))
            (calls,) = state_scalars(state, preconditioner_calls=int)
            self._preconditioner_state = {"diagonal": diagonal, "calls": calls}
        self.rho = [self._rho(row) if row < self.pairs else 0.0 for row in range(self.memory)]


def two_loop(q, pairs, initial):
    """H q by the two-loop recursion (Nocedal and Wright, algorithm 7.4): H the inverse Hessian
    approximation from `pairs` [(s, y, 1 / s'y)], newest first, and the initial map `initial`
    (q -> H_0 q). q is the caller's to spend (NumPy: updated in place)."""
    add = _scaled_adder(q)
    alpha = []
    for s, y, rho in pairs:
        a = rho * float(s @ q)
        q = add(q, -a, y)                                                 # q - a y
        alpha.append(a)
    q = initial(q)
    for (s, y, rho), a in zip(reversed(pairs), reversed(alpha)):
        q = add(q, a - rho * float(y @ q), s)
    return q


def _scaled_adder(like):
    """add(q, a, v) -> q + a v for vectors shaped as `like`: for NumPy in place in q (which the caller
    owns) through one scratch vector, a v rounded first as in q + a * v, so the same bits without a
    new vector per term (at 2.4 M parameters, 20 of them an iteration); a new array for the other
    libraries (JAX's arrays are immutable)."""
    if engine_for(like).name != "numpy":
        return lambda q, a, v: q + a * v
    scratch = np.empty_like(like)

    def add(q, a, v):
        q += np.multiply(v, a, out=scratch)
        return q
    return add
