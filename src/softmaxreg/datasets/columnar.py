"""Zarr stores and Parquet files: the sources that grow past RAM. Data of more than
blocks.STREAM_BYTES (Zarr's X_train, Parquet's columns uncompressed) give Dask arrays chunked by
rows (what `fit` streams; Zarr's labels and test split are read); smaller ones are read into memory
without Dask, so a small file costs no Dask import or graph (sources.py opens them by their kind)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import DataFormatError
from . import blocks
from .fashion_mnist import ImageDataset
from .headers import check_declared, memory_budget
from .splits import SPLITS, check_split, dataset, digest, named_splits
from .tables import DASK_HINT, one_line, parquet_columns, unique_header

__all__ = ["open_zarr", "open_parquet", "parquet_parts"]


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


def open_zarr(p: Path, labels: bool, num_classes=None) -> ImageDataset:
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
    splits = named_splits(get, names, str(p), labels)
    for key, (X, y, where) in splits.items():         # labels and the test split in memory, X_train streamed
        if y is not None:
            check_split(X, y, where, labels)
        splits[key] = (X if key == "train" else _computed(X), None if y is None else _computed(y), where)
    return dataset(p, digest(p), splits, None, labels, num_classes)


def open_parquet(pattern: str, label_column, labels: bool, num_classes=None) -> ImageDataset:
    splits, names, sums = parquet_parts(pattern, label_column, labels)
    return dataset(pattern, sums, splits, names, labels, num_classes)


def parquet_parts(pattern: str, label_column, labels: bool):
    files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) and not os.path.exists(pattern) else [pattern]
    if not files or not all(os.path.exists(f) for f in files):
        raise DataFormatError(f"{pattern}: no such Parquet file" + (" (the glob matches nothing)" if not files else ""))
    X, y, names = parquet_columns(_parquet_frame(files, pattern), pattern, label_column, labels)
    return {"train": (X, y, pattern)}, names, digest(*map(Path, files))


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
