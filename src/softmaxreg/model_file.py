"""The model file format: a `SoftmaxRegression` in the safetensors container of `fileio`.

A model file holds the tensors `weight` (d, k) and `bias` (k,) (and `mean`, `std` (d,) when
standardized) and string metadata: format ("softmaxreg-model"), format_version, softmaxreg_version,
tensors_sha256 (see `fileio`), class_names and input_shape (JSON lists), dtype, preprocessing
(JSON: input_scale applied to raw inputs, standardize), and input_range (JSON [low, high] of the raw
inputs it was trained on; absent when unknown, e.g. in older files). Checkpoints hold the same tensors and
metadata (`model_tensors`, `model_metadata`) in a container of their own format.
"""

from __future__ import annotations

import json
import math

import numpy as np

from .engines.array_api import to_numpy
from .errors import InvalidArgumentError, ModelFormatError
from .fileio import MODEL_FORMAT, read_tensors, write_tensors
from .model import SoftmaxRegression

__all__ = ["FORMAT", "FORMAT_VERSION", "save_model", "load_model", "read_model_file", "model_metadata",
           "model_tensors", "model_from_tensors"]

FORMAT = MODEL_FORMAT
FORMAT_VERSION = 1


def save_model(model: SoftmaxRegression, path, *, extra_metadata: dict | None = None) -> None:
    """Save weights, bias (and standardization mean/std) with metadata to a .safetensors file,
    atomically. `extra_metadata` adds string entries (e.g. the estimator's class labels)."""
    write_tensors(path, model_tensors(model), {**model_metadata(model), **(extra_metadata or {})},
                  kind=FORMAT, version=FORMAT_VERSION)


def read_model_file(path) -> tuple[dict, dict]:
    """(tensors, metadata) of a model file, its format, version and checksum checked; for readers
    that need metadata beyond the model's own (the estimator's class labels)."""
    return read_tensors(path, kind=FORMAT, version=FORMAT_VERSION, what="model")


def model_metadata(model: SoftmaxRegression) -> dict:
    """The string metadata describing a model: what `model_from_tensors` reads back."""
    meta = {
        "class_names": json.dumps(model.class_names),
        "input_shape": json.dumps(list(model.input_shape)),
        "dtype": model.dtype.name,
        "preprocessing": json.dumps({"input_scale": model.input_scale, "standardize": model.mean is not None}),
    }
    return meta if model.input_range is None else {**meta, "input_range": json.dumps(list(model.input_range))}


def model_tensors(model: SoftmaxRegression) -> dict:
    """The model's arrays by their names in the file: weight, bias (and mean, std when standardized),
    as NumPy arrays whatever library holds the model (so a file is the same from every library)."""
    tensors = {"weight": to_numpy(model.W), "bias": to_numpy(model.b)}
    if model.mean is not None:
        tensors |= {"mean": to_numpy(model.mean), "std": to_numpy(model.std)}
    return tensors


def model_from_tensors(tensors: dict, meta: dict, path) -> SoftmaxRegression:
    """Rebuild a model from checked file contents; any inconsistency is a ModelFormatError."""
    try:
        class_names = json.loads(meta["class_names"])
        input_shape = json.loads(meta["input_shape"])
        preprocessing = json.loads(meta["preprocessing"])
        input_scale = float(preprocessing["input_scale"])
        standardize = preprocessing.get("standardize", False)
        input_range = json.loads(meta["input_range"]) if "input_range" in meta else None
    except (KeyError, TypeError, ValueError, RecursionError) as e:
        raise ModelFormatError(f"{path}: corrupt model metadata: {e!r}") from None
    W, b = tensors.get("weight"), tensors.get("bias")
    if W is None or b is None or W.ndim != 2 or b.shape != (W.shape[1],) or W.dtype != b.dtype \
            or W.dtype not in (np.float32, np.float64) or W.shape[1] < 2 or W.shape[0] < 1 \
            or meta.get("dtype", W.dtype.name) != W.dtype.name:
        raise ModelFormatError(f"{path}: expected float tensors weight (d, k >= 2) and bias (k,) of the declared dtype")
    if not (isinstance(class_names, list) and all(isinstance(c, str) for c in class_names)
            and len(class_names) == W.shape[1]):
        raise ModelFormatError(f"{path}: metadata class_names must be {W.shape[1]} strings")
    if not (isinstance(input_shape, list) and input_shape and all(type(v) is int and v > 0 for v in input_shape)
            and math.prod(input_shape) == W.shape[0]):
        raise ModelFormatError(f"{path}: metadata input_shape does not match weight shape {W.shape}")
    if not (math.isfinite(input_scale) and input_scale > 0) or not isinstance(standardize, bool):
        raise ModelFormatError(f"{path}: metadata preprocessing is invalid")
    if input_range is not None and not (isinstance(input_range, list) and len(input_range) == 2
                                        and all(type(v) in (int, float) and math.isfinite(v) for v in input_range)
                                        and input_range[0] < input_range[1]):
        raise ModelFormatError(f"{path}: metadata input_range must be [low, high] with low < high")
    model = SoftmaxRegression(W.shape[0], W.shape[1], sigma=0.0, dtype=W.dtype, input_scale=input_scale,
                              input_shape=input_shape, class_names=class_names, input_range=input_range)
    model.W[...] = W
    model.b[...] = b
    if standardize:
        mean, std = tensors.get("mean"), tensors.get("std")
        if mean is None or std is None or mean.shape != (W.shape[0],) or std.shape != (W.shape[0],):
            raise ModelFormatError(f"{path}: standardization tensors mean/std missing or not of shape ({W.shape[0]},)")
        try:
            model.set_standardization(mean, std)
        except InvalidArgumentError as e:
            raise ModelFormatError(f"{path}: {e}") from None
    return model


def load_model(path, backend: str = "numpy", device: str | None = None) -> SoftmaxRegression:
    """Load a model written by `save_model`: format, version, checksum, shapes, dtype and
    metadata are all checked; nothing is unpickled or executed. The parameters are NumPy's, or
    moved to `backend` on `device` (SoftmaxRegression.to): a file saved from any library loads into any."""
    model = model_from_tensors(*read_model_file(path), path)
    return model if backend == "numpy" and device in (None, "cpu") else model.to(backend, device)
