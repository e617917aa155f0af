"""`--data PATH`: a data set opened by the kind of PATH, as the `ImageDataset` the command line uses.

Kinds, recognised in this order:

    (none)                     the bundled Fashion-MNIST ($SOFTMAXREG_DATA_DIR first)
    FOLDER of IDX files        train-images-idx3-ubyte, ... (.gz or raw; raw files memory-mapped if big, below)
    FOLDER of .npy files       X_train.npy, y_train.npy [, X_test.npy, y_test.npy] (memory-mapped if big)
    FILE.npz                   arrays X_train, y_train [, X_test, y_test or X_val, y_val] [, class_names];
                               or a sparse matrix as scipy.sparse.save_npz writes it plus its labels y
                               [, class_names] (datasets.sparse_npz: format, shape, data, indices, indptr)
    FILE.svm, .svmlight, .libsvm   the svmlight / libsvm text format (datasets.svmlight): label index:value ...;
                               --zero-based auto|yes|no, --n-features N
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
--val-data PATH names the held-out set of a single-file source (svmlight, CSV, .npz, Parquet): a file
of the same kind and columns (datasets.held_out). Sparse data (svmlight, a sparse .npz) are scipy.sparse
csr_arrays, never densified nor standardized by default (`features` is False).
A source without a test split has `test_images` None: training runs without validation, and
`evaluate` / `predict` use all its rows. `labels=False` (predict) accepts a source without labels.
Every mistake in the data (or --label-column) is a DataFormatError of one line naming the file and
what was expected.
"""

from __future__ import annotations

import glob
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from . import blocks
from .classes import check_num_classes
from .fashion_mnist import CLASS_NAMES_FILE, ImageDataset, check_class_names, load_fashion_mnist, read_class_names
from .columnar import open_parquet, open_zarr, parquet_parts
from .headers import check_declared, npy_header, npz_headers
from .held_out import check_columns, declared_names, held_out_digest, merged_labels, single_file_kind
from .sparse_npz import is_sparse_layout, sparse_from_arrays
from .splits import SPLITS, dataset, digest, named_splits
from .svmlight import SUFFIXES, open_svmlight
from .tables import DASK_HINT, csv_columns, one_line

__all__ = ["open_data", "evaluation_split", "svmlight_width", "SPLIT_NAMES", "DASK_HINT"]

EXPECTED = ("an IDX folder, a folder of X_train.npy and y_train.npy, a .npz, a .csv, an svmlight file "
            "(.svm, .svmlight, .libsvm), a Zarr store or Parquet files")


def open_data(path=None, *, label_column=None, labels: bool = True, num_classes=None, val_data=None,
              n_features=None, zero_based="auto", class_names=None) -> ImageDataset:
    """The data set at `path` (kinds: the module docstring), checked: X numeric with rows, y integer
    class indices of the same count, the test split's rows shaped as the training split's.
    num_classes: the classes are 0..num_classes-1 (--num-classes); without it, labels without names
    name 0..max label, refused when the training labels cannot support that many (datasets.classes).
    val_data: the held-out set of a single-file `path` (svmlight, CSV, .npz, Parquet; datasets.held_out).
    n_features, zero_based: the width and index base of svmlight files (datasets.svmlight);
    class_names: of svmlight files judged by a model (`evaluate`), the model's classes, named by the labels."""
    check_num_classes(num_classes)
    kind = single_file_kind(path)
    if kind != "svmlight" and (n_features is not None or zero_based != "auto"):
        flag = "--n-features" if n_features is not None else "--zero-based"
        raise DataFormatError(f"{flag}: goes with svmlight data ({', '.join(SUFFIXES)}), not "
                              f"{path if path is not None else 'the bundled Fashion-MNIST'}")
    if val_data is not None and kind is None:
        raise DataFormatError(f"--val-data {val_data}: goes with a single-file --data (svmlight, CSV, .npz, "
                              f"Parquet); {path if path is not None else 'the bundled Fashion-MNIST'} has its own "
                              "test split or none")
    if val_data is not None and single_file_kind(val_data) != kind:
        raise DataFormatError(f"--val-data {val_data}: expected a file of the training file's kind ({kind}, "
                              f"as {path}), found {single_file_kind(val_data) or 'another kind'}")
    if kind == "svmlight":
        return open_svmlight(Path(path), val_data, labels, num_classes, n_features, zero_based, class_names)
    if val_data is not None:
        return _with_held_out(kind, path, val_data, label_column, labels, num_classes)
    if path is None:
        return _no_columns(load_fashion_mnist, None, label_column, num_classes=num_classes)
    text, p = str(path), Path(path)
    if p.suffix == ".parquet" or (not p.exists() and glob.has_magic(text)):   # a path that exists is itself
        return open_parquet(text, label_column, labels, num_classes)
    if p.is_dir():
        if p.suffix == ".zarr" or (p / "zarr.json").is_file() or (p / ".zgroup").is_file():
            return _no_columns(open_zarr, p, label_column, labels, num_classes)
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


