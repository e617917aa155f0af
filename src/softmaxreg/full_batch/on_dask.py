"""F over Dask arrays: FullBatch on every block where it lives, the blocks' sums added in a fixed
tree (engines/dask.py), so the bits never depend on which worker computed what."""

from __future__ import annotations

import contextlib
import copy

import numpy as np

from ..engines import engine_for, has_sparse_blocks
from ..engines.gemm import block_rows, pin_block_rows
from ..errors import InvalidArgumentError
from ..moments import check_standardize, moments_from_sums
from ..objective import SoftmaxCrossEntropy, hessian_value, objective_value, set_flat_params
from ..options import class_weight_vector
from ..preconditioner import HessianDiagonal, preconditioner_from_gram
from .in_process import FullBatch
from .on_sparse import SparseFullBatch

__all__ = ["DaskFullBatch", "prepare_dask"]


def prepare_dask(model, X, y, sample_weight, cfg):
    """(X, y, w) aligned Dask arrays ready for DaskFullBatch (engines.dask: persisted on a cluster),
    after one pass over the blocks that checks them, counts the classes (class_weight="balanced")
    and, with cfg.standardize, sets the model's standardization from the moments of s X. w (model
    dtype) is the sample weight times the class weight, as options.example_weights."""
    from ..engines import dask as engine

    X, y, w = engine.persist(*engine.align(model, X, y, sample_weight))
    k, d = model.num_outputs, model.num_inputs
    moments = check_standardize(cfg.standardize, has_sparse_blocks(X)) and model.mean is None
    sums = engine.summarize(X, y, w, k, model.input_scale, moments)
    if moments:
        mean, std = moments_from_sums(sums[k + 1:].reshape(2, d), X.shape[0])
        model.set_standardization(0.0 * mean if cfg.standardize == "scale" else mean, std)
    if cfg.class_weight is not None:
        if y.ndim != 1:
            raise InvalidArgumentError("class_weight: needs class-index targets, not soft targets")
        w = engine.weights_by_class(y, w, class_weight_vector(cfg.class_weight, k, sums[:k]), model.dtype)
    elif w is not None:
        if not sums[k] > 0:
            raise InvalidArgumentError("sample_weight: every weight is zero, nothing to learn from")
        w = engine.persist(w.astype(model.dtype))[0]
    return X, y, w


def _objective_at(objective: SoftmaxCrossEntropy, x: np.ndarray) -> SoftmaxCrossEntropy:
    """A private copy of `objective` with its model's parameters set to the flat point x (tasks on one
    worker may share their inputs, so they never write into them)."""
    model = copy.copy(objective.model)
    model.W, model.b = np.empty_like(model.W), np.empty_like(model.b)
    set_flat_params(model, x)
    return SoftmaxCrossEntropy(model, weight_decay=objective.weight_decay, label_smoothing=objective.label_smoothing)


def _block(objective, divisor, X, y, w) -> FullBatch:
    """One block as an in-process full batch on one thread, with the whole data set's divisor:
    FullBatch, or SparseFullBatch for a sparse block (checked and cast as in memory)."""
    if engine_for(X).name == "sparse":
        return SparseFullBatch(objective, objective.model._flatten(X), y, w, threads=1, divisor=divisor)
    return FullBatch(objective, X, y, w, threads=1, divisor=divisor)


def _block_sums(objective, x, divisor, rows, X, y, w) -> np.ndarray:
    """FullBatch.sums of one block at x, with the driver's product row blocking `rows`
    (engines/gemm.py: it changes the bits)."""
    pin_block_rows(rows)
    return _block(_objective_at(objective, x), divisor, X, y, w).sums()


def _block_hessian(objective, x, v, divisor, rows, X, y, w) -> np.ndarray:
    """FullBatch.hessian_sums of one block at x along v (as `_block_sums`)."""
    pin_block_rows(rows)
    return _block(_objective_at(objective, x), divisor, X, y, w).hessian_sums(v)


