"""Newton-CG (truncated Newton: CG on exact Hessian-vector products) and the objective's
Hessian-vector product: the product against central finite differences of `loss_and_grad`'s
gradient on every kind of array, the solver against scikit-learn's exact optimum and as an
estimator, on Dask and torch like in NumPy, and exact resume.

Where the contract is shared with L-BFGS (fits on Dask and torch, resume) both solvers run the same
test: the L-BFGS case is the control that proves the harness itself.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import softmaxreg as sr
from softmaxreg.engines.array_api import resolve, to_device, to_numpy
from softmaxreg.full_batch import full_batch
from softmaxreg.objective import SoftmaxCrossEntropy
from softmaxreg.sklearn import SoftmaxRegressionClassifier
from .conftest import figures

SOLVERS = ["lbfgs", "newton-cg"]


def _library(name):
    """(xp, device) of an installed array library on the CPU, else skip with the reason."""
    if name in ("numpy", "numpy-full-batch"):
        return np, "cpu"
    if name == "dask":
        pytest.importorskip("dask.array", reason="Dask arrays need pip install 'softmaxreg[dask]'")
        return None, None
    pytest.importorskip("array_api_compat", reason="the generic path needs array-api-compat")
    pytest.importorskip(name, reason=f"{name} is not installed")
    if name == "torch":
        import torch
        torch.set_num_threads(1)                         # 2 shared cores: OpenMP barriers cost more than the ops
    return resolve(name, "cpu")


def _as(library, a, chunks=(13, 20, 7, 20)):
    """`a` (NumPy, rows first) as an array of `library`; Dask: uneven row chunks (the last one partial)."""
    if a is None or library in ("numpy", "numpy-full-batch"):
        return a
    if library == "dask":
        import dask.array as da
        return da.from_array(a, chunks=(chunks, *a.shape[1:]))
    xp, device = _library(library)
    return to_device(a, xp, device)


# ---------------------------------------------------------------------------------------------
# 1. The Hessian-vector product against finite differences of the gradient

N, D, K = 60, 5, 4
CASES = {
    "labels": {},
    "sample_weight": {"sample_weight": True},
    "soft_targets": {"soft": True},
    "label_smoothing": {"label_smoothing": 0.2},
    "standardize": {"standardize": True},
    "weight_decay": {"weight_decay": 0.05},
    "input_scale": {"pixels": True},
    "everything": {"sample_weight": True, "soft": True, "label_smoothing": 0.1, "standardize": True,
                   "weight_decay": 0.03, "pixels": True},
}
STEP = 1e-5
RTOL = 1e-7
"""Central differences of the gradient along a unit V at step h err by (h^2 / 6) |D^3 F[V, V, .]|
plus rounding, ~eps |dF| / h; max |H V| is ~0.1 here. Measured against an exact product written out
plainly (w_i t_i (p_i * dz_i - p_i (p_i . dz_i)) / n with dz = x' VW + Vb, t_i the target's row sum),
over every case and library below: at most 3e-10 of max |H V| at h = 1e-5 (9e-10 at 1e-4, where
truncation shows; 2e-9 at 1e-6, where rounding does). RTOL 1e-7 leaves 300x room and still
catches a wrong term: dividing by the sum of the weights instead of n is off by 0.36, a missing
penalty, weight, row sum or standardization shift by 1e-2 or more."""


def _problem(case):
    """(model in NumPy at a point away from 0, X, y, sample_weight, objective options) for a case."""
    case = dict(CASES[case])
    rng = np.random.default_rng(7)
    pixels = case.pop("pixels", False)
    if pixels:                                                     # raw 0..255 pixels, input_scale 1/255
        X = rng.integers(0, 256, size=(N, D)).astype(np.uint8)
    else:
        X = rng.normal(size=(N, D)) * np.linspace(0.5, 2.0, D) + 0.5
    model = sr.SoftmaxRegression(D, K, sigma=0.7, seed=3, dtype=np.float64, input_scale=1 / 255 if pixels else 1.0)
    model.b[...] = rng.normal(size=K)
    if case.pop("standardize", False):
        seen = X * model.input_scale
        model.set_standardization(seen.mean(axis=0) + 0.1, seen.std(axis=0) * 1.3)     # not exactly centred
    y = rng.integers(0, K, size=N)
    if case.pop("soft", False):
        y = rng.dirichlet(np.ones(K), size=N) * rng.uniform(0.5, 1.5, size=(N, 1))   # rows not summing to 1
    w = rng.uniform(0.2, 3.0, size=N) if case.pop("sample_weight", False) else None
    return model, X, y, w, case


def _at(model, W, b, library):
    """A copy of `model` at (W, b), its arrays in `library` (NumPy for Dask, whose blocks are NumPy)."""
    moved = sr.SoftmaxRegression(D, K, sigma=0.0, dtype=np.float64, input_scale=model.input_scale)
    moved.W[...], moved.b[...] = W, b
    if model.mean is not None:
        moved.set_standardization(model.mean, model.std)
    if library not in ("numpy", "numpy-full-batch", "dask"):
        _library(library)
        moved.to(library, "cpu")
    return moved


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("library", ["numpy", "numpy-full-batch", "torch", "array_api_strict", "dask"])
def test_hessian_product_matches_finite_differences_of_the_gradient(library, case):
    """numpy: the objective's generic formulas; numpy-full-batch: FullBatch's fused NumPy kernel (the
    blocked products, in place); dask: FullBatch on each block, the sums added in the tree."""
    _library(library)
    model, X, y, w, options = _problem(case)
    Xl, yl, wl = _as(library, X), _as(library, y), _as(library, w)
    rng = np.random.default_rng(11)
    VW, Vb = rng.normal(size=(D, K)), rng.normal(size=K)
    VW, Vb = VW / np.sqrt(np.sum(VW ** 2) + np.sum(Vb ** 2)), Vb / np.sqrt(np.sum(VW ** 2) + np.sum(Vb ** 2))

    if library in ("dask", "numpy-full-batch"):      # the full-batch objective, the divisor n as loss_and_grad's
        def gradient(W, b):
            objective = SoftmaxCrossEntropy(_at(model, W, b, library), **options)
            with full_batch(objective, Xl, yl, wl, divisor=N) as fun:
                return fun(np.concatenate([W.ravel(), b]))[1]

        def hessian_product(VW, Vb):
            objective = SoftmaxCrossEntropy(_at(model, model.W, model.b, library), **options)
            with full_batch(objective, Xl, yl, wl, divisor=N) as fun:
                hv = fun.hessian_product(np.concatenate([model.W.ravel(), model.b]), np.concatenate([VW.ravel(), Vb]))
            return hv[:D * K].reshape(D, K), hv[D * K:]
    else:
        def gradient(W, b):
            _, dW, db = SoftmaxCrossEntropy(_at(model, W, b, library), **options).loss_and_grad(Xl, yl, sample_weight=wl)
            return np.concatenate([to_numpy(dW).ravel(), to_numpy(db)])

        def hessian_product(VW, Vb):
            objective = SoftmaxCrossEntropy(_at(model, model.W, model.b, library), **options)
            return objective.hessian_product(Xl, yl, VW, Vb, sample_weight=wl)

    numeric = (gradient(model.W + STEP * VW, model.b + STEP * Vb)
               - gradient(model.W - STEP * VW, model.b - STEP * Vb)) / (2 * STEP)
    direction = (VW, Vb) if library in ("numpy", "numpy-full-batch", "dask") else (_as(library, VW), _as(library, Vb))
    HW, Hb = hessian_product(*direction)
    if library in ("dask", "numpy-full-batch"):
        assert isinstance(HW, np.ndarray) and isinstance(Hb, np.ndarray)
    elif library != "numpy":
        assert type(HW).__module__.split(".")[0] == library and type(Hb).__module__.split(".")[0] == library
    assert tuple(HW.shape) == (D, K) and tuple(Hb.shape) == (K,)
    exact = np.concatenate([to_numpy(HW).ravel(), to_numpy(Hb)])
    assert np.abs(exact - numeric).max() <= RTOL * np.abs(numeric).max()


def test_hessian_product_is_symmetric_and_positive_semidefinite():
    """u' H v = v' H u, and v' H v >= lambda |VW|^2 (convex, strictly so in W with a penalty)."""
    model, X, y, w, options = _problem("everything")
    objective = SoftmaxCrossEntropy(model, **options)
    rng = np.random.default_rng(5)
    u, v = (rng.normal(size=D * K + K) for _ in range(2))

    def H(p):
        HW, Hb = objective.hessian_product(X, y, p[:D * K].reshape(D, K), p[D * K:], sample_weight=w)
        return np.concatenate([np.asarray(HW).ravel(), np.asarray(Hb)])
    assert u @ H(v) == pytest.approx(v @ H(u), rel=1e-10)
    assert v @ H(v) >= options["weight_decay"] * np.sum(v[:D * K] ** 2) * (1 - 1e-12)


