"""The matplotlib figures (experiments, evaluation): each checked for what it draws, on the Figure."""

import math

import numpy as np
import pytest

from softmaxreg import experiments as ex
from softmaxreg.metrics import calibration_bins
from softmaxreg.plots import (draw_batch_sweep, draw_lr_sweep, draw_stability, experiment_figure, plot_experiment,
                              reliability_figure)


def rendered(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()            # lays out the figure, so extents are final
    return fig


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_stability_legend_is_off_the_data():
    fig = rendered(experiment_figure(draw_stability, ex.stability()))
    (ax,) = fig.axes
    (legend,) = fig.legends
    assert not overlaps(legend.get_window_extent(), ax.get_window_extent())
    assert [t.get_text() for t in legend.get_texts()] == ["naive exp(z)/sum exp(z)", "ours (max subtracted)",
                                                          "naive gives NaN/inf"]


def sweep(rows):
    columns = ["lr", "seed", "diverged", "epochs_done", "val_loss", "val_acc", "seconds"]
    return ex.ExperimentResult("lr-sweep", columns, [dict(zip(columns, r)) for r in rows], [], {"epochs": 2})


def test_lr_sweep_counts_every_seed_and_shows_the_diverged():
    nan = math.nan
    result = sweep([(0.1, 0, False, 2, 0.5, 0.80, 1), (0.1, 1, False, 2, 0.7, 0.78, 1),
                    (100.0, 0, False, 2, 9.0, 0.70, 1), (100.0, 1, True, 0, nan, nan, 1),
                    (1e7, 0, True, 0, nan, nan, 1), (1e7, 1, True, 0, nan, nan, 1)])
    fig = rendered(experiment_figure(draw_lr_sweep, result))
    ax_loss, ax_acc, ax_bad = fig.axes
    for ax, values in ((ax_loss, [0.5, 0.7, 9.0]), (ax_acc, [0.80, 0.78, 0.70])):
        dots, mean = ax.get_lines()
        assert list(dots.get_ydata()) == values                      # every finished run is a dot
        assert list(mean.get_xdata()) == [0.1]                       # the mean only where no seed diverged
        assert mean.get_ydata()[0] == pytest.approx(np.mean(values[:2]))
    assert [bar.get_height() for bar in ax_bad.patches] == [0, 1, 2]
    assert [t.get_text() for t in ax_bad.texts] == ["1/2", "2/2"]
    assert ax_loss.get_yscale() == "log" and ax_bad.get_xscale() == "log"
    assert not any(overlaps(fig.legends[0].get_window_extent(), ax.get_window_extent()) for ax in fig.axes)
    assert "2 seeds each" in ax_loss.get_title()


def test_batch_sweep_has_log_loss_panels_and_an_accuracy_panel(tmp_path):
    rows = [{"batch_size": b, "epoch": e, "train_loss": tl * e ** -0.1, "train_acc": 0.5, "val_loss": tl, "val_acc": acc,
             "run_seconds": 1.0} for b, tl, acc in ((1, 5.0, 0.7), (256, 0.5, 0.82)) for e in (1, 2, 3)]
    result = ex.ExperimentResult("batch-sweep", list(rows[0]), rows, [], {"lr": 0.1})
    fig = rendered(experiment_figure(draw_batch_sweep, result))
    ax_train, ax_val, ax_acc = fig.axes
    assert ax_train.get_yscale() == ax_val.get_yscale() == "log"       # batch 1's loss does not flatten the rest
    lo, hi = ax_val.get_ylim()
    assert math.log(0.5 / lo) / math.log(hi / lo) > 0.02                # batch 256 sits off the bottom edge
    assert [list(line.get_ydata()) for line in ax_acc.get_lines()] == [[0.7] * 3, [0.82] * 3]
    assert ax_acc.get_title() == "validation accuracy"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["batch 1 (1.0 s)", "batch 256 (1.0 s)"]
    plot_experiment(draw_batch_sweep, result, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes().startswith(b"\x89PNG")


def test_reliability_diagram_shows_each_bins_count():
    rng = np.random.default_rng(0)
    confidence = np.r_[rng.uniform(0.5, 1.0, 500), [0.15, 0.16]]       # a bin of 2 examples
    bins = calibration_bins(confidence, rng.random(502) < confidence, 10)
    fig = rendered(reliability_figure(bins, 0.05))
    ax, ax_count = fig.axes
    used = bins["count"] > 0
    assert [bar.get_height() for bar in ax_count.patches] == list(bins["count"][used])
    assert [t.get_text() for t in ax_count.texts] == [str(n) for n in bins["count"][used]]
    assert "2" in [t.get_text() for t in ax_count.texts]
    assert [bar.get_height() for bar in ax.patches] == pytest.approx(list(bins["accuracy"][used]))
