"""Issue 23 part 1: bounded resources. Integer labels name classes 0..max label, refused when the
training labels cannot support that many unless --num-classes declares them; evaluate and report
of many classes build no k x k matrix; --scheduler local:N capped by the machine (test_cluster_bounds)."""

import json

import numpy as np
import pytest

import softmaxreg as sr
from softmaxreg.cli import main

from .conftest import traced_peak
from softmaxreg.datasets.classes import MAX_CLASSES, SPARSE_BOUND
from softmaxreg.datasets.sources import open_data
from softmaxreg.errors import DataFormatError, InvalidArgumentError

from .test_bad_inputs import snapshot


def _stray_label_npz(root, stray=70000, n=200):
    """n rows of 10 classes, one row's label `stray` (a typo, or the wrong column)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    y = np.arange(n) % 10
    y[7] = stray
    path = root / "stray.npz"
    np.savez(path, X_train=X, y_train=y)
    return path


def _refused_by_cli(args, root, capsys):
    before = snapshot(root)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert snapshot(root) == before
    return err


@pytest.mark.parametrize("stray", [3000, 70000])
def test_one_stray_huge_label_is_refused_with_the_numbers(tmp_path, capsys, stray):
    path = _stray_label_npz(tmp_path, stray)
    err = _refused_by_cli(["train", "--data", str(path), "--out", str(tmp_path / "run")], tmp_path, capsys)
    assert f"stray.npz (X_train, y_train): the largest label is {stray}" in err and "--num-classes K" in err
    if stray < MAX_CLASSES:
        assert "only 11 distinct labels occur in the 200 training rows" in err
    with pytest.raises(DataFormatError, match=f"the largest label is {stray}"):
        open_data(path)


def test_declared_num_classes_accepts_the_stray_label(tmp_path, capsys):
    path = _stray_label_npz(tmp_path, 3000)
    data = open_data(path, num_classes=3001)
    assert data.class_names == tuple(map(str, range(3001)))
    out = tmp_path / "run"
    assert main(["train", "--data", str(path), "--num-classes", "3001", "--epochs", "1", "--no-plots",
                 "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["num_classes"] == 3001 and len(config["dataset"]["class_names"]) == 3001
    assert sr.load_model(out / "model.safetensors").num_outputs == 3001


def test_a_label_at_or_past_the_declared_count_names_the_file(tmp_path, capsys):
    path = _stray_label_npz(tmp_path, 3000)
    err = _refused_by_cli(["train", "--data", str(path), "--num-classes", "3000", "--out", str(tmp_path / "r")],
                          tmp_path, capsys)
    assert "stray.npz (X_train, y_train): labels must lie in [0, 2999], found 0..3000" in err
    with pytest.raises(DataFormatError, match=r"stray.npz \(X_train, y_train\): labels must lie in \[0, 2999\]"):
        open_data(path, num_classes=3000)


@pytest.mark.parametrize("bad", [1, 0, -3])
def test_num_classes_below_two_is_refused(tmp_path, capsys, bad):
    path = _stray_label_npz(tmp_path, 9)
    err = _refused_by_cli(["train", "--data", str(path), "--num-classes", str(bad), "--out", str(tmp_path / "r")],
                          tmp_path, capsys)
    assert f"--num-classes: expected an integer >= 2, got {bad}" in err
    with pytest.raises(InvalidArgumentError, match="num_classes: expected an integer >= 2"):
        open_data(path, num_classes=bad)


def test_num_classes_must_agree_with_class_names(tmp_path, capsys):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "named.npz", X_train=rng.normal(size=(30, 2)), y_train=np.arange(30) % 3,
             class_names=np.array(["a", "b", "c"]))
    err = _refused_by_cli(["train", "--data", str(tmp_path / "named.npz"), "--num-classes", "4",
                           "--out", str(tmp_path / "r")], tmp_path, capsys)
    assert "named.npz: names 3 classes, but 4 are declared" in err
    assert open_data(tmp_path / "named.npz", num_classes=3).class_names == ("a", "b", "c")


def test_the_rule_counts_classes_that_occur(tmp_path):
    """Up to SPARSE_BOUND classes anything goes; above it, half of 0..max must occur (a plain loop decides)."""
    rng = np.random.default_rng(2)
    for top, present in [(SPARSE_BOUND - 1, 2), (40, 21), (40, 20), (99, 50), (99, 49)]:
        labels = np.r_[np.arange(present - 1), top]            # present distinct values, the largest `top`
        y = rng.permutation(np.resize(labels, 300))
        np.savez(tmp_path / "d.npz", X_train=rng.normal(size=(300, 2)), y_train=y)
        supported = top + 1 <= SPARSE_BOUND or 2 * len(set(y.tolist())) >= top + 1
        if supported:
            assert len(open_data(tmp_path / "d.npz").class_names) == top + 1
        else:
            with pytest.raises(DataFormatError, match=f"only {present} distinct labels occur in the 300 training rows"):
                open_data(tmp_path / "d.npz")


def test_an_idx_folder_follows_the_rule_and_takes_num_classes(tmp_path, digits_dir):
    folder = tmp_path / "idx"
    folder.mkdir()
    for f in digits_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    labels = sr.read_idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int32)
    labels[0] = 5000
    sr.write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataFormatError, match="train-labels-idx1-ubyte.gz: the largest label is 5000 but only 11"):
        open_data(folder)
    assert len(open_data(folder, num_classes=5001).class_names) == 5001


def test_per_class_counts_match_the_confusion_matrix_and_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    from softmaxreg.metrics import confusion_matrix, per_class_counts, per_class_report

    rng = np.random.default_rng(3)
    y, pred = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    pred[:200] = y[:200]
    fast, full = per_class_counts(y, pred, 8), per_class_report(confusion_matrix(y, pred, 8))
    for key in full:
        np.testing.assert_allclose(fast[key], full[key])
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(8), zero_division=0)
    for key, ref in zip(("precision", "recall", "f1", "support"), (p, r, f, s)):
        np.testing.assert_allclose(fast[key], ref)


def _many_classes(root, k=2000, n=200):
    """A model of k classes and an npz of n rows (labels: n of the k classes)."""
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(n, 3)), rng.permutation(k)[:n]
    np.savez(root / "many.npz", X_train=X, y_train=y)
    model = sr.SoftmaxRegression(3, k, sigma=0.1, seed=0, class_names=[str(i) for i in range(k)])
    sr.save_model(model, root / "model.safetensors")
    return model, X, y


def test_evaluate_and_report_of_2000_classes_build_no_k_by_k_matrix(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib.pyplot")             # imported before tracemalloc: not the evaluation's memory

    from softmaxreg import metrics

    k = 2000
    model, X, y = _many_classes(tmp_path, k)
    monkeypatch.setattr(metrics, "confusion_matrix", lambda *a: pytest.fail("a k x k confusion matrix was built"))
    code, peak = traced_peak(lambda: main(["evaluate", str(tmp_path / "model.safetensors"),
                                           "--data", str(tmp_path / "many.npz")]))
    out = capsys.readouterr().out
    assert code == 0
    assert peak < k * k * 8 / 2, f"peak {peak / 2**20:.1f} MiB"           # k x k int64 would be 30.5 MiB alone
    assert f"confusion matrix: not built for {k} classes (more than {metrics.MAX_MATRIX_CLASSES}" in out
    assert not (tmp_path / "confusion.png").exists() and (tmp_path / "calibration.png").is_file()
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert evaluation["confusion_matrix"] is None and len(evaluation["per_class"]) == k
    pred = model.predict(X)
    support = np.bincount(y, minlength=k)
    assert [c["support"] for c in evaluation["per_class"]] == support.tolist()
    hits = np.bincount(y[pred == y], minlength=k)
    recall = np.divide(hits, support, out=np.zeros(k), where=support > 0)
    np.testing.assert_allclose([c["recall"] for c in evaluation["per_class"]], recall)
    (tmp_path / "config.json").write_text(json.dumps({"settings": {}, "dataset": {}}))
    (tmp_path / "metrics.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc\n")
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert f"not built for {k} classes" in page and page.count("<td>") < 20 * k


def test_small_models_keep_their_confusion_matrix(tmp_path, capsys):
    from softmaxreg.metrics import evaluation_summary

    rng = np.random.default_rng(5)
    y, logits = rng.integers(0, 5, 100), rng.normal(size=(100, 5))
    summary = evaluation_summary(y, logits, list("abcde"))
    confusion = np.zeros((5, 5), int)
    for t, p in zip(y, logits.argmax(axis=1)):
        confusion[t, p] += 1
    assert summary["confusion_matrix"] == confusion.tolist()
