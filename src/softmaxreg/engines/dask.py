"""The Dask engine: sums over the row blocks of Dask arrays, on whatever scheduler `dask.compute`
uses (the active `distributed.Client`, else the threaded scheduler; dask_cluster.py holds the
clusters, the data sent to them and the lost-cluster rule). full_batch.DaskFullBatch runs the
objective's chunk sums through `BlockSums`.

Imported only when the data is a Dask collection or `--scheduler` is given: `import softmaxreg`
never imports dask (engines.is_dask tells a Dask collection without importing it).

Conventions
-----------
X : (n, d) Dask array chunked by rows (columns in one chunk; `align` rechunks them), any real dtype;
    its blocks NumPy arrays or scipy.sparse matrices (`has_sparse_blocks`: SparseFullBatch on each)
y : (n,) class indices or (n, k) soft targets, NumPy or Dask, rechunked to X's row chunks
w : (n,) per-example weights or None, the same
block c : rows [start_c, start_c + n_c) of X, y, w, computed where the block lives

Every evaluation maps one task over the blocks, each returning a float64 vector of sums computed by
the same code as an in-memory fit (full_batch.FullBatch on the block, 512-row chunks, one thread,
the divisor of the whole data set), and adds adjacent vectors pairwise in a fixed binary tree of
tasks, ((v0 + v1) + (v2 + v3)) + v4 ...; only the root comes back. Floating-point addition is not
associative, but a fixed tree fixes the order of every addition: the result is the same bits
whichever scheduler, worker or thread computed each block, and a block that is recomputed (a
worker died) gives the same bits again. A different chunking gives a different order (results
agree to rounding, under 1e-13 relative in float64, not bit for bit).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import dask
import dask.array as da
import numpy as np

from ..errors import InvalidArgumentError
from . import engine_for, is_dask
from .dask_cluster import CHUNK_ROWS, compute, current_client
from .gemm import one_blas_thread
from .rows import check_rows

__all__ = ["align", "summarize", "persist", "weights_by_class", "find_classes", "encode_labels", "BlockSums"]


# -- the fixed-order tree ----------------------------------------------------------------------

def _tree(parts: list, add) -> object:
    """The sum of `parts` (delayed values) by a fixed binary tree: adjacent pairs, level by level."""
    while len(parts) > 1:
        parts = [add(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a + b


def _tree_sum(block_values: list) -> np.ndarray:
    """Compute the fixed-tree sum of the delayed float64 vectors `block_values` (one per block)."""
    return compute(_tree(block_values, dask.delayed(_add, pure=True)))


# -- the data ------------------------------------------------------------------------------------

def _rows(a, chunks: tuple, name: str, n: int):
    """`a` (NumPy or Dask, first axis n) as a Dask array with row chunks `chunks`, other axes in one chunk."""
    if a is None:
        return None
    a = a if is_dask(a) else da.from_array(np.asarray(a), chunks=-1)
    if a.ndim == 0 or a.shape[0] != n:
        raise InvalidArgumentError(f"{name}: expected {n} rows like X, got shape {a.shape}")
    return a.rechunk((chunks, *a.shape[1:]))


def align(model, X, y, sample_weight=None):
    """(X (n, d), y, w): Dask arrays with X's row chunks, columns in one chunk; checks the shapes."""
    X = X if is_dask(X) else da.from_array(np.asarray(X), chunks=(CHUNK_ROWS, *np.shape(X)[1:]))
    if any(math.isnan(c) for c in X.chunks[0]):
        raise InvalidArgumentError("X: a Dask array of unknown chunk sizes; call X.compute_chunk_sizes() first")
    check_rows(X, model.num_inputs)
    if X.shape[0] == 0:
        raise InvalidArgumentError("X: cannot train on 0 examples")
    X = X.rechunk({i: -1 for i in range(1, X.ndim)}).reshape(X.shape[0], model.num_inputs)
    rows = X.chunks[0]
    return X, _rows(y, rows, "y", X.shape[0]), _rows(sample_weight, rows, "sample_weight", X.shape[0])


