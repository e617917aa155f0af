"""The full-batch objective: F, its gradient and Hessian-vector products over all rows of a data
set, summed chunk by chunk in a fixed order (objective.py holds the formulas and conventions).

    with full_batch(objective, X, y, w) as fun:     # FullBatch, GenericFullBatch or DaskFullBatch
        f, g, (train_loss, train_acc) = fun(x)      # at the flat float64 point x = (W.ravel(), b)
        Hv = fun.hessian_product(x, v)              # Newton-CG
        P = fun.preconditioner()                    # preconditioner.GramPreconditioner (Diagonal-), or None
"""

from __future__ import annotations

from ..engines import engine_for
from ..objective import SoftmaxCrossEntropy
from .in_process import FULL_BATCH_ROWS, FullBatch
from .on_dask import DaskFullBatch, prepare_dask
from .on_device import GenericFullBatch
from .on_sparse import SparseFullBatch

__all__ = ["FULL_BATCH_ROWS", "FullBatch", "GenericFullBatch", "DaskFullBatch", "SparseFullBatch", "full_batch",
           "prepare_dask"]


def full_batch(objective: SoftmaxCrossEntropy, X, y, w=None, *, divisor: float | None = None):
    """The full-batch objective over (X, y, w) for X's engine: FullBatch (NumPy), GenericFullBatch
    (other array libraries), SparseFullBatch (scipy.sparse, as CSR) or DaskFullBatch (Dask arrays,
    prepared by `prepare_dask`). The divisor
    N defaults to the sum of the weights (the number of rows unweighted)."""
    kind = {"numpy": FullBatch, "array_api": GenericFullBatch, "sparse": SparseFullBatch,
            "dask": DaskFullBatch}[engine_for(X).name]
    return kind(objective, X, y, w, divisor=divisor)
