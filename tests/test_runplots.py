"""The run folder's figures, drawn with Pillow: checked pixel by pixel against what was plotted."""

import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from softmaxreg.runplots import COLORS, TILE_SCALE, plot_curves, plot_image_grid, render_curves, render_image_grid
from softmaxreg.train import EpochRecord, History


def history(train_loss, val_loss, val_acc):
    return History([EpochRecord(e, tl, 0.0, vl, va, 0.1)
                    for e, (tl, vl, va) in enumerate(zip(train_loss, val_loss, val_acc), 1)])


def pixels_of(image, color, tolerance=40):
    """(rows, cols) of the pixels within `tolerance` of `color` (a #rrggbb string)."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    target = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
    return np.nonzero(np.abs(rgb - target).sum(axis=2) < tolerance)


@pytest.mark.parametrize("n, shape, ncols", [(11, (28, 28), 4), (3, (12, 20), 8), (1, (5, 5), 8)])
def test_each_tile_is_its_image_scaled_by_repeating_pixels(n, shape, ncols):
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    grid, boxes = render_image_grid(images, [f"true {i}\npredicted" for i in range(n)], ncols=ncols, title="t")
    pixels = np.asarray(grid)
    h, w = shape[0] * TILE_SCALE, shape[1] * TILE_SCALE
    assert len(boxes) == n and len({left for left, _ in boxes}) == min(n, ncols)
    for (left, top), image in zip(boxes, images):
        tile = pixels[top:top + h, left:left + w]
        np.testing.assert_array_equal(tile, np.kron(image, np.ones((TILE_SCALE, TILE_SCALE), dtype=np.uint8)))
    left, top = boxes[0]
    assert (pixels[top:top + h, :left] == 255).all()         # white beside the tiles


def test_tiles_clip_values_outside_0_255():
    grid, boxes = render_image_grid(np.array([[[-5.0, 300.0], [128.4, 7.0]]]), ["x"])
    left, top = boxes[0]
    corners = np.asarray(grid)[top:top + 2 * TILE_SCALE:TILE_SCALE, left:left + 2 * TILE_SCALE:TILE_SCALE]
    np.testing.assert_array_equal(corners, [[0, 255], [128, 7]])


def test_each_curve_is_drawn_where_its_values_go():
    """train loss falls, val acc rises, val loss stays flat: the slopes of their pixels show it."""
    image = render_curves(history(np.linspace(1.0, 0.5, 10), [0.7] * 10, np.linspace(0.6, 0.8, 10)))
    falling, flat, rising = (pixels_of(image, c) for c in COLORS)
    slope = lambda rows, cols: np.polyfit(cols, rows, 1)[0]      # image rows grow downwards
    assert slope(*falling) > 0.2 and slope(*rising) < -0.05
    assert np.subtract(*np.percentile(flat[0], [75, 25])) <= 3
    assert falling[0].max() > flat[0].max() > rising[0].min()    # the loss ends lowest, the accuracy highest


def test_non_finite_values_are_left_out():
    image = render_curves(history([1.0, 0.8, 0.6], [math.nan] * 3, [0.5, 0.6, math.inf]))
    legend_only, line = len(pixels_of(image, COLORS[1])[0]), len(pixels_of(image, COLORS[0])[0])
    assert 0 < legend_only and line > 4 * legend_only                # val loss: only the legend's swatch


def test_files_are_png_and_drawing_them_never_imports_matplotlib(tmp_path):
    code = ("import sys, numpy as np; from softmaxreg.runplots import plot_curves, plot_image_grid; "
            "from softmaxreg.train import History, EpochRecord; "
            f"plot_curves(History([EpochRecord(1, 1.0, 0.5, 1.1, 0.4, 0.1)]), r'{tmp_path / 'c.png'}'); "
            f"plot_image_grid(np.zeros((2, 28, 28)), ['a', 'b'], r'{tmp_path / 'g.png'}'); "
            "assert 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    for name in ("c.png", "g.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"
    plot_curves(history([1.0], [1.0], [0.5]), tmp_path / "one.png")    # a single epoch draws too
    plot_image_grid(np.zeros((0, 28, 28)), [], tmp_path / "none.png")   # and an empty gallery
