"""Evaluation at many classes: row blocks, top confusions and the sorted tables, against whole-matrix
computations, scikit-learn and scipy; a 65,536-class model evaluated in bounded memory."""

import json
from collections import Counter

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

import softmaxreg as sr
from softmaxreg.cli import main

from .conftest import traced_peak
from softmaxreg.errors import InvalidArgumentError
from softmaxreg.functional import softmax
from softmaxreg.metrics import (MAX_MATRIX_CLASSES, TABLE_ROWS, evaluation_summary, summary_of_blocks, top_k_accuracy,
                                worst_classes)


def _confusable(k, n, seed, dtype=np.float64, ties=False):
    """(y, logits): each class has a partner it is often mistaken for, so mistakes repeat (counts
    above 1, with ties); `ties`: integer logits 0..2, so many probabilities are exactly equal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    if ties:
        return y, rng.integers(0, 3, (n, k)).astype(dtype)
    partner = rng.permutation(k)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 3.0 * rng.random(n)
    logits[np.arange(n), partner[y]] += 3.0 * rng.random(n)
    return y, logits.astype(dtype)


def _plain_figures(y, logits, k, top_k=2, n_bins=15):
    """The headline figures from the whole matrix at once: a stable argsort for top-k, scipy's
    logsumexp for the cross-entropy, a loop over the bins for the ECE."""
    proba = softmax(logits, axis=1)
    pred, confidence = proba.argmax(axis=1), proba.max(axis=1).astype(np.float64)
    z = logits.astype(np.float64)
    ece = 0.0
    for b in range(n_bins):
        inside = (confidence > b / n_bins) & (confidence <= (b + 1) / n_bins) if b else confidence <= 1 / n_bins
        if inside.any():
            ece += inside.sum() / len(y) * abs((pred == y)[inside].mean() - confidence[inside].mean())
    top = np.argsort(-proba, axis=1, kind="stable")[:, :top_k]
    return {"accuracy": np.mean(pred == y), "cross_entropy": np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y]),
            f"top{top_k}_accuracy": np.mean((top == y[:, None]).any(axis=1)), "expected_calibration_error": ece}, pred


def _sorted_off_diagonal(y, pred, k, count=TABLE_ROWS):
    """scikit-learn's confusion matrix without its diagonal, its cells by count (ties: by index)."""
    c = confusion_matrix(y, pred, labels=range(k))
    np.fill_diagonal(c, 0)
    return sorted((-c[i, j], i, j) for i, j in zip(*np.nonzero(c)))[:count]


@pytest.mark.parametrize("k, n, dtype, ties", [(10, 400, np.float64, False), (300, 3000, np.float64, False),
                                               (300, 1000, np.float64, True), (300, 1000, np.float32, False)])
def test_the_block_summary_is_the_whole_matrix_summary(k, n, dtype, ties):
    y, logits = _confusable(k, n, seed=k + n, dtype=dtype, ties=ties)
    names = [f"c{i}" for i in range(k)]
    whole = evaluation_summary(y, logits, names, rows=n)                 # one block: the matrix at once
    plain, pred = _plain_figures(y, logits, k)
    for key, value in plain.items():
        assert whole[key] == pytest.approx(value, rel=1e-12 if dtype == np.float64 else 1e-6, abs=1e-12), key
    assert whole["accuracy"] == plain["accuracy"] and whole["top2_accuracy"] == plain["top2_accuracy"]
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(k), zero_division=0)
    for key, ref in zip(("precision", "recall", "f1", "support"), (p, r, f, s)):
        np.testing.assert_allclose([c[key] for c in whole["per_class"]], ref, rtol=1e-15)
    expected = _sorted_off_diagonal(y, pred, k)
    assert [(m["true"], m["predicted"], m["count"]) for m in whole["top_confusions"]] == \
        [(names[i], names[j], -c) for c, i, j in expected]
    assert len(expected) == TABLE_ROWS and expected[0][0] < -1              # repeated mistakes, more than 20 kinds
    assert (whole["confusion_matrix"] is None) == (k > MAX_MATRIX_CLASSES)
    for rows in (1, 7, 64, None):                                        # None: block_rows(k)
        assert evaluation_summary(y, logits, names, rows=rows) == whole, rows   # every figure, every bit


