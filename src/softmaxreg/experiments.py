"""The lesson's exercises as runnable experiments, and their one registry.

Each experiment function returns an `ExperimentResult`: table rows (also the CSV), a few
summary lines, and the arrays its plot needs. `registry()` holds each experiment's record
(`Experiment`): its name, one line of help, how the command line runs it and the function
in `plots` that draws its figure; the CLI builds its choices, help and dispatch from it.
Adding an experiment: its function here, its drawing function in plots.py, one record.

The sweeps (learning rate, batch size) show a progress bar of their training steps on a terminal;
Ctrl-C during one raises `ExperimentInterrupted`, which carries the result of the runs that finished.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import math
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .callbacks import StepProgress, progress_bar
from .datasets import load_fashion_mnist, num_batches
from .errors import InvalidArgumentError, TrainingDivergedError
from .functional import cross_entropy, softmax
from .metrics import risk_coverage, threshold_for_accuracy
from .model import SoftmaxRegression, StepBuffers
from .objective import SoftmaxCrossEntropy
from .judging import load_model_and_data, logit_blocks
from .solvers import SGD
from .train import fit

__all__ = ["ExperimentResult", "ExperimentInterrupted", "Experiment", "registry", "stability", "cross_entropy_timing",
           "reject", "class_scaling", "lr_sweep", "batch_sweep", "naive_softmax", "train_reference",
           "load_model_and_data", "logit_blocks"]


@dataclass
class ExperimentResult:
    name: str
    columns: list[str]
    rows: list[dict]
    summary: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    curve: bool = False            # rows sample a curve densely: a printed table may show every n-th

    def __repr__(self) -> str:
        return "\n".join([f"ExperimentResult({self.name!r}, {len(self.rows)} rows: {', '.join(self.columns)})",
                          *self.summary])

    def figure(self):
        """The experiment's figure (a matplotlib Figure, shown inline by Jupyter)."""
        from .plots import experiment_figure

        return experiment_figure(registry()[self.name].draw, self)

    def to_csv(self) -> str:
        """The rows as CSV, floats with all their digits; text cells quoted by the csv module where they
        need it (a comma, a quote, a line break in a cell stays in its cell)."""
        def fmt(v):
            return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([fmt(r[c]) for c in self.columns] for r in self.rows)
        return buffer.getvalue()


def naive_softmax(z: np.ndarray) -> np.ndarray:
    """The lesson's first softmax, exp(Z) / sum(exp(Z)), with no shift: overflows and underflows."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)


def _rel_error(approx: np.ndarray, truth: np.ndarray) -> float:
    """Max relative error over entries float32 can hold as normal numbers; inf if any NaN/inf."""
    approx = np.asarray(approx, dtype=np.float64)
    if not np.isfinite(approx).all():
        return math.inf
    keep = np.abs(truth) >= np.finfo(np.float32).tiny
    return float(np.max(np.abs(approx[keep] - truth[keep]) / np.abs(truth[keep])))


STABILITY_CASES = {
    "ordinary logits": [1.0, 2.0, 3.0, 4.0],
    "contains 100": [100.0, 99.0, 98.0, 95.0],
    "contains 1000": [1000.0, 999.5, 998.0, 990.0],
    "maximum below -100": [-120.0, -121.0, -122.5, -125.0],
}


def stability(dtype=np.float32) -> ExperimentResult:
    """Naive vs stable softmax in float32 against float64 ground truth (the stable formula in
    float64, exact to ~1e-16 here), on the lesson's troublesome cases and a sweep of shifts."""
    rows = []
    for case, logits in STABILITY_CASES.items():
        z = np.array([logits], dtype=dtype)
        truth = softmax(np.array([logits], dtype=np.float64))
        naive, ours = naive_softmax(z), softmax(z)
        rows.append({"case": case, "logits": " ".join(f"{v:g}" for v in logits),
                     "naive": " ".join(f"{v:.6g}" for v in naive[0]), "ours": " ".join(f"{v:.6g}" for v in ours[0]),
                     "naive_rel_error": _rel_error(naive, truth), "ours_rel_error": _rel_error(ours, truth)})
    shifts = np.arange(-200.0, 200.5, 1.0)
    base = np.array([0.0, -1.0, -2.5, -5.0])
    truth = softmax(base)                      # shift-invariant
    naive_err = np.array([_rel_error(naive_softmax((base + c).astype(dtype)), truth) for c in shifts])
    ours_err = np.array([_rel_error(softmax((base + c).astype(dtype)), truth) for c in shifts])
    finite = shifts[np.isfinite(naive_err)]
    summary = [f"naive softmax ({np.dtype(dtype).name}) is finite only for shifts {finite.min():g}..{finite.max():g} "
               f"of logits {base.tolist()}; ours stays within {np.max(ours_err):.2g} relative of float64 truth "
               f"for every shift in {shifts[0]:g}..{shifts[-1]:g}"]
    columns = ["case", "logits", "naive", "ours", "naive_rel_error", "ours_rel_error"]
    return ExperimentResult("stability", columns, rows, summary,
                            {"shifts": shifts, "naive_err": naive_err, "ours_err": ours_err, "dtype": np.dtype(dtype).name})


