"""Full softmax at many classes (issue #21): our L-BFGS to scikit-learn's lbfgs objective, and our
SGD epoch beside PyTorch's, the peers in the same run, interleaved round by round.

Problem: random float32 features X (n x d, standard normal) and labels from a random linear teacher,
y = argmax(X T) with T (d, k) standard normal, both from numpy's seeded Generator; a class that no
row's argmax picks is given to one random row of a class with rows to spare, so all k classes
occur. C = 1.

L-BFGS: scikit-learn's LogisticRegression(C=1, solver="lbfgs", tol=1e-4) on X as given (float32),
timed to its own stop; it minimises C sum_i l_i + |W|^2 / 2, the same minimiser as our
F = mean_i l_i + (wd / 2) |W|^2 with wd = 1 / (C n). Its F is taken by our float64 objective over
all rows (`exact_objective`). Ours: fit(solver="lbfgs", tol=0) on a float32 model from seed 0,
stopped by a callback once the F of its own pass (float64 sums of float32 products, the penalty
added) is <= scikit-learn's; the time includes the Gram pass and eigendecomposition of the
preconditioner. Its final F is re-evaluated by `exact_objective` outside the clock.

SGD epoch: one epoch at the same batch size and rate in float32. Ours: fit(epochs=1), the
EpochRecord's seconds (training alone: metrics.csv's epoch_seconds). PyTorch: nn.Linear(d, k) +
CrossEntropyLoss + optim.SGD over the same permutation of rows (fit's first shuffle), tensors made
from the same arrays beforehand, the loop timed. One untimed epoch of each comes first (torch's
first steps pay for its set-up).

Figures are medians over --repeat rounds; each round runs every contender once, in turn. The
header gives the CPU, the BLAS kernel and threads (threadpoolctl), torch's threads, and the load
average before and after: this machine may be shared.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/large_k.py [--sizes 10000x512,20000x1024]
        [--k 1000] [--repeat 3] [--batch 256] [--lr 0.1] [--threads N] [--parts lbfgs,sgd]

--threads N limits BLAS (threadpoolctl) and torch to N threads for the whole run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

import softmaxreg as sr
from softmaxreg.full_batch import FullBatch
from softmaxreg.objective import SoftmaxCrossEntropy, flat_params
from softmaxreg.seeding import shuffle_generator
from softmaxreg.solvers import LBFGS

C, SKLEARN_TOL = 1.0, 1e-4


def machine() -> str:
    """CPU, NumPy, the BLAS kernel and threads (threadpoolctl), torch's threads if it is installed."""
    from threadpoolctl import threadpool_info
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    blas = [f"{i['internal_api']} {i.get('version')} {i.get('architecture')} kernel, {i['num_threads']} threads"
            for i in threadpool_info() if i["user_api"] == "blas"]
    torch = sys.modules.get("torch")
    threads = f"; torch {torch.__version__}, {torch.get_num_threads()} threads" if torch else ""
    return f"{cpu}, {os.cpu_count()} cores; numpy {np.__version__}; {'; '.join(blas)}{threads}"


def make_problem(n: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, d) float32, y (n,) int64): standard normal features, labels argmax(X T) of a standard
    normal teacher T (d, k); each class no row picks is given to one random row of a class that
    keeps another (all k occur)."""
    if n < k:
        raise ValueError(f"need at least as many rows as classes (n = {n}, k = {k})")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = np.argmax(X @ rng.standard_normal((d, k), dtype=np.float32), axis=1)
    counts = np.bincount(y, minlength=k)
    for c in np.flatnonzero(counts == 0):                   # from a random row of a class with others left
        row = rng.choice(np.flatnonzero(counts[y] > 1))
        counts[y[row]] -= 1
        y[row], counts[c] = c, 1
    return X, y


def exact_objective(X, y, W, b, weight_decay: float) -> float:
    """F(W, b) = mean_i l_i + (wd / 2) |W|^2 in float64 over all rows (our full-batch pass)."""
    model = sr.SoftmaxRegression(X.shape[1], W.shape[1], dtype=np.float64)
    model.W, model.b = np.asarray(W, np.float64).copy(), np.asarray(b, np.float64).copy()
    with FullBatch(SoftmaxCrossEntropy(model, weight_decay=weight_decay), X, y) as fun:
        return fun(flat_params(model))[0]


def sklearn_lbfgs(X, y) -> tuple[float, np.ndarray, np.ndarray, int]:
    """(seconds, W (d, k), b (k,), iterations) of LogisticRegression(C, lbfgs, tol 1e-4) to its stop."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=C, solver="lbfgs", tol=SKLEARN_TOL, max_iter=1000).fit(X, y)
    return time.perf_counter() - start, clf.coef_.T, clf.intercept_, int(clf.n_iter_[0])


class StopAt(sr.Callback):
    """Stop a full-batch fit once F = training loss + (wd / 2) |W|^2 <= target."""

    def __init__(self, target: float, weight_decay: float):
        self.target, self.weight_decay, self.reached = target, weight_decay, False

    def on_train_begin(self, run):
        self.run = run

    def on_epoch_end(self, record, history):
        W = self.run.model.W
        if record.train_loss + 0.5 * self.weight_decay * float(np.vdot(W, W)) <= self.target:
            self.reached = self.run.stop = True


