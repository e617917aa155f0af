"""SoftmaxRegression: initialisation, predictions, input checks."""

import numpy as np
import pytest

from softmaxreg import InvalidArgumentError, SoftmaxRegression
from softmaxreg.objective import SoftmaxCrossEntropy


def test_initialisation_follows_the_lesson():
    model = SoftmaxRegression(784, 10, sigma=0.01, seed=3)
    assert model.W.shape == (784, 10) and model.W.dtype == np.float32
    assert model.b.shape == (10,) and not model.b.any()
    assert abs(model.W.mean()) < 0.01 * 5 / np.sqrt(7840)
    assert model.W.std() == pytest.approx(0.01, rel=0.05)


def test_same_seed_same_bits_and_different_seed_different_weights():
    a, b, c = (SoftmaxRegression(50, 4, seed=s) for s in (1, 1, 2))
    assert a.W.tobytes() == b.W.tobytes()
    assert a.W.tobytes() != c.W.tobytes()
    init_stream = np.random.default_rng(np.random.SeedSequence(1).spawn(2)[0])     # the seed rule (seeding.py)
    np.testing.assert_array_equal(a.W, init_stream.normal(0, 0.01, (50, 4)).astype(np.float32))


def test_predictions_are_softmax_of_the_affine_map():
    rng = np.random.default_rng(0)
    model = SoftmaxRegression(12, 5, sigma=1.0, seed=rng, dtype=np.float64, input_scale=0.5)
    model.b[:] = rng.normal(size=5)
    X = rng.normal(size=(30, 3, 4))
    Z = 0.5 * X.reshape(30, 12) @ model.W + model.b
    np.testing.assert_allclose(model.logits(X), Z, rtol=1e-12)
    P = model.predict_proba(X)
    np.testing.assert_allclose(P, np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), Z.argmax(axis=1))


def test_uint8_inputs_are_converted_in_chunks_without_changing_results():
    rng = np.random.default_rng(1)
    model = SoftmaxRegression(20, 3, sigma=0.1, seed=0, input_scale=1 / 255)
    X = rng.integers(0, 256, size=(20000, 20), dtype=np.uint8)              # > one chunk
    expected = (X.astype(np.float64) / 255) @ model.W.astype(np.float64) + model.b
    np.testing.assert_allclose(model.logits(X), expected, rtol=1e-5, atol=1e-6)
    loss, acc = model.evaluate(X, expected.argmax(axis=1))
    assert acc == 1.0 and loss > 0


@pytest.mark.parametrize("X, message", [
    (np.zeros((4, 7)), r"expected shape \(n, 6\)"),
    (np.zeros(6), r"expected shape \(n, 6\)"),
    (np.array([[0, 1, 2, np.nan, 4, 5]], dtype=float), "NaN or infinite"),
    (np.array([["a"] * 6]), "numeric"),
])
def test_bad_inputs_are_rejected_with_a_clear_error(X, message):
    model = SoftmaxRegression(6, 3, input_shape=(2, 3))
    with pytest.raises(InvalidArgumentError, match=message):
        model.predict(X)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_inputs=0, num_outputs=3), "num_inputs >= 1"),
    (dict(num_inputs=3, num_outputs=1), "num_outputs >= 2"),
    (dict(num_inputs=3, num_outputs=2, sigma=-1.0), "sigma"),
    (dict(num_inputs=3, num_outputs=2, dtype=np.int32), "dtype"),
    (dict(num_inputs=3, num_outputs=2, class_names=["a"]), "class_names"),
    (dict(num_inputs=3, num_outputs=2, input_shape=(2, 2)), "input_shape"),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        SoftmaxRegression(**kwargs)


def test_labels_must_match_the_classes():
    model = SoftmaxRegression(4, 3)
    with pytest.raises(InvalidArgumentError, match=r"\[0, 2\], found 0..3"):
        SoftmaxCrossEntropy(model).loss_and_grad(np.zeros((2, 4)), np.array([0, 3]))
    with pytest.raises(InvalidArgumentError, match="integer class indices"):
        model.evaluate(np.zeros((2, 4)), np.array([0.0, 1.0]))


def test_repr_shows_shape_classes_dtype_and_preprocessing():
    names = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
    model = SoftmaxRegression(784, 10, input_scale=1 / 255, input_shape=(28, 28), class_names=names)
    assert repr(model) == ("SoftmaxRegression(784 inputs (28x28) -> 10 classes [t-shirt/top, trouser, pullover, dress, "
                           "coat, sandal, shirt, sneaker, bag, ankle boot], float32, input_scale 1/255, not standardized)")
    big = SoftmaxRegression(5, 100, dtype=np.float64, input_scale=0.3)
    big.set_standardization(np.zeros(5), np.ones(5))
    assert repr(big) == ("SoftmaxRegression(5 inputs -> 100 classes [0, 1, 2, 3, 4, ..., 98, 99], float64, "
                         "input_scale 0.3, standardized)")
