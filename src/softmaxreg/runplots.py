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

__all__ = ["plot_curves", "plot_image_grid", "render_curves", "render_image_grid", "curve_panels"]

COLORS = ("#1f77b4", "#ff7f0e")                    # matplotlib's tab:blue, tab:orange: train, validation
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


MAX_MARKERS = 25                                     # per curve: with more epochs, every n-th one is marked
CURVES_SIZE = (860, 380)
_MARGIN = dict(left=66, right=14, top=62, bottom=44, gap=78)  # around and between the panels, in output pixels


def curve_panels(size=CURVES_SIZE) -> dict[str, tuple[float, float, float, float]]:
    """(left, top, right, bottom) of the loss and accuracy panels of a `render_curves` image."""
    m = _MARGIN
    width = (size[0] - m["left"] - m["right"] - m["gap"]) / 2
    top, bottom = m["top"], size[1] - m["bottom"]
    return {"loss": (m["left"], top, m["left"] + width, bottom),
            "accuracy": (size[0] - m["right"] - width, top, size[0] - m["right"], bottom)}


def _marked(n: int) -> np.ndarray:
    """Indices of the points that get a marker: all of a short run, about MAX_MARKERS of a long one."""
    every = max(1, math.ceil(n / MAX_MARKERS))
    return np.unique(np.r_[np.arange(0, n, every), n - 1]) if n else np.zeros(0, dtype=int)


def _draw_panel(image, draw, box, epochs, series, *, x_hi: float, y_limits, y_label: str, s: int, font,
                x_label: str = "epoch") -> None:
    """One axis: grid, ticks, frame, the (values, colour) lines of `series` with thinned markers."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = (v * s for v in box)
    values = np.concatenate([v for v, _ in series])
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo) if hi > lo else 0.05
    lo, hi = max(lo - pad, y_limits[0]), min(hi + pad, y_limits[1])
    x_lo = 0.5

    def px(x, y):
        return (left + (x - x_lo) / (x_hi - x_lo) * (right - left), bottom - (y - lo) / (hi - lo) * (bottom - top))

    y_ticks = _nice_ticks(lo, hi)
    y_ticks = y_ticks[(y_ticks >= lo) & (y_ticks <= hi)]
    x_ticks = _nice_ticks(1, max(x_hi - 0.5, 2), target=min(8, int(x_hi)))
    x_ticks = x_ticks[(x_ticks == np.round(x_ticks)) & (x_ticks >= 1) & (x_ticks <= x_hi)]
    step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    for y in y_ticks:
        yy = px(x_lo, y)[1]
        draw.line([(left, yy), (right, yy)], fill="#e6e6e6", width=s)
        draw.line([(left - 4 * s, yy), (left, yy)], fill="black", width=s)
        draw.text((left - 7 * s, yy), _label(y, step), font=font, fill="black", anchor="rm")
    for x in x_ticks:
        xx = px(x, lo)[0]
        draw.line([(xx, top), (xx, bottom)], fill="#e6e6e6", width=s)
        draw.line([(xx, bottom), (xx, bottom + 4 * s)], fill="black", width=s)
        draw.text((xx, bottom + 7 * s), f"{x:.0f}", font=font, fill="black", anchor="mt")
    draw.text(((left + right) / 2, bottom + 24 * s), x_label, font=font, fill="black", anchor="mt")
    label = Image.new("RGB", (int(draw.textlength(y_label, font=font)) + 2 * s, 16 * s), "white")
    ImageDraw.Draw(label).text((s, 8 * s), y_label, font=font, fill="black", anchor="lm")
    label = label.rotate(90, expand=True)
    image.paste(label, (int(left - 62 * s), int((top + bottom - label.height) / 2)))

    radius = 3 * s
    for v, color in series:
        points = [px(x, y) if math.isfinite(y) else None for x, y in zip(epochs, v)]
        run = []                                             # a polyline per stretch of finite values
        for p in points + [None]:
            if p is not None:
                run.append(p)
                continue
            if len(run) > 1:
                draw.line(run, fill=color, width=2 * s, joint="curve")
            run = []
        for i in _marked(len(points)):
            if points[i] is not None:
                x, y = points[i]
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    draw.rectangle([left, top, right, bottom], outline="black", width=s)


def render_curves(history, *, title: str = "Softmax regression training", size=CURVES_SIZE,
                  epochs: int | None = None, unit: str = "epoch"):
    """Loss (train and validation cross-entropy) and accuracy (train and validation) per epoch,
    side by side, with the legend above the panels (never on the data); returns a PIL image.
    `epochs` fixes the x axis to 1..epochs (the live board of a run in progress); `unit` is
    "iteration" for a full-batch solver's history (its train figures are at each iteration's point)."""
    from PIL import Image, ImageDraw

    s = SUPERSAMPLE
    image = Image.new("RGB", (size[0] * s, size[1] * s), "white")
    draw = ImageDraw.Draw(image)
    font, title_font = _font(11 * s), _font(13 * s)
    x = np.asarray(history.column("epoch"), dtype=float)
    x_hi = max(epochs or 0, x.max() if x.size else 1) + 0.5
    column = lambda name: np.asarray(history.column(name), dtype=float)          # noqa: E731
    panels = curve_panels(size)
    _draw_panel(image, draw, panels["loss"], x, [(column("train_loss"), COLORS[0]), (column("val_loss"), COLORS[1])],
                x_hi=x_hi, y_limits=(0.0, math.inf), y_label="cross-entropy", s=s, font=font, x_label=unit)
    _draw_panel(image, draw, panels["accuracy"], x, [(column("train_acc"), COLORS[0]), (column("val_acc"), COLORS[1])],
                x_hi=x_hi, y_limits=(0.0, 1.0), y_label="accuracy", s=s, font=font, x_label=unit)

    draw.text((size[0] * s / 2, 8 * s), title, font=title_font, fill="black", anchor="mt")
    train = "train (average over the epoch)" if unit == "epoch" else f"train (at each {unit}'s point)"
    entries = [(train, COLORS[0]), ("validation", COLORS[1])]
    swatch, gap = 24 * s, 22 * s
    widths = [swatch + 6 * s + draw.textlength(name, font=font) for name, _ in entries]
    x0, y = (size[0] * s - sum(widths) - gap * (len(entries) - 1)) / 2, 38 * s
    for (name, color), w in zip(entries, widths):
        draw.line([(x0, y), (x0 + swatch, y)], fill=color, width=2 * s)
        draw.ellipse([x0 + swatch / 2 - 3 * s, y - 3 * s, x0 + swatch / 2 + 3 * s, y + 3 * s], fill=color)
        draw.text((x0 + swatch + 6 * s, y), name, font=font, fill="black", anchor="lm")
        x0 += w + gap
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


def plot_curves(history, path, *, title: str = "Softmax regression training", unit: str = "epoch") -> None:
    """render_curves(history) written to `path` as PNG."""
    _save(render_curves(history, title=title, unit=unit), path)


def plot_image_grid(images: np.ndarray, titles: Sequence[str], path, *, ncols: int = 8,
                    title: str | None = None) -> None:
    """render_image_grid(...) written to `path` as PNG."""
    _save(render_image_grid(images, titles, ncols=ncols, title=title)[0], path)
