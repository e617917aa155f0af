"""SoftmaxRegressionClassifier: softmaxreg as a scikit-learn estimator.

Follows scikit-learn's developer rules: no work in __init__, parameters stored as given,
fit returns self, learned attributes end in "_", inputs checked with validate_data.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .callbacks import ConsoleLog
from .errors import ConvergenceWarning as SoftmaxregConvergenceWarning
from .errors import InvalidArgumentError
from .datasets.batches import num_batches
from .functional import log_softmax, softmax
from .model import SoftmaxRegression
from .solvers import OPTIMIZERS, SGD
from .options import TrainConfig, class_weight_vector, example_weights
from .engines import engine_for
from .moments import standardization
from .train import fit
from .sklearn_tasks import TASK_NAMES, CallbackSupport, FitTask, snapshot, with_callbacks

__all__ = ["SoftmaxRegressionClassifier", "ConvergenceWarning"]


class ConvergenceWarning(SoftmaxregConvergenceWarning, SklearnConvergenceWarning):
    """The estimator's warning that a solver stopped before its stopping rule held: softmaxreg's
    ConvergenceWarning and scikit-learn's at once, so a filter on either one catches it (as
    `warnings.filterwarnings("ignore", category=sklearn.exceptions.ConvergenceWarning)` in a grid
    search does for scikit-learn's own estimators)."""


SPARSE = ["csr", "csc", "coo"]
"""Sparse formats validate_data passes on as they are (any other is converted to the first): the
sparse engine reads them through their products (engines/sparse.py)."""


