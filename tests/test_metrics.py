"""Metrics against plain loops, scikit-learn, and hand-worked examples."""

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from softmaxreg.metrics import (calibration_bins, confusion_matrix, evaluation_summary, expected_calibration_error,
                                per_class_report, risk_coverage, threshold_for_accuracy, top_k_accuracy)


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    k, n = 5, 400
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y] * rng.random((n, 1))
    return y, logits


def test_confusion_matrix_matches_a_plain_loop(predictions):
    y, logits = predictions
    pred = logits.argmax(axis=1)
    expected = np.zeros((5, 5), dtype=int)
    for t, p in zip(y, pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(y, pred, 5), expected)


def test_per_class_report_matches_scikit_learn(predictions):
    y, logits = predictions
    pred = logits.argmax(axis=1)
    pred[pred == 3] = 2                      # class 3 never predicted: precision 0/0 -> 0
    ours = per_class_report(confusion_matrix(y, pred, 5))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(5), zero_division=0)
    for key, theirs in zip(("precision", "recall", "f1", "support"), (p, r, f, s)):
        np.testing.assert_allclose(ours[key], theirs)


def test_top_k_accuracy_matches_a_loop(predictions):
    y, logits = predictions
    for k in (1, 2, 5):
        hits = [t in np.argsort(-row)[:k] for t, row in zip(y, logits)]
        assert top_k_accuracy(y, logits, k) == pytest.approx(np.mean(hits))
    assert top_k_accuracy(y, logits, 5) == 1.0


def test_ece_on_a_hand_worked_example():
    # 2 bins: (0, 0.5] holds 0.2 (wrong), 0.4 (right): confidence 0.3, accuracy 0.5 -> gap 0.2
    #         (0.5, 1] holds 0.6 (right), 0.8 (right), 1.0 (wrong): confidence 0.8, accuracy 2/3 -> gap 2/15
    conf = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    correct = np.array([False, True, True, True, False])
    expected = 2 / 5 * 0.2 + 3 / 5 * (0.8 - 2 / 3)
    assert expected_calibration_error(conf, correct, n_bins=2) == pytest.approx(expected)
    bins = calibration_bins(conf, correct, n_bins=2)
    np.testing.assert_array_equal(bins["count"], [2, 3])
    np.testing.assert_allclose(bins["confidence"], [0.3, 0.8])


def test_ece_is_zero_for_perfect_calibration():
    conf = np.repeat([0.25, 0.75], 4)
    correct = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    assert expected_calibration_error(conf, correct, n_bins=4) == pytest.approx(0.0)


def test_risk_coverage_end_points_and_monotone_coverage(predictions):
    y, logits = predictions
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    conf, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    curve = risk_coverage(conf, correct)
    assert curve["threshold"][-1] == 0 and curve["coverage"][-1] == 1.0
    assert curve["accuracy"][-1] == pytest.approx(correct.mean())
    assert np.all(np.diff(curve["coverage"]) >= 0) and np.all(np.diff(curve["threshold"]) <= 0)
    # every point agrees with a direct count at its threshold
    for t, c, a in list(zip(curve["threshold"], curve["coverage"], curve["accuracy"]))[::37]:
        answered = conf >= t
        assert c == pytest.approx(answered.mean()) and a == pytest.approx(correct[answered].mean())
    found = threshold_for_accuracy(curve, 0.9)
    assert found[2] >= 0.9
    assert not any(cv > found[1] and ac >= 0.9 for cv, ac in zip(curve["coverage"], curve["accuracy"]))


def test_risk_coverage_keeps_ties_together():
    curve = risk_coverage(np.array([0.9, 0.9, 0.5]), np.array([True, False, True]))
    np.testing.assert_allclose(curve["coverage"], [2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(curve["accuracy"], [0.5, 2 / 3, 2 / 3])


def test_evaluation_summary_is_consistent(predictions):
    y, logits = predictions
    s = evaluation_summary(y, logits, list("abcde"), n_bins=10)
    assert s["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    assert sum(map(sum, s["confusion_matrix"])) == len(y) == s["examples"]
    assert [c["class"] for c in s["per_class"]] == list("abcde")
    assert s["cross_entropy"] > 0 and 0 <= s["expected_calibration_error"] <= 1
    assert sum(b["count"] for b in s["calibration_bins"]) == len(y)