def _median_time(f, repeats: int = 7) -> float:
    number = max(1, int(0.02 / max(timeit.timeit(f, number=1), 1e-7)))
    return float(np.median(timeit.repeat(f, number=number, repeat=repeats)) / number)


def cross_entropy_timing(classes=(10, 100, 1000, 10000), batch: int = 256, seed: int = 0) -> ExperimentResult:
    """Cross-entropy by indexing, -log P[i, y_i], vs by its definition, -sum_j Y_ij log P_ij with
    one-hot Y, both from probabilities as in the lesson, and ours from the logits."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in classes:
        Z = rng.normal(0, 2, size=(batch, k)).astype(np.float32)
        y = rng.integers(0, k, size=batch)
        P = softmax(Z)
        rows_idx = np.arange(batch)
        def one_hot():
            Y = np.zeros((batch, k), dtype=np.float32)
            Y[rows_idx, y] = 1
            return Y
        by_index = lambda: -np.log(P[rows_idx, y])                             # noqa: E731
        by_definition = lambda: -(one_hot() * np.log(P)).sum(axis=1)           # noqa: E731
        from_logits = lambda: cross_entropy(Z, y, reduction="none")             # noqa: E731
        diff = float(np.max(np.abs(by_index() - by_definition())))
        rows.append({"classes": k, "batch": batch, "index_us": _median_time(by_index) * 1e6,
                     "definition_us": _median_time(by_definition) * 1e6, "ours_from_logits_us": _median_time(from_logits) * 1e6,
                     "max_abs_difference": diff})
    # log(0): a probability that underflowed to exactly 0
    P0 = np.array([[0.7, 0.3, 0.0]], dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        idx_other = float(-np.log(P0[0, 0]))
        def_other = float(-(np.eye(3, dtype=np.float32)[[0]] * np.log(P0)).sum())
        idx_true = float(-np.log(P0[0, 2]))
    logits = np.array([[2.0, -1.0, 0.5]])
    smooth = (1 - 0.1) * np.eye(3)[[0]] + 0.1 / 3
    summary = [
        "indexing and the definition agree to float32 rounding; indexing reads n numbers, the definition "
        "builds and multiplies an n x k one-hot matrix, so its cost grows with k",
        f"log(0) at a wrong class: indexing {idx_other:.4f}, definition {def_other} (0 * log 0 = 0 * -inf = NaN); "
        f"at the true class both are inf ({idx_true}); ours works from logits and never takes log(0)",
        f"where the definition is needed, for soft targets and label smoothing: ours with label_smoothing=0.1 gives "
        f"{float(cross_entropy(logits, np.array([0]), label_smoothing=0.1)):.6f}, the definition "
        f"{float(-(smooth * np.log(softmax(logits))).sum()):.6f}",
    ]
    columns = ["classes", "batch", "index_us", "definition_us", "ours_from_logits_us", "max_abs_difference"]
    return ExperimentResult("cross-entropy", columns, rows, summary)


def reject(model: SoftmaxRegression, X, y, target_accuracy: float = 0.95) -> ExperimentResult:
    """Risk-coverage: answer only when the top probability reaches a threshold."""
    proba = model.predict_proba(X)
    y = np.asarray(y)
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    curve = risk_coverage(confidence, correct)
    found = threshold_for_accuracy(curve, target_accuracy)
    summary = [f"answering everything (threshold 0): coverage 1.000, accuracy {curve['accuracy'][-1]:.4f}"]
    if found:
        summary.append(f"{target_accuracy:.0%} accuracy is reached at threshold {found[0]:.4f}, "
                       f"answering {found[1]:.1%} of the inputs (accuracy {found[2]:.4f})")
    else:
        summary.append(f"no threshold reaches {target_accuracy:.0%} accuracy")
    rows = [{"threshold": t, "coverage": c, "accuracy": a}
            for t, c, a in zip(curve["threshold"], curve["coverage"], curve["accuracy"])]
    return ExperimentResult("reject", ["threshold", "coverage", "accuracy"], rows, summary,
                            {**curve, "target": target_accuracy, "found": found}, curve=True)


def class_scaling(classes=(10, 100, 1000, 10000, 100000), num_inputs: int = 784, batch: int = 256,
                  steps: int = 5, seed: int = 0) -> ExperimentResult:
    """Time of one SGD step and model memory as the number of classes grows (synthetic data)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(batch, num_inputs)).astype(np.float32)
    rows = []
    for k in classes:
        model = SoftmaxRegression(num_inputs, k, seed=rng, input_scale=1 / 255)
        y = rng.integers(0, k, size=batch)
        buffers, sgd = StepBuffers(batch, model), SGD()
        objective = SoftmaxCrossEntropy(model)

        def step():
            _, _, dW, db = objective.chunk(x, y, None, batch, buffers)
            sgd.step((model.W, model.b), (dW, db), 0.1)
        step()
        times = [timeit.timeit(step, number=1) for _ in range(steps)]
        rows.append({"classes": k, "step_ms": float(np.median(times)) * 1e3,
                     "model_bytes": model.W.nbytes + model.b.nbytes,
                     "step_bytes": buffers.grad_W.nbytes + buffers.grad_b.nbytes + buffers.z.nbytes + buffers.zt.nbytes})
    ks = np.array([r["classes"] for r in rows], dtype=float)
    t = np.array([r["step_ms"] for r in rows])
    upper = ks >= 1000 if (ks >= 1000).sum() >= 2 else slice(None)
    slope = float(np.polyfit(np.log(ks[upper]), np.log(t[upper]), 1)[0])
    summary = [f"step time grows like k^{slope:.2f} over k >= {int(ks[upper].min())} (the two GEMMs are "
               f"O(batch * d * k)); memory is exactly 4 (d + 1) k bytes for the model, plus the same for its "
               f"gradient and 8 batch k bytes of logits", 
               f"k = {int(ks[-1])}: {t[-1]:.1f} ms a step, model {rows[-1]['model_bytes'] / 2**20:.0f} MiB"]
    return ExperimentResult("classes", ["classes", "step_ms", "model_bytes", "step_bytes"], rows, summary,
                            {"slope": slope})


