"""Bilinear image resizing with antialiasing, as a pair of small interpolation matrices."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["resize_images"]


def _interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a triangle (bilinear) filter, widened when shrinking.

    Output pixel i is centred at c = (i + 0.5) n_in / n_out in input coordinates; input
    pixel j (centred at j + 0.5) gets weight max(0, 1 - |j + 0.5 - c| / r) with
    r = max(1, n_in / n_out), and each row is normalised to sum to 1. With r = 1 this is
    plain bilinear interpolation; with r > 1 it averages over the pixels each output
    pixel covers (the antialiasing that PIL's BILINEAR also applies).
    """
    scale = n_in / n_out
    radius = max(1.0, scale)
    centres = (np.arange(n_out) + 0.5) * scale                         # (n_out,)
    dist = np.abs(np.arange(n_in)[None, :] + 0.5 - centres[:, None])    # (n_out, n_in)
    weights = np.clip(1.0 - dist / radius, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def resize_images(images: np.ndarray, size, *, chunk: int = 1024) -> np.ndarray:
    """Resize uint8 images (n, H, W) to (n, h, w) with `size` = (h, w) or an int for (s, s)."""
    h, w = (size, size) if np.isscalar(size) else tuple(size)
    if int(h) != h or int(w) != w or h < 1 or w < 1:
        raise InvalidArgumentError(f"resize: expected positive integer (height, width), got {size!r}")
    images = np.asarray(images)
    if images.ndim != 3:
        raise InvalidArgumentError(f"resize: expected images of shape (n, H, W), got {images.shape}")
    n, H, W = images.shape
    rows = _interpolation_matrix(H, int(h)).astype(np.float32)          # (h, H)
    cols = _interpolation_matrix(W, int(w)).T.astype(np.float32)        # (W, w)
    out = np.empty((n, int(h), int(w)), dtype=np.uint8)
    for start in range(0, n, chunk):
        block = rows @ images[start:start + chunk].astype(np.float32) @ cols   # (c, h, w)
        np.clip(np.rint(block), 0, 255, out=block)
        out[start:start + chunk] = block
    return out
