"""The Dask engine: the full-batch objective over Dask arrays chunked by rows, on whatever scheduler
`dask.compute` uses (the active `distributed.Client`, else the threaded scheduler; dask_cluster.py
holds the clusters, the data sent to them and the lost-cluster rule).

Imported only when the data is a Dask collection or `--scheduler` is given: `import softmaxreg`
never imports dask (datasets.blocks.is_dask tells a Dask collection without importing it).

Conventions
-----------
X : (n, d) Dask array chunked by rows (columns in one chunk; `align` rechunks them), any real dtype
y : (n,) class indices or (n, k) soft targets, NumPy or Dask, rechunked to X's row chunks
w : (n,) per-example weights or None, the same
block c : rows [start_c, start_c + n_c) of X, y, w, computed where the block lives

Every evaluation maps one task over the blocks, each returning a float64 vector of sums computed by
the same code as an in-memory fit (objective.FullBatch on the block, 512-row chunks, one thread,
the divisor of the whole data set), and adds adjacent vectors pairwise in a fixed binary tree of
tasks, ((v0 + v1) + (v2 + v3)) + v4 ...; only the root comes back. Floating-point addition is not
associative, but a fixed tree fixes the order of every addition: the result is the same bits
whichever scheduler, worker or thread computed each block, and a block that is recomputed (a
worker died) gives the same bits again. A different chunking gives a different order (results
agree to rounding, under 1e-13 relative in float64, not bit for bit).
"""

from __future__ import annotations

import copy
import math
import warnings

import dask
import dask.array as da
import numpy as np

from .dask_cluster import CHUNK_ROWS, compute, current_client
from .errors import InvalidArgumentError
from .gemm import block_rows, pin_block_rows
from .objective import (FullBatch, SoftmaxCrossEntropy, hessian_value, objective_value, preconditioner_from_gram,
                        set_flat_params)
from .options import class_weight_vector
from .datasets.blocks import check_rows, is_dask
from .train import moment_sums, moments_from_sums

__all__ = ["align", "prepare", "find_classes", "encode_labels", "DaskFullBatch"]


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
    problem = None
    if not (np.issubdtype(X.dtype, np.integer) or X.dtype == bool) and not np.isfinite(X).all():
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
        parts.append(moment_sums(_Scale(scale, X.shape[1]), X).ravel())
    return None, np.concatenate(parts)


class _Scale:
    """What train.moment_sums reads of a model: its input scale and size."""

    def __init__(self, input_scale: float, num_inputs: int):
        self.input_scale, self.num_inputs = input_scale, num_inputs


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


def prepare(model, X, y, sample_weight, cfg):
    """(X, y, w) aligned Dask arrays ready for DaskFullBatch, persisted on a cluster (`_persist`);
    then one pass over the blocks checks them (an error
    names the first bad chunk: index and rows), counts the classes (for class_weight="balanced")
    and, with cfg.standardize, sets the model's standardization from the moments of s X
    (train.moment_sums per block, added in the fixed tree). w (model dtype) is the sample weight
    times the class weight, as options.example_weights."""
    X, y, w = _persist(*align(model, X, y, sample_weight))
    k, d = model.num_outputs, model.num_inputs
    moments = cfg.standardize and model.mean is None
    summary = dask.delayed(_block_summary, pure=True)
    tasks = [summary(xb, yb, wb, c, start, k, model.input_scale, moments)
             for c, ((xb, yb, wb), start) in enumerate(zip(_blocks(X, y, w), _starts(X)))]
    problem, sums = compute(_tree(tasks, dask.delayed(_add_summaries, pure=True)))
    if problem is not None:
        raise InvalidArgumentError(problem)
    if moments:
        model.set_standardization(*moments_from_sums(sums[k + 1:].reshape(2, d), X.shape[0]))
    if cfg.class_weight is not None:
        if y.ndim != 1:
            raise InvalidArgumentError("class_weight: needs class-index targets, not soft targets")
        per_class = class_weight_vector(cfg.class_weight, k, sums[:k])
        w = _persist(da.map_blocks(_example_weights, y, w, per_class, model.dtype, dtype=model.dtype))[0]
    elif w is not None:
        if not sums[k] > 0:
            raise InvalidArgumentError("sample_weight: every weight is zero, nothing to learn from")
        w = _persist(w.astype(model.dtype))[0]
    return X, y, w


def _persist(*arrays) -> tuple:
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


