"""Minibatch SGD with momentum and Nesterov momentum (PyTorch's conventions), at the rate of an
LRSchedule (schedules.py) at every step.

It runs on NumPy arrays in place and, with the same formulas, on any array API library's arrays
(generic.py): `updated` returns new parameters instead (JAX arrays are immutable). State dicts
hold NumPy arrays whatever the library; load_state_dict moves them to the parameters'.
"""

from __future__ import annotations

import numpy as np

from ..engines import engine_for
from ..engines.array_api import to_numpy
from .base import Optimizer, finite, like, register, state_array

__all__ = ["SGD"]

_TOL = "least improvement of the loss for --early-stopping (held-out loss) or --converge (training loss)"


@register
class SGD(Optimizer):
    """Minibatch SGD, in place. For each parameter p with gradient g and the step's rate lr:

        v <- momentum * v + g                 (v starts at 0)
        step = g + momentum * v  if nesterov else  v     (plain g when momentum is 0)
        p <- p - lr * step

    With momentum 0, nesterov changes nothing (so a grid search may vary momentum alone).
    """
    name, full_batch = "sgd", False
    options = {"epochs": "passes over the training data", "batch_size": "examples per step",
               "lr": "the base learning rate", "momentum": "momentum factor", "nesterov": "Nesterov momentum",
               "schedule": "the learning-rate schedule", "warmup_epochs": "epochs of linear warm-up",
               "step_epochs": "epochs between rate drops of the step schedule", "gamma": "the step schedule's factor",
               "early_stopping": "hold out part of the training data and stop when its loss stops improving",
               "validation_fraction": "the fraction held out for early stopping",
               "patience": "epochs without improvement before stopping", "converge": "stop when the training loss stops improving",
               "shuffle": "the epoch order: full, blocks or auto", "tol": _TOL}

    def __init__(self, *, momentum: float = 0.0, nesterov: bool = False):
        self.momentum = finite("momentum", momentum, 0.0, high=1.0)
        self.nesterov = bool(nesterov)
        self.velocity: list[np.ndarray] | None = None

    @classmethod
    def build(cls, config) -> "SGD":
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
            self.velocity = [engine_for(g).xp.zeros_like(g) for g in grads]
        steps = grads
        if self.momentum:
            self.velocity = [self.momentum * v + g for v, g in zip(self.velocity, grads)]
            steps = [g + self.momentum * v for g, v in zip(grads, self.velocity)] if self.nesterov else self.velocity
        return [p - lr * g for p, g in zip(params, steps)]

    def state_dict(self) -> dict:
        return {f"velocity_{i}": to_numpy(v).copy() for i, v in enumerate(self.velocity or ())}

    def load_state_dict(self, state: dict, params) -> None:
        if state:
            self.velocity = [like(state_array(state, f"velocity_{i}", tuple(p.shape)), p, p.dtype)
                             for i, p in enumerate(params)]
        else:
            self.velocity = None

