"""Where the reference run's time goes: each piece of an SGD step timed in the loop, in the
loop's own order, then the whole run with the products in blocks of GEMM_ROWS rows against
one product per batch (interleaved repetitions).

    python benchmarks/step_profile.py [--reps 5]

Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for this command to measure NumPy's own kernel.
"""

import argparse
import statistics
import time

import numpy as np

import softmaxreg as sr
import softmaxreg.model as model_module
from softmaxreg.functional import softmax_cross_entropy_
from softmaxreg.model import StepBuffers
from softmaxreg.optim import SGD


def step_pieces(X, y, epochs=3, batch=256):
    """Median over epochs of the microseconds per step spent in each piece."""
    model = sr.SoftmaxRegression(784, 10, 0.01, seed=0, input_scale=1 / 255)
    rng = np.random.default_rng(1)
    xb, yb = np.empty((batch, 784), np.uint8), np.empty(batch, y.dtype)
    x, buffers = np.empty((batch, 784), np.float32), StepBuffers(batch, model)
    dW, db, optimizer = np.empty_like(model.W), np.empty_like(model.b), SGD(0.1)
    s = np.float32(model.input_scale)
    per_epoch = []
    for _ in range(epochs):
        order, totals = rng.permutation(X.shape[0]), {}
        steps = X.shape[0] // batch
        for start in range(0, steps * batch, batch):
            t = [time.perf_counter()]
            idx = order[start:start + batch]
            np.take(X, idx, axis=0, out=xb), np.take(y, idx, out=yb)
            t.append(time.perf_counter())
            np.copyto(x, xb)
            t.append(time.perf_counter())
            model_module._matmul_rows(x, model.W, buffers.z)
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
            model_module._matmul_t_rows(x, buffers.zt.T, dW, buffers.dW)
            t.append(time.perf_counter())
            optimizer.step((model.W, model.b), (dW, db), (True, False))
            t.append(time.perf_counter())
            for name, a, b in zip(PIECES, t, t[1:]):
                totals[name] = totals.get(name, 0.0) + b - a
        per_epoch.append({name: v / steps * 1e6 for name, v in totals.items()})
    return {name: statistics.median(e[name] for e in per_epoch) for name in PIECES}


PIECES = ["gather 256 shuffled uint8 rows and labels", "cast uint8 -> float32",
          "forward product (256x784) @ (784x10)", "scale, bias, transpose to (10, 256)",
          "fused softmax + cross-entropy + (P - Y), class-major", "bias gradient and scaling",
          "weight-gradient product (784x256) @ (256x10)", "SGD update"]


def whole_run(data, gemm_rows):
    model_module.GEMM_ROWS = gemm_rows
    model = sr.SoftmaxRegression(784, 10, 0.01, seed=0, input_scale=1 / 255)
    start = time.perf_counter()
    sr.fit(model, data.train_images, data.train_labels, epochs=10, batch_size=256, lr=0.1, seed=1,
           validation_data=(data.test_images, data.test_labels))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    from threadpoolctl import threadpool_info

    print("BLAS:", ", ".join(f"{i['internal_api']} {i['version']} {i.get('architecture')} {i['num_threads']} threads"
                             for i in threadpool_info()))
    data = sr.load_fashion_mnist()
    X, y = data.train_images.reshape(len(data.train_images), -1), data.train_labels
    pieces = step_pieces(X, y)
    print("\n| piece | us per step |\n|---|---|")
    for name, us in pieces.items():
        print(f"| {name} | {us:.1f} |")
    print(f"| sum | {sum(pieces.values()):.1f} |")
    default, times = model_module.GEMM_ROWS, {}
    for _ in range(args.reps):
        for rows in (default, 1 << 30):
            times.setdefault(rows, []).append(whole_run(data, rows))
    model_module.GEMM_ROWS = default
    print("\n| products | reference run s (median) | min-max |\n|---|---|---|")
    for rows, label in ((default, f"blocks of {default} rows"), (1 << 30, "one per batch")):
        print(f"| {label} | {statistics.median(times[rows]):.3f} | {min(times[rows]):.3f}-{max(times[rows]):.3f} |")


if __name__ == "__main__":
    main()
