"""Figures as PNG files. matplotlib is imported inside each function (never at package
import) and used through its object API (no pyplot state); files are written atomically."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from .persist import atomic_write_bytes

__all__ = ["plot_curves", "plot_image_grid"]


def _save(fig, path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())


def plot_curves(history, path, *, title: str = "Softmax regression training") -> None:
    """Train loss, validation loss and validation accuracy per epoch on one axis,
    as on the lesson's progress board."""
    from matplotlib.figure import Figure

    epochs = history.column("epoch")
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(epochs, history.column("train_loss"), "-o", ms=3, label="train loss")
    ax.plot(epochs, history.column("val_loss"), "--o", ms=3, label="val loss")
    ax.plot(epochs, history.column("val_acc"), "-.o", ms=3, label="val acc")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / accuracy")
    ax.set_title(title)
    ax.set_xlim(0.5, max(epochs) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_image_grid(images: np.ndarray, titles: Sequence[str], path, *, ncols: int = 8,
                    title: str | None = None) -> None:
    """A grid of grey images (n, h, w), each with its own title (e.g. "true\\npredicted")."""
    from matplotlib.figure import Figure

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig = Figure(figsize=(1.4 * ncols, 1.75 * nrows + (0.4 if title else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, label in zip(axes, images, titles):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title)
    _save(fig, path)
