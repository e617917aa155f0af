"""A saved model judged on data (`softmaxreg evaluate` and `predict`, the reject and next-word
experiments): the model and the data checked to fit each other, and the logits read in row blocks."""

from __future__ import annotations

import numpy as np

from .callbacks import progress_bar
from .datasets.inputs import outside_range
from .datasets.sources import SPLIT_NAMES, evaluation_split, open_data, svmlight_width
from .engines import engine_for
from .errors import SoftmaxRegError
from .model import SoftmaxRegression
from .model_file import load_model

__all__ = ["load_model_and_data", "logit_blocks"]


def load_model_and_data(model_path, data_dir, *, force: bool = False, label_column=None, zero_based="auto"):
    """(model, data): a saved model and the data set to judge it on (`softmaxreg evaluate`, the
    reject experiment; `data_dir` any --data PATH, datasets.sources.open_data), checked on the rows
    it judges (sources.evaluation_split: the test split, else all rows) to fit the model: the same
    input shape and number of classes always; the same class names and the data's values within the
    model's input range unless `force`."""
    model = load_model(model_path)
    data = open_data(data_dir, label_column=label_column, num_classes=model.num_outputs,   # the model says k
                     **svmlight_width(data_dir, model, zero_based))      # and, of svmlight files, the width
    X, _, split = evaluation_split(data)
    split = SPLIT_NAMES[split]
    shape = tuple(X.shape[1:])
    if tuple(model.input_shape) not in (shape, (int(np.prod(shape)),)):
        raise SoftmaxRegError(f"{model_path}: the model takes inputs of shape {tuple(model.input_shape)}, "
                              f"the data's rows ({split}) have {'x'.join(map(str, shape))} values")
    if model.num_outputs != len(data.class_names):
        raise SoftmaxRegError(f"{model_path}: the model has {model.num_outputs} classes, "
                              f"the data {len(data.class_names)}")
    if force:
        return model, data
    if model.class_names != list(data.class_names):
        differ = next(i for i, (a, b) in enumerate(zip(model.class_names, data.class_names)) if a != b)
        raise SoftmaxRegError(f"{model_path}: the model's classes are not the data's (class {differ} is "
                              f"{model.class_names[differ]!r} for the model, {data.class_names[differ]!r} in "
                              f"{data.source}): trained on other data? pass --force to judge it anyway")
    outside = outside_range(X, model.input_range)
    if outside:
        raise SoftmaxRegError(f"{model_path}: the data's {split}: {outside}; pass --force to judge it anyway")
    return model, data


def logit_blocks(model: SoftmaxRegression, X, *, progress: bool | None = None, rows: int = 8192):
    """Yield model.logits of X's consecutive row blocks, each of at most `rows` rows and at most
    metrics.LOGITS_PER_BLOCK logits (a few rows at many classes: the whole (n, k) is never held),
    with a progress bar on stderr once the work has taken half a second (on a terminal, by
    default: `progress`). A block of X is read as an array only when its turn
    comes (a memory map or a Zarr store is never held whole); sparse rows stay sparse."""
    from .metrics import block_rows

    X = X if hasattr(X, "shape") else np.asarray(X)
    n, rows = X.shape[0], block_rows(model.num_outputs, rows)
    with progress_bar(n, desc="evaluating", unit="image", show=progress, delay=0.5) as bar:
        for start in range(0, n, rows):
            x = X[start:start + rows]
            yield model.logits(x if engine_for(x).name == "sparse" else np.asarray(x))
            bar.update(min(rows, n - start))
