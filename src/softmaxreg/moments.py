"""Per-feature moments of the scaled inputs s X, for standardization (the engine sums them)."""

from __future__ import annotations

import numpy as np

from .engines import engine_for
from .errors import InvalidArgumentError

__all__ = ["STANDARDIZE", "check_standardize", "standardization", "feature_moments", "moments_from_sums"]

STANDARDIZE = (False, True, "scale")
"""standardize=: False (features as they are), True (centre by the mean and divide by the standard
deviation), "scale" (divide by the standard deviation only, as scikit-learn's
StandardScaler(with_mean=False)): the one for sparse X, whose centring would make it dense."""


def check_standardize(value, sparse: bool = False):
    """`value` if it is one of STANDARDIZE (and not True for sparse data), else InvalidArgumentError."""
    if not (isinstance(value, (bool, np.bool_)) or value == "scale"):
        raise InvalidArgumentError(f"standardize: expected False, True or 'scale', got {value!r}")
    if sparse and value is True:
        raise InvalidArgumentError("standardize: centring sparse X would make it dense; use standardize='scale' "
                                   "(--standardize scale), which divides by the standard deviation without centring")
    return value


def standardization(model, X, how) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) for model.set_standardization from the rows X and standardize=`how` (True or
    "scale": the mean is then 0, the std still the centred one, as StandardScaler(with_mean=False))."""
    check_standardize(how, engine_for(X).name == "sparse")
    mean, std = feature_moments(model, X)
    return (np.zeros_like(mean) if how == "scale" else mean), std


def feature_moments(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (d,) float64 NumPy arrays of the scaled inputs s X
    (n, d), from float64 sums over row chunks in order (Engine.moment_sums), whatever library X is of."""
    return moments_from_sums(engine_for(X).moment_sums(X, model.input_scale), X.shape[0])


def moments_from_sums(sums: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per feature from moment sums [sum s x, sum (s x)^2] (2, d) of n rows:
    std = sqrt(max(E[x^2] - mean^2, 0))."""
    mean = sums[0] / n
    return mean, np.sqrt(np.maximum(sums[1] / n - mean ** 2, 0.0))
