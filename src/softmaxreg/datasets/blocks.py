"""Rows read in blocks from data that need not fit in memory: NumPy arrays, memory-mapped files
(`np.load(path, mmap_mode="r")`, `idx.open_idx_memmap`) and Dask arrays.

Two things live here, so every pass over big data shares them:

- `PageRelease`: a pass over a read-only memory map hands the pages it has consumed back to the
  kernel (`madvise(MADV_DONTNEED)`). Touched pages of a file mapping count in the process's
  resident memory until then; after it they stay in the page cache (a second pass reads them
  without disk I/O), but not in RSS. The data are unchanged: a released page that is read again
  is simply mapped again, so releasing never changes a result, only the memory figure.
- `iterate_block_minibatches`: SGD's epoch order for streamed data (see its docstring for what it
  does to the lesson's math).
"""

from __future__ import annotations

import math
import mmap

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["PageRelease", "is_dask", "is_streamed", "check_rows", "row_blocks", "iterate_rows",
           "iterate_block_minibatches", "STREAM_BYTES", "SHUFFLE_BLOCK_ROWS", "SHUFFLE_WINDOW"]

STREAM_BYTES = 256 * 2**20
"""The data sources' rule (datasets.sources, load_fashion_mnist): training images (.npy, raw IDX) larger
than this are memory-mapped, streamed, block shuffle (shuffle="auto" under SGD); smaller ones are read
into memory, so small data behave exactly as before (full shuffle, early stopping, the same bits)."""

SHUFFLE_BLOCK_ROWS = 4096
"""Rows per block of the block shuffle (NumPy and memory-mapped data; a Dask array uses its chunks)."""
SHUFFLE_WINDOW = 8
"""Blocks per shuffle window: 8 x 4096 rows of 784 uint8 features is 25.7 MB held at a time."""


def is_dask(*arrays) -> bool:
    """True if any argument is a Dask array (without importing dask)."""
    return any(type(a).__module__.partition(".")[0] == "dask" and hasattr(a, "chunks") for a in arrays)


