"""SoftmaxRegressionClassifier as a scikit-learn citizen."""

import copy
import warnings

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from softmaxreg.sklearn import SoftmaxRegressionClassifier

# most tests here train for a few epochs on purpose; the warning itself is tested below
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data":
        "minibatch SGD is stochastic: giving a row weight 2 is equivalent to repeating it only in "
        "expectation, since repeating it changes the shuffles, the batches and the steps per epoch "
        "(scikit-learn marks its own SGDClassifier the same way)",
}


@parametrize_with_checks([SoftmaxRegressionClassifier(max_iter=20), SoftmaxRegressionClassifier(solver="lbfgs", alpha=1e-2, tol=1e-8)],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES if est.solver == "sgd" else {})
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


from sklearn.base import clone                                       # noqa: E402
from sklearn.datasets import load_digits                            # noqa: E402
from sklearn.linear_model import LogisticRegression                 # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline                                # noqa: E402
from sklearn.preprocessing import StandardScaler                     # noqa: E402

from softmaxreg import InvalidArgumentError, fit                     # noqa: E402
from softmaxreg.solvers import LRSchedule                              # noqa: E402
from softmaxreg.options import TrainConfig                           # noqa: E402


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def test_on_digits_it_matches_logistic_regression(digits_split):
    Xtr, Xte, ytr, yte = digits_split
    theirs = LogisticRegression(max_iter=5000).fit(Xtr, ytr).score(Xte, yte)
    ours = SoftmaxRegressionClassifier(random_state=0).fit(Xtr, ytr).score(Xte, yte)
    assert ours >= theirs - 0.005


def test_on_fashion_mnist_it_matches_logistic_regression(fashion):
    n = 3000
    Xtr, ytr = fashion.train_images[:n].reshape(n, -1) / 255.0, fashion.train_labels[:n]
    Xte, yte = fashion.test_images.reshape(10000, -1) / 255.0, fashion.test_labels
    theirs = LogisticRegression(max_iter=2000).fit(Xtr, ytr).score(Xte, yte)
    ours = SoftmaxRegressionClassifier(random_state=0, dtype="float32").fit(Xtr, ytr).score(Xte, yte)
    assert ours >= theirs - 0.005


def test_pipeline_grid_search_and_clone(digits_split):
    Xtr, Xte, ytr, yte = digits_split
    pipe = Pipeline([("scale", StandardScaler()), ("clf", SoftmaxRegressionClassifier(max_iter=30, random_state=0))])
    search = GridSearchCV(pipe, {"clf__alpha": [0.0, 1e-3], "clf__momentum": [0.0, 0.9]}, cv=3,
                          error_score="raise").fit(Xtr, ytr)
    assert search.best_score_ > 0.9 and search.score(Xte, yte) > 0.9
    original = SoftmaxRegressionClassifier(alpha=0.01, lr=0.05, class_weight="balanced", random_state=3)
    copy = clone(original)
    assert copy.get_params() == original.get_params() and copy is not original
    fitted = clone(original).fit(Xtr, ytr)
    assert not hasattr(clone(fitted), "coef_")


def test_any_hashable_labels_and_learned_attributes(digits_split):
    Xtr, Xte, ytr, yte = digits_split
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = SoftmaxRegressionClassifier(random_state=0, max_iter=20).fit(Xtr, names[ytr])
    assert list(clf.classes_) == sorted(names) and clf.n_features_in_ == 64
    assert clf.coef_.shape == (10, 64) and clf.intercept_.shape == (10,) and clf.n_iter_ == len(clf.loss_curve_)
    assert set(clf.predict(Xte)) <= set(names)
    # coef_ and intercept_ act on raw features: decision_function is X coef^T + intercept
    np.testing.assert_allclose(clf.decision_function(Xte), Xte @ clf.coef_.T + clf.intercept_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(Xte)), clf.predict_proba(Xte), rtol=1e-9)


