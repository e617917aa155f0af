"""L-BFGS and the full-batch driver, against scikit-learn's exact optimum, closed forms and
finite differences; determinism and exact resume."""

import math
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from softmaxreg import LBFGS, Callback, ConvergenceWarning, SoftmaxRegression, fit
from softmaxreg.full_batch import FullBatch
from softmaxreg.objective import SoftmaxCrossEntropy
from softmaxreg.preconditioner import start_curvature
from .conftest import figures


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def objective_value(model, weight_decay, X, y, sample_weight=None):
    """F = sum_i w_i l_i / sum_i w_i + (wd / 2) |W|^2, from the plain formula."""
    Z = X @ model.W + model.b
    Z = Z - Z.max(axis=1, keepdims=True)
    losses = np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(len(y)), y]
    w = np.ones(len(y)) if sample_weight is None else sample_weight
    return float(w @ losses / w.sum() + 0.5 * weight_decay * np.sum(model.W ** 2))


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_lbfgs_reaches_scikit_learns_exact_l2_optimum(digits, C):
    X, y = digits
    weight_decay = 1 / (C * len(y))
    reference = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)
    theirs = SoftmaxRegression(64, 10, dtype=np.float64)
    theirs.W[...], theirs.b[...] = reference.coef_.T, reference.intercept_
    ours = SoftmaxRegression(64, 10, dtype=np.float64, seed=0)
    history = fit(ours, X, y, solver="lbfgs", weight_decay=weight_decay, tol=1e-8, max_iter=5000)
    assert history.converged
    f_ours, f_theirs = objective_value(ours, weight_decay, X, y), objective_value(theirs, weight_decay, X, y)
    assert f_ours == pytest.approx(f_theirs, rel=1e-6)
    # the intercept is only defined up to a common shift (softmax is shift-invariant): compare centred
    b_ours, b_theirs = ours.b - ours.b.mean(), theirs.b - theirs.b.mean()
    scale = np.abs(theirs.W).max()
    assert np.abs(ours.W - theirs.W).max() <= 1e-3 * scale
    assert np.abs(b_ours - b_theirs).max() <= 1e-3 * max(np.abs(b_theirs).max(), scale)


def test_lbfgs_minimises_rosenbrock_with_strong_wolfe_steps():
    """The optimizer alone on a classic non-convex test function, minimum at (1, 1); every accepted
    step meets both strong Wolfe conditions."""
    def fun(x):
        a, b = x
        f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        g = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
        return f, g, None

    opt = LBFGS(memory=5)
    opt.start(np.array([-1.2, 1.0]), fun)
    for _ in range(200):
        if opt.grad_max() <= 1e-10:
            break
        x, f, g = opt.x.copy(), opt.f, opt.g.copy()
        d = opt.direction()
        assert opt.step(fun)
        step = opt.x - x
        if g @ d < 0 and np.allclose(step / np.linalg.norm(step), d / np.linalg.norm(d)):
            assert opt.f <= f + 1e-4 * (g @ step)                       # sufficient decrease
            assert abs(opt.g @ step) <= 0.9 * abs(g @ step) + 1e-15     # strong curvature
    np.testing.assert_allclose(opt.x, [1.0, 1.0], rtol=1e-7)


