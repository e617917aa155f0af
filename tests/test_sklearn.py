"""SoftmaxRegressionClassifier as a scikit-learn citizen."""

import copy
import warnings

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from softmaxreg.sklearn import SoftmaxRegressionClassifier

# most tests here train for a few epochs on purpose; the warning itself is tested below
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

_STOCHASTIC = ("minibatch SGD is stochastic: giving a row weight 2 is equivalent to repeating it only in "
               "expectation, since repeating it changes the shuffles, the batches and the steps per epoch "
               "(scikit-learn marks its own SGDClassifier the same way)")
EXPECTED_FAILURES = {"check_sample_weight_equivalence_on_dense_data": _STOCHASTIC,
                     "check_sample_weight_equivalence_on_sparse_data": _STOCHASTIC}


@parametrize_with_checks([SoftmaxRegressionClassifier(solver="sgd", max_iter=20), SoftmaxRegressionClassifier()],
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
    pipe = Pipeline([("scale", StandardScaler()),
                     ("clf", SoftmaxRegressionClassifier(solver="sgd", max_iter=30, random_state=0))])
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
    ours = SoftmaxRegressionClassifier(solver="sgd", standardize=True, random_state=0, max_iter=5, lr=0.01).fit(Xtr, ytr)
    scaled = Pipeline([("s", StandardScaler()),
                       ("c", SoftmaxRegressionClassifier(solver="sgd", random_state=0, max_iter=5, lr=0.01))]).fit(Xtr, ytr)
    np.testing.assert_allclose(ours.predict_proba(Xte), scaled.predict_proba(Xte), rtol=1e-6, atol=1e-9)


def test_partial_fit_streams_one_epoch_at_a_time_and_warm_start_continues(digits_split):
    Xtr, Xte, ytr, yte = digits_split
    stream = SoftmaxRegressionClassifier(solver="sgd", random_state=0, lr=0.001)
    with pytest.raises(InvalidArgumentError, match="classes"):
        stream.partial_fit(Xtr[:100], ytr[:100])
    for start in range(0, len(Xtr), 300):
        stream.partial_fit(Xtr[start:start + 300], ytr[start:start + 300], classes=np.arange(10))
    assert stream.n_iter_ == -(-len(Xtr) // 300) and stream.score(Xte, yte) > 0.85
    warm = SoftmaxRegressionClassifier(solver="sgd", random_state=0, max_iter=3, warm_start=True).fit(Xtr, ytr)
    coef = warm.coef_.copy()
    warm.fit(Xtr, ytr)
    assert warm.n_iter_ == 6 and not np.array_equal(coef, warm.coef_)
    cold = SoftmaxRegressionClassifier(solver="sgd", random_state=0, max_iter=3).fit(Xtr, ytr)
    np.testing.assert_array_equal(cold.coef_, coef)


@pytest.mark.parametrize("schedule, warmup", [("cosine", 0.0), ("step", 0.0), ("constant", 1.5)])
def test_partial_fit_calls_walk_through_the_schedule(digits_split, schedule, warmup):
    """Call t is epoch t + 1 of a max_iter-epoch schedule, at the rate of its middle step: the
    same as one constant-rate epoch at that rate from the same state with the same shuffle, and
    alpha="auto" is LogisticRegression(C=1)'s penalty for SGD on the call's rows, 1 / n."""
    Xtr, _, ytr, _ = digits_split
    X, y = Xtr[:320], ytr[:320]                               # 10 steps of 32 per call
    stream = SoftmaxRegressionClassifier(solver="sgd", random_state=0, lr=0.05, momentum=0.0, batch_size=32, max_iter=4,
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
            fit(before, X, y, TrainConfig(epochs=1, batch_size=32, lr=rate, momentum=0.0, weight_decay=1 / len(X)),
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
    assert hasattr(SoftmaxRegressionClassifier(solver="sgd"), "partial_fit")
    assert not hasattr(SoftmaxRegressionClassifier(), "partial_fit")                  # L-BFGS, the default


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
        SoftmaxRegressionClassifier(solver="sgd", max_iter=200, random_state=0).fit(Xtr, ytr)   # stops by its rule first
        SoftmaxRegressionClassifier(solver="lbfgs", max_iter=500, tol=1e-3).fit(Xtr / 16, ytr)
        SoftmaxRegressionClassifier(solver="sgd", random_state=0).partial_fit(Xtr, ytr, classes=np.arange(10))


def test_verbose_prints_one_line_per_epoch(digits_split, capsys):
    Xtr, _, ytr, _ = digits_split
    SoftmaxRegressionClassifier(solver="sgd", max_iter=3, random_state=0, verbose=1).fit(Xtr, ytr)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/3"], ["epoch", "2/3"], ["epoch", "3/3"]]
    assert "train_loss" in lines[0] and "val_loss" not in lines[0]
    SoftmaxRegressionClassifier(max_iter=3, random_state=0).fit(Xtr, ytr)
    assert capsys.readouterr().out == ""


# -- round trips: save / load keep everything a refit needs ---------------------------------------

@pytest.mark.parametrize("settings", [dict(random_state=0, class_weight={"setosa": 2.0}, alpha=0.01, tol=1e-6),
                                      dict(solver="sgd", random_state=3, max_iter=15, lr=0.05, standardize=True)])
def test_save_and_load_keep_params_feature_names_and_classes_and_a_clone_refits_the_same_model(settings, tmp_path):
    from sklearn.datasets import load_iris

    pd = pytest.importorskip("pandas")
    iris = load_iris(as_frame=True)
    X, y = iris.data, pd.Series(iris.target_names[iris.target], dtype=object)     # named columns, string labels
    fitted = SoftmaxRegressionClassifier(**settings).fit(X, y)
    fitted.save(tmp_path / "m.safetensors")
    loaded = SoftmaxRegressionClassifier.load(tmp_path / "m.safetensors")
    assert loaded.get_params() == fitted.get_params()
    assert list(loaded.feature_names_in_) == list(X.columns) and loaded.feature_names_in_.dtype == object
    assert loaded.n_features_in_ == 4
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    assert loaded.classes_.dtype == fitted.classes_.dtype == object
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # no "X has feature names, but ..." warning
        np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(X.rename(columns={"sepal length (cm)": "other"}))
    refit = clone(loaded).fit(X, y)
    np.testing.assert_array_equal(refit.coef_, fitted.coef_)
    np.testing.assert_array_equal(refit.intercept_, fitted.intercept_)


def test_labels_keep_their_dtype_and_a_generator_seed_is_saved_as_none(digits_split, tmp_path):
    Xtr, _, ytr, _ = digits_split
    for labels in (ytr.astype(np.uint8), ytr.astype(np.float32) * 2 - 3, ytr > 4):
        clf = SoftmaxRegressionClassifier(max_iter=5).fit(Xtr, labels)
        clf.save(tmp_path / "m.safetensors")
        loaded = SoftmaxRegressionClassifier.load(tmp_path / "m.safetensors")
        assert loaded.classes_.dtype == clf.classes_.dtype
        np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    clf = SoftmaxRegressionClassifier(max_iter=5, random_state=np.random.default_rng(0)).fit(Xtr, ytr)
    with pytest.warns(UserWarning, match="random_state=Generator is not saved"):
        clf.save(tmp_path / "g.safetensors")
    assert SoftmaxRegressionClassifier.load(tmp_path / "g.safetensors").random_state is None


@pytest.mark.parametrize("field, value, says", [
    ("estimator_params", "{not json", "metadata estimator_params is not valid JSON"),
    ("estimator_params", '{"C": 1.0}', "metadata estimator_params: expected an object of the parameters"),
    ("estimator_params", '{"solver": "adam"}', "metadata estimator_params: solver 'adam'"),
    ("estimator_params", '{"dtype": "float32"}', "metadata estimator_params: dtype 'float32', but the tensors are float64"),
    ("estimator_params", '{"class_weight": [[1, 2, 3]]}', "metadata estimator_params: class_weight must be a list of \\[label, weight\\] pairs"),
    ("class_labels", '["a", "b"]', "metadata class_labels: expected a list of 3 labels"),
    ("class_dtype", "<V8", "metadata class_dtype: expected a NumPy dtype"),
    ("class_dtype", "|u1", "metadata class_dtype: uint8 cannot hold the class labels"),
    ("n_features_in", "5", "metadata n_features_in: expected 4"),
    ("feature_names_in", '["a", "b"]', "metadata feature_names_in: expected 4 column names"),
])
def test_a_bad_metadata_field_is_one_line_naming_the_file_and_field(tmp_path, field, value, says):
    from softmaxreg import ModelFormatError
    from softmaxreg.model_file import read_model_file, save_model

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.repeat([-1, 300, 7], 20)
    SoftmaxRegressionClassifier(max_iter=5).fit(X, y).save(tmp_path / "good.safetensors")
    tensors, meta = read_model_file(tmp_path / "good.safetensors")
    model = SoftmaxRegressionClassifier.load(tmp_path / "good.safetensors").model_
    path = tmp_path / "bad.safetensors"
    save_model(model, path, extra_metadata={**meta, field: value})
    with pytest.raises(ModelFormatError, match=f"^{path}: {says}") as info:
        SoftmaxRegressionClassifier.load(path)
    assert "\n" not in str(info.value)


def test_a_model_written_by_the_command_line_loads_with_default_parameters(tmp_path, digits_dir):
    from softmaxreg.cli import main

    assert main(["train", "--data", str(digits_dir), "--epochs", "1", "--quiet", "--no-plots",
                 "--out", str(tmp_path / "run")]) == 0
    loaded = SoftmaxRegressionClassifier.load(tmp_path / "run" / "model.safetensors")
    assert loaded.get_params() == SoftmaxRegressionClassifier(dtype="float32").get_params()
    assert list(loaded.classes_) == list(range(10)) and loaded.n_features_in_ == 64
    assert not hasattr(loaded, "feature_names_in_")


# -- the defaults are LogisticRegression's -------------------------------------------------------

@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits"])
def test_defaults_score_within_a_point_of_logistic_regression_on_the_bundled_sets(name):
    """Default settings both sides, each in a StandardScaler pipeline, 5-fold cross-validated."""
    from threadpoolctl import threadpool_limits
    import sklearn.datasets
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    X, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    # one BLAS thread: scikit-learn's OpenMP and OpenBLAS threads fight on a busy 2-core machine
    # (digits: 28 s instead of 0.8 s)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("error", sklearn.exceptions.ConvergenceWarning)   # neither side stops early
        theirs = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression()), X, y).mean()
        ours = cross_val_score(make_pipeline(StandardScaler(), SoftmaxRegressionClassifier(random_state=0)), X, y).mean()
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


def test_the_default_minimiser_is_logistic_regressions_at_c_1_with_and_without_weights():
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    weights = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
    # (scikit-learn's "balanced" counts the classes by sample weight, ours by rows: not combined here)
    for options, fit_options in [({}, {}), ({"class_weight": "balanced"}, {}),
                                 ({"class_weight": {0: 3.0}}, {"sample_weight": weights})]:
        theirs = LogisticRegression(tol=1e-10, max_iter=10000, **options).fit(X, y, **fit_options)
        ours = SoftmaxRegressionClassifier(tol=1e-9, max_iter=5000, random_state=0, **options).fit(X, y, **fit_options)
        np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-6 * np.abs(theirs.coef_).max())
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)


def test_alpha_must_be_a_number_or_auto(digits_split):
    Xtr, _, ytr, _ = digits_split
    with pytest.raises(InvalidArgumentError, match="alpha: expected a number >= 0 or 'auto', got 'none'"):
        SoftmaxRegressionClassifier(alpha="none").fit(Xtr, ytr)
