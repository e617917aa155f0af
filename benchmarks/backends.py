"""The same from-scratch math on every installed array library: timings, in one invocation.

CPU part (always): the lesson's reference run (Fashion-MNIST, W ~ N(0, 0.01^2), batch 256, lr 0.1,
10 epochs, test split as validation) by `softmaxreg.fit` with the data on each installed library
(numpy: the fast path; torch, jax, array_api_strict: the generic path) on the CPU, each run in
its own process, the libraries interleaved over --reps rounds; the median training seconds
(data already converted, imports excluded) and the final validation accuracy.

--large (GPU): 1,000,000 x 1,024 float32 inputs, 1,000 classes, batch 4,096, on torch CUDA, CuPy
and JAX GPU: one SGD epoch of softmaxreg vs idiomatic PyTorch (nn.Linear + CrossEntropyLoss +
optim.SGD, the same permutation), and 20 L-BFGS iterations vs scikit-learn's array-API
LogisticRegression(solver="lbfgs", max_iter=20). Devices or libraries that are absent are
skipped with a printed line; the script runs unchanged on a CUDA machine.

    python benchmarks/backends.py [--reps 3] [--large] [--torch-threads N]

Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("SCIPY_ARRAY_API", "1")      # scikit-learn's array-API dispatch needs it before scipy loads

CPU_LIBRARIES = ("numpy", "torch", "jax", "array_api_strict")
GPU_LIBRARIES = ("torch", "cupy", "jax")
LARGE = dict(n=1_000_000, d=1024, k=1000, batch=4096)


def _sync(a) -> None:
    """Wait for the device (asynchronous libraries): a value read back is the one sure way."""
    from softmaxreg.backends import to_numpy
    to_numpy(a[:1, ...] if getattr(a, "ndim", 0) else a)


def reference_worker(library: str, torch_threads: int | None) -> dict:
    """One reference run on `library` (CPU); JSON-able seconds and accuracy."""
    import softmaxreg as sr
    from softmaxreg.backends import resolve, to_device
    if library == "torch" and torch_threads:
        import torch
        torch.set_num_threads(torch_threads)
    if library == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)
    data = sr.load_fashion_mnist()
    xp, device = resolve(library, "cpu")
    arrays = [to_device(a, xp, device) for a in (data.train_images, data.train_labels, data.test_images,
                                                   data.test_labels)]
    model = sr.SoftmaxRegression(784, 10, sigma=0.01, seed=0, input_scale=1 / 255)
    start = time.perf_counter()
    history = sr.fit(model, arrays[0], arrays[1], seed=0, validation_data=(arrays[2], arrays[3]))
    _sync(model.W)
    return {"seconds": time.perf_counter() - start, "val_acc": history[-1].val_acc}


def cpu_part(reps: int, torch_threads: int | None) -> None:
    installed = [name for name in CPU_LIBRARIES if importlib.util.find_spec(name) is not None
                 and (name == "numpy" or importlib.util.find_spec("array_api_compat") is not None)]
    for name in CPU_LIBRARIES:
        if name not in installed:
            print(f"skipped: {name} (not installed)")
    results = {name: [] for name in installed}
    for _ in range(reps):
        for name in installed:
            threads = ["--torch-threads", str(torch_threads)] if torch_threads else []
            out = subprocess.run([sys.executable, __file__, "--worker", name, *threads], capture_output=True,
                                 text=True, check=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    base = statistics.median(r["seconds"] for r in results["numpy"])
    print("\n| library (CPU) | version | training s (median, min-max) | vs numpy | val_acc |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        seconds = [r["seconds"] for r in runs]
        version = __import__(name).__version__
        if name == "torch":
            version += f", {torch_threads or __import__('torch').get_num_threads()} threads"
        print(f"| {name} | {version} | {statistics.median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f}) | "
              f"{statistics.median(seconds) / base:.1f}x | {runs[0]['val_acc']:.4f} |")


def _gpu(library: str):
    """(xp, device) of `library`'s first CUDA device, or None with a printed line."""
    import softmaxreg as sr
    from softmaxreg.backends import resolve
    if importlib.util.find_spec(library) is None:
        print(f"skipped: {library} on GPU ({library} is not installed)")
        return None
    if library == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)        # L-BFGS keeps float64 vectors (the data stays float32)
    try:
        return resolve(library, "cuda")
    except sr.InvalidArgumentError as e:
        print(f"skipped: {library} on GPU ({e})")
        return None