def svmlight_width(path, model, zero_based="auto", labels: bool = True) -> dict:
    """open_data's svmlight options to judge `model` on the file at `path`: its width is the model's
    inputs (a test file's largest index says less), its labels name the model's classes, and its
    first index is the training files' (the model's `index_base`, unless `zero_based` says; a test
    file without index 0 says nothing); {} for other kinds."""
    if single_file_kind(path) != "svmlight":
        return {} if zero_based == "auto" else {"zero_based": zero_based}     # refused by open_data, named
    if zero_based == "auto" and model.index_base is not None:
        zero_based = model.index_base == 0
    return {"n_features": model.num_inputs, "zero_based": zero_based,
            **({"class_names": tuple(model.class_names)} if labels else {})}


SPLIT_NAMES = {"test": "test split", "all": "all rows"}


def evaluation_split(data: ImageDataset) -> tuple[object, object, str]:
    """(X, y, split) that `evaluate` and `predict` judge: the test split ("test"), else all rows ("all");
    SPLIT_NAMES says them in words."""
    if data.test_images is not None:
        return data.test_images, data.test_labels, "test"
    return data.train_images, data.train_labels, "all"


def _npz(p: Path, labels: bool, num_classes=None) -> ImageDataset:
    return dataset(p, digest(p), *_npz_parts(p, labels), labels, num_classes)


def _npz_parts(p: Path, labels: bool):
    """({"train": (X, y, where), "test": ...}, class names or None) of an .npz of dense splits, or of
    one sparse matrix and its labels (datasets.sparse_npz)."""
    check_declared(npz_headers(p), str(p), SPLITS)          # shapes checked before any array is read
    try:
        with np.load(p, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:   # empty: EOFError; cut short: BadZipFile
        raise DataFormatError(f"{p}: not a readable .npz archive of plain arrays: {one_line(e)}") from None
    if is_sparse_layout(arrays):
        splits = {"train": (sparse_from_arrays(arrays, str(p)), arrays.get("y"), f"{p} (y)")}
        if labels and splits["train"][1] is None:
            raise DataFormatError(f"{p}: a sparse matrix without its labels: expected an array y beside it")
    else:
        splits = named_splits(arrays.get, sorted(arrays), str(p), labels)
    names = arrays.get("class_names")
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataFormatError(f"{p}: class_names: expected a 1-D array of strings, found {names.dtype} "
                                  f"of shape {names.shape}")
        names = check_class_names(names.astype(str).tolist(), f"{p} (class_names)")
    return splits, names


def _with_held_out(kind: str, path, val_data, label_column, labels: bool, num_classes) -> ImageDataset:
    """The training file `path` and its held-out set `val_data`, both of `kind` (datasets.held_out)."""
    def parts(f):
        if not glob.has_magic(str(f)) and not Path(f).exists():
            raise DataFormatError(f"{f}: data file does not exist; expected {EXPECTED}")
        if kind == "npz":
            return (*_npz_parts(Path(f), labels), digest(Path(f)))
        if kind == "csv":
            return (*_csv_parts(Path(f), label_column, labels), digest(Path(f)))
        return parquet_parts(str(f), label_column, labels)
    if kind == "npz" and label_column is not None:
        raise DataFormatError(f"{path}: --label-column {label_column} goes with CSV and Parquet data; this kind "
                              "has no columns")
    (train, names, sums), (val, val_names, val_sums) = parts(path), parts(val_data)
    for f, splits in ((path, train), (val_data, val)):
        if "test" in splits:
            raise DataFormatError(f"--val-data {val_data}: {f} has a test split of its own ({splits['test'][2]}); "
                                  "expected one set of rows in each file")
    if kind != "npz":
        check_columns(kind, path, val_data)
    (X, y, where), (X_val, y_val, val_where) = train["train"], val["train"]
    if kind == "npz":
        names = declared_names(names, val_names, val_data)
    elif labels:
        y, y_val, names = merged_labels((y, names), (y_val, val_names))
    splits = {"train": (X, y, where), "test": (X_val, y_val, val_where)}
    return dataset(path, {**sums, **held_out_digest(val_sums)}, splits, names, labels, num_classes)


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
    splits = named_splits(get, sorted(f.stem for f in p.glob("*.npy")), str(p), labels)
    names_file = p / CLASS_NAMES_FILE
    names = read_class_names(names_file) if names_file.is_file() else None
    files = [p / f"{name}.npy" for split in SPLITS for name in split if (p / f"{name}.npy").is_file()]
    return dataset(p, digest(*files), splits, names, labels, num_classes)


def _csv(p: Path, label_column, labels: bool, num_classes=None) -> ImageDataset:
    return dataset(p, digest(p), *_csv_parts(p, label_column, labels), labels, num_classes)


def _csv_parts(p: Path, label_column, labels: bool):
    X, y, names = csv_columns(p, label_column, labels)
    return {"train": (X, y, str(p))}, names

