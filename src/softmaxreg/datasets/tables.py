"""Readers of tables of columns, CSV and Parquet: (X, y, class names) with every mistake a
DataFormatError of one line naming the file, the line or column and what was expected.

CSV: a header line of unique column names, then rows of as many cells; blank lines are skipped;
cells may be of any length. Parquet: every column but --label-column is a feature of real numbers:
NumPy's numbers and bools, and pandas' nullable Int64 / Float64 / boolean when they hold no missing
value (NA), are read as float64; strings, categoricals and missing values are refused, naming the
column (and the row of the first NA). Labels, in both: integer class indices when every label is
an integer (CSV: every cell ASCII digits; Parquet: an integer column, nullable Int64 without NA
too), else class names, sorted as text, when every label is text (CSV: any cell that is not an
integer makes every cell a name, so "1" and "cat" are the two names "1" and "cat"; Parquet: a
column of strings or a categorical). A Parquet label column of floats, bools or mixed Python
objects is refused.
"""

from __future__ import annotations

import csv
import re
import sys

import numpy as np

from ..errors import DataFormatError
from .fashion_mnist import check_class_names

__all__ = ["csv_columns", "parquet_columns", "column_index", "unique_header", "one_line", "DASK_HINT"]

DASK_HINT = "pip install 'softmaxreg[dask]'"
_INTEGER = re.compile(r"-?[0-9]+")
"""A CSV label cell that is a class index (ASCII digits: str.isdigit also takes '²', which int() refuses)."""


