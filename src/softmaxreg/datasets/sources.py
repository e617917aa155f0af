"""`--data PATH`: a data set opened by the kind of PATH, as the `ImageDataset` the command line uses.

Kinds, recognised in this order:

    (none)                     the bundled Fashion-MNIST ($SOFTMAXREG_DATA_DIR first)
    FOLDER of IDX files        train-images-idx3-ubyte, ... (.gz or raw; raw files memory-mapped if big, below)
    FOLDER of .npy files       X_train.npy, y_train.npy [, X_test.npy, y_test.npy] (memory-mapped if big)
    FILE.npz                   arrays X_train, y_train [, X_test, y_test or X_val, y_val] [, class_names]
    FILE.csv                   a header line of column names, numbers in every cell but the labels';
                               --label-column NAME or INDEX; read into memory (small data)
    STORE.zarr (a folder)      arrays X_train, y_train [, X_test, y_test] of a Zarr group
    FILE.parquet, or a glob    --label-column; every other column is a feature

Training images (X_train.npy, raw train-images-idx3-ubyte) larger than blocks.STREAM_BYTES (256 MiB)
are memory-mapped, streamed, block shuffle (SGD's shuffle="auto"; early stopping refused: pass a
validation split); smaller ones are read into memory and train exactly as in-memory arrays do.
Zarr and Parquet data of more than STREAM_BYTES (Zarr's X_train, Parquet's columns uncompressed)
give Dask arrays chunked by rows (what `fit` streams; Zarr's labels and test split are read);
smaller ones are read into memory without Dask, so a small file costs no Dask import or graph.
They need `pip install 'softmaxreg[dask]'` (zarr; pandas and pyarrow; Dask for large data).
Labels are integer class indices (CSV, Parquet: or names, sorted; see `tables`); class names are
the npz's `class_names` array, a folder's class_names.txt, else "0", "1", ..., max label, or 0..K-1
with num_classes=K (--num-classes; datasets.classes: a count the training labels cannot support is
refused). --label-column goes with CSV and Parquet only.
Rows of features (n, d) of any type but uint8 are a feature table (`features`: the command line
standardizes them by default); uint8 rows are pixels, and (n, h, w) arrays images, as IDX files are.
A source without a test split has `test_images` None: training runs without validation, and
`evaluate` / `predict` use all its rows. `labels=False` (predict) accepts a source without labels.
Every mistake in the data (or --label-column) is a DataFormatError of one line naming the file and
what was expected.
"""

from __future__ import annotations

import glob
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from . import blocks
from .classes import check_num_classes, implied_classes, named_classes
from .fashion_mnist import (CLASS_NAMES_FILE, ImageDataset, check_class_names, load_fashion_mnist,
                            read_class_names)
from .headers import check_declared, memory_budget, npy_header, npz_headers
from .tables import DASK_HINT, csv_columns, one_line, parquet_columns, unique_header

__all__ = ["open_data", "evaluation_split", "SPLIT_NAMES", "DASK_HINT"]

SPLITS = (("X_train", "y_train"), ("X_test", "y_test"), ("X_val", "y_val"))
EXPECTED = ("an IDX folder, a folder of X_train.npy and y_train.npy, a .npz, a .csv, a Zarr store "
            "or Parquet files")


def open_data(path=None, *, label_column=None, labels: bool = True, num_classes=None) -> ImageDataset:
    """The data set at `path` (kinds: the module docstring), checked: X numeric with rows, y integer
    class indices of the same count, the test split's rows shaped as the training split's.
    num_classes: the classes are 0..num_classes-1 (--num-classes); without it, labels without names
    name 0..max label, refused when the training labels cannot support that many (datasets.classes)."""
    check_num_classes(num_classes)
    if path is None:
        return _no_columns(load_fashion_mnist, None, label_column, num_classes=num_classes)
    text, p = str(path), Path(path)
    if p.suffix == ".parquet" or (not p.exists() and glob.has_magic(text)):   # a path that exists is itself
        return _parquet(text, label_column, labels, num_classes)
    if p.is_dir():
        if p.suffix == ".zarr" or (p / "zarr.json").is_file() or (p / ".zgroup").is_file():
            return _no_columns(_zarr, p, label_column, labels, num_classes)
        if (p / "X_train.npy").is_file():
            return _no_columns(_npy_folder, p, label_column, labels, num_classes)
        return _no_columns(load_fashion_mnist, p, label_column, num_classes=num_classes)   # a folder of IDX files, the default kind
    if not p.exists():
        raise DataFormatError(f"{p}: data {'file' if p.suffix else 'folder'} does not exist; expected {EXPECTED}")
    if p.suffix == ".npz":
        return _no_columns(_npz, p, label_column, labels, num_classes)
    if p.suffix == ".csv":
        return _csv(p, label_column, labels, num_classes)
    if p.suffix == ".npy":
        raise DataFormatError(f"{p}: a single .npy holds no labels; put X_train.npy and y_train.npy "
                              "(optionally X_test.npy, y_test.npy) in a folder and pass the folder")
    raise DataFormatError(f"{p}: unknown kind of data (suffix {p.suffix or 'none'!r}); expected {EXPECTED}")


