"""Where the reference run's time goes, for every candidate row blocking of the products.

1. The blocking this machine got (softmaxreg.engines.gemm: measured once and cached, or overridden by
   SOFTMAXREG_GEMM_ROWS), and what the measurement that chooses it costs and says when it runs
   afresh: --reps processes with the cache off.
2. Each piece of an SGD step timed in the loop, in the loop's own order, one column per
   candidate block (epochs interleaved across the candidates).
3. The whole reference run (10 epochs, validation every epoch) with each candidate forced
   through SOFTMAXREG_GEMM_ROWS, each run in its own process, rounds interleaved.

    python benchmarks/step_profile.py [--reps 5]

Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for this command to measure NumPy's own kernel.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import softmaxreg as sr
from softmaxreg import gemm
from softmaxreg.functional import softmax_cross_entropy_
from softmaxreg.model import StepBuffers
from softmaxreg.solvers import SGD

PIECES = ["gather 256 shuffled uint8 rows and labels", "cast uint8 -> float32",
          "forward product (256x784) @ (784x10)", "scale, bias, transpose to (10, 256)",
          "fused softmax + cross-entropy + (P - Y), class-major", "bias gradient and scaling",
          "weight-gradient product (784x256) @ (256x10)", "SGD update"]

WHOLE_RUN = """
import json, time
import softmaxreg as sr
from softmaxreg.engines.gemm import blocking_info
data = sr.load_fashion_mnist()
model = sr.SoftmaxRegression(784, 10, 0.01, seed=0, input_scale=1 / 255)
start = time.perf_counter()
sr.fit(model, data.train_images, data.train_labels, epochs=10, batch_size=256, lr=0.1, seed=1,
       validation_data=(data.test_images, data.test_labels))
