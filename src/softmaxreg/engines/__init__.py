"""Engines: what differs between kinds of data, behind one door.

`engine_for(X, ...)` is the one place that asks what kind of array it was given. The answer is an
Engine, whose `name` is one of

    "numpy"      NumPy arrays in memory or memory-mapped (dense; products blocked by gemm.py)
    "array_api"  arrays of another array API library (torch, JAX, CuPy, array-api-strict) on their
                 device (array_api.py: moving arrays between libraries and devices)
    "dask"       Dask arrays chunked by rows, on any scheduler (dask.py: the fixed-order tree of
                 per-block sums; dask_cluster.py: clusters and the data sent to them)
    "sparse"     scipy.sparse matrices and arrays, held as CSR and read through their products
                 (sparse.py: never densified)

and which supplies the operations the layers above need without asking again: its namespace
`xp` and `device`, moving arrays there (`asarray`), rows by index (`take`), column sums and
second moments (`moment_sums`), float rows of a chunk (`float_rows`). Above this package nothing tests an array's type.
Dask and the other libraries are imported only when their arrays are met.
"""

from __future__ import annotations

import numpy as np

from .array_api import device_of, is_numpy, namespace
from .base import Engine
from .kinds import is_dask, is_streamed, mapping_of
from .sparse import SparseEngine, is_sparse

__all__ = ["Engine", "engine_for", "is_dask", "is_streamed", "has_sparse_blocks", "mapping_of"]


def has_sparse_blocks(X) -> bool:
    """True for a Dask array whose blocks are scipy.sparse matrices (its meta is one)."""
    return is_dask(X) and is_sparse(getattr(X, "_meta", None))


def engine_for(*arrays) -> Engine:
    """The engine of the arrays (None and Python scalars ignored): "dask" if any is a Dask array,
    "sparse" if any is a scipy.sparse matrix (the others: labels, weights, NumPy's), "numpy" if all are NumPy's (or plain Python values), else "array_api" on the first foreign
    array's namespace and device."""
    if is_dask(*arrays):
        return Engine("dask", np, "cpu", streamed=True)
    if any(is_sparse(a) for a in arrays):
        return SparseEngine()
    if is_numpy(*arrays):
        return Engine("numpy", np, "cpu", streamed=any(is_streamed(a) for a in arrays))
    foreign = [a for a in arrays if a is not None and not is_numpy(a)]
    return Engine("array_api", namespace(*foreign), device_of(foreign[0]))
