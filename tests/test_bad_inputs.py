"""The bad-input matrix: every command against every kind of bad input must end with exit 2
(3 for divergence), one line on stderr naming the culprit, no traceback, and no file or folder
touched, created or removed. The same table is in the README."""

import contextlib
import gzip
import io
import os
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from softmaxreg import SoftmaxRegression, save_model
from softmaxreg.cli import main
from softmaxreg.fileio import claim_folder

from .conftest import run_cli


def idx_bytes(array):
    a = np.asarray(array)
    return struct.pack(f">HBB{a.ndim}I", 0, 0x08, a.ndim, *a.shape) + a.astype(np.uint8).tobytes()


def data_dir_with(root, digits_dir, name, content: bytes):
    """A copy of the digits folder where `name` has the given raw bytes."""
    folder = root / "data"
    shutil.copytree(digits_dir, folder)
    for suffix in ("", ".gz"):
        (folder / (name + suffix)).unlink(missing_ok=True)
    (folder / name).write_bytes(content)
    return folder


def bad_data(name, content):
    return lambda root, digits: ["--data-dir", str(data_dir_with(root, digits, name, content))]


IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TRAIN = ["train", "--epochs", "1", "--no-plots", "--quiet"]
LBFGS = ["train", "--solver", "lbfgs", "--no-plots", "--quiet"]

