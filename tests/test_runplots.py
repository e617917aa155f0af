"""The run folder's figures, drawn with Pillow: checked pixel by pixel against what was plotted."""

import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from softmaxreg.runplots import (COLORS, MAX_MARKERS, TILE_SCALE, curve_panels, plot_curves, plot_image_grid,
                                 render_curves, render_image_grid)
from softmaxreg.train import EpochRecord, History


def history(train_loss, val_loss, val_acc, train_acc=None):
    train_acc = [0.5] * len(train_loss) if train_acc is None else train_acc
    return History([EpochRecord(e, tl, ta, vl, va, 0.1)
                    for e, (tl, ta, vl, va) in enumerate(zip(train_loss, train_acc, val_loss, val_acc), 1)])


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


def in_panel(image, color, panel):
    """(rows, cols) of `color`'s pixels inside the named panel of a curves image."""
    left, top, right, bottom = curve_panels(image.size)[panel]
    rows, cols = pixels_of(image, color)
    keep = (rows > top) & (rows < bottom) & (cols > left) & (cols < right)
    return rows[keep], cols[keep]


def test_each_curve_is_drawn_where_its_values_go():
    """Loss panel: train loss falls, val loss stays flat. Accuracy panel, on its own axis: train
    accuracy rises across most of its height, val accuracy stays flat."""
    image = render_curves(history(np.linspace(1.0, 0.5, 10), [0.7] * 10, [0.7] * 10, np.linspace(0.6, 0.8, 10)))
    slope = lambda rows, cols: np.polyfit(cols, rows, 1)[0]      # image rows grow downwards
    falling, flat_loss = (in_panel(image, c, "loss") for c in COLORS)
    rising, flat_acc = (in_panel(image, c, "accuracy") for c in COLORS)
    assert slope(*falling) > 0.2 and slope(*rising) < -0.1
    for rows, _ in (flat_loss, flat_acc):
        assert np.subtract(*np.percentile(rows, [75, 25])) <= 3
    _, top, _, bottom = curve_panels(image.size)["accuracy"]
    assert np.ptp(rising[0]) > 0.7 * (bottom - top)             # not flattened by the loss's range
    legend_rows = pixels_of(image, COLORS[1])[0]
    assert (legend_rows < top).any()                              # the legend sits above the panels


def test_many_epochs_get_thinned_markers():
    image = render_curves(history([0.5] * 1000, [0.6] * 1000, [0.8] * 1000, [0.7] * 1000))
    rows, cols = in_panel(image, COLORS[0], "loss")
    thick = np.unique(cols[np.isin(cols, [c for c in np.unique(cols) if np.ptp(rows[cols == c]) > 3])])
    blobs = 1 + np.count_nonzero(np.diff(thick) > 1)               # runs of columns thicker than the line
    assert MAX_MARKERS - 2 <= blobs <= MAX_MARKERS + 1
    few = render_curves(history([0.5] * 5, [0.6] * 5, [0.8] * 5))
    rows, cols = in_panel(few, COLORS[0], "loss")
    thick = [c for c in np.unique(cols) if np.ptp(rows[cols == c]) > 3]
    assert 1 + np.count_nonzero(np.diff(thick) > 1) == 5            # a short run: every epoch marked


def test_non_finite_values_are_left_out():
    image = render_curves(history([1.0, 0.8, 0.6], [math.nan] * 3, [0.5, 0.6, math.inf]))
    assert len(in_panel(image, COLORS[1], "loss")[0]) == 0          # val loss: nothing drawn
    assert len(in_panel(image, COLORS[0], "loss")[0]) > 100
    assert len(pixels_of(image, COLORS[1])[0]) > 0                  # but its legend entry is there


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


def test_a_full_batch_history_is_drawn_against_iterations():
    """L-BFGS histories count iterations and their train figures are at each point, not epoch
    averages: the axis and the legend say so (the images differ only by those words)."""
    history = History([EpochRecord(e, 1 / e, 0.5 + e / 40, 1.2 / e, 0.5 + e / 50, 0.1) for e in range(1, 9)])
    epochs, iterations = render_curves(history), render_curves(history, unit="iteration")
    rows, cols = np.nonzero((np.asarray(epochs) != np.asarray(iterations)).any(axis=2))
    assert rows.size                                                    # the words changed ...
    for left, top, right, bottom in curve_panels(epochs.size).values():  # ... and nothing inside a panel
        assert not ((rows > top) & (rows < bottom) & (cols > left) & (cols < right)).any()
    below = rows > max(box[3] for box in curve_panels(epochs.size).values())
    assert below.any() and (~below).any()                               # the axis labels and the legend
