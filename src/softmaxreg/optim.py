"""Optimizers and learning-rate schedules.

An optimizer is one class registered in OPTIMIZERS under its `name`; `full_batch` tells `fit`
which driver runs it (minibatch steps, or whole-data iterations). Its state (`state_dict()`:
arrays and JSON values only) goes into checkpoints, so a resumed run continues bit for bit.

- SGD: minibatch steps with momentum and Nesterov momentum (PyTorch's conventions). The rate
  comes from the LRSchedule at every step: the schedule is the rate's only owner.
- LBFGS: full-batch limited-memory BFGS (two-loop recursion, strong Wolfe line search) in float64.

Both run on NumPy arrays and, unchanged in their math, on any array API library's (generic.py):
SGD.updated returns new parameters instead of updating in place (JAX); L-BFGS keeps its vectors
in the parameters' library and device, only dot products come back as Python floats. State dicts
hold NumPy arrays whatever the library; load_state_dict moves them to the parameters'.

The L2 penalty is part of the objective (objective.py), not of any optimizer.
"""

from __future__ import annotations

import math
from typing import Callable, ClassVar

import numpy as np

from .backends import device_of, dtype_name, is_numpy, namespace, to_device, to_numpy
from .errors import InvalidArgumentError

__all__ = ["Optimizer", "SGD", "LBFGS", "OPTIMIZERS", "register", "LRSchedule", "SCHEDULES"]

SCHEDULES = ("constant", "step", "cosine")


def _finite(name: str, value, low: float, *, inclusive: bool = True, high: float = math.inf) -> float:
    value = float(value)
    if not math.isfinite(value) or value < low or (value == low and not inclusive) or value > high:
        raise InvalidArgumentError(f"{name}: expected a finite value {'>=' if inclusive else '>'} {low}"
                                   f"{f' and <= {high}' if high != math.inf else ''}, got {value}")
    return value


class Optimizer:
    """A solver over the model's parameters.

    `name` is the key in OPTIMIZERS (`--solver NAME`); `full_batch` selects the driver in `fit`;
    the full-batch driver gives an optimizer that `uses_preconditioner` the data's preconditioner.
    `from_config(config)` builds one from a TrainConfig, refusing options it would ignore.
    `state_dict()` returns arrays and JSON values only; `load_state_dict` restores them exactly.
    """
    name: ClassVar[str]
    full_batch: ClassVar[bool]
    uses_preconditioner: ClassVar[bool] = False

    @classmethod
    def from_config(cls, config) -> "Optimizer":
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict, params) -> None:
        """Restore `state_dict()`'s output for `params` (the model's W, b); InvalidArgumentError if it
        does not fit them."""
        raise NotImplementedError


OPTIMIZERS: dict[str, type[Optimizer]] = {}


def register(cls: type[Optimizer]) -> type[Optimizer]:
    """Class decorator: make `cls` available as `fit(..., solver=cls.name)` and `--solver`."""
    OPTIMIZERS[cls.name] = cls
    return cls


def _float64(a):
    """`a`, checked to be float64: L-BFGS's vectors are, whatever the library (JAX without x64 would
    silently give float32)."""
    if dtype_name(a.dtype) != "float64":
        raise InvalidArgumentError("solver lbfgs: keeps float64 vectors, which this library lacks "
                                   "(jax: set jax.config.update('jax_enable_x64', True))")
    return a


def _state_array(state: dict, key: str, shape: tuple) -> np.ndarray:
    if key not in state:
        raise InvalidArgumentError(f"optimizer state: {key!r} is missing")
    a = np.array(to_numpy(state[key]))
    if a.shape != shape or not np.isfinite(a).all():
        raise InvalidArgumentError(f"optimizer state {key!r}: expected finite values of shape {shape}, got {a.shape}")
    return a


