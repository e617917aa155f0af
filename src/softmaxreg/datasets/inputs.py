"""Inputs for `predict`: images (PNG, JPEG, ...), .npy arrays and IDX files, as model-ready arrays.

Photographs are converted the way Fashion-MNIST was made from Zalando's product images
(Xiao, Rasul and Vollgraf, 2017, section 2): convert to 8-bit grey; negate if the background
is light (products are shot on white, Fashion-MNIST shows them light on black; `invert="auto"`
decides from the mean of the border pixels); trim the background around the object; resize so
the longest edge fits the model's image size (bilinear, antialiased); centre it on a black
canvas of that size. The dataset's sharpening step is not applied.

A model that records its input range (0..255 for pixels) refuses inputs outside it, unless the
caller says which range they are in (they are then rescaled), and calls inputs whose values
barely vary over it (a blank image, 0..1 values given to a 0..255 model) inputs without signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataFormatError, InvalidArgumentError
from ..tensor_file import describe_bytes
from .headers import npy_header
from .idx import read_idx
from .resize import resize_images

__all__ = ["to_mnist_format", "read_inputs", "in_model_range", "outside_range", "without_signal"]

_BACKGROUND = 16        # pixels at or below this (after negation) count as background when trimming
NO_SIGNAL_SHARE = 0.01
"""An input whose values vary by at most this share of the model's input range carries no signal."""
ACCEPTED = "an image (PNG, JPEG, ...), a .npy array or an IDX file"


def outside_range(X: np.ndarray, value_range, what: str = "the model's input range") -> str | None:
    """"values -1000..3 lie outside the model's input range 0..255", or None if X lies within
    value_range (low, high) or the range is None (unknown)."""
    if value_range is None or X.size == 0:
        return None
    low, high = float(X.min()), float(X.max())
    if low < value_range[0] or high > value_range[1]:
        return f"values {low:g}..{high:g} lie outside {what} {value_range[0]:g}..{value_range[1]:g}"
    return None


def without_signal(X: np.ndarray, value_range) -> np.ndarray:
    """(n,) bool: the examples of X (n, ...) whose values span at most NO_SIGNAL_SHARE of value_range
    (none when the range is unknown)."""
    if value_range is None:
        return np.zeros(X.shape[0], dtype=bool)           # X.shape: a sparse X has no len()
    flat = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    return flat.max(axis=1) - flat.min(axis=1) <= NO_SIGNAL_SHARE * (value_range[1] - value_range[0])


def to_mnist_format(grey: np.ndarray, size: tuple[int, int], invert: str = "auto") -> np.ndarray:
    """A grey uint8 image (H, W) -> (h, w) uint8, light object centred on black."""
    if invert not in ("auto", "yes", "no"):
        raise InvalidArgumentError(f"--invert: expected auto, yes or no, got {invert!r}")
    g = np.asarray(grey, dtype=np.uint8)
    if invert == "yes" or (invert == "auto" and np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]]).mean() > 127):
        g = 255 - g
    rows, cols = np.flatnonzero((g > _BACKGROUND).any(axis=1)), np.flatnonzero((g > _BACKGROUND).any(axis=0))
    if rows.size:
        g = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = size
    scale = min(h / g.shape[0], w / g.shape[1])
    new = (max(1, round(g.shape[0] * scale)), max(1, round(g.shape[1] * scale)))
    fitted = resize_images(g[None], new)[0]
    out = np.zeros((h, w), dtype=np.uint8)
    top, left = (h - new[0]) // 2, (w - new[1]) // 2
    out[top:top + new[0], left:left + new[1]] = fitted
    return out


def _kind(head: bytes) -> str:
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x1f\x8b") or (len(head) >= 4 and head[:2] == b"\x00\x00"):
        return "idx"
    return "image"


