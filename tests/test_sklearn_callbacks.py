"""scikit-learn's callbacks (sklearn.callback, scikit-learn >= 1.9) on SoftmaxRegressionClassifier,
beside what LogisticRegression reports for the same setup: ProgressBar and ScoringMonitor, alone,
in a Pipeline and under GridSearchCV, for each solver; and the estimator without them."""

import os
import subprocess
import sys
import warnings
from unittest import mock

import numpy as np
import pytest

pytest.importorskip("sklearn.callback", reason="scikit-learn < 1.9 has no sklearn.callback")
from sklearn.callback import ProgressBar, ScoringMonitor                # noqa: E402
from sklearn.datasets import load_iris                                    # noqa: E402
from sklearn.exceptions import ConvergenceWarning                         # noqa: E402
from sklearn.linear_model import LogisticRegression                       # noqa: E402
from sklearn.metrics import log_loss                                      # noqa: E402
from sklearn.model_selection import GridSearchCV                          # noqa: E402
from sklearn.pipeline import make_pipeline                                # noqa: E402
from sklearn.preprocessing import StandardScaler                          # noqa: E402

import softmaxreg.sklearn_tasks as sklearn_tasks                          # noqa: E402
from softmaxreg import fit                                                # noqa: E402
from softmaxreg.callbacks import SklearnTasks                             # noqa: E402
from softmaxreg.hooks import Callback                                     # noqa: E402
from softmaxreg.options import TrainConfig                                # noqa: E402
from softmaxreg.model import SoftmaxRegression                            # noqa: E402
from softmaxreg.sklearn import SoftmaxRegressionClassifier                # noqa: E402

SOLVERS = {"sgd": "sgd-epoch", "lbfgs": "lbfgs-iter", "newton-cg": "newton-cg-iter"}
MAX_ITER = 6                                 # few enough that every solver runs them all on raw iris


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]          # labels that are not 0..k-1


def ours(solver, **params):
    return SoftmaxRegressionClassifier(**{"solver": solver, "max_iter": MAX_ITER, "random_state": 0, **params})


def theirs(**params):
    return LogisticRegression(max_iter=MAX_ITER, **params)


SETUPS = {                                   # (estimator) -> what to fit, and its name in the grid
    "alone": lambda est: est,
    "pipeline": lambda est: make_pipeline(StandardScaler(), est),
    "grid": lambda est: GridSearchCV(make_pipeline(StandardScaler(), est),
                                     {f"{type(est).__name__.lower()}__max_iter": [MAX_ITER - 1, MAX_ITER]}, cv=2),
}


def fitted(setup, est, X, y, *callbacks):
    outer = SETUPS[setup](est)
    outer = outer.set_callbacks(*callbacks) if callbacks else outer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)                 # few iterations on purpose
        return outer.fit(X, y)


def generic(name: str) -> str:
    """Our names and LogisticRegression's as one: the estimator and its iteration task."""
    return {"SoftmaxRegressionClassifier": "EST", "LogisticRegression": "EST",
            **{task: "ITER" for task in (*SOLVERS.values(), "lbfgs-iter")}}.get(name, name)


# -- ScoringMonitor -------------------------------------------------------------------------------

def monitored(setup, est, X, y):
    """ScoringMonitor is not auto-propagated: it is set on the estimator, which a Pipeline or a
    search (clone keeps the callbacks) then fits in its own task tree."""
    monitor = ScoringMonitor(scoring=["accuracy", "neg_log_loss"])
    est.set_callbacks(monitor)
    outer = fitted(setup, est, X, y)
    return outer, monitor.get_logs(include_lineage=True).data


def shape(rows):
    """The log's structure: the sorted (depth, estimator, task, score names) of its rows."""
    return sorted({(len(r["task_id_path"]), generic(r["estimator_name"]), generic(r["task_name"]),
                    "accuracy" in r and "neg_log_loss" in r) for r in rows})


