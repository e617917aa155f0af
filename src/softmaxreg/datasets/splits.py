"""The checks every data source's splits pass (datasets.sources): rows of real features and integer
labels of as many rows, a test split shaped as the training split, class names or a class count,
and the ImageDataset that the command line, the experiments and `fit` take. Features may be NumPy,
memory-mapped, Dask or scipy.sparse arrays (sparse ones are never standardized by default)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..engines import engine_for
from ..errors import DataFormatError
from .classes import implied_classes, named_classes
from .fashion_mnist import ImageDataset
from .headers import memory_budget

__all__ = ["dataset", "digest", "check_split", "refuse_one_class", "few_chunks", "named_splits", "SPLITS"]

SPLITS = (("X_train", "y_train"), ("X_test", "y_test"), ("X_val", "y_val"))
"""The arrays a container (.npz, a folder of .npy, Zarr) names its splits by: X and y of train, test or val."""


def digest(*paths: Path) -> dict:
    """{name: SHA-256} of every file in `paths` (a folder: every file under it, by relative name)."""
    sums = {}
    for p in paths:
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            h = hashlib.sha256()
            with open(f, "rb") as stream:
                while chunk := stream.read(1 << 22):
                    h.update(chunk)
            sums[str(f.relative_to(p.parent))] = h.hexdigest()
    return sums


def dataset(source: Path | str, sums: dict, splits: dict, names, labels: bool, num_classes=None, *,
            index_base: int | None = None) -> ImageDataset:
    """The ImageDataset of checked splits {"train": (X, y, where), "test": (X, y, where) or absent};
    index_base: of svmlight files, the first feature index they were read with."""
    X, y, where = splits["train"]
    check_split(X, y, where, labels)
    if num_classes is None:                          # declared classes (evaluate: the model's) may be judged on one
        refuse_one_class(y, where, labels)
    test = splits.get("test")
    if test is not None:
        check_split(*test, labels)
        if tuple(test[0].shape[1:]) != tuple(X.shape[1:]):
            raise DataFormatError(f"{test[2]}: rows of shape {tuple(test[0].shape[1:])}, the training split's "
                                  f"are {tuple(X.shape[1:])}")
    if names is not None:
        names = named_classes(names, num_classes, source)
    elif labels:                                      # classes 0..max label, or declared: classes.py's rule
        names = tuple(map(str, range(implied_classes((y, where), [test[1:]] if test is not None else [], num_classes))))
    else:
        names = ()
    for split in ((X, y, where), *([test] if test is not None else [])):
        if labels and split[1].size and not 0 <= int(split[1].min()) <= int(split[1].max()) < len(names):
            raise DataFormatError(f"{split[2]}: labels must lie in [0, {len(names) - 1}], "
                                  f"found {split[1].min()}..{split[1].max()}")
    sparse = engine_for(X).name == "sparse"
    if sparse:
        _weights_fit(X.shape[1], len(names), where)
    return ImageDataset(train_images=X, train_labels=y, test_images=None if test is None else test[0],
                        test_labels=None if test is None else test[1], class_names=tuple(names),
                        source=str(source), sha256=sums, features=X.ndim == 2 and X.dtype != np.uint8 and not sparse,
                        index_base=index_base)


def refuse_one_class(y, where: str, labels: bool) -> None:
    """Training needs examples of 2 classes at least (as an IDX folder's: fashion_mnist), unless the
    classes are declared (--num-classes; `evaluate` declares the model's, and may judge it on rows of
    one class)."""
    if labels and y.size and int(y.min()) == int(y.max()):
        raise DataFormatError(f"{where}: every label is {int(y.min())}; training needs examples of at least 2 classes")


def check_split(X, y, where: str, labels: bool) -> None:
    if X.ndim < 2 or X.shape[0] == 0 or 0 in X.shape[1:]:
        raise DataFormatError(f"{where}: expected rows of features (n, d) with n, d >= 1, found shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or np.issubdtype(X.dtype, np.complexfloating):
        raise DataFormatError(f"{where}: expected real numbers, found dtype {X.dtype}")
    if not labels and y is None:
        return
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataFormatError(f"{where}: expected labels as integer class indices of 1 dimension, "
                              f"found {y.dtype} of shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise DataFormatError(f"{where}: {X.shape[0]} rows of features but {y.shape[0]} labels")
    x_chunks, y_chunks = getattr(X, "chunks", None), getattr(y, "chunks", None)
    if x_chunks is not None and y_chunks is not None and tuple(x_chunks[0]) != tuple(y_chunks[0]):
        raise DataFormatError(f"{where}: the row chunks of the features {few_chunks(x_chunks[0])} and of the "
                              f"labels {few_chunks(y_chunks[0])} differ; write both with the same row chunks")


def few_chunks(chunks) -> str:
    """Row chunks as a short text: a message stays one readable line however many there are."""
    chunks = tuple(chunks)
    return str(chunks) if len(chunks) <= 6 else f"({', '.join(map(str, chunks[:4]))}, ... {len(chunks):,} in all)"


def _weights_fit(d: int, k: int, where: str) -> None:
    """A sparse matrix's width costs nothing in it, but the model holds a dense (d, k) matrix of
    weights (and a solver a few): refuse a width whose float64 weights alone exceed the memory budget."""
    need = 8 * d * max(k, 2)
    if need > memory_budget():
        raise DataFormatError(f"{where}: {d:,} features x {max(k, 2)} classes need {need / 2**30:.3g} GiB of weights, "
                              f"more than the memory this machine can give them ({memory_budget() / 2**30:.3g} GiB); "
                              "is the largest feature index (or --n-features) what was meant?")


def named_splits(get, names, where, labels: bool) -> dict:
    """{"train": (X, y, where), "test": ...} from a container's arrays (`get(name)` -> array or None)."""
    found = {name: get(name) for split in SPLITS for name in split}
    if found["X_train"] is None:
        raise DataFormatError(f"{where}: missing array X_train (expected X_train and y_train, optionally X_test "
                              f"and y_test or X_val and y_val); found {', '.join(names) or 'no arrays'}")
    splits = {}
    for key, (x_name, y_name) in zip(("train", "test", "test"), SPLITS):
        if key in splits or found[x_name] is None:
            continue
        if found[y_name] is None and labels:
            raise DataFormatError(f"{where}: has {x_name} but no {y_name} (its labels)")
        splits[key] = (found[x_name], found[y_name], f"{where} ({x_name}, {y_name})")
    return splits
