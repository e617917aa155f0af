"""Newton-CG and L-BFGS, ours and scikit-learn's, to the same exact L2 optimum on Fashion-MNIST (float64).

Two problems, both with the L2 penalty of LogisticRegression(C) (ours: weight_decay = 1 / (C n),
the same minimiser; F = mean_i l_i + (wd / 2) |W|^2 = their objective / (C n)):

    standardized  the pixels / 255 standardized with the training rows' mean and std (ours:
                  standardize=True, input_scale 1/255; scikit-learn: StandardScaler in front)
    raw           the same pixels unscaled, 0..255 (ours: input_scale 1, no standardization):
                  the Hessian's condition number grows by ~255^2 and the pixels' correlations stay

F* is the lowest F reached by a very tight fit of each solver run (scikit-learn at tol=1e-10,
max_iter=10000; ours at tol=1e-10, which stops flat to rounding; the table says which one gave
it), F evaluated by our exact float64 full-batch sum for every solver. For each solver the table
gives the seconds until F <= F* (1 + 1e-6), median of --repeat runs:

    ours          one fit, F recorded after every iteration by a callback outside the clock, stopped
                  there; passes over the data = objective+gradient evaluations + Hessian-vector
                  products + curvature passes (each one pass), from the optimizer's counters
    scikit-learn  the smallest max_iter whose fit reaches the target (bisection below the tight
                  fit's iterations, each trial fitted from scratch; F decreases with max_iter), then that fit
                  timed; n_iter_ is its iterations. Its passes are not counted: LogisticRegression
                  exposes neither scipy's function evaluations (lbfgs) nor its own Hessian products
                  (newton-cg), and counting by wrapping private functions would not be honest.

and the ratio scikit-learn / ours for the solver of the same name. The tight reference fits are
timed too (printed under the table).

    python benchmarks/newton_cg.py [--rows N] [--repeat 3] [--problems standardized,raw]
                                   [--solvers ours-newton-cg,ours-lbfgs,sklearn-newton-cg,sklearn-lbfgs]

Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (`env -u OPENBLAS_CORETYPE -u
OPENBLAS_L2_SIZE python benchmarks/newton_cg.py`); the header says which CPU and BLAS kernel ran.
On 2 cores scikit-learn's tight newton-cg fit of all 60,000 rows takes minutes; --rows 10000 is a
quick try.
"""

import argparse
import sys
import time
import warnings

import numpy as np

import softmaxreg as sr
from softmaxreg.full_batch import FullBatch
from softmaxreg.objective import SoftmaxCrossEntropy, flat_params

from lbfgs_vs_logreg import machine       # the header: CPU, NumPy, BLAS kernel and threads (a sibling script)

TARGET = 1e-6
SOLVERS = ("ours-newton-cg", "ours-lbfgs", "sklearn-newton-cg", "sklearn-lbfgs")
PROBLEMS = ("standardized", "raw")


class Problem:
    """One problem: the uint8 rows ours read, the float64 rows scikit-learn reads, and the exact F."""

    def __init__(self, name, images, labels, C):
        self.name, self.images, self.labels, self.C = name, images, labels, C
        n = len(labels)
        self.weight_decay = 1 / (C * n)
        self.input_scale = 1 / 255 if name == "standardized" else 1.0
        self.standardize = name == "standardized"
        X = images * self.input_scale                                            # float64 (n, 784)
        self.model = sr.SoftmaxRegression(784, 10, sigma=0.0, dtype=np.float64, input_scale=self.input_scale)
        if self.standardize:
            from sklearn.preprocessing import StandardScaler
            scaler = StandardScaler().fit(X)
            X = scaler.transform(X)
            self.model.set_standardization(scaler.mean_, scaler.scale_)
        self.X = X
        self.fun = FullBatch(SoftmaxCrossEntropy(self.model, weight_decay=self.weight_decay), images, labels).__enter__()

    def F(self, W, b) -> float:
        """Our exact float64 F at (W, b) on the model's inputs (for scikit-learn: coef_.T, intercept_)."""
        self.model.W[...], self.model.b[...] = W, b
        return self.fun(flat_params(self.model))[0]


def ours(problem, solver, tol, f_target=None, trace_f=True):
    """One fit of our `solver`; stopped once F <= f_target when given. Returns (seconds to the end,
    trace: [(seconds, F, passes)] after each iteration, clock excluded (F None without trace_f), final F)."""
    class Trace(sr.Callback):
        def __init__(self):
            self.excluded, self.points = 0.0, []

        def on_train_begin(self, run):
            self.run = run

        def on_epoch_end(self, record, history):
            paused = time.perf_counter()
            f = problem.F(model.W, model.b) if trace_f else None
            passes = (optimizer.evaluations + getattr(optimizer, "hessian_products", 0)
                      + getattr(optimizer, "curvatures", 0))
            self.points.append((paused - start - self.excluded, f, passes))
            if f_target is not None and f is not None and f <= f_target:
                self.run.stop = True
            self.excluded += time.perf_counter() - paused

    optimizer = sr.OPTIMIZERS[solver]()
    model = sr.SoftmaxRegression(784, 10, seed=0, dtype=np.float64, input_scale=problem.input_scale)
    model.W[...] = 0                                   # from W = 0, b = 0, as LogisticRegression starts
    trace = Trace()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sr.ConvergenceWarning)
        start = time.perf_counter()
        sr.fit(model, problem.images, problem.labels, solver=solver, standardize=problem.standardize,
               weight_decay=problem.weight_decay, tol=tol, max_iter=10000, optimizer=optimizer, callbacks=[trace])
        seconds = time.perf_counter() - start - trace.excluded
    return seconds, trace.points, problem.F(model.W, model.b)


