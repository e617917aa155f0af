"""Out-of-core training: Fashion-MNIST tiled T times (T = 16: 960,000 images, 750 MB of uint8) as a
raw IDX file and a .npy file, memory-mapped, trained in a fresh process each: a few L-BFGS
iterations and one SGD epoch (block shuffle), reporting the child's peak resident memory (VmHWM,
which counts the touched pages of the mapping) and seconds.

    python benchmarks/out_of_core.py [--tiles 16] [--iterations 3] [--cache DIR]
    python benchmarks/out_of_core.py --check [--tiles 2]   # L-BFGS memmap vs in memory: same bits?

The tiled files are written by streaming (the builder never holds them whole) under --cache
(default $TMPDIR/softmaxreg-out-of-core) and reused. Run with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))


def build(cache: Path, tiles: int) -> dict:
    """{"idx": (images, labels), "npy": (images, labels)} paths of Fashion-MNIST's training split
    tiled `tiles` times, written once, one copy of the 47 MB split at a time."""
    from softmaxreg.datasets import load_fashion_mnist
    cache.mkdir(parents=True, exist_ok=True)
    paths = {"idx": (cache / f"train-images-x{tiles}-idx3-ubyte", cache / f"train-labels-x{tiles}-idx1-ubyte"),
             "npy": (cache / f"X_train_x{tiles}.npy", cache / f"y_train_x{tiles}.npy")}
    if all(p.exists() for pair in paths.values() for p in pair):
        return paths
    data = load_fashion_mnist()
    images, labels = data.train_images, data.train_labels
    n = images.shape[0] * tiles
    for array, idx_path, npy_path in ((images, *[pair[0] for pair in paths.values()]),
                                      (labels, *[pair[1] for pair in paths.values()])):
        shape = (n, *array.shape[1:])
        with open(idx_path.with_suffix(".tmp"), "wb") as f:
            f.write(struct.pack(f">HBB{len(shape)}I", 0, 0x08, len(shape), *shape))
            for _ in range(tiles):
                f.write(array.tobytes())
        os.replace(idx_path.with_suffix(".tmp"), idx_path)
        flat = (n, int(np.prod(array.shape[1:]))) if array.ndim > 1 else (n,)
        with open(npy_path.with_suffix(".tmp"), "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": flat})
            for _ in range(tiles):
                f.write(array.tobytes())
        os.replace(npy_path.with_suffix(".tmp"), npy_path)
    return paths


def open_mapped(kind: str, images: Path, labels: Path):
    from softmaxreg.datasets.idx import open_idx_memmap
    if kind == "idx":
        return open_idx_memmap(images), open_idx_memmap(labels)
    return np.load(images, mmap_mode="r"), np.load(labels, mmap_mode="r")


def child(kind: str, solver: str, images: Path, labels: Path, iterations: int) -> None:
    """One measured run in this (fresh) process; prints a JSON line."""
    import warnings

    from softmaxreg import SoftmaxRegression, fit
    X, y = open_mapped(kind, images, labels)
    model = SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
    options = dict(solver="lbfgs", max_iter=iterations) if solver == "lbfgs" else dict(epochs=1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = fit(model, X, y, seed=0, **options)
    seconds = time.perf_counter() - start
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"format": kind, "solver": solver, "rows": X.shape[0], "data_mb": X.nbytes / 2**20,
                      "seconds": seconds, "peak_rss_mb": hwm / 1024, "train_loss": history[-1].train_loss,
                      "train_acc": history[-1].train_acc}))


def check(paths: dict, iterations: int) -> bool:
    """L-BFGS on the memory-mapped files vs the same arrays read into memory: identical weights?"""
    import warnings

    from softmaxreg import SoftmaxRegression, fit
    same = True
    for kind, (images, labels) in paths.items():
        mapped = open_mapped(kind, images, labels)
        weights = []
        for X, y in (mapped, tuple(np.array(a) for a in mapped)):
            model = SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit(model, X, y, solver="lbfgs", max_iter=iterations)
            weights.append((model.W, model.b))
        equal = all(np.array_equal(a, b) for a, b in zip(*weights))
        print(f"{kind}: L-BFGS {iterations} iterations, memmap vs in memory: "
              f"{'identical weights' if equal else 'WEIGHTS DIFFER'}")
        same &= equal
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=None, help="copies of the training split (16; --check: 2)")
    parser.add_argument("--iterations", type=int, default=3, help="L-BFGS iterations (default 3)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "softmaxreg-out-of-core")
    parser.add_argument("--formats", default="idx,npy")
    parser.add_argument("--solvers", default="lbfgs,sgd")
    parser.add_argument("--check", action="store_true", help="compare L-BFGS weights, memmap vs in memory")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "SOLVER", "IMAGES", "LABELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, solver, images, labels = args.child
        child(kind, solver, Path(images), Path(labels), args.iterations)
        return 0
    tiles = args.tiles or (2 if args.check else 16)
    start = time.perf_counter()
    paths = build(args.cache, tiles)
    print(f"data: Fashion-MNIST x{tiles} under {args.cache} ({time.perf_counter() - start:.1f} s to build or find)")
    if args.check:
        return 0 if check(paths, args.iterations) else 1
    print(f"{'format':6} {'solver':6} {'rows':>8} {'data MB':>8} {'peak RSS MB':>11} {'seconds':>8} {'train acc':>9}")
    for kind in args.formats.split(","):
        for solver in args.solvers.split(","):
            out = subprocess.run([sys.executable, __file__, "--iterations", str(args.iterations), "--child", kind,
                                  solver, *map(str, paths[kind])], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['format']:6} {r['solver']:6} {r['rows']:8d} {r['data_mb']:8.0f} {r['peak_rss_mb']:11.0f} "
                  f"{r['seconds']:8.1f} {r['train_acc']:9.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