@pytest.mark.parametrize("standardize", [False, True])
def test_the_full_batch_objective_matches_finite_differences(standardize):
    rng = np.random.default_rng(3)
    n, d, k = 40, 6, 4
    model = SoftmaxRegression(d, k, sigma=0.3, seed=1, dtype=np.float64, input_scale=1 / 255)
    if standardize:
        model.set_standardization(rng.random(d), 0.5 + rng.random(d))
    X = rng.integers(0, 256, size=(n, d)).astype(np.uint8)
    y = rng.integers(0, k, size=n)
    w = rng.uniform(0.2, 3.0, size=n)
    objective = SoftmaxCrossEntropy(model, weight_decay=0.05, label_smoothing=0.1)
    fun = FullBatch(objective, X, y, w, rows=7)                    # six chunks, the last one partial
    x0 = np.concatenate([model.W.ravel(), rng.normal(size=k)])
    f0, g0, _ = fun(x0)
    numeric = np.empty_like(x0)
    for i in range(x0.size):
        e = np.zeros_like(x0)
        e[i] = 1e-6
        numeric[i] = (fun(x0 + e)[0] - fun(x0 - e)[0]) / 2e-6
    np.testing.assert_allclose(g0, numeric, rtol=1e-6, atol=1e-9)
    # and its value is the weighted mean of the smoothed cross-entropy plus the penalty, written out
    W, b = x0[:d * k].reshape(d, k), x0[d * k:]
    seen = X / 255 if not standardize else (X / 255 - model.mean) / model.std
    Z = seen @ W + b
    logp = Z - Z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    T = 0.9 * np.eye(k)[y] + 0.1 / k
    expected = w @ -(T * logp).sum(axis=1) / w.sum() + 0.025 * np.sum(W ** 2)
    assert f0 == pytest.approx(expected, rel=1e-12)


def test_a_weight_of_two_equals_a_repeated_row(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    w = np.ones(len(y))
    w[::3] = 2.0
    weighted = SoftmaxRegression(64, 10, dtype=np.float64, seed=0)
    fit(weighted, X, y, solver="lbfgs", weight_decay=1e-3, tol=1e-10, sample_weight=w, max_iter=2000)
    repeated = SoftmaxRegression(64, 10, dtype=np.float64, seed=0)
    fit(repeated, np.concatenate([X, X[::3]]), np.concatenate([y, y[::3]]), solver="lbfgs", weight_decay=1e-3,
        tol=1e-10, max_iter=2000)
    np.testing.assert_allclose(weighted.W, repeated.W, rtol=1e-6, atol=1e-6 * np.abs(repeated.W).max())


def test_lbfgs_is_deterministic_and_records_one_row_per_iteration(digits):
    X, y = digits
    runs = []
    for _ in range(2):
        model = SoftmaxRegression(64, 10, seed=4)
        with pytest.warns(ConvergenceWarning):
            history = fit(model, X, y, solver="lbfgs", max_iter=15, tol=0.0, validation_data=(X[:100], y[:100]))
        runs.append((model.W.tobytes(), model.b.tobytes(), figures(history)))
    assert runs[0] == runs[1]
    assert history.column("epoch") == list(range(1, len(history) + 1))
    losses = history.column("train_loss")
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))    # no penalty: F is the loss
    assert history[-1].val_acc == model.evaluate(X[:100], y[:100])[1]


def test_lbfgs_resumes_bit_identically(digits):
    X, y = digits
    options = dict(solver="lbfgs", weight_decay=1e-3, max_iter=25, tol=0.0)
    full = SoftmaxRegression(64, 10, seed=2)
    with pytest.warns(ConvergenceWarning):
        full_history = fit(full, X, y, **options)

    class Interrupt(Callback):
        def on_train_begin(self, run):
            self.run = run

        def on_epoch_end(self, record, history):
            if record.epoch == 9:
                self.saved = (self.run.state(), self.run.model.W.copy(), self.run.model.b.copy())
                raise KeyboardInterrupt

    first, interrupt = SoftmaxRegression(64, 10, seed=2), Interrupt()
    with pytest.raises(KeyboardInterrupt):
        fit(first, X, y, callbacks=[interrupt], **options)
    state, W, b = interrupt.saved
    resumed = SoftmaxRegression(64, 10, sigma=0.0)
    resumed.W[...], resumed.b[...] = W, b
    with pytest.warns(ConvergenceWarning):
        history = fit(resumed, X, y, resume=state, **options)
    assert resumed.W.tobytes() == full.W.tobytes() and resumed.b.tobytes() == full.b.tobytes()
    assert figures(history) == figures(full_history)


