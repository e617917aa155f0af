"""The model file format: a `SoftmaxRegression` in the safetensors container of `fileio`.

A model file holds the tensors `weight` (d, k) and `bias` (k,) (and `mean`, `std` (d,) when
standardized) and string metadata: format ("softmaxreg-model"), format_version, softmaxreg_version,
tensors_sha256 (see `fileio`), class_names and input_shape (JSON lists), dtype, preprocessing
(JSON: input_scale applied to raw inputs, standardize), input_range (JSON [low, high] of the raw
inputs it was trained on; absent when unknown, e.g. in older files) and index_base (JSON 0 or 1: the
first feature index of the svmlight files it was trained on; absent for other data). Checkpoints hold the same tensors and
metadata (`model_tensors`, `model_metadata`) in a container of their own format.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from .engines.array_api import to_numpy
from .errors import InvalidArgumentError, ModelFormatError
from .tensor_file import MODEL_FORMAT, read_tensors, write_tensors
from .model import SoftmaxRegression

__all__ = ["FORMAT", "FORMAT_VERSION", "save_model", "load_model", "read_model_file", "model_metadata",
           "model_tensors", "model_from_tensors"]

FORMAT = MODEL_FORMAT
FORMAT_VERSION = 1


def save_model(model: SoftmaxRegression, path, *, extra_metadata: dict | None = None) -> None:
    """Save weights, bias (and standardization mean/std) with metadata to a .safetensors file,
    atomically. `extra_metadata` adds string entries (e.g. the estimator's class labels). Class names
    the loader would refuse (repeated, empty, too long, with control characters) are refused here
    (InvalidArgumentError), before anything is written."""
    try:
        _check_class_names(list(model.class_names), len(model.class_names), path)
    except ModelFormatError as e:
        raise InvalidArgumentError(str(e).replace("model metadata field ", "cannot save: ")) from None
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
    if model.input_range is not None:
        meta["input_range"] = json.dumps(list(model.input_range))
    if model.index_base is not None:
        meta["index_base"] = json.dumps(model.index_base)
    return meta


def model_tensors(model: SoftmaxRegression) -> dict:
    """The model's arrays by their names in the file: weight, bias (and mean, std when standardized),
    as NumPy arrays whatever library holds the model (so a file is the same from every library)."""
    tensors = {"weight": to_numpy(model.W), "bias": to_numpy(model.b)}
    if model.mean is not None:
        tensors |= {"mean": to_numpy(model.mean), "std": to_numpy(model.std)}
    return tensors


MAX_NAME_CHARS = 1000
"""The longest class name a model file may hold: names are printed, plotted and put in reports."""
MAX_FIELD_BYTES = {"class_names": 64 * 2**20}
"""The largest JSON text of a metadata field, checked before parsing (class_names may be long:
up to MAX_CLASSES names); every other field is small (SMALL_FIELD_BYTES)."""
SMALL_FIELD_BYTES = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _field(meta: dict, name: str, path, *, optional: bool = False):
    """The parsed JSON of metadata field `name`: its size bounded before parsing; ModelFormatError
    naming the file and field when missing, too long or not JSON."""
    if name not in meta:
        if optional:
            return None
        raise ModelFormatError(f"{path}: model metadata lacks field {name}")
    text = meta[name]
    limit = MAX_FIELD_BYTES.get(name, SMALL_FIELD_BYTES)
    if not isinstance(text, str):
        raise ModelFormatError(f"{path}: model metadata field {name} must be a string, found {type(text).__name__}")
    if len(text) > limit:
        raise ModelFormatError(f"{path}: model metadata field {name} is {len(text)} characters, at most {limit} allowed")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ModelFormatError(f"{path}: corrupt model metadata: field {name} is not valid JSON") from None


def _is_number(v) -> bool:
    """A JSON number a float can hold: not a bool, and not an integer of thousands of digits
    (float() of one is an OverflowError, not a refusal)."""
    return type(v) is float and math.isfinite(v) or type(v) is int and abs(v) < 2 ** 1000


def _check_class_names(names, k: int, path) -> list[str]:
    """Class names as a model may hold them: k unique strings of 1..MAX_NAME_CHARS characters
    without control characters (so printing one cannot move the cursor or recolour a terminal)."""
    if not (isinstance(names, list) and len(names) == k):
        raise ModelFormatError(f"{path}: model metadata field class_names must be {k} strings (a JSON list)")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ModelFormatError(f"{path}: model metadata field class_names[{i}] is {type(name).__name__}, "
                                   "expected a string")
        if not 0 < len(name) <= MAX_NAME_CHARS:
            raise ModelFormatError(f"{path}: model metadata field class_names[{i}] has {len(name)} characters, "
                                   f"expected 1 to {MAX_NAME_CHARS}")
        if _CONTROL.search(name):
            raise ModelFormatError(f"{path}: model metadata field class_names[{i}] holds a control character")
    if len(set(names)) != len(names):
        seen = set()
        repeated = next(n for n in names if n in seen or seen.add(n))
        raise ModelFormatError(f"{path}: model metadata field class_names repeats {repeated!r}")
    return names


def model_from_tensors(tensors: dict, meta: dict, path) -> SoftmaxRegression:
    """Rebuild a model from checked file contents; any inconsistency is a ModelFormatError naming
    the file and the field."""
    class_names = _field(meta, "class_names", path)
    input_shape = _field(meta, "input_shape", path)
    preprocessing = _field(meta, "preprocessing", path)
    input_range = _field(meta, "input_range", path, optional=True)
    index_base = _field(meta, "index_base", path, optional=True)
    if not (isinstance(preprocessing, dict) and set(preprocessing) <= {"input_scale", "standardize"}
            and _is_number(preprocessing.get("input_scale"))
            and type(preprocessing.get("standardize", False)) is bool):
        raise ModelFormatError(f"{path}: model metadata field preprocessing must be an object "
                               '{"input_scale": number > 0, "standardize": true or false}')
    input_scale = float(preprocessing["input_scale"])
    standardize = preprocessing.get("standardize", False)
    if not isinstance(meta.get("dtype", ""), str) or len(meta.get("dtype", "")) > SMALL_FIELD_BYTES:
        raise ModelFormatError(f"{path}: model metadata field dtype must be a short string")
    W, b = tensors.get("weight"), tensors.get("bias")
    if W is None or b is None or W.ndim != 2 or b.shape != (W.shape[1],) or W.dtype != b.dtype \
            or W.dtype not in (np.float32, np.float64) or W.shape[1] < 2 or W.shape[0] < 1 \
            or meta.get("dtype", W.dtype.name) != W.dtype.name:
        raise ModelFormatError(f"{path}: expected float tensors weight (d, k >= 2) and bias (k,) of the declared dtype")
    class_names = _check_class_names(class_names, W.shape[1], path)
    if not (isinstance(input_shape, list) and input_shape and all(type(v) is int and v > 0 for v in input_shape)
            and math.prod(input_shape) == W.shape[0]):
        raise ModelFormatError(f"{path}: model metadata field input_shape does not match weight shape {W.shape}")
    if not (math.isfinite(input_scale) and input_scale > 0) or not isinstance(standardize, bool):
        raise ModelFormatError(f"{path}: model metadata field preprocessing: input_scale must be finite and > 0")
    if input_range is not None and not (isinstance(input_range, list) and len(input_range) == 2
                                        and all(_is_number(v) for v in input_range)
                                        and input_range[0] < input_range[1]):
        raise ModelFormatError(f"{path}: model metadata field input_range must be [low, high] with low < high")
    if index_base not in (None, 0, 1) or isinstance(index_base, bool):
        raise ModelFormatError(f"{path}: model metadata field index_base must be 0 or 1")
    model = SoftmaxRegression(W.shape[0], W.shape[1], sigma=0.0, dtype=W.dtype, input_scale=input_scale,
                              input_shape=input_shape, class_names=class_names, input_range=input_range,
                              index_base=index_base)
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