# ---------------------------------------------------------------------------------------------
# 2. scikit-learn's exact optimum

def objective_value(model, weight_decay, X, y):
    """F = mean_i l_i + (wd / 2) |W|^2 in float64, from the plain formula (as test_lbfgs.py)."""
    Z = X @ model.W + model.b
    Z = Z - Z.max(axis=1, keepdims=True)
    losses = np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(len(y)), y]
    return float(losses.mean() + 0.5 * weight_decay * np.sum(model.W ** 2))


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("data", ["digits standardized", "wine raw"])
def test_newton_cg_reaches_scikit_learns_newton_cg_optimum(digits, data, C):
    """Standardized digits (StandardScaler in front, as test_lbfgs.py) and the raw wine features
    (0.1 to 1680: Hessian condition numbers of ~1e7, where L-BFGS needs thousands of iterations)."""
    X, y = digits if data.startswith("digits") else load_wine(return_X_y=True)
    n, d = X.shape
    weight_decay = 1 / (C * n)
    reference = LogisticRegression(solver="newton-cg", C=C, tol=1e-10, max_iter=10000).fit(X, y)
    theirs = sr.SoftmaxRegression(d, len(np.unique(y)), dtype=np.float64)
    theirs.W[...], theirs.b[...] = reference.coef_.T, reference.intercept_
    ours = sr.SoftmaxRegression(d, theirs.num_outputs, dtype=np.float64, seed=0)
    history = sr.fit(ours, X, y, solver="newton-cg", weight_decay=weight_decay, tol=1e-8, max_iter=500)
    assert history.converged
    f_ours, f_theirs = objective_value(ours, weight_decay, X, y), objective_value(theirs, weight_decay, X, y)
    assert f_ours == pytest.approx(f_theirs, rel=1e-6)