def _where(c: int, start: int, n: int) -> str:
    return f"chunk {c} (rows {start}..{start + n - 1})"


def _block_summary(X, y, w, c: int, start: int, k: int, scale: float, moments: bool) -> tuple:
    """(problem or None, [class counts (k), sum of sample weights, moment sums (2 d) if asked]) of
    block c: the inputs finite, labels in [0, k) or valid soft targets, weights finite and >= 0."""
    n = X.shape[0]
    X, y, w = _aligned(X, y, w)
    data = engine_for(X)
    values = X.data if data.name == "sparse" else X                    # a sparse block: its non-zeros
    problem = None
    if not (np.issubdtype(X.dtype, np.integer) or X.dtype == bool) and not np.isfinite(values).all():
        problem = f"X: {_where(c, start, n)} contains NaN or infinite values"
    elif y.ndim == 1 and not np.issubdtype(y.dtype, np.integer):
        problem = f"y: expected integer class indices, got {y.dtype} in {_where(c, start, n)}"
    elif y.ndim == 1 and (y.min() < 0 or y.max() >= k):
        problem = f"y: {_where(c, start, n)} has labels outside [0, {k - 1}] (found {y.min()}..{y.max()})"
    elif y.ndim == 2 and (y.shape[1] != k or not np.issubdtype(y.dtype, np.floating)
                          or not np.isfinite(y).all() or (y < 0).any()):
        problem = (f"y: soft targets must be finite non-negative floats of shape (n, {k}); "
                   f"{_where(c, start, n)} is not ({y.dtype} {y.shape})")
    elif w is not None and (not np.isfinite(w).all() or (w < 0).any()):
        problem = f"sample_weight: {_where(c, start, n)} has weights that are not finite and >= 0"
    if problem is not None:
        return problem, None
    counts = np.bincount(y, minlength=k) if y.ndim == 1 else np.zeros(k)
    parts = [counts.astype(np.float64), [0.0 if w is None else float(np.sum(w, dtype=np.float64))]]
    if moments:
        parts.append(data.moment_sums(X, scale).ravel())
    return None, np.concatenate(parts)


def _add_summaries(a: tuple, b: tuple) -> tuple:
    """The first problem in block order, else the added sums."""
    if a[0] is not None or b[0] is not None:
        return (a[0], None) if a[0] is not None else (b[0], None)
    return None, a[1] + b[1]


def _blocks(*arrays) -> list:
    """Per row block, the tuple of the arrays' delayed blocks (None stays None)."""
    columns = [[None] * arrays[0].numblocks[0] if a is None else list(a.to_delayed().ravel()) for a in arrays]
    return list(zip(*columns))


def _starts(X) -> list[int]:
    return np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(int).tolist()


def summarize(X, y, w, k: int, scale: float, moments: bool) -> np.ndarray:
    """One pass over aligned blocks (`align`): checks them (InvalidArgumentError naming the first bad
    chunk: index and rows) and returns [class counts (k), sum of the weights, moment sums of s X
    (2 d) if `moments`] float64, the blocks' parts added in the fixed tree."""
    summary = dask.delayed(_block_summary, pure=True)
    tasks = [summary(xb, yb, wb, c, start, k, scale, moments)
             for c, ((xb, yb, wb), start) in enumerate(zip(_blocks(X, y, w), _starts(X)))]
    problem, sums = compute(_tree(tasks, dask.delayed(_add_summaries, pure=True)))
    if problem is not None:
        raise InvalidArgumentError(problem)
    return sums


def weights_by_class(y, w, per_class: np.ndarray, dtype):
    """The lazy per-example weights w * per_class[y] (w None: per_class[y]) in `dtype`, persisted."""
    return persist(da.map_blocks(_example_weights, y, w, per_class, dtype, dtype=dtype))[0]


def persist(*arrays) -> tuple:
    """On a distributed cluster, the arrays kept in the workers' memory for the fit (the source is
    read once). On the local schedulers they stay lazy: each evaluation reads its blocks from the
    source again (a memory map, a Zarr store, Parquet files), so memory does not grow with the data."""
    if current_client() is None:
        return arrays
    with warnings.catch_warnings():
        # data made in memory (row_chunks) travels in the graph, once: the scheduler keeps it to
        # recompute a block whose worker died, which scattered data would not allow
        warnings.filterwarnings("ignore", message="Sending large graph")
        return dask.persist(*arrays)


