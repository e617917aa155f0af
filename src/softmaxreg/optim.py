"""Optimizers: minibatch stochastic gradient descent."""

from __future__ import annotations

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["SGD"]


class SGD:
    """Plain minibatch SGD: p <- p - lr * dp for each parameter, in place."""

    def __init__(self, lr: float = 0.1):
        if not np.isfinite(lr) or lr <= 0:
            raise InvalidArgumentError(f"lr: expected a finite learning rate > 0, got {lr}")
        self.lr = float(lr)

    def step(self, params, grads) -> None:
        """Update each array in `params` with its gradient; the gradients are overwritten."""
        for p, g in zip(params, grads):
            g *= p.dtype.type(self.lr)
            p -= g