# (id, command before the file arguments, a function making the file arguments, exit code, culprit in stderr)
MATRIX = [
    ("train: data folder missing", TRAIN, lambda r, d: ["--data-dir", str(r / "nowhere")], 2, "nowhere: data folder"),
    ("train: data file missing", TRAIN, lambda r, d: ["--data-dir", str(r)], 2, "missing train-images"),
    ("train: empty IDX file", TRAIN, bad_data(IMAGES, b""), 2, "too short"),
    ("train: wrong IDX magic", TRAIN, bad_data(IMAGES, b"\x00\x01\x08\x03" + bytes(12)), 2, "magic number"),
    ("train: truncated payload", TRAIN, bad_data(IMAGES, idx_bytes(np.zeros((1500, 8, 8)))[:-10]), 2, "truncated"),
    ("train: header count beyond the file", TRAIN,
     bad_data(IMAGES, struct.pack(">HBB3I", 0, 8, 3, 10**9, 8, 8) + bytes(64)), 2, "truncated"),
    ("train: corrupt gzip", TRAIN, bad_data(IMAGES + ".gz", gzip.compress(idx_bytes(np.zeros((1500, 8, 8))))[:-30]),
     2, "gzip"),
    ("train: images and labels differ in count", TRAIN, bad_data(LABELS, idx_bytes(np.zeros(1499))), 2,
     "holds 1500 images but"),
    ("train: labels outside the classes", TRAIN, lambda r, d: ["--data-dir", str(_with_names(r, d))], 2,
     "labels must lie in [0, 9]"),
    ("train: epochs 0", TRAIN + ["--epochs", "0"], lambda r, d: ["--data-dir", str(d)], 2, "--epochs"),
    ("train: epochs not a number", TRAIN + ["--epochs", "x"], lambda r, d: [], 2, "--epochs"),
    ("train: batch size negative", TRAIN + ["--batch-size", "-1"], lambda r, d: [], 2, "--batch-size"),
    ("train: learning rate 0", TRAIN + ["--lr", "0"], lambda r, d: [], 2, "--lr"),
    ("train: learning rate inf", TRAIN + ["--lr", "inf"], lambda r, d: [], 2, "--lr"),
    ("train: output is a file", TRAIN, lambda r, d: ["--data-dir", str(d), "--out", str(r / "keep.txt")], 2, "--out"),
    ("train: output under a file", TRAIN, lambda r, d: ["--data-dir", str(d), "--out", str(r / "keep.txt" / "x")],
     2, "--out"),
    ("train: output holds a run", TRAIN, lambda r, d: ["--data-dir", str(d), "--out", str(r / "run")], 2,
     "already holds a run"),
    ("train: resume without checkpoint", ["train"], lambda r, d: ["--resume", str(r / "run_no_ckpt")], 2,
     "no checkpoint.safetensors"),
    ("train: resume a non-run", ["train"], lambda r, d: ["--resume", str(r)], 2, "no readable run config.json"),
    ("train: diverges", TRAIN + ["--lr", "1e7"], lambda r, d: ["--data-dir", str(d)], 3, "diverged at epoch 1"),
    ("train: solver unknown", TRAIN + ["--solver", "newton"], lambda r, d: [], 2, "--solver"),
    ("train: max-iter 0", LBFGS + ["--max-iter", "0"], lambda r, d: [], 2, "--max-iter"),
    ("train: tol negative", LBFGS + ["--tol", "-1"], lambda r, d: [], 2, "--tol"),
    ("train: lbfgs with momentum", LBFGS + ["--momentum", "0.9"], lambda r, d: ["--data-dir", str(d)], 2,
     "--momentum: applies to --solver sgd"),
    ("train: lbfgs with a schedule", LBFGS + ["--schedule", "cosine"], lambda r, d: ["--data-dir", str(d)], 2,
     "--schedule: applies to --solver sgd"),
    ("train: max-iter with sgd", TRAIN + ["--max-iter", "5"], lambda r, d: ["--data-dir", str(d)], 2,
     "--max-iter: applies to --solver lbfgs"),
    ("evaluate: model missing", ["evaluate"], lambda r, d: [str(r / "none.safetensors")], 2, "cannot read model"),
    ("evaluate: model empty", ["evaluate"], lambda r, d: [str(r / "empty")], 2, "not a safetensors"),
    ("evaluate: model is a pickle", ["evaluate"], lambda r, d: [str(r / "model.pkl")], 2, "not a safetensors"),
    ("evaluate: model is a folder", ["evaluate"], lambda r, d: [str(r)], 2, "cannot read model"),
    ("evaluate: model for other data", ["evaluate"], lambda r, d: [str(r / "run" / "model.safetensors")], 2,
     "the model takes inputs of shape (8, 8)"),
    ("evaluate: output is a file", ["evaluate"],
     lambda r, d: [str(r / "run" / "model.safetensors"), "--data-dir", str(d), "--out", str(r / "keep.txt")], 2,
     "--out"),
    ("predict: input missing", ["predict"], lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "no.png")],
     2, "no.png: cannot read"),
    ("predict: input empty", ["predict"], lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "empty")], 2,
     "is empty (0 bytes)"),
    ("predict: image undecodable", ["predict"], lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "keep.txt")],
     2, "cannot decode"),
    ("predict: NaN features", ["predict"], lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "nan.npy")],
     2, "NaN"),
    ("predict: wrong feature count", ["predict"],
     lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "wide.npy")], 2, "does not fit the model"),
    ("predict: reject-below 1.5", ["predict", "--reject-below", "1.5"],
     lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "ok.npy")], 2, "--reject-below"),
    ("predict: top-k 0", ["predict", "--top-k", "0"],
     lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "ok.npy")], 2, "--top-k"),
    ("experiment: unknown name", ["experiment", "everything"], lambda r, d: [], 2, "invalid choice"),
    ("experiment: output is a file", ["experiment", "stability"], lambda r, d: ["--out", str(r / "keep.txt")], 2,
     "--out"),
    ("experiment: reject with a bad model", ["experiment", "reject"],
     lambda r, d: ["--model", str(r / "empty"), "--out", str(r / "exp")], 2, "not a safetensors"),
    ("train: an abbreviated option", TRAIN + ["--epoch", "2"], lambda r, d: [], 2, "did you mean --epochs?"),
    ("train: an unknown option", TRAIN + ["--learning-rate", "0.5"], lambda r, d: [], 2, "did you mean --lr?"),
    ("train: a setting's error names its flag", TRAIN + ["--label-smoothing", "1"], lambda r, d: ["--data-dir", str(d)],
     2, "--label-smoothing: expected a value in [0, 1)"),
    ("train: momentum above 1", TRAIN + ["--momentum", "2"], lambda r, d: ["--data-dir", str(d)], 2, "--momentum:"),
    ("train: log-every 0", TRAIN + ["--log-every", "0"], lambda r, d: [], 2, "--log-every"),
    ("train: output folder in use by another run", TRAIN,
     lambda r, d: ["--data-dir", str(d), "--out", str(held(r / "busy"))], 2, "another softmaxreg run is using"),
    ("train: resume a folder in use by another run", ["train"], lambda r, d: ["--resume", str(held(r / "run"))], 2,
     "another softmaxreg run is using"),
    ("train: resume a missing folder", ["train"], lambda r, d: ["--resume", str(r / "nowhere")], 2,
     "nowhere: no such folder"),
    ("train: resume a folder with broken config.json", ["train"], lambda r, d: ["--resume", str(r / "run_bad_config")],
     2, "not valid JSON"),
    ("train: a test class never in the training split", TRAIN,
     bad_data(LABELS, idx_bytes(np.arange(1500) % 9)), 2, "class 9 ('9') is in the test split but has no training"),
    ("train: one class only", TRAIN, bad_data(LABELS, idx_bytes(np.zeros(1500))), 2,
     "training needs examples of at least 2 classes"),
    ("train: images of zero size", TRAIN, bad_data(IMAGES, idx_bytes(np.zeros((1500, 0, 8)))), 2,
     "images of size 0x8"),
    ("train: duplicate class names", TRAIN,
     lambda r, d: ["--data-dir", str(_with_names(r, d, names="abcdefghia", test_label=3))], 2,
     "class names repeat: 'a'"),
    ("evaluate: model of other classes, same input shape", ["evaluate"],
     lambda r, d: [str(r / "run" / "model.safetensors"), "--data-dir",
                   str(_with_names(r, d, names="abcdefghij", test_label=3))], 2,
     "the model's classes are not the data's"),
    ("evaluate: model of another input range", ["evaluate"],
     lambda r, d: [str(r / "unit_range.safetensors"), "--data-dir", str(d)], 2,
     "values 0..255 lie outside the model's input range 0..1"),
    ("evaluate: another evaluation's figures in the folder", ["evaluate"],
     lambda r, d: [str(r / "evaluated" / "model.safetensors"), "--data-dir", str(d)], 2,
     "confusion.png: already exists with other contents; pass --overwrite"),
    ("evaluate: a checkpoint given as the model", ["evaluate"],
     lambda r, d: [str(r / "run" / "checkpoint.safetensors"), "--data-dir", str(d)], 2,
     "training checkpoint of a run that has not finished (`softmaxreg train --resume"),
    ("evaluate: a PNG given as the model", ["evaluate"], lambda r, d: [str(r / "image.png")], 2,
     "not a safetensors model file: it is a PNG image"),
    ("evaluate: JSON given as the model", ["evaluate"], lambda r, d: [str(r / "run" / "config.json")], 2,
     "not a safetensors model file: it is JSON text"),
    ("evaluate: a pickle given as the model", ["evaluate"], lambda r, d: [str(r / "model.pkl")], 2,
     "it is a Python pickle"),
    ("predict: values outside the model's range", ["predict"],
     lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "negative.npy")], 2,
     "values -1000..0 lie outside the model's input range 0..255; if they are on another scale, pass --input-range"),
    ("predict: values outside --input-range", ["predict", "--input-range", "0", "1"],
     lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "pixels.npy")], 2,
     "values 0..255 lie outside the given --input-range 0..1"),
    ("predict: --input-range upside down", ["predict", "--input-range", "1", "0"],
     lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "ok.npy")], 2, "expected LOW < HIGH"),
    ("predict: --input-range for a model without one", ["predict", "--input-range", "0", "1"],
     lambda r, d: [str(r / "no_range.safetensors"), str(r / "ok.npy")], 2, "does not record its input range"),
    ("predict: a CSV", ["predict"], lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "pixels.csv")], 2,
     "it is text with commas (CSV?); expected an image (PNG, JPEG, ...), a .npy array or an IDX file"),
    ("predict: a truncated PNG", ["predict"], lambda r, d: [str(r / "run" / "model.safetensors"), str(r / "cut.png")],
     2, "it is a PNG image that does not decode"),
    ("experiment: reject with a model of other classes", ["experiment", "reject"],
     lambda r, d: ["--model", str(r / "run" / "model.safetensors"), "--out", str(r / "exp"),
                   "--data-dir", str(_with_names(r, d, names="abcdefghij", test_label=3))], 2,
     "the model's classes are not the data's"),
    ("experiment: an unknown option", ["experiment", "stability", "--quik"], lambda r, d: [], 2,
     "did you mean --quick?"),
]