def test_top_k_accuracy_ranks_ties_as_a_stable_argsort():
    rng = np.random.default_rng(1)
    proba = rng.integers(0, 4, (500, 30)).astype(float)                   # many exact ties
    y = rng.integers(0, 30, 500)
    for k in (1, 2, 5, 29, 30):
        top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        assert top_k_accuracy(y, proba, k) == np.mean((top == y[:, None]).any(axis=1)), k


def test_blocks_must_cover_the_labels():
    with pytest.raises(InvalidArgumentError, match="evaluation: 3 rows of logits for 4 labels"):
        summary_of_blocks(np.zeros(4, int), [np.zeros((3, 5))], list("abcde"))


def test_worst_classes_by_f1_then_support_without_absent_classes():
    per_class = [{"class": c, "f1": f, "support": s} for c, f, s in
                 [("a", 0.5, 10), ("b", 0.0, 0), ("c", 0.2, 3), ("d", 0.2, 7), ("e", 0.9, 1), ("f", 0.2, 7)]]
    assert [c["class"] for c in worst_classes(per_class, 4)] == ["d", "f", "c", "a"]
    assert [c["class"] for c in worst_classes(per_class)] == ["d", "f", "c", "a", "e"]


def _write_run(folder, summary):
    (folder / "evaluation.json").write_text(json.dumps({"data": "d", "split": "test", **summary}))
    (folder / "config.json").write_text(json.dumps({"settings": {}, "dataset": {}}))
    (folder / "metrics.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc\n")


def test_the_report_shows_the_top_confusions_and_the_matrix_at_small_k(tmp_path, capsys):
    y, logits = _confusable(10, 400, seed=2)
    summary = evaluation_summary(y, logits, [f"c{i}" for i in range(10)])
    _write_run(tmp_path, summary)
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    first = summary["top_confusions"][0]
    assert "<h3>Top confusions</h3>" in page and "true \\ predicted" in page
    assert f"<tr><td>{first['true']}</td><td>{first['predicted']}</td><td>{first['count']}</td></tr>" in page
    del summary["top_confusions"]                                        # an evaluation.json from before them
    _write_run(tmp_path, summary)
    assert main(["report", str(tmp_path)]) == 0
    assert "not in this evaluation (evaluate again)" in (tmp_path / "report.html").read_text()


K, N, D = 65_536, 3000, 8


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    """A 65,536-class float32 model of 8 inputs and N rows near 60 prototypes: a prototype's rows are
    labelled its predicted class (right), one fixed other class (a repeated mistake), or at random."""
    root = tmp_path_factory.mktemp("huge")
    rng = np.random.default_rng(7)
    model = sr.SoftmaxRegression(D, K, sigma=1.0, seed=0, class_names=[str(i) for i in range(K)])
    proto = 2 * rng.normal(size=(60, D))
    which = rng.integers(0, 60, N)
    X = (proto[which] + 0.01 * rng.normal(size=(N, D))).astype(np.float32)
    right, other = model.predict(proto.astype(np.float32)), rng.integers(0, K, 60)
    y = np.choose(rng.integers(0, 3, N), [right[which], other[which], rng.integers(0, K, N)])
    np.savez(root / "many.npz", X_train=X, y_train=y)
    sr.save_model(model, root / "model.safetensors")
    return root, model, X, y


