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

__all__ = ["plot_confusion", "plot_curves", "plot_experiment", "plot_image_grid", "plot_reliability",
           "draw_stability", "draw_cross_entropy", "draw_reject", "draw_classes", "draw_lr_sweep", "draw_batch_sweep"]


def _save(fig, path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path, *, title: str = "Confusion matrix") -> None:
    """Counts per (true, predicted) pair, with each count written in its cell."""
    from matplotlib.figure import Figure

    k = len(class_names)
    fig = Figure(figsize=(1.0 + 0.62 * k, 0.8 + 0.55 * k), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(im, ax=ax, label="examples")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if k <= 30:
        cut = confusion.max() / 2
        for (i, j), v in np.ndenumerate(confusion):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > cut else "black")
    _save(fig, path)


def plot_reliability(bins: dict, ece: float, path) -> None:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    width = bins["upper"] - bins["lower"]
    used = bins["count"] > 0
    ax.bar(bins["lower"][used], bins["accuracy"][used], width=width[used], align="edge", edgecolor="black",
           alpha=0.7, label="accuracy in bin")
    ax.plot(bins["confidence"][used], bins["confidence"][used], "o", color="C3", ms=4, label="mean confidence in bin")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE {ece:.4f})")
    ax.legend(loc="upper left")
    _save(fig, path)


def plot_experiment(draw, result, path) -> None:
    """The figure of an `experiments.ExperimentResult`, drawn by `draw(fig, result)` (one of the
    draw_* functions below, as its experiment's record in `experiments.registry` names it)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    draw(fig, result)
    _save(fig, path)


def draw_stability(fig, result) -> None:
    """Relative error of naive and stable softmax over the sweep of shifts; NaN/inf marked."""
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
    ax.legend(loc="center left")
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
    """Final validation loss and accuracy against the learning rate; diverged runs marked."""
    ax = fig.add_subplot()
    ax2 = ax.twinx()
    lrs = sorted({r["lr"] for r in result.rows})
    ok = [r for r in result.rows if not r["diverged"]]
    ax.semilogx([r["lr"] for r in ok], [r["val_loss"] for r in ok], "o", color="C0", alpha=0.5, ms=4)
    ax2.semilogx([r["lr"] for r in ok], [r["val_acc"] for r in ok], "s", color="C1", alpha=0.5, ms=4)
    def mean_of(key, lr):
        values = [r[key] for r in ok if r["lr"] == lr]
        return float(np.mean(values)) if values else np.nan
    mean_loss = [mean_of("val_loss", lr) for lr in lrs]
    mean_acc = [mean_of("val_acc", lr) for lr in lrs]
    ax.semilogx(lrs, mean_loss, "-", color="C0", label="val loss (mean over seeds)")
    ax2.semilogx(lrs, mean_acc, "-", color="C1", label="val accuracy (mean over seeds)")
    bad = [r["lr"] for r in result.rows if r["diverged"]]
    if bad:
        top = np.nanmax(mean_loss) if np.isfinite(mean_loss).any() else 1.0
        ax.semilogx(bad, [top] * len(bad), "x", color="C3", ms=9, mew=2, label="diverged")
    ax.set_xlabel("learning rate")
    ax.set_yscale("log")
    ax.set_ylabel("final validation loss (log scale)")
    ax2.set_ylabel("final validation accuracy")
    ax.set_title(f"Learning-rate sweep ({result.data['epochs']} epochs, batch 256)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center left", fontsize=8)
    ax.grid(alpha=0.3, which="both")


def draw_batch_sweep(fig, result) -> None:
    """Train and validation loss by epoch, one line per batch size."""
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    for i, b in enumerate(sorted({r["batch_size"] for r in result.rows})):
        rows = [r for r in result.rows if r["batch_size"] == b]
        label = f"batch {b} ({rows[0]['run_seconds']:.1f} s)"
        ax1.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], "-o", ms=3, color=f"C{i}", label=label)
        ax2.plot([r["epoch"] for r in rows], [r["val_loss"] for r in rows], "-o", ms=3, color=f"C{i}", label=label)
    ax1.set_title("train loss (epoch average)")
    ax2.set_title("validation loss")
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax1.set_ylabel("cross-entropy")
    ax2.legend(fontsize=8)
    fig.suptitle(f"Batch size at equal epochs (lr {result.data['lr']:g}); wall time per run in the legend")
