"""Issue 23 part 3: text never becomes markup or code. Class names and file names reach matplotlib as
plain text (no math text), the terminal with control characters escaped, HTML escaped, CSV quoted."""

import csv
import io
import json

import numpy as np
import pytest

import softmaxreg as sr
from softmaxreg.cli import main
from softmaxreg.cli.table import format_table
from softmaxreg.experiments import ExperimentResult
from softmaxreg.text import printable

from .test_bad_inputs import snapshot

MATH, UNDERSCORE, ESCAPE = "$\\frac{1}{2}$", "a_b", "\x1b[31mred"


def test_printable_escapes_control_and_reordering_characters_only():
    assert printable("plain $x^2$ a_b é 日本") == "plain $x^2$ a_b é 日本"
    for raw, shown in [("\x1b[31m", "\\x1b[31m"), ("a\nb", "a\\nb"), ("a\rb", "a\\rb"), ("\u202eevil", "\\u202eevil"),
                       ("\x9b31m", "\\x9b31m"), ("tab\t", "tab\\t")]:
        assert printable(raw) == shown
        assert all(c.isprintable() for c in printable(raw))


def _drawn_figures(monkeypatch):
    pytest.importorskip("matplotlib", reason="plots need matplotlib")
    from softmaxreg import plots

    figures, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (figures.append(fig), save(fig, path)))
    return figures


def test_confusion_plot_draws_class_names_as_plain_text(tmp_path, monkeypatch):
    from matplotlib.text import Text

    from softmaxreg.plots import plot_confusion

    figures = _drawn_figures(monkeypatch)
    plot_confusion(np.eye(3, dtype=int), [MATH, UNDERSCORE, ESCAPE], tmp_path / "c.png", title=f"of {MATH}")
    ax = figures[0].axes[0]
    labels = [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.title]
    assert [t.get_text() for t in labels] == [MATH, UNDERSCORE, "\\x1b[31mred"] * 2 + [f"of {MATH}"]
    for t in labels:
        assert not t.get_parse_math() and not t.get_usetex()
        assert t._preprocess_math(t.get_text()) == (t.get_text(), False)      # what the renderer draws: the text
    assert Text(text=MATH)._preprocess_math(MATH)[1] is True                  # a default Text would parse it


def _named_npz(path, names):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.arange(60) % len(names)
    np.savez(path, X_train=X, y_train=y, X_test=X[:30], y_test=y[:30], class_names=np.array(names))


def test_evaluate_draws_and_prints_math_like_class_names_as_they_are(tmp_path, monkeypatch, capsys):
    names = [MATH, UNDERSCORE, "x^2"]
    _named_npz(tmp_path / "d.npz", names)
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--epochs", "1", "--no-plots", "--quiet",
                 "--out", str(tmp_path / "run")]) == 0
    figures = _drawn_figures(monkeypatch)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run" / "model.safetensors"), "--data", str(tmp_path / "d.npz")]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in names)
    ticks = figures[0].axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks] == names and not any(t.get_parse_math() for t in ticks)
    assert main(["report", str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<td>$\\frac{1}{2}$</td>" in page


def test_class_names_with_escape_sequences_print_escaped():
    table = format_table(["class", "f1"], [{"class": ESCAPE, "f1": 0.5}, {"class": "a\nb", "f1": 1.0}])
    assert "\x1b" not in table and "\\x1b[31mred" in table and "a\\nb" in table
    assert len(table.splitlines()) == 3
    table = format_table([ESCAPE, "x"], [{ESCAPE: 1, "x": 2}])
    assert "\x1b" not in table and table.splitlines()[0].split() == ["\\x1b[31mred", "x"]


def test_predict_prints_class_names_and_file_names_escaped(tmp_path, capsys):
    # a model file refuses control characters in class names (model_file), not the characters that
    # reorder or hide text: those are escaped when printed, as a file name's escape sequences are
    model = sr.SoftmaxRegression(3, 2, seed=0, class_names=["a\u202eb", "c\u200b"])
    sr.save_model(model, tmp_path / "m.safetensors")
    inputs = tmp_path / "in\x1b]0;title\x07.npy"
    np.save(inputs, np.ones((1, 3)))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.safetensors"), str(inputs)]) == 0
    out = capsys.readouterr().out
    assert not {"\x1b", "\x07", "\u202e", "\u200b"} & set(out)
    shown = {0: "a\\u202eb", 1: "c\\u200b"}[int(model.predict(np.ones((1, 3)))[0])]
    assert "in\\x1b]0;title\\x07.npy" in out and shown in out


def test_an_error_naming_a_file_with_control_characters_is_one_escaped_line(tmp_path, capsys):
    bad = tmp_path / "x\x1b[2J\nrm -rf.csv"
    bad.write_text("a,label\n1,0\nnot a number,1\n")
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["train", "--data", str(bad), "--label-column", "label", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "Traceback" not in err
    assert "x\\x1b[2J\\nrm -rf.csv, line 3" in err
    assert snapshot(tmp_path) == before


def test_experiment_csv_quotes_text_cells():
    result = ExperimentResult("t", ["name", "value"], [{"name": 'a, "b"\nc', "value": 0.25}, {"name": "d", "value": 1}])
    text = result.to_csv()
    assert list(csv.reader(io.StringIO(text))) == [["name", "value"], ['a, "b"\nc', "0.25"], ["d", "1"]]
    plain = ExperimentResult("t", ["k", "ms"], [{"k": 10, "ms": 0.5}]).to_csv()
    assert plain == "k,ms\n10,0.5\n"                              # numbers as before, unquoted


def test_report_escapes_html_in_class_names(tmp_path):
    from softmaxreg.report import render_report

    names = ["<script>alert(1)</script>", "a&b"]
    (tmp_path / "config.json").write_text(json.dumps({"settings": {}, "dataset": {"class_names": names}}))
    (tmp_path / "metrics.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc\n")
    page = render_report(tmp_path)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a&amp;b" in page
