"""The two figures every `softmaxreg train` writes (curves.png, misclassified.png), drawn with
Pillow.

matplotlib takes ~0.5 s to import on our machines, a third of a whole training run, and ~35 MB;
Pillow takes ~0.03 s. So these two simple figures are drawn directly: lines on a supersampled
canvas (anti-aliased when scaled down), text in DejaVu Sans (matplotlib's own font, found
without importing matplotlib), colours from matplotlib's default cycle. The other figures
(evaluate, experiments) are in plots.py, with matplotlib. Files are written atomically.
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .fileio import atomic_write_bytes

__all__ = ["plot_curves", "plot_image_grid", "render_curves", "render_image_grid"]

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c")          # matplotlib's tab:blue, tab:orange, tab:green
SUPERSAMPLE = 3
TILE_SCALE = 4                                       # each image pixel becomes 4 x 4 output pixels


def _font(size: int):
    from PIL import ImageFont

    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        path = Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        try:
            return ImageFont.truetype(str(path), size)
        except OSError:
            pass
    return ImageFont.load_default(size)


def _save(image, path) -> None:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _nice_ticks(lo: float, hi: float, target: int = 6) -> np.ndarray:
    """Round tick values covering [lo, hi], about `target` of them, spaced 1, 2 or 5 x 10^k."""
    raw = (hi - lo) / max(target - 1, 1)
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    return np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1) * step


def _label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def _segment_samples(a, b, count: int = 16) -> list:
    """Points along the segment a-b, to count what a legend box there would hide."""
    t = np.linspace(0, 1, count)[:, None]
    return list((1 - t) * np.array(a) + t * np.array(b))


def render_curves(history, *, title: str = "Softmax regression training", size=(600, 400)):
    """Train loss, validation loss and validation accuracy per epoch on one axis, as on the
    lesson's progress board; returns a PIL image."""
    from PIL import Image, ImageDraw

    s = SUPERSAMPLE
    width, height = size[0] * s, size[1] * s
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, title_font = _font(11 * s), _font(13 * s)
    left, right, top, bottom = 62 * s, width - 16 * s, 34 * s, height - 46 * s

    epochs = np.asarray(history.column("epoch"), dtype=float)
    series = [(name, np.asarray(history.column(column), dtype=float), color) for (name, column), color in
              zip((("train loss", "train_loss"), ("val loss", "val_loss"), ("val acc", "val_acc")), COLORS)]
    values = np.concatenate([v for _, v, _ in series])
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    lo, hi = lo - pad, hi + pad
    x_lo, x_hi = 0.5, (epochs.max() if epochs.size else 1) + 0.5

    def px(x, y):
        return (left + (x - x_lo) / (x_hi - x_lo) * (right - left), bottom - (y - lo) / (hi - lo) * (bottom - top))

    y_ticks = _nice_ticks(lo, hi)
    x_ticks = _nice_ticks(1, max(x_hi - 0.5, 2), target=min(10, int(x_hi)))
    x_ticks = x_ticks[(x_ticks == np.round(x_ticks)) & (x_ticks >= 1) & (x_ticks <= x_hi)]
    for y in y_ticks:
        yy = px(x_lo, y)[1]
        draw.line([(left, yy), (right, yy)], fill="#e6e6e6", width=s)
        draw.line([(left - 4 * s, yy), (left, yy)], fill="black", width=s)
        draw.text((left - 7 * s, yy), _label(y, y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0),
                  font=font, fill="black", anchor="rm")
    for x in x_ticks:
        xx = px(x, lo)[0]
        draw.line([(xx, top), (xx, bottom)], fill="#e6e6e6", width=s)
        draw.line([(xx, bottom), (xx, bottom + 4 * s)], fill="black", width=s)
        draw.text((xx, bottom + 7 * s), f"{x:.0f}", font=font, fill="black", anchor="mt")
    draw.rectangle([left, top, right, bottom], outline="black", width=s)

    radius, drawn = 3 * s, []
    for _, v, color in series:
        points = [px(x, y) if math.isfinite(y) else None for x, y in zip(epochs, v)]
        for a, b in zip(points, points[1:]):
            if a is not None and b is not None:
                draw.line([a, b], fill=color, width=2 * s)
                drawn += _segment_samples(a, b)
        for p in points:
            if p is not None:
                draw.ellipse([p[0] - radius, p[1] - radius, p[0] + radius, p[1] + radius], fill=color)
                drawn.append(p)

    draw.text(((left + right) / 2, top - 9 * s), title, font=title_font, fill="black", anchor="mb")
    draw.text(((left + right) / 2, height - 8 * s), "epoch", font=font, fill="black", anchor="mb")
    axis_label = Image.new("RGB", (int(draw.textlength("loss / accuracy", font=font)) + 2 * s, 16 * s), "white")
    ImageDraw.Draw(axis_label).text((s, 8 * s), "loss / accuracy", font=font, fill="black", anchor="lm")
    rotated = axis_label.rotate(90, expand=True)
    image.paste(rotated, (6 * s, int((top + bottom - rotated.height) / 2)))

    line_h, swatch = 17 * s, 22 * s                  # the legend, in the corner that hides the fewest points
    box_w = swatch + 18 * s + int(max(draw.textlength(name, font=font) for name, _, _ in series))
    box_h = line_h * len(series) + 8 * s
    drawn = np.array(drawn).reshape(-1, 2)
    corners = [(x0, y0) for y0 in (top + 8 * s, bottom - 8 * s - box_h, (top + bottom - box_h) / 2)
               for x0 in (right - 8 * s - box_w, left + 8 * s)]
    x0, y0 = min(corners, key=lambda c: np.count_nonzero((drawn[:, 0] >= c[0]) & (drawn[:, 0] <= c[0] + box_w)
                                                          & (drawn[:, 1] >= c[1]) & (drawn[:, 1] <= c[1] + box_h)))
    box = [x0, y0, x0 + box_w, y0 + box_h]
    draw.rectangle(box, fill="white", outline="#cccccc", width=s)
    for i, (name, _, color) in enumerate(series):
        y = box[1] + 4 * s + line_h * i + line_h / 2
        draw.line([(box[0] + 6 * s, y), (box[0] + 6 * s + swatch, y)], fill=color, width=2 * s)
        draw.ellipse([box[0] + 6 * s + swatch / 2 - radius, y - radius, box[0] + 6 * s + swatch / 2 + radius, y + radius],
                     fill=color)
        draw.text((box[0] + 12 * s + swatch, y), name, font=font, fill="black", anchor="lm")
    return image.resize(size, Image.Resampling.LANCZOS)


