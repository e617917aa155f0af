"""The sparse engine: scipy.sparse X on every path, against the same data dense, scikit-learn and
finite differences; never densified."""

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

from sklearn.feature_extraction.text import TfidfVectorizer          # noqa: E402
from sklearn.linear_model import LogisticRegression                  # noqa: E402
from sklearn.model_selection import GridSearchCV                     # noqa: E402
from sklearn.pipeline import Pipeline                                # noqa: E402
from sklearn.preprocessing import StandardScaler                     # noqa: E402

from softmaxreg import Callback, InvalidArgumentError, SoftmaxRegression, fit  # noqa: E402
from softmaxreg.engines import engine_for                            # noqa: E402
from softmaxreg.full_batch import FullBatch, SparseFullBatch         # noqa: E402
from softmaxreg.objective import SoftmaxCrossEntropy, flat_params    # noqa: E402
from softmaxreg.preconditioner import HESSIAN_DIAGONAL_EVERY                 # noqa: E402
from softmaxreg.sklearn import SoftmaxRegressionClassifier           # noqa: E402

from .conftest import traced_peak                                    # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::softmaxreg.errors.ConvergenceWarning")   # few iterations on purpose

FORMATS = [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array, sp.csc_array, sp.coo_array]


def sparse_problem(n=300, d=400, k=5, density=0.03, seed=0):
    """(X CSR float64 with a signal in a few columns, y (n,) labels of k classes)."""
    rng = np.random.default_rng(seed)
    X = sp.random_array((n, d), density=density, format="csr", rng=rng)
    y = (np.asarray(X[:, :k].argmax(axis=1)).ravel() + rng.integers(0, 2, n)) % k
    return X, y


