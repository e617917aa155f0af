"""Figures as PNG files. matplotlib is imported inside each function (never at package
import) and used through its object API (no pyplot state); files are written atomically.
The two figures of every training run (curves, image grid) are drawn with Pillow, in
runplots.py, and re-exported here."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from .fileio import atomic_write_bytes
from .runplots import plot_curves, plot_image_grid
from .text import PLAIN_TEXT, printable

__all__ = ["plot_confusion", "plot_curves", "plot_experiment", "plot_image_grid", "plot_reliability",
           "experiment_figure", "reliability_figure",
           "draw_stability", "draw_cross_entropy", "draw_reject", "draw_classes", "draw_lr_sweep", "draw_batch_sweep"]


def _save(fig, path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path, *, title: str = "Confusion matrix") -> None:
    """Counts per (true, predicted) pair, with each count written in its cell. Class names and the
    title are drawn as plain text (text.PLAIN_TEXT: "$x^2$" is five characters, not math), control
    characters escaped (text.printable)."""
    from matplotlib.figure import Figure

    k = len(class_names)
    fig = Figure(figsize=(1.0 + 0.62 * k, 0.8 + 0.55 * k), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(im, ax=ax, label="examples")
    names = [printable(name) for name in class_names]
    ax.set_xticks(range(k), names, rotation=45, ha="right", **PLAIN_TEXT)
    ax.set_yticks(range(k), names, **PLAIN_TEXT)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(printable(title), **PLAIN_TEXT)
    if k <= 30:
        cut = confusion.max() / 2
        for (i, j), v in np.ndenumerate(confusion):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > cut else "black")
    _save(fig, path)


def reliability_figure(bins: dict, ece: float):
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration,
    over a panel of how many examples each bin holds (a bin of 2 is noise, not miscalibration)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter

    fig = Figure(figsize=(5.5, 6.5), layout="constrained")
    ax, ax_count = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.2))
    width = bins["upper"] - bins["lower"]
    used = bins["count"] > 0
    ax.bar(bins["lower"][used], bins["accuracy"][used], width=width[used], align="edge", edgecolor="black",
           alpha=0.7, label="accuracy in bin")
    ax.plot(bins["confidence"][used], bins["confidence"][used], "o", color="C3", ms=4, label="mean confidence in bin")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE {ece:.4f})")
    ax.legend(loc="upper left")
    counts = bins["count"][used]
    ax_count.bar(bins["lower"][used], counts, width=width[used], align="edge", color="0.6", edgecolor="black")
    for left, w, n in zip(bins["lower"][used], width[used], counts):
        ax_count.text(left + w / 2, n, str(int(n)), ha="center", va="bottom", fontsize=7)
    ax_count.set_yscale("log")
    ax_count.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax_count.set_ylim(0.5, max(counts.max(), 1) * 12)
    ax_count.set_ylabel("examples")
    ax_count.set_xlabel("confidence (top probability)")
    return fig


def plot_reliability(bins: dict, ece: float, path) -> None:
    """reliability_figure(bins, ece) written to `path` as PNG."""
    _save(reliability_figure(bins, ece), path)


def experiment_figure(draw, result):
    """The figure of an `experiments.ExperimentResult`, drawn by `draw(fig, result)` (one of the
    draw_* functions below, as its experiment's record in `experiments.registry` names it)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    draw(fig, result)
    return fig


def plot_experiment(draw, result, path) -> None:
    """experiment_figure(draw, result) written to `path` as PNG."""
    _save(experiment_figure(draw, result), path)


def draw_stability(fig, result) -> None:
    """Relative error of naive and stable softmax over the sweep of shifts; NaN/inf marked. The
    legend sits below the axes, off the naive softmax's transitions."""
    ax = fig.add_subplot()
    d = result.data
    shifts, naive, ours = d["shifts"], d["naive_err"], d["ours_err"]
    floor = 1e-9
    ax.semilogy(shifts[np.isfinite(naive)], np.maximum(naive[np.isfinite(naive)], floor), ".", ms=3,
                label="naive exp(z)/sum exp(z)")
    ax.semilogy(shifts, np.maximum(ours, floor), ".", ms=3, label="ours (max subtracted)")
    bad = shifts[~np.isfinite(naive)]
    ax.semilogy(bad, np.full(bad.shape, 1.0), "x", color="C3", ms=4, label="naive gives NaN/inf")
    ax.set_xlabel("shift c added to logits (0, -1, -2.5, -5)")
    ax.set_ylabel(f"max relative error vs float64 ({d['dtype']})")
    ax.set_title("Softmax overflow and underflow: naive vs stable")
    ax.set_ylim(floor / 2, 10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=9, markerscale=2)
    ax.grid(alpha=0.3)


def draw_cross_entropy(fig, result) -> None:
    """Time per batch of the three cross-entropies against the number of classes."""
    ax = fig.add_subplot()
    k = [r["classes"] for r in result.rows]
    for key, label in (("index_us", "by indexing: -log P[i, y_i]"),
                       ("definition_us", "by definition: -sum Y log P (one-hot Y)"),
                       ("ours_from_logits_us", "ours, from logits (validated, includes the log-softmax)")):
        ax.loglog(k, [r[key] for r in result.rows], "-o", ms=4, label=label)
    ax.set_xlabel("number of classes k")
    ax.set_ylabel(f"time per batch of {result.rows[0]['batch']} (µs, median)")
    ax.set_title("Cross-entropy: indexing vs definition")
    ax.legend()
    ax.grid(alpha=0.3, which="both")


def draw_reject(fig, result) -> None:
    """Accuracy on the answered inputs against coverage, with the target and threshold 0 marked."""
    ax = fig.add_subplot()
    d = result.data
    ax.plot(d["coverage"], d["accuracy"], label="accuracy on answered inputs")
    ax.axhline(d["target"], ls="--", color="gray", label=f"target {d['target']:.0%}")
    if d["found"]:
        t, c, a = d["found"]
        ax.plot([c], [a], "o", color="C3", label=f"threshold {t:.3f}: coverage {c:.1%}")
    ax.plot([1.0], [d["accuracy"][-1]], "s", color="C2", label=f"threshold 0: accuracy {d['accuracy'][-1]:.3f}")
    ax.set_xlabel("coverage (fraction of inputs answered)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(min(d["accuracy"].min(), d["target"]) - 0.02, 1.005)
    ax.set_title("Abstaining below a confidence threshold: risk-coverage")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)


def draw_classes(fig, result) -> None:
    """Step time and memory against the number of classes, side by side."""
    k = [r["classes"] for r in result.rows]
    ax1, ax2 = fig.subplots(1, 2)
    ax1.loglog(k, [r["step_ms"] for r in result.rows], "-o", ms=4, label=f"measured (slope {result.data['slope']:.2f})")
    ax1.set_xlabel("classes k")
    ax1.set_ylabel("one SGD step, batch 256 (ms)")
    ax1.set_title("Step time")
    ax1.legend()
    ax2.loglog(k, [r["model_bytes"] / 2**20 for r in result.rows], "-o", ms=4, label="model (W, b)")
    ax2.loglog(k, [r["step_bytes"] / 2**20 for r in result.rows], "-s", ms=4, label="gradient + logit buffers")
    ax2.set_xlabel("classes k")
    ax2.set_ylabel("memory (MiB)")
    ax2.set_title("Memory")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Cost of softmax regression as the number of classes grows (d = 784)")


def draw_lr_sweep(fig, result) -> None:
    """Final validation loss and accuracy against the learning rate, counting every seed: a dot per
    finished run, the mean over seeds only where none diverged, and below, how many diverged."""
    fig.set_size_inches(7, 7.5)
    ax_loss, ax_acc, ax_bad = fig.subplots(3, 1, sharex=True, height_ratios=(3, 3, 1.3))
    rows = result.rows
    runs = {}
    for r in rows:
        runs.setdefault(r["lr"], []).append(r)
    lrs = sorted(runs)
    seeds = max((len(v) for v in runs.values()), default=0)
    complete = [lr for lr in lrs if not any(r["diverged"] for r in runs[lr])]
    finished = [r for r in rows if not r["diverged"]]
    for ax, key, color, name in ((ax_loss, "val_loss", "C0", "loss"), (ax_acc, "val_acc", "C1", "accuracy")):
        ax.plot([r["lr"] for r in finished], [r[key] for r in finished], "o", color=color, alpha=0.5, ms=4,
                label=f"one seed's final validation {name}")
        ax.plot(complete, [float(np.mean([r[key] for r in runs[lr]])) for lr in complete], "-", color=color,
                label=f"mean over all {seeds} seeds (where none diverged)")
        ax.grid(alpha=0.3, which="both")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("final val loss (log)")
    ax_acc.set_ylabel("final val accuracy")
    diverged = [sum(r["diverged"] for r in runs[lr]) for lr in lrs]
    ax_bad.bar(lrs, diverged, width=[lr * 0.5 for lr in lrs], color="C3", label="diverged seeds")
    for lr, n in zip(lrs, diverged):
        if n:
            ax_bad.text(lr, n, f"{n}/{len(runs[lr])}", ha="center", va="bottom", fontsize=8)
    ax_bad.set_ylim(0, max(seeds, 1) * 1.45)
    ax_bad.set_yticks(range(0, max(seeds, 1) + 1))
    ax_bad.set_ylabel("diverged")
    ax_bad.set_xscale("log")
    ax_bad.set_xlabel("learning rate")
    ax_bad.grid(alpha=0.3, axis="x")
    batch = result.data.get("batch_size", 256)
    ax_loss.set_title(f"Learning-rate sweep ({result.data['epochs']} epochs, batch {batch}, "
                      f"{seeds} seed{'s' * (seeds != 1)} each)")
    handles = [h for ax in (ax_loss, ax_acc, ax_bad) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=3, fontsize=7.5)


def draw_batch_sweep(fig, result) -> None:
    """Train loss, validation loss (log scale, so batch 1's high losses do not flatten the others) and
    validation accuracy by epoch, one colour per batch size; wall time per run in the legend."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    fig.set_size_inches(11, 4.5)
    ax_train, ax_val, ax_acc = fig.subplots(1, 3)
    ax_val.sharey(ax_train)
    for i, b in enumerate(sorted({r["batch_size"] for r in result.rows})):
        rows = [r for r in result.rows if r["batch_size"] == b]
        epochs = [r["epoch"] for r in rows]
        style = dict(marker="o", ms=3, color=f"C{i}", label=f"batch {b} ({rows[0]['run_seconds']:.1f} s)")
        ax_train.plot(epochs, [r["train_loss"] for r in rows], **style)
        ax_val.plot(epochs, [r["val_loss"] for r in rows], **style)
        ax_acc.plot(epochs, [r["val_acc"] for r in rows], **style)
    ax_train.set_title("train loss (epoch average)")
    ax_val.set_title("validation loss")
    ax_acc.set_title("validation accuracy")
    for ax in (ax_train, ax_val):
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("cross-entropy (log scale)")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_train, ax_val, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.legend(*ax_train.get_legend_handles_labels(), loc="outside lower center", ncols=5, fontsize=9)
    fig.suptitle(f"Batch size at equal epochs (lr {result.data['lr']:g}); wall time per run in the legend")