def _as_rows(array: np.ndarray, path: Path, input_shape: tuple[int, ...]) -> np.ndarray:
    """(n, *input_shape) from one example or a stack of them, flat or shaped."""
    d = int(np.prod(input_shape))
    if array.shape in (tuple(input_shape), (d,)):
        array = array[None]
    if array.ndim < 2 or array.shape[1:] not in (tuple(input_shape), (d,)):
        shaped = "x".join(map(str, input_shape))
        raise DataFormatError(f"{path}: array of shape {array.shape} does not fit the model: expected "
                              f"({shaped}) or ({d},) for one input, (n, {shaped}) or (n, {d}) for several")
    if array.shape[0] == 0:                   # as scikit-learn's predict: at least one example
        raise DataFormatError(f"{path}: holds no examples (shape {array.shape}); expected at least one")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataFormatError(f"{path}: expected a real numeric array, found dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise DataFormatError(f"{path}: contains NaN or infinite values")
    return array.reshape(array.shape[0], *input_shape)


def read_inputs(paths, input_shape: tuple[int, ...], invert: str = "auto", *, model_range=None,
                input_range=None) -> list[tuple[str, np.ndarray]]:
    """[(name, X)] per input file: X (n, *input_shape) raw values (0..255 for images).

    The kind of each file is read from its first bytes: .npy arrays, IDX files (raw or gzip),
    otherwise an image Pillow can decode (converted with `to_mnist_format`). Values must lie in
    `input_range` (low, high) when given, and are then mapped linearly onto `model_range`; else
    in `model_range` (the model's, when it records one). A value outside is a DataFormatError.
    """
    return [(str(p), in_model_range(_read_one(p, input_shape, invert), p, model_range, input_range))
            for p in map(Path, paths)]


def in_model_range(X: np.ndarray, name, model_range, input_range=None) -> np.ndarray:
    """X checked to lie in `input_range` and mapped linearly onto `model_range`, or (no input_range)
    checked to lie in `model_range`; a value outside is a DataFormatError naming `name`."""
    if input_range is not None and model_range is None:
        raise InvalidArgumentError("--input-range: the model does not record its input range, so there is "
                                   "nothing to rescale to; give values as the model was trained on")
    outside = outside_range(X, input_range or model_range,
                            "the given --input-range" if input_range else "the model's input range")
    if outside:
        hint = "" if input_range else "; if they are on another scale, pass --input-range LOW HIGH"
        raise DataFormatError(f"{name}: {outside}{hint}")
    if input_range is not None:
        (low, high), (to_low, to_high) = input_range, model_range
        X = to_low + (X.astype(np.float64) - low) * ((to_high - to_low) / (high - low))
    return X


def _read_one(p: Path, input_shape: tuple[int, ...], invert: str) -> np.ndarray:
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise DataFormatError(f"{p}: cannot read: {e.strerror or e}") from None
    if not head:
        raise DataFormatError(f"{p}: is empty (0 bytes); expected {ACCEPTED}")
    kind = _kind(head)
    if kind == "npy":
        npy_header(p, in_memory=True)             # its declared shape fits the file and memory: then read
        try:
            array = np.load(p, allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:
            raise DataFormatError(f"{p}: not a plain numeric .npy array: {e}") from None
        return _as_rows(array, p, input_shape)
    if kind == "idx":
        return _as_rows(read_idx(p), p, input_shape)
    if len(input_shape) != 2:
        raise DataFormatError(f"{p}: the model takes {input_shape[0]} features, not images")
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(p) as image:
            grey = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        looks = describe_bytes(head)
        why = f" that does not decode ({e})" if looks.endswith("image") else ""
        hint = ("; convert it first, e.g. numpy.save('x.npy', numpy.loadtxt('x.csv', delimiter=','))"
                if "CSV" in looks else "")
        raise DataFormatError(f"{p}: cannot decode as an image: it is {looks}{why}; expected {ACCEPTED}{hint}") from None
    return to_mnist_format(grey, input_shape, invert)[None]
