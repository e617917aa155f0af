"""The lesson's exercises: each experiment's figures checked against independent computations."""

import math
import subprocess
import sys

import numpy as np
import pytest

from softmaxreg import SoftmaxRegression, load_fashion_mnist, softmax
from softmaxreg import experiments as ex
from softmaxreg.cli import main


def test_stability_reproduces_the_naive_failure_and_ours_matches_float64():
    result = ex.stability()
    by_case = {r["case"]: r for r in result.rows}
    for case in ("contains 100", "contains 1000", "maximum below -100"):
        assert math.isinf(by_case[case]["naive_rel_error"])          # NaN or inf in the naive output
        assert "nan" in by_case[case]["naive"]
        assert by_case[case]["ours_rel_error"] < 1e-6
    assert by_case["ordinary logits"]["naive_rel_error"] < 1e-6
    # the sweep: naive fails exactly where float32 exp overflows (> 88.7) or every term underflows
    shifts, naive = result.data["shifts"], result.data["naive_err"]
    assert not np.isfinite(naive[shifts >= 89]).any() and np.isfinite(naive[(shifts > -80) & (shifts < 88)]).all()
    assert not np.isfinite(naive[shifts <= -110]).any()
    assert np.max(result.data["ours_err"]) < 1e-6


def test_naive_softmax_is_the_textbook_formula():
    z = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(ex.naive_softmax(z), np.exp(z) / np.exp(z).sum(), rtol=1e-15)
    assert np.isnan(ex.naive_softmax(np.array([[1000.0, 0.0]], dtype=np.float32))).any()


def test_cross_entropy_timing_agrees_in_value_and_measures_time():
    result = ex.cross_entropy_timing(classes=(10, 300), batch=64)
    for row in result.rows:
        assert row["max_abs_difference"] < 1e-5
        assert row["index_us"] > 0 and row["definition_us"] > 0
    assert any("nan" in line for line in result.summary)
    soft_line = result.summary[-1]
    ours, definition = (float(w) for w in soft_line.replace(",", "").split() if w[0].isdigit())
    assert ours == definition


def test_reject_curve_end_points(fashion):
    model = ex.train_reference(fashion, lr=0.1, batch_size=256, epochs=1, seed=0)[0]
    result = ex.reject(model, fashion.test_images, fashion.test_labels)
    plain = np.mean(model.predict(fashion.test_images) == fashion.test_labels)
    assert result.rows[-1] == {"threshold": 0.0, "coverage": 1.0, "accuracy": pytest.approx(plain)}
    t, c, a = result.data["found"]
    conf = model.predict_proba(fashion.test_images).max(axis=1)
    answered = conf >= t
    assert a >= 0.95 and c == pytest.approx(answered.mean())
    assert a == pytest.approx(np.mean(model.predict(fashion.test_images[answered]) == fashion.test_labels[answered]))


def test_class_scaling_reports_exact_memory_and_growing_time():
    result = ex.class_scaling(classes=(10, 100, 1000), num_inputs=50, batch=32, steps=3)
    for row in result.rows:
        assert row["model_bytes"] == 4 * (50 + 1) * row["classes"]
        assert row["step_ms"] > 0
    assert result.rows[-1]["step_ms"] > result.rows[0]["step_ms"]


def test_lr_sweep_marks_divergence_instead_of_crashing(digits_dir):
    data = load_fashion_mnist(digits_dir)
    result = ex.lr_sweep(data, lrs=(0.1, 1e7), seeds=2, epochs=2)
    assert len(result.rows) == 4
    good = [r for r in result.rows if r["lr"] == 0.1]
    bad = [r for r in result.rows if r["lr"] == 1e7]
    assert all(not r["diverged"] and r["val_acc"] > 0.7 for r in good)
    assert all(r["diverged"] and math.isnan(r["val_loss"]) for r in bad)
    assert good[0]["val_loss"] != good[1]["val_loss"]            # the seeds differ
    assert result.summary[-1] == "diverged at lr 1e+07 (2 of 2 seeds)"


def test_lr_sweep_counts_the_seeds_that_diverged_at_each_rate(digits_dir, monkeypatch):
    real = ex.train_reference

    def seed_1_diverges_at_lr_3(data, **run):               # one seed of a rate diverging, as lr 100 does on Fashion-MNIST
        if run["lr"] == 3.0 and run["seed"] == 1:
            return real(data, **{**run, "lr": 1e7})
        return real(data, **run)
    monkeypatch.setattr(ex, "train_reference", seed_1_diverges_at_lr_3)
    result = ex.lr_sweep(load_fashion_mnist(digits_dir), lrs=(0.1, 3.0), seeds=3, epochs=1)
    assert [r["diverged"] for r in result.rows] == [False, False, False, False, True, False]
    assert result.summary[-1] == "diverged at lr 3 (1 of 3 seeds)"


def test_batch_sweep_covers_every_size_and_epoch(digits_dir):
    data = load_fashion_mnist(digits_dir)
    result = ex.batch_sweep(data, batch_sizes=(1, 64, 5000), epochs=2)
    assert [(r["batch_size"], r["epoch"]) for r in result.rows] == [(1, 1), (1, 2), (64, 1), (64, 2), (1500, 1), (1500, 2)]
    full = [r for r in result.rows if r["batch_size"] == 1500]       # 5000 clipped to the 1500 examples: 1 step an epoch
    assert full[1]["train_loss"] < full[0]["train_loss"]
    assert all(r["run_seconds"] > 0 and 0 < r["train_acc"] <= 1 for r in result.rows)
    assert len(result.summary) == 3 and result.summary[0].startswith("batch      1:")