class SoftmaxRegressionClassifier(CallbackSupport, ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression, written from scratch: by default scikit-learn's
    LogisticRegression() (C = 1, L-BFGS to the exact optimum); minibatch SGD one parameter away.

    Parameters
    ----------
    solver : "lbfgs" (the default) or "newton-cg": full-batch L-BFGS or Newton-CG to the exact
        optimum of mean_w(loss) + (alpha / 2) |W|^2, the weighted mean over N = sum of the example
        weights (sample weight times class weight; the number of rows unweighted); "sgd": minibatch
        SGD, whose minibatch means estimate (1 / n) sum_i w_i loss_i + (alpha / 2) |W|^2 over the n
        rows. Like scikit-learn's, the estimator keeps every parameter; the solver reads those it
        declares (softmaxreg.solvers) and ignores the rest.
    alpha : L2 penalty (alpha / 2) |W|^2 (the intercept is not penalised), a number >= 0 or "auto"
        (the default): LogisticRegression(C)'s penalty is alpha = 1 / (C * N) for the full-batch
        solvers and alpha = 1 / (C * n) for SGD (N, n as above: both are n without weights), and
        "auto" is that with C = 1, computed from the data each fit gets (partial_fit: the rows of
        each call). So the default minimiser is LogisticRegression()'s, and alpha = 1 / (C * n)
        gives LogisticRegression(C=C)'s.
    max_iter : full-batch iterations, or SGD epochs.
    tol : full batch: stop when max |gradient| <= tol; SGD: least training (or held-out) loss
        improvement over n_iter_no_change epochs.
    lr : SGD learning rate, or "auto": 2 / mean_i |x_i|^2 over the (standardized) training rows,
        a step safely below the inverse curvature of the loss for any scale of features.
    batch_size, momentum, nesterov, schedule ("constant", "step", "cosine"), warmup_epochs,
    early_stopping, validation_fraction, n_iter_no_change: SGD only, as in `softmaxreg.fit`.
    label_smoothing, class_weight (dict or "balanced"): as in `softmaxreg.fit`.
    standardize : True: learn per-feature mean and std on the training data and apply them inside
        the model (kept in saved models); "scale": divide by the std without centring
        (StandardScaler(with_mean=False)), the one sparse X takes (True is refused there: centring
        would make it dense). X may be a scipy.sparse matrix or array (CSR, CSC, COO; others are
        converted to CSR): it is read through its products, never densified.
    early_stopping : (SGD) hold out validation_fraction of the data and stop after n_iter_no_change
        epochs without improving its loss by tol (best weights restored); otherwise stop when
        the training loss stops improving by tol for n_iter_no_change epochs.
    warm_start : fit continues from the previous solution.
    random_state : int, None, numpy Generator or RandomState: initialisation and shuffles.
    dtype : "float64" (default) or "float32".
    verbose : int, 0 (default) silent; > 0 prints one line per epoch (L-BFGS: iteration) to stdout.
    num_classes : None (default: the classes are the labels y holds), or K: integer labels name the
        classes 0..K-1, some of which may have no training rows (a label outside is an error);
        `fit(..., classes=...)` names them explicitly instead.
    loss, num_sampled, sampler : (SGD, momentum=0) loss="sampled" trains with sampled softmax: each
        step's logits for the batch's classes and num_sampled classes drawn from sampler ("unigram",
        "uniform", "log-uniform"), as in `softmaxreg.fit`; predictions and scores use the full softmax.

    `fit` warns with a ConvergenceWarning (also scikit-learn's) when it stops at max_iter before its
    stopping rule holds: SGD's loss still improving by more than tol, or L-BFGS's gradient above tol.
    `save` and `load` keep the parameters (get_params()), classes_, n_features_in_ and
    feature_names_in_, so `clone(SoftmaxRegressionClassifier.load(path)).fit` refits the same model.

    Attributes
    ----------
    classes_, coef_ (k, d), intercept_ (k,), n_features_in_, feature_names_in_ (fitted on named
    columns), n_iter_ (epochs or iterations run), loss_curve_ (training loss per epoch or
    iteration), model_ (the SoftmaxRegression).
    """

    def __init__(self, *, solver="lbfgs", alpha="auto", lr="auto", batch_size=64, max_iter=100, momentum=0.9, nesterov=True,
                 schedule="constant", warmup_epochs=0.0, label_smoothing=0.0, class_weight=None,
                 standardize=False, early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
                 warm_start=False, sigma=0.01, random_state=None, dtype="float64", verbose=0, num_classes=None,
                 loss="full", num_sampled=None, sampler="unigram"):
        self.solver = solver
        self.alpha = alpha
        self.lr = lr
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.momentum = momentum
        self.nesterov = nesterov
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.standardize = standardize
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.sigma = sigma
        self.random_state = random_state
        self.dtype = dtype
        self.verbose = verbose
        self.num_classes = num_classes
        self.loss = loss
        self.num_sampled = num_sampled
        self.sampler = sampler

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.poor_score = False
        tags.input_tags.sparse = True
        return tags

    # -- fitting ------------------------------------------------------------------------------

    def _rng(self) -> np.random.Generator:
        rs = self.random_state
        if isinstance(rs, np.random.Generator):
            return rs
        if rs is None or isinstance(rs, (int, np.integer)):
            return np.random.default_rng(rs)
        return np.random.default_rng(check_random_state(rs).randint(2**31))

    def _config(self, epochs: int, lr: float, weight_decay: float = 0.0) -> TrainConfig:
        class_weight = self.class_weight
        if isinstance(class_weight, dict):                    # labels -> class indices
            index = {c: i for i, c in enumerate(self.classes_.tolist())}
            unknown = [c for c in class_weight if c not in index]
            if unknown:
                raise InvalidArgumentError(f"class_weight: labels {unknown} are not among the classes")
            class_weight = {index[c]: w for c, w in class_weight.items()}
        solver = self._solver()
        # every parameter the estimator has, as TrainConfig fields; the solver takes those it declares
        settings = dict(batch_size=self.batch_size, lr=lr, momentum=self.momentum, nesterov=self.nesterov,
                        schedule=self.schedule, warmup_epochs=self.warmup_epochs, early_stopping=self.early_stopping,
                        validation_fraction=self.validation_fraction, patience=self.n_iter_no_change, tol=self.tol,
                        converge=not self.early_stopping)
        settings["max_iter" if "max_iter" in solver.options else "epochs"] = epochs
        return TrainConfig(solver=solver.name, weight_decay=weight_decay, label_smoothing=self.label_smoothing,
                           loss=self.loss, num_sampled=self.num_sampled, sampler=self.sampler,
                           class_weight=class_weight,
                           **{name: value for name, value in settings.items() if name in solver.options})

    def _weight_decay(self, y, sample_weight) -> float:
        """The objective's L2 weight: alpha, or for alpha="auto" LogisticRegression(C=1)'s, 1 / N for
        the full-batch solvers (N the sum of the example weights: their objective is the weighted
        mean) and 1 / n for SGD (n rows: its minibatch means are plain means). y: class indices."""
        if isinstance(self.alpha, str) and self.alpha != "auto":
            raise InvalidArgumentError(f"alpha: expected a number >= 0 or 'auto', got {self.alpha!r}")
        if not isinstance(self.alpha, str):
            return self.alpha
        weighted = self._solver().full_batch and (sample_weight is not None or self.class_weight is not None)
        total = self._weight_total(y, sample_weight) if weighted else y.shape[0]
        return 1.0 / total if total > 0 else 0.0        # no weight, or Dask's unknown row count: fit says so

    def _weight_total(self, y, sample_weight) -> float:
        """N = sum_i sample_weight_i * class_weight(y_i) over the rows (y: class indices, NumPy or Dask)."""
        k, class_weight = len(self.classes_), self._config(1, 1.0).class_weight
        if engine_for(y, sample_weight).name != "dask":
            return float(example_weights(y, k, sample_weight, class_weight, np.float64).sum())
        from .engines import dask as dask_engine
        from .engines.dask_cluster import compute

        if sample_weight is not None and np.shape(sample_weight) != tuple(y.shape):
            raise InvalidArgumentError(f"sample_weight: expected {y.shape[0]} weights like y, got shape "
                                       f"{sample_weight.shape}")
        da = dask_engine.da
        weights = None if sample_weight is None else da.asarray(sample_weight).rechunk(y.chunks)
        counts, sums = compute((da.bincount(y, minlength=k), da.bincount(y, weights=weights, minlength=k)))
        per_class = np.ones(k) if class_weight is None else class_weight_vector(class_weight, k, counts)
        return float(per_class @ sums)

    def _classes(self, classes, found) -> np.ndarray:
        """classes_: the given `classes`, else 0..num_classes-1 (integer labels, some classes maybe
        without rows), else found() (the labels that occur)."""
        if classes is not None:
            return np.unique(np.asarray(classes))
        if self.num_classes is not None:
            if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, (int, np.integer)) \
                    or self.num_classes < 2:
                raise InvalidArgumentError(f"num_classes: expected an integer >= 2, got {self.num_classes!r}")
            return np.arange(self.num_classes)
        return found()

    def _solver(self):
        """The solver class named by `solver` (softmaxreg.solvers.OPTIMIZERS)."""
        if self.solver not in OPTIMIZERS:
            raise InvalidArgumentError(f"solver: expected one of {', '.join(map(repr, OPTIMIZERS))}, got {self.solver!r}")
        return OPTIMIZERS[self.solver]

    def _new_model(self, n_features: int, rng) -> SoftmaxRegression:
        if len(self.classes_) < 2:
            raise InvalidArgumentError(f"y: needs at least 2 classes to learn from, got {len(self.classes_)} class")
        return SoftmaxRegression(n_features, len(self.classes_), self.sigma, seed=rng, dtype=self.dtype,
                                 class_names=[str(c) for c in self.classes_])

    def _learning_rate(self, model: SoftmaxRegression, X: np.ndarray, y, sample_weight) -> float:
        """lr="auto": 2 / (mean_i |x_i|^2 * max_i w_i), below the inverse curvature of the loss (y: class indices)."""
        if self.lr != "auto":
            return float(self.lr)
        if model.mean is not None and self.standardize is True:
            mean_sq = X.shape[1]                 # standardized rows have mean squared norm d
        else:                                    # the sum of the squares of the (scaled) features over n
            squares = engine_for(X).moment_sums(X, 1.0)[1]
            if model.mean is not None:                                   # standardize="scale"
                squares = squares / np.square(model.std.astype(np.float64))
            mean_sq = float(squares.sum()) / X.shape[0]
        w = example_weights(y, len(self.classes_), sample_weight, self._config(1, 1.0).class_weight,
                            np.float64)
        return 2.0 / max(mean_sq * (1.0 if w is None else float(w.max())), 1e-12)

    def _encode(self, y) -> np.ndarray:
        indices = np.searchsorted(self.classes_, y)
        if np.any(indices >= len(self.classes_)) or np.any(self.classes_[np.minimum(indices, len(self.classes_) - 1)] != y):
            raise InvalidArgumentError(f"y: labels not seen in `classes`: {sorted(set(np.asarray(y).tolist()) - set(self.classes_.tolist()))}")
        return indices

    def _train(self, X, y, sample_weight, epochs: int, streaming: bool, encoded: bool = False, task=None):
        """Train on (X, y): y the labels, or (encoded) their class indices; a FitTask `task` is told
        each epoch or iteration."""
        y = y if encoded else self._encode(y)
        weight_decay = self._weight_decay(y, sample_weight)
        rng = self._rng()
        continuing = hasattr(self, "model_") and (streaming or self.warm_start)
        if not continuing:
            self.model_ = self._new_model(X.shape[1], rng)
            if self.standardize and engine_for(X).name != "dask":        # on Dask, fit's pass over the chunks sets it
                self.model_.set_standardization(*standardization(self.model_, X, self.standardize))
            self.n_iter_, self.loss_curve_ = 0, []
        if self._solver().full_batch:                               # each fit starts afresh from model_'s weights
            config, optimizer = self._config(epochs, 1.0, weight_decay), None
            config.standardize = engine_for(X).name == "dask" and self.standardize and self.model_.mean is None
        else:
            if not continuing or not hasattr(self, "_optimizer"):    # a loaded model gets a fresh optimizer
                self.lr_ = self._learning_rate(self.model_, X, y, sample_weight)
                self._optimizer = SGD(momentum=self.momentum, nesterov=self.nesterov)
            config, optimizer = self._config(epochs, self.lr_, weight_decay), self._optimizer
            if streaming and (config.schedule != "constant" or config.warmup_epochs):
                # partial_fit call t is epoch t + 1 of a max_iter-epoch schedule, at the rate of its middle step
                steps = num_batches(X.shape[0], config.batch_size)
                schedule = config.lr_schedule(steps, epochs=max(self.max_iter, 1))
                rate = schedule(self.n_iter_ * steps + steps // 2)
                if rate == 0.0:                                 # past a cosine's end nothing moves
                    self.n_iter_ += 1
                    self.loss_curve_.append(self.model_.evaluate(X, y)[0])
                    return self
                config = replace(config, lr=rate, schedule="constant", warmup_epochs=0.0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SoftmaxregConvergenceWarning)
            hooks = [ConsoleLog(progress=False)] if self.verbose else []
            hooks += task.hooks(TASK_NAMES.get(self.solver, self.solver), self._fitted_at) if task else []
            history = fit(self.model_, X, y, config, seed=rng, sample_weight=sample_weight,
                          optimizer=optimizer, callbacks=hooks)
        level = 3 + (task.frames if task is not None else 0)       # the user's fit or partial_fit
        for w in caught:                                 # fit's warnings; L-BFGS's as the estimator's class
            converging = issubclass(w.category, SoftmaxregConvergenceWarning)
            warnings.warn(ConvergenceWarning(str(w.message)) if converging else w.message, stacklevel=level)
        if not streaming and not self._solver().full_batch and len(history) == epochs and not history.stopped_early:
            rule = "held-out" if self.early_stopping else "training"
            warnings.warn(ConvergenceWarning(
                f"SGD stopped at max_iter={epochs} epochs while the {rule} loss was still improving by more than "
                f"tol={self.tol:g} within n_iter_no_change={self.n_iter_no_change} epochs; increase max_iter"),
                stacklevel=level)
        self.n_iter_ += len(history)
        self.loss_curve_ += [r.train_loss for r in history]
        W, b = self._folded()
        self.coef_, self.intercept_ = W.T.copy(), b.copy()
        if task is not None:
            task.end()
        return self

    def _fitted_at(self, model) -> dict:
        """The attributes that make a copy of this estimator the fitted one at `model`'s current
        weights (sklearn.callback's reconstruction attributes: what ScoringMonitor scores)."""
        model = snapshot(model)
        W, b = self._folded(model)
        return {"model_": model, "coef_": W.T.copy(), "intercept_": b.copy()}

    def _folded(self, model=None):
        """(W, b) acting on raw features: standardization and scale folded in (of model_, or `model`).
        With nothing to fold W is the model's own array (callers copy it into coef_): no (d, k)
        temporary beside the model's W and coef_ when the fit ends."""
        m = self.model_ if model is None else model
        if m.mean is None:
            return (m.W if m.input_scale == 1 else m.W * m.input_scale), m.b.copy()
        a = m.input_scale / m.std
        return m.W * a[:, None], m.b - (m.mean / m.std) @ m.W

    @with_callbacks
    def fit(self, X, y, sample_weight=None, classes=None):
        """Fit on (X, y); returns self. `classes` (optional) fixes the labels; a label outside them is
        an error. X, y (and sample_weight) may be Dask arrays chunked by rows (solver="lbfgs"): the
        fit runs on the chunks where they live (softmaxreg.engines.dask), the classes found in one
        pass unless given, and the result is the same as for the same data in memory.

        With scikit-learn >= 1.9, callbacks set by `set_callbacks` (sklearn.callback: ProgressBar,
        ScoringMonitor), here or on a Pipeline or search around it, see the fit as a task "fit" of
        at most max_iter subtasks: the epochs ("sgd-epoch") or iterations ("lbfgs-iter",
        "newton-cg-iter"), each scored (ScoringMonitor) at the weights it ended with."""
        if engine_for(X, y, sample_weight).name == "dask":
            return self._fit_dask(X, y, sample_weight, classes)
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], accept_sparse=SPARSE)
        check_classification_targets(y)
        if not (self.warm_start and hasattr(self, "model_")):
            self.classes_ = self._classes(classes, lambda: np.unique(y))
        task = FitTask(self, X, y, sample_weight, max_subtasks=self.max_iter)
        return self._train(X.astype(self.dtype, copy=False), y, sample_weight, self.max_iter, streaming=False, task=task)

    def _fit_dask(self, X, y, sample_weight, classes):
        from .engines import dask as dask_engine

        if not self._solver().full_batch:
            raise InvalidArgumentError(f"solver: Dask arrays need a full-batch solver ('lbfgs' or 'newton-cg'), "
                                       f"not {self.solver!r}")
        if X.ndim != 2:
            raise InvalidArgumentError(f"X: expected a 2-d Dask array (n, d), got shape {X.shape}")
        y = y if engine_for(y).name == "dask" else dask_engine.da.from_array(np.asarray(y))
        if y.ndim != 1:
            raise InvalidArgumentError(f"y: expected labels of shape (n,), got {y.shape}")
        if not (self.warm_start and hasattr(self, "model_")):
            self.n_features_in_ = X.shape[1]
            self.classes_ = self._classes(classes, lambda: dask_engine.find_classes(y))
        elif X.shape[1] != self.n_features_in_:
            raise InvalidArgumentError(f"X: has {X.shape[1]} features, but the estimator was fitted with "
                                       f"{self.n_features_in_}")
        task = FitTask(self, X, y, sample_weight, max_subtasks=self.max_iter)        # the user's labels
        return self._train(X, dask_engine.encode_labels(y, self.classes_), sample_weight, self.max_iter,
                           streaming=False, encoded=True, task=task)

    @available_if(lambda self: self.solver in OPTIMIZERS and not OPTIMIZERS[self.solver].full_batch)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing from the current state; `classes` is required on the first call.

        With a schedule other than "constant" (or a warm-up), call t (counting from 0) is epoch
        t + 1 of a max_iter-epoch schedule: its rate is the one `fit` would use at that epoch's
        middle step, held for the whole call. Past max_iter calls "cosine" stays at 0 and "step"
        keeps multiplying the rate by gamma every step_epochs calls."""
        first = not hasattr(self, "classes_")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], accept_sparse=SPARSE, reset=first)
        check_classification_targets(y)
        if first:
            if classes is None and self.num_classes is None:
                raise InvalidArgumentError("classes: must be given on the first call to partial_fit (or num_classes)")
            self.classes_ = self._classes(classes, None)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise InvalidArgumentError("classes: must be the same on every call to partial_fit")
        return self._train(X.astype(self.dtype, copy=False), y, sample_weight, 1, streaming=True)

    # -- predicting ---------------------------------------------------------------------------

    def _by_blocks(self, method, X, width: str | None, dtype=np.float64):
        """The lazy Dask array of `method` on each row block of a Dask X (n, d): (n,), or (n, k) with
        width "classes", computed where the blocks live."""
        check_is_fitted(self)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise InvalidArgumentError(f"X: expected a Dask array of shape (n, {self.n_features_in_}), got {X.shape}")
        X = X.rechunk({1: -1})
        if width is None:
            return X.map_blocks(method, drop_axis=1, dtype=dtype)
        return X.map_blocks(method, chunks=(X.chunks[0], (len(self.classes_),)), dtype=dtype)

    def _logits(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32], accept_sparse=SPARSE)
        return self.model_.logits(X.astype(self.dtype, copy=False)).astype(np.float64)

    # A Dask X gives a lazy Dask array, block by block (compute() it, or keep it distributed).

    def decision_function(self, X):
        """Logits (n, k); for two classes the logit difference (n,), as scikit-learn expects."""
        if engine_for(X).name == "dask":
            check_is_fitted(self)
            return self._by_blocks(self.decision_function, X, None if len(self.classes_) == 2 else "classes")
        z = self._logits(X)
        return z[:, 1] - z[:, 0] if len(self.classes_) == 2 else z

    def predict_proba(self, X):
        if engine_for(X).name == "dask":
            return self._by_blocks(self.predict_proba, X, "classes")
        return softmax(self._logits(X), axis=1)

    def predict_log_proba(self, X):
        if engine_for(X).name == "dask":
            return self._by_blocks(self.predict_log_proba, X, "classes")
        return log_softmax(self._logits(X), axis=1)

    def predict(self, X):
        if engine_for(X).name == "dask":
            check_is_fitted(self)
            return self._by_blocks(self.predict, X, None, self.classes_.dtype)
        z = self._logits(X)                              # first: an unfitted estimator says so
        return self.classes_[np.argmax(z, axis=1)]

    # -- files ----------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Save the fitted model (standardization included) as a safetensors file, with the estimator's
        parameters (get_params()), classes_, n_features_in_ and feature_names_in_ as JSON metadata
        that `load` checks and restores. A random_state that is a Generator or RandomState is saved as
        None (with a warning): its state is not a parameter value."""
        from .sklearn_file import save_estimator

        save_estimator(self, path)

    @classmethod
    def load(cls, path) -> "SoftmaxRegressionClassifier":
        """A fitted classifier from a file written by `save` (its parameters, classes_,
        n_features_in_ and feature_names_in_ restored), or by `softmaxreg train` (default parameters,
        classes 0..k-1). Each metadata field is checked; a bad one is a ModelFormatError naming it."""
        from .sklearn_file import load_estimator

        return load_estimator(cls, path)