def one_line(e: Exception) -> str:
    """The message of `e` on one line: its last non-empty line (else the exception's type)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__


def column_index(columns: list[str], label_column, where: str) -> int:
    """The index of --label-column NAME or INDEX among `columns`."""
    if label_column is None:
        raise DataFormatError(f"{where}: pass --label-column NAME or INDEX to say which column holds the labels "
                              f"(columns: {few(columns)})")
    if str(label_column) in columns:
        return columns.index(str(label_column))
    if _INTEGER.fullmatch(str(label_column)) and -len(columns) <= int(label_column) < len(columns):
        return int(label_column) % len(columns)
    raise DataFormatError(f"{where}: no column {label_column!r} for --label-column; the columns are {few(columns)}")


def few(columns, shown: int = 8) -> str:
    more = f", ... ({len(columns)} in all)" if len(columns) > shown else ""
    return ", ".join(map(repr, columns[:shown])) + more


def unique_header(columns: list[str], where: str) -> None:
    """Refuse repeated column names: which of them --label-column (or a reader) means is ambiguous."""
    seen = {}
    for j, name in enumerate(columns):
        if name in seen:
            raise DataFormatError(f"{where}: column name {name!r} repeats (columns {seen[name] + 1} and {j + 1}); "
                                  "expected unique column names")
        seen[name] = j


def _csv_rows(p) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank line of the CSV file `p`; cells of any length."""
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)         # the default 131072 refuses a long cell; any length is data
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:   # utf-8-sig: a byte order mark is not in the header
            reader = csv.reader(f)
            rows = []
            for row in reader:
                if row and any(cell.strip() for cell in row) or len(row) > 1:
                    rows.append((reader.line_num, row))
        return rows
    except (OSError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{p}: cannot read as UTF-8 CSV: {e}") from None
    except csv.Error as e:
        raise DataFormatError(f"{p}: not readable as CSV: {one_line(e)}") from None
    finally:
        csv.field_size_limit(limit)


def csv_columns(p, label_column, labels: bool):
    """(X float64 (n, d), y int or None, class names or None) of the CSV file `p`."""
    rows = _csv_rows(p)
    if len(rows) < 2:
        raise DataFormatError(f"{p}: expected a header line of column names and at least one row, "
                              f"found {len(rows)} non-blank line(s)")
    header = [name.strip() for name in rows[0][1]]
    unique_header(header, str(p))
    label = column_index(header, label_column, str(p)) if labels or label_column is not None else None
    features = [j for j in range(len(header)) if j != label]
    X = np.empty((len(rows) - 1, len(features)))
    for i, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DataFormatError(f"{p}, line {line}: {len(row)} cells, the header has {len(header)}")
        for out, j in enumerate(features):
            try:
                X[i, out] = float(row[j])
            except ValueError:
                raise DataFormatError(f"{p}, line {line}, column {header[j]!r}: expected a number, "
                                      f"found {row[j][:40]!r}{'...' if len(row[j]) > 40 else ''}") from None
    if not np.isfinite(X).all():
        i, j = np.argwhere(~np.isfinite(X))[0]
        raise DataFormatError(f"{p}, line {rows[i + 1][0]}, column {header[features[j]]!r}: expected a finite "
                              f"number, found {X[i, j]}")
    if label is None:
        return X, None, None
    return (X, *_labels([row[label].strip() for _, row in rows[1:]], f"{p}, column {header[label]!r}"))


def _labels(cells: list[str], where: str):
    """(y, None) of integer cells, else (y, sorted names) of text cells."""
    if all(_INTEGER.fullmatch(c) for c in cells):
        return np.array([int(c) for c in cells], dtype=np.int64), None
    return _text_labels(cells, where)


def parquet_columns(frame, pattern: str, label_column, labels: bool):
    """(X, y or None, class names or None) of a pandas (in memory) or Dask (streamed) DataFrame."""
    streamed = hasattr(frame, "to_dask_array")
    columns = [str(c) for c in frame.columns]
    unique_header(columns, pattern)
    label = column_index(columns, label_column, pattern) if labels or label_column is not None else None
    features = [c for j, c in enumerate(frame.columns) if j != label]
    for c in features:
        _check_feature(frame[c], c, pattern, streamed)
    table = frame[features]
    dtypes = {frame[c].dtype for c in features}
    if len(dtypes) > 1 or not all(isinstance(t, np.dtype) for t in dtypes):   # mixed, or pandas' nullable: float64
        table = table.astype("float64")
    X = table.to_dask_array(lengths=True) if streamed else table.to_numpy()
    if label is None:
        return X, None, None
    series = frame[frame.columns[label]]
    series = series.compute() if hasattr(series, "compute") else series          # labels are small: in memory
    return (X, *_parquet_labels(series, columns[label], pattern))


def _kind(dtype) -> str:
    """'number', 'bool', 'text' or 'other' of a NumPy or pandas column type."""
    import pandas as pd
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "number"
    if pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "text"
    return "other"


def _first_na(series) -> int | None:
    """The row (1-based, in file order) of the first missing value of a column, else None."""
    na = np.asarray(series.isna())
    return int(np.argmax(na)) + 1 if na.any() else None


def _check_feature(series, name, where: str, streamed: bool) -> None:
    kind = _kind(series.dtype)
    if kind not in ("number", "bool"):
        raise DataFormatError(f"{where}: feature column {name!r} holds {series.dtype}; expected numbers "
                              "(every column but --label-column is a feature)")
    if not streamed:
        row = _first_na(series)
        if row is not None:
            raise DataFormatError(f"{where}: feature column {name!r}, row {row}: missing value (NA or NaN); "
                                  "expected a finite number")
        values = _numbers(series)
        if not np.isfinite(values).all():
            row = int(np.argmax(~np.isfinite(values))) + 1
            raise DataFormatError(f"{where}: feature column {name!r}, row {row}: expected a finite number, "
                                  f"found {values[row - 1]}")


def _numbers(series) -> np.ndarray:
    """A NumPy, nullable (no NA left) or bool column as float64."""
    return series.to_numpy(dtype=np.float64)


def _parquet_labels(series, name: str, where: str):
    kind = _kind(series.dtype)
    row = _first_na(series)
    if row is not None:
        raise DataFormatError(f"{where}: label column {name!r}, row {row}: missing label (NA); "
                              "expected a class index or name in every row")
    if kind == "number" and np.issubdtype(np.dtype(series.dtype.numpy_dtype if hasattr(series.dtype, "numpy_dtype")
                                                   else series.dtype), np.integer):
        return series.to_numpy(dtype=np.int64), None
    values = series.astype(object).to_numpy() if kind in ("text", "other") else None
    if values is not None and all(isinstance(v, str) for v in values):
        return _text_labels(values, f"{where}, label column {name!r}")
    raise DataFormatError(f"{where}: label column {name!r} holds {series.dtype}; expected integer class "
                          "indices or class names (strings)")


def _text_labels(values, where: str):
    names, y = np.unique(np.array(list(values), dtype=str), return_inverse=True)
    names = tuple(map(str, names))
    if len(names) > 1:                       # one class is refused where the split is checked
        check_class_names(names, f"{where} (labels)")
    return y.astype(np.int64), names