_HELD = contextlib.ExitStack()


def held(folder):
    """`folder`, claimed as a running `softmaxreg train` claims its run folder, until the test ends."""
    return _HELD.enter_context(claim_folder(folder))


def _with_names(root, digits, names="abcdefghij", test_label=12):
    folder = data_dir_with(root, digits, "t10k-labels-idx1-ubyte", idx_bytes(np.full(297, test_label)))
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    return folder


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, digits_dir):
    """A finished run on the digits (8x8) folder, to point commands at."""
    run = tmp_path_factory.mktemp("digits_run") / "run"
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(run), "--epochs", "1", "--quiet",
                 "--no-plots"]) == 0
    return run


def snapshot(root):
    """Every file's bytes and every folder (None) under root."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def png_bytes(shape=(8, 8)):
    buf = io.BytesIO()
    Image.fromarray(np.full(shape, 200, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("case", MATRIX, ids=[c[0] for c in MATRIX])
def test_bad_input_matrix(case, tmp_path, digits_dir, digits_run, capsys):
    name, command, make_args, code, culprit = case
    shutil.copytree(digits_run, tmp_path / "run")
    shutil.copytree(digits_run, tmp_path / "run_no_ckpt")
    (tmp_path / "run_no_ckpt" / "checkpoint.safetensors").unlink()
    (tmp_path / "keep.txt").write_text("precious")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.")
    np.save(tmp_path / "nan.npy", np.full(64, np.nan))
    np.save(tmp_path / "wide.npy", np.zeros((2, 65)))
    np.save(tmp_path / "ok.npy", np.zeros(64))
    np.save(tmp_path / "negative.npy", np.linspace(-1000, 0, 64))
    np.save(tmp_path / "pixels.npy", np.linspace(0, 255, 64))
    (tmp_path / "pixels.csv").write_text("0,12,255,3\n4,5,6,7\n")
    (tmp_path / "image.png").write_bytes(png_bytes())
    (tmp_path / "cut.png").write_bytes(png_bytes((40, 40))[:60])
    shutil.copytree(digits_run, tmp_path / "run_bad_config")
    (tmp_path / "run_bad_config" / "config.json").write_text('{"settings": ')
    shutil.copytree(digits_run, tmp_path / "evaluated")
    (tmp_path / "evaluated" / "confusion.png").write_bytes(png_bytes())
    save_model(SoftmaxRegression(64, 10, input_shape=(8, 8), input_range=(0, 1)), tmp_path / "unit_range.safetensors")
    save_model(SoftmaxRegression(64, 10, input_shape=(8, 8)), tmp_path / "no_range.safetensors")
    with _HELD:
        args = [*command, *make_args(tmp_path, digits_dir)]
        if command[0] == "train" and "--out" not in args and "--resume" not in args:
            args += ["--out", str(tmp_path / "new_run")]
        before = snapshot(tmp_path)
        capsys.readouterr()
        assert main(args) == code
        after = snapshot(tmp_path)
    out, err = capsys.readouterr()
    assert err.count("\n") == 1, err
    assert culprit in err and "Traceback" not in err
    assert after == before, "a pre-existing file or folder changed, or a new one appeared"


def test_the_console_script_gives_the_same_one_line(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    result = run_cli("evaluate", str(tmp_path / "empty"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == ["empty"]
