"""The dense step at many classes (issue #21): the row-major fused kernel and the wide chunk against
the unfused formulas and the generic path, and one SGD epoch against a plain NumPy loop."""

import numpy as np
import pytest

from softmaxreg import SoftmaxRegression, cross_entropy, cross_entropy_grad, fit, generic
from softmaxreg.engines import gemm
from softmaxreg.functional import softmax_cross_entropy_, softmax_cross_entropy_rows_
from softmaxreg.model import StepBuffers
from softmaxreg.objective import SoftmaxCrossEntropy
from softmaxreg.seeding import shuffle_generator

WIDE_K = [gemm.WIDE, gemm.WIDE + 37, 300]


@pytest.mark.parametrize("k", [2, 10] + WIDE_K)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_major_kernel_equals_the_unfused_formulas(k, dtype):
    """z <- scale (softmax(Z) - onehot(y)), the summed loss and the argmax count, against
    functional.cross_entropy / cross_entropy_grad (unfused, checked against finite differences in
    test_gradients.py) and the class-major kernel; rows with tied maxima count as the first index
    (np.argmax's rule, the class-major kernel's too)."""
    rng = np.random.default_rng(k)
    n, scale = 33, 0.37
    Z = rng.normal(0, 4, size=(n, k)).astype(dtype)
    Z[:3] = 1.5                                        # ties everywhere: argmax is class 0
    y = rng.integers(0, k, size=n)
    y[0] = 0
    z = Z.copy()
    loss, correct = softmax_cross_entropy_rows_(z, y, scale=scale)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss == pytest.approx(float(cross_entropy(Z.astype(np.float64), y, reduction="sum")), rel=tol)
    assert correct == int(np.count_nonzero(Z.argmax(axis=1) == y))
    np.testing.assert_allclose(z, scale * cross_entropy_grad(Z.astype(np.float64), y, reduction="sum"),
                               rtol=10 * tol, atol=10 * tol * scale)
    zt = np.ascontiguousarray(Z.T)
    assert (loss, correct) == pytest.approx(softmax_cross_entropy_(zt, y), rel=tol)
    np.testing.assert_allclose(z, scale * zt.T, rtol=10 * tol, atol=10 * tol * scale)


@pytest.mark.parametrize("k", WIDE_K)
@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("input_scale", [1.0, 1 / 255])
def test_the_wide_chunk_equals_the_generic_formulas(k, standardize, input_scale):
    """objective.chunk with scratch buffers (the fused NumPy path, row-major from gemm.WIDE classes)
    against generic.loss_and_grad_sums (the array-API formulas, written separately) in float64."""
    rng = np.random.default_rng([k, standardize])
    n, d = 70, 9
    model = SoftmaxRegression(d, k, sigma=0.3, seed=1, dtype=np.float64, input_scale=input_scale)
    model.b[:] = rng.normal(size=k)
    if standardize:
        model.set_standardization(rng.random(d), 0.2 + rng.random(d))
    X = rng.integers(0, 256, size=(n, d)).astype(np.float64)
    y = rng.integers(0, k, size=n)
    objective = SoftmaxCrossEntropy(model)
    loss, correct, dW, db = objective.chunk(X, y, None, 17.0, StepBuffers(n, model))
    expected = generic.loss_and_grad_sums(np, model, X, y, None, 17.0)
    assert loss == pytest.approx(float(expected[0]), rel=1e-12)
    assert correct == int(expected[1])
    np.testing.assert_allclose(dW, expected[2], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(db, expected[3], rtol=1e-10, atol=1e-14)


def test_wide_products_are_one_call_whatever_the_blocking(monkeypatch):
    """Below gemm.WIDE output columns the products follow the process's row block; from WIDE on
    they are one call each (and so the plain product's bits)."""
    monkeypatch.setattr(gemm, "_decision", None)
    monkeypatch.setenv(gemm.ROWS_ENV, "64")
    assert gemm.block_rows_for(gemm.WIDE - 1) == 64 and gemm.block_rows_for(gemm.WIDE) == 0
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 30)).astype(np.float32)
    W = rng.normal(size=(30, gemm.WIDE)).astype(np.float32)
    G = rng.normal(size=(200, gemm.WIDE)).astype(np.float32)
    z = gemm.matmul_rows(x, W, np.empty((200, gemm.WIDE), np.float32))
    dW = gemm.matmul_t_rows(x, G, np.empty((30, gemm.WIDE), np.float32), np.empty((30, gemm.WIDE), np.float32))
    assert z.tobytes() == np.matmul(x, W).tobytes()
    assert dW.tobytes() == np.matmul(x.T, G).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_sgd_epoch_at_many_classes_is_the_plain_loop(dtype):
    """fit's epoch at k = 150 (float rows used as gathered, the row-major kernel, one product)
    equals W <- W - lr X_B^T (P - Y) / B, b <- b - lr sum (P - Y) / B over fit's permutation,
    written as a plain loop in float64."""
    rng = np.random.default_rng(11)
    n, d, k, batch, lr = 300, 12, 150, 64, 0.5
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, k, size=n)
    model = SoftmaxRegression(d, k, sigma=0.1, seed=2, dtype=dtype)
    W, b = model.W.astype(np.float64), model.b.astype(np.float64)
    fit(model, X, y, epochs=1, batch_size=batch, lr=lr, seed=5)
    order = shuffle_generator(5).permutation(n)
    for start in range(0, n, batch):
        rows = order[start:start + batch]
        Z = X[rows].astype(np.float64) @ W + b
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        P[np.arange(rows.size), y[rows]] -= 1
        W -= lr * X[rows].astype(np.float64).T @ P / rows.size
        b -= lr * P.sum(axis=0) / rows.size
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(model.W, W, rtol=tol, atol=tol)
    np.testing.assert_allclose(model.b, b, rtol=tol, atol=tol)
