"""The same from-scratch math on every installed array library: timings, in one invocation.

CPU part (always): the lesson's reference run (Fashion-MNIST, W ~ N(0, 0.01^2), batch 256, lr 0.1,
10 epochs, test split as validation) by `softmaxreg.fit` with the data on each installed library
(numpy: the fast path; torch, jax, array_api_strict: the generic path) on the CPU, each run in
its own process, the libraries interleaved over --reps rounds; the median training seconds
(data already converted, imports excluded) and the final validation accuracy.

--large (GPU): 1,000,000 x 1,024 float32 inputs, 1,000 classes, batch 4,096, on torch CUDA, CuPy
and JAX GPU: one SGD epoch of softmaxreg (`fit` whole: its input checks included) vs idiomatic
PyTorch (nn.Linear + CrossEntropyLoss + optim.SGD over the same permutation; nn.Linear's own
initialisation), and L-BFGS vs scikit-learn's array-API LogisticRegression(solver="lbfgs", tol=1e-4) on the same
objective (weight decay 1e-4, C = 1 / (weight decay n)): scikit-learn runs to its tol, ours until
its F is as low (F evaluated by our float64 objective on the device for both).
Devices or libraries that are absent are skipped with a printed line; the script runs unchanged on
a CUDA machine. --large-device cpu --large-rows 20000 tries the same code on a CPU.

    python benchmarks/backends.py [--reps 3] [--large [--large-device cuda] [--large-rows N]] [--torch-threads N]

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

from softmaxreg.engines.array_api import namespace  # noqa: E402  (after SCIPY_ARRAY_API)
from softmaxreg.hooks import Callback  # noqa: E402

CPU_LIBRARIES = ("numpy", "torch", "jax", "array_api_strict")
GPU_LIBRARIES = ("torch", "cupy", "jax")
LARGE = dict(n=1_000_000, d=1024, k=1000, batch=4096)
LARGE_WEIGHT_DECAY, LARGE_TOL = 1e-4, 1e-4


def _sync(a) -> None:
    """Wait for the device (asynchronous libraries): a value read back is the one sure way."""
    from softmaxreg.engines.array_api import to_numpy
    to_numpy(a[:1, ...] if getattr(a, "ndim", 0) else a)


def reference_worker(library: str, torch_threads: int | None) -> dict:
    """One reference run on `library` (CPU); JSON-able seconds and accuracy."""
    import softmaxreg as sr
    from softmaxreg.engines.array_api import resolve, to_device
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


def _device(library: str, device_name: str):
    """(xp, device) of `library` on `device_name` ("cuda": its first CUDA device), or None with a printed line."""
    import softmaxreg as sr
    from softmaxreg.engines.array_api import resolve
    if importlib.util.find_spec(library) is None:
        print(f"skipped: {library} on {device_name} ({library} is not installed)")
        return None
    if library == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)        # L-BFGS keeps float64 vectors (the data stays float32)
    try:
        return resolve(library, device_name)
    except sr.InvalidArgumentError as e:
        print(f"skipped: {library} on {device_name} ({e})")
        return None


def _large_data(xp, device):
    """The large problem on the device, from seeded host draws (the same values on every library)."""
    import numpy as np
    from softmaxreg.engines.array_api import to_device
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


def large_part(device_name: str) -> None:
    print(f"\nlarge: {LARGE['n']:,} x {LARGE['d']:,} float32, {LARGE['k']:,} classes, batch {LARGE['batch']:,}")
    print("| run | seconds | F (our float64 objective) |")
    print("|---|---|---|")
    for library in GPU_LIBRARIES:
        found = _device(library, device_name)
        if found is not None:
            _large_runs(library, *found)


def _objective(W, b, X, y) -> float:
    """F(W, b) = mean cross-entropy + (wd / 2) |W|^2 in float64 on X's device (GenericFullBatch)."""
    import softmaxreg as sr
    from softmaxreg.full_batch import full_batch
    from softmaxreg.objective import flat_params
    xp = namespace(X)
    model = sr.SoftmaxRegression(LARGE["d"], LARGE["k"], dtype="float64")
    model.W, model.b = xp.astype(W, xp.float64), xp.astype(b, xp.float64)
    objective = sr.SoftmaxCrossEntropy(model, weight_decay=LARGE_WEIGHT_DECAY)
    with full_batch(objective, X, y) as fun:
        return fun(flat_params(model))[0]