def render_image_grid(images: np.ndarray, titles: Sequence[str], *, ncols: int = 8, title: str | None = None):
    """A grid of grey images (n, h, w) with values 0..255, each under its own title (e.g.
    "true\\npredicted"). Returns (PIL image, [(left, top) of each tile]); a tile is its image
    scaled TILE_SCALE times by repeating pixels."""
    from PIL import Image, ImageDraw

    images = np.clip(np.asarray(images), 0, 255).astype(np.uint8)
    n, h, w = images.shape if len(images) else (0, 28, 28)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    font, title_font = _font(12), _font(14)
    lines = [line for t in titles[:n] for line in t.splitlines()]
    tile_w, tile_h = w * TILE_SCALE, h * TILE_SCALE
    gap, title_h = 14, 30 if title else 6
    label_h = 15 * max((len(t.splitlines()) for t in titles[:n]), default=0) + 4
    cell_w = max([tile_w] + [math.ceil(font.getlength(line)) for line in lines]) + gap
    cell_h = label_h + tile_h + gap
    width = max(ncols * cell_w + gap, math.ceil(title_font.getlength(title)) + 2 * gap if title else 0)
    image = Image.new("L", (width, title_h + nrows * cell_h), 255)
    draw = ImageDraw.Draw(image)
    boxes = []
    for i, (tile, label) in enumerate(zip(images, titles)):
        r, c = divmod(i, ncols)
        left, top = gap + c * cell_w + (cell_w - gap - tile_w) // 2, title_h + r * cell_h + label_h
        image.paste(Image.fromarray(np.repeat(np.repeat(tile, TILE_SCALE, axis=0), TILE_SCALE, axis=1)), (left, top))
        draw.multiline_text((left + tile_w / 2, top - 3), label, font=font, fill=0, anchor="md", align="center",
                            spacing=2)
        boxes.append((left, top))
    if title:
        draw.text((image.width / 2, 8), title, font=title_font, fill=0, anchor="mt")
    return image, boxes


def plot_curves(history, path, *, title: str = "Softmax regression training") -> None:
    """render_curves(history) written to `path` as PNG."""
    _save(render_curves(history, title=title), path)


def plot_image_grid(images: np.ndarray, titles: Sequence[str], path, *, ncols: int = 8,
                    title: str | None = None) -> None:
    """render_image_grid(...) written to `path` as PNG."""
    _save(render_image_grid(images, titles, ncols=ncols, title=title)[0], path)
