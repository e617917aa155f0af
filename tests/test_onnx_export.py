"""ONNX export (onnx_export, `softmaxreg export`): onnxruntime, an independent implementation, runs the
exported graph; its probabilities must equal predict_proba and its labels predict, for every kind of
model we train (SGD on Fashion-MNIST images, L-BFGS, a standardized CSV feature table, torch, Dask)."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import softmaxreg as sr
from softmaxreg import fileio
from softmaxreg.cli import main

from .conftest import run_cli

onnx = pytest.importorskip("onnx", reason="ONNX export needs pip install 'softmaxreg[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="the exported graphs are run by onnxruntime (the test extra)")

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-6}


def run_onnx(proto, X):
    """(labels, probabilities) of the exported graph on X, run by onnxruntime."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["label", "probabilities"], {"input": X})


def assert_same_predictions(model, X, *, input_dtype=None):
    """onnxruntime's probabilities equal predict_proba (1e-5 float32, 1e-6 float64) and its labels
    predict's class names, at batch 1 and at all of X; the checker passes. Returns the graph."""
    proto = sr.to_onnx(model, input_dtype=input_dtype)
    onnx.checker.check_model(proto, full_check=True)
    proba, names = model.predict_proba(X), np.array(model.class_names)[model.predict(X)]
    for rows in (slice(0, 1), slice(None)):
        got_labels, got_proba = run_onnx(proto, X[rows])
        assert got_proba.dtype == model.dtype and got_proba.shape == proba[rows].shape
        np.testing.assert_allclose(got_proba, proba[rows], rtol=0, atol=TOLERANCE[model.dtype.type])
        assert np.array_equal(got_labels, names[rows])
    return proto


def metadata(proto) -> dict:
    return {entry.key: entry.value for entry in proto.metadata_props}


@pytest.fixture(scope="module")
def sgd_model(fashion):
    """A short SGD run on Fashion-MNIST images: float32, input_scale 1/255, input shape 28x28."""
    model = sr.SoftmaxRegression(784, 10, sigma=0.01, input_scale=1 / 255, input_shape=(28, 28),
                                 class_names=fashion.class_names)
    sr.fit(model, fashion.train_images[:6000], fashion.train_labels[:6000], epochs=2, batch_size=256, lr=0.1)
    return model


def test_fashion_mnist_sgd_model_float_and_uint8_inputs(sgd_model, fashion):
    X = fashion.test_images[:2000]                               # (n, 28, 28) uint8 pixels
    proto = assert_same_predictions(sgd_model, X.astype(np.float32))
    assert_same_predictions(sgd_model, X, input_dtype="uint8")
    ops = [node.op_type for node in proto.graph.node]
    assert {"MatMul", "Add", "Softmax", "ArgMax", "Gather"} <= set(ops) and "ZipMap" not in ops
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [28, 28]
    meta = metadata(proto)
    assert json.loads(meta["class_names"]) == list(fashion.class_names)
    assert json.loads(meta["input_shape"]) == [28, 28] and meta["softmaxreg_version"] == sr.__version__


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lbfgs_model_standardized_in_python(problem, dtype):
    X, y = problem
    model = sr.SoftmaxRegression(X.shape[1], 4, seed=0, dtype=dtype, input_scale=0.5,
                                 class_names=["a", "b", "c", "d"])
    model.set_standardization(X.mean(axis=0) * 0.5, X.std(axis=0) * 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sr.ConvergenceWarning)
        sr.fit(model, X, y, solver="lbfgs", max_iter=50, weight_decay=1e-3)
    proto = assert_same_predictions(model, X.astype(dtype))
    assert proto.graph.output[1].type.tensor_type.elem_type == onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    other = np.float32 if dtype == np.float64 else np.float64           # the other float type: cast in the graph
    assert_same_predictions(model, X.astype(other), input_dtype=np.dtype(other).name)


