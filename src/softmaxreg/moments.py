"""Per-feature moments of the scaled inputs s X, for standardization (the engine sums them)."""

from __future__ import annotations

import numpy as np

from .engines import engine_for

__all__ = ["feature_moments", "moments_from_sums"]


def feature_moments(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (d,) float64 NumPy arrays of the scaled inputs s X
    (n, d), from float64 sums over row chunks in order (Engine.moment_sums), whatever library X is of."""
    return moments_from_sums(engine_for(X).moment_sums(X, model.input_scale), X.shape[0])


def moments_from_sums(sums: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per feature from moment sums [sum s x, sum (s x)^2] (2, d) of n rows:
    std = sqrt(max(E[x^2] - mean^2, 0))."""
    mean = sums[0] / n
    return mean, np.sqrt(np.maximum(sums[1] / n - mean ** 2, 0.0))