def model_at(d, k, dtype=np.float64, seed=1, sigma=0.3):
    return SoftmaxRegression(d, k, sigma, seed=seed, dtype=dtype)


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predictions_and_evaluation_equal_the_dense_ones(kind, dtype):
    X, y = sparse_problem()
    model = model_at(X.shape[1], 5, dtype)
    Xs, dense = kind(X), X.toarray()
    assert engine_for(Xs).name == "sparse"
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(model.logits(Xs), model.logits(dense), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(model.predict_proba(Xs), model.predict_proba(dense), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(model.evaluate(Xs, y), model.evaluate(dense, y), rtol=rtol)


def test_loss_gradient_and_hessian_equal_the_dense_ones_with_weights_soft_targets_and_smoothing():
    X, y = sparse_problem()
    rng = np.random.default_rng(2)
    n, d, k = X.shape[0], X.shape[1], 5
    model = model_at(d, k)
    T = rng.dirichlet(np.ones(k), size=n)
    w = rng.uniform(0.5, 2.0, n)
    VW, Vb = rng.standard_normal((d, k)), rng.standard_normal(k)
    objective = SoftmaxCrossEntropy(model, weight_decay=1e-3, label_smoothing=0.1)
    for targets in (y, T):
        sparse = objective.loss_and_grad(X, targets, sample_weight=w)
        dense = objective.loss_and_grad(X.toarray(), targets, sample_weight=w)
        for a, b in zip(sparse, dense):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        for a, b in zip(objective.hessian_product(X, targets, VW, Vb, sample_weight=w),
                        objective.hessian_product(X.toarray(), targets, VW, Vb, sample_weight=w)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_full_batch_sums_match_the_dense_pass_and_do_not_depend_on_the_threads():
    X, y = sparse_problem(n=1000)
    k = 5
    model = model_at(X.shape[1], k)
    objective = SoftmaxCrossEntropy(model, weight_decay=1e-2)
    x = flat_params(model)
    v = np.random.default_rng(3).standard_normal(x.shape)
    with FullBatch(objective, X.toarray(), y) as dense:
        f, g, _ = dense(x)
        Hv = dense.hessian_product(x, v)
        A = dense.class_curvature(x)
    results = []
    for threads in (1, 2, 3):
        with SparseFullBatch(objective, X, y, threads=threads) as fun:
            fs, gs, _ = fun(x)
            results.append((fs, gs.copy(), fun.hessian_product(x, v), fun.class_curvature(x)))
    np.testing.assert_allclose(results[0][0], f, rtol=1e-13)
    for a, b in zip(results[0][1:], (g, Hv, A)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    for other in results[1:]:                                  # bit for bit, whatever the threads
        assert other[0] == results[0][0]
        for a, b in zip(other[1:], results[0][1:]):
            np.testing.assert_array_equal(a, b)


def test_many_classes_cut_a_pass_into_more_chunks_of_the_same_sums(monkeypatch):
    from softmaxreg.full_batch import on_sparse

    X, y = sparse_problem(n=500, d=7, density=0.5)
    objective = SoftmaxCrossEntropy(model_at(X.shape[1], 5), weight_decay=1e-2)
    x = flat_params(objective.model)
    whole = SparseFullBatch(objective, X, y)(x)
    assert len(SparseFullBatch(objective, X, y).starts) == on_sparse.SPARSE_CHUNKS     # non-zeros enough for 8
    monkeypatch.setattr(on_sparse, "LOGITS_PER_CHUNK", 5 * 7)           # 7 rows a chunk (as d): 72 chunks
    with SparseFullBatch(objective, X, y, threads=2) as fun:
        assert len(fun.starts) == 72 and fun.parts is None               # waves: no row of sums per chunk
        chunked = fun(x)
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-13)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
@pytest.mark.parametrize("C", [0.1, 10.0])
def test_full_batch_solvers_reach_logistic_regressions_optimum_on_tfidf(solver, C, text):
    docs, labels = text
    X = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(docs)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, labels)
    ours = SoftmaxRegressionClassifier(solver=solver, alpha=1 / (C * X.shape[0]), tol=1e-9, max_iter=2000).fit(X, labels)
    classes, y = np.unique(labels, return_inverse=True)

    def F(coef, intercept):
        Z = X @ coef.T + intercept
        Z -= Z.max(axis=1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return -logp[np.arange(len(y)), y].mean() + 0.5 / (C * len(y)) * np.sum(coef ** 2)
    assert F(ours.coef_, ours.intercept_) <= F(ref.coef_, ref.intercept_) * (1 + 1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)


@pytest.fixture(scope="module")
def text():
    """Real English text with labels, offline: the paragraphs of scikit-learn's own class docstrings,
    labelled by the module they document."""
    import inspect

    import sklearn.cluster
    import sklearn.decomposition
    import sklearn.ensemble
    import sklearn.linear_model

    docs, labels = [], []
    for module in (sklearn.cluster, sklearn.decomposition, sklearn.ensemble, sklearn.linear_model):
        for name in sorted(dir(module)):
            cls = getattr(module, name)
            if inspect.isclass(cls) and cls.__doc__:
                for paragraph in cls.__doc__.split("\n\n")[:6]:
                    docs.append(paragraph)
                    labels.append(module.__name__.split(".")[1])
    return docs, np.array(labels)


def test_tfidf_pipeline_under_grid_search(text):
    docs, labels = text
    search = GridSearchCV(Pipeline([("tfidf", TfidfVectorizer()), ("clf", SoftmaxRegressionClassifier())]),
                          {"clf__alpha": [1e-4, 1e-2], "clf__solver": ["lbfgs", "newton-cg"]}, cv=3).fit(docs, labels)
    reference = GridSearchCV(Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())]),
                             {"clf__C": [1.0]}, cv=3).fit(docs, labels)
    assert search.best_score_ >= reference.best_score_ - 0.02            # C = 1 is among ours (alpha="auto" differs)
    assert search.predict(docs[:5]).tolist() == search.best_estimator_.predict(docs[:5]).tolist()


def test_sgd_on_sparse_rows_takes_the_dense_runs_steps():
    X, y = sparse_problem(n=400)
    runs = []
    for data in (X, X.toarray()):
        model = model_at(X.shape[1], 5, sigma=0.01)
        history = fit(model, data, y, solver="sgd", epochs=3, lr=0.5, batch_size=32, momentum=0.9, seed=4,
                      weight_decay=1e-3)
        runs.append((model.W.copy(), [r.train_loss for r in history]))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-5)