def test_newton_cg_counts_its_evaluations_and_hessian_products(digits):
    X, y = digits
    optimizer = sr.OPTIMIZERS["newton-cg"]()
    history = sr.fit(sr.SoftmaxRegression(64, 10, dtype=np.float64), X, y, solver="newton-cg", weight_decay=1e-3,
                     tol=1e-8, optimizer=optimizer)
    assert history.converged
    assert isinstance(optimizer.evaluations, int) and isinstance(optimizer.hessian_products, int)
    assert optimizer.evaluations >= len(history) + 1          # the start, then at least one per iteration
    assert optimizer.hessian_products >= len(history)         # at least one CG step per iteration
    assert len(history) < 50                                   # Newton: tens of iterations, not L-BFGS's hundreds


# ---------------------------------------------------------------------------------------------
# 3. scikit-learn's estimator checks, with no expected failure

@parametrize_with_checks([SoftmaxRegressionClassifier(solver="newton-cg", alpha=1e-3, tol=1e-10)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sr.ConvergenceWarning)
        check(estimator)


# ---------------------------------------------------------------------------------------------
# 4. On Dask (a LocalCluster on 127.0.0.1) and on torch tensors: the NumPy fit's weights

ND, DD, KD = 2000, 20, 4                                     # conftest.problem's shape




def _fit(solver, X, y, **options):
    """Converged to max |dF| <= 1e-9 with lambda = 1e-2: F is lambda-strongly convex in W (and b is
    centred), so each fit is within |dF|_2 / lambda <= 1e-6 absolute of the optimum, weights ~0.85.
    A stop "flat to rounding" just above 1e-9 (seen now and then for L-BFGS on torch, whose threaded
    sums round differently from run to run) is at the optimum to rounding: only running out of
    iterations fails here; the weights are compared by the caller."""
    model = sr.SoftmaxRegression(DD, KD, seed=0, dtype=np.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sr.ConvergenceWarning)
        sr.fit(model, X, y, solver=solver, weight_decay=1e-2, tol=1e-9, max_iter=1000, standardize=True, **options)
    stops = [str(w.message) for w in caught if issubclass(w.category, sr.ConvergenceWarning)]
    assert not any("max_iter" in m or "flat to rounding" not in m for m in stops), stops
    return to_numpy(model.W), to_numpy(model.b)


def _assert_same_weights(got, expected, rtol=1e-6):
    for a, b in zip(got, expected):
        assert np.abs(a - b).max() <= rtol * np.abs(b).max()


@pytest.mark.parametrize("solver", SOLVERS)
def test_on_a_dask_cluster_it_gives_the_numpy_fits_weights(problem, cluster, solver):
    import dask.array as da
    X, y = problem
    w = np.linspace(0.5, 2.0, ND)
    reference = _fit(solver, X, y, sample_weight=w)
    with cluster[1].as_current():
        got = _fit(solver, da.from_array(X, chunks=(300, DD)), da.from_array(y, chunks=450),
                   sample_weight=da.from_array(w, chunks=600))                   # uneven, unaligned chunks
    _assert_same_weights(got, reference)


@pytest.mark.parametrize("solver", SOLVERS)
def test_on_torch_tensors_it_gives_the_numpy_fits_weights(problem, solver):
    xp, device = _library("torch")
    X, y = problem
    reference = _fit(solver, X, y)
    got = _fit(solver, to_device(X, xp, device), to_device(y, xp, device))
    _assert_same_weights(got, reference)


# ---------------------------------------------------------------------------------------------
# 5. Checkpoint and resume

@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("stop", ["interrupted", "max_iter"])
def test_a_resumed_fit_has_the_bits_of_an_uninterrupted_one(digits, solver, stop):
    """Stopped after iteration 3 (Ctrl-C in a callback, or max_iter=3), resumed from `run.state()`
    with the model's weights as they were then: the weights and the history of a fit never stopped."""
    X, y = digits
    options = dict(solver=solver, weight_decay=1e-3, tol=0.0)
    last = 8

    class Keep(sr.Callback):
        def on_train_begin(self, run):
            self.run = run

        def on_epoch_end(self, record, history):
            if record.epoch == 3:
                self.saved = (self.run.state(), self.run.model.W.copy(), self.run.model.b.copy())
                if stop == "interrupted":
                    raise KeyboardInterrupt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sr.ConvergenceWarning)      # tol 0: every fit stops at max_iter
        full = sr.SoftmaxRegression(64, 10, seed=2, dtype=np.float64)
        full_history = sr.fit(full, X, y, max_iter=last, **options)
        keep = Keep()
        if stop == "interrupted":
            with pytest.raises(KeyboardInterrupt):
                sr.fit(sr.SoftmaxRegression(64, 10, seed=2, dtype=np.float64), X, y, max_iter=last,
                       callbacks=[keep], **options)
        else:
            sr.fit(sr.SoftmaxRegression(64, 10, seed=2, dtype=np.float64), X, y, max_iter=3, callbacks=[keep],
                   **options)
        state, W, b = keep.saved
        resumed = sr.SoftmaxRegression(64, 10, sigma=0.0, dtype=np.float64)
        resumed.W[...], resumed.b[...] = W, b
        history = sr.fit(resumed, X, y, max_iter=last, resume=state, **options)
    assert len(full_history) == last                          # still iterating at the end: a real test
    assert resumed.W.tobytes() == full.W.tobytes() and resumed.b.tobytes() == full.b.tobytes()
    assert figures(history) == figures(full_history)


