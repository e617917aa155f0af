"""Engine: the kind of some arrays and the operations that differ by kind (engines/__init__.py
says which; sparse.py subclasses it)."""

from __future__ import annotations

import numpy as np

from .array_api import to_device, to_numpy
from .rows import iterate_rows

__all__ = ["Engine", "MOMENT_ROWS"]

MOMENT_ROWS = 4096
"""Rows summed at a time by `moment_sums`."""


class Engine:
    """The kind of some arrays (`name`: "numpy", "array_api", "dask", or "sparse" in sparse.py's
    subclass), their namespace xp (NumPy for Dask, whose blocks are NumPy arrays, and for sparse
    matrices) and device, and the operations that differ by kind."""

    def __init__(self, name: str, xp, device, streamed: bool = False):
        self.name, self.xp, self.device, self.streamed = name, xp, device, streamed

    def __repr__(self) -> str:
        return f"Engine({self.name!r}, {getattr(self.xp, '__name__', self.xp)}, {self.device!r})"

    def __eq__(self, other) -> bool:
        """Same kind, same library and same device: arrays of the two need no move to meet."""
        return isinstance(other, Engine) and (self.name, self.xp, self.device) == (other.name, other.xp, other.device)

    __hash__ = None

    @property
    def generic(self) -> bool:
        """True when the formulas run as written in generic.py on chunks of this engine's rows (other
        array libraries, sparse matrices), False for NumPy's fused kernels and Dask's blocks."""
        return self.name in ("array_api", "sparse")

    @property
    def in_process(self) -> bool:
        """True for NumPy arrays of this process (in memory or memory-mapped): the fast path."""
        return self.name == "numpy"

    def asarray(self, a, dtype=None):
        """`a` (any library's array, or None) as an array of this engine's library on its device."""
        return to_device(a, np if self.name == "dask" else self.xp, self.device, dtype=dtype)

    def zeros(self, shape: tuple, dtype=None):
        """Zeros (float64 by default) of this engine's library on its device."""
        xp = np if self.name == "dask" else self.xp
        return xp.zeros(shape, dtype=xp.float64 if dtype is None else dtype, device=self.device)

    def set_row(self, A, row: int, v):
        """A with row `row` set to v: in place for NumPy, a new array for the other libraries (JAX's
        arrays are immutable; array-api-extra's `at`)."""
        if self.name != "array_api":
            A[row] = v
            return A
        import array_api_extra as xpx
        return xpx.at(A)[row, ...].set(v)

    def take(self, a, index: np.ndarray):
        """a[index] for host row indices, in a's library (None stays None)."""
        if a is None or self.name != "array_api":
            return None if a is None else a[index]
        return self.xp.take(a, self.xp.asarray(index, device=self.device), axis=0)

    def float_rows(self, X, start: int, stop: int, dtype):
        """Rows [start, stop) of X (n, d) as floats of `dtype`, in X's library."""
        return self.xp.astype(X[start:stop, ...], dtype, copy=False)

    def magnitudes(self, x) -> tuple[float, float]:
        """(max |x|, root mean square of x) over all entries of a float array x (not empty)."""
        xp = self.xp
        return float(xp.max(xp.abs(x))), float(xp.sqrt(xp.mean(x * x)))

    def moment_sums(self, X, scale: float) -> np.ndarray:
        """[sum_i s x_i, sum_i (s x_i)^2] (2, d) float64 over X (n, d), MOMENT_ROWS rows at a time in
        order (parts add up); a memory map or a Dask array is streamed (datasets.blocks.iterate_rows)."""
        if self.name == "array_api":                       # summed on the device
            xp, total, total_sq = self.xp, 0.0, 0.0
            for start in range(0, X.shape[0], MOMENT_ROWS):
                chunk = xp.astype(X[start:min(start + MOMENT_ROWS, X.shape[0]), ...], xp.float64) * scale
                total, total_sq = total + xp.sum(chunk, axis=0), total_sq + xp.sum(xp.square(chunk), axis=0)
            return np.stack([to_numpy(total), to_numpy(total_sq)])
        sums = np.zeros((2, X.shape[1]))
        for _, _, block in iterate_rows(X, MOMENT_ROWS):
            chunk = block.astype(np.float64) * scale
            sums[0] += chunk.sum(axis=0)
            sums[1] += np.square(chunk).sum(axis=0)
        return sums
