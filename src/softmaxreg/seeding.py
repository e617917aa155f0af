"""The seed rule: how one integer seed makes a whole run reproducible.

An integer seed N is split by `numpy.random.SeedSequence(N).spawn(2)` into two independent
streams: the first draws the model's initial weights (`SoftmaxRegression(..., seed=N)`), the
second the per-epoch shuffles and any early-stopping hold-out (`fit(..., seed=N)`). So

    model = SoftmaxRegression(784, 10, seed=N, ...); fit(model, X, y, seed=N, ...)

is exactly `softmaxreg train --seed N`: the same metrics.csv and the same weights, bit for bit.
A third child, `SeedSequence(N).spawn(3)[2]` (spawning more children leaves the first two as they
are), draws the classes of sampled softmax (sampled.py), so a sampled run shuffles as a full one.
A `numpy.random.Generator` passed instead is used as it is, for callers who manage their own.
"""

from __future__ import annotations

import numpy as np

__all__ = ["init_generator", "shuffle_generator", "sampler_generator"]


def _stream(seed, which: int) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(which + 1)[which])


def init_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """The generator of a model's initial weights for `seed` (the first stream of the rule)."""
    return _stream(seed, 0)


def shuffle_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """The generator of a run's shuffles and hold-out for `seed` (the second stream of the rule)."""
    return _stream(seed, 1)


def sampler_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """The generator of sampled softmax's classes for `seed` (the third stream)."""
    return _stream(seed, 2)