@pytest.mark.parametrize("solver", SOLVERS)
def test_scoring_monitor_alone_scores_each_iteration_and_the_fit(iris, solver):
    X, y = iris
    est, rows = monitored("alone", ours(solver), X, y)
    iterations = [r for r in rows if r["task_name"] == SOLVERS[solver]]
    assert [r["task_id_path"] for r in iterations] == [(0, i) for i in range(est.n_iter_)]
    assert est.n_iter_ == MAX_ITER
    (root,) = [r for r in rows if r["task_id_path"] == (0,)]
    assert root["task_name"] == "fit" and root["estimator_name"] == "SoftmaxRegressionClassifier"
    assert root["accuracy"] == est.score(X, y)
    assert root["neg_log_loss"] == pytest.approx(-log_loss(y, est.predict_proba(X)), rel=1e-12)
    assert iterations[-1]["neg_log_loss"] == pytest.approx(root["neg_log_loss"], rel=1e-12)   # the last weights
    assert len({r["neg_log_loss"] for r in iterations}) > 1               # each at its own weights
    if solver != "sgd":                                                    # full batch: the loss falls
        losses = [-r["neg_log_loss"] for r in iterations]
        assert losses[-1] < losses[0]
    _, theirs_rows = monitored("alone", theirs(), X, y)
    assert shape(rows) == shape(theirs_rows)