# -- the objective ----------------------------------------------------------------------------

def _objective_at(objective: SoftmaxCrossEntropy, x: np.ndarray) -> SoftmaxCrossEntropy:
    """A private copy of `objective` with its model's parameters set to the flat point x (tasks on one
    worker may share their inputs, so they never write into them)."""
    model = copy.copy(objective.model)
    model.W, model.b = np.empty_like(model.W), np.empty_like(model.b)
    set_flat_params(model, x)
    return SoftmaxCrossEntropy(model, weight_decay=objective.weight_decay, label_smoothing=objective.label_smoothing)


def _aligned(*arrays) -> list:
    """The arrays, each copied if its start is not aligned to its item size. A block deserialized on
    a worker may start at any byte, and NumPy runs unaligned data through other loops (other bits)."""
    return [None if a is None else np.require(a, requirements=["A", "C"]) for a in arrays]


def _block_sums(objective, x, divisor, rows, X, y, w) -> np.ndarray:
    """FullBatch.sums of one block at x, with the whole data set's divisor and the driver's product
    row blocking `rows` (gemm.py: it changes the bits)."""
    pin_block_rows(rows)
    return FullBatch(_objective_at(objective, x), *_aligned(X, y, w), threads=1, divisor=divisor).sums()


def _block_gram(objective, divisor, X, y, w) -> np.ndarray:
    return FullBatch(objective, *_aligned(X, y, w), threads=1, divisor=divisor).gram_sums()


class DaskFullBatch:
    """objective.FullBatch over Dask arrays: fun(x) -> (F, dF, (mean training loss, accuracy)) at the
    flat float64 point x, and `preconditioner()`, with the same contract. Each call computes
    FullBatch.sums on every block where it lives and adds them in the fixed tree (module docstring);
    x travels into the graph as one small array. The divisor N is the sum of the weights (one pass
    over w when given). A context manager, like FullBatch (nothing to hold: the scheduler is dask's)."""

    def __init__(self, objective: SoftmaxCrossEntropy, X, y, w=None, *, divisor: float | None = None):
        self.objective, self.X, self.y, self.w = objective, X, y, w
        self.n = X.shape[0]
        self.blocks = _blocks(X, y, w)
        if divisor is not None or w is None:
            self.divisor = float(self.n if divisor is None else divisor)
        else:
            self.divisor = float(_tree_sum([dask.delayed(_weight_sum, pure=True)(b[2]) for b in self.blocks])[0])
            if not self.divisor > 0:
                raise InvalidArgumentError("sample_weight: every weight is zero, nothing to learn from")

    def __enter__(self) -> "DaskFullBatch":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _map(self, function, *args) -> np.ndarray:
        task = dask.delayed(function, pure=True)
        return _tree_sum([task(*args, *block) for block in self.blocks])

    def preconditioner(self):
        """FullBatch.preconditioner's P from the Gram sums of every block, added in the fixed tree."""
        spec = dask.delayed(self.objective, pure=True)
        return preconditioner_from_gram(self.objective, self._map(_block_gram, spec, self.divisor), self.divisor)

    def __call__(self, x: np.ndarray):
        set_flat_params(self.objective.model, x)
        spec = dask.delayed(self.objective, pure=True)
        sums = self._map(_block_sums, spec, dask.delayed(np.array(x, dtype=np.float64), pure=True), self.divisor,
                         block_rows())
        return objective_value(self.objective, sums, self.divisor, self.n)


    def hessian_product(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """FullBatch.hessian_product over the blocks: each block's `hessian_sums` where it lives,
        added in the fixed tree, then the penalty's lambda VW."""
        spec = dask.delayed(self.objective, pure=True)
        point = dask.delayed(np.array(x, dtype=np.float64), pure=True)
        sums = self._map(_block_hessian, spec, point, dask.delayed(np.array(v, dtype=np.float64), pure=True),
                         self.divisor, block_rows())
        return hessian_value(self.objective, sums, v)


def _block_hessian(objective, x, v, divisor, rows, X, y, w) -> np.ndarray:
    """FullBatch.hessian_sums of one block at x along v (as `_block_sums`)."""
    pin_block_rows(rows)
    return FullBatch(_objective_at(objective, x), *_aligned(X, y, w), threads=1, divisor=divisor).hessian_sums(v)


def _weight_sum(w: np.ndarray) -> np.ndarray:
    return np.array([np.sum(w, dtype=np.float64)])