def _no_columns(read, p, label_column, *args, **options) -> ImageDataset:
    """read(p, *args), refusing --label-column: the kind of `p` has no columns to choose from."""
    if label_column is not None:
        raise DataFormatError(f"{p if p is not None else 'the bundled Fashion-MNIST'}: --label-column "
                              f"{label_column} goes with CSV and Parquet data; this kind has no columns")
    return read(p, *args, **options)


SPLIT_NAMES = {"test": "test split", "all": "all rows"}


def evaluation_split(data: ImageDataset) -> tuple[object, object, str]:
    """(X, y, split) that `evaluate` and `predict` judge: the test split ("test"), else all rows ("all");
    SPLIT_NAMES says them in words."""
    if data.test_images is not None:
        return data.test_images, data.test_labels, "test"
    return data.train_images, data.train_labels, "all"


def _digest(*paths: Path) -> dict:
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


def _dataset(source: Path | str, sums: dict, splits: dict, names, labels: bool, num_classes=None) -> ImageDataset:
    """The ImageDataset of checked splits {"train": (X, y, where), "test": (X, y, where) or absent}."""
    X, y, where = splits["train"]
    _check_split(X, y, where, labels)
    if num_classes is None:                          # declared classes (evaluate: the model's) may be judged on one
        _refuse_one_class(y, where, labels)
    test = splits.get("test")
    if test is not None:
        _check_split(*test, labels)
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
    return ImageDataset(train_images=X, train_labels=y, test_images=None if test is None else test[0],
                        test_labels=None if test is None else test[1], class_names=tuple(names),
                        source=str(source), sha256=sums, features=X.ndim == 2 and X.dtype != np.uint8)


def _refuse_one_class(y, where: str, labels: bool) -> None:
    """Training needs examples of 2 classes at least (as an IDX folder's: fashion_mnist), unless the
    classes are declared (--num-classes; `evaluate` declares the model's, and may judge it on rows of
    one class)."""
    if labels and y.size and int(y.min()) == int(y.max()):
        raise DataFormatError(f"{where}: every label is {int(y.min())}; training needs examples of at least 2 classes")


def _check_split(X, y, where: str, labels: bool) -> None:
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
        raise DataFormatError(f"{where}: the row chunks of the features {_few_chunks(x_chunks[0])} and of the "
                              f"labels {_few_chunks(y_chunks[0])} differ; write both with the same row chunks")


def _few_chunks(chunks) -> str:
    """Row chunks as a short text: a message stays one readable line however many there are."""
    chunks = tuple(chunks)
    return str(chunks) if len(chunks) <= 6 else f"({', '.join(map(str, chunks[:4]))}, ... {len(chunks):,} in all)"


def _pairs(get, names, where, labels: bool) -> dict:
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