def test_csv_model_from_the_cli_is_standardized_and_exports(tmp_path, capsys):
    datasets = pytest.importorskip("sklearn.datasets", reason="the wine table comes from scikit-learn")
    wine = datasets.load_wine()
    table = tmp_path / "wine.csv"
    rows = [",".join([*wine.feature_names, "label"])]
    rows += [",".join([*map(repr, x.tolist()), str(label)]) for x, label in zip(wine.data, wine.target)]
    table.write_text("\n".join(rows) + "\n")
    assert main(["train", "--data", str(table), "--label-column", "label", "--solver", "lbfgs", "--dtype",
                 "float64", "--out", str(tmp_path / "run"), "--no-plots", "--quiet"]) == 0
    model = sr.load_model(tmp_path / "run" / "model.safetensors")
    assert model.mean is not None and model.dtype == np.float64            # the CLI standardized it
    assert_same_predictions(model, wine.data)
    assert main(["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "wine.onnx")]) == 0
    proto = onnx.load(tmp_path / "wine.onnx")
    assert json.loads(metadata(proto)["preprocessing"])["standardize"] is True
    np.testing.assert_allclose(run_onnx(proto, wine.data)[1], model.predict_proba(wine.data), rtol=0, atol=1e-6)


def test_estimator_with_integer_classes_exports_int64_labels(problem):
    pytest.importorskip("sklearn", reason="the estimator needs scikit-learn")
    from softmaxreg.sklearn import SoftmaxRegressionClassifier

    X, y = problem
    classes = np.array([3, 7, 11, 42])[y]                      # labels that are not indices
    estimator = SoftmaxRegressionClassifier(solver="lbfgs", dtype=np.float64).fit(X, classes)
    proto = sr.to_onnx(estimator)
    got_labels, got_proba = run_onnx(proto, X)
    assert got_labels.dtype == np.int64 and np.array_equal(got_labels, estimator.predict(X))
    np.testing.assert_allclose(got_proba, estimator.predict_proba(X), rtol=0, atol=1e-6)
    estimator.fit(X, np.array([0.0, 1.0, 2.0, 3.0])[y])      # float labels: refused, not silently recast
    with pytest.raises(sr.ExportError, match="integers or strings"):
        sr.to_onnx(estimator)


def test_torch_model_exports_as_its_numpy_twin(problem):
    torch = pytest.importorskip("torch", reason="the torch backend needs pip install 'softmaxreg[torch]'")
    X, y = problem
    model = sr.SoftmaxRegression(X.shape[1], 4, seed=0, dtype=np.float32)
    sr.fit(model, torch.asarray(X, dtype=torch.float32), torch.asarray(y), epochs=2, batch_size=100, lr=0.05)
    assert model.backend == "torch"
    assert_same_predictions(model.to("numpy"), X.astype(np.float32))
    model.to("torch")
    proto = sr.to_onnx(model)                                   # exported from torch tensors directly
    np.testing.assert_allclose(run_onnx(proto, X.astype(np.float32))[1],
                               model.predict_proba(torch.asarray(X, dtype=torch.float32)).numpy(), rtol=0, atol=1e-5)


def test_dask_cluster_model(problem, cluster):
    da = pytest.importorskip("dask.array", reason="the Dask engine needs pip install 'softmaxreg[dask]'")
    X, y = problem
    model = sr.SoftmaxRegression(X.shape[1], 4, seed=0, dtype=np.float64)
    with cluster[1].as_current(), warnings.catch_warnings():
        warnings.simplefilter("ignore", sr.ConvergenceWarning)
        sr.fit(model, da.from_array(X, chunks=(500, X.shape[1])), da.from_array(y, chunks=500),
               solver="lbfgs", max_iter=25, weight_decay=1e-3)
    assert_same_predictions(model, X)


def test_cli_export_from_run_folder_and_model_file(tmp_path, reference_model):
    first = run_cli("export", str(reference_model.parent), "--format", "onnx", "--out", str(tmp_path / "a.onnx"))
    assert first.returncode == 0, first.stderr
    assert main(["export", str(reference_model), "--out", str(tmp_path / "b.onnx")]) == 0
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    model = sr.load_model(reference_model)
    images = sr.load_fashion_mnist().test_images[:500]
    got_labels, got_proba = run_onnx(onnx.load(tmp_path / "a.onnx"), images.reshape(500, *model.input_shape)
                                     .astype(np.float32))
    np.testing.assert_allclose(got_proba, model.predict_proba(images), rtol=0, atol=1e-5)
    assert np.array_equal(got_labels, np.array(model.class_names)[model.predict(images)])


def one_error_line(capsys, code: int, *fragments: str) -> None:
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert all(fragment in captured.err for fragment in fragments), captured.err


def test_cli_refuses_missing_and_corrupt_models(tmp_path, capsys):
    one_error_line(capsys, main(["export", str(tmp_path / "nothing.safetensors"), "--out", str(tmp_path / "m.onnx")]),
                   "nothing.safetensors")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    one_error_line(capsys, main(["export", str(tmp_path / "corrupt.safetensors"), "--out", str(tmp_path / "m.onnx")]),
                   "corrupt.safetensors")
    (tmp_path / "empty_run").mkdir()
    one_error_line(capsys, main(["export", str(tmp_path / "empty_run"), "--out", str(tmp_path / "m.onnx")]),
                   "model.safetensors")
    one_error_line(capsys, main(["export", str(tmp_path / "empty_run"), "--format", "tflite", "--out", "m"]),
                   "--format")
    assert not (tmp_path / "m.onnx").exists()
    done = run_cli("export", str(tmp_path / "corrupt.safetensors"), "--out", str(tmp_path / "m.onnx"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_existing_out_is_kept_unless_overwrite(tmp_path, capsys, sgd_model):
    sr.save_model(sgd_model, tmp_path / "model.safetensors")
    out = tmp_path / "model.onnx"
    out.write_bytes(b"precious")
    one_error_line(capsys, main(["export", str(tmp_path / "model.safetensors"), "--out", str(out)]),
                   str(out), "--overwrite")
    assert out.read_bytes() == b"precious"
    with pytest.raises(sr.OutputError, match="already exists"):
        sr.export_onnx(sgd_model, out)
    assert main(["export", str(tmp_path / "model.safetensors"), "--out", str(out), "--overwrite"]) == 0
    assert onnx.load(out).graph.node and out.read_bytes() != b"precious"


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch, sgd_model):
    out = tmp_path / "model.onnx"

    def full_disk(fd):                   # the temporary file is written, its flush to disk fails
        assert [p.name for p in tmp_path.iterdir()][0].startswith(".model.onnx.")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fileio.os, "fsync", full_disk)
    with pytest.raises(sr.OutputError, match="model.onnx: cannot write: No space left"):
        sr.export_onnx(sgd_model, out)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="a read-only folder binds everyone but root")
def test_read_only_folder_is_refused_in_one_line(tmp_path, capsys, sgd_model):
    sr.save_model(sgd_model, tmp_path / "model.safetensors")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        one_error_line(capsys, main(["export", str(tmp_path / "model.safetensors"), "--out", str(folder / "m.onnx")]),
                       "m.onnx")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_non_finite_parameters_are_refused(sgd_model):
    broken = sr.SoftmaxRegression(784, 10, input_shape=(28, 28))
    broken.W[0, 0] = np.nan
    with pytest.raises(sr.ExportError, match="not all finite"):
        sr.to_onnx(broken)
    with pytest.raises(sr.ExportError, match="input_dtype"):
        sr.to_onnx(sgd_model, input_dtype="int8")
    with pytest.raises(sr.ExportError, match="SoftmaxRegression"):
        sr.to_onnx(object())


def test_import_softmaxreg_does_not_import_onnx():
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys, softmaxreg; assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_without_onnx_export_says_how_to_install_it(tmp_path, capsys, monkeypatch, sgd_model):
    sr.save_model(sgd_model, tmp_path / "model.safetensors")
    monkeypatch.setitem(sys.modules, "onnx", None)              # `import onnx` now raises ImportError
    one_error_line(capsys, main(["export", str(tmp_path / "model.safetensors"), "--out", str(tmp_path / "m.onnx")]),
                   "pip install 'softmaxreg[onnx]'")
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


def test_out_that_appears_during_the_export_is_not_replaced(tmp_path, monkeypatch, sgd_model):
    """The existence check happens before the graph is built; a file another process writes at that
    name meanwhile is still kept: the final step links, it does not rename over the name."""
    from softmaxreg import onnx_export

    out = tmp_path / "model.onnx"
    real = onnx_export.to_onnx

    def racing(model, **kwargs):
        proto = real(model, **kwargs)
        out.write_bytes(b"written meanwhile")
        return proto
    monkeypatch.setattr(onnx_export, "to_onnx", racing)
    with pytest.raises(sr.OutputError, match="already exists"):
        sr.export_onnx(sgd_model, out)
    assert out.read_bytes() == b"written meanwhile" and os.listdir(tmp_path) == ["model.onnx"]
    sr.export_onnx(sgd_model, out, overwrite=True)                  # asked for: replaced
    assert onnx.load(out).graph.node


def test_out_folder_and_missing_parent_are_refused_in_one_line(tmp_path, capsys, sgd_model):
    sr.save_model(sgd_model, tmp_path / "model.safetensors")
    one_error_line(capsys, main(["export", str(tmp_path / "model.safetensors"), "--out", str(tmp_path)]),
                   "is a folder")
    one_error_line(capsys, main(["export", str(tmp_path / "model.safetensors"), "--out",
                                 str(tmp_path / "no" / "m.onnx")]), "m.onnx", "No such file")
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


def test_a_model_beyond_protobufs_2_gib_is_refused(monkeypatch, sgd_model):
    """One ONNX file is one protobuf message, at most 2 GiB: a bigger model is refused before any graph
    is built (the limit lowered here to the test model's size, so no 2 GiB array is made)."""
    from softmaxreg import onnx_export

    needed = sgd_model.W.nbytes + sgd_model.b.nbytes
    monkeypatch.setattr(onnx_export, "MAX_BYTES", needed)           # the labels' bytes tip it over
    with pytest.raises(sr.ExportError, match="at most 2 GiB"):
        sr.to_onnx(sgd_model)
    monkeypatch.setattr(onnx_export, "MAX_BYTES", needed + 1000)
    assert sr.to_onnx(sgd_model).graph.node
