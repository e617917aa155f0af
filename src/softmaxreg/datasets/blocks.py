"""Rows read in blocks from data that need not fit in memory: NumPy arrays, memory-mapped files
(`np.load(path, mmap_mode="r")`, `idx.open_idx_memmap`) and Dask arrays.

`iterate_block_minibatches`: SGD's epoch order for streamed data (see its docstring for what it
does to the lesson's math). Passes in order over the rows (`iterate_rows`) and the pages a pass
hands back (`PageRelease`) are the engines' (engines/rows.py).
"""

from __future__ import annotations

import numpy as np

from ..engines import engine_for
from ..engines.rows import BLOCK_ROWS, PageRelease, row_blocks
from ..errors import InvalidArgumentError

__all__ = ["iterate_block_minibatches", "STREAM_BYTES", "SHUFFLE_BLOCK_ROWS", "SHUFFLE_WINDOW"]

STREAM_BYTES = 256 * 2**20
"""The data sources' rule (datasets.sources, load_fashion_mnist): training images (.npy, raw IDX) larger
than this are memory-mapped, streamed, block shuffle (shuffle="auto" under SGD); smaller ones are read
into memory, so small data behave exactly as before (full shuffle, early stopping, the same bits)."""

SHUFFLE_BLOCK_ROWS = BLOCK_ROWS
"""Rows per block of the block shuffle (NumPy and memory-mapped data; a Dask array uses its chunks)."""
SHUFFLE_WINDOW = 8
"""Blocks per shuffle window: 8 x 4096 rows of 784 uint8 features is 25.7 MB held at a time."""


def _read_window(arrays, ranges, buffers, releases, blocks=None) -> int:
    """Copy rows `ranges` of each array, one after another, into `buffers`; returns the row count.
    Dask arrays are computed together, in one `dask.compute` on the current scheduler. The first
    array's rows (X) are checked finite as they arrive (InvalidArgumentError naming block `blocks[j]`
    of range j: a Dask array is not checked before training, a NaN would pass for divergence)."""
    computed = {}
    lazy = [(i, j) for i, a in enumerate(arrays) if engine_for(a).name == "dask" for j in range(len(ranges))]
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
    if any(engine_for(a).name == "dask" and row_blocks(a) != blocks for a in arrays[1:]):
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