def _large_runs(library: str, xp, device) -> None:
    """One SGD epoch of softmaxreg on the library's device against idiomatic PyTorch's (on torch's),
    and L-BFGS to scikit-learn's objective value: scikit-learn's array-API L-BFGS (on torch's device,
    else on NumPy) runs first to its tol, then ours runs until its F is as low. The data is freed on return."""
    import softmaxreg as sr
    X, y = _large_data(xp, device)

    def sgd():
        model = sr.SoftmaxRegression(LARGE["d"], LARGE["k"], seed=0)
        sr.fit(model, X, y, epochs=1, batch_size=LARGE["batch"], lr=0.1)
        return model.W
    print(f"| softmaxreg SGD, 1 epoch, {library} {device} | {_timed(sgd):.2f} | |")
    if library == "torch":
        print(f"| PyTorch nn.Linear + CrossEntropyLoss + optim.SGD, 1 epoch, {device} | {_torch_idiomatic(X, y):.2f} | |")
        sk_row, target = _sklearn(X, y)
        print(f"| scikit-learn LogisticRegression(lbfgs, tol={LARGE_TOL:g}), array API, {device} | {sk_row} |")
        _LARGE_TARGET["F"] = target
    target = _LARGE_TARGET.get("F")
    if target is None:
        print(f"skipped: softmaxreg L-BFGS on {library} (no scikit-learn objective value to reach)")
        return
    model = sr.SoftmaxRegression(LARGE["d"], LARGE["k"], seed=0)
    stop = _StopAt(target)

    def lbfgs():
        sr.fit(model, X, y, solver="lbfgs", max_iter=500, tol=0.0, weight_decay=LARGE_WEIGHT_DECAY, callbacks=[stop])
        return model.W
    seconds = _timed(lbfgs)
    print(f"| softmaxreg L-BFGS to F <= scikit-learn's, {library} {device} | {seconds:.2f} | "
          f"{_objective(model.W, model.b, X, y):.8f} ({stop.iterations} iterations) |")


_LARGE_TARGET: dict = {}


class _StopAt(Callback):
    """Stop the full-batch fit once F = training loss + (wd / 2) |W|^2 <= target."""

    def __init__(self, target: float):
        self.target, self.iterations = target, 0

    def on_train_begin(self, run):
        self.run = run

    def on_epoch_end(self, record, history):
        W = self.run.model.W
        xp = namespace(W)
        self.iterations = record.epoch
        if record.train_loss + 0.5 * LARGE_WEIGHT_DECAY * float(xp.sum(W * W)) <= self.target:
            self.run.stop = True


def _torch_idiomatic(X, y) -> float:
    import torch
    from softmaxreg.seeding import shuffle_generator
    torch.manual_seed(0)
    net = torch.nn.Linear(LARGE["d"], LARGE["k"]).to(X.device)
    loss_fn, opt = torch.nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), lr=0.1)
    order = torch.as_tensor(shuffle_generator(0).permutation(X.shape[0]), device=X.device)   # fit's first epoch

    def epoch():
        for start in range(0, X.shape[0], LARGE["batch"]):
            idx = order[start:start + LARGE["batch"]]
            opt.zero_grad()
            loss_fn(net(X[idx]), y[idx]).backward()
            opt.step()
        return net.weight
    return _timed(epoch)


def _sklearn(X, y) -> tuple[str, float | None]:
    """(table cells, F) of scikit-learn's array-API L-BFGS at C = 1 / (wd n): the same objective times C n."""
    if importlib.util.find_spec("sklearn") is None:
        return "skipped (scikit-learn is not installed) | ", None
    import sklearn
    from sklearn.linear_model import LogisticRegression
    try:
        with sklearn.config_context(array_api_dispatch=True):
            clf = LogisticRegression(solver="lbfgs", max_iter=500, tol=LARGE_TOL,
                                     C=1.0 / (LARGE_WEIGHT_DECAY * X.shape[0]))
            seconds = _timed(lambda: clf.fit(X, y).coef_)
    except Exception as e:                   # scikit-learn without array-API LogisticRegression
        return f"skipped ({type(e).__name__}: {str(e).splitlines()[0][:120]}) | ", None
    xp = namespace(X)
    f = _objective(xp.asarray(clf.coef_.T), xp.asarray(clf.intercept_), X, y)
    return f"{seconds:.2f} | {f:.8f} ({int(clf.n_iter_[0])} iterations)", f


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="also the GPU problem (skipped where no GPU)")
    parser.add_argument("--large-device", default="cuda", help="where --large runs (default cuda; cpu to try it)")
    parser.add_argument("--large-rows", type=int, default=LARGE["n"], help="rows of the --large problem")
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
        LARGE["n"] = args.large_rows
        large_part(args.large_device)


if __name__ == "__main__":
    main()