def check_rows(X, num_inputs: int, what: str = "an array") -> None:
    """Refuse X (n, ...) unless its rows flatten to `num_inputs` numbers of a real dtype with a known
    row count (a Dask array's chunks known): InvalidArgumentError naming X. Computes nothing."""
    if X.ndim < 2 or math.prod(X.shape[1:]) != num_inputs or any(map(math.isnan, X.shape)):
        raise InvalidArgumentError(f"X: expected {what} of shape (n, {num_inputs}) with known chunk sizes, "
                                   f"got {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or np.issubdtype(X.dtype, np.complexfloating):
        raise InvalidArgumentError(f"X: expected {what} of real numbers, got {X.dtype}")


def _mapping(array) -> mmap.mmap | None:
    """The mmap.mmap an ndarray's memory belongs to (np.memmap and np.frombuffer(mm) views), else None."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def is_streamed(array) -> bool:
    """True for data that are read from disk or computed as they are used: a memory map or a Dask array."""
    return is_dask(array) or (isinstance(array, np.ndarray) and _mapping(array) is not None)


class PageRelease:
    """release(start, stop): give back the pages of rows [start, stop) of `array` (n, ...), a
    C-contiguous view of a read-only memory map; a no-op for any other array (in memory, writable).

    The range is widened to whole pages: a neighbouring row that shares a page is mapped again
    from the page cache when it is read, so this is safe in any order and from any thread."""

    def __init__(self, array):
        self.mm = None
        mm = _mapping(array) if isinstance(array, np.ndarray) else None
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


def row_blocks(array, block_rows: int = SHUFFLE_BLOCK_ROWS) -> list[tuple[int, int]]:
    """[(start, stop)] cutting the rows of `array` into blocks: a Dask array's own row chunks, else
    blocks of `block_rows` (the last one shorter)."""
    if is_dask(array):
        ends = np.cumsum((0, *array.chunks[0]))
        return [(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:]) if b > a]
    n = array.shape[0]
    return [(start, min(start + block_rows, n)) for start in range(0, n, block_rows)]


def iterate_rows(array, block_rows: int = SHUFFLE_BLOCK_ROWS):
    """Yield (start, stop, block) over the rows of `array` in order, block an ndarray of rows
    [start, stop) (`row_blocks`: a Dask array's chunks, computed one at a time); the pages of a
    memory map are released behind the pass (`PageRelease`), so its resident memory stays at a block."""
    release = PageRelease(array)
    for start, stop in row_blocks(array, block_rows):
        block = array[start:stop]
        yield start, stop, np.asarray(block.compute() if is_dask(block) else block)
        release.release(start, stop)


def _read_window(arrays, ranges, buffers, releases, blocks=None) -> int:
    """Copy rows `ranges` of each array, one after another, into `buffers`; returns the row count.
    Dask arrays are computed together, in one `dask.compute` on the current scheduler. The first
    array's rows (X) are checked finite as they arrive (InvalidArgumentError naming block `blocks[j]`
    of range j: a Dask array is not checked before training, a NaN would pass for divergence)."""
    computed = {}
    lazy = [(i, j) for i, a in enumerate(arrays) if is_dask(a) for j in range(len(ranges))]
    if lazy:
        import dask
        values = dask.compute(*(arrays[i][slice(*ranges[j])] for i, j in lazy))
        computed = dict(zip(lazy, values))
    for i, (array, buf, release) in enumerate(zip(arrays, buffers, releases)):
        at = 0
        for j, (start, stop) in enumerate(ranges):
            block = computed[i, j] if (i, j) in computed else array[start:stop]
            buf[at:at + stop - start] = block
            if i == 0 and buf.dtype.kind in "fc" and not np.isfinite(buf[at:at + stop - start]).all():
                c = j if blocks is None else blocks[j]
                raise InvalidArgumentError(f"X: chunk {c} (rows {start}..{stop - 1}) contains NaN or infinite values")
            at += stop - start
            release.release(start, stop)
    return at


def iterate_block_minibatches(arrays, batch_size: int, rng: np.random.Generator, *,
                              block_rows: int = SHUFFLE_BLOCK_ROWS, window: int = SHUFFLE_WINDOW, buffers=None):
    """Yield tuples of minibatches of `arrays` (X, y, ...: same first dimension; NumPy arrays,
    memory maps or Dask arrays) covering every row once, reading only a window of blocks at a time.

    The epoch's order: the rows are cut into blocks (`row_blocks`: a Dask array's chunks, else
    `block_rows` rows); the blocks are put in the order rng.permutation(number of blocks); each
    window of `window` consecutive blocks of that order is read (pages of a memory map released
    behind it), its rows are put in the order rng.permutation(rows of the window), and batches of
    `batch_size` are cut from them, a batch carrying over into the next window where one ends, so
    an epoch has num_batches(n, batch_size) batches as with the full shuffle. Memory: one window
    and one batch. Batches are gathered into `buffers` (allocated if not given): each is valid until
    the next is drawn.

    What this does to the lesson's math: minibatches are still drawn without replacement, every
    row once an epoch, and every order of the blocks is equally likely; but a batch holds rows of
    at most `window` blocks (plus a carried tail), so rows near each other in the file share a
    batch more often than under the full permutation. If the file's rows are in random order
    (i.i.d.), a block is itself a random sample and the batches have the full shuffle's
    distribution; if the file is sorted (by label, by time), a window that is small beside the data
    gives batches skewed towards few classes, with noisier gradients that pull the weights
    towards the window's classes in turn: SGD gets worse. Shuffle such a file once on disk first.
    """
    arrays = tuple(arrays)
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise InvalidArgumentError(f"minibatches: arrays with different numbers of examples {[a.shape[0] for a in arrays]}")
    if batch_size < 1 or block_rows < 1 or window < 1:
        raise InvalidArgumentError(f"block shuffle: expected batch_size, block_rows, window >= 1, "
                                   f"got {batch_size}, {block_rows}, {window}")
    blocks = row_blocks(arrays[0], block_rows)
    if any(is_dask(a) and row_blocks(a) != blocks for a in arrays[1:]):
        raise InvalidArgumentError("block shuffle: the Dask arrays' row chunks differ "
                                   f"({[getattr(a, 'chunks', (None,))[0] for a in arrays]})")
    sizes = sorted((stop - start for start, stop in blocks), reverse=True)
    capacity = sum(sizes[:window])
    windows = tuple(np.empty((capacity, *a.shape[1:]), a.dtype) for a in arrays)
    rows = min(batch_size, n)
    if buffers is None:
        buffers = tuple(np.empty((rows, *a.shape[1:]), a.dtype) for a in arrays)
    releases = [PageRelease(a) for a in arrays]
    order = rng.permutation(len(blocks))
    filled = 0                                           # rows already in the batch being built
    for first in range(0, len(blocks), window):
        chosen = order[first:first + window]
        m = _read_window(arrays, [blocks[b] for b in chosen], windows, releases, [int(b) for b in chosen])
        perm = rng.permutation(m)
        at = 0
        while at < m:
            take = min(rows - filled, m - at)
            for win, buf in zip(windows, buffers):
                np.take(win[:m], perm[at:at + take], axis=0, out=buf[filled:filled + take])
            filled, at = filled + take, at + take
            if filled == rows:
                yield tuple(buf[:rows] for buf in buffers)
                filled = 0
    if filled:
        yield tuple(buf[:filled] for buf in buffers)
