"""The softmax family and cross-entropy against closed forms and float64 ground truth."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from softmaxreg import InvalidArgumentError, cross_entropy, log_softmax, logsumexp, softmax

finite_logits = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 8)),
                       elements=st.floats(-50, 50, allow_nan=False, allow_infinity=False))


@given(finite_logits)
def test_softmax_rows_sum_to_one_and_are_probabilities(z):
    p = softmax(z)
    assert p.shape == z.shape
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


@given(finite_logits, st.floats(-1e3, 1e3, allow_nan=False))
def test_softmax_is_shift_invariant(z, c):
    np.testing.assert_allclose(softmax(z + c), softmax(z), rtol=1e-9, atol=1e-12)


@given(finite_logits)
def test_log_softmax_is_log_of_softmax_and_logsumexp_matches_math(z):
    np.testing.assert_allclose(log_softmax(z), np.log(softmax(z)), rtol=1e-9, atol=1e-9)
    expected = [math.log(math.fsum(math.exp(v) for v in row)) for row in z]
    np.testing.assert_allclose(logsumexp(z, axis=1), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_stays_finite_for_huge_logits(dtype):
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -999.0], [1000.0, 1000.0, 1000.0]], dtype=dtype)
    p = softmax(z)
    assert p.dtype == dtype and np.isfinite(p).all()
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0], atol=1e-30)
    e = math.exp(-1)
    np.testing.assert_allclose(p[1], [e / (2 * e + 1), e / (2 * e + 1), 1 / (2 * e + 1)], rtol=1e-6)
    np.testing.assert_allclose(p[2], [1 / 3] * 3, rtol=1e-6)
    assert np.isfinite(log_softmax(z)).all()
    np.testing.assert_allclose(logsumexp(z, axis=1), [1000.0, -999.0 + math.log(1 + 2 * e), 1000.0 + math.log(3)],
                               rtol=1e-6)


def test_all_equal_rows_give_the_uniform_distribution():
    for value in (-1e300, -7.5, 0.0, 3.0, 1e300):
        np.testing.assert_array_equal(softmax(np.full((2, 4), value)), np.full((2, 4), 0.25))


def test_negative_infinity_entries_get_probability_zero():
    z = np.array([[0.0, -np.inf, 0.0]])
    np.testing.assert_array_equal(softmax(z), [[0.5, 0.0, 0.5]])
    np.testing.assert_allclose(log_softmax(z), [[-math.log(2), -np.inf, -math.log(2)]])


@pytest.mark.parametrize("bad, message", [
    ([[0.0, np.nan]], "NaN"),
    ([[0.0, np.inf]], r"\+inf"),
    ([[-np.inf, -np.inf], [0.0, 1.0]], "all -inf"),
])
def test_invalid_logits_are_an_input_error(bad, message):
    for f in (softmax, log_softmax, logsumexp):
        with pytest.raises(InvalidArgumentError, match=message):
            f(np.array(bad))


def test_cross_entropy_hand_checked_cases():
    # two equal logits: p = 1/2 -> log 2
    assert cross_entropy(np.array([[0.0, 0.0]]), np.array([1])) == pytest.approx(math.log(2))
    # logits (1, 2, 3), class 2: log(e + e^2 + e^3) - 3
    z = np.array([[1.0, 2.0, 3.0]])
    assert cross_entropy(z, np.array([2])) == pytest.approx(math.log(math.e + math.e**2 + math.e**3) - 3)
    # the lesson's example: y_hat = [[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]], y = [0, 2]
    y_hat = np.array([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])
    losses = cross_entropy(np.log(y_hat), np.array([0, 2]), reduction="none")
    np.testing.assert_allclose(losses, [-math.log(0.1), -math.log(0.5)])
    assert cross_entropy(np.log(y_hat), np.array([0, 2]), reduction="sum") == pytest.approx(
        -math.log(0.1) - math.log(0.5))


@given(finite_logits, st.data())
def test_cross_entropy_equals_minus_log_p_of_the_true_class(z, data):
    y = np.array(data.draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=z.shape[0], max_size=z.shape[0])))
    p = softmax(z)
    expected = -np.log(p[np.arange(len(y)), y])
    np.testing.assert_allclose(cross_entropy(z, y, reduction="none"), expected, rtol=1e-9, atol=1e-9)
    # one-hot soft targets give the same loss: definition and indexing agree
    onehot = np.eye(z.shape[1])[y]
    np.testing.assert_allclose(cross_entropy(z, onehot, reduction="none"), expected, rtol=1e-9, atol=1e-9)


def test_cross_entropy_of_huge_logits_is_exact():
    z = np.array([[1000.0, 0.0], [0.0, 1000.0]], dtype=np.float32)
    np.testing.assert_allclose(cross_entropy(z, np.array([1, 1]), reduction="none"), [1000.0, 0.0], atol=1e-4)


def test_cross_entropy_is_infinite_for_an_impossible_class_and_zero_weight_terms_vanish():
    z = np.array([[0.0, -np.inf]])
    assert cross_entropy(z, np.array([1])) == np.inf
    # soft target puts no weight on the impossible class: 0 * log 0 = 0, not NaN
    assert cross_entropy(z, np.array([[1.0, 0.0]])) == 0.0


def test_soft_targets_and_label_smoothing_follow_their_definition():
    z = np.array([[2.0, -1.0, 0.5]])
    t = np.array([[0.2, 0.3, 0.5]])
    logp = np.log(softmax(z))
    assert cross_entropy(z, t) == pytest.approx(-(t * logp).sum())
    eps = 0.1
    smoothed = (1 - eps) * np.array([[0.0, 1.0, 0.0]]) + eps / 3
    assert cross_entropy(z, np.array([1]), label_smoothing=eps) == pytest.approx(-(smoothed * logp).sum())


@pytest.mark.parametrize("target, message", [
    (np.array([0, 3]), r"\[0, 2\]"),
    (np.array([0.0, 1.0]), "integers"),
    (np.array([0]), "expected 2 class indices"),
    (np.ones((2, 2)), "shape"),
    (-np.ones((2, 3)), "non-negative"),
])
def test_cross_entropy_rejects_bad_targets(target, message):
    with pytest.raises(InvalidArgumentError, match=message):
        cross_entropy(np.zeros((2, 3)), target)
