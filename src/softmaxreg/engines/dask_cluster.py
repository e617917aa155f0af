"""Where the Dask engine runs: clusters (`connect`: tcp://HOST:PORT or local:N; `local_cluster`), the
NumPy data sent to them (`row_chunks`), and `compute`, which runs a task graph on the scheduler
`dask.compute` would use and turns a lost cluster into one ClusterError. The engine's math is in
engines/dask.py. Imported only for Dask data or `--scheduler`: `import softmaxreg` never imports dask.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import sys
import time
import warnings
from contextlib import ExitStack, contextmanager

import dask
import dask.array as da
import numpy as np

from ..errors import ClusterError, InvalidArgumentError

__all__ = ["connect", "local_cluster", "silenced", "row_chunks", "compute", "current_client", "CHUNK_ROWS"]

CHUNK_ROWS = 8192
"""Rows per block when the command line turns NumPy data (in memory or memory-mapped) into a Dask array (6.4 MB of uint8
Fashion-MNIST rows; 8 blocks for its 60,000 training images). Fixed, not derived from the number of
workers, so the result does not depend on the cluster's size."""

NO_WORKERS_TIMEOUT = 10.0
"""Seconds a computation may wait with no worker in the cluster before the fit gives up."""

CONNECT_TIMEOUT = 10.0
"""Seconds to reach a scheduler given by --scheduler tcp://HOST:PORT."""



def compute(value):
    """dask.compute(value) on the current scheduler; with a distributed Client, a lost cluster (the
    scheduler gone, or no worker for NO_WORKERS_TIMEOUT seconds) raises ClusterError."""
    client = current_client()
    if client is None:
        return dask.compute(value)[0]
    from distributed import TimeoutError as DistributedTimeout

    future = client.compute(value)
    since = None
    try:
        while True:
            try:
                return future.result(timeout=1.0)
            except (DistributedTimeout, TimeoutError):
                if client.nthreads():
                    since = None
                elif since is None:
                    since = time.monotonic()
                elif time.monotonic() - since > NO_WORKERS_TIMEOUT:
                    raise ClusterError(f"Dask cluster {client.scheduler.address}: no worker left for "
                                       f"{NO_WORKERS_TIMEOUT:g} s; the fit stopped") from None
    except (OSError, *_cancelled_errors()) as e:
        raise ClusterError(f"Dask cluster {getattr(client.scheduler, 'address', '')}: lost during the fit "
                           f"({type(e).__name__}: {e})".replace("\n", " ")) from None
    finally:
        future.release()


def _cancelled_errors() -> tuple:
    from concurrent.futures import CancelledError as FuturesCancelled
    from asyncio import CancelledError as AsyncCancelled
    return (FuturesCancelled, AsyncCancelled)


def current_client():
    """The distributed Client dask.compute would use, or None (threaded scheduler)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_client
    try:
        client = get_client()
    except ValueError:                   # no client
        return None
    return client if dask.config.get("scheduler", None) in (None, "dask.distributed", "distributed") else None


def row_chunks(a: np.ndarray, rows: int | None = None):
    """A NumPy array as a Dask array of `rows`-row blocks (default CHUNK_ROWS). In memory: each block
    its own piece of data in the graph (so a cluster spreads them over its workers, and recomputes a
    lost one). A memory map of a file (np.load(mmap_mode="r"), idx.open_idx_memmap): each block a task
    that opens the file where it runs and copies its rows out (`_file_rows`), so the graph holds the
    file's name, not its bytes (da.from_array of a memory map would pickle the whole file into it)."""
    rows = rows or CHUNK_ROWS
    source = _mapped_file(a)
    if source is not None:
        read = dask.delayed(_file_rows, pure=True)
        pieces = [da.from_delayed(read(*source, start, min(start + rows, a.shape[0])),
                                  (min(start + rows, a.shape[0]) - start, *a.shape[1:]), a.dtype)
                  for start in range(0, a.shape[0], rows)]
    else:
        pieces = [da.from_array(a[start:start + rows], chunks=-1) for start in range(0, a.shape[0], rows)]
    return da.concatenate(pieces, axis=0)


def _mapped_file(a) -> tuple | None:
    """(path, dtype, offset, shape) of `a` if it is a whole np.memmap of a file (not a view of one), else None."""
    if (isinstance(a, np.memmap) and isinstance(a.base, mmap.mmap) and getattr(a, "filename", None)
            and a.flags.c_contiguous and a.ndim >= 1):
        return a.filename, a.dtype, a.offset, a.shape
    return None


def _file_rows(path: str, dtype, offset: int, shape: tuple, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of the array of `shape` at byte `offset` of the file `path`, copied out of a
    memory map (runs on a worker)."""
    return np.array(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)[start:stop])


DASHBOARD_ADDRESS = "127.0.0.1:8787"
"""Where `local_cluster(dashboard=True)` serves Dask's dashboard (Dask's usual port; the next free one
if it is taken)."""

SILENT = logging.CRITICAL + 1
"""A log level above every record: distributed's handlers at this level print nothing."""