@register
class SGD(Optimizer):
    """Minibatch SGD, in place. For each parameter p with gradient g and the step's rate lr:

        v <- momentum * v + g                 (v starts at 0)
        step = g + momentum * v  if nesterov else  v     (plain g when momentum is 0)
        p <- p - lr * step

    With momentum 0, nesterov changes nothing (so a grid search may vary momentum alone).
    """
    name, full_batch = "sgd", False

    def __init__(self, *, momentum: float = 0.0, nesterov: bool = False):
        self.momentum = _finite("momentum", momentum, 0.0, high=1.0)
        self.nesterov = bool(nesterov)
        self.velocity: list[np.ndarray] | None = None

    @classmethod
    def from_config(cls, config) -> "SGD":
        return cls(momentum=config.momentum, nesterov=config.nesterov)

    def step(self, params, grads, lr: float) -> None:
        """Update each array in `params` in place at rate `lr`; `grads` are overwritten."""
        if self.momentum and self.velocity is None:
            self.velocity = [np.zeros_like(p) for p in params]
        for i, (p, g) in enumerate(zip(params, grads)):
            if self.momentum:
                v = self.velocity[i]
                v *= p.dtype.type(self.momentum)
                v += g
                if self.nesterov:
                    g += p.dtype.type(self.momentum) * v
                else:
                    g[...] = v
            g *= p.dtype.type(lr)
            p -= g

    def updated(self, params, grads, lr: float) -> list:
        """`step` for the generic path: the new parameters, nothing updated in place (the velocity
        is rebound), the same formulas."""
        if self.momentum and self.velocity is None:
            self.velocity = [namespace(g).zeros_like(g) for g in grads]
        steps = grads
        if self.momentum:
            self.velocity = [self.momentum * v + g for v, g in zip(self.velocity, grads)]
            steps = [g + self.momentum * v for g, v in zip(grads, self.velocity)] if self.nesterov else self.velocity
        return [p - lr * g for p, g in zip(params, steps)]

    def state_dict(self) -> dict:
        return {f"velocity_{i}": to_numpy(v).copy() for i, v in enumerate(self.velocity or ())}

    def load_state_dict(self, state: dict, params) -> None:
        if state:
            self.velocity = [_like(_state_array(state, f"velocity_{i}", tuple(p.shape)), p, p.dtype)
                             for i, p in enumerate(params)]
        else:
            self.velocity = None


def _like(a: np.ndarray, p, dtype):
    """NumPy array `a` as `dtype` in p's library and on its device."""
    return a.astype(dtype) if is_numpy(p) else to_device(a, namespace(p), device_of(p), dtype=dtype)


Function = Callable[[np.ndarray], tuple]
"""fun(x) -> (f, g, extra): the objective at the flat float64 point x, its gradient (float64, x's
shape) and anything the caller wants back for the accepted point (LBFGS keeps it as `extra`)."""