print(json.dumps({"s": time.perf_counter() - start, "rows": blocking_info()["rows"]}))
"""

FRESH_CHOICE = "import json; from softmaxreg.engines.gemm import blocking_info; print(json.dumps(blocking_info()))"


def label(rows):
    return "one product per batch" if rows == 0 else f"blocks of {rows} rows"


def step_epoch(X, y, rows, seed, batch=256):
    """Microseconds per step spent in each piece over one epoch, products in blocks of `rows`."""
    model = sr.SoftmaxRegression(784, 10, 0.01, seed=0, input_scale=1 / 255)
    xb, yb = np.empty((batch, 784), np.uint8), np.empty(batch, y.dtype)
    x, buffers = np.empty((batch, 784), np.float32), StepBuffers(batch, model)
    dW, db, optimizer = np.empty_like(model.W), np.empty_like(model.b), SGD()
    s = np.float32(model.input_scale)
    order, totals = np.random.default_rng(seed).permutation(X.shape[0]), dict.fromkeys(PIECES, 0.0)
    steps = X.shape[0] // batch
    for start in range(0, steps * batch, batch):
        t = [time.perf_counter()]
        idx = order[start:start + batch]
        np.take(X, idx, axis=0, out=xb), np.take(y, idx, out=yb)
        t.append(time.perf_counter())
        np.copyto(x, xb)
        t.append(time.perf_counter())
        gemm.matmul_rows(x, model.W, buffers.z, rows=rows)
        t.append(time.perf_counter())
        buffers.z *= s
        buffers.z += model.b
        np.copyto(buffers.zt, buffers.z.T)
        t.append(time.perf_counter())
        softmax_cross_entropy_(buffers.zt, yb, buffers.cols)
        t.append(time.perf_counter())
        np.sum(buffers.zt, axis=1, out=db)
        db *= np.float32(1 / batch)
        buffers.zt *= s / batch
        t.append(time.perf_counter())
        gemm.matmul_t_rows(x, buffers.zt.T, dW, buffers.dW, rows=rows)
        t.append(time.perf_counter())
        optimizer.step((model.W, model.b), (dW, db), 0.1)
        t.append(time.perf_counter())
        for name, a, b in zip(PIECES, t, t[1:]):
            totals[name] += b - a
    return {name: v / steps * 1e6 for name, v in totals.items()}


def run_python(code, extra_env):
    """The JSON line that `python -c code` prints, run in this environment without the blocking
    override, plus `extra_env`."""
    env = {k: v for k, v in os.environ.items() if k != gemm.ROWS_ENV}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**env, **extra_env})
    return json.loads(proc.stdout.splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="repetitions of the whole run and of the fresh measurement")
    args = parser.parse_args()
    from threadpoolctl import threadpool_info

    print("BLAS:", ", ".join(f"{i['internal_api']} {i['version']} {i.get('architecture')} {i['num_threads']} threads"
                             for i in threadpool_info()))
    info = gemm.blocking_info()
    print(f"GEMM blocking: {label(info['rows'])} ({info['source']}{', ' + info['file'] if info['file'] else ''})")
    print(f"machine key: {json.dumps(info['key'])}")
    candidates = gemm.CANDIDATES if info["rows"] in gemm.CANDIDATES else (info["rows"], *gemm.CANDIDATES)

    fresh = [run_python(FRESH_CHOICE, {"SOFTMAXREG_CACHE_DIR": "off"}) for _ in range(args.reps)]
    print(f"\nThe choice measured afresh ({args.reps} processes, cache off): the measurement's median us "
          f"per step (cast, both products, update) and median ratio to one product per batch\n")
    print("| process | chosen | measure s | " + " | ".join(label(r) for r in gemm.CANDIDATES) + " |")
    print("|---|---|---|" + "---|" * len(gemm.CANDIDATES))
    for i, f in enumerate(fresh, 1):
        print(f"| {i} | {f['rows']} | {f['measure_s']:.4f} | "
              + " | ".join(f"{f['median_us'][str(r)]:.1f} us, {f['ratio'][str(r)]:.3f}" for r in gemm.CANDIDATES) + " |")
    print(f"| median | | {statistics.median(f['measure_s'] for f in fresh):.4f} | "
          + " | ".join(f"{statistics.median(f['median_us'][str(r)] for f in fresh):.1f} us, "
                       f"{statistics.median(f['ratio'][str(r)] for f in fresh):.3f}" for r in gemm.CANDIDATES) + " |")

    data = sr.load_fashion_mnist()
    X, y = data.train_images.reshape(len(data.train_images), -1), data.train_labels
    epochs = {rows: [] for rows in candidates}
    for epoch in range(3):
        for rows in candidates:
            epochs[rows].append(step_epoch(X, y, rows, seed=epoch))
    pieces = {rows: {name: statistics.median(e[name] for e in epochs[rows]) for name in PIECES} for rows in candidates}
    print("\nus per step, median of 3 epochs:\n")
    print("| piece | " + " | ".join(label(r) for r in candidates) + " |\n|---|" + "---|" * len(candidates))
    for name in PIECES:
        print(f"| {name} | " + " | ".join(f"{pieces[r][name]:.1f}" for r in candidates) + " |")
    print("| sum | " + " | ".join(f"{sum(pieces[r].values()):.1f}" for r in candidates) + " |")

    times = {rows: [] for rows in candidates}
    for _ in range(args.reps):
        for rows in candidates:
            result = run_python(WHOLE_RUN, {gemm.ROWS_ENV: str(rows)})
            assert result["rows"] == rows, result
            times[rows].append(result["s"])
    print(f"\nreference run, training s ({args.reps} processes per candidate, interleaved):\n")
    print("| products | median | min-max | x one product |\n|---|---|---|---|")
    one = statistics.median(times[0])
    for rows in candidates:
        mark = " (this machine's choice)" if rows == info["rows"] else ""
        print(f"| {label(rows)}{mark} | {statistics.median(times[rows]):.3f} | {min(times[rows]):.3f}-"
              f"{max(times[rows]):.3f} | {statistics.median(times[rows]) / one:.2f} |")


if __name__ == "__main__":
    main()
