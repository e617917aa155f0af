"""Inputs for `predict`: images (PNG, JPEG, ...), .npy arrays and IDX files, as model-ready arrays.

Photographs are converted the way Fashion-MNIST was made from Zalando's product images
(Xiao, Rasul and Vollgraf, 2017, section 2): convert to 8-bit grey; negate if the background
is light (products are shot on white, Fashion-MNIST shows them light on black; `invert="auto"`
decides from the mean of the border pixels); trim the background around the object; resize so
the longest edge fits the model's image size (bilinear, antialiased); centre it on a black
canvas of that size. The dataset's sharpening step is not applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataFormatError, InvalidArgumentError
from .idx import read_idx
from .resize import resize_images

__all__ = ["to_mnist_format", "read_inputs"]

_BACKGROUND = 16        # pixels at or below this (after negation) count as background when trimming


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


def _kind(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
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
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataFormatError(f"{path}: expected a real numeric array, found dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise DataFormatError(f"{path}: contains NaN or infinite values")
    return array.reshape(array.shape[0], *input_shape)


def read_inputs(paths, input_shape: tuple[int, ...], invert: str = "auto") -> list[tuple[str, np.ndarray]]:
    """[(name, X)] per input file: X (n, *input_shape) raw pixel values (0..255 for images).

    The kind of each file is read from its first bytes: .npy arrays, IDX files (raw or gzip),
    otherwise an image Pillow can decode (converted with `to_mnist_format`).
    """
    out = []
    for p in map(Path, paths):
        try:
            kind = _kind(p)
        except OSError as e:
            raise DataFormatError(f"{p}: cannot read: {e.strerror or e}") from None
        if kind == "npy":
            try:
                array = np.load(p, allow_pickle=False)
            except ValueError as e:
                raise DataFormatError(f"{p}: not a plain numeric .npy array: {e}") from None
            out.append((str(p), _as_rows(array, p, input_shape)))
        elif kind == "idx":
            out.append((str(p), _as_rows(read_idx(p), p, input_shape)))
        else:
            if len(input_shape) != 2:
                raise DataFormatError(f"{p}: the model takes {input_shape[0]} features, not images")
            from PIL import Image, UnidentifiedImageError
            try:
                with Image.open(p) as image:
                    grey = np.asarray(image.convert("L"))
            except (UnidentifiedImageError, OSError, ValueError) as e:
                raise DataFormatError(f"{p}: cannot decode as an image (PNG, JPEG, ...): {e}") from None
            out.append((str(p), to_mnist_format(grey, input_shape, invert)[None]))
    return out