@pytest.mark.parametrize("setup", ["pipeline", "grid"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_scoring_monitor_reaches_the_estimator_in_meta_estimators(iris, solver, setup):
    X, y = iris
    outer, rows = monitored(setup, ours(solver), X, y)
    _, theirs_rows = monitored(setup, theirs(), X, y)
    assert shape(rows) == shape(theirs_rows)
    ours_fits = {r["task_id_path"][:-1] for r in rows if r["task_name"] == SOLVERS[solver]}
    theirs_fits = {r["task_id_path"][:-1] for r in theirs_rows if r["task_name"] == "lbfgs-iter"}
    assert ours_fits == theirs_fits and ours_fits                         # the same fits, at the same places
    if setup == "pipeline":                                               # the pipeline's score is its last estimator's
        (last,) = [r for r in rows if r["estimator_name"] == "SoftmaxRegressionClassifier" and r["task_name"] == "fit"]
        assert last["accuracy"] == outer.score(X, y)


# -- ProgressBar ----------------------------------------------------------------------------------

def progress_events(setup, est, X, y, capsys):
    """The tasks ProgressBar's monitor begins and ends, and what it printed."""
    from sklearn.callback._progressbar import RichProgressMonitor

    events = []
    begin, end = RichProgressMonitor._on_task_begin, RichProgressMonitor._on_task_end

    def on_begin(self, info):
        events.append(("begin", dict(info)))
        begin(self, info)

    def on_end(self, info):
        events.append(("end", dict(info)))
        end(self, info)

    capsys.readouterr()
    with mock.patch.object(RichProgressMonitor, "_on_task_begin", on_begin), \
            mock.patch.object(RichProgressMonitor, "_on_task_end", on_end):
        outer = fitted(setup, est, X, y, ProgressBar(max_propagation_depth=None))
    return outer, events, capsys.readouterr().out


def bars(events):
    return [(len(i["path"]), generic(i["estimator_name"]), i["task_name"], i.get("source_task_name"))
            for kind, i in events if kind == "begin"]


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_progress_bar_shows_our_epochs_or_iterations(iris, solver, setup, capsys):
    X, y = iris
    _, events, out = progress_events(setup, ours(solver), X, y, capsys)
    _, theirs_events, _ = progress_events(setup, theirs(), X, y, capsys)
    assert bars(events) == bars(theirs_events)                            # the same bars at the same places
    assert "SoftmaxRegressionClassifier - fit" in out
    assert "100%" in out or setup == "grid"                              # the grid's wide lines get cut
    ours_bars = [i for kind, i in events if kind == "begin" and i["estimator_name"] == "SoftmaxRegressionClassifier"]
    assert ours_bars and all(i["max_subtasks"] == MAX_ITER or setup == "grid" for i in ours_bars)
    if setup == "alone":                                                  # one end per epoch or iteration, then the fit's
        ends = [i["path"] for kind, i in events if kind == "end"]
        assert ends == [[0, i] for i in range(MAX_ITER)] + [[0]]


# -- one mechanism: the training loop's hooks -----------------------------------------------------

class FakeContext:
    """Stands in for sklearn's CallbackContext: records the subtasks' hooks."""

    def __init__(self):
        self.calls = []

    def subcontext(self, task_name):
        self.calls.append(("subtask", task_name))
        return self

    def call_on_fit_task_begin(self, **args):
        self.calls.append(("begin", sorted(args)))

    def call_on_fit_task_end(self, reconstruction_attributes=None, **args):
        self.calls.append(("end", reconstruction_attributes() if callable(reconstruction_attributes) else None))


def test_sklearn_tasks_is_a_hook_of_the_training_loop():
    """SklearnTasks is a plain softmaxreg Callback: softmaxreg.fit (the CLI's loop) drives it."""
    X, y = load_iris(return_X_y=True)
    context, seen = FakeContext(), []
    tasks = SklearnTasks(context, "sgd-epoch", {"estimator": None}, lambda model: seen.append(model.W.copy()) or {})
    assert isinstance(tasks, Callback)
    model = SoftmaxRegression(4, 3, seed=0)
    history = fit(model, X, y, TrainConfig(epochs=3, batch_size=50, lr=0.01), seed=0, callbacks=[tasks])
    assert len(history) == 3
    assert context.calls == [("subtask", "sgd-epoch"), ("begin", ["estimator"]), ("end", {})] * 3
    assert not np.array_equal(seen[0], seen[-1]) and np.array_equal(seen[-1], model.W)


# -- Dask: the user's labels reach the callbacks --------------------------------------------------

class LabelsSeen:
    """A FitCallback that keeps the y each ended task was given."""

    def __init__(self):
        self.labels = []

    def setup(self, estimator, context): ...
    def on_fit_task_begin(self, estimator, context): ...
    def teardown(self, estimator, context): ...

    def on_fit_task_end(self, estimator, context, *, y=None):
        self.labels.append(y)


def test_dask_fit_reports_iterations_with_the_users_labels(iris):
    da = pytest.importorskip("dask.array", reason="dask is an optional extra")
    X, y = iris
    seen, monitor = LabelsSeen(), ScoringMonitor(scoring="accuracy")
    est = ours("lbfgs").set_callbacks(seen, monitor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(da.from_array(X, chunks=50), da.from_array(y, chunks=50))
    assert len(seen.labels) == est.n_iter_ + 1
    assert all(np.array_equal(np.asarray(labels), y) for labels in seen.labels)
    rows = monitor.get_logs().data
    assert [r["task_name"] for r in rows] == ["fit"] + ["lbfgs-iter"] * est.n_iter_
    assert rows[0]["accuracy"] == est.score(X, y)


# -- without sklearn.callback (scikit-learn 1.6 - 1.8) --------------------------------------------

def test_without_the_callback_api_fit_is_unchanged(iris, monkeypatch):
    X, y = iris
    reference = ours("lbfgs", max_iter=100).fit(X, y)
    monkeypatch.setattr(sklearn_tasks, "sklearn_callback", None)
    monitor = ScoringMonitor(scoring="accuracy")
    est = ours("lbfgs", max_iter=100).set_callbacks(monitor).fit(X, y)
    np.testing.assert_array_equal(est.coef_, reference.coef_)
    with pytest.raises(ValueError, match="No logs"):                       # no task was reported
        monitor.get_logs()


def test_without_sklearn_callback_module_the_estimator_works(iris, tmp_path):
    """scikit-learn 1.6 - 1.8 simulated: sklearn.callback made unimportable before softmaxreg.sklearn
    is imported (scikit-learn 1.9's own modules, which need it, imported first)."""
    X, y = iris
    np.savez(tmp_path / "iris.npz", X=X, y=y)
    code = ("import sys, warnings, numpy as np, sklearn.base, sklearn.preprocessing, sklearn.utils.validation\n"
            "del sklearn.callback; sys.modules['sklearn.callback'] = None\n"
            "from softmaxreg.sklearn import SoftmaxRegressionClassifier as C\n"
            "import softmaxreg.sklearn_tasks as tasks; assert tasks.sklearn_callback is None\n"
            f"data = np.load({str(tmp_path / 'iris.npz')!r})\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    est = C(max_iter=6, random_state=0).fit(data['X'], data['y'])\n"
            "assert not hasattr(est, 'set_callbacks')\n"
            "assert [w.filename for w in caught] == ['<string>'], caught     # the warning points at the caller\n"
            f"np.save({str(tmp_path / 'coef.npy')!r}, est.coef_)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = SoftmaxRegressionClassifier(max_iter=6, random_state=0).fit(X, y).coef_
    np.testing.assert_array_equal(np.load(tmp_path / "coef.npy"), expected)
