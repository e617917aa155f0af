"""What every solver is: the base class, the registry, the options each one declares, and the
helpers their checkpoints share.

A solver is one module in this folder: a class registered in OPTIMIZERS under its `name`, whose
`full_batch` tells `fit` which driver runs it (minibatch steps, or whole-data iterations) and whose
`options` declare the training options (TrainConfig fields) it takes and what each means for it.
Every other solver's option, given with a value other than its default, is refused, never ignored
(`from_config`); the command line and the scikit-learn estimator read the same declarations. Its
state (`state_dict()`: arrays and JSON values only) goes into checkpoints, so a resumed run
continues bit for bit. The L2 penalty is part of the objective (objective.py), not of any solver.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar

import numpy as np

from ..engines import engine_for
from ..engines.array_api import dtype_name, to_numpy
from ..errors import InvalidArgumentError
from .line_search import strong_wolfe

__all__ = ["Optimizer", "FullBatchSolver", "OPTIMIZERS", "register", "solver_options", "refused_options", "finite"]

Function = Callable[[object], tuple]
"""fun(x) -> (f, g, extra): the objective at the flat float64 point x, its gradient (float64, x's
shape) and anything the caller wants back for the accepted point (kept as the solver's `extra`).
A full-batch `fun` also has `hessian_product(x, v)` -> H v and `preconditioner()`."""


class Optimizer:
    """A solver over the model's parameters.

    `name` is the key in OPTIMIZERS (`--solver NAME`); `full_batch` selects the driver in `fit`;
    the full-batch driver gives a solver that `uses_preconditioner` the data's preconditioner.
    `options` maps each TrainConfig field the solver reads to its meaning for this solver (the
    fields every solver reads, COMMON_OPTIONS, are not listed). `from_config(config)` refuses the
    options of other solvers and builds one (`build`). `state_dict()` returns arrays and JSON
    values only; `load_state_dict` restores them exactly.
    """
    name: ClassVar[str]
    full_batch: ClassVar[bool]
    uses_preconditioner: ClassVar[bool] = False
    options: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_config(cls, config) -> "Optimizer":
        given = refused_options(cls.name, config)
        if given:
            takers = [name for name, solver in OPTIMIZERS.items() if given[0] in solver.options]
            raise InvalidArgumentError(f"{given[0]}: applies to solver {' or '.join(takers)}, "
                                       f"not to the {cls.name} solver (it takes {', '.join(cls.options)})")
        return cls.build(config)

    @classmethod
    def build(cls, config) -> "Optimizer":
        """A new solver with the settings of `config` (already checked)."""
        return cls()

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


def solver_options() -> dict[str, dict[str, str]]:
    """{option: {solver name: its meaning there}} over every registered solver."""
    table: dict[str, dict[str, str]] = {}
    for name, solver in OPTIMIZERS.items():
        for option, meaning in solver.options.items():
            table.setdefault(option, {})[name] = meaning
    return table


def refused_options(solver: str, config) -> list[str]:
    """The TrainConfig fields that some solver takes, `solver` does not, and `config` sets to a value
    other than the default: the options `solver` would ignore."""
    defaults = {field.name: field.default for field in dataclasses.fields(config)}
    return [option for option in solver_options() if option not in OPTIMIZERS[solver].options
            and getattr(config, option) != defaults[option]]


def finite(name: str, value, low: float, *, inclusive: bool = True, high: float = math.inf) -> float:
    """`value` as a float, checked to be finite and in [low, high] (low excluded unless inclusive)."""
    value = float(value)
    if not math.isfinite(value) or value < low or (value == low and not inclusive) or value > high:
        raise InvalidArgumentError(f"{name}: expected a finite value {'>=' if inclusive else '>'} {low}"
                                   f"{f' and <= {high}' if high != math.inf else ''}, got {value}")
    return value


def float64_vector(x0, solver: str):
    """x0 as a flat float64 vector in its library and on its device; InvalidArgumentError for a
    library without float64 (JAX without x64 would silently give float32)."""
    xp = engine_for(x0).xp
    return require_float64(xp.reshape(xp.astype(x0, xp.float64), (-1,)), solver)


def require_float64(a, solver: str):
    """`a`, checked to be float64: full-batch solvers keep float64 vectors, whatever the library."""
    if dtype_name(a.dtype) != "float64":
        raise InvalidArgumentError(f"solver {solver}: keeps float64 vectors, which this library lacks "
                                   "(jax: set jax.config.update('jax_enable_x64', True))")
    return a


def state_array(state: dict, key: str, shape: tuple) -> np.ndarray:
    """state[key] as a NumPy array, checked to be finite and of `shape`."""
    if key not in state:
        raise InvalidArgumentError(f"optimizer state: {key!r} is missing")
    a = np.array(to_numpy(state[key]))
    if a.shape != shape or not np.isfinite(a).all():
        raise InvalidArgumentError(f"optimizer state {key!r}: expected finite values of shape {shape}, got {a.shape}")
    return a


def like(a: np.ndarray, p, dtype):
    """NumPy array `a` as `dtype` in p's library and on its device."""
    return engine_for(p).asarray(a, dtype=dtype)


def state_scalars(state: dict, **kinds) -> list:
    """[kind(state[name]) for name, kind in kinds]; InvalidArgumentError naming what is wrong."""
    try:
        return [kind(state[name]) for name, kind in kinds.items()]
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidArgumentError(f"optimizer state: {e!r}") from None


GRADIENT_TOL = "stop when max |gradient| <= tol (scipy's pgtol rule)"


class FullBatchSolver(Optimizer):
    """What the full-batch solvers share: the float64 point x, its objective f, gradient g and the
    caller's `extra`, the stopping test, and the strong Wolfe line search (line_search.py).
    Subclasses define `step(fun) -> bool` (False when the line search found no point that lowers
    the objective: x unchanged) and add their own state to `state_dict`."""
    full_batch = True
    options = {"max_iter": "most iterations (default 500)", "tol": GRADIENT_TOL}

    def __init__(self, *, c1: float = 1e-4, c2: float = 0.9, max_evaluations: int = 30):
        if not 0 < c1 < c2 < 1:
            raise InvalidArgumentError(f"line search: expected 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")
        self.c1, self.c2, self.max_evaluations = float(c1), float(c2), int(max_evaluations)
        self.x = self.g = self.extra = None
        self.f = math.nan
        self.evaluations = 0
        self.preconditioner = None

    def start(self, x0, fun: Function) -> None:
        """Evaluate the objective at the initial point x0 (flat; its library and device are kept)."""
        self.x = float64_vector(x0, self.name)
        self.f, self.g, self.extra = self._evaluate(fun, self.x)

    def grad_max(self) -> float:
        """max_i |g_i|: the stopping test (scipy's pgtol rule) compares it with tol."""
        xp = engine_for(self.g).xp
        return float(xp.max(xp.abs(self.g)))

    def _evaluate(self, fun: Function, x):
        self.evaluations += 1
        f, g, extra = fun(x)
        return float(f), g, extra

    def line_search(self, fun: Function, d, slope: float, alpha: float):
        """(alpha, f, g, extra) of a strong Wolfe point along the descent direction d (slope = g'd),
        from the trial step alpha; None if there is none to be found."""
        def phi(a: float):
            f, g, extra = self._evaluate(fun, self.x + a * d)
            return f, float(g @ d), (g, extra)
        found = strong_wolfe(phi, self.f, slope, alpha, c1=self.c1, c2=self.c2, max_evaluations=self.max_evaluations)
        return None if found is None else (found[0], found[1], *found[2])

    def point_state(self) -> dict:
        """The state every full-batch solver keeps: x, g (NumPy copies), f, evaluations, extra."""
        return {"x": to_numpy(self.x).copy(), "g": to_numpy(self.g).copy(), "f": self.f,
                "evaluations": self.evaluations, "extra": self.extra}

    def load_point_state(self, state: dict, params) -> int:
        """Restore `point_state` for `params`; returns the number of parameters p."""
        p = sum(math.prod(a.shape) for a in params)
        self.x, self.g = (require_float64(like(state_array(state, key, (p,)), params[0], np.float64), self.name)
                          for key in ("x", "g"))
        self.f, self.extra, self.evaluations = state_scalars(state, f=float, extra=lambda e: e, evaluations=int)
        return p