def _large_data(xp, device):
    """The large problem on the device, from seeded host draws (the same values on every library)."""
    import numpy as np
    from softmaxreg.backends import to_device
    n, d, k = LARGE["n"], LARGE["d"], LARGE["k"]
    rng = np.random.default_rng(0)
    X = to_device(rng.standard_normal((n, d), dtype=np.float32), xp, device)
    teacher = to_device(rng.standard_normal((d, k), dtype=np.float32), xp, device)
    y = xp.concat([xp.argmax(X[i:min(i + 65536, n), ...] @ teacher, axis=1) for i in range(0, n, 65536)])
    return X, y


def _timed(fn) -> float:
    start = time.perf_counter()
    _sync(fn())
    return time.perf_counter() - start


def large_part() -> None:
    print(f"\nlarge: {LARGE['n']:,} x {LARGE['d']:,} float32, {LARGE['k']:,} classes, batch {LARGE['batch']:,}")
    print("| run | seconds |")
    print("|---|---|")
    for library in GPU_LIBRARIES:
        found = _gpu(library)
        if found is not None:
            _large_runs(library, *found)


def _large_runs(library: str, xp, device) -> None:
    """One SGD epoch and 20 L-BFGS iterations of softmaxreg on the library's GPU (and PyTorch's
    and scikit-learn's own on torch's); the data is freed on return."""
    import softmaxreg as sr
    X, y = _large_data(xp, device)

    def sgd():
        model = sr.SoftmaxRegression(LARGE["d"], LARGE["k"], seed=0)
        sr.fit(model, X, y, epochs=1, batch_size=LARGE["batch"], lr=0.1)
        return model.W

    def lbfgs():
        model = sr.SoftmaxRegression(LARGE["d"], LARGE["k"], seed=0)
        sr.fit(model, X, y, solver="lbfgs", max_iter=20, weight_decay=1e-4)
        return model.W
    print(f"| softmaxreg SGD, 1 epoch, {library} {device} | {_timed(sgd):.2f} |")
    print(f"| softmaxreg L-BFGS, 20 iterations, {library} {device} | {_timed(lbfgs):.2f} |")
    if library == "torch":
        print(f"| PyTorch nn.Linear + CrossEntropyLoss + optim.SGD, 1 epoch, {device} | {_torch_idiomatic(X, y):.2f} |")
        print(f"| scikit-learn LogisticRegression(lbfgs, max_iter=20), array API, {device} | {_sklearn(X, y)} |")


def _torch_idiomatic(X, y) -> float:
    import numpy as np
    import torch
    torch.manual_seed(0)
    net = torch.nn.Linear(LARGE["d"], LARGE["k"]).to(X.device)
    loss_fn, opt = torch.nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), lr=0.1)
    order = torch.as_tensor(np.random.default_rng(0).permutation(X.shape[0]), device=X.device)

    def epoch():
        for start in range(0, X.shape[0], LARGE["batch"]):
            idx = order[start:start + LARGE["batch"]]
            opt.zero_grad()
            loss_fn(net(X[idx]), y[idx]).backward()
            opt.step()
        return net.weight
    return _timed(epoch)


def _sklearn(X, y) -> str:
    if importlib.util.find_spec("sklearn") is None:
        return "skipped (scikit-learn is not installed)"
    import sklearn
    from sklearn.linear_model import LogisticRegression
    try:
        with sklearn.config_context(array_api_dispatch=True):
            clf = LogisticRegression(solver="lbfgs", max_iter=20, C=1.0)
            return f"{_timed(lambda: clf.fit(X, y).coef_):.2f}"
    except Exception as e:                   # scikit-learn without array-API LogisticRegression
        return f"skipped ({type(e).__name__}: {str(e).splitlines()[0][:120]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="also the GPU problem (skipped where no GPU)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads for the torch runs (default: torch's own choice); on a "
                             "loaded machine OpenMP's barriers can cost more than the small products")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(reference_worker(args.worker, args.torch_threads)))
        return
    try:
        importlib.import_module("numpy")                 # loaded, so that threadpoolctl sees its BLAS
        import threadpoolctl
        blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpoolctl.threadpool_info()]
    except ImportError:
        blas = "unknown (threadpoolctl is not installed)"
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, Python "
          f"{platform.python_version()}; BLAS: {blas}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    cpu_part(args.reps, args.torch_threads)
    if args.large:
        large_part()


if __name__ == "__main__":
    main()