def train_reference(data, *, lr: float, batch_size: int, epochs: int, seed: int, dtype=np.float32, callbacks=()):
    """One reference-recipe run; returns (model, History, seconds, diverged error or None)."""
    d = int(np.prod(data.train_images.shape[1:]))
    model = SoftmaxRegression(d, len(data.class_names), 0.01, seed=seed, dtype=dtype, input_scale=1 / 255)
    start = time.perf_counter()
    try:
        history = fit(model, data.train_images, data.train_labels, epochs=epochs, batch_size=batch_size, lr=lr,
                      seed=seed, validation_data=(data.test_images, data.test_labels), callbacks=callbacks)
        return model, history, time.perf_counter() - start, None
    except TrainingDivergedError as e:
        return model, e.history, time.perf_counter() - start, e


class ExperimentInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: `result` is the ExperimentResult of the `done` runs (of `total`) that
    finished; the command line writes it and exits with 130."""

    def __init__(self, result: ExperimentResult, done: int, total: int):
        super().__init__(f"{result.name} interrupted after {done} of {total} runs")
        self.result, self.done, self.total = result, done, total


def _sweep(name: str, data, runs: list[dict], rows_of, summarize, progress: bool | None) -> ExperimentResult:
    """train_reference(data, **run) for each of `runs`, with a progress bar of all their steps;
    rows_of(run, history, seconds, diverged) gives a run's table rows and summarize(rows) the
    result. Ctrl-C raises ExperimentInterrupted with summarize(rows of the finished runs)."""
    n = len(data.train_images)
    steps = [run["epochs"] * num_batches(n, min(run["batch_size"], n)) for run in runs]
    bar = progress_bar(sum(steps), desc=name, unit="step", show=progress)
    callbacks = [StepProgress(bar)] if not bar.disable else []
    rows, done = [], 0
    try:
        for run, run_steps in zip(runs, steps):
            bar.set_postfix_str(f"lr {run['lr']:g} batch {run['batch_size']} seed {run['seed']}")
            counted = bar.n
            rows += rows_of(run, *train_reference(data, **run, callbacks=callbacks)[1:])
            bar.update(counted + run_steps - bar.n)         # a diverged run stops early
            done += 1
    except KeyboardInterrupt:
        raise ExperimentInterrupted(summarize(rows), done, len(runs)) from None
    finally:
        bar.close()
    return summarize(rows)


def lr_sweep(data, lrs=tuple(10.0 ** np.arange(-3, 3.01, 0.5)), seeds: int = 3, epochs: int = 10,
             batch_size: int = 256, progress: bool | None = None) -> ExperimentResult:
    """Final validation loss and accuracy over a log grid of learning rates, several seeds each.
    `progress`: a bar on stderr (default: when it is a terminal)."""
    if seeds < 1:
        raise InvalidArgumentError(f"--seeds: expected an integer >= 1, got {seeds}")

    def rows_of(run, history, seconds, diverged):
        last = history[-1] if len(history) and not diverged else None
        return [{"lr": run["lr"], "seed": run["seed"], "diverged": diverged is not None,
                 "epochs_done": len(history), "val_loss": last.val_loss if last else math.nan,
                 "val_acc": last.val_acc if last else math.nan, "seconds": seconds}]

    def summarize(rows):
        ok = [r for r in rows if not r["diverged"]]
        summary = []
        if ok:
            best = min(ok, key=lambda r: r["val_loss"])
            summary.append(f"lowest final validation loss {best['val_loss']:.4f} (accuracy {best['val_acc']:.4f}) "
                           f"at lr {best['lr']:g}, seed {best['seed']}")
        counts = {}
        for r in rows:
            counts.setdefault(r["lr"], []).append(r["diverged"])
        bad = [f"lr {lr:g} ({sum(flags)} of {len(flags)} seeds)" for lr, flags in counts.items() if any(flags)]
        summary.append(f"diverged at {', '.join(bad)}" if bad else "no learning rate diverged")
        return ExperimentResult("lr-sweep", ["lr", "seed", "diverged", "epochs_done", "val_loss", "val_acc",
                                             "seconds"], rows, summary, {"epochs": epochs, "batch_size": batch_size})

    runs = [{"lr": float(lr), "batch_size": batch_size, "epochs": epochs, "seed": seed}
            for lr in lrs for seed in range(seeds)]
    return _sweep("lr-sweep", data, runs, rows_of, summarize, progress)


def batch_sweep(data, batch_sizes=(1, 16, 256, 4096, 60000), epochs: int = 5, lr: float = 0.1,
                seed: int = 0, progress: bool | None = None) -> ExperimentResult:
    """Train and validation loss and accuracy by epoch for batch sizes from 1 to the whole set, at
    equal epochs. `progress`: a bar on stderr (default: when it is a terminal)."""
    n = len(data.train_images)

    def rows_of(run, history, seconds, diverged):
        return [{"batch_size": run["batch_size"], "epoch": r.epoch, "train_loss": r.train_loss,
                 "train_acc": r.train_acc, "val_loss": r.val_loss, "val_acc": r.val_acc, "run_seconds": seconds,
                 "diverged": diverged is not None} for r in history]

    def summarize(rows):
        summary = []
        for b in dict.fromkeys(r["batch_size"] for r in rows):
            mine = [r for r in rows if r["batch_size"] == b]
            last = mine[-1]
            summary.append(f"batch {b:>6}: {last['run_seconds']:7.2f} s for {len(mine)} epochs, final val loss "
                           f"{last['val_loss']:.4f}, acc {last['val_acc']:.4f}{' (diverged)' * last['diverged']}")
        return ExperimentResult("batch-sweep", ["batch_size", "epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                                "run_seconds"], rows, summary, {"lr": lr})

    runs = [{"lr": lr, "batch_size": min(int(b), n), "epochs": epochs, "seed": seed} for b in batch_sizes]
    return _sweep("batch-sweep", data, runs, rows_of, summarize, progress)


# -- the registry: each experiment as `softmaxreg experiment NAME` runs it ----------------------

CLASS_COUNTS = (10, 100, 1000, 10000, 100000)


@dataclass(frozen=True)
class Experiment:
    """One experiment of the command line: `run(args)` computes its result from the options of
    `softmaxreg experiment` (--quick, --epochs, --seeds, --data-dir, --model); `draw(fig, result)`
    draws its figure on a matplotlib Figure."""
    name: str
    help: str
    run: Callable[[argparse.Namespace], ExperimentResult]
    draw: Callable[..., None]


def _run_cross_entropy(args) -> ExperimentResult:
    return cross_entropy_timing(classes=CLASS_COUNTS[:3] if args.quick else CLASS_COUNTS)


def _run_classes(args) -> ExperimentResult:
    return class_scaling(classes=CLASS_COUNTS[:3] if args.quick else CLASS_COUNTS)


def _run_reject(args) -> ExperimentResult:
    """The model in --model, else the reference run trained for --epochs (default 10)."""
    if args.model:
        model, data = load_model_and_data(args.model, args.data_dir, force=args.force)
    else:
        data = load_fashion_mnist(args.data_dir)
        model = train_reference(data, lr=0.1, batch_size=256, epochs=args.epochs or 10, seed=0)[0]
    return reject(model, data.test_images, data.test_labels)


def _run_lr_sweep(args) -> ExperimentResult:
    data = load_fashion_mnist(args.data_dir)
    lrs = (0.01, 0.1, 1.0, 10.0) if args.quick else tuple(10.0 ** np.arange(-3, 3.01, 0.5))
    return lr_sweep(data, lrs=lrs, seeds=1 if args.quick else args.seeds, epochs=args.epochs or 10)


def _run_batch_sweep(args) -> ExperimentResult:
    data = load_fashion_mnist(args.data_dir)
    sizes = (16, 256, len(data.train_images)) if args.quick else (1, 16, 256, 4096, 60000)
    return batch_sweep(data, batch_sizes=sizes, epochs=args.epochs or 5)


def _run_next_word(args) -> ExperimentResult:
    """next_word.next_word with the command line's --vocab, --context, --epochs, --max-tokens,
    --sampled-fraction, --quick."""
    from . import next_word as nw

    vocabs = args.vocab or (nw.QUICK_VOCABS if args.quick else nw.VOCABS)
    max_tokens = args.max_tokens or (nw.QUICK_TOKENS if args.quick else nw.MAX_TOKENS)
    epochs = args.epochs or (1 if args.quick else nw.EPOCHS)
    return ExperimentResult("next-word", *nw.next_word(vocabs, context=args.context, epochs=epochs,
                                                       max_tokens=max_tokens, sampled_fraction=args.sampled_fraction))


@functools.cache
def registry() -> dict[str, Experiment]:
    """Every experiment by name, in the order the command line lists them. A function rather than
    a constant so that plots.py is imported when the command line asks, not by `import softmaxreg`."""
    from .next_word import draw_next_word
    from .plots import draw_batch_sweep, draw_classes, draw_cross_entropy, draw_lr_sweep, draw_reject, draw_stability

    return {e.name: e for e in (
        Experiment("stability", "naive vs stable softmax", lambda args: stability(), draw_stability),
        Experiment("cross-entropy", "indexing vs definition", _run_cross_entropy, draw_cross_entropy),
        Experiment("reject", "risk-coverage of abstaining", _run_reject, draw_reject),
        Experiment("classes", "cost as the number of classes grows", _run_classes, draw_classes),
        Experiment("lr-sweep", "final loss and accuracy over learning rates", _run_lr_sweep, draw_lr_sweep),
        Experiment("batch-sweep", "training curves over batch sizes", _run_batch_sweep, draw_batch_sweep),
        Experiment("next-word", "next word of English text: full vs sampled softmax", _run_next_word, draw_next_word),
    )}