def ours_lbfgs(X, y, k: int, target: float) -> tuple[float, sr.SoftmaxRegression, int, int, bool]:
    """(seconds, model, iterations, objective evaluations, reached) of our L-BFGS stopped at F <= target."""
    weight_decay = 1.0 / (C * X.shape[0])
    model, optimizer, stop = sr.SoftmaxRegression(X.shape[1], k, seed=0), LBFGS(), StopAt(target, weight_decay)
    start = time.perf_counter()
    history = sr.fit(model, X, y, optimizer=optimizer, solver="lbfgs", max_iter=500, tol=0.0, weight_decay=weight_decay,
                     callbacks=[stop])
    return time.perf_counter() - start, model, len(history), optimizer.evaluations, stop.reached


def ours_epoch(X, y, k: int, batch: int, lr: float) -> float:
    """Seconds of one SGD epoch of ours (EpochRecord.seconds: the training loop alone)."""
    model = sr.SoftmaxRegression(X.shape[1], k, seed=0)
    return sr.fit(model, X, y, epochs=1, batch_size=batch, lr=lr, seed=0)[-1].seconds


def torch_epoch(X, y, k: int, batch: int, lr: float) -> float:
    """Seconds of one epoch of idiomatic PyTorch (nn.Linear + CrossEntropyLoss + optim.SGD) on CPU,
    over fit's first permutation (seed 0), float32."""
    import torch
    torch.manual_seed(0)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    net = torch.nn.Linear(X.shape[1], k)
    loss_fn, opt = torch.nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), lr=lr)
    order = torch.from_numpy(shuffle_generator(0).permutation(X.shape[0]))
    start = time.perf_counter()
    for first in range(0, X.shape[0], batch):
        idx = order[first:first + batch]
        opt.zero_grad()
        loss_fn(net(Xt[idx]), yt[idx]).backward()
        opt.step()
    return time.perf_counter() - start


def median_range(values) -> str:
    """'median (min-max)' in seconds, three significant decimals."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def lbfgs_rows(X, y, k: int, repeat: int) -> list[str]:
    """Markdown rows: scikit-learn's lbfgs to its tol, ours to its F, medians over `repeat` rounds."""
    weight_decay = 1.0 / (C * X.shape[0])
    theirs, ours, target = [], [], None
    for r in range(repeat):
        seconds, W, b, iterations = sklearn_lbfgs(X, y)
        f = exact_objective(X, y, W, b, weight_decay)
        target = f if target is None else target              # the same fit each round: same F up to threads
        theirs.append((seconds, iterations, f))
        print(f"  round {r + 1}: scikit-learn {seconds:.2f} s, F {f:.6f}", file=sys.stderr, flush=True)
        seconds, model, iterations, evaluations, reached = ours_lbfgs(X, y, k, target)
        ours.append((seconds, iterations, evaluations, exact_objective(X, y, model.W, model.b, weight_decay), reached))
        print(f"  round {r + 1}: ours {seconds:.2f} s, {iterations} iterations", file=sys.stderr, flush=True)
    t, o = statistics.median(s[0] for s in theirs), statistics.median(s[0] for s in ours)
    return [f"| scikit-learn LogisticRegression(lbfgs, tol {SKLEARN_TOL:g}) | {median_range([s[0] for s in theirs])} | "
            f"{theirs[0][1]} iterations | {theirs[0][2]:.6f} | 1.00 |",
            f"| softmaxreg L-BFGS until F <= scikit-learn's | {median_range([s[0] for s in ours])} | "
            f"{ours[0][1]} iterations, {ours[0][2]} evaluations | {ours[0][3]:.6f}"
            f"{'' if all(s[4] for s in ours) else ' (not reached)'} | {o / t:.2f} |"]


def sgd_rows(X, y, k: int, repeat: int, batch: int, lr: float) -> list[str]:
    """Markdown rows: one SGD epoch, ours and PyTorch's, medians over `repeat` interleaved rounds."""
    ours, theirs = [], []
    ours_epoch(X, y, k, batch, lr), torch_epoch(X, y, k, batch, lr)      # untimed: first calls pay for set-up
    for r in range(repeat):
        ours.append(ours_epoch(X, y, k, batch, lr))
        theirs.append(torch_epoch(X, y, k, batch, lr))
        print(f"  round {r + 1}: ours {ours[-1]:.3f} s, PyTorch {theirs[-1]:.3f} s", file=sys.stderr, flush=True)
    t = statistics.median(theirs)
    return [f"| PyTorch nn.Linear + CrossEntropyLoss + optim.SGD, batch {batch} | {median_range(theirs)} | | | 1.00 |",
            f"| softmaxreg SGD, batch {batch} | {median_range(ours)} | | | {statistics.median(ours) / t:.2f} |"]


def parse_size(text: str) -> tuple[int, int]:
    n, _, d = text.lower().partition("x")
    return int(n), int(d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000x512", help="comma-separated n x d (default 10000x512)")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threads", type=int, help="BLAS and torch threads (default: as they start)")
    parser.add_argument("--parts", default="lbfgs,sgd", help="comma-separated: lbfgs, sgd")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "sgd" in parts:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
    if args.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads, "blas")
    print(f"machine: {machine()}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for size in args.sizes.split(","):
        n, d = parse_size(size)
        X, y = make_problem(n, d, args.k)
        print(f"\n{n:,} x {d:,} float32, {args.k:,} classes, C = {C:g}; medians of {args.repeat} (min-max)\n")
        print("| run | seconds | iterations | F (float64) | x peer |")
        print("|---|---|---|---|---|", flush=True)
        rows = []
        if "lbfgs" in parts:
            rows += lbfgs_rows(X, y, args.k, args.repeat)
        if "sgd" in parts:
            rows += sgd_rows(X, y, args.k, args.repeat, args.batch, args.lr)
        print("\n".join(rows), flush=True)
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