def test_standardize_scale_divides_by_the_std_without_centring_and_true_is_refused():
    X, y = sparse_problem()
    model = model_at(X.shape[1], 5)
    fit(model, X, y, solver="lbfgs", max_iter=3, standardize="scale")
    scaler = StandardScaler(with_mean=False).fit(X)
    np.testing.assert_allclose(model.mean, 0.0)
    np.testing.assert_allclose(model.std, np.where(scaler.scale_ > 0, scaler.scale_, 1.0), rtol=1e-10)
    with pytest.raises(InvalidArgumentError, match="standardize: centring sparse X would make it dense.*'scale'"):
        fit(model_at(X.shape[1], 5), X, y, solver="lbfgs", standardize=True)
    with pytest.raises(InvalidArgumentError, match="standardize: centring"):
        SoftmaxRegressionClassifier(standardize=True).fit(X, y)
    default = SoftmaxRegressionClassifier().fit(X, y)
    assert default.model_.mean is None                               # never standardized unless asked
    scaled = SoftmaxRegressionClassifier(standardize="scale", tol=1e-9, max_iter=2000).fit(X, y)
    dense = SoftmaxRegressionClassifier(standardize="scale", tol=1e-9, max_iter=2000).fit(X.toarray(), y)
    np.testing.assert_allclose(scaled.predict_proba(X), dense.predict_proba(X.toarray()), atol=1e-6)


@pytest.mark.parametrize("case", ["labels", "weights_soft_targets_scaled"])
def test_the_measured_hessian_diagonal_is_the_diagonal_of_the_dense_hessian(case):
    """SparseFullBatch.hessian_diagonal (the L-BFGS and Newton-CG preconditioner's D) against e_i' H e_i
    from the dense pass's Hessian products, one unit vector at a time (the penalty's lambda taken off)."""
    X, y = sparse_problem(n=120, d=9, k=4, density=0.4)
    n, d, k = X.shape[0], X.shape[1], 4
    model, w = model_at(d, k), None
    if case != "labels":
        rng = np.random.default_rng(4)
        y, w = rng.dirichlet(np.ones(k), size=n) * rng.uniform(0.5, 1.5, (n, 1)), rng.uniform(0.2, 2.0, n)
        model.set_standardization(np.zeros(d), np.random.default_rng(5).uniform(0.5, 2.0, d))
        model.input_scale = 0.5
    objective = SoftmaxCrossEntropy(model, weight_decay=0.1)
    x = flat_params(model)
    with SparseFullBatch(objective, X, y, w) as fun:
        D = fun.hessian_diagonal(x)
    with FullBatch(objective, X.toarray(), y, w) as dense:
        eye = np.eye(x.size)
        expected = np.array([dense.hessian_product(x, e)[i] for i, e in enumerate(eye)])
    expected[:d * k] -= 0.1                                            # H includes lambda I on W
    np.testing.assert_allclose(D, expected, rtol=1e-10, atol=1e-15)


def test_lbfgs_keeps_the_pairs_its_preconditioner_asks_for_unless_told():
    from softmaxreg import LBFGS
    from softmaxreg.preconditioner import HessianDiagonal
    from softmaxreg.solvers.lbfgs import DEFAULT_MEMORY

    X, y = sparse_problem(n=200, d=50, density=0.1)
    kept = {}
    for name, data, optimizer in (("sparse", X, LBFGS()), ("dense", X.toarray(), LBFGS()),
                                  ("told", X, LBFGS(memory=8))):
        fit(model_at(X.shape[1], 5), data, y, solver="lbfgs", max_iter=12, optimizer=optimizer, standardize=False)
        kept[name] = (optimizer.memory, optimizer.S.shape[0], min(optimizer.pairs, optimizer.memory))
    assert kept["sparse"] == (HessianDiagonal.lbfgs_memory,) * 3 and HessianDiagonal.lbfgs_memory < DEFAULT_MEMORY
    assert kept["dense"] == (DEFAULT_MEMORY,) * 3 and kept["told"] == (8, 8, 8)


