"""The row blocking of the training step's products, chosen per machine.

Every (n, d) @ (d, k) product of a step (the lesson: n = batch 256, d = 784, k = 10, float32)
and the weight gradient x.T @ G can run as one BLAS call or as a loop over blocks of rows.
Which is faster depends on the machine, so it is measured, not written down: OpenBLAS runs a
64-row product in the calling thread without packing the operands, while a 256-row one is
packed and split over the cores. On an AVX-512 machine (OpenBLAS SkylakeX kernel, 2 cores)
64-row blocks made the reference run faster (0.70 s against 0.80 s); on an AVX2 machine
(Zen 3, Haswell kernel) slower (0.91 s against 0.70 s).

The first time a process needs the block (`block_rows`), it reads the machine's choice from a
small JSON file in the package's cache folder, or, if there is none, measures lesson-shaped
steps for every candidate in `CANDIDATES` (~0.06 s on a quiet 2-core machine) and writes the
choice there. The choice, measured on the lesson's float32 step, applies to every product of
the model with fewer than `WIDE` output columns (float64 ones and prediction's larger chunks
too); wider products are one call each (`block_rows_for`). The file is named by a key of
what makes machines differ (CPU model and flags, NumPy and the BLAS it was built with, the
BLAS core-type and thread settings), so another machine or another BLAS measures afresh.
Deleting the file measures again; do it on a quiet machine, since while other processes keep
the cores busy the timings swing either way (a product split over busy cores can take
milliseconds). $SOFTMAXREG_GEMM_ROWS (an integer >= 0, 0 = one product per batch) overrides
both. `blocking_info` says what was chosen, why, and on what machine, for run records and
benchmarks.

Bits: blocks change the order of the floating-point sums (the gradient is a sum of per-block
products, and BLAS may take another kernel path for a small block), so two block sizes give
results that differ in the last bits. A process decides once and keeps its choice, and a
machine keeps its cached choice from run to run, so on one machine the same seed gives the
same bits and a resumed run continues bit for bit. Across machines, or with the cache off
(every process measures, and a close race may go either way), set $SOFTMAXREG_GEMM_ROWS to
pin the bits.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..cachedir import cache_dir
from ..errors import InvalidArgumentError

__all__ = ["ROWS_ENV", "CANDIDATES", "WIDE", "matmul_rows", "matmul_t_rows", "block_rows", "block_rows_for",
           "pin_block_rows", "blocking_info", "machine_key", "one_blas_thread"]

ROWS_ENV = "SOFTMAXREG_GEMM_ROWS"
# Block sizes tried, in rows; 0 is one product per batch, the plain math and the incumbent: a
# block replaces it only if it takes less than CLEARLY_FASTER of its time.
CANDIDATES = (0, 64, 128)
CLEARLY_FASTER = 0.97
_STEP_SHAPE = (256, 784, 10)     # the lesson's step: batch, inputs, classes
WIDE = 64
"""From this many output columns (classes) on, a product is one call whatever the machine's choice:
it is compute-bound, so BLAS's packing pays, and the blocks' partial sums of x.T @ G would cost a
pass over the (d, k) gradient each (AMD EPYC, one thread, batch 256, d = 512: one product against
blocks of 64 rows, x.T @ G 98 / 109 us at k = 32, 2.9 / 3.3 ms at k = 1,000). The lesson's k = 10
keeps the measured choice, and its bits. The objective's row-major kernel starts here too
(objective.py)."""
_STEPS = 3                       # timed steps per candidate and round
_ROUNDS = (3, 20)                # rounds of all candidates in turn: at least, at most
_BUDGET_S = 0.08                 # no round starts after this long (unless fewer than the least are done)
_FORMAT = 1                      # part of the cache key: bump it when the measurement changes
_BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
             "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_lock = threading.Lock()
_decision: dict | None = None    # this process's choice, made once (see blocking_info)
_controller = None               # threadpoolctl's view of the BLAS libraries loaded, made once


def one_blas_thread():
    """A context in which BLAS computes each product on the calling thread alone.

    For passes that run their chunks on threads of their own (full_batch.FullBatch, Dask's blocks):
    a BLAS that also splits every chunk's narrow product (n x d times d x k) over all cores only
    makes the threads contend (10,000 Fashion-MNIST rows, OpenBLAS Haswell, 2 cores: a Hessian
    product took 62 ms against 41 ms), and the bits of a product may depend on BLAS's thread count
    (OpenBLAS's Haswell kernels), so with one thread a chunk has the same bits on every machine and
    scheduler. The limit is process-wide, like BLAS's own setting; it is restored on exit."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def matmul_rows(x: np.ndarray, B: np.ndarray, out: np.ndarray, *, rows: int | None = None) -> np.ndarray:
    """out <- x @ B, one block of `rows` rows of x at a time (default `block_rows_for(B's columns)`;
    0: one product)."""
    step = (block_rows_for(out.shape[-1]) if rows is None else rows) or max(x.shape[0], 1)
    for start in range(0, x.shape[0], step):
        np.matmul(x[start:start + step], B, out=out[start:start + step])
    return out


def matmul_t_rows(x: np.ndarray, G: np.ndarray, out: np.ndarray, scratch: np.ndarray, *,
                  rows: int | None = None) -> np.ndarray:
    """out <- x.T @ G = sum over blocks of `rows` rows of x_r.T @ G_r (default `block_rows_for(G's
    columns)`; 0: one product). scratch has out's shape and holds each block's product before it is added."""
    step = (block_rows_for(out.shape[-1]) if rows is None else rows) or max(x.shape[0], 1)
    np.matmul(x[:step].T, G[:step], out=out)
    for start in range(step, x.shape[0], step):
        out += np.matmul(x[start:start + step].T, G[start:start + step], out=scratch)
    return out


def block_rows() -> int:
    """This process's row block for the products (0: one product per batch); see `blocking_info`."""
    if _decision is None:
        blocking_info()
    return _decision["rows"]


def block_rows_for(columns: int) -> int:
    """The row block for a product with `columns` output columns: `block_rows()` below `WIDE`
    columns, 0 (one product) from there on."""
    return block_rows() if columns < WIDE else 0


def pin_block_rows(rows: int) -> None:
    """Use `rows` in this process from now on, whatever it would choose itself: a driver's choice
    given to the processes that compute parts of its sums (dask_engine's workers, whose BLAS
    settings and measurements differ), so every part has the bits the driver's process would get."""
    global _decision
    with _lock:
        if _decision is None or _decision["rows"] != rows:
            _decision = {"rows": int(rows), "source": "pinned", "file": None, "key": None,
                         "median_us": None, "ratio": None, "measure_s": None}


def blocking_info() -> dict:
    """The row blocking this process uses, deciding it on the first call.

    Returns a dict with
        rows       the block, in rows (0: one product per batch);
        source     "env" ($SOFTMAXREG_GEMM_ROWS), "cached" (read from `file`) or "measured"
                   (by this process; written to `file` unless the cache is off or unwritable);
        file       the cache file, or None;
        key        `machine_key()`, what the choice is valid for;
        median_us  {str(rows): median microseconds of a measured step} per candidate, and
        ratio      {str(rows): median over rounds of its time / one product's time}, both from
                   the measurement that made the choice (None for "env");
        measure_s  what that measurement cost, in seconds (None for "env").
    Raises InvalidArgumentError if $SOFTMAXREG_GEMM_ROWS is set but not an integer >= 0.
    """
    global _decision
    if _decision is None:
        with _lock:                  # threads starting together measure once, and agree
            if _decision is None:
                _decision = _decide()
    return copy.deepcopy(_decision)


def machine_key() -> dict:
    """What makes one machine's best block differ from another's: the CPU (model, and a digest of
    its feature flags), the CPUs this process may run on, NumPy and the BLAS it was built with, and
    the environment variables that pick the BLAS kernel and its threads. Cheap (~0.3 ms)."""
    cpu, flags = _cpu()
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = " ".join(str(blas.get(field, "")) for field in ("name", "version", "openblas configuration"))
    except (TypeError, KeyError):    # NumPy < 1.26 cannot return its configuration
        blas = "unknown"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"format": _FORMAT, "machine": platform.machine(), "cpu": cpu,
            "cpu_flags": hashlib.sha256(flags.encode()).hexdigest()[:16], "cpus": cpus,
            "numpy": np.__version__, "blas": blas,
            "env": {name: os.environ[name] for name in _BLAS_ENV if name in os.environ}}


def _cpu() -> tuple[str, str]:
    """(model, feature flags) of the first CPU in /proc/cpuinfo; elsewhere what `platform` knows."""
    info = {}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:           # the first CPU's block ends at the first blank line
                if not line.strip():
                    break
                name, _, value = line.partition(":")
                info[name.strip()] = value.strip()
    model = (info.get("model name") or " ".join(info.get(f, "") for f in ("CPU implementer", "CPU part")).strip()
             or platform.processor())
    return model, info.get("flags") or info.get("Features") or ""


def _decide() -> dict:
    """The override, else the cached choice for this machine, else a fresh measurement (cached)."""
    key = machine_key()
    env = os.environ.get(ROWS_ENV, "").strip()
    if env:
        if not (env.isascii() and env.isdigit()):
            raise InvalidArgumentError(f"{ROWS_ENV}: expected an integer >= 0 (rows per product block, "
                                       f"0 for one product per batch), got {env!r}")
        return {"rows": int(env), "source": "env", "file": None, "key": key,
                "median_us": None, "ratio": None, "measure_s": None}
    folder = cache_dir()
    path = None
    if folder is not None:
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = folder / f"gemm-blocking-{name}.json"
        cached = _load(path, key)
        if cached is not None:
            return {**cached, "source": "cached", "file": str(path)}
    record = {"key": key, **_measure()}
    if path is not None:
        with contextlib.suppress(OSError):   # the cache is best-effort: unwritable, this process keeps its own
            held = _publish(path, record)
            return {**held, "source": "measured" if held is record else "cached", "file": str(path)}
    return {**record, "source": "measured", "file": None}


def _load(path: Path, key: dict) -> dict | None:
    """The record cached in `path` for `key`, or None if it is missing, damaged or for another key."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    rows = record.get("rows")
    return record if type(rows) is int and rows in CANDIDATES else None


def _publish(path: Path, record: dict) -> dict:
    """Write `record` to `path`, unless another process has cached a valid one there first; return
    the record that holds.

    The file appears whole or not at all: a temporary file in the same folder is hard-linked into
    place, and the link fails if the file exists, so processes that measured at the same time all
    take the first one's choice. A damaged file, or a file system without hard links, gets an
    atomic replace instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            held = _load(path, record["key"])
            if held is not None:
                return held
            os.replace(tmp, path)
        except OSError:
            os.replace(tmp, path)
        return record
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _measure() -> dict:
    """Time lesson-shaped steps with every candidate block and choose one.

    A step here is a training step's traffic around its products, without the softmax: cast a
    uint8 batch to float32, x @ W, the logits copied class-major, x.T @ G from that transposed
    buffer, W <- W0 - lr dW. The whole step is timed, not the products alone: a product split
    over the cores leaves x and dW in the other core's cache, and the cast that rewrites x and
    the update that reads dW pay for it (on the AVX-512 machine above, one product per batch
    doubled the cast's time in the real loop). W restarts from W0 every step, so the numbers
    never drift. The candidates take turns, each round starting with the next one, and each
    turn is one untimed step (the first after a switch pays for waking BLAS threads) and _STEPS
    timed ones. A candidate's time over one product's time in the same round is a paired ratio;
    the median of those ratios over rounds decides, so slow spells of a busy machine cannot.
    The incumbent (one product) stays unless the best block's median ratio is below
    CLEARLY_FASTER. Rounds stop at _BUDGET_S (a quiet machine does all of them well within it),
    so that a machine whose other cores are busy, where a threaded product can take
    milliseconds, still decides quickly.
    """
    start = time.perf_counter()
    n, d, k = _STEP_SHAPE
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, d), dtype=np.uint8)
    W0 = rng.normal(0.0, 0.01, size=(d, k)).astype(np.float32)
    W, dW, scratch = W0.copy(), np.empty((d, k), np.float32), np.empty((d, k), np.float32)
    x, z, zt = np.empty((n, d), np.float32), np.empty((n, k), np.float32), np.empty((k, n), np.float32)
    lr = np.float32(1e-12)

    def step(rows: int) -> None:
        np.copyto(x, pixels)
        matmul_rows(x, W, z, rows=rows)
        np.copyto(zt, z.T)
        matmul_t_rows(x, zt.T, dW, scratch, rows=rows)
        np.multiply(dW, lr, out=scratch)
        np.subtract(W0, scratch, out=W)

    seconds = {rows: [] for rows in CANDIDATES}
    for r in range(_ROUNDS[1]):
        if r >= _ROUNDS[0] and time.perf_counter() - start > _BUDGET_S:
            break
        turn = r % len(CANDIDATES)
        for rows in CANDIDATES[turn:] + CANDIDATES[:turn]:
            step(rows)
            t0 = time.perf_counter()
            for _ in range(_STEPS):
                step(rows)
            seconds[rows].append(time.perf_counter() - t0)
    incumbent = CANDIDATES[0]
    ratio = {rows: statistics.median(t / t1 for t, t1 in zip(seconds[rows], seconds[incumbent]))
             for rows in CANDIDATES}
    best = min(CANDIDATES, key=ratio.__getitem__)
    return {"rows": best if ratio[best] < CLEARLY_FASTER else incumbent,
            "median_us": {str(rows): round(statistics.median(s) / _STEPS * 1e6, 1) for rows, s in seconds.items()},
            "ratio": {str(rows): round(r, 3) for rows, r in ratio.items()},
            "measure_s": round(time.perf_counter() - start, 4)}