def _example_weights(y: np.ndarray, w: np.ndarray | None, per_class: np.ndarray, dtype) -> np.ndarray:
    return (per_class[y] if w is None else w.astype(np.float64) * per_class[y]).astype(dtype)


def find_classes(y) -> np.ndarray:
    """The sorted distinct labels of a Dask array y (n,), in one pass (np.unique per block, then a
    fixed tree of unions)."""
    unique = dask.delayed(np.unique, pure=True)
    union = dask.delayed(lambda a, b: np.union1d(a, b), pure=True)
    return compute(_tree([unique(b) for b in y.to_delayed().ravel()], union))


def encode_labels(y, classes: np.ndarray):
    """Lazy class indices of the labels y (Dask, (n,)) in the sorted `classes`; a label outside them
    raises InvalidArgumentError naming its chunk when computed."""
    return y.map_blocks(_encode_block, classes, dtype=np.int64)


def _encode_block(y: np.ndarray, classes: np.ndarray, block_info=None) -> np.ndarray:
    indices = np.searchsorted(classes, y)
    bad = (indices >= len(classes)) | (classes[np.minimum(indices, len(classes) - 1)] != y)
    if bad.any():
        c = block_info[0]["chunk-location"][0] if block_info else "?"
        start = block_info[0]["array-location"][0][0] if block_info else 0
        raise InvalidArgumentError(f"y: {_where(c, start, y.shape[0])} has labels not among the classes: "
                                   f"{sorted(set(y[bad].tolist()))[:5]}")
    return indices


# -- sums over the blocks ---------------------------------------------------------------------

def _aligned(*arrays) -> list:
    """The arrays, each copied if its start is not aligned to its item size. A block deserialized on
    a worker may start at any byte, and NumPy runs unaligned data through other loops (other bits).
    A sparse block is left as it is (checked_csr makes it canonical where it is used)."""
    return [a if a is None or engine_for(a).name == "sparse" else np.require(a, requirements=["A", "C"])
            for a in arrays]


class BlockSums:
    """Sums of a function over the row blocks of aligned Dask arrays (X, y, w): `map_sum(function,
    *args)` computes function(*args, X_c, y_c, w_c) (a float64 vector) on every block c where it
    lives, the blocks aligned in memory first, and adds the vectors in the fixed tree (module
    docstring); each argument travels into the graph once. `weight_sum()` is sum w (float64)."""

    def __init__(self, X, y, w=None):
        self.n = X.shape[0]
        self.blocks = _blocks(X, y, w)
        self.weighted = w is not None

    def map_sum(self, function, *args) -> np.ndarray:
        task = dask.delayed(_on_aligned, pure=True)
        spec = [dask.delayed(a, pure=True) for a in args]
        with _blas_as_on_workers():
            return _tree_sum([task(function, *spec, *block) for block in self.blocks])

    def weight_sum(self) -> float:
        return float(_tree_sum([dask.delayed(_weight_sum, pure=True)(b[2]) for b in self.blocks])[0])


def _blas_as_on_workers():
    """Without a distributed cluster the blocks run on Dask's threads in this process: there BLAS
    gets one thread, as on distributed's workers (OMP_NUM_THREADS=1). A product's bits may depend on
    BLAS's thread count (OpenBLAS's Haswell kernels), and a block must give the same bits wherever
    it runs, so that a run resumed on Dask's threads continues a cluster's bit for bit."""
    return contextlib.nullcontext() if current_client() is not None else one_blas_thread()


def _on_aligned(function, *args):
    """function(*args) with the block's three arrays (the last) aligned (`_aligned`)."""
    return function(*args[:-3], *_aligned(*args[-3:]))


def _weight_sum(w: np.ndarray) -> np.ndarray:
    return np.array([np.sum(w, dtype=np.float64)])