# ---------------------------------------------------------------------------------------------
# 6. The preconditioner of the CG: the logits' curvature A and (A (x) G + lambda I)^-1

def test_class_curvature_is_the_mean_softmax_hessian_in_the_logits():
    from softmaxreg.full_batch import FullBatch
    from softmaxreg.objective import flat_params

    model, X, y, w, options = _problem("sample_weight")
    p = to_numpy(model.predict_proba(X))
    expected = sum(wi * (np.diag(pi) - np.outer(pi, pi)) for wi, pi in zip(w, p)) / w.sum()
    with FullBatch(SoftmaxCrossEntropy(model, **options), X, y, w, rows=7) as fun:
        got = fun.class_curvature(flat_params(model))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_the_kronecker_preconditioner_inverts_a_kron_g_plus_lambda():
    from softmaxreg.preconditioner import gram_preconditioner

    rng = np.random.default_rng(5)
    d, k, lam = 6, 4, 0.3
    B = rng.normal(size=(50, d))
    xx, x_sum = B.T @ B / 50, B.mean(axis=0)
    P = gram_preconditioner(np, xx, x_sum, np.ones(d), np.zeros(d), k, lam)
    a = np.concatenate([B, np.ones((50, 1))], axis=1)
    G = a.T @ a / 50                                             # the Gram matrix with the bias's constant 1
    M = rng.normal(size=(k, k))
    A = M @ M.T / k
    q = rng.normal(size=(d + 1) * k)
    H = np.kron(G, A) + lam * np.eye((d + 1) * k)                # (W; b) flat row-major: feature-major, class-minor
    np.testing.assert_allclose(P.for_classes(A)(H @ q), q, rtol=1e-9, atol=1e-9)


