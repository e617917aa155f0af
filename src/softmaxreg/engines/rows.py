"""Rows of data that need not fit in memory, in order: NumPy arrays, memory-mapped files
(`np.load(path, mmap_mode="r")`, `idx.open_idx_memmap`) and Dask arrays (a block at a time).

`PageRelease`: a pass over a read-only memory map hands the pages it has consumed back to the
kernel (`madvise(MADV_DONTNEED)`). Touched pages of a file mapping count in the process's resident
memory until then; after it they stay in the page cache (a second pass reads them without disk
I/O), but not in RSS. The data are unchanged: a released page that is read again is simply mapped
again, so releasing never changes a result, only the memory figure.
"""

from __future__ import annotations

import math
import mmap

import numpy as np

from ..errors import InvalidArgumentError
from .kinds import is_dask, mapping_of

__all__ = ["BLOCK_ROWS", "check_rows", "PageRelease", "row_blocks", "iterate_rows"]

BLOCK_ROWS = 4096
"""Rows per block of a pass in order (NumPy and memory-mapped data; a Dask array uses its chunks)."""


def check_rows(X, num_inputs: int, what: str = "an array") -> None:
    """Refuse X (n, ...) unless its rows flatten to `num_inputs` numbers of a real dtype with a known
    row count (a Dask array's chunks known): InvalidArgumentError naming X. Computes nothing."""
    if X.ndim < 2 or math.prod(X.shape[1:]) != num_inputs or any(map(math.isnan, X.shape)):
        raise InvalidArgumentError(f"X: expected {what} of shape (n, {num_inputs}) with known chunk sizes, "
                                   f"got {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or np.issubdtype(X.dtype, np.complexfloating):
        raise InvalidArgumentError(f"X: expected {what} of real numbers, got {X.dtype}")


class PageRelease:
    """release(start, stop): give back the pages of rows [start, stop) of `array` (n, ...), a
    C-contiguous view of a read-only memory map; a no-op for any other array (in memory, writable).

    The range is widened to whole pages: a neighbouring row that shares a page is mapped again
    from the page cache when it is read, so this is safe in any order and from any thread."""

    def __init__(self, array):
        self.mm = None
        mm = mapping_of(array) if isinstance(array, np.ndarray) else None
        if mm is None or array.flags.writeable or not array.flags.c_contiguous or array.ndim == 0:
            return                              # a writable (copy-on-write) map would lose its changes
        self.mm = mm
        self.base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
        self.offset = array.ctypes.data - self.base          # the first row's byte in the mapping
        self.row_bytes = array.strides[0] if array.shape[0] > 1 else array.nbytes
        self.size = len(mm)

    def release(self, start: int, stop: int) -> None:
        if self.mm is None or stop <= start:
            return
        first = (self.offset + start * self.row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
        end = min(self.offset + stop * self.row_bytes, self.size)
        if end > first:
            self.mm.madvise(mmap.MADV_DONTNEED, first, end - first)


def row_blocks(array, block_rows: int = BLOCK_ROWS) -> list[tuple[int, int]]:
    """[(start, stop)] cutting the rows of `array` into blocks: a Dask array's own row chunks, else
    blocks of `block_rows` (the last one shorter)."""
    if is_dask(array):
        ends = np.cumsum((0, *array.chunks[0]))
        return [(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:]) if b > a]
    n = array.shape[0]
    return [(start, min(start + block_rows, n)) for start in range(0, n, block_rows)]


def iterate_rows(array, block_rows: int = BLOCK_ROWS):
    """Yield (start, stop, block) over the rows of `array` in order, block an ndarray of rows
    [start, stop) (`row_blocks`: a Dask array's chunks, computed one at a time); the pages of a
    memory map are released behind the pass (`PageRelease`), so its resident memory stays at a block."""
    release = PageRelease(array)
    for start, stop in row_blocks(array, block_rows):
        block = array[start:stop]
        yield start, stop, np.asarray(block.compute() if is_dask(block) else block)
        release.release(start, stop)
