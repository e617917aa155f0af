"""Files that must never be half-written: atomic writes, and models as safetensors (no pickle).

A model file holds the tensors `weight` (d, k) and `bias` (k,) (and `mean`, `std` (d,) when
standardized) and string metadata: format ("softmaxreg-model"), format_version, softmaxreg_version,
tensors_sha256 (over every tensor's name, dtype, shape and bytes), class_names and input_shape
(JSON lists), dtype, and preprocessing (JSON: input_scale applied to raw inputs, standardize).
Checkpoints use the same container with format "softmaxreg-checkpoint".
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from .errors import InvalidArgumentError, ModelFormatError, OutputError
from .model import SoftmaxRegression

__all__ = ["atomic_write_bytes", "save_model", "load_model", "write_tensors", "read_tensors"]

FORMAT = "softmaxreg-model"
FORMAT_VERSION = 1


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsync, rename.

    Readers see either the old file or the complete new one, never a partial write;
    on any failure the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
        raise


def _tensors_digest(tensors: dict) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_tensors(path, tensors: dict, metadata: dict, *, kind: str = FORMAT) -> None:
    """Atomically write `tensors` and string `metadata` as safetensors, adding the format name,
    its version, the package version and the SHA-256 of the tensors."""
    from safetensors.numpy import save

    from . import __version__

    tensors = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
    header = {"format": kind, "format_version": str(FORMAT_VERSION), "softmaxreg_version": __version__,
              "tensors_sha256": _tensors_digest(tensors), **metadata}
    atomic_write_bytes(path, save(tensors, header))


def _header_metadata(data: bytes, path: Path, kind: str, what: str) -> dict:
    """The __metadata__ object of a safetensors header (8-byte little-endian length, then JSON)."""
    if len(data) < 8:
        raise ModelFormatError(f"{path}: not a safetensors {what} file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ModelFormatError(f"{path}: not a safetensors {what} file, or truncated: its header claims {n} bytes, "
                               f"{len(data) - 8} follow")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFormatError(f"{path}: not a safetensors {what} file (header is not JSON)") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != kind:
        raise ModelFormatError(f"{path}: not a softmaxreg {what} (metadata lacks format={kind!r})")
    return meta


def read_tensors(path, *, kind: str = FORMAT) -> tuple[dict, dict]:
    """(tensors, metadata) of a file written by `write_tensors`, after checking its format, version
    and tensor checksum. Reads at most the file's own bytes; never unpickles."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    what = "model" if kind == FORMAT else "checkpoint"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    meta = _header_metadata(data, path, kind, what)
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise ModelFormatError(
            f"{path}: {what} format version {meta.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, TypeError, OverflowError) as e:
        raise ModelFormatError(f"{path}: corrupt {what} file: {e}") from None
    if "tensors_sha256" not in meta:
        raise ModelFormatError(f"{path}: {what} file has no tensor checksum (written by an older softmaxreg?)")
    if meta.get("tensors_sha256") != _tensors_digest(tensors):
        raise ModelFormatError(f"{path}: tensor checksum mismatch: the {what} file was damaged or altered")
    return tensors, meta


def save_model(model: SoftmaxRegression, path, *, extra_metadata: dict | None = None) -> None:
    """Save weights, bias (and standardization mean/std) with metadata to a .safetensors file,
    atomically. `extra_metadata` adds string entries (e.g. the estimator's class labels)."""
    write_tensors(path, model_tensors(model), {**model_metadata(model), **(extra_metadata or {})})


def model_metadata(model: SoftmaxRegression) -> dict:
    """The string metadata describing a model: what `model_from_tensors` reads back."""
    return {
        "class_names": json.dumps(model.class_names),
        "input_shape": json.dumps(list(model.input_shape)),
        "dtype": model.dtype.name,
        "preprocessing": json.dumps({"input_scale": model.input_scale, "standardize": model.mean is not None}),
    }


def model_tensors(model: SoftmaxRegression) -> dict:
    tensors = {"weight": model.W, "bias": model.b}
    if model.mean is not None:
        tensors |= {"mean": model.mean, "std": model.std}
    return tensors


def model_from_tensors(tensors: dict, meta: dict, path) -> SoftmaxRegression:
    """Rebuild a model from checked file contents; any inconsistency is a ModelFormatError."""
    try:
        class_names = json.loads(meta["class_names"])
        input_shape = json.loads(meta["input_shape"])
        preprocessing = json.loads(meta["preprocessing"])
        input_scale = float(preprocessing["input_scale"])
        standardize = preprocessing.get("standardize", False)
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
    model = SoftmaxRegression(W.shape[0], W.shape[1], sigma=0.0, dtype=W.dtype, input_scale=input_scale,
                              input_shape=input_shape, class_names=class_names)
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


def load_model(path) -> SoftmaxRegression:
    """Load a model written by `save_model`: format, version, checksum, shapes, dtype and
    metadata are all checked; nothing is unpickled or executed."""
    tensors, meta = read_tensors(path)
    return model_from_tensors(tensors, meta, path)
