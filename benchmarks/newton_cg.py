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
                  fit's iterations, or, without a tight fit of it (--reference), doubling from 8 until
                  one reaches, then bisection; each trial fitted from scratch, F decreases and time
                  grows with max_iter), then that fit timed; n_iter_ is its iterations. With
                  --budget, the search stops once its trials took that many seconds: the time to the
                  target is then more than that of the largest trial that missed ("> T", and the
                  ratio ">= r"). Its passes are not counted: LogisticRegression
                  exposes neither scipy's function evaluations (lbfgs) nor its own Hessian products
                  (newton-cg), and counting by wrapping private functions would not be honest.

and the ratio scikit-learn / ours for the solver of the same name, then our better solver against
scikit-learn's better one. The tight reference fits are timed too (printed under the table).

    python benchmarks/newton_cg.py [--rows N] [--repeat 3] [--problems standardized,raw]
                                   [--solvers ours-newton-cg,ours-lbfgs,sklearn-newton-cg,sklearn-lbfgs]
                                   [--reference SOLVERS] [--budget SECONDS]

Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (`env -u OPENBLAS_CORETYPE -u
OPENBLAS_L2_SIZE python benchmarks/newton_cg.py`); the header says which CPU and BLAS kernel ran.
On 2 cores scikit-learn's tight newton-cg fit of all 60,000 rows takes about 20 minutes (25
iterations), its lbfgs longer: on all rows take F* from our Newton-CG (`--reference ours-newton-cg`,
which matched scikit-learn's F* to 2e-16 on 10,000 rows) and bound scikit-learn's searches
(`--budget`); --rows 10000 is a quick try with every reference fit.
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


def sklearn_to_target(problem, solver, f_target, repeat, budget, known=None):
    """The smallest max_iter whose fit reaches f_target, and that fit's median seconds over `repeat`
    runs (the search's own fit of it one of them). F falls and time grows with max_iter, each trial
    fitted from scratch: bisection below `known` (the tight fit's iterations), or without it doubling
    from 8 until a fit reaches, then bisection. Once the trials took `budget` seconds, the search stops
    where it is. Returns (low, high): low = (max_iter, seconds) of the largest trial that missed (its
    time a lower bound on the time to the target; None if none did), high = (max_iter, median seconds)
    of the smallest that reached (None if none did); high - low = 1 iteration unless the budget ran out."""
    trials = {}

    def reaches(m):
        if m not in trials:
            seconds, _, f = sklearn(problem, solver, 0.0, m)
            trials[m] = (f <= f_target, seconds)
            print(f"  ({solver} max_iter={m}: F / F* - 1 = {f / f_target * (1 + TARGET) - 1:.2e}, {seconds:.1f} s)",
                  file=sys.stderr, flush=True)
        return trials[m][0]
    spent = lambda: sum(s for _, s in trials.values())             # noqa: E731
    low, high = 0, known or 8
    while not reaches(high):
        low = high
        if known or high >= 10000 or spent() > budget:
            return (low, trials[low][1]), None
        high *= 2
    while high - low > 1 and spent() <= budget:
        mid = (low + high) // 2
        low, high = (low, mid) if reaches(mid) else (mid, high)
    runs = [trials[high][1]] + [sklearn(problem, solver, 0.0, high)[0] for _ in range(repeat - 1)]
    return ((low, trials[low][1]) if low else None), (high, float(np.median(runs)))


def run_problem(problem, solvers, repeat, reference, budget):
    """Print the reference fits and the Markdown table of one problem: F* from the tight fits of the
    `reference` solvers."""
    print(f"\n### Fashion-MNIST {problem.name}, {len(problem.labels)} x 784 float64, C = {problem.C} "
          f"(weight_decay = {problem.weight_decay:.6g})\n")
    tight = {}
    for solver in reference:
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

    rows = {}                          # solver -> (seconds or None, iterations, passes, lower bound (max_iter, s))
    for solver in solvers:
        library, name = solver.split("-", 1)
        print(f"(to the target: {solver} ...)", file=sys.stderr, flush=True)
        if library == "ours":
            runs = [ours(problem, name, 0.0, f_target) for _ in range(repeat)]
            reached = [next(((s, i, p) for i, (s, f, p) in enumerate(points, 1) if f <= f_target), None)
                       for _, points, _ in runs]
            rows[solver] = ((None, None, None, None) if None in reached else
                            (float(np.median([r[0] for r in reached])), reached[0][1], reached[0][2], None))
        else:
            low, high = sklearn_to_target(problem, name, f_target, repeat, budget,
                                          tight[solver][1] if solver in tight else None)
            rows[solver] = (high[1], high[0], None, low) if high and (not low or high[0] - low[0] == 1) \
                else (None, None, None, low)

    def shown(solver):
        """The seconds column: the time, or the bounds the search left ("> T" from the largest miss)."""
        s, _, _, low = rows[solver]
        return f"{s:.2f}" if s is not None else f"> {low[1]:.1f} (max_iter {low[0]} missed)" if low else "not reached"

    def ratio(theirs, mine):
        """scikit-learn / ours, ">= r" when only a lower bound of theirs is known."""
        s, low, m = rows[theirs][0], rows[theirs][3], rows.get(mine, (None,))[0]
        if not m:
            return "-"
        return f"{s / m:.1f}" if s is not None else f">= {low[1] / m:.1f}" if low else "-"

    print(f"| solver | seconds to F <= F* (1 + {TARGET:g}) | iterations | passes over the data | "
          "scikit-learn / ours |")
    print("|---|---|---|---|---|")
    for solver, (s, iterations, passes, _) in rows.items():
        library, name = solver.split("-", 1)
        print(f"| {solver} | {shown(solver)} | {iterations or '-'} | "
              f"{'not counted' if library == 'sklearn' else passes or '-'} | "
              f"{ratio(solver, f'ours-{name}') if library == 'sklearn' else '-'} |")
    ours_rows = [r for r in rows if r.startswith("ours") and rows[r][0] is not None]
    theirs_rows = [r for r in rows if r.startswith("sklearn")]
    if ours_rows and theirs_rows:
        fastest = min(ours_rows, key=lambda r: rows[r][0])
        bounds = {r: rows[r][0] if rows[r][0] is not None else rows[r][3][1] if rows[r][3] else None
                  for r in theirs_rows}
        if None not in bounds.values():
            theirs = min(bounds, key=bounds.get)
            print(f"\nbest against best: {fastest} {rows[fastest][0]:.2f} s, {theirs} {shown(theirs)}: "
                  f"{ratio(theirs, fastest)}x")
    print(f"\nF* = {f_star:.12g}, from {best}'s tight fit. Tight fits (tol 1e-10): " + "; ".join(
        f"{s} {t[0]:.1f} s, {t[1]} iterations, F / F* - 1 = {t[2] / f_star - 1:.1e}" for s, t in tight.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="the first N training rows only (a quick try)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per solver (median reported)")
    parser.add_argument("--C", type=float, default=0.01)
    parser.add_argument("--raw-C", type=float, default=None,
                        help="C of the raw problem (default --C); C / 255^2 is the [0, 1]-pixel problem at C in "
                             "pixel units: the same minimiser, well posed, only worse conditioned")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help=f"comma-separated, of {', '.join(PROBLEMS)}")
    parser.add_argument("--solvers", default=",".join(SOLVERS), help=f"comma-separated, of {', '.join(SOLVERS)}")
    parser.add_argument("--reference", default=None,
                        help="comma-separated solvers whose tight fits give F* (default: all of --solvers); "
                             "scikit-learn's without one are searched by doubling max_iter from 8")
    parser.add_argument("--budget", type=float, default=float("inf"),
                        help="seconds of scikit-learn trial fits per solver after which its search stops where it "
                             "is, its time then bounded from below by the largest trial that missed")
    args = parser.parse_args()
    problems, solvers = args.problems.split(","), args.solvers.split(",")
    reference = solvers if args.reference is None else args.reference.split(",")
    for name, chosen, allowed in (("--problems", problems, PROBLEMS), ("--solvers", solvers, SOLVERS),
                                  ("--reference", reference, SOLVERS)):
        if not chosen or set(chosen) - set(allowed):
            parser.error(f"{name}: expected a comma-separated subset of {', '.join(allowed)}")

    data = sr.load_fashion_mnist()
    n = len(data.train_labels) if args.rows is None else args.rows
    images, labels = data.train_images[:n].reshape(n, -1), data.train_labels[:n]
    print(f"machine: {machine()}")
    for name in problems:
        start = time.perf_counter()
        C = args.raw_C if name == "raw" and args.raw_C is not None else args.C
        run_problem(Problem(name, images, labels, C), solvers, args.repeat, reference, args.budget)
        print(f"\n(this problem took {time.perf_counter() - start:.0f} s in all)", flush=True)


if __name__ == "__main__":
    main()
