"""The minibatch iterator: one seeded shuffle per epoch, then contiguous slices."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["iterate_minibatches", "num_batches"]


def num_batches(n: int, batch_size: int) -> int:
    """Minibatches in one epoch over n examples (the last one may be smaller)."""
    return -(-n // batch_size)


def iterate_minibatches(X: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator,
                        *, shuffle: bool = True, buffers: tuple[np.ndarray, np.ndarray] | None = None):
    """Yield (X_batch, y_batch) views covering (X, y) once, in the order of rng.permutation(n).

    The rows are gathered once per epoch into `buffers` (same shapes and dtypes as X and y,
    allocated if not given): one pass of sequential copies instead of a random gather
    per step, and the batches are contiguous slices. Views are only valid until the
    next epoch reuses the buffers. X keeps its dtype (uint8 images stay uint8).
    """
    n = X.shape[0]
    if n != y.shape[0]:
        raise InvalidArgumentError(f"X and y: different numbers of examples ({n} and {y.shape[0]})")
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size: expected an integer >= 1, got {batch_size}")
    if shuffle:
        order = rng.permutation(n)
        Xs, ys = buffers if buffers is not None else (np.empty_like(X), np.empty_like(y))
        np.take(X, order, axis=0, out=Xs)
        np.take(y, order, axis=0, out=ys)
    else:
        Xs, ys = X, y
    for start in range(0, n, batch_size):
        yield Xs[start:start + batch_size], ys[start:start + batch_size]
