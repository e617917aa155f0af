"""A sparse matrix and its labels in one .npz: the arrays `scipy.sparse.save_npz` writes plus `y`.

Layout (every array plain, read without pickle):

    format       b"csr", b"csc" or b"coo" (bytes or str)
    shape        (2,) integers: rows, columns
    data         (nnz,) real numbers, finite
    indices, indptr          csr / csc: column (csr) or row (csc) indices, and the offsets of each
                             row (csr) or column (csc): indptr[0] = 0, non-decreasing, ends at nnz
    row, col  or  coords     coo: (nnz,) each, or (2, nnz)
    y            (rows,) integer class indices
    class_names  optional (k,) strings: the names of classes 0..k-1
    _is_array    optional, as save_npz writes it (ignored)

Write one with `scipy.sparse.save_npz(path, X)` and add the labels:
`np.savez(path, **dict(np.load(path)), y=y)`; or in one step
`np.savez(path, format="csr", shape=X.shape, data=X.data, indices=X.indices, indptr=X.indptr, y=y)`.
A hand-built matrix is checked before use (indices inside the shape, indptr's length, start, order
and end, lengths that agree, a shape that its index type can address, finite values), each
mistake one line naming the file and the array. Repeated entries are summed and indices sorted
(scipy's meaning of a CSR / COO matrix); the result is a csr_array of float32 or float64.
"""

from __future__ import annotations

import numpy as np

from ..engines.sparse import scipy_sparse
from ..errors import DataFormatError

__all__ = ["is_sparse_layout", "sparse_from_arrays", "SPARSE_KEYS"]

SPARSE_KEYS = {"format", "shape", "data", "indices", "indptr", "row", "col", "coords", "y", "class_names",
               "_is_array"}
FORMATS = ("csr", "csc", "coo")


def is_sparse_layout(names) -> bool:
    """Whether an .npz of arrays `names` is this module's layout (it has `format` and `shape`)."""
    return "format" in names and "shape" in names


def sparse_from_arrays(arrays: dict, where: str):
    """The checked csr_array of an .npz's arrays (the module docstring's layout)."""
    sp = scipy_sparse(where)

    extra = sorted(set(arrays) - SPARSE_KEYS)
    if extra:
        raise DataFormatError(f"{where}: unexpected array {extra[0]!r} in a sparse .npz (expected {_keys()})")
    kind = _format(arrays["format"], where)
    n, d = _shape(arrays["shape"], where)
    data = _array(arrays, "data", where)
    if data.dtype.kind not in "biuf" or data.ndim != 1:
        raise DataFormatError(f"{where}: data: expected a 1-D array of real numbers, found {data.dtype} of shape "
                              f"{data.shape}")
    if not np.isfinite(data).all():
        raise DataFormatError(f"{where}: data[{int(np.argmax(~np.isfinite(data)))}] is "
                              f"{data[~np.isfinite(data)][0]}; expected finite numbers")
    data = data if data.dtype in (np.float32, np.float64) else data.astype(np.float64)
    if kind == "coo":
        row, col = _coo_coordinates(arrays, where)
        for name, index, size in (("row", row, n), ("col", col, d)):
            _indices(index, name, size, len(data), where)
        return sp.coo_array((data, (row, col)), shape=(n, d)).tocsr()
    outer, inner = (n, d) if kind == "csr" else (d, n)
    indices, indptr = _array(arrays, "indices", where), _array(arrays, "indptr", where)
    _indices(indices, "indices", inner, len(data), where)
    _indptr(indptr, outer, len(data), where)
    X = (sp.csr_array if kind == "csr" else sp.csc_array)((data, indices, indptr), shape=(n, d)).tocsr()
    X.sum_duplicates()                             # sorts the indices of each row too
    return X


def _keys() -> str:
    return "format, shape, data, indices and indptr (csr, csc) or row and col (coo), y, optionally class_names"


def _array(arrays: dict, name: str, where: str) -> np.ndarray:
    if name not in arrays:
        raise DataFormatError(f"{where}: missing array {name!r} (expected {_keys()})")
    return arrays[name]


def _format(value: np.ndarray, where: str) -> str:
    text = value.item() if value.ndim == 0 and value.dtype.kind in "SU" else None
    text = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    if text not in FORMATS:
        found = text if text is not None else f"{value.dtype} of shape {value.shape}"
        raise DataFormatError(f"{where}: format: expected one of {', '.join(FORMATS)}, found {found!r}")
    return text


def _shape(value: np.ndarray, where: str) -> tuple[int, int]:
    if value.shape != (2,) or value.dtype.kind not in "iu" or (value < 0).any():
        raise DataFormatError(f"{where}: shape: expected 2 non-negative integers (rows, columns), found {value!r}")
    n, d = map(int, value)
    if n == 0 or d == 0:
        raise DataFormatError(f"{where}: an empty matrix (shape {n} x {d}); expected rows and columns")
    return n, d


def _coo_coordinates(arrays: dict, where: str):
    if "coords" in arrays and "row" not in arrays:
        coords = arrays["coords"]
        if coords.ndim != 2 or coords.shape[0] != 2:
            raise DataFormatError(f"{where}: coords: expected shape (2, nnz), found {coords.shape}")
        return coords[0], coords[1]
    return _array(arrays, "row", where), _array(arrays, "col", where)


def _indices(index: np.ndarray, name: str, size: int, nnz: int, where: str) -> None:
    """`index` holds `nnz` integers in [0, size), and its type can address `size` positions."""
    if index.ndim != 1 or index.dtype.kind not in "iu":
        raise DataFormatError(f"{where}: {name}: expected a 1-D array of integers, found {index.dtype} of shape "
                              f"{index.shape}")
    if len(index) != nnz:
        raise DataFormatError(f"{where}: {name} has {len(index)} entries, data has {nnz}; expected as many")
    if size - 1 > np.iinfo(index.dtype).max:
        raise DataFormatError(f"{where}: {name}: {size:,} positions do not fit its index type {index.dtype} "
                              f"(at most {np.iinfo(index.dtype).max:,}); write it with int64 indices")
    if nnz and (int(index.min()) < 0 or int(index.max()) >= size):
        at = int(np.argmax((index < 0) | (index >= size)))
        raise DataFormatError(f"{where}: {name}[{at}] = {int(index[at])} is outside 0..{size - 1} "
                              f"(the matrix's shape)")


def _indptr(indptr: np.ndarray, outer: int, nnz: int, where: str) -> None:
    if indptr.ndim != 1 or indptr.dtype.kind not in "iu":
        raise DataFormatError(f"{where}: indptr: expected a 1-D array of integers, found {indptr.dtype} of shape "
                              f"{indptr.shape}")
    if len(indptr) != outer + 1:
        raise DataFormatError(f"{where}: indptr has {len(indptr)} entries; expected {outer + 1} (one more than "
                              "the rows of a csr, the columns of a csc matrix)")
    if int(indptr[0]) != 0 or int(indptr[-1]) != nnz:
        raise DataFormatError(f"{where}: indptr runs from {int(indptr[0])} to {int(indptr[-1])}; expected 0 to "
                              f"{nnz} (the length of data)")
    falls = np.diff(indptr.astype(np.int64)) < 0
    if falls.any():
        at = int(np.argmax(falls))
        raise DataFormatError(f"{where}: indptr is not monotone: indptr[{at + 1}] = {int(indptr[at + 1])} is "
                              f"below indptr[{at}] = {int(indptr[at])}")