@register
class LBFGS(Optimizer):
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
    name, full_batch, uses_preconditioner = "lbfgs", True, True
    REFUSED_OPTIONS = ("epochs", "batch_size", "lr", "momentum", "nesterov", "schedule", "warmup_epochs",
                       "step_epochs", "gamma", "early_stopping", "validation_fraction", "patience", "converge", "shuffle")
    """TrainConfig fields of minibatch SGD: given with L-BFGS they are refused, never ignored."""

    def __init__(self, *, memory: int = 10, c1: float = 1e-4, c2: float = 0.9, max_evaluations: int = 30):
        if isinstance(memory, bool) or not isinstance(memory, (int, np.integer)) or memory < 1:
            raise InvalidArgumentError(f"memory: expected an integer >= 1, got {memory!r}")
        if not 0 < c1 < c2 < 1:
            raise InvalidArgumentError(f"line search: expected 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")
        self.memory, self.c1, self.c2, self.max_evaluations = int(memory), float(c1), float(c2), int(max_evaluations)
        self.x = self.g = self.S = self.Y = None
        self.f = math.nan
        self.pairs = 0                 # pairs stored so far; the newest is row (pairs - 1) % memory
        self.evaluations = 0
        self.extra = None
        self.preconditioner: Callable[[np.ndarray], np.ndarray] | None = None

    @classmethod
    def from_config(cls, config) -> "LBFGS":
        defaults = type(config)()
        given = [name for name in cls.REFUSED_OPTIONS if getattr(config, name) != getattr(defaults, name)]
        if given:
            raise InvalidArgumentError(f"{given[0]}: applies to SGD only, not to the L-BFGS solver")
        return cls()

    def start(self, x0, fun: Function) -> None:
        """Evaluate the objective at the initial point x0 (flat; its library and device are kept)."""
        if is_numpy(x0):
            self.x = np.array(x0, dtype=np.float64).ravel()
        else:
            xp = namespace(x0)
            self.x = _float64(xp.reshape(xp.astype(x0, xp.float64), (-1,)))
        self.f, self.g, self.extra = self._evaluate(fun, self.x)
        self.S = self._zeros()
        self.Y = self._zeros()

    def _zeros(self):
        """(memory, p) float64 zeros in x's library and on its device."""
        if is_numpy(self.x):
            return np.zeros((self.memory, self.x.size))
        xp = namespace(self.x)
        return xp.zeros((self.memory, self.x.shape[0]), dtype=xp.float64, device=device_of(self.x))

    def grad_max(self) -> float:
        """max_i |g_i|: the stopping test (scipy's pgtol rule) compares it with tol."""
        xp = namespace(self.g)
        return float(xp.max(xp.abs(self.g)))

    def _evaluate(self, fun: Function, x):
        self.evaluations += 1
        f, g, extra = fun(x)
        return float(f), np.asarray(g, dtype=np.float64) if is_numpy(g) else g, extra

    def direction(self) -> np.ndarray:
        """d = -H g by the two-loop recursion, newest pair first, H_0 = (s'y / y'Py) P."""
        q = -self.g
        kept = min(self.pairs, self.memory)
        order = [(self.pairs - 1 - j) % self.memory for j in range(kept)]       # newest to oldest
        rho = [1.0 / float(self.Y[i, ...] @ self.S[i, ...]) for i in order]
        alpha = []
        for r, i in zip(rho, order):              # no in-place updates: the generic path may hold JAX arrays
            a = r * float(self.S[i, ...] @ q)
            q = q - a * self.Y[i, ...]
            alpha.append(a)
        newest = (self.S[order[0], ...], self.Y[order[0], ...]) if kept else (None, None)
        if self.preconditioner is not None:
            q = self.preconditioner(q, *newest)
        if kept:
            s, y = newest
            Py = y if self.preconditioner is None else self.preconditioner(y, s, y)
            q = q * (float(s @ y) / float(y @ Py))
        for r, i, a in zip(reversed(rho), reversed(order), reversed(alpha)):
            q = q + (a - r * float(self.Y[i, ...] @ q)) * self.S[i, ...]
        return q

    def step(self, fun: Function) -> bool:
        """One iteration; False if the line search found no acceptable point (x unchanged)."""
        d = self.direction()
        slope = float(self.g @ d)
        if not slope < 0:                       # not a descent direction (rounding): restart from -g
            self.pairs, d = 0, -self.g
            slope = float(self.g @ d)
        alpha0 = 1.0 if self.pairs else min(1.0, 1.0 / math.sqrt(-slope))
        found = self._line_search(fun, d, slope, alpha0)
        if found is None:
            return False
        alpha, f, g, extra = found
        s, y = alpha * d, g - self.g
        if float(s @ y) > 1e-10 * float(y @ y):
            row = self.pairs % self.memory
            self.S, self.Y = _set_row(self.S, row, s), _set_row(self.Y, row, y)
            self.pairs += 1
        self.x = self.x + s
        self.f, self.g, self.extra = f, g, extra
        return True

    def _line_search(self, fun: Function, d: np.ndarray, slope: float, alpha: float):
        """Strong Wolfe line search (N&W algorithm 3.5, zoom 3.6 with safeguarded cubic steps).
        Returns (alpha, f, g, extra) of the accepted point; if the interval collapses or the
        evaluations run out first, the best point with sufficient decrease found, else None."""
        f0, c1, c2 = self.f, self.c1, self.c2
        evaluations = 0

        def phi(a):
            nonlocal evaluations
            evaluations += 1
            f, g, extra = self._evaluate(fun, self.x + a * d)
            return f, float(g @ d), (g, extra)

        lo, lo_payload = (0.0, f0, slope), None     # (alpha, f, f') of the best point with sufficient decrease
        hi = None
        while evaluations < self.max_evaluations:
            if hi is None:
                f, df, payload = phi(alpha)
                if not (math.isfinite(f) and f <= f0 + c1 * alpha * slope and (lo[0] == 0.0 or f < lo[1])):
                    hi = (alpha, f, df)
                elif abs(df) <= -c2 * slope:
                    return alpha, f, *payload
                elif df >= 0:
                    hi, (lo, lo_payload) = lo, ((alpha, f, df), payload)
                else:
                    (lo, lo_payload), alpha = ((alpha, f, df), payload), 2.0 * alpha
                    continue
            else:                               # zoom: the interval between lo and hi holds a Wolfe point
                alpha = _cubic_step(lo, hi)
                if abs(alpha - lo[0]) <= 1e-12 * max(abs(alpha), 1e-300):
                    break
                f, df, payload = phi(alpha)
                if not (math.isfinite(f) and f <= f0 + c1 * alpha * slope and f < lo[1]):
                    hi = (alpha, f, df)
                elif abs(df) <= -c2 * slope:
                    return alpha, f, *payload
                else:
                    if df * (hi[0] - lo[0]) >= 0:
                        hi = lo
                    lo, lo_payload = (alpha, f, df), payload
            if hi is not None and abs(hi[0] - lo[0]) <= 1e-14 * max(lo[0], hi[0]):
                break
        return (lo[0], lo[1], *lo_payload) if lo_payload is not None else None

    def state_dict(self) -> dict:
        x, g, S, Y = (to_numpy(a).copy() for a in (self.x, self.g, self.S, self.Y))
        return {"x": x, "g": g, "S": S, "Y": Y, "f": self.f,
                "pairs": self.pairs, "evaluations": self.evaluations,
                "extra": self.extra}

    def load_state_dict(self, state: dict, params) -> None:
        p = sum(math.prod(a.shape) for a in params)
        self.x, self.g = _state_array(state, "x", (p,)), _state_array(state, "g", (p,))
        self.S, self.Y = _state_array(state, "S", (self.memory, p)), _state_array(state, "Y", (self.memory, p))
        self.x, self.g, self.S, self.Y = (_float64(_like(a, params[0], np.float64))
                                          for a in (self.x, self.g, self.S, self.Y))
        try:
            self.f, self.extra = float(state["f"]), state["extra"]
            self.pairs, self.evaluations = int(state["pairs"]), int(state["evaluations"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidArgumentError(f"optimizer state: {e!r}") from None


def _set_row(A, row: int, v):
    """A with row `row` set to v: in place for NumPy, a new array on the generic path (JAX)."""
    if is_numpy(A):
        A[row] = v
        return A
    import array_api_extra as xpx
    return xpx.at(A)[row, ...].set(v)


def _cubic_step(lo: tuple, hi: tuple) -> float:
    """The minimiser of the cubic through (alpha, f, f') at lo and hi, kept at least a tenth of the
    interval away from both ends; bisection when the cubic is unusable (no real minimiser, inf)."""
    (a, fa, da), (b, fb, db) = lo, hi
    low, high = min(a, b), max(a, b)
    margin = 0.1 * (high - low)
    if math.isfinite(fb) and math.isfinite(db):
        d1 = da + db - 3 * (fa - fb) / (a - b)
        disc = d1 * d1 - da * db
        if disc >= 0:
            d2 = math.copysign(math.sqrt(disc), b - a)
            denom = db - da + 2 * d2
            if denom != 0:
                x = b - (b - a) * (db + d2 - d1) / denom
                if math.isfinite(x) and low + margin <= x <= high - margin:
                    return x
    return 0.5 * (a + b)

class LRSchedule:
    """The learning rate at each optimizer step (0-based, counted over the whole run).

    constant: base_lr;  step: base_lr * gamma ** (epoch // step_epochs);
    cosine:   base_lr * (1 + cos(pi * t / T)) / 2, t and T counted after the warm-up, so it
              reaches 0 at the last step;
    warm-up:  during the first warmup_epochs (may be fractional) the rate rises linearly,
              base_lr * (step + 1) / warmup_steps, before the schedule starts.
    """

    def __init__(self, base_lr: float, kind: str = "constant", *, steps_per_epoch: int, epochs: int,
                 warmup_epochs: float = 0.0, step_epochs: int = 10, gamma: float = 0.1):
        if kind not in SCHEDULES:
            raise InvalidArgumentError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {kind!r}")
        self.base_lr = _finite("lr", base_lr, 0.0, inclusive=False)
        self.kind = kind
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = int(epochs) * self.steps_per_epoch
        self.warmup_steps = round(_finite("warmup_epochs", warmup_epochs, 0.0) * self.steps_per_epoch)
        if int(step_epochs) < 1:
            raise InvalidArgumentError(f"step_epochs: expected an integer >= 1, got {step_epochs}")
        self.step_epochs = int(step_epochs)
        self.gamma = _finite("gamma", gamma, 0.0, inclusive=False, high=1.0)

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant" and not self.warmup_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "step":
            return self.base_lr * self.gamma ** ((step // self.steps_per_epoch) // self.step_epochs)
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps - 1, 1)
            return self.base_lr * 0.5 * (1 + math.cos(math.pi * min(step - self.warmup_steps, span) / span))
        return self.base_lr