def _block_curvature(objective, x, divisor, rows, X, y, w) -> np.ndarray:
    """FullBatch.class_curvature of one block at x, raveled (its share of the whole's, by the divisor)."""
    pin_block_rows(rows)
    return _block(_objective_at(objective, x), divisor, X, y, w).class_curvature(x).ravel()


def _block_gram(objective, divisor, X, y, w) -> np.ndarray:
    return _block(objective, divisor, X, y, w).gram_sums()


def _block_hessian_diagonal(objective, x, divisor, X, y, w) -> np.ndarray:
    """SparseFullBatch.hessian_diagonal of one sparse block at x (its share of the whole's, by the divisor)."""
    return _block(_objective_at(objective, x), divisor, X, y, w).hessian_diagonal(x)


class DaskFullBatch:
    """FullBatch over Dask arrays: fun(x) -> (F, dF, (mean training loss, accuracy)) at the flat
    float64 point x, `hessian_product` and `preconditioner()`, with the same contract. Each call
    computes FullBatch's sums on every block where it lives and adds them in the fixed tree
    (engines.dask.BlockSums); x travels into the graph as one small array. The divisor N is the sum
    of the weights (one pass over w when given). A context manager, like FullBatch (nothing to
    hold: the scheduler is dask's)."""

    def __init__(self, objective: SoftmaxCrossEntropy, X, y, w=None, *, divisor: float | None = None):
        from ..engines.dask import BlockSums

        self.objective, self.n = objective, X.shape[0]
        self.blocks = BlockSums(X, y, w)
        self.sparse = has_sparse_blocks(X)
        self.divisor = float(divisor if divisor is not None else self.blocks.weight_sum() if w is not None else self.n)
        if not self.divisor > 0:
            raise InvalidArgumentError("sample_weight: every weight is zero, nothing to learn from")

    def __enter__(self) -> "DaskFullBatch":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def solving(self):
        """FullBatch.solving's context: nothing here (the library's own threads are left as they are)."""
        return contextlib.nullcontext()

    def preconditioner(self):
        """FullBatch.preconditioner's P from the Gram sums of every block, added in the fixed tree
        (sparse blocks: SparseFullBatch's, the Hessian's diagonal measured by `hessian_diagonal`)."""
        if self.sparse:
            return HessianDiagonal(self.hessian_diagonal, self.objective.weight_decay)
        gram = self.blocks.map_sum(_block_gram, self.objective, self.divisor)
        return preconditioner_from_gram(self.objective, gram, self.divisor)

    def __call__(self, x: np.ndarray):
        set_flat_params(self.objective.model, x)
        sums = self.blocks.map_sum(_block_sums, self.objective, np.array(x, dtype=np.float64), self.divisor,
                                   block_rows())
        return objective_value(self.objective, sums, self.divisor, self.n)

    def hessian_product(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """FullBatch.hessian_product over the blocks, added in the fixed tree, plus lambda VW."""
        sums = self.blocks.map_sum(_block_hessian, self.objective, np.array(x, dtype=np.float64),
                                   np.array(v, dtype=np.float64), self.divisor, block_rows())
        return hessian_value(self.objective, sums, v)

    def hessian_diagonal(self, x: np.ndarray, keep: bool = False) -> np.ndarray:
        """SparseFullBatch.hessian_diagonal over the sparse blocks, added in the fixed tree (the blocks'
        probabilities are never kept: `keep` is ignored)."""
        return self.blocks.map_sum(_block_hessian_diagonal, self.objective, np.array(x, dtype=np.float64), self.divisor)

    def class_curvature(self, x: np.ndarray) -> np.ndarray:
        """FullBatch.class_curvature over the blocks, added in the fixed tree."""
        k = self.objective.model.num_outputs
        return self.blocks.map_sum(_block_curvature, self.objective, np.array(x, dtype=np.float64), self.divisor,
                                   block_rows()).reshape(k, k)