def test_saved_models_predict_identically(digits_split, tmp_path):
    Xtr, Xte, ytr, yte = digits_split
    for labels in (ytr, ytr * 10 + 5, np.array(list("abcdefghij"))[ytr]):
        clf = SoftmaxRegressionClassifier(standardize=True, random_state=0, max_iter=10).fit(Xtr, labels)
        clf.save(tmp_path / "m.safetensors")
        loaded = SoftmaxRegressionClassifier.load(tmp_path / "m.safetensors")
        np.testing.assert_array_equal(loaded.predict(Xte), clf.predict(Xte))
        np.testing.assert_array_equal(loaded.predict_proba(Xte), clf.predict_proba(Xte))
        assert loaded.classes_.dtype.kind == clf.classes_.dtype.kind
        np.testing.assert_array_equal(loaded.coef_, clf.coef_)


def test_standardize_equals_a_standard_scaler_in_front(digits_split):
    Xtr, Xte, ytr, yte = digits_split
    ours = SoftmaxRegressionClassifier(standardize=True, random_state=0, max_iter=5, lr=0.01).fit(Xtr, ytr)
    scaled = Pipeline([("s", StandardScaler()),
                       ("c", SoftmaxRegressionClassifier(random_state=0, max_iter=5, lr=0.01))]).fit(Xtr, ytr)
    np.testing.assert_allclose(ours.predict_proba(Xte), scaled.predict_proba(Xte), rtol=1e-6, atol=1e-9)


def test_partial_fit_streams_one_epoch_at_a_time_and_warm_start_continues(digits_split):
    Xtr, Xte, ytr, yte = digits_split
    stream = SoftmaxRegressionClassifier(random_state=0, lr=0.001)
    with pytest.raises(InvalidArgumentError, match="classes"):
        stream.partial_fit(Xtr[:100], ytr[:100])
    for start in range(0, len(Xtr), 300):
        stream.partial_fit(Xtr[start:start + 300], ytr[start:start + 300], classes=np.arange(10))
    assert stream.n_iter_ == -(-len(Xtr) // 300) and stream.score(Xte, yte) > 0.85
    warm = SoftmaxRegressionClassifier(random_state=0, max_iter=3, warm_start=True).fit(Xtr, ytr)
    coef = warm.coef_.copy()
    warm.fit(Xtr, ytr)
    assert warm.n_iter_ == 6 and not np.array_equal(coef, warm.coef_)
    cold = SoftmaxRegressionClassifier(random_state=0, max_iter=3).fit(Xtr, ytr)
    np.testing.assert_array_equal(cold.coef_, coef)


@pytest.mark.parametrize("schedule, warmup", [("cosine", 0.0), ("step", 0.0), ("constant", 1.5)])
def test_partial_fit_calls_walk_through_the_schedule(digits_split, schedule, warmup):
    """Call t is epoch t + 1 of a max_iter-epoch schedule, at the rate of its middle step: the
    same as one constant-rate epoch at that rate from the same state with the same shuffle."""
    Xtr, _, ytr, _ = digits_split
    X, y = Xtr[:320], ytr[:320]                               # 10 steps of 32 per call
    stream = SoftmaxRegressionClassifier(random_state=0, lr=0.05, momentum=0.0, batch_size=32, max_iter=4,
                                         schedule=schedule, warmup_epochs=warmup)
    rates = LRSchedule(0.05, schedule, steps_per_epoch=10, epochs=4, warmup_epochs=warmup)
    for t in range(12):                                       # "step" divides by 10 after 10 epochs
        before = copy.deepcopy(getattr(stream, "model_", None))
        stream.partial_fit(X, y, classes=np.arange(10))
        if before is None:
            continue
        rate = rates(t * 10 + 5)
        assert (rate == 0.0) == (schedule == "cosine" and t >= 4)   # past the cosine's end the rate is 0
        if rate:
            fit(before, X, y, TrainConfig(epochs=1, batch_size=32, lr=rate, momentum=0.0),
                seed=np.random.default_rng(0))
        np.testing.assert_array_equal(before.W, stream.model_.W)
    assert stream.n_iter_ == 12


def test_class_weight_balanced_equals_explicit_sample_weights(digits_split):
    Xtr, _, ytr, _ = digits_split
    keep = (ytr != 3) | (np.arange(len(ytr)) % 4 == 0)       # make class 3 rare
    X, y = Xtr[keep], ytr[keep]
    counts = np.bincount(y)
    balanced = SoftmaxRegressionClassifier(class_weight="balanced", random_state=0, max_iter=5).fit(X, y)
    explicit = SoftmaxRegressionClassifier(random_state=0, max_iter=5).fit(
        X, y, sample_weight=len(y) / (10 * counts[y]))
    np.testing.assert_allclose(balanced.coef_, explicit.coef_, rtol=1e-10, atol=1e-12)
    as_dict = SoftmaxRegressionClassifier(class_weight={3: 4.0}, random_state=0, max_iter=5).fit(X, y)
    weighted = SoftmaxRegressionClassifier(random_state=0, max_iter=5).fit(X, y, sample_weight=np.where(y == 3, 4.0, 1.0))
    np.testing.assert_allclose(as_dict.coef_, weighted.coef_, rtol=1e-10, atol=1e-12)


def test_lbfgs_estimator_matches_logistic_regression(digits_split):
    Xtr, Xte, ytr, _ = digits_split
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    C = 0.1
    theirs = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(Xtr, ytr)
    ours = SoftmaxRegressionClassifier(solver="lbfgs", alpha=1 / (C * len(ytr)), tol=1e-8, max_iter=5000,
                                       random_state=0).fit(Xtr, ytr)
    np.testing.assert_allclose(ours.predict_proba(Xte), theirs.predict_proba(Xte), atol=1e-5)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-3 * np.abs(theirs.coef_).max())
    assert ours.n_iter_ == len(ours.loss_curve_) > 0


