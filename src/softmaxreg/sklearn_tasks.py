"""scikit-learn's callback API (sklearn.callback, scikit-learn >= 1.9) for SoftmaxRegressionClassifier.

With scikit-learn 1.9 the estimator is a CallbackSupportMixin: `set_callbacks(ProgressBar(),
ScoringMonitor(...))` on it, or on a Pipeline or GridSearchCV around it, sees its fit as a task
"fit" whose subtasks are the epochs ("sgd-epoch") or iterations ("lbfgs-iter", "newton-cg-iter"),
as LogisticRegression's fit with its "lbfgs-iter" subtasks. The subtasks come from the training
loop's own hooks (callbacks.SklearnTasks), those the CLI's progress bar listens to. Older
scikit-learn (1.6 - 1.8) has no sklearn.callback: then nothing here does anything.
"""

from __future__ import annotations

import copy

from .callbacks import SklearnTasks
from .engines.array_api import to_numpy

try:
    from sklearn import callback as sklearn_callback
except ImportError:                                      # scikit-learn < 1.9
    sklearn_callback = None

__all__ = ["CallbackSupport", "with_callbacks", "FitTask", "TASK_NAMES"]

TASK_NAMES = {"sgd": "sgd-epoch", "lbfgs": "lbfgs-iter", "newton-cg": "newton-cg-iter"}


class _NoCallbackSupport:
    """Stands in for sklearn.callback.CallbackSupportMixin where scikit-learn has none."""


CallbackSupport = _NoCallbackSupport if sklearn_callback is None else sklearn_callback.CallbackSupportMixin


WRAPPER_FRAMES = 0 if sklearn_callback is None else 1      # with_callbacks's frame, between the user and fit


def with_callbacks(method):
    """sklearn.callback.with_callbacks (its callbacks torn down however `method` ends), or `method`."""
    return method if sklearn_callback is None else sklearn_callback.with_callbacks(method)


class FitTask:
    """The estimator's root task "fit" with at most `max_subtasks` epochs or iterations, on the user's
    X, y (their own labels, a Dask array's included) and sample_weight. Inert without sklearn.callback.

    `hooks(task_name, reconstruct)` are the training loop's callbacks that report the subtasks;
    `end()` ends the task with the fitted estimator. `frames`: the stack frames with_callbacks adds
    (a warning's stacklevel points past them, at the user's call)."""

    def __init__(self, estimator, X, y, sample_weight, max_subtasks: int):
        self.context = None
        self.frames = WRAPPER_FRAMES
        if sklearn_callback is None or not hasattr(estimator, "_init_callback_context"):
            return
        self.args = {"estimator": estimator, "X": X, "y": y,
                     "metadata": None if sample_weight is None else {"sample_weight": sample_weight}}
        self.context = estimator._init_callback_context(max_subtasks=max_subtasks)
        self.context.call_on_fit_task_begin(**self.args)

    def hooks(self, task_name: str, reconstruct) -> list:
        return [] if self.context is None else [SklearnTasks(self.context, task_name, self.args, reconstruct)]

    def end(self) -> None:
        if self.context is not None:
            self.context.call_on_fit_task_end(**self.args, reconstruction_attributes={})


def snapshot(model):
    """A copy of `model` whose weights stay as they are now while training moves on."""
    copied = copy.copy(model)
    copied.W, copied.b = (model.engine.asarray(to_numpy(a).copy(), dtype=model.dtype) for a in (model.W, model.b))
    return copied
