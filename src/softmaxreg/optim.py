"""Optimizers and learning-rate schedules: minibatch SGD with momentum, Nesterov momentum and
weight decay (PyTorch's conventions), and constant / step / cosine schedules with warm-up."""

from __future__ import annotations

import math

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["SGD", "LRSchedule", "SCHEDULES"]

SCHEDULES = ("constant", "step", "cosine")


def _finite(name: str, value, low: float, *, inclusive: bool = True, high: float = math.inf) -> float:
    value = float(value)
    if not math.isfinite(value) or value < low or (value == low and not inclusive) or value > high:
        raise InvalidArgumentError(f"{name}: expected a finite value {'>=' if inclusive else '>'} {low}"
                                   f"{f' and <= {high}' if high != math.inf else ''}, got {value}")
    return value


class SGD:
    """Minibatch SGD, in place. For each parameter p with gradient g:

        g <- g + weight_decay * p             (only where decay is on: the weights, not the bias)
        v <- momentum * v + g                 (v starts at 0)
        step = g + momentum * v  if nesterov else  v     (plain g when momentum is 0)
        p <- p - lr * step

    weight_decay is the L2 penalty (weight_decay / 2) |W|^2 added to the loss. With momentum 0,
    nesterov changes nothing (so a grid search may vary momentum alone).
    """

    def __init__(self, lr: float = 0.1, *, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        self.lr = _finite("lr", lr, 0.0, inclusive=False)
        self.momentum = _finite("momentum", momentum, 0.0, high=1.0)
        self.weight_decay = _finite("weight_decay", weight_decay, 0.0)
        self.nesterov = bool(nesterov)
        self.velocity: list[np.ndarray] | None = None

    def step(self, params, grads, decay=None) -> None:
        """Update each array in `params` in place; `grads` are overwritten. `decay[i]` says whether
        weight decay applies to params[i] (default: to all)."""
        if self.momentum and self.velocity is None:
            self.velocity = [np.zeros_like(p) for p in params]
        for i, (p, g) in enumerate(zip(params, grads)):
            if self.weight_decay and (decay is None or decay[i]):
                g += p.dtype.type(self.weight_decay) * p
            if self.momentum:
                v = self.velocity[i]
                v *= p.dtype.type(self.momentum)
                v += g
                if self.nesterov:
                    g += p.dtype.type(self.momentum) * v
                else:
                    g[...] = v
            g *= p.dtype.type(self.lr)
            p -= g


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
