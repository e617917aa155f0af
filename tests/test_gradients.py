"""Every gradient against central finite differences in float64, over random shapes."""

import numpy as np
import pytest

from softmaxreg import SoftmaxRegression, cross_entropy, cross_entropy_grad
from softmaxreg.engines.gemm import CANDIDATES
from softmaxreg.objective import SoftmaxCrossEntropy

SHAPES = [(1, 2), (3, 5), (7, 3), (16, 10), (5, 40)]


def numeric_grad(f, x, h=1e-5):
    """Central differences of the scalar function f at x, one coordinate at a time."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + h
        up = f()
        x[i] = saved - h
        down = f()
        x[i] = saved
        g[i] = (up - down) / (2 * h)
    return g


def random_targets(rng, n, k, kind):
    if kind == "indices":
        return rng.integers(0, k, size=n)
    t = rng.random((n, k))
    return t / t.sum(axis=1, keepdims=True) if kind == "soft" else t * 3    # "weights": rows not summing to 1


@pytest.mark.parametrize("n, k", SHAPES)
@pytest.mark.parametrize("kind", ["indices", "soft", "weights"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_grad_matches_finite_differences(n, k, kind, reduction, label_smoothing):
    rng = np.random.default_rng([n, k])
    z = rng.normal(0, 3, size=(n, k))
    t = random_targets(rng, n, k, kind)
    analytic = cross_entropy_grad(z, t, reduction=reduction, label_smoothing=label_smoothing)
    numeric = numeric_grad(lambda: cross_entropy(z, t, reduction=reduction, label_smoothing=label_smoothing), z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("n, d, k", [(1, 1, 2), (4, 6, 3), (9, 12, 10), (20, 5, 7)])
@pytest.mark.parametrize("input_scale", [1.0, 1 / 255])
def test_model_loss_and_grad_match_finite_differences(n, d, k, input_scale):
    rng = np.random.default_rng([n, d, k])
    model = SoftmaxRegression(d, k, sigma=0.5, seed=rng, dtype=np.float64, input_scale=input_scale)
    model.b[:] = rng.normal(size=k)
    X = rng.normal(0, 1 / input_scale, size=(n, d))
    y = rng.integers(0, k, size=n)
    loss, dW, db = SoftmaxCrossEntropy(model).loss_and_grad(X, y)
    assert loss == pytest.approx(model.evaluate(X, y)[0], rel=1e-12)
    np.testing.assert_allclose(dW, numeric_grad(lambda: model.evaluate(X, y)[0], model.W), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(db, numeric_grad(lambda: model.evaluate(X, y)[0], model.b), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n", [32, 2 * max(CANDIDATES) + 7])   # within one block; several blocks, the last partial
@pytest.mark.parametrize("standardize", [False, True])
def test_model_gradient_is_the_lessons_closed_form(n, standardize):
    """dW = X'^T (softmax(Z) - Y) / n and db = sum_i (softmax(Z) - Y)_i / n for the inputs the
    model sees, X' = s X (or (s X - mu) / sigma standardized), written out plainly."""
    rng = np.random.default_rng(7)
    X = rng.integers(0, 256, size=(n, 20)).astype(np.float64)
    y = rng.integers(0, 4, size=n)
    model = SoftmaxRegression(20, 4, sigma=0.1, seed=1, dtype=np.float64, input_scale=1 / 255)
    seen = X / 255
    if standardize:
        model.set_standardization(rng.random(20), 0.1 + rng.random(20))
        seen = (seen - model.mean) / model.std
    Z = seen @ model.W + model.b
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    E = P - np.eye(4)[y]
    _, dW, db = SoftmaxCrossEntropy(model).loss_and_grad(X, y)
    np.testing.assert_allclose(dW, seen.T @ E / n, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(db, E.sum(axis=0) / n, rtol=1e-12, atol=1e-15)