def test_sweeps_show_progress_over_all_their_steps(digits_dir, capsys):
    ex.batch_sweep(load_fashion_mnist(digits_dir), batch_sizes=(64, 500), epochs=2, progress=True)
    err = capsys.readouterr().err
    total = 2 * (24 + 3)                                              # epochs x steps of each run
    assert f"batch-sweep:   0%|          | 0/{total} " in err
    assert "lr 0.1 batch 64 seed 0" in err and "lr 0.1 batch 500 seed 0" in err      # which run is going
    ex.batch_sweep(load_fashion_mnist(digits_dir), batch_sizes=(64,), epochs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_ctrl_c_in_a_sweep_keeps_the_finished_runs(digits_dir, tmp_path, monkeypatch, capsys):
    real, calls = ex.train_reference, []

    def interrupted_at_the_third_run(data, **run):
        calls.append(run)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(data, **run)
    monkeypatch.setattr(ex, "train_reference", interrupted_at_the_third_run)
    with pytest.raises(ex.ExperimentInterrupted) as info:
        ex.lr_sweep(load_fashion_mnist(digits_dir), lrs=(0.1, 1.0), seeds=2, epochs=1)
    assert (info.value.done, info.value.total) == (2, 4) and len(info.value.result.rows) == 2
    assert isinstance(info.value, KeyboardInterrupt)                  # a script still stops
    calls.clear()
    assert main(["experiment", "lr-sweep", "--quick", "--epochs", "1", "--data-dir", str(digits_dir),
                 "--out", str(tmp_path)]) == 130
    out, err = capsys.readouterr()
    assert err == (f"softmaxreg: interrupted after 2 of 4 runs; kept them in {tmp_path / 'lr-sweep.csv'}, "
                   f"{tmp_path / 'lr-sweep.png'}\n")
    assert len((tmp_path / "lr-sweep.csv").read_text().splitlines()) == 3
    assert (tmp_path / "lr-sweep.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr-sweep.csv", "lr-sweep.png"]   # nothing half-written
    calls.clear()
    monkeypatch.setattr(ex, "train_reference", lambda data, **run: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["experiment", "batch-sweep", "--quick", "--data-dir", str(digits_dir), "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "softmaxreg: interrupted after 0 of 3 runs; nothing written\n"


def test_a_sweeps_table_keeps_every_row(digits_dir, tmp_path, capsys):
    assert main(["experiment", "lr-sweep", "--epochs", "1", "--seeds", "2", "--data-dir", str(digits_dir),
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.split() and line.split()[0].replace(".", "").isdigit()]
    assert len(table) == 26 and "rows shown" not in out                  # 13 rates x 2 seeds
    best = out.split("lowest final validation loss ")[1].split()[0]
    assert any(best in line for line in table)                          # the row the summary cites is there


def test_csv_has_the_columns_and_one_line_per_row():
    result = ex.stability()
    lines = result.to_csv().splitlines()
    assert lines[0] == ",".join(result.columns) and len(lines) == len(result.rows) + 1
    assert softmax(np.zeros((1, 2))).sum() == 1


def test_an_experiment_added_to_the_registry_is_a_cli_command(monkeypatch, tmp_path, capsys):
    result = ex.ExperimentResult("toy", ["a"], [{"a": 1}, {"a": 2}], ["a toy summary"])

    def draw(fig, result):
        fig.add_subplot().plot([r["a"] for r in result.rows])
    toy = ex.Experiment("toy", "a toy experiment", lambda args: result, draw)
    with_toy = {**ex.registry(), "toy": toy}
    monkeypatch.setattr(ex, "registry", lambda: with_toy)
    assert main(["experiment", "--help"]) == 0
    assert "toy: a toy experiment" in " ".join(capsys.readouterr().out.split())
    assert main(["experiment", "toy", "--out", str(tmp_path)]) == 0
    assert "a toy summary" in capsys.readouterr().out
    assert (tmp_path / "toy.csv").read_text() == "a\n1\n2\n"
    assert (tmp_path / "toy.png").read_bytes().startswith(b"\x89PNG")


def test_importing_the_package_loads_no_plotting_or_notebook_code():
    subprocess.run([sys.executable, "-c", "import sys, softmaxreg; assert not {'matplotlib', 'softmaxreg.plots', "
                    "'IPython', 'PIL'} & set(sys.modules), sorted(sys.modules)"], check=True)


def test_evaluating_large_data_shows_progress_once_it_takes_time(capsys, monkeypatch):
    import tqdm.std
    now = [0.0]                                                          # tqdm's clock, ours to move
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])
    model = SoftmaxRegression(4, 3, sigma=1.0, seed=0)
    X = np.random.default_rng(0).normal(size=(50, 4))
    np.testing.assert_array_equal(np.concatenate(list(ex.logit_blocks(model, X, rows=16, progress=True))),
                                  model.logits(X))
    assert capsys.readouterr().err == ""                                 # quick: no bar at all
    logits = model.logits

    def slow_logits(X):
        now[0] += 0.2                                                    # each block takes 0.2 s
        return logits(X)
    monkeypatch.setattr(model, "logits", slow_logits)
    list(ex.logit_blocks(model, X, rows=10, progress=True))
    err = capsys.readouterr().err
    assert "evaluating:" in err and "/50 " in err