def _direct_figures(model, X, y, rows=128):
    """Predictions, mean cross-entropy and top-2 hits from the logits in float64, row block by row
    block (the whole (N, K) would be 1.5 GiB); the second class is the argmax once the first is set
    to -inf."""
    pred, losses, hits = [], [], []
    for s in range(0, len(y), rows):
        z, t = model.logits(X[s:s + rows]).astype(np.float64), y[s:s + rows]
        i = np.arange(len(t))
        first = z.argmax(axis=1)
        m = z[i, first]
        losses.append(m + np.log(np.exp(z - m[:, None]).sum(axis=1)) - z[i, t])
        z[i, first] = -np.inf
        pred.append(first)
        hits.append((first == t) | (z.argmax(axis=1) == t))
    return np.concatenate(pred), np.concatenate(losses).mean(), np.concatenate(hits).mean()


def test_a_65536_class_model_evaluates_in_bounded_memory(huge, capsys):
    pytest.importorskip("matplotlib.pyplot")             # imported before tracemalloc: not the evaluation's memory
    root, model, X, y = huge
    code, peak = traced_peak(lambda: main(["evaluate", str(root / "model.safetensors"),
                                           "--data", str(root / "many.npz")]))
    out = capsys.readouterr().out
    assert code == 0
    # One float64 copy of the (N, K) logits would be N K 8 bytes = 1.5 GiB, the old evaluation held
    # several; now one block of at most 2^20 logits at a time plus O(N + K) figures, the largest being
    # evaluation.json's 65,536 per-class entries while json encodes them (~85 MiB, measured ~100 in all).
    assert peak < N * K * 8 / 8, f"peak {peak / 2**20:.1f} MiB"
    evaluation = json.loads((root / "evaluation.json").read_text())
    pred, ce, top2 = _direct_figures(model, X, y)
    assert evaluation["accuracy"] == np.mean(pred == y) and 0.2 < evaluation["accuracy"] < 0.6
    assert evaluation["cross_entropy"] == pytest.approx(ce, rel=1e-5)
    assert evaluation["top2_accuracy"] == top2
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(K), zero_division=0)
    for key, ref in zip(("precision", "recall", "f1", "support"), (p, r, f, s)):
        np.testing.assert_allclose([c[key] for c in evaluation["per_class"]], ref, rtol=1e-15)
    mistakes = Counter((t, q) for t, q in zip(y.tolist(), pred.tolist()) if t != q)
    expected = sorted((-c, t, q) for (t, q), c in mistakes.items())[:TABLE_ROWS]
    assert [(int(m["true"]), int(m["predicted"]), m["count"]) for m in evaluation["top_confusions"]] == \
        [(t, q, -c) for c, t, q in expected]
    assert expected[0][0] < -10                                          # the repeated mistakes lead
    # the printed tables: the worst classes and the top confusions, not 65,536 lines
    assert evaluation["confusion_matrix"] is None and len(out.splitlines()) < 4 * TABLE_ROWS
    assert f"the {TABLE_ROWS} classes of lowest F1 of the {np.count_nonzero(s)} with examples" in out
    table = out.split("with examples")[1].split("top confusions")[0].splitlines()[2:2 + TABLE_ROWS]
    assert [line.split()[0] for line in table] == [c["class"] for c in worst_classes(evaluation["per_class"])]
    first = evaluation["top_confusions"][0]
    assert f"{first['true']}  {first['predicted']}  {first['count']}".split() in \
        [line.split() for line in out.split("top confusions")[1].splitlines()]


def test_logit_blocks_are_bounded_and_make_the_logits_dense_or_sparse():
    sparse = pytest.importorskip("scipy.sparse")
    from softmaxreg.experiments import logit_blocks
    from softmaxreg.metrics import LOGITS_PER_BLOCK

    k = 5000
    model = sr.SoftmaxRegression(6, k, sigma=1.0, seed=0)
    X = np.random.default_rng(3).normal(size=(700, 6)).astype(np.float32)
    X[X < 0.5] = 0
    for data in (X, sparse.csr_matrix(X)):
        blocks = list(logit_blocks(model, data))
        assert max(z.size for z in blocks) <= LOGITS_PER_BLOCK and len(blocks) == -(-700 // (LOGITS_PER_BLOCK // k))
        np.testing.assert_allclose(np.concatenate(blocks), model.logits(X), rtol=1e-6, atol=1e-6)
