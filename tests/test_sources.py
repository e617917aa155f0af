"""`--data PATH` of every kind in train, evaluate and predict, and its bad inputs (exit 2, one line,
nothing touched)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from softmaxreg.cli import main
from softmaxreg.datasets import blocks
from softmaxreg.datasets.sources import open_data

from .test_bad_inputs import snapshot
from .conftest import figures

N, D, K = 90, 5, 3


def _arrays(seed=0, n=N):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    y = (X[:, :K].argmax(axis=1)).astype(np.int64)
    return X, y


def _write_csv(path, X, y, label="label"):
    lines = [",".join([f"x{j}" for j in range(D)] + [label])]
    lines += [",".join([*(f"{v:.6g}" for v in row), str(c)]) for row, c in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")


def _frame(X, y):
    pd = pytest.importorskip("pandas", reason="Parquet needs pandas and pyarrow")
    pytest.importorskip("pyarrow", reason="Parquet needs pyarrow")
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(D)])
    frame["label"] = y
    return frame


def make_npz(root):
    (X, y), (Xt, yt) = _arrays(0), _arrays(1, 30)
    np.savez(root / "data.npz", X_train=X, y_train=y, X_val=Xt, y_val=yt)
    return [str(root / "data.npz")]


def make_npy_folder(root):
    folder = root / "npy"
    folder.mkdir()
    (X, y), (Xt, yt) = _arrays(0), _arrays(1, 30)
    for name, a in dict(X_train=X, y_train=y, X_test=Xt, y_test=yt).items():
        np.save(folder / f"{name}.npy", a)
    return [str(folder)]


def make_csv(root):
    _write_csv(root / "data.csv", *_arrays())
    return [str(root / "data.csv"), "--label-column", "label"]


def make_zarr(root):
    da = pytest.importorskip("dask.array", reason="Zarr goes through Dask")
    pytest.importorskip("zarr", reason="needs zarr")
    (X, y), (Xt, yt) = _arrays(0), _arrays(1, 30)
    store = str(root / "data.zarr")
    for name, a in dict(X_train=X, y_train=y, X_test=Xt, y_test=yt).items():
        da.from_array(a, chunks=(40, *a.shape[1:])).to_zarr(store, component=name)
    return [store]


def make_parquet(root):
    pytest.importorskip("dask.dataframe", reason="Parquet goes through Dask")
    frame = _frame(*_arrays())
    frame.iloc[:50].to_parquet(root / "part-0.parquet")
    frame.iloc[50:].to_parquet(root / "part-1.parquet")
    return [str(root / "part-*.parquet"), "--label-column", "label"]


KINDS = {"npz": make_npz, "npy-folder": make_npy_folder, "csv": make_csv, "zarr": make_zarr, "parquet": make_parquet}


@pytest.mark.parametrize("kind, streamed", [(kind, False) for kind in KINDS] + [("zarr", True), ("parquet", True)])
def test_every_data_kind_trains_evaluates_and_predicts(kind, streamed, tmp_path, capsys, monkeypatch):
    if streamed:                                              # Zarr and Parquet through Dask, as large data
        monkeypatch.setattr(blocks, "STREAM_BYTES", 0)
    data = KINDS[kind](tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--data", *data, "--epochs", "3", "--batch-size", "16", "--standardize", "--quiet",
                 "--out", str(run), "--no-plots"]) == 0, capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    assert config["preprocessing"]["input_scale"] == 1.0 and config["dataset"]["train_size"] == N
    model = str(run / "model.safetensors")
    capsys.readouterr()
    assert main(["evaluate", model, "--data", *data, "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    split = "all rows" if kind in ("csv", "parquet") else "test split"
    assert split in out
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text())["accuracy"] > 0.6
    assert main(["predict", model, "--data", *data]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == (N if kind in ("csv", "parquet") else 30) and lines[1].startswith(f"{data[0]}[1]: ")


def test_uint8_rows_are_pixels_and_csv_labels_may_be_names(tmp_path, capsys):
    folder = tmp_path / "pixels"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "X_train.npy", rng.integers(0, 256, (40, 4, 4), dtype=np.uint8))
    np.save(folder / "y_train.npy", np.arange(40) % 2)
    data = open_data(folder)
    assert data.test_images is None and data.class_names == ("0", "1")
    assert not isinstance(data.train_images, np.memmap)         # below blocks.STREAM_BYTES: read into memory
    assert main(["train", "--data", str(folder), "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["preprocessing"]["input_scale"] == 1 / 255 and config["settings"]["validation"].startswith("none")
    assert (tmp_path / "r" / "curves.png").is_file() and not (tmp_path / "r" / "misclassified.png").exists()
    X, y = _arrays()
    _write_csv(tmp_path / "named.csv", X, np.array(["cat", "dog", "ant"])[y], label="kind")
    named = open_data(tmp_path / "named.csv", label_column="kind")
    assert named.class_names == ("ant", "cat", "dog") and named.train_labels.max() == 2
    assert open_data(tmp_path / "named.csv", label_column=5).class_names == ("ant", "cat", "dog")


def _model(root):
    from softmaxreg import SoftmaxRegression, save_model
    save_model(SoftmaxRegression(D + 1, K, class_names=["0", "1", "2"]), root / "wide.safetensors")
    return str(root / "wide.safetensors")


def _npz(**arrays):
    return lambda root: (np.savez(root / "bad.npz", **arrays), ["--data", str(root / "bad.npz")])[1]


def _text(name, text, *extra):
    return lambda root: ((root / name).write_text(text), ["--data", str(root / name), *extra])[1]


X0, Y0 = _arrays()
BAD = [
    ("missing", ["train"], lambda root: ["--data", str(root / "nope.npz")], "data file does not exist"),
    ("unknown kind", ["train"], _text("data.txt", "1 2 3\n"), "unknown kind of data"),
    ("single npy", ["train"], lambda root: (np.save(root / "x.npy", X0), ["--data", str(root / "x.npy")])[1],
     "holds no labels"),
    ("lengths differ", ["train"], _npz(X_train=X0, y_train=Y0[:-1]), "90 rows of features but 89 labels"),
    ("npz without X_train", ["train"], _npz(X=X0, y=Y0), "missing array X_train"),
    ("npz without y_train", ["train"], _npz(X_train=X0), "has X_train but no y_train"),
    ("float labels", ["train"], _npz(X_train=X0, y_train=Y0 + 0.5), "integer class indices"),
    ("csv cell", ["train"], _text("d.csv", "a,b,label\n1,2,0\n3,x7,1\n", "--label-column", "label"),
     "line 3, column 'b': expected a number, found 'x7'"),
    ("csv label column", ["train"], _text("d.csv", "a,b,label\n1,2,0\n3,4,1\n", "--label-column", "class"),
     "no column 'class' for --label-column; the columns are 'a', 'b', 'label'"),
    ("csv no label column", ["train"], _text("d.csv", "a,b,label\n1,2,0\n3,4,1\n"), "pass --label-column"),
    ("csv ragged", ["train"], _text("d.csv", "a,b,label\n1,2,0\n3,4\n", "--label-column", "2"), "line 3: 2 cells"),
    ("evaluate features", ["evaluate"], lambda root: [_model(root), *make_npz(root)[:0], "--data",
                                                      make_npz(root)[0]], f"rows (test split) have {D} values"),
    ("predict features", ["predict"], lambda root: [_model(root), "--data", make_npz(root)[0]],
     f"rows of {D} values (test split); the model takes {D + 1}"),
    ("predict nothing", ["predict"], lambda root: [_model(root)], "give INPUT files, --data PATH, or both"),
]


def _zarr_misaligned(root):
    da = pytest.importorskip("dask.array", reason="Zarr goes through Dask")
    pytest.importorskip("zarr", reason="needs zarr")
    store = str(root / "bad.zarr")
    da.from_array(X0, chunks=(40, D)).to_zarr(store, component="X_train")
    da.from_array(Y0, chunks=(30,)).to_zarr(store, component="y_train")
    return ["--data", store]


def _parquet_label(root):
    pytest.importorskip("dask.dataframe", reason="Parquet goes through Dask")
    _frame(X0, Y0).to_parquet(root / "d.parquet")
    return ["--data", str(root / "d.parquet"), "--label-column", "target"]


def _parquet_garbage(root):
    pytest.importorskip("dask.dataframe", reason="Parquet goes through Dask")
    (root / "g.parquet").write_bytes(b"garbage")
    return ["--data", str(root / "g.parquet"), "--label-column", "label"]


BAD += [
    ("huge npz label", ["train"], _npz(X_train=X0, y_train=np.where(Y0 > 0, 2**40, 0)),
     "bad.npz (X_train, y_train): the largest label is 1099511627776"),
    ("huge csv label", ["train"], _text("d.csv", "a,b,label\n1,2,0\n3,4,99999999999\n", "--label-column", "label"),
     "d.csv: the largest label is 99999999999"),
    ("empty npz", ["train"], _text("e.npz", ""), "e.npz: not a readable .npz archive"),
    ("truncated npz", ["train"], lambda root: (np.savez(root / "t.npz", X_train=X0, y_train=Y0),
                                               (root / "t.npz").write_bytes((root / "t.npz").read_bytes()[:300]),
                                               ["--data", str(root / "t.npz")])[2], "t.npz: not a readable .npz"),
    ("empty X_train.npy", ["train"], lambda root: ((root / "f").mkdir(), (root / "f" / "X_train.npy").write_bytes(b""),
                                                   np.save(root / "f" / "y_train.npy", Y0), ["--data", str(root / "f")])[3],
     "X_train.npy: not a plain numeric .npy array"),
    ("npz class_names 0-d", ["train"], _npz(X_train=X0, y_train=Y0, class_names=np.array("ab")),
     "bad.npz: class_names: expected a 1-D array of strings"),
    ("npz one class name", ["train"], _npz(X_train=X0, y_train=Y0 * 0, class_names=np.array(["a"])),
     "bad.npz (class_names): expected class names, at least 2, found 1"),
    ("npz repeated class names", ["train"], _npz(X_train=X0, y_train=Y0, class_names=np.array(["a", "a", "b"])),
     "bad.npz (class_names): class names repeat: 'a'"),
    ("npz class names too few", ["train"], _npz(X_train=X0, y_train=Y0, class_names=np.array(["a", "b"])),
     "labels must lie in [0, 1]"),
    ("npz --label-column", ["train"], lambda root: [*_npz(X_train=X0, y_train=Y0)(root), "--label-column", "y"],
     "bad.npz: --label-column y goes with CSV and Parquet data"),
    ("parquet unreadable", ["train"], _parquet_garbage, "g.parquet: not readable as Parquet"),
]


BAD += [("parquet label column", ["train"], _parquet_label, "no column 'target' for --label-column; the columns are "
                                                            "'x0', 'x1', 'x2', 'x3', 'x4', 'label'")]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_data_is_one_line_exit_2_and_touches_nothing(case, tmp_path, capsys):
    name, command, make, culprit = case
    args = [*command, *make(tmp_path)]
    if command[0] == "train":
        args += ["--out", str(tmp_path / "run")]
    elif command[0] == "evaluate":
        args += ["--out", str(tmp_path / "eval")]
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and culprit in err and "Traceback" not in err, err
    assert snapshot(tmp_path) == before


def test_streamed_zarr_arrays_must_share_their_row_chunks(tmp_path, monkeypatch, capsys):
    data = _zarr_misaligned(tmp_path)
    assert open_data(data[1]).train_images.shape == X0.shape        # read into memory, chunks do not matter
    monkeypatch.setattr(blocks, "STREAM_BYTES", 0)                  # streamed through Dask, they do
    assert main(["train", *data, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the row chunks of the features (40, 40, 10) and of the labels (30, 30, 30) differ" in err
    assert not (tmp_path / "run").exists()


def test_zarr_without_zarr_or_dask_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    data = make_zarr(tmp_path)
    for missing, streamed, says in ((["zarr"], False, "needs zarr"), (["dask", "dask.array"], True, "needs Dask")):
        with monkeypatch.context() as patch:
            patch.setattr(blocks, "STREAM_BYTES", 0 if streamed else blocks.STREAM_BYTES)
            for name in missing:
                patch.setitem(sys.modules, name, None)
            assert main(["train", "--data", *data, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err and "pip install 'softmaxreg[dask]'" in err
        assert not (tmp_path / "run").exists()


def _whole_and_resumed(tmp_path, monkeypatch, options, before_resume=lambda cut: None):
    """The models of a run and of the same run interrupted after epoch 1, then resumed."""
    from softmaxreg import load_model, minibatch

    folder = tmp_path / "npy"
    folder.mkdir()
    X, y = _arrays(n=9000)                                   # three blocks of 4096 rows
    np.save(folder / "X_train.npy", X.astype(np.float32))
    np.save(folder / "y_train.npy", y)
    args = ["train", "--data", str(folder), "--quiet", "--no-plots", *options]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    end_epoch = minibatch.end_epoch

    def interrupt_after_the_first(run, record, callbacks):
        end_epoch(run, record, callbacks)
        if record.epoch == 1:
            raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(minibatch, "end_epoch", interrupt_after_the_first)
        assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    before_resume(tmp_path / "cut")
    assert main(["train", "--resume", str(tmp_path / "cut"), "--quiet", "--no-plots"]) == 0
    return (load_model(tmp_path / name / "model.safetensors") for name in ("whole", "cut"))


def test_a_block_shuffled_run_from_a_memory_map_resumes_bit_identically(tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "STREAM_BYTES", 0)          # stream (memory-map) even this small file
    whole, cut = _whole_and_resumed(tmp_path, monkeypatch, ["--epochs", "3", "--momentum", "0.9"])
    assert whole.W.tobytes() == cut.W.tobytes()
    assert figures((tmp_path / "whole" / "metrics.csv").read_text()) == figures((tmp_path / "cut" / "metrics.csv").read_text())
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["settings"]["shuffle"] == "auto"


def test_an_old_run_folder_without_shuffle_resumes_with_the_full_shuffle(tmp_path, monkeypatch):
    def as_before_shuffle(cut):
        config = json.loads((cut / "config.json").read_text())
        del config["settings"]["shuffle"]                                # as runs written before --shuffle
        (cut / "config.json").write_text(json.dumps(config))
        monkeypatch.setattr(blocks, "STREAM_BYTES", 0)                   # the data now streamed: auto -> blocks

    whole, cut = _whole_and_resumed(tmp_path, monkeypatch, ["--epochs", "2", "--shuffle", "full"], as_before_shuffle)
    assert whole.W.tobytes() == cut.W.tobytes()


def test_csv_labels_are_ascii_integers_or_names_and_a_bom_is_not_in_the_header(tmp_path):
    (tmp_path / "odd.csv").write_text("a,b,label\n1,2,--1\n2,3,\u00b2\n4,5,1\n", encoding="utf-8")
    odd = open_data(tmp_path / "odd.csv", label_column="label")          # int() refuses '--1' and '²': names
    assert odd.class_names == ("--1", "1", "\u00b2") and odd.train_labels.tolist() == [0, 2, 1]
    (tmp_path / "bom.csv").write_text("label,a\n0,1\n1,2\n", encoding="utf-8-sig")
    assert open_data(tmp_path / "bom.csv", label_column="label").train_labels.tolist() == [0, 1]


def test_a_path_with_glob_characters_that_exists_is_itself(tmp_path):
    folder = tmp_path / "run[1]*?"
    folder.mkdir()
    np.save(folder / "X_train.npy", X0)
    np.save(folder / "y_train.npy", Y0)
    assert open_data(folder).train_images.shape == X0.shape
    pytest.importorskip("dask.dataframe", reason="Parquet goes through Dask")
    _frame(X0, Y0).to_parquet(tmp_path / "p[1].parquet")
    assert open_data(tmp_path / "p[1].parquet", label_column="label").train_labels.tolist() == Y0.tolist()
    (tmp_path / "d[1].npz").write_bytes(b"")
    with pytest.raises(Exception, match=r"d\[1\].npz: not a readable .npz"):
        open_data(tmp_path / "d[1].npz")


def test_small_raw_idx_is_read_like_its_gz_copy_and_trains_to_the_same_bits(tmp_path, monkeypatch, capsys):
    from softmaxreg import load_model
    from softmaxreg.datasets import fashion_mnist
    from softmaxreg.datasets.idx import read_idx, write_idx

    for kind in ("gz", "raw"):
        (tmp_path / kind).mkdir()
        for name, n in (("train-images-idx3-ubyte", 3000), ("train-labels-idx1-ubyte", 3000),
                        ("t10k-images-idx3-ubyte", 300), ("t10k-labels-idx1-ubyte", 300)):
            write_idx(tmp_path / kind / (name + (".gz" if kind == "gz" else "")),
                      read_idx(fashion_mnist.BUNDLED_DIR / f"{name}.gz")[:n])
    raw = open_data(tmp_path / "raw")
    assert not isinstance(raw.train_images, np.memmap)                 # below STREAM_BYTES: in memory
    for kind in ("gz", "raw"):
        assert main(["train", "--data", str(tmp_path / kind), "--epochs", "2", "--quiet", "--no-plots",
                     "--out", str(tmp_path / f"run_{kind}")]) == 0
    gz, raw = (load_model(tmp_path / f"run_{kind}" / "model.safetensors") for kind in ("gz", "raw"))
    assert gz.W.tobytes() == raw.W.tobytes() and gz.b.tobytes() == raw.b.tobytes()
    monkeypatch.setattr(blocks, "STREAM_BYTES", 0)                       # above it: memory-mapped
    assert isinstance(open_data(tmp_path / "raw").train_images, np.memmap)
    assert not isinstance(open_data(tmp_path / "gz").train_images, np.memmap)


def test_final_line_without_validation_and_top_k_of_a_two_class_model(tmp_path, capsys):
    X, y = _arrays()
    y = y % 2
    np.savez(tmp_path / "two.npz", X_train=X, y_train=y)
    assert main(["train", "--data", str(tmp_path / "two.npz"), "--epochs", "1", "--no-plots",
                 "--out", str(tmp_path / "r")]) == 0
    final = [line for line in capsys.readouterr().out.splitlines() if line.startswith("final:")]
    assert final and "val_" not in final[0] and "nan" not in final[0], final
    model = str(tmp_path / "r" / "model.safetensors")
    assert main(["predict", model, "--data", str(tmp_path / "two.npz")]) == 0
    assert main(["predict", model, "--data", str(tmp_path / "two.npz"), "--top-k", "3"]) == 2
    assert "--top-k 3: the model has only 2 classes" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["parquet", "zarr"])
def test_small_parquet_and_zarr_are_read_into_memory_without_dask(kind, tmp_path, monkeypatch):
    """Data of at most blocks.STREAM_BYTES (uncompressed) become NumPy arrays read here, and opening and
    training on them never imports Dask; larger data are Dask arrays, streamed."""
    data = KINDS[kind](tmp_path)
    small = open_data(data[0], label_column=data[2] if len(data) > 2 else None)
    assert type(small.train_images) is np.ndarray and type(small.train_labels) is np.ndarray
    code = ("import sys; from softmaxreg.cli import main;"
            f"assert main(['train', '--data', *{data!r}, '--quiet', '--no-plots', '--out', {str(tmp_path / 'run')!r}]) == 0;"
            "assert not [n for n in sys.modules if n.split('.')[0] in ('dask', 'distributed')], 'dask imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    monkeypatch.setattr(blocks, "STREAM_BYTES", 0)
    big = open_data(data[0], label_column=data[2] if len(data) > 2 else None)
    assert type(big.train_images).__module__.startswith("dask")
    np.testing.assert_array_equal(big.train_images.compute(), small.train_images)
    np.testing.assert_array_equal(big.train_labels, small.train_labels)


@pytest.mark.parametrize("kind", KINDS)
def test_feature_tables_are_standardized_by_default_and_no_standardize_opts_out(kind, tmp_path, capsys):
    from softmaxreg import load_model

    data = KINDS[kind](tmp_path)
    assert open_data(data[0], label_column=data[2] if len(data) > 2 else None).features
    for flags, standardized in (([], True), (["--no-standardize"], False), (["--standardize"], True)):
        run = tmp_path / f"run{flags}"
        assert main(["train", "--data", *data, "--epochs", "1", "--quiet", "--no-plots", "--out", str(run),
                     *flags]) == 0, capsys.readouterr().err
        model = load_model(run / "model.safetensors")
        assert (model.mean is not None) == standardized
        assert json.loads((run / "config.json").read_text())["settings"]["standardize"] == standardized


def test_images_and_pixels_are_not_standardized_by_default(tmp_path, digits_dir):
    from softmaxreg import load_model

    folder = tmp_path / "pixels"                   # uint8 rows: pixels, even flat
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "X_train.npy", rng.integers(0, 256, (40, 16), dtype=np.uint8))
    np.save(folder / "y_train.npy", np.arange(40) % 2)
    np.savez(tmp_path / "images.npz", X_train=rng.normal(size=(40, 4, 4)), y_train=np.arange(40) % 2)
    for source in (digits_dir, folder, tmp_path / "images.npz"):
        assert not open_data(source).features
        run = tmp_path / f"run_{Path(source).name}"
        assert main(["train", "--data", str(source), "--epochs", "1", "--quiet", "--no-plots", "--out", str(run)]) == 0
        assert load_model(run / "model.safetensors").mean is None
    assert main(["train", "--data", str(folder), "--epochs", "1", "--quiet", "--no-plots", "--standardize",
                 "--out", str(tmp_path / "asked")]) == 0
    assert load_model(tmp_path / "asked" / "model.safetensors").mean is not None


def test_a_divergence_on_an_unscaled_table_names_standardize_and_otherwise_the_rate(tmp_path, capsys):
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)           # features up to ~4,000: root mean square ~245
    lines = [",".join([f"f{j}" for j in range(X.shape[1])] + ["label"])]
    lines += [",".join([*map(repr, row), str(c)]) for row, c in zip(X.tolist(), y)]
    (tmp_path / "cancer.csv").write_text("\n".join(lines) + "\n")
    base = ["train", "--data", str(tmp_path / "cancer.csv"), "--label-column", "label", "--quiet", "--no-plots"]
    assert main([*base, "--no-standardize", "--lr", "1", "--out", str(tmp_path / "raw")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diverged" in err and "not standardized" in err and "--standardize" in err
    assert main([*base, "--lr", "1e6", "--out", str(tmp_path / "scaled")]) == 3      # standardized by default
    err = capsys.readouterr().err
    assert "try a smaller learning rate" in err and "--standardize" not in err
    assert main([*base, "--out", str(tmp_path / "default")]) == 0                    # the defaults train
