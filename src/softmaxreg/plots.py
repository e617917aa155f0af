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
    """A grid of grey images (n, h, w), each with its own title (e.g. "true\npredicted").

    The tiles are laid into one mosaic drawn by a single imshow, with one text label
    per tile: ~10x faster than a subplot per image.
    """
    from matplotlib.figure import Figure

    images = np.asarray(images)
    n, h, w = images.shape if len(images) else (0, 28, 28)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    cell_inches, fontsize = 1.4, 9
    cell_w = w + max(w // 8, 1)
    lines = max((len(t.splitlines()) for t in titles[:n]), default=0)
    label_h = int(np.ceil(lines * fontsize * 1.25 / 72 * cell_w / cell_inches)) + 1   # rows of text, in pixels
    cell_h = h + label_h + max(h // 16, 1)
    mosaic = np.full((nrows * cell_h, ncols * cell_w), np.nan)         # NaN shows as the white background
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        top = r * cell_h + label_h
        mosaic[top:top + h, c * cell_w:c * cell_w + w] = image
    fig = Figure(figsize=(cell_inches * ncols, cell_inches * nrows * cell_h / cell_w + (0.5 if title else 0.1)),
                 layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_facecolor("white")
    ax.axis("off")
    for i, label in enumerate(titles[:n]):
        r, c = divmod(i, ncols)
        ax.text(c * cell_w + w / 2, r * cell_h + label_h - 0.5, label, ha="center", va="bottom", fontsize=fontsize)
    if title:
        fig.suptitle(title)
    _save(fig, path)
