"""Learning-rate schedules for the minibatch solver: the schedule is the rate's only owner."""

from __future__ import annotations

import math

from ..errors import InvalidArgumentError
from .base import finite

__all__ = ["LRSchedule", "SCHEDULES"]

SCHEDULES = ("constant", "step", "cosine")


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
        self.base_lr = finite("lr", base_lr, 0.0, inclusive=False)
        self.kind = kind
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = int(epochs) * self.steps_per_epoch
        self.warmup_steps = round(finite("warmup_epochs", warmup_epochs, 0.0) * self.steps_per_epoch)
        if int(step_epochs) < 1:
            raise InvalidArgumentError(f"step_epochs: expected an integer >= 1, got {step_epochs}")
        self.step_epochs = int(step_epochs)
        self.gamma = finite("gamma", gamma, 0.0, inclusive=False, high=1.0)

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
