"""The estimator's model file: SoftmaxRegressionClassifier.save/load write and read a safetensors
model file (softmaxreg.model_file) with the estimator's parameters, classes_, n_features_in_ and
feature_names_in_ as JSON metadata, each field checked on load."""

from __future__ import annotations

import json
import warnings

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .errors import InvalidArgumentError, ModelFormatError
from .solvers import OPTIMIZERS

__all__ = ["save_estimator", "load_estimator"]


def save_estimator(clf, path) -> None:
    """SoftmaxRegressionClassifier.save's body (see there)."""
    from .model_file import save_model

    check_is_fitted(clf)
    params = {}
    for name, value in clf.get_params(deep=False).items():
        params[name] = _param_to_json(name, value)
    meta = {"class_labels": _to_json("class labels", clf.classes_.tolist()),
            "class_dtype": clf.classes_.dtype.str, "n_features_in": str(clf.n_features_in_),
            "estimator_params": json.dumps(params)}
    if hasattr(clf, "feature_names_in_"):
        meta["feature_names_in"] = json.dumps([str(name) for name in clf.feature_names_in_])
    save_model(clf.model_, path, extra_metadata=meta)


def load_estimator(cls, path):
    """SoftmaxRegressionClassifier.load's body (see there): a fitted `cls`."""
    from .model_file import model_from_tensors, read_model_file

    tensors, meta = read_model_file(path)
    model = model_from_tensors(tensors, meta, path)
    field = _MetadataField(meta, path)
    params = field.read("estimator_params", {"dtype": model.dtype.name})
    field.check("estimator_params", isinstance(params, dict) and set(params) <= set(cls._get_param_names()),
                f"expected an object of the parameters {', '.join(cls._get_param_names())}")
    if isinstance(params.get("class_weight"), list):        # saved as [[label, weight], ...]
        pairs = params["class_weight"]
        field.check("estimator_params", all(isinstance(p, list) and len(p) == 2 for p in pairs),
                    "class_weight must be a list of [label, weight] pairs")
        params["class_weight"] = {label: weight for label, weight in pairs}
    solver = params.get("solver", cls().solver)
    field.check("estimator_params", isinstance(solver, str) and solver in OPTIMIZERS,
                f"solver {params.get('solver')!r} is none of {', '.join(OPTIMIZERS)}")
    field.check("estimator_params", params.get("dtype", model.dtype.name) == model.dtype.name,
                f"dtype {params.get('dtype')!r}, but the tensors are {model.dtype.name}")
    labels = field.read("class_labels", list(range(model.num_outputs)))
    field.check("class_labels", isinstance(labels, list) and len(labels) in (model.num_outputs, 1)
                and all(isinstance(c, (str, int, float, bool)) for c in labels),
                f"expected a list of {model.num_outputs} labels (str, int, float, bool)")
    clf = cls(**params)
    clf.model_, clf.classes_ = model, field.classes(labels)
    clf.n_features_in_ = field.read("n_features_in", model.num_inputs)
    field.check("n_features_in", clf.n_features_in_ == model.num_inputs and type(clf.n_features_in_) is int,
                f"expected {model.num_inputs}, the model's number of inputs")
    names = field.read("feature_names_in", None)
    if names is not None:
        field.check("feature_names_in", isinstance(names, list) and len(names) == model.num_inputs
                    and all(isinstance(n, str) for n in names), f"expected {model.num_inputs} column names")
        clf.feature_names_in_ = np.array(names, dtype=object)
    clf.n_iter_, clf.loss_curve_ = 0, []
    W, b = clf._folded()
    clf.coef_, clf.intercept_ = W.T.copy(), b.copy()
    return clf


def _to_json(what: str, value) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"save: {what} must be JSON values (str, int, float, bool, None), "
                                   f"got {value!r}") from None


def _param_to_json(name: str, value):
    """A parameter as a JSON value: NumPy scalars as Python's, a class_weight dict as a list of
    [label, weight] pairs (JSON object keys are strings only), a random_state that is not an int
    or None as None, with a warning."""
    if name == "random_state" and not (value is None or isinstance(value, (int, np.integer))):
        warnings.warn(f"save: random_state={type(value).__name__} is not saved; the loaded estimator has "
                      "random_state=None", UserWarning, stacklevel=3)
        return None
    if isinstance(value, dict):
        value = [[_plain(label), _plain(weight)] for label, weight in value.items()]
    value = _plain(value)
    _to_json(f"parameter {name}", value)
    return value


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


class _MetadataField:
    """Reads the estimator's JSON fields of a model file's metadata; a bad one is a ModelFormatError
    of one line naming the file and the field."""

    def __init__(self, meta: dict, path):
        self.meta, self.path = meta, path

    def read(self, key: str, default):
        if key not in self.meta:
            return default
        try:
            return json.loads(self.meta[key])
        except (ValueError, RecursionError):
            raise ModelFormatError(f"{self.path}: metadata {key} is not valid JSON") from None

    def check(self, key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ModelFormatError(f"{self.path}: metadata {key}: {expected}")

    def classes(self, labels: list) -> np.ndarray:
        """The labels as an array of the saved class_dtype (NumPy's choice in older files)."""
        if "class_dtype" not in self.meta:
            return np.array(labels)
        try:
            dtype = np.dtype(self.meta["class_dtype"])
        except TypeError:
            dtype = None
        self.check("class_dtype", dtype is not None and dtype.kind in "biufUO",
                   f"expected a NumPy dtype of labels (bool, int, float, str, object), got {self.meta['class_dtype']!r}")
        if dtype.kind in "UO":
            return np.array(labels, dtype=object if dtype.kind == "O" else None)
        classes = np.array(labels)
        typed = classes.astype(dtype) if classes.dtype.kind in "biuf" else None
        self.check("class_dtype", typed is not None and np.array_equal(typed, classes),
                   f"{dtype} cannot hold the class labels")
        return typed
