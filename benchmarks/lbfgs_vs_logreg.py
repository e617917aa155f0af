"""softmaxreg's full-batch L-BFGS beside scikit-learn's LogisticRegression(solver="lbfgs") on
Fashion-MNIST, standardized with the training split's statistics, the same L2 penalty, in one run.

scikit-learn minimises C sum_i l_i + |W|^2 / 2; ours F = mean_i l_i + (wd / 2) |W|^2 with
wd = 1 / (C n): the same minimiser, F = (their objective) / (C n). The reference optimum F* is
scikit-learn's at tol=1e-10 (max_iter=10000). For each solver the table gives the time to its own
stop, the final F's gap to F*, the time at which F first came within 1e-6 of F* (ours: recorded
per iteration, the exact float64 F evaluated outside the clock), the coefficients' largest
difference from the reference (relative to its largest entry) and the test accuracy.

    python benchmarks/lbfgs_vs_logreg.py [--C 0.01] [--repeat 3]

Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; the header says which CPU and BLAS kernel ran.
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np

import softmaxreg as sr
from softmaxreg.full_batch import FullBatch
from softmaxreg.objective import SoftmaxCrossEntropy, flat_params

TARGET = 1e-6


def machine() -> str:
    from threadpoolctl import threadpool_info

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    blas = [f"{i['internal_api']} {i.get('version')} {i.get('architecture')} kernel, {i['num_threads']} threads"
            for i in threadpool_info() if i["user_api"] == "blas"]
    return f"{cpu}; numpy {np.__version__}; {'; '.join(blas)}"


class ExactObjective:
    """F at a model's weights in float64 over the whole training set (the yardstick for every solver)."""

    def __init__(self, images, labels, mean, std, weight_decay):
        self.model = sr.SoftmaxRegression(784, 10, sigma=0.0, dtype=np.float64, input_scale=1 / 255)
        self.model.set_standardization(mean, std)
        self.fun = FullBatch(SoftmaxCrossEntropy(self.model, weight_decay=weight_decay), images, labels).__enter__()

    def __call__(self, W, b) -> float:
        self.model.W[...], self.model.b[...] = W, b
        return self.fun(flat_params(self.model))[0]


def sklearn_fit(X, y, C, tol):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=C, tol=tol, max_iter=10000).fit(X, y)
    return clf, time.perf_counter() - start


def ours_fit(data, weight_decay, dtype, tol, exact, f_star):
    """Fit by L-BFGS; returns (model, seconds, iterations, seconds until F <= F* (1 + TARGET))."""
    class Clock(sr.Callback):
        def __init__(self):
            self.excluded, self.reached = 0.0, None

        def on_epoch_end(self, record, history):
            paused = time.perf_counter()
            if self.reached is None and exact(model.W, model.b) <= f_star * (1 + TARGET):
                self.reached = paused - start - self.excluded
            self.excluded += time.perf_counter() - paused

    model = sr.SoftmaxRegression(784, 10, seed=0, dtype=dtype, input_scale=1 / 255)
    clock = Clock()
    start = time.perf_counter()
    history = sr.fit(model, data.train_images, data.train_labels, solver="lbfgs", standardize=True,
                     weight_decay=weight_decay, tol=tol, max_iter=5000, callbacks=[clock])
    seconds = time.perf_counter() - start - clock.excluded
    return model, seconds, len(history), clock.reached


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each of our fits (median reported)")
    parser.add_argument("--reference", metavar="NPZ", help="keep scikit-learn's tol=1e-10 fit (coefficients, "
                        "seconds, iterations) in this file and reuse it when it exists (its time is then not "
                        "from this run)")
    args = parser.parse_args()
    from sklearn.preprocessing import StandardScaler

    data = sr.load_fashion_mnist()
    n = len(data.train_labels)
    weight_decay = 1 / (args.C * n)
    Xtr = data.train_images.reshape(n, -1) / 255.0
    scaler = StandardScaler().fit(Xtr)
    Xtr_s = scaler.transform(Xtr)
    Xte_s = scaler.transform(data.test_images.reshape(len(data.test_labels), -1) / 255.0)
    exact = ExactObjective(data.train_images.reshape(n, -1), data.train_labels, scaler.mean_, scaler.scale_,
                           weight_decay)
    print(f"machine: {machine()}")
    print(f"Fashion-MNIST, 60000 x 784 standardized, C = {args.C} (weight_decay = {weight_decay:.6g})\n")

    rows = []
    if args.reference and os.path.exists(args.reference):
        saved = np.load(args.reference)
        W_ref, b_ref, ref_s, ref_iter = saved["W"], saved["b"], float(saved["seconds"]), int(saved["iterations"])
        print(f"(scikit-learn's reference fit read from {args.reference}, not timed in this run)")
    else:
        reference, ref_s = sklearn_fit(Xtr_s, data.train_labels, args.C, 1e-10)
        W_ref, b_ref, ref_iter = reference.coef_.T, reference.intercept_, int(reference.n_iter_[0])
        if args.reference:
            np.savez(args.reference, W=W_ref, b=b_ref, seconds=ref_s, iterations=ref_iter)
    f_star = exact(W_ref, b_ref)
    ref_acc = float(np.mean((Xte_s @ W_ref + b_ref).argmax(axis=1) == data.test_labels))
    rows.append(("LogisticRegression lbfgs, tol 1e-10 (the reference F*)", ref_s, ref_iter, 0.0, None, 0.0, ref_acc))
    default, default_s = sklearn_fit(Xtr_s, data.train_labels, args.C, 1e-4)
    rows.append(("LogisticRegression lbfgs, tol 1e-4 (default)", default_s, int(default.n_iter_[0]),
                 exact(default.coef_.T, default.intercept_) / f_star - 1, None,
                 np.abs(default.coef_.T - W_ref).max() / np.abs(W_ref).max(), default.score(Xte_s, data.test_labels)))

    for dtype, tol in (("float32", 1e-4), ("float64", 1e-4), ("float64", 1e-6)):
        runs = [ours_fit(data, weight_decay, dtype, tol, exact, f_star) for _ in range(args.repeat)]
        model, _, iterations, _ = runs[0]
        seconds = float(np.median([r[1] for r in runs]))
        reached = [r[3] for r in runs]
        W, b = model.W, model.b                       # weights on standardized features, like coef_.T
        rows.append((f"softmaxreg lbfgs {dtype}, tol {tol:g}", seconds, iterations, exact(W, b) / f_star - 1,
                     None if None in reached else float(np.median(reached)),
                     np.abs(W - W_ref).max() / np.abs(W_ref).max(), model.evaluate(data.test_images, data.test_labels)[1]))

    print(f"| solver | seconds | iterations | F / F* - 1 | seconds to F <= F* (1 + {TARGET:g}) | "
          "max coef diff / max coef | test accuracy |")
    print("|---|---|---|---|---|---|---|")
    for name, seconds, iterations, gap, reached, coef, acc in rows:
        print(f"| {name} | {seconds:.1f} | {iterations} | {gap:.2e} | "
              f"{'-' if reached is None else f'{reached:.1f}'} | {coef:.1e} | {acc:.4f} |")
    print(f"\nspeed-up to F* (1 + {TARGET:g}): scikit-learn tol 1e-10 took {ref_s:.1f} s, tol 1e-4 {default_s:.1f} s")


if __name__ == "__main__":
    main()
