"""What kind of array this is, asked without importing the libraries it may belong to: a Dask
array, a memory map (engines/__init__.py's engine_for decides the engine from these)."""

from __future__ import annotations

import mmap

import numpy as np

__all__ = ["is_dask", "mapping_of", "is_streamed"]


def is_dask(*arrays) -> bool:
    """True if any argument is a Dask array (without importing dask)."""
    return any(type(a).__module__.partition(".")[0] == "dask" and hasattr(a, "chunks") for a in arrays)


def mapping_of(array) -> mmap.mmap | None:
    """The mmap.mmap an ndarray's memory belongs to (np.memmap and np.frombuffer(mm) views), else None."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base if isinstance(base, mmap.mmap) else None


def is_streamed(array) -> bool:
    """True for data that are read from disk or computed as they are used: a memory map or a Dask array."""
    return is_dask(array) or (isinstance(array, np.ndarray) and mapping_of(array) is not None)
