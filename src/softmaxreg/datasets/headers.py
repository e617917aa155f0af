"""Declared shapes checked before anything is allocated: the headers of .npy files (alone or in an
.npz) and the metadata of Zarr arrays say a shape and a dtype; a reader compares them with the bytes
the file holds, with each other (features and labels of a split have as many rows) and with the
machine's memory, so a 100-byte file claiming 10^12 elements is refused in one line, not read."""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataFormatError

__all__ = ["memory_budget", "npy_header", "npz_headers", "check_declared"]


def memory_budget() -> int:
    """Bytes a reader may allocate for arrays read into memory: half the machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):          # not POSIX: a conservative 4 GiB
        return 4 * 2**30


def _read_header(stream, where: str) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, bytes of data declared) of the .npy header at the start of `stream`."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown .npy format version {version}")
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(stream)                       # numpy bounds the header's length itself
    except Exception as e:                  # numpy's parser of the header raises many kinds (tokenize's too)
        raise DataFormatError(f"{where}: not a plain numeric .npy array: {_first_line(e)}") from None
    if dtype.hasobject:
        raise DataFormatError(f"{where}: not a plain numeric .npy array: it holds Python objects (dtype {dtype}), "
                              "which would need pickle (never loaded)")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise DataFormatError(f"{where}: header declares an invalid shape {shape}")
    return tuple(shape), dtype, math.prod(shape) * dtype.itemsize


def _first_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__


def _fits(where: str, shape, dtype, nbytes: int, held: int | None, in_memory: bool) -> None:
    if held is not None and nbytes > held:
        raise DataFormatError(f"{where}: truncated: its header declares shape {shape} of {dtype} ({nbytes} bytes) "
                              f"but {held} bytes of data follow")
    if in_memory and nbytes > memory_budget():
        raise DataFormatError(f"{where}: declares shape {shape} of {dtype} ({nbytes / 2**30:.3g} GiB), more than "
                              f"the memory this machine can give it ({memory_budget() / 2**30:.3g} GiB)")


def npy_header(f: Path, *, in_memory: bool) -> tuple:
    """The shape a .npy file declares, checked against the bytes it holds (and, if it is to be read
    into memory, against the memory budget) before it is read."""
    try:
        with open(f, "rb") as stream:
            shape, dtype, nbytes = _read_header(stream, str(f))
            held = os.fstat(stream.fileno()).st_size - stream.tell()
    except OSError as e:
        raise DataFormatError(f"{f}: cannot read: {e.strerror or e}") from None
    _fits(str(f), shape, dtype, nbytes, held, in_memory)
    return shape


def npz_headers(p: Path) -> dict:
    """{name: shape} of the .npy members of an .npz, each checked against its size in the archive and
    all of them together against the memory budget (an archive is read into memory) before any is read."""
    shapes, total = {}, 0
    try:
        with zipfile.ZipFile(p) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name, where = info.filename[:-4], f"{p} (array {info.filename[:-4]})"
                with archive.open(info) as stream:
                    shape, dtype, nbytes = _read_header(stream, where)
                    held = info.file_size - stream.tell()
                _fits(where, shape, dtype, nbytes, held, True)
                shapes[name], total = shape, total + nbytes
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, NotImplementedError, RuntimeError) as e:
        raise DataFormatError(f"{p}: not a readable .npz archive of plain arrays: {_first_line(e)}") from None
    if total > memory_budget():
        raise DataFormatError(f"{p}: its arrays declare {total / 2**30:.3g} GiB in all, more than the memory this "
                              f"machine can give them ({memory_budget() / 2**30:.3g} GiB)")
    return shapes


def check_declared(shapes: dict, where: str, splits) -> None:
    """Features and labels of each split (`splits`: pairs of names) declare as many rows."""
    for x_name, y_name in splits:
        x, y = shapes.get(x_name), shapes.get(y_name)
        if x is not None and y is not None and x[:1] != y[:1]:
            raise DataFormatError(f"{where} ({x_name}, {y_name}): {x[0] if x else 0} rows of features but "
                                  f"{y[0] if y else 0} labels (declared shapes {x} and {y})")
