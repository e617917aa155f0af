"""The sparse engine: scipy.sparse matrices and arrays (CSR, CSC, COO, ...), read only through their
products, never densified.

Text features (TF-IDF, hashed bag-of-words) have 10^4 to 10^6 columns of which ~0.1% are non-zero:
60,000 documents x 200,000 features would take 48 GB dense. Here X is held once as CSR in the
model's float dtype (`checked_csr`: converted, checked and cast once, so no pass copies it), and
every formula sees a chunk of its rows x through `x @ W` (n, k) and `x.T @ G` (d, k), which scipy
computes from the non-zeros alone: the logits of a chunk are dense, X never is.

    rows = row_block(X, start, stop)       # rows [start, stop) as CSR views of X's arrays (no copy)
    sums = engine.moment_sums(X, s)        # [sum s x, sum (s x)^2] per column, from the non-zeros

scipy is imported only when a sparse matrix is met (its type names its module).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidArgumentError
from .base import Engine

__all__ = ["SparseEngine", "is_sparse", "checked_csr", "row_block", "scipy_sparse"]

SCIPY_HINT = "pip install 'softmaxreg[sparse]' (scipy)"


def scipy_sparse(where: str):
    """scipy.sparse, for reading the sparse file `where`; DataFormatError in one line without it."""
    try:
        import scipy.sparse as sp
    except ImportError:
        from ..errors import DataFormatError
        raise DataFormatError(f"{where}: sparse data need scipy: {SCIPY_HINT}") from None
    return sp


def is_sparse(a) -> bool:
    """True for a scipy.sparse matrix or array (decided by the type's module, importing nothing)."""
    return type(a).__module__.startswith("scipy.sparse")


def checked_csr(X, num_inputs: int, dtype) -> object:
    """X (any scipy.sparse format, n x num_inputs) as a canonical CSR array in `dtype` (duplicates
    summed, column indices sorted), checked: a real dtype, the width, in-range indices and
    a monotone row pointer (scipy's full check), finite values. A CSR array (or matrix) in `dtype`
    is used as it is, its arrays shared (no copy): its column indices are sorted in place when they
    are not (TfidfVectorizer's are not), which leaves the matrix unchanged, as scikit-learn's
    forests and SVMs sort theirs; only duplicates, which summing would shorten, cost a copy.
    InvalidArgumentError names what is wrong, in one line."""
    import scipy.sparse as sp

    if X.ndim != 2 or X.shape[1] != num_inputs:
        raise InvalidArgumentError(f"X: expected a sparse matrix of shape (n, {num_inputs}), got {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or np.issubdtype(X.dtype, np.complexfloating):
        raise InvalidArgumentError(f"X: expected a sparse matrix of real numbers, got {X.dtype}")
    if X.format == "csr":
        try:
            X.check_format(full_check=True)       # a hand-built matrix: indices and indptr checked
        except ValueError as e:
            raise InvalidArgumentError(f"X: not a valid CSR matrix: {e}") from None
    csr = X if isinstance(X, sp.csr_array) else sp.csr_array(X)       # a CSR matrix's arrays shared
    if csr.dtype != dtype:
        csr = csr.astype(dtype)
    if not csr.has_canonical_format:               # scipy's flag: columns sorted within rows, none repeated
        csr.sort_indices()                         # in place: the same matrix, the same bits as a sorted copy
        if _repeats_columns(csr):
            shared = X.format == "csr" and np.shares_memory(csr.indices, X.indices)
            csr = csr.copy() if shared else csr                               # X's arrays keep their entries
            csr.sum_duplicates()
        csr.has_canonical_format = True
    if not np.isfinite(csr.data).all():
        raise InvalidArgumentError("X: contains NaN or infinite values")
    return csr


def _repeats_columns(csr) -> bool:
    """Whether a row of a CSR array with sorted column indices holds a column twice (neighbours
    equal within a row); one boolean per non-zero, no copy of the matrix."""
    nnz = int(csr.indptr[-1])
    same = csr.indices[1:nnz] == csr.indices[:max(nnz - 1, 0)]                # (nnz - 1,) entry j+1 repeats entry j
    starts = csr.indptr[1:-1]
    same[starts[(starts > 0) & (starts < nnz)] - 1] = False              # pairs across a row boundary
    return bool(same.any())


def row_block(X, start: int, stop: int):
    """Rows [start, stop) of a CSR array as a CSR array sharing X's data and indices (no copy of
    the non-zeros: only the row pointer, stop - start + 1 numbers, is rebased)."""
    import scipy.sparse as sp

    begin, end = X.indptr[start], X.indptr[stop]
    block = sp.csr_array((X.data[begin:end], X.indices[begin:end], X.indptr[start:stop + 1] - begin),
                         shape=(stop - start, X.shape[1]), copy=False)
    block.has_canonical_format = X.has_canonical_format    # rows of a canonical matrix are canonical
    return block


class SparseEngine(Engine):
    """The engine of scipy.sparse data: NumPy's namespace for everything dense (labels, weights,
    parameters, logits), X a CSR array (`checked_csr`) read through its products."""

    def __init__(self):
        super().__init__("sparse", np, "cpu")

    def rows(self, X, num_inputs: int, dtype):
        return checked_csr(X, num_inputs, dtype)

    def take(self, a, index: np.ndarray):
        """a[index] for row indices: a CSR array of those rows (or a NumPy array's rows)."""
        return None if a is None else a[index]

    def float_rows(self, X, start: int, stop: int, dtype):
        rows = row_block(X, start, stop) if X.format == "csr" else X[start:stop]
        return rows if rows.dtype == dtype else rows.astype(dtype)

    def magnitudes(self, x) -> tuple[float, float]:
        """(max |x|, root mean square of x) over all entries of x, zeros included."""
        values = x.data.astype(np.float64)
        if not values.size:
            return 0.0, 0.0
        return float(np.abs(values).max()), float(np.sqrt(np.square(values).sum() / (x.shape[0] * x.shape[1])))

    def moment_sums(self, X, scale: float) -> np.ndarray:
        """[sum_i s x_i, sum_i (s x_i)^2] (2, d) float64 from the non-zeros, in row order."""
        X = X if X.format == "csr" else X.tocsr()
        values = X.data.astype(np.float64, copy=False)          # float64 X's own values: no copy of nnz numbers
        values = values * scale if scale != 1 else values       # x * 1 == x: the same bits either way
        d = X.shape[1]
        return np.stack([np.bincount(X.indices, weights=values, minlength=d),
                         np.bincount(X.indices, weights=np.square(values), minlength=d)])