def _npz(p: Path, labels: bool, num_classes=None) -> ImageDataset:
    check_declared(npz_headers(p), str(p), SPLITS)          # shapes checked before any array is read
    try:
        with np.load(p, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:   # empty: EOFError; cut short: BadZipFile
        raise DataFormatError(f"{p}: not a readable .npz archive of plain arrays: {one_line(e)}") from None
    splits = _pairs(arrays.get, sorted(arrays), str(p), labels)
    names = arrays.get("class_names")
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataFormatError(f"{p}: class_names: expected a 1-D array of strings, found {names.dtype} "
                                  f"of shape {names.shape}")
        names = check_class_names(names.astype(str).tolist(), f"{p} (class_names)")
    return _dataset(p, _digest(p), splits, names, labels, num_classes)


def _npy_folder(p: Path, labels: bool, num_classes=None) -> ImageDataset:
    def get(name):
        f = p / f"{name}.npy"
        if not f.is_file():
            return None
        try:                                   # big training images memory-mapped, the rest read
            return np.load(f, mmap_mode="r" if streamed else None, allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:          # an empty file: EOFError
            raise DataFormatError(f"{f}: not a plain numeric .npy array: {one_line(e)}") from None
    streamed = (p / "X_train.npy").stat().st_size > blocks.STREAM_BYTES
    check_declared({f.stem: npy_header(f, in_memory=not streamed) for f in p.glob("*.npy")
                    if f.stem in {name for split in SPLITS for name in split}}, str(p), SPLITS)
    splits = _pairs(get, sorted(f.stem for f in p.glob("*.npy")), str(p), labels)
    names_file = p / CLASS_NAMES_FILE
    names = read_class_names(names_file) if names_file.is_file() else None
    files = [p / f"{name}.npy" for split in SPLITS for name in split if (p / f"{name}.npy").is_file()]
    return _dataset(p, _digest(*files), splits, names, labels, num_classes)


def _csv(p: Path, label_column, labels: bool, num_classes=None) -> ImageDataset:
    X, y, names = csv_columns(p, label_column, labels)
    return _dataset(p, _digest(p), {"train": (X, y, str(p))}, names, labels, num_classes)


def _dask_array(where):
    try:
        import dask.array as da
    except ImportError:
        raise DataFormatError(f"{where}: reading Zarr and Parquet needs Dask: {DASK_HINT}") from None
    return da


def _computed(a):
    """A Dask array's values as NumPy's (`a` itself if it is NumPy's)."""
    return a.compute() if hasattr(a, "compute") else a


MAX_CHUNKS = 1_000_000
"""The most row chunks of a streamed Zarr X_train: each is a Dask task, and a store of fill values
declares any number at no cost (10^7 one-row chunks took 0.6 GiB and 14 s before a refusal)."""


def _zarr(p: Path, labels: bool, num_classes=None) -> ImageDataset:
    try:
        import zarr
        group = zarr.open_group(str(p), mode="r")
        names = sorted(group.array_keys())
        streamed = "X_train" in names and group["X_train"].nbytes > blocks.STREAM_BYTES
        declared = {name: (tuple(group[name].shape), group[name].nbytes) for name in names}
    except ImportError:
        raise DataFormatError(f"{p}: reading Zarr needs zarr: {DASK_HINT}") from None
    except Exception as e:                    # zarr raises many kinds on a broken store
        raise DataFormatError(f"{p}: not a readable Zarr group: {one_line(e)}") from None
    check_declared({name: shape for name, (shape, _) in declared.items()}, str(p), SPLITS)
    read = sum(size for name, (_, size) in declared.items() if not (streamed and name == "X_train"))
    if read > memory_budget():                 # every array but a streamed X_train is read into memory
        raise DataFormatError(f"{p}: its arrays read into memory declare {read / 2**30:.3g} GiB, more than the "
                              f"memory this machine can give them ({memory_budget() / 2**30:.3g} GiB)")
    if streamed and -(-declared["X_train"][0][0] // max(group["X_train"].chunks[0], 1)) > MAX_CHUNKS:
        raise DataFormatError(f"{p} (X_train): row chunks of {group['X_train'].chunks[0]} rows make more than "
                              f"{MAX_CHUNKS:,} chunks, each a Dask task; write it with larger chunks")
    da = _dask_array(p) if streamed else None

    def get(name):
        if name not in names:
            return None
        if streamed:
            return da.from_zarr(str(p), component=name)
        try:
            return group[name][...]
        except Exception as e:
            raise DataFormatError(f"{p}: array {name} is not readable: {one_line(e)}") from None
    splits = _pairs(get, names, str(p), labels)
    for key, (X, y, where) in splits.items():         # labels and the test split in memory, X_train streamed
        if y is not None:
            _check_split(X, y, where, labels)
        splits[key] = (X if key == "train" else _computed(X), None if y is None else _computed(y), where)
    return _dataset(p, _digest(p), splits, None, labels, num_classes)


def _parquet(pattern: str, label_column, labels: bool, num_classes=None) -> ImageDataset:
    files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) and not os.path.exists(pattern) else [pattern]
    if not files or not all(os.path.exists(f) for f in files):
        raise DataFormatError(f"{pattern}: no such Parquet file" + (" (the glob matches nothing)" if not files else ""))
    X, y, names = parquet_columns(_parquet_frame(files, pattern), pattern, label_column, labels)
    return _dataset(pattern, _digest(*map(Path, files)), {"train": (X, y, pattern)}, names, labels, num_classes)


def _parquet_frame(files: list[str], pattern: str):
    """The Parquet files as one table of columns: a pandas DataFrame read here if their data
    (uncompressed, as their metadata says) is at most blocks.STREAM_BYTES, so small files cost no
    Dask; else a Dask DataFrame, read by partitions."""
    try:
        import pandas as pd
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFormatError(f"{pattern}: reading Parquet needs pandas and pyarrow: {DASK_HINT}") from None
    try:
        metadata = [pq.read_metadata(f) for f in files]
    except Exception as e:                    # pyarrow's errors on a file that is not Parquet vary
        raise DataFormatError(f"{pattern}: not readable as Parquet: {one_line(e)}") from None
    for f, meta in zip(files, metadata):
        unique_header([str(name) for name in meta.schema.to_arrow_schema().names], f)
    try:
        size = sum(group_bytes for meta in metadata for group_bytes in _row_group_bytes(meta))
        if size <= blocks.STREAM_BYTES:
            return pd.concat([pq.read_table(f).to_pandas() for f in files])
    except Exception as e:                    # pyarrow's errors on a file that is not Parquet vary
        raise DataFormatError(f"{pattern}: not readable as Parquet: {one_line(e)}") from None
    _dask_array(pattern)
    import dask.dataframe as dd
    try:
        return dd.read_parquet([glob.escape(f) for f in files])      # fsspec globs a path again
    except Exception as e:
        raise DataFormatError(f"{pattern}: not readable as Parquet: {one_line(e)}") from None


def _row_group_bytes(metadata) -> list[int]:
    return [metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)]