def test_two_loop_meets_the_secant_equation_of_its_newest_pair():
    """The two-loop recursion's H maps the newest pair's y to its s exactly (the BFGS secant
    equation), whatever the initial map, and is symmetric positive definite."""
    from softmaxreg.solvers.lbfgs import two_loop

    rng = np.random.default_rng(8)
    n = 12
    M = rng.normal(size=(n, n))
    H_true = M @ M.T + n * np.eye(n)                             # pairs of a convex quadratic: y = H s
    pairs = [(s, H_true @ s, 1.0 / float(s @ H_true @ s)) for s in rng.normal(size=(4, n))]
    D = rng.uniform(0.5, 2.0, size=n)
    H = np.column_stack([two_loop(e.copy(), pairs, lambda q: q * D) for e in np.eye(n)])
    s, y, _ = pairs[0]
    np.testing.assert_allclose(two_loop(y.copy(), pairs, lambda q: q * D), s, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)
    assert np.linalg.eigvalsh((H + H.T) / 2).min() > 0


@pytest.mark.parametrize("C", [0.01, 100.0])
def test_the_last_cgs_pairs_precondition_the_next_without_moving_the_optimum(digits, C):
    """cg_pairs=10 (the default) against cg_pairs=0: the same optimum, each CG after the first
    preconditioned by the last one's pairs (kept, at most 10, newest first)."""
    X, y = digits
    weight_decay = 1 / (C * len(y))
    fits = {}
    for pairs in (0, 10):
        optimizer = sr.OPTIMIZERS["newton-cg"](cg_pairs=pairs)
        model = sr.SoftmaxRegression(64, 10, dtype=np.float64, seed=0)
        assert sr.fit(model, X, y, solver="newton-cg", weight_decay=weight_decay, tol=1e-9, max_iter=500,
                      optimizer=optimizer).converged
        fits[pairs] = (objective_value(model, weight_decay, X, y), optimizer)
    assert fits[10][0] == pytest.approx(fits[0][0], rel=1e-12)
    assert fits[0][1].pairs == [] and 1 <= len(fits[10][1].pairs) <= 10
    with pytest.raises(sr.InvalidArgumentError, match="cg_pairs"):
        sr.OPTIMIZERS["newton-cg"](cg_pairs=-1)


def test_the_forcing_term_is_eisenstat_and_walkers_choice_2():
    """0.5 at the first iteration; then 0.9 (|g_t| / |g_t-1|)^2, at least 0.9 eta_t-1^2 while that
    is above 0.1, at most 0.5; the same for F and 1000 F (the ratio of two norms)."""
    from softmaxreg.solvers.newton_cg import forcing_term

    assert forcing_term(3.0, None) == 0.5
    assert forcing_term(0.1, (1.0, 0.2)) == pytest.approx(0.9 * 0.01)        # 0.9 * 0.2^2 = 0.036 <= 0.1
    assert forcing_term(0.1, (1.0, 0.5)) == pytest.approx(0.9 * 0.25)        # safeguard: 0.225 > 0.1
    assert forcing_term(1.0, (1.0, 0.01)) == 0.5                              # no progress: capped
    assert forcing_term(2e-3, (1e-2, 0.05)) == pytest.approx(forcing_term(2.0, (10.0, 0.05)))
