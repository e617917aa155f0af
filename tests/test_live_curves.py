"""The notebook's live curves and the console log, as `fit(plot=True)` and `fit(verbose=True)` add them."""

import re
import subprocess
import sys
import types

from PIL import Image

import softmaxreg as sr
from softmaxreg.callbacks import LiveCurves, format_record
from softmaxreg.cli import main
from softmaxreg.runplots import CURVES_SIZE


def small_run(data, **kwargs):
    model = sr.SoftmaxRegression(64, 10, input_scale=1 / 255, seed=2)
    return sr.fit(model, data.train_images, data.train_labels, epochs=3, batch_size=64, lr=0.5, seed=2,
                  validation_data=(data.test_images, data.test_labels), **kwargs)


def test_live_curves_display_once_per_epoch_and_clear_in_between(digits_dir):
    events = []
    live = LiveCurves(display=lambda figure: events.append(("display", figure)),
                      clear_output=lambda wait=False: events.append(("clear", wait)))
    history = small_run(sr.load_fashion_mnist(digits_dir), callbacks=[live])
    assert [kind for kind, _ in events] == ["clear", "display"] * 3
    assert all(wait is True for kind, wait in events if kind == "clear")    # no flicker: cleared on arrival
    figures = [figure for kind, figure in events if kind == "display"]
    assert all(isinstance(f, Image.Image) and f.size == CURVES_SIZE for f in figures)
    assert len({f.tobytes() for f in figures}) == 3                       # each redraw shows the new epoch
    assert len(history) == 3


def test_in_a_jupyter_kernel_it_uses_ipythons_display(digits_dir, monkeypatch):
    """A stand-in IPython whose shell has a kernel, as in Jupyter; without the kernel, nothing is shown."""
    events = []
    display_module = types.ModuleType("IPython.display")
    display_module.display = lambda figure: events.append("display")
    display_module.clear_output = lambda wait=False: events.append("clear")
    shell = types.SimpleNamespace(kernel=object())
    ipython = types.ModuleType("IPython")
    ipython.get_ipython, ipython.display = (lambda: shell), display_module
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)
    data = sr.load_fashion_mnist(digits_dir)
    small_run(data, plot=True)
    assert events == ["clear", "display"] * 3
    shell.kernel = None                                                  # terminal IPython: no figures
    small_run(data, plot=True)
    assert len(events) == 6


def test_outside_ipython_plot_does_nothing_and_imports_nothing(digits_dir):
    code = (f"import sys, softmaxreg as sr; d = sr.load_fashion_mnist(r'{digits_dir}'); "
            "m = sr.SoftmaxRegression(64, 10, input_scale=1 / 255); "
            "h = sr.fit(m, d.train_images, d.train_labels, epochs=2, plot=True); "
            "assert len(h) == 2; assert not {'IPython', 'matplotlib', 'PIL'} & set(sys.modules), sorted(sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_verbose_prints_the_command_lines_epoch_log(digits_dir, tmp_path, capsys):
    history = small_run(sr.load_fashion_mnist(digits_dir), verbose=True)
    api_lines = capsys.readouterr().out.splitlines()
    assert api_lines == [format_record(r, 3) for r in history]
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "r"), "--epochs", "3",
                 "--batch-size", "64", "--lr", "0.5", "--seed", "2", "--no-plots"]) == 0
    cli_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    untimed = lambda lines: [re.sub(r"\(\d+\.\d+ s\)$", "", line) for line in lines]     # noqa: E731
    assert untimed(api_lines) == untimed(cli_lines) and len(cli_lines) == 3


def test_by_default_fit_prints_nothing(digits_dir, capsys):
    small_run(sr.load_fashion_mnist(digits_dir))
    assert capsys.readouterr() == ("", "")