def test_sparse_lbfgs_resumes_bit_identically_across_a_measurement_of_the_diagonal():
    """The diagonal is measured every HESSIAN_DIAGONAL_EVERY iterations; a run stopped between two
    measurements resumes with the diagonal it had (kept in the checkpoint), not one measured anew."""
    X, y = sparse_problem(n=400, d=300, density=0.05)
    stop, last = HESSIAN_DIAGONAL_EVERY + 3, 2 * HESSIAN_DIAGONAL_EVERY + 2
    options = dict(solver="lbfgs", weight_decay=1e-3, tol=0.0, standardize=False)

    class Keep(Callback):
        def on_train_begin(self, run):
            self.run = run

        def on_epoch_end(self, record, history):
            if record.epoch == stop:
                self.saved = (self.run.state(), self.run.model.W.copy(), self.run.model.b.copy())
                raise KeyboardInterrupt

    full = model_at(X.shape[1], 5)
    fit(full, X, y, max_iter=last, **options)
    keep = Keep()
    with pytest.raises(KeyboardInterrupt):
        fit(model_at(X.shape[1], 5), X, y, max_iter=last, callbacks=[keep], **options)
    state, W, b = keep.saved
    assert state.optimizer["preconditioner_calls"] == stop
    resumed = model_at(X.shape[1], 5, sigma=0.0)
    resumed.W[...], resumed.b[...] = W, b
    fit(resumed, X, y, max_iter=last, resume=state, **options)
    assert resumed.W.tobytes() == full.W.tobytes() and resumed.b.tobytes() == full.b.tobytes()
    without = model_at(X.shape[1], 5, sigma=0.0)                       # the diagonal measured anew instead
    without.W[...], without.b[...] = W, b
    state.optimizer.pop("preconditioner_diagonal")
    fit(without, X, y, max_iter=last, resume=state, **options)
    assert without.W.tobytes() != full.W.tobytes()


def test_bad_sparse_matrices_are_refused_in_one_line():
    model = model_at(4, 2)
    good = sp.csr_array(np.eye(3, 4))

    def hand_built(data, indices, indptr):
        m = sp.csr_array((3, 4))
        m.data, m.indices, m.indptr = np.asarray(data, float), np.asarray(indices, np.int32), np.asarray(indptr, np.int32)
        return m
    cases = {
        "shape \\(n, 4\\)": sp.csr_array(np.eye(3, 5)),
        "NaN or infinite": sp.csr_array(np.diag([1.0, np.nan, 1.0])[:, [0, 1, 2, 2]]),
        "not a valid CSR matrix": hand_built([1, 1, 1], [0, -1, 2], [0, 1, 2, 3]),
        "not a valid CSR matrix.*": hand_built([1, 1, 1], [0, 7, 2], [0, 1, 2, 3]),
        "not a valid CSR matrix.* ": hand_built([1, 1, 1], [0, 1, 2], [0, 2, 1, 3]),
        "real numbers": sp.csr_array(np.eye(3, 4) * 1j),
    }
    for message, X in cases.items():
        with pytest.raises(InvalidArgumentError, match=message.strip()) as caught:
            model.predict(X)
        assert "\n" not in str(caught.value)
    assert model.predict(good).shape == (3,)
    duplicated = sp.coo_array(([1.0, 2.0], ([0, 0], [1, 1])), shape=(1, 4))   # duplicates are summed
    np.testing.assert_allclose(model.logits(duplicated), model.logits(np.array([[0, 3.0, 0, 0]])))


def test_a_million_columns_train_without_densifying():
    """n x d = 2,000 x 10^6 dense would be 16 GB; training three L-BFGS iterations and predicting hold
    X (CSR) and a few copies of W (3 x 10^6) at a time."""
    n, d, k = 2000, 1_000_000, 3
    rng = np.random.default_rng(6)
    X = sp.random_array((n, d), density=2e-5, format="csr", rng=rng)
    y = rng.integers(0, k, n)
    model = SoftmaxRegression(d, k, 0.0, dtype=np.float64)
    _, peak = traced_peak(lambda: (fit(model, X, y, solver="lbfgs", max_iter=3, weight_decay=1e-3), model.predict(X)))
    assert peak < 50 * d * k * 8 < n * d * 8 / 10                   # L-BFGS's pairs, not n x d


