"""Dask arrays of scipy.sparse blocks: fitted where they live, to the single-process weights, on a
LocalCluster of 2 worker processes on 127.0.0.1 (conftest.cluster), and unchanged by a worker's death."""


import numpy as np
import pytest

import softmaxreg as sr

pytestmark = pytest.mark.filterwarnings("ignore::softmaxreg.errors.ConvergenceWarning")   # flat to rounding

sp = pytest.importorskip("scipy.sparse")
pytest.importorskip("distributed", reason="the Dask engine needs pip install 'softmaxreg[dask]'")
da = pytest.importorskip("dask.array", reason="the Dask engine needs pip install 'softmaxreg[dask]'")

from softmaxreg.sklearn import SoftmaxRegressionClassifier  # noqa: E402

from .conftest import fits_with_a_worker_killed  # noqa: E402

N, D, K = 1500, 300, 4


@pytest.fixture(scope="module")
def sparse_problem():
    rng = np.random.default_rng(0)
    X = sp.random_array((N, D), density=0.05, format="csr", rng=rng)
    y = (np.asarray(X[:, :K].argmax(axis=1)).ravel() + rng.integers(0, 2, N)) % K
    return X, y


def sparse_blocks(X, rows):
    """A Dask array of X's rows in blocks of `rows`, each block a CSR matrix."""
    return da.from_array(X, chunks=(rows, -1), asarray=False)


def fit(X, y, solver="lbfgs", callbacks=(), **options):
    model = sr.SoftmaxRegression(D, K, seed=0, dtype=np.float64)
    length = dict(epochs=2) if solver == "sgd" else dict(max_iter=30, tol=1e-10)
    sr.fit(model, X, y, solver=solver, weight_decay=1e-3, callbacks=callbacks, **length, **options)
    return model


def close(a, b, rtol=1e-6):
    return np.abs(a.W - b.W).max() <= rtol * np.abs(b.W).max() and np.abs(a.b - b.b).max() <= rtol * np.abs(b.b).max()


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_sparse_blocks_on_a_cluster_give_the_single_process_weights(sparse_problem, cluster, solver):
    X, y = sparse_problem
    weights = np.linspace(0.5, 2.0, N)
    reference = fit(X, y, solver, sample_weight=weights, standardize="scale")
    Xd = sparse_blocks(X, 400)
    assert sr.engines.has_sparse_blocks(Xd)
    with cluster[1].as_current():
        on_cluster = fit(Xd, y, solver, sample_weight=weights, standardize="scale")
    assert close(on_cluster, reference)
    np.testing.assert_allclose(on_cluster.std, reference.std, rtol=1e-12)


def test_a_worker_killed_mid_fit_changes_nothing(sparse_problem, cluster):
    X, y = sparse_problem
    Xd = sparse_blocks(X, 300)
    undisturbed, disturbed = fits_with_a_worker_killed(cluster[1], lambda callbacks: fit(Xd, y, callbacks=callbacks))
    assert np.array_equal(undisturbed.W, disturbed.W) and np.array_equal(undisturbed.b, disturbed.b)


def test_the_estimator_fits_and_predicts_sparse_blocks_like_the_matrix(sparse_problem):
    X, y = sparse_problem
    labels = np.array(["a", "b", "c", "d"])[y]
    in_memory = SoftmaxRegressionClassifier(tol=1e-10, max_iter=300).fit(X, labels)
    blocked = SoftmaxRegressionClassifier(tol=1e-10, max_iter=300).fit(sparse_blocks(X, 500), da.from_array(labels))
    assert np.abs(blocked.coef_ - in_memory.coef_).max() <= 1e-6 * np.abs(in_memory.coef_).max()
    assert (blocked.predict(sparse_blocks(X, 500)).compute() == in_memory.predict(X)).all()


def test_sgd_and_centring_are_refused_for_sparse_blocks(sparse_problem):
    X, y = sparse_problem
    with pytest.raises(sr.InvalidArgumentError, match="sparse blocks train with a full-batch solver"):
        fit(sparse_blocks(X, 500), y, solver="sgd")
    with pytest.raises(sr.InvalidArgumentError, match="standardize: centring sparse X"):
        fit(sparse_blocks(X, 500), y, standardize=True)