@contextmanager
def local_cluster(workers: int, *, dashboard: bool = False, quiet: bool = False):
    """A distributed.LocalCluster of `workers` single-threaded worker processes on 127.0.0.1, closed
    at the end. No dashboard unless asked (then at DASHBOARD_ADDRESS): the scheduler's own small
    HTTP server (health and metrics) takes a free port then, never 8787, so nothing warns "Port 8787
    is already in use". `quiet`: no log line or warning from distributed (`silenced`; the workers'
    logs at SILENT). distributed sets the workers' environment (OMP_NUM_THREADS=1, ...) in this
    process's os.environ; it is restored, so nothing after sees other BLAS settings."""
    from distributed import LocalCluster

    environ = dict(os.environ)
    try:
        with silenced(quiet), LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=DASHBOARD_ADDRESS if dashboard else None,
                scheduler_kwargs=None if dashboard else {"dashboard_address": "127.0.0.1:0"},
                silence_logs=SILENT if quiet else logging.WARNING) as cluster:
            yield cluster
    finally:
        os.environ.clear()
        os.environ.update(environ)


@contextmanager
def silenced(quiet: bool):
    """With `quiet` (--quiet), the block prints no log line or warning of distributed (nor of the
    tornado and bokeh libraries it logs through): their handlers at SILENT, their warnings ignored,
    both restored after."""
    if not quiet:
        yield
        return
    handlers = [h for name in ("distributed", "tornado", "bokeh") for h in logging.getLogger(name).handlers]
    levels = [h.level for h in handlers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="distributed|tornado|bokeh")
        for handler in handlers:
            handler.setLevel(SILENT)
        try:
            yield
        finally:
            for handler, level in zip(handlers, levels):
                handler.setLevel(level)


MIN_WORKER_MEMORY = 512 * 2**20
"""The least memory (bytes) a local:N worker process gets: distributed's LocalCluster gives each 1/N of
the machine's, and a worker with less spills and pauses before it holds a block of rows."""


def machine_limits() -> tuple[int, int | None]:
    """(cores this process may use, bytes of physical memory or None where unknown)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        memory = None
    return cores, memory


def check_local_workers(workers: int, address: str) -> None:
    """local:N is capped by the machine: N worker processes of one thread each, at most one per core
    and MIN_WORKER_MEMORY each (InvalidArgumentError of one line with the numbers)."""
    cores, memory = machine_limits()
    most = cores if memory is None else max(1, min(cores, memory // MIN_WORKER_MEMORY))
    if workers > most:
        room = f"{cores} cores" + ("" if memory is None else f" and {memory / 2**30:.1f} GiB of memory "
                                                              f"({MIN_WORKER_MEMORY // 2**20} MiB per worker at least)")
        raise InvalidArgumentError(f"--scheduler {address}: this machine has {room}; use local:N with N <= {most}")


_ADDRESS = re.compile(r"(tcp|tls|ws|wss|inproc)://[^\s/:]+(:[0-9]+)?|(tcp|tls|ws|wss)://\[[0-9A-Fa-f:.]+\](:[0-9]+)?")
"""A scheduler address --scheduler accepts: SCHEME://HOST[:PORT] (an IPv6 host in brackets)."""


@contextmanager
def connect(address: str, *, dashboard: bool = False, quiet: bool = False):
    """A distributed Client for `address`, made the default for the block: tcp://HOST:PORT (an existing
    cluster, reached within CONNECT_TIMEOUT seconds, else ClusterError), or local:N (a LocalCluster of
    N single-threaded worker processes on 127.0.0.1, closed at the end; `dashboard` serves Dask's
    dashboard from it, `local_cluster`). `quiet`: nothing from distributed is printed (`silenced`)."""
    from distributed import Client

    with ExitStack() as stack:
        stack.enter_context(silenced(quiet))
        if address.startswith("local:"):
            count = address.partition(":")[2]
            if not count.isdigit() or int(count) < 1:
                raise InvalidArgumentError(f"--scheduler {address}: expected local:N with N >= 1 worker processes")
            check_local_workers(int(count), address)
            target = stack.enter_context(local_cluster(int(count), dashboard=dashboard, quiet=quiet))
        elif _ADDRESS.fullmatch(address):
            target = address
        else:
            raise InvalidArgumentError(f"--scheduler {address}: expected tcp://HOST:PORT (or tls://, ws://, wss://, "
                                       "inproc://) or local:N")
        try:
            client = stack.enter_context(Client(target, timeout=CONNECT_TIMEOUT, set_as_default=False))
        except ValueError as e:                       # an address distributed cannot parse
            raise ClusterError(f"--scheduler {address}: not a Dask scheduler address "
                               f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"--scheduler {address}: cannot reach a Dask scheduler there "
                               f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        # the default for this block only: dask.config.set restores the scheduler on any exit (a Client's
        # own set_as_default can leave "dask.distributed" behind when it closes during an interrupt)
        with dask.config.set(scheduler="dask.distributed"), client.as_current():
            yield client
