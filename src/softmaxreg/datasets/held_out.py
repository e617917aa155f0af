"""--val-data PATH: the held-out set of a single-file --data (CSV, .npz, Parquet; svmlight reads
both files itself, datasets.svmlight). The held-out file is of the same kind as the training
file, with the same columns (CSV, Parquet: the same names in the same order; .npz: as many
features), and holds one set of rows: neither file may have a test split of its own.

Labels: class indices in both files stay indices (the classes are 0..K-1, K counted over both files
unless declared). Names derived from the labels (CSV, Parquet) are the union of both files' labels,
sorted as text (a file of integer labels beside one of names: its integers are names too, "3"); a
held-out name never seen in training is a class without training rows. Declared names (an .npz's
class_names) must agree: the held-out file's, if it has them, are the training file's.
"""

from __future__ import annotations

import csv
import glob
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from .fashion_mnist import check_class_names

__all__ = ["check_columns", "merged_labels", "declared_names", "held_out_digest", "single_file_kind",
           "SVMLIGHT_SUFFIXES"]

SVMLIGHT_SUFFIXES = (".svm", ".svmlight", ".libsvm")
"""File names of the svmlight / libsvm text format (datasets.svmlight reads them)."""


def single_file_kind(path) -> str | None:
    """"svmlight", "npz", "csv" or "parquet" for a --data path of one of those kinds (by its
    suffix; a Parquet glob too), else None (folders, Zarr stores, the bundled set)."""
    if path is None:
        return None
    p = Path(str(path))
    if p.suffix in SVMLIGHT_SUFFIXES:
        return "svmlight"
    if p.suffix == ".parquet" or (not p.exists() and glob.has_magic(str(path))):
        return "parquet"
    return {".npz": "npz", ".csv": "csv"}.get(p.suffix) if not p.is_dir() else None


def check_columns(kind: str, train, val) -> None:
    """The held-out file's column names are the training file's (CSV header, Parquet schema)."""
    names = [_column_names(kind, f) for f in (train, val)]
    if names[0] != names[1]:
        first = next((i for i, (a, b) in enumerate(zip(*names)) if a != b), min(map(len, names)))
        shown = [n[first] if first < len(n) else "(none)" for n in names]
        raise DataFormatError(f"--val-data {val}: its columns differ from the training file's ({len(names[1])} "
                              f"columns vs {len(names[0])}; column {first + 1} is {shown[1]!r}, in {train} "
                              f"{shown[0]!r}); expected the same columns in the same order")


def _column_names(kind: str, path) -> list[str]:
    if kind == "csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                return next(([c.strip() for c in row] for row in csv.reader(f) if any(c.strip() for c in row)), [])
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataFormatError(f"{path}: cannot read the header line: {e}") from None
    import pyarrow.parquet as pq                    # the Parquet reader has imported it already
    files = sorted(glob.glob(str(path))) if glob.has_magic(str(path)) and not Path(str(path)).exists() else [path]
    return [str(name) for name in pq.read_schema(files[0]).names]


def merged_labels(train: tuple, val: tuple):
    """(y_train, y_val, names or None) of two files' (y, names from their labels): indices stay
    indices; otherwise the union of both files' names, sorted as text."""
    (y, names), (y_val, val_names) = train, val
    if names is None and val_names is None:
        return y, y_val, None
    text = [np.asarray(n, dtype=str)[labels] if n is not None else labels.astype(str)
            for labels, n in ((y, names), (y_val, val_names))]
    union, inverse = np.unique(np.concatenate(text), return_inverse=True)
    union = tuple(map(str, union))
    check_class_names(union, "--val-data (the labels of both files)")
    inverse = inverse.astype(np.int64)
    return inverse[:len(y)], inverse[len(y):], union


def declared_names(train_names, val_names, val) -> tuple | None:
    """The classes an .npz declares (class_names): the held-out file's, if any, equal the training file's."""
    if val_names is not None and tuple(val_names) != tuple(train_names or ()):
        raise DataFormatError(f"--val-data {val}: its class_names differ from the training file's; expected the "
                              "same classes (or no class_names in the held-out file)")
    return train_names


def held_out_digest(sums: dict) -> dict:
    """The held-out file's {name: SHA-256}, its names marked (a file of the training file's name in
    another folder keeps its own entry)."""
    return {f"val-data:{name}": value for name, value in sums.items()}
