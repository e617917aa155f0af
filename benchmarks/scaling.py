"""Scaling series (issue #11): Fashion-MNIST's training split tiled T times (out_of_core.build, the
.npy files), for each T and each way of holding the data, a fresh process measures

  - s/evaluation: one full-batch objective + gradient over all rows, as L-BFGS calls it (median of
    --repeats calls at the initial point after one warm-up; standardize=True, wd = 1 / (C 60000)
    as spark_peer.py, so the figure sits beside Spark's at the same regParam),
  - s/epoch: one SGD epoch of the reference recipe (batch 256, lr 0.1), shuffle="auto" (full
    shuffle in memory, block shuffle for streamed data),
  - peak MB: the process's VmHWM (driver); with a LocalCluster also each worker's own VmHWM.

Modes:
  memory        np.load of the .npy files: the uint8 rows in RAM; FullBatch, all cores
  mmap          np.load(mmap_mode="r"): pages read from the file, released behind each pass
  dask-threads  Dask arrays of --chunk-rows row blocks, threaded scheduler
  dask-local2   the same arrays on dask_cluster.local_cluster(2): 2 single-threaded worker processes

The Dask arrays are built from tasks that open the file where they run and copy their rows out
(da.from_array of a memory map would pickle the whole mapped file into the graph the scheduler
receives). L-BFGS goes through full_batch.prepare_dask, as fit does: on the cluster the blocks are persisted in
the workers' memory; on the threaded scheduler they stay lazy and each evaluation reads them from
the file. "setup s" is what comes before the first evaluation: the cluster's start, opening (or
reading) the data, the moments pass, and on the cluster the persist. SGD on a Dask array runs in the driver, which
streams windows of 8 blocks (fit's block shuffle, dask.compute on the current scheduler): on the
cluster the workers read the file and send the rows to the driver. Larger --chunk-rows cut the
cluster's per-task overhead per evaluation but grow that window in the driver's memory.

    python benchmarks/scaling.py [--tiles 1 2 4 8 16] [--modes memory mmap dask-threads dask-local2]
                                 [--out FILE.md] [--cache DIR]

Children run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; the header says which CPU and BLAS
kernel they ran. Spark's figures at 1x: benchmarks/spark_peer.py --scale 1 (its own environment).
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from out_of_core import SRC, build

MODES = ("memory", "mmap", "dask-threads", "dask-local2")


def vm_hwm_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def file_blocks(path: Path, rows: int):
    """The .npy file as a Dask array of `rows`-row blocks, each a task that reads its rows from the file
    (dask_cluster.row_chunks of a memory map)."""
    from softmaxreg.engines.dask_cluster import row_chunks

    return row_chunks(np.load(path, mmap_mode="r"), rows)


def open_data(mode: str, images: Path, labels: Path, chunk_rows: int):
    if mode == "memory":
        return np.load(images), np.load(labels)
    if mode == "mmap":
        return np.load(images, mmap_mode="r"), np.load(labels, mmap_mode="r")
    return file_blocks(images, chunk_rows), file_blocks(labels, chunk_rows)


def evaluation(X, y, args) -> tuple[float, float]:
    """(seconds to set up, median seconds of one full-batch evaluation at the initial point)."""
    from softmaxreg import SoftmaxCrossEntropy, SoftmaxRegression, TrainConfig
    from softmaxreg.engines import is_dask
    from softmaxreg.full_batch import FullBatch
    from softmaxreg.objective import flat_params
    from softmaxreg.moments import feature_moments

    model = SoftmaxRegression(784, 10, seed=0, dtype=args.dtype, input_scale=1 / 255)
    wd = 1 / (args.C * 60000)
    start = time.perf_counter()
    if is_dask(X):
        from softmaxreg.full_batch import DaskFullBatch, prepare_dask as prepare
        X, y, w = prepare(model, X, y, None, TrainConfig(solver="lbfgs", standardize=True, weight_decay=wd))
        fun = DaskFullBatch(SoftmaxCrossEntropy(model, weight_decay=wd), X, y, w)
    else:
        model.set_standardization(*feature_moments(model, X))
        fun = FullBatch(SoftmaxCrossEntropy(model, weight_decay=wd), X, y)
    setup = time.perf_counter() - start
    x = flat_params(model)
    with fun:
        fun(x)
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fun(x)
            seconds.append(time.perf_counter() - start)
    return setup, statistics.median(seconds)


def sgd_epoch(X, y) -> float:
    """Seconds of one SGD epoch of the reference recipe (the epoch's own clock)."""
    from softmaxreg import SoftmaxRegression, fit

    model = SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
    return fit(model, X, y, seed=0, epochs=1, batch_size=256, lr=0.1)[-1].seconds


def child(mode: str, images: Path, labels: Path, args) -> None:
    """One (T, mode) measurement in this fresh process; prints a JSON line."""
    from contextlib import ExitStack

    from lbfgs_vs_logreg import machine
    from softmaxreg.engines import is_streamed

    with ExitStack() as stack:
        start = time.perf_counter()
        client = None
        if mode == "dask-local2":
            from softmaxreg.engines.dask_cluster import connect
            client = stack.enter_context(connect("local:2"))
        elif mode == "dask-threads":
            import dask
            stack.enter_context(dask.config.set(scheduler="threads"))
        X, y = open_data(mode, images, labels, args.chunk_rows)
        opened = time.perf_counter() - start
        setup, per_evaluation = evaluation(X, y, args)
        epoch = sgd_epoch(X, y)
        workers = sorted(client.run(vm_hwm_mb).values()) if client is not None else []
    print(json.dumps({"mode": mode, "rows": X.shape[0], "data_mb": X.nbytes / 2**20, "setup_s": opened + setup,
                      "evaluation_s": per_evaluation, "epoch_s": epoch,
                      "shuffle": "blocks" if is_streamed(X) else "full", "driver_mb": vm_hwm_mb(),
                      "workers_mb": workers, "machine": machine()}))


def run_child(mode: str, tiles: int, paths: dict, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))   # the workers import it
    command = [sys.executable, __file__, "--child", mode, *map(str, paths["npy"]), "--chunk-rows",
               str(args.chunk_rows), "--repeats", str(args.repeats), "--C", str(args.C), "--dtype", args.dtype]
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"x{tiles} {mode}: failed (exit {out.returncode})\n{out.stderr[-2000:]}", file=sys.stderr)
        return {"mode": mode, "tiles": tiles, "failed": True}
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "tiles": tiles}


