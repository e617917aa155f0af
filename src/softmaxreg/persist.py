"""Files that must never be half-written: atomic writes, and models as safetensors (no pickle).

A model file holds two tensors, `weight` (d, k) and `bias` (k,), and string metadata:
format, format_version, softmaxreg_version, class_names (JSON list), input_shape (JSON
list) and preprocessing (JSON object with input_scale, the factor applied to raw inputs).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from .errors import InvalidArgumentError, ModelFormatError, OutputError
from .model import SoftmaxRegression

__all__ = ["atomic_write_bytes", "save_model", "load_model", "read_metadata"]

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


def save_model(model: SoftmaxRegression, path, *, extra_metadata: dict | None = None) -> None:
    """Save weights, bias (and standardization mean/std) with metadata to a .safetensors file,
    atomically. `extra_metadata` adds string entries (e.g. the estimator's class labels)."""
    from safetensors.numpy import save

    from . import __version__

    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "softmaxreg_version": __version__,
        "class_names": json.dumps(model.class_names),
        "input_shape": json.dumps(list(model.input_shape)),
        "preprocessing": json.dumps({"input_scale": model.input_scale, "standardize": model.mean is not None}),
        **(extra_metadata or {}),
    }
    tensors = {"weight": np.ascontiguousarray(model.W), "bias": np.ascontiguousarray(model.b)}
    if model.mean is not None:
        tensors |= {"mean": model.mean, "std": model.std}
    data = save(tensors, metadata)
    atomic_write_bytes(path, data)


def _header_metadata(data: bytes, path: Path) -> dict:
    """The __metadata__ object of a safetensors header (8-byte little-endian length, then JSON)."""
    if len(data) < 8:
        raise ModelFormatError(f"{path}: not a safetensors model file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ModelFormatError(f"{path}: not a safetensors model file, or truncated: its header claims {n} bytes, "
                               f"{len(data) - 8} follow")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFormatError(f"{path}: not a safetensors model file (header is not JSON)") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError(f"{path}: not a softmaxreg model (metadata lacks format={FORMAT!r})")
    return meta


def read_metadata(path) -> dict:
    """The string metadata of a softmaxreg model file (checked to be one)."""
    path = Path(path)
    try:
        return _header_metadata(path.read_bytes(), path)
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read model: {e.strerror or e}") from None


def load_model(path) -> SoftmaxRegression:
    """Load a model written by `save_model`; every field is checked, nothing is unpickled."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read model: {e.strerror or e}") from None
    meta = _header_metadata(data, path)
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise ModelFormatError(
            f"{path}: model format version {meta.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
    try:
        tensors = load(data)
        class_names = json.loads(meta["class_names"])
        input_shape = json.loads(meta["input_shape"])
        preprocessing = json.loads(meta["preprocessing"])
        input_scale = float(preprocessing["input_scale"])
        standardize = bool(preprocessing.get("standardize", False))
    except (SafetensorError, KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(f"{path}: corrupt model file: {e}") from None
    W, b = tensors.get("weight"), tensors.get("bias")
    if W is None or b is None or W.ndim != 2 or b.shape != (W.shape[1],) or W.dtype != b.dtype \
            or W.dtype not in (np.float32, np.float64):
        raise ModelFormatError(f"{path}: expected float tensors weight (d, k) and bias (k,) of one dtype")
    if not isinstance(class_names, list) or len(class_names) != W.shape[1] \
            or not isinstance(input_shape, list) or int(np.prod(input_shape)) != W.shape[0]:
        raise ModelFormatError(f"{path}: metadata class_names/input_shape do not match weight shape {W.shape}")
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
