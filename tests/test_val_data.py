"""--val-data (datasets/held_out.py) on every single-file kind, and the command line end to end on
svmlight files: train, evaluate and predict, against scikit-learn's LogisticRegression."""

import json

import numpy as np
import pytest

from softmaxreg.datasets.sources import open_data
from softmaxreg.errors import DataFormatError

from .conftest import cli_refuses, run_cli


def write_csv(path, X, labels, header=None):
    header = header or [f"x{j}" for j in range(X.shape[1])] + ["label"]
    rows = [",".join(header)] + [",".join([*map(repr, map(float, row)), str(label)]) for row, label in zip(X, labels)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_held_out_file_is_the_test_split_with_names_joined(tmp_path):
    rng = np.random.default_rng(0)
    X, X_val = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    train = write_csv(tmp_path / "train.csv", X, ["cat", "dog", "cat", "dog", "cat", "dog"])
    val = write_csv(tmp_path / "val.csv", X_val, ["dog", "eel", "cat", "dog"])
    data = open_data(train, val_data=val, label_column="label")
    np.testing.assert_array_equal(data.test_images, X_val)
    assert data.class_names == ("cat", "dog", "eel")          # eel: a class without training rows
    np.testing.assert_array_equal(data.test_labels, [1, 2, 0, 1])
    np.testing.assert_array_equal(data.train_labels, [0, 1, 0, 1, 0, 1])
    assert set(data.sha256) == {"train.csv", "val-data:val.csv"}


def test_csv_held_out_file_with_other_columns_is_refused(tmp_path):
    X = np.ones((2, 2))
    train = write_csv(tmp_path / "train.csv", X, [0, 1])
    val = write_csv(tmp_path / "val.csv", X, [0, 1], header=["x0", "y1", "label"])
    with pytest.raises(DataFormatError, match=r"--val-data .*val\.csv: its columns differ .* column 2 is 'y1'"):
        open_data(train, val_data=val, label_column="label")


def test_npz_held_out_file_dense_and_sparse(tmp_path):
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(1)
    X, X_val = rng.normal(size=(8, 4)), rng.normal(size=(5, 4))
    np.savez(tmp_path / "train.npz", X_train=X, y_train=np.arange(8) % 3)
    np.savez(tmp_path / "val.npz", X_train=X_val, y_train=np.array([0, 1, 4, 1, 0]))
    data = open_data(tmp_path / "train.npz", val_data=tmp_path / "val.npz")
    np.testing.assert_array_equal(data.test_images, X_val)
    assert data.class_names == tuple("01234")                 # K over both files
    S = sp.csr_array(X)
    np.savez(tmp_path / "s.npz", format="csr", shape=S.shape, data=S.data, indices=S.indices, indptr=S.indptr,
             y=np.arange(8) % 2)
    S_val = sp.csr_array(X_val)
    np.savez(tmp_path / "s_val.npz", format="csr", shape=S_val.shape, data=S_val.data, indices=S_val.indices,
             indptr=S_val.indptr, y=np.array([1, 0, 1, 1, 0]))
    data = open_data(tmp_path / "s.npz", val_data=tmp_path / "s_val.npz")
    np.testing.assert_array_equal(data.test_images.toarray(), X_val)
    with pytest.raises(DataFormatError, match=r"rows of shape \(3,\), the training split's are \(4,\)"):
        np.savez(tmp_path / "narrow.npz", X_train=X_val[:, :3], y_train=np.zeros(5, int))
        open_data(tmp_path / "train.npz", val_data=tmp_path / "narrow.npz")


def test_npz_with_its_own_test_split_takes_no_held_out_file(tmp_path):
    np.savez(tmp_path / "a.npz", X_train=np.ones((2, 2)), y_train=[0, 1], X_test=np.ones((1, 2)), y_test=[0])
    np.savez(tmp_path / "b.npz", X_train=np.ones((2, 2)), y_train=[0, 1])
    with pytest.raises(DataFormatError, match=r"a\.npz has a test split of its own"):
        open_data(tmp_path / "a.npz", val_data=tmp_path / "b.npz")


def test_parquet_held_out_file(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(6, 2)), columns=["a", "b"]).assign(label=[0, 1, 2, 0, 1, 2])
    held = pd.DataFrame(rng.normal(size=(3, 2)), columns=["a", "b"]).assign(label=[2, 1, 0])
    frame.to_parquet(tmp_path / "train.parquet")
    held.to_parquet(tmp_path / "val.parquet")
    data = open_data(tmp_path / "train.parquet", val_data=tmp_path / "val.parquet", label_column="label")
    np.testing.assert_array_equal(data.test_images, held[["a", "b"]].to_numpy())
    np.testing.assert_array_equal(data.test_labels, [2, 1, 0])
    held.rename(columns={"b": "c"}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(DataFormatError, match="its columns differ"):
        open_data(tmp_path / "train.parquet", val_data=tmp_path / "other.parquet", label_column="label")


def test_cli_refuses_a_held_out_file_of_another_kind_or_for_a_folder(tmp_path, capsys):
    X = np.ones((2, 2))
    train = write_csv(tmp_path / "train.csv", X, [0, 1])
    np.savez(tmp_path / "val.npz", X_train=X, y_train=[0, 1])
    out = str(tmp_path / "run")
    cli_refuses(["train", "--data", str(train), "--label-column", "label", "--val-data", str(tmp_path / "val.npz"),
                 "--out", out, "--quiet"], tmp_path, capsys, "expected a file of the training file's kind (csv")
    cli_refuses(["train", "--val-data", str(train), "--out", out, "--quiet"], tmp_path, capsys,
                "goes with a single-file --data")


def test_train_evaluate_predict_on_svmlight_match_sklearn(tmp_path):
    """`softmaxreg train --data train.svm --val-data test.svm` with L-BFGS at C, then `evaluate` and
    `predict`, give scikit-learn's LogisticRegression(C) probabilities on the held-out file."""
    sk_datasets = pytest.importorskip("sklearn.datasets")
    linear = pytest.importorskip("sklearn.linear_model")
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(3)
    n, d, k, C = 240, 30, 3, 1.0
    X = sp.random_array((n, d), density=0.15, format="csr", rng=rng)
    y = np.argmax(X @ rng.normal(size=(d, k)) * 4 + rng.gumbel(size=(n, k)), axis=1)
    train, test = tmp_path / "train.svm", tmp_path / "test.svm"
    sk_datasets.dump_svmlight_file(X[:180], y[:180], str(train))
    sk_datasets.dump_svmlight_file(X[180:], y[180:], str(test))
    X_train, y_train = sk_datasets.load_svmlight_file(str(train))
    X_test, y_test = sk_datasets.load_svmlight_file(str(test), n_features=X_train.shape[1])
    reference = linear.LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X_train, y_train)
    expected = reference.predict_proba(X_test)

    run = tmp_path / "run"
    result = run_cli("train", "--data", str(train), "--val-data", str(test), "--solver", "lbfgs", "--dtype", "float64",
                     "--weight-decay", repr(1 / (C * X_train.shape[0])), "--tol", "1e-9", "--max-iter", "5000",
                     "--out", str(run), "--no-plots", "--quiet")
    assert result.returncode == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"]["validation_size"] == 60 and config["settings"]["val_data"] == str(test)

    result = run_cli("predict", str(run / "model.safetensors"), "--data", str(test), "--json")
    assert result.returncode == 0, result.stderr
    ours = np.zeros_like(expected)
    for row in json.loads(result.stdout):
        for top in row["top_k"]:
            ours[row["index"], int(top["class"])] = top["probability"]
    np.testing.assert_allclose(ours, expected, atol=1e-4)

    result = run_cli("evaluate", str(run / "model.safetensors"), "--data", str(test), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(reference.score(X_test, y_test))


def test_evaluate_and_predict_read_a_test_file_with_the_training_files_index_base(tmp_path):
    """A model trained on a 0-based file records it (index_base 0 in its file): a 0-based test file
    with no index 0 (auto would read it 1-based, every feature one column off) is read 0-based by
    `evaluate` and `predict`, as scikit-learn reads it with zero_based=True; --zero-based no overrides."""
    sk_datasets = pytest.importorskip("sklearn.datasets")
    from softmaxreg import load_model

    rng = np.random.default_rng(6)
    d, k = 8, 3
    W = rng.normal(size=(d, k)) * 3
    def write(path, n, low):
        X = np.zeros((n, d))
        X[:, low:] = rng.normal(size=(n, d - low)) * (rng.random((n, d - low)) < 0.6)
        X[:, d - 1] = 1.0                                       # every row names the last column
        y = np.argmax(X @ W + rng.gumbel(size=(n, k)), axis=1)
        sk_datasets.dump_svmlight_file(X, y, str(path), zero_based=True)
        return X, y
    write(tmp_path / "train.svm", 150, 0)
    X_test, y_test = write(tmp_path / "test.svm", 40, 1)           # column 0 empty: no index 0 written
    assert " 0:" not in (tmp_path / "test.svm").read_text()
    run = tmp_path / "run"
    result = run_cli("train", "--data", str(tmp_path / "train.svm"), "--solver", "lbfgs", "--dtype", "float64",
                     "--out", str(run), "--no-plots", "--quiet")
    assert result.returncode == 0, result.stderr
    model = load_model(run / "model.safetensors")
    assert model.index_base == 0
    expected = model.predict_proba(X_test)

    def predicted(*extra):
        result = run_cli("predict", str(run / "model.safetensors"), "--data", str(tmp_path / "test.svm"),
                         "--json", "--top-k", str(k), *extra)
        assert result.returncode == 0, result.stderr
        ours = np.zeros((len(y_test), k))
        for row in json.loads(result.stdout):
            for top in row["top_k"]:
                ours[row["index"], int(top["class"])] = top["probability"]
        return ours
    np.testing.assert_allclose(predicted(), expected, rtol=1e-6)
    assert not np.allclose(predicted("--zero-based", "no"), expected, rtol=1e-2)     # one column off
    result = run_cli("evaluate", str(run / "model.safetensors"), "--data", str(tmp_path / "test.svm"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(np.mean(expected.argmax(axis=1) == y_test))


def test_evaluate_reads_named_labels_of_a_test_file_as_the_models_classes(tmp_path):
    """A model trained on labels -1 / +1 is judged on a file of +1 rows only (spelled "1" too):
    each label names the model's class of that spelling or value; another label is refused by line."""
    rng = np.random.default_rng(4)
    lines = [f"{'+1' if i % 2 else '-1'} {1 + i % 3}:{rng.normal():.3f} 4:1" for i in range(40)]
    (tmp_path / "train.svm").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.svm").write_text("+1 1:0.5 4:1\n1 2:0.5 4:1\n")
    run = tmp_path / "run"
    result = run_cli("train", "--data", str(tmp_path / "train.svm"), "--solver", "lbfgs", "--out", str(run),
                     "--no-plots", "--quiet")
    assert result.returncode == 0, result.stderr
    result = run_cli("evaluate", str(run / "model.safetensors"), "--data", str(tmp_path / "test.svm"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["examples"] == 2 and [c["support"] for c in summary["per_class"]][:2] == [0, 2]
    (tmp_path / "other.svm").write_text("+1 1:0.5\n\n2 1:1\n")
    result = run_cli("evaluate", str(run / "model.safetensors"), "--data", str(tmp_path / "other.svm"))
    assert result.returncode == 2
    assert "other.svm, line 3: label '2' is not one of the model's 2 classes ('-1', '+1')" in result.stderr


def test_an_svmlight_run_with_val_data_resumes_with_its_files_and_options(tmp_path):
    """A run on 0-based svmlight files of a set width, killed mid-fit, resumes (with the held-out
    file, --zero-based and --n-features it recorded) to the uninterrupted run's bits."""
    import signal

    from softmaxreg.cli import main

    from .test_resume import assert_same_run, start

    rng = np.random.default_rng(5)
    for name, n in (("train", 80), ("val", 30)):
        rows = [f"{rng.integers(0, 3)} " + " ".join(f"{j}:{rng.normal():.4f}" for j in sorted(rng.choice(9, 3, False)))
                for _ in range(n)]
        (tmp_path / f"{name}.svm").write_text("\n".join(rows) + "\n")
    args = ["--data", str(tmp_path / "train.svm"), "--val-data", str(tmp_path / "val.svm"), "--zero-based", "yes",
            "--n-features", "12", "--solver", "lbfgs", "--weight-decay", "1e-2", "--max-iter", "8", "--tol", "0",
            "--quiet", "--no-plots"]
    full = start(tmp_path / "full", args)
    assert full.wait(timeout=300) == 0, full.stderr.read()
    out = tmp_path / "run"
    proc = start(out, args, signal_at=(4, "SIGKILL"))
    assert proc.wait(timeout=300) == -signal.SIGKILL
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert (settings["zero_based"], settings["n_features"]) == ("yes", 12)
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert_same_run(tmp_path / "full", out)
    assert load_width(out) == 12


def load_width(run) -> int:
    from softmaxreg import load_model
    return load_model(run / "model.safetensors").num_inputs