def sklearn(problem, solver, tol, max_iter):
    """One LogisticRegression fit; returns (seconds, n_iter_, F)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        clf = LogisticRegression(solver=solver, C=problem.C, tol=tol, max_iter=max_iter).fit(problem.X, problem.labels)
        seconds = time.perf_counter() - start
    return seconds, int(clf.n_iter_[0]), problem.F(clf.coef_.T, clf.intercept_)


def sklearn_to_target(problem, solver, f_target, repeat, tight_iterations):
    """The smallest max_iter whose fit reaches f_target, by bisection below the tight fit's own
    iteration count (each trial fitted from scratch; F falls with max_iter), that fit timed `repeat`
    times: (median seconds, n_iter_), or None when even the tight fit misses the target."""
    reaches = {}

    def ok(m):
        if m not in reaches:
            reaches[m] = sklearn(problem, solver, 0.0, m)[2] <= f_target
        return reaches[m]
    low, high = 0, tight_iterations                      # low misses (0: nothing tried), high reaches
    if not ok(high):
        return None
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid, high)
    runs = [sklearn(problem, solver, 0.0, high) for _ in range(repeat)]
    return float(np.median([r[0] for r in runs])), runs[0][1]


def run_problem(problem, solvers, repeat):
    """Print the reference fits and the Markdown table of one problem."""
    print(f"\n### Fashion-MNIST {problem.name}, {len(problem.labels)} x 784 float64, C = {problem.C} "
          f"(weight_decay = {problem.weight_decay:.6g})\n")
    tight = {}
    for solver in solvers:
        library, name = solver.split("-", 1)
        print(f"(tight fit: {solver} ...)", file=sys.stderr, flush=True)
        if library == "ours":
            seconds, points, f = ours(problem, name, 1e-10, trace_f=False)
            tight[solver] = (seconds, len(points), f)
        else:
            tight[solver] = sklearn(problem, name, 1e-10, 10000)
    best = min(tight, key=lambda s: tight[s][2])
    f_star = tight[best][2]
    f_target = f_star * (1 + TARGET)

    rows = []
    for solver in solvers:
        library, name = solver.split("-", 1)
        print(f"(to the target: {solver} ...)", file=sys.stderr, flush=True)
        if library == "ours":
            runs = [ours(problem, name, 0.0, f_target) for _ in range(repeat)]
            reached = [next(((s, i, p) for i, (s, f, p) in enumerate(points, 1) if f <= f_target), None)
                       for _, points, _ in runs]
            if None in reached:
                rows.append((solver, None, None, None))
            else:
                rows.append((solver, float(np.median([r[0] for r in reached])), reached[0][1], reached[0][2]))
        else:
            found = sklearn_to_target(problem, name, f_target, repeat, tight[solver][1])
            rows.append((solver, *(found or (None, None)), None))

    seconds = {solver: s for solver, s, _, _ in rows}
    print(f"| solver | seconds to F <= F* (1 + {TARGET:g}) | iterations | passes over the data | "
          "scikit-learn / ours |")
    print("|---|---|---|---|---|")
    for solver, s, iterations, passes in rows:
        library, name = solver.split("-", 1)
        mine = seconds.get(f"ours-{name}")
        ratio = f"{s / mine:.1f}" if library == "sklearn" and s and mine else "-"
        print(f"| {solver} | {'not reached' if s is None else f'{s:.2f}'} | {iterations or '-'} | "
              f"{'not counted' if library == 'sklearn' else passes or '-'} | {ratio} |")
    print(f"\nF* = {f_star:.12g}, from {best}'s tight fit. Tight fits (tol 1e-10): " + "; ".join(
        f"{s} {t[0]:.1f} s, {t[1]} iterations, F / F* - 1 = {t[2] / f_star - 1:.1e}" for s, t in tight.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="the first N training rows only (a quick try)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per solver (median reported)")
    parser.add_argument("--C", type=float, default=0.01)
    parser.add_argument("--problems", default=",".join(PROBLEMS), help=f"comma-separated, of {', '.join(PROBLEMS)}")
    parser.add_argument("--solvers", default=",".join(SOLVERS), help=f"comma-separated, of {', '.join(SOLVERS)}")
    args = parser.parse_args()
    problems, solvers = args.problems.split(","), args.solvers.split(",")
    for name, chosen, allowed in (("--problems", problems, PROBLEMS), ("--solvers", solvers, SOLVERS)):
        if not chosen or set(chosen) - set(allowed):
            parser.error(f"{name}: expected a comma-separated subset of {', '.join(allowed)}")

    data = sr.load_fashion_mnist()
    n = len(data.train_labels) if args.rows is None else args.rows
    images, labels = data.train_images[:n].reshape(n, -1), data.train_labels[:n]
    print(f"machine: {machine()}")
    for name in problems:
        start = time.perf_counter()
        run_problem(Problem(name, images, labels, args.C), solvers, args.repeat)
        print(f"\n(this problem took {time.perf_counter() - start:.0f} s in all)", flush=True)


if __name__ == "__main__":
    main()