def row(r: dict) -> str:
    if r.get("failed"):
        return f"| {r['tiles']} | | | {r['mode']} | failed | | | | |"
    workers = " + ".join(f"{m:.0f}" for m in r["workers_mb"]) or "-"
    return (f"| {r['tiles']} | {r['rows']:,} | {r['data_mb']:.0f} | {r['mode']} | {r['setup_s']:.2f} | "
            f"{r['evaluation_s']:.3f} | {r['epoch_s']:.2f} ({r['shuffle']}) | {r['driver_mb']:.0f} | {workers} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="copies of the training split")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "softmaxreg-out-of-core",
                        help="where the tiled files are built once (shared with out_of_core.py)")
    parser.add_argument("--chunk-rows", type=int, default=8192, help="rows per Dask block (8192: dask_cluster.CHUNK_ROWS)")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations (the median is shown)")
    parser.add_argument("--C", type=float, default=0.01, help="wd = 1 / (C 60000), as spark_peer.py")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="the model's dtype")
    parser.add_argument("--out", type=Path, help="also write the Markdown to this file")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "IMAGES", "LABELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, images, labels = args.child
        child(mode, Path(images), Path(labels), args)
        return 0
    start = time.perf_counter()
    lines = [f"    python benchmarks/scaling.py {shlex.join(sys.argv[1:])}", ""]
    print(lines[0], flush=True)
    results = []
    for tiles in args.tiles:
        paths = build(args.cache, tiles)
        for mode in args.modes:
            results.append(run_child(mode, tiles, paths, args))
            print(row(results[-1]), flush=True)
    machine = next((r["machine"] for r in results if not r.get("failed")), "unknown")
    lines += [f"Machine: {machine}; {os.cpu_count()} cores.", "",
              "| T | rows | data MB | mode | setup s | s/evaluation | s/epoch (shuffle) | peak MB driver | "
              "peak MB workers |", "|---:|---:|---:|---|---:|---:|---:|---:|---:|", *map(row, results), "",
              f"Whole run: {time.perf_counter() - start:.0f} s."]
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if not any(r.get("failed") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