def test_num_classes_declares_classes_without_training_rows():
    X, y = sparse_problem(k=3)
    clf = SoftmaxRegressionClassifier(num_classes=5).fit(X, y)
    assert clf.classes_.tolist() == [0, 1, 2, 3, 4] and clf.predict_proba(X).shape == (X.shape[0], 5)
    assert clf.predict_proba(X)[:, 3:].max() < 0.05                  # never seen: little probability
    assert (clf.predict_proba(X)[:, :3].sum(axis=1) > 0.9).all()
    with pytest.raises(InvalidArgumentError, match="labels not seen"):
        SoftmaxRegressionClassifier(num_classes=2).fit(X, y)
    with pytest.raises(InvalidArgumentError, match="num_classes: expected an integer >= 2"):
        SoftmaxRegressionClassifier(num_classes=1.5).fit(X, y)
    streamed = SoftmaxRegressionClassifier(solver="sgd", num_classes=5).partial_fit(X, y)
    assert streamed.classes_.tolist() == [0, 1, 2, 3, 4]


def test_an_unsorted_csr_matrix_is_sorted_in_place_and_duplicates_are_summed_into_a_copy():
    """TfidfVectorizer's CSR rows come with unsorted columns: the engine sorts them in place (the
    same matrix, no copy of the non-zeros); repeated columns are summed in a copy, the caller's
    arrays keeping their entries."""
    from softmaxreg.engines.sparse import checked_csr

    text = TfidfVectorizer().fit_transform(["the dog runs", "a cat and the dog", "dog dog cat"])
    for X in (sp.csr_array(text), sp.csr_matrix(text)):
        X = X.copy()
        X.indices[:] = X.indices.copy()                    # forget scipy's cached flags
        unsorted = any(np.any(np.diff(X.indices[a:b]) < 0) for a, b in zip(X.indptr[:-1], X.indptr[1:]))
        dense = X.toarray()
        held = checked_csr(X, X.shape[1], np.float64)
        assert unsorted and np.shares_memory(held.data, X.data) and np.shares_memory(held.indices, X.indices)
        np.testing.assert_array_equal(held.toarray(), dense)
        np.testing.assert_array_equal(X.toarray(), dense)
        assert all(np.all(np.diff(held.indices[a:b]) > 0) for a, b in zip(held.indptr[:-1], held.indptr[1:]))
    for kind in (sp.csr_array, sp.csr_matrix):
        X = kind(([1.0, 2.0, 3.0, 4.0], [2, 2, 0, 1], [0, 2, 4]), shape=(2, 3))
        held = checked_csr(X, 3, np.float64)
        assert held.nnz == 3 and X.nnz == 4 and not np.shares_memory(held.data, X.data)
        np.testing.assert_array_equal(held.toarray(), [[0, 0, 3], [3, 4, 0]])
        np.testing.assert_array_equal(X.toarray(), [[0, 0, 3], [3, 4, 0]])


def test_plain_sgd_on_sparse_rows_holds_w_and_coef_and_no_copy_of_x():
    """The estimator's plain SGD (the row-sparse step) on wide, unsorted sparse rows allocates the
    model's W, coef_ (the same numbers, (k, d)) and per-batch blocks: no third (d, k) array (an
    initial draw's cast, a folded copy) and no sorted copy of X."""
    n, d, k = 500, 200_000, 20
    rng = np.random.default_rng(7)
    X = sp.random_array((n, d), density=5e-5, format="csr", rng=rng)
    for a, b in zip(X.indptr[:-1], X.indptr[1:]):         # columns in falling order within a row
        X.indices[a:b], X.data[a:b] = X.indices[a:b][::-1].copy(), X.data[a:b][::-1].copy()
    X = sp.csr_array((X.data, X.indices, X.indptr), shape=X.shape)
    y = rng.integers(0, k, n)
    clf = SoftmaxRegressionClassifier(solver="sgd", momentum=0.0, nesterov=False, max_iter=2, random_state=0)
    _, peak = traced_peak(lambda: clf.fit(X, y))
    w_bytes = d * k * 8
    assert clf.coef_.shape == (k, d) and not np.shares_memory(clf.coef_, clf.model_.W)
    assert 2 * w_bytes < peak < 2.3 * w_bytes, peak / w_bytes