def test_partial_fit_is_only_offered_by_the_minibatch_solver():
    assert hasattr(SoftmaxRegressionClassifier(), "partial_fit")
    assert not hasattr(SoftmaxRegressionClassifier(solver="lbfgs"), "partial_fit")


def test_stopping_at_max_iter_before_the_stopping_rule_warns_as_scikit_learn_does(digits_split):
    import sklearn.exceptions

    import softmaxreg

    Xtr, _, ytr, _ = digits_split
    for solver in ("sgd", "lbfgs"):
        with pytest.warns(sklearn.exceptions.ConvergenceWarning, match="max_iter=3") as caught:
            SoftmaxRegressionClassifier(solver=solver, max_iter=3, random_state=0).fit(Xtr, ytr)
        assert all(issubclass(w.category, softmaxreg.ConvergenceWarning) for w in caught)
        assert {w.filename for w in caught} == {__file__}                 # points at the caller's fit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SoftmaxRegressionClassifier(max_iter=200, random_state=0).fit(Xtr, ytr)    # stops by its rule first
        SoftmaxRegressionClassifier(solver="lbfgs", max_iter=500, tol=1e-3).fit(Xtr / 16, ytr)
        SoftmaxRegressionClassifier(random_state=0).partial_fit(Xtr, ytr, classes=np.arange(10))


def test_verbose_prints_one_line_per_epoch(digits_split, capsys):
    Xtr, _, ytr, _ = digits_split
    SoftmaxRegressionClassifier(max_iter=3, random_state=0, verbose=1).fit(Xtr, ytr)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/3"], ["epoch", "2/3"], ["epoch", "3/3"]]
    assert "train_loss" in lines[0] and "val_loss" not in lines[0]
    SoftmaxRegressionClassifier(max_iter=3, random_state=0).fit(Xtr, ytr)
    assert capsys.readouterr().out == ""
