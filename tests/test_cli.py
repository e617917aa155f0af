"""`softmaxreg train` end to end on the real bundled data, and its handling of bad input."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from softmaxreg import FASHION_MNIST_CLASSES, load_model, read_idx
from softmaxreg.cli import CHECKPOINT, RUN_FILES, main

from .conftest import run_cli, figures


def test_reference_run_reaches_the_lessons_accuracy_and_writes_the_run_folder(reference_runs, fashion):
    root, (result, _) = reference_runs
    assert result.returncode == 0, result.stderr
    folder = root / "a"
    assert sorted(p.name for p in folder.iterdir()) == sorted((*RUN_FILES, CHECKPOINT))

    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds"]
    assert all(0 < float(r["epoch_seconds"]) < 60 for r in rows)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))
    last = {k: float(v) for k, v in rows[-1].items()}
    assert last["val_acc"] >= 0.82 and last["train_loss"] < 0.5
    assert last["train_acc"] > 0.7 and float(rows[0]["val_acc"]) > 0.7

    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch")]
    assert len(lines) == 10 and f"val_acc {last['val_acc']:.4f}" in lines[-1]
    assert result.stderr == ""                         # no progress bar when stderr is not a terminal

    model = load_model(folder / "model.safetensors")
    assert model.W.shape == (784, 10) and model.class_names == list(FASHION_MNIST_CLASSES)
    assert model.evaluate(fashion.test_images, fashion.test_labels) == (last["val_loss"], last["val_acc"])

    config = json.loads((folder / "config.json").read_text())
    defaults = {"epochs": 10, "batch_size": 256, "lr": 0.1, "sigma": 0.01, "seed": 0}
    assert {k: config["settings"][k] for k in defaults} == defaults
    assert model.mean is None and config["settings"]["standardize"] is False      # images: never by default
    assert config["softmaxreg_version"] and len(config["dataset"]["sha256"]) == 64
    assert config["dataset"]["files"]["train-images-idx3-ubyte.gz"].startswith("b0564c3e")

    for name in ("curves.png", "misclassified.png"):
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
            assert np.asarray(image.convert("L")).std() > 10      # not a blank canvas


def test_same_seed_gives_the_same_metrics_and_bit_identical_weights(reference_runs):
    root, results = reference_runs
    assert all(r.returncode == 0 for r in results)
    assert figures((root / "a" / "metrics.csv").read_text()) == figures((root / "b" / "metrics.csv").read_text())
    a, b = (load_model(root / name / "model.safetensors") for name in ("a", "b"))
    assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()


def test_train_on_another_mnist_format_folder(digits_dir, tmp_path, capsys):
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "run"), "--epochs", "5",
                 "--batch-size", "64", "--lr", "0.5", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "1500 train / 297 validation images 8x8, 10 classes" in out
    model = load_model(tmp_path / "run" / "model.safetensors")
    assert model.input_shape == (8, 8) and model.W.shape == (64, 10)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(["config.json", "metrics.csv", CHECKPOINT,
                                                                          "model.safetensors"])


def test_quiet_prints_nothing(digits_dir, tmp_path, capsys):
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "q"), "--epochs", "1",
                 "--no-plots", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("args, culprit", [
    (["--epochs", "0"], "--epochs"), (["--epochs", "ten"], "--epochs"), (["--batch-size", "-3"], "--batch-size"),
    (["--lr", "0"], "--lr"), (["--lr", "nan"], "--lr"), (["--lr", "abc"], "--lr"), (["--sigma", "-1"], "--sigma"),
    (["--seed", "1.5"], "--seed"), (["--dtype", "int8"], "--dtype"), (["--bogus"], "--bogus"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, culprit, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and culprit in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_bad_data_dir_and_out_are_reported_by_name(tmp_path, digits_dir, capsys):
    assert main(["train", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "nowhere: data folder does not exist" in capsys.readouterr().err
    (tmp_path / "file").write_text("keep me")
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "file")]) == 2
    assert "--out" in capsys.readouterr().err and (tmp_path / "file").read_text() == "keep me"


def test_an_existing_run_is_not_overwritten_without_permission(digits_dir, tmp_path, capsys):
    args = ["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "r"), "--epochs", "1", "--no-plots"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    capsys.readouterr()
    assert main(args + ["--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before
    assert main(args + ["--seed", "3", "--overwrite"]) == 0
    assert (tmp_path / "r" / "model.safetensors").read_bytes() != before["model.safetensors"]


def test_the_console_script_reports_errors_without_a_traceback(tmp_path):
    result = run_cli("train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"softmaxreg: error: {tmp_path}: missing train-images-idx3-ubyte.gz (or train-images-idx3-ubyte)"]


def test_help_and_version():
    result = run_cli("--help")
    assert result.returncode == 0 and "train" in result.stdout
    result = run_cli("train", "--help")
    assert result.returncode == 0 and "--batch-size" in result.stdout and "--data-dir" in result.stdout
    assert run_cli("--version").stdout.startswith("softmaxreg ")


def test_evaluate_reports_figures_that_match_the_model(reference_model, fashion, tmp_path, capsys):
    assert main(["evaluate", str(reference_model), "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    model = load_model(reference_model)
    pred = model.predict(fashion.test_images)
    assert report["accuracy"] == np.mean(pred == fashion.test_labels)
    assert report["cross_entropy"] == pytest.approx(model.evaluate(fashion.test_images, fashion.test_labels)[0],
                                                    rel=1e-5)
    assert report["top2_accuracy"] > report["accuracy"]
    assert np.array(report["confusion_matrix"]).trace() == np.sum(pred == fashion.test_labels)
    for name in ("confusion.png", "calibration.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 10
    assert main(["evaluate", str(reference_model), "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"accuracy {report['accuracy']:.4f}" in text and "ankle boot" in text and "precision" in text


def test_predict_on_images_arrays_and_idx(reference_model, fashion, tmp_path, capsys):
    np.save(tmp_path / "two.npy", fashion.test_images[:2])
    Image.fromarray(255 - fashion.test_images[0]).resize((100, 100)).save(tmp_path / "boot.png")
    assert main(["predict", str(reference_model), str(tmp_path / "two.npy"), str(tmp_path / "boot.png"),
                 "--json", "--top-k", "2"]) == 0
    results = json.loads(capsys.readouterr().out)
    model = load_model(reference_model)
    proba = model.predict_proba(fashion.test_images[:2])
    assert [r["index"] for r in results] == [0, 1, None]
    for r, p in zip(results, proba):
        assert r["prediction"] == model.class_names[p.argmax()]
        assert r["top_k"][0]["probability"] == pytest.approx(p.max()) and len(r["top_k"]) == 2
    assert results[2]["prediction"] == "ankle boot"
    # abstaining: a threshold above every top probability makes every answer "uncertain"
    assert main(["predict", str(reference_model), str(tmp_path / "two.npy"), "--reject-below", "1.0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("uncertain" in line for line in lines)


@pytest.mark.parametrize("args, culprit", [
    (["predict", "MISSING", "INPUT"], "cannot read model"),
    (["predict", "MODEL", "GARBAGE"], "cannot decode as an image"),
    (["predict", "MODEL", "WRONG"], "does not fit the model"),
    (["predict", "MODEL", "INPUT", "--reject-below", "1.5"], "--reject-below"),
    (["predict", "MODEL", "INPUT", "--top-k", "11"], "--top-k 11"),
    (["evaluate", "MISSING"], "cannot read model"),
    (["evaluate", "MODEL", "--data-dir", "DIGITS"], "inputs of shape (28, 28)"),
    (["evaluate", "GARBAGE"], "not a safetensors model file"),
    (["experiment", "nonsense"], "invalid choice"),
])
def test_bad_input_to_evaluate_and_predict(args, culprit, reference_model, digits_dir, fashion, tmp_path, capsys):
    (tmp_path / "garbage.png").write_bytes(b"\x00garbage")
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3)))
    np.save(tmp_path / "input.npy", fashion.test_images[0])
    names = {"MISSING": str(tmp_path / "missing"), "MODEL": str(reference_model), "INPUT": str(tmp_path / "input.npy"),
             "GARBAGE": str(tmp_path / "garbage.png"), "WRONG": str(tmp_path / "wrong.npy"), "DIGITS": str(digits_dir)}
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main([names.get(a, a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and culprit in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("name", ["stability", "cross-entropy", "classes", "reject", "lr-sweep", "batch-sweep"])
def test_every_experiment_runs_from_the_cli(name, digits_dir, tmp_path, capsys):
    assert main(["experiment", name, "--quick", "--epochs", "2", "--data-dir", str(digits_dir),
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / (name + '.csv')}" in out
    csv_lines = (tmp_path / f"{name}.csv").read_text().splitlines()
    assert len(csv_lines) >= 3
    with Image.open(tmp_path / f"{name}.png") as image:
        assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 10


def test_recipe_best_beats_the_lesson_and_the_papers_logistic_regression(tmp_path, fashion):
    assert main(["train", "--recipe", "best", "--out", str(tmp_path / "best"), "--quiet", "--no-plots"]) == 0
    config = json.loads((tmp_path / "best" / "config.json").read_text())["settings"]
    assert config["recipe"] == "best" and config["standardize"] and config["schedule"] == "cosine"
    model = load_model(tmp_path / "best" / "model.safetensors")
    assert model.mean is not None                           # standardization travels with the model
    loss, acc = model.evaluate(fashion.test_images, fashion.test_labels)
    assert acc >= 0.842        # the Fashion-MNIST paper's logistic regression; measured here: 0.8449


def test_explicit_options_override_the_recipe_and_reach_config_json(digits_dir, tmp_path):
    args = ["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "r"), "--quiet", "--no-plots",
            "--recipe", "best", "--epochs", "3", "--momentum", "0.5", "--weight-decay", "0.01",
            "--label-smoothing", "0.1", "--class-weight", "balanced", "--schedule", "step", "--step-epochs", "1",
            "--gamma", "0.5"]
    assert main(args) == 0
    settings = json.loads((tmp_path / "r" / "config.json").read_text())["settings"]
    assert {k: settings[k] for k in ("epochs", "momentum", "weight_decay", "label_smoothing",
                                                       "class_weight", "schedule", "standardize", "nesterov")} == {
        "epochs": 3, "momentum": 0.5, "weight_decay": 0.01, "label_smoothing": 0.1, "class_weight": "balanced",
        "schedule": "step", "standardize": True, "nesterov": True}
    rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4


def test_early_stopping_from_the_cli(digits_dir, tmp_path, capsys):
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "r"), "--no-plots", "--epochs", "200",
                 "--lr", "3", "--early-stopping", "--patience", "2", "--validation-fraction", "0.2"]) == 0
    rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert 3 <= len(rows) - 1 < 200


@pytest.fixture(scope="module")
def digits_model(digits_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("digits_model") / "run"
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(out), "--epochs", "5", "--lr", "0.5",
                 "--quiet", "--no-plots"]) == 0
    return out / "model.safetensors"


@pytest.mark.parametrize("command", [
    ["evaluate", "MODEL", "--data-dir", "DIGITS", "--out", "OUT"],
    ["predict", "MODEL", "INPUT"],
    ["experiment", "stability", "--out", "OUT"],
    ["train", "--data-dir", "DIGITS", "--out", "OUT", "--epochs", "3"],
], ids=lambda c: c[0])
def test_output_closed_early_is_dropped_quietly_and_the_command_finishes(command, digits_model, digits_dir, tmp_path):
    """`softmaxreg ... | head`: the reader has gone before the first line; no traceback, and the
    command still does its work (train finishes its run folder)."""
    np.save(tmp_path / "input.npy", np.arange(64) * 4)
    names = {"MODEL": str(digits_model), "DIGITS": str(digits_dir), "INPUT": str(tmp_path / "input.npy"),
             "OUT": str(tmp_path / "out")}
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if k != "SOFTMAXREG_DATA_DIR"}
    try:
        result = subprocess.run([sys.executable, "-m", "softmaxreg", *[names.get(a, a) for a in command]],
                                stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=300)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (0, "")
    if command[0] == "train":
        assert len((tmp_path / "out" / "metrics.csv").read_text().splitlines()) == 4
        assert (tmp_path / "out" / "misclassified.png").exists()
    elif command[0] != "predict":                   # the figures (and evaluate's evaluation.json)
        assert len(list((tmp_path / "out").iterdir())) == (3 if command[0] == "evaluate" else 2)


def test_log_every_prints_every_nth_epoch_and_the_last(digits_dir, tmp_path, capsys):
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "r"), "--epochs", "7",
                 "--log-every", "3", "--no-plots"]) == 0
    epochs = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert epochs == ["3/7", "6/7", "7/7"]


def test_predict_calls_inputs_without_signal_so_and_rescales_an_input_range(digits_model, digits_dir, tmp_path,
                                                                            capsys):
    rng = np.random.default_rng(0)
    digit = read_idx(digits_dir / "t10k-images-idx3-ubyte")[0].astype(np.float64)
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "black.png")
    Image.fromarray(np.full((30, 30), 255, np.uint8)).save(tmp_path / "white.png")
    np.save(tmp_path / "scaled.npy", digit / 255)                         # already scaled to 0..1
    np.save(tmp_path / "raw.npy", digit)
    np.save(tmp_path / "noise.npy", rng.uniform(0, 1, (3, 64)))
    assert main(["predict", str(digits_model), *(str(tmp_path / n) for n in ("black.png", "white.png", "scaled.npy",
                                                                             "raw.npy"))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1].strip().startswith("no signal") for line in lines] == [True, True, True, False]
    assert "model's input range 0..255" in lines[0] and "--input-range" in lines[2]
    assert main(["predict", str(digits_model), str(tmp_path / "raw.npy"), "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert main(["predict", str(digits_model), str(tmp_path / "scaled.npy"), "--json", "--input-range", "0", "1"]) == 0
    rescaled = json.loads(capsys.readouterr().out)
    assert rescaled == [{**raw[0], "input": str(tmp_path / "scaled.npy")}] and raw[0]["prediction"] is not None
    assert main(["predict", str(digits_model), str(tmp_path / "noise.npy"), "--json"]) == 0
    assert all(r["no_signal"] and r["prediction"] is None for r in json.loads(capsys.readouterr().out))


def test_evaluate_judges_a_model_of_other_classes_only_when_forced(digits_model, digits_dir, tmp_path, capsys):
    data = tmp_path / "named"
    shutil.copytree(digits_dir, data)
    (data / "class_names.txt").write_text("\n".join("abcdefghij") + "\n")
    args = ["evaluate", str(digits_model), "--data-dir", str(data), "--out", str(tmp_path / "out")]
    assert main(args) == 2 and "pass --force" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(args + ["--force"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["calibration.png", "confusion.png", "evaluation.json"]


def test_evaluate_replaces_another_evaluations_figures_only_with_overwrite(digits_model, digits_dir, tmp_path,
                                                                          capsys):
    args = ["evaluate", str(digits_model), "--data-dir", str(digits_dir), "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    ours = (tmp_path / "confusion.png").read_bytes()
    assert main(args) == 0                                                # the same figures again: fine
    assert main(args + ["--bins", "3"]) == 2                              # a different calibration.png
    assert "calibration.png: already exists with other contents" in capsys.readouterr().err
    assert (tmp_path / "confusion.png").read_bytes() == ours
    assert main(args + ["--bins", "3", "--overwrite"]) == 0


def test_settings_errors_and_unknown_options_name_the_flags(capsys):
    assert main(["train", "--warmup-epochs", "1", "--schedule", "cosine", "--lr", "1", "--gamma", "2",
                 "--schedule", "step"]) == 2
    assert "--gamma: expected" in capsys.readouterr().err
    assert main(["train", "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert err == ("softmaxreg train: error: unrecognized arguments: --no-plot; did you mean --no-plots? "
                   "(see softmaxreg train --help)\n")
    assert main(["evaluate", "m", "--bin", "3"]) == 2
    assert "did you mean --bins?" in capsys.readouterr().err


def test_lbfgs_converged_at_the_start_over_an_old_run_leaves_no_stale_checkpoint(digits_dir, tmp_path):
    run = tmp_path / "run"
    base = ["train", "--data-dir", str(digits_dir), "--out", str(run), "--quiet", "--no-plots"]
    assert main(base + ["--epochs", "1"]) == 0
    assert main(base + ["--solver", "lbfgs", "--tol", "1e9", "--overwrite"]) == 0      # no iteration needed
    assert not (run / "checkpoint.safetensors").exists()
    assert (run / "metrics.csv").read_text() == "epoch,train_loss,train_acc,val_loss,val_acc,epoch_seconds\n"
    assert json.loads((run / "config.json").read_text())["settings"]["solver"] == "lbfgs"