def test_separable_data_without_a_penalty_stops_at_max_iter_with_a_warning():
    """The unpenalised optimum is at infinity: L-BFGS must stop at max_iter, say so, and keep
    finite weights (the loss underflows gracefully rather than overflowing)."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 0.5, size=(50, 2)), rng.normal(3, 0.5, size=(50, 2))])
    y = np.repeat([0, 1], 50)
    model = SoftmaxRegression(2, 2, dtype=np.float64, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fit(model, X, y, solver="lbfgs", weight_decay=0.0, tol=0.0, max_iter=60)
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert "max|gradient|" in str(caught[0].message)
    assert not history.converged and np.isfinite(model.W).all() and np.isfinite(model.b).all()
    assert history[-1].train_acc == 1.0 and math.isfinite(history[-1].train_loss)


@pytest.mark.parametrize("options, message", [
    (dict(momentum=0.9), "momentum"), (dict(nesterov=True), "nesterov"), (dict(schedule="cosine"), "schedule"),
    (dict(early_stopping=True), "early_stopping"), (dict(max_iter=0), "max_iter"),
])
def test_lbfgs_refuses_sgd_options_and_bad_limits(options, message):
    from softmaxreg import InvalidArgumentError
    with pytest.raises(InvalidArgumentError, match=message):
        fit(SoftmaxRegression(4, 2), np.zeros((3, 4)), np.zeros(3, dtype=int), solver="lbfgs", **options)


def test_max_iter_is_refused_for_sgd():
    from softmaxreg import InvalidArgumentError
    with pytest.raises(InvalidArgumentError, match="max_iter"):
        fit(SoftmaxRegression(4, 2), np.zeros((3, 4)), np.zeros(3, dtype=int), max_iter=5)


def test_the_full_batch_sum_has_the_same_bits_for_any_thread_count(fashion):
    from threadpoolctl import threadpool_limits
    X, y = fashion.train_images[:3000].reshape(3000, -1), fashion.train_labels[:3000]
    model = SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
    objective = SoftmaxCrossEntropy(model, weight_decay=1e-3)
    x = np.concatenate([model.W.ravel(), model.b]).astype(np.float64)
    results = []
    for threads, blas in ((1, 1), (2, 2), (3, 2), (2, 1)):      # the pass's threads, BLAS's own outside it
        with threadpool_limits(blas, "blas"), FullBatch(objective, X, y, rows=256, threads=threads) as fun:
            f, g, extra = fun(x)
            H = fun.hessian_product(x, g)
        results.append((f, g.tobytes(), extra, H.tobytes()))
    assert all(result == results[0] for result in results)


@pytest.mark.parametrize("standardize", [False, True])
def test_the_first_preconditioner_is_the_inverse_hessian_at_uniform_predictions(standardize):
    """At W = 0, b = 0 every prediction is 1/k and the Hessian on directions whose entries sum to 0
    over the classes (the gradient's data term is one) is G / k (no penalty): the first P, from
    start_curvature(k) = 1/k, undoes it exactly, at k = 2 as at 1,000 classes' 1/k. Checked against
    the Hessian-vector product of the objective (generic.hessian_product_sums), not the formula."""
    rng = np.random.default_rng(7)
    n, d = 60, 5
    for k in (2, 7, 40):
        model = SoftmaxRegression(d, k, sigma=0.0, dtype=np.float64, input_scale=1 / 255)
        if standardize:
            model.set_standardization(rng.random(d), 0.5 + rng.random(d))
        X = rng.integers(0, 256, size=(n, d)).astype(np.uint8)
        objective = SoftmaxCrossEntropy(model, weight_decay=0.0)
        fun = FullBatch(objective, X, rng.integers(0, k, size=n), rng.uniform(0.5, 2.0, size=n), rows=16)
        v = rng.normal(size=(d + 1, k))
        v -= v.mean(axis=1, keepdims=True)                                  # rows sum to 0 over the classes
        x0 = np.zeros((d + 1) * k)
        Hv = fun.hessian_product(x0, v.ravel())
        np.testing.assert_allclose(fun.preconditioner()(Hv, None, None), v.ravel(), rtol=1e-7, atol=1e-9)
        assert start_curvature(k) == 1.0 / k


@pytest.mark.parametrize("standardize", [False, True])
def test_the_preconditioner_inverts_the_gram_matrix_of_the_inputs_the_model_sees(standardize):
    """Before the first step P = (G / k + lambda I)^-1 with G = sum_i w_i a_i a_i^T / sum_i w_i over
    a_i = (x'_i, 1), written out plainly; after a step the secant rule picks the scale c of G."""
    rng = np.random.default_rng(5)
    n, d, k = 50, 6, 3
    model = SoftmaxRegression(d, k, dtype=np.float64, input_scale=1 / 255)
    if standardize:
        model.set_standardization(rng.random(d), 0.5 + rng.random(d))
    X = rng.integers(0, 256, size=(n, d)).astype(np.uint8)
    w = rng.uniform(0.5, 2.0, size=n)
    objective = SoftmaxCrossEntropy(model, weight_decay=0.1)
    apply = FullBatch(objective, X, rng.integers(0, k, size=n), w, rows=16).preconditioner()
    seen = X / 255 if not standardize else (X / 255 - model.mean) / model.std
    A = np.hstack([seen, np.ones((n, 1))])
    G = (A * w[:, None]).T @ A / w.sum()
    q = rng.normal(size=(d + 1) * k)
    expected = np.linalg.solve(G / k + 0.1 * np.eye(d + 1), q.reshape(d + 1, k)).ravel()
    np.testing.assert_allclose(apply(q, None, None), expected, rtol=1e-8)
    s = rng.normal(size=q.size)
    y = 0.3 * (G @ s.reshape(d + 1, k)).ravel() + 0.1 * s                   # curvature 0.3 G + lambda I
    expected = np.linalg.solve(0.3 * G + 0.1 * np.eye(d + 1), q.reshape(d + 1, k)).ravel()
    np.testing.assert_allclose(apply(q, s, y), expected, rtol=1e-8)


@pytest.mark.parametrize("options", [dict(epochs=50), dict(lr=5.0), dict(batch_size=7), dict(patience=2)])
def test_minibatch_options_are_refused_not_ignored_by_lbfgs(options):
    from softmaxreg import InvalidArgumentError
    from softmaxreg.options import TrainConfig
    with pytest.raises(InvalidArgumentError, match=next(iter(options))):
        TrainConfig(solver="lbfgs", **options)


def test_a_resume_state_of_another_solver_is_refused(digits):
    from softmaxreg import InvalidArgumentError

    X, y = digits
    saved = []

    class Keep(Callback):
        def on_train_begin(self, run):
            self.run = run

        def on_epoch_end(self, record, history):
            saved.append(self.run.state())
    fit(SoftmaxRegression(64, 10), X, y, epochs=1, callbacks=[Keep()])
    with pytest.raises(InvalidArgumentError, match="'sgd'"):
        fit(SoftmaxRegression(64, 10), X, y, solver="lbfgs", resume=saved[0])


def test_worker_threads_keep_the_callers_numpy_error_state():
    """An overflowing point evaluated on two threads warns no more than on one (fit ignores overflow
    and catches a blow-up itself; numpy's error state is per thread)."""
    rng = np.random.default_rng(0)
    model = SoftmaxRegression(5, 3, dtype=np.float32)
    X, y = rng.normal(size=(64, 5)).astype(np.float32), rng.integers(0, 3, size=64)
    x = np.full(5 * 3 + 3, 3e38)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"), FullBatch(SoftmaxCrossEntropy(model), X, y, rows=8, threads=2) as fun:
            fun(x)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_the_solvers_own_arithmetic_runs_blas_on_one_thread_and_restores_it(digits, solver):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from softmaxreg import OPTIMIZERS

    def blas_threads():
        return {lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"}

    in_steps, between = set(), set()

    class Recording(OPTIMIZERS[solver]):
        def step(self, fun):
            in_steps.update(blas_threads())
            return super().step(fun)

    class Between(Callback):
        def on_epoch_end(self, record, history):      # validation and callbacks keep BLAS's threads
            between.update(blas_threads())

    X, y = digits
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        fit(SoftmaxRegression(64, 10, dtype=np.float64), X, y, solver=solver, max_iter=3, standardize=False,
            optimizer=Recording(), callbacks=[Between()])
        assert in_steps == {1} and between == {2}
        assert blas_threads() == {2}
