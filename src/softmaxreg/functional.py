"""The math of softmax regression, written out by hand.

Conventions
-----------
Z : (n, k) logits, one row per example, one column per class (any leading
    shape works for `logsumexp`, `softmax`, `log_softmax`: they act on `axis`).
y : (n,) integer class indices in [0, k), or (n, k) non-negative target
    weights ("soft targets"; one-hot rows give the class-index loss).
Float32 and float64 are both accepted; results keep the input's float dtype.

Numerics
--------
Every function subtracts the row maximum before exponentiating, so logits of
+-1000 neither overflow nor underflow to a 0/0. A row may hold -inf entries
(probability exactly 0) as long as one entry is finite; a row that is all
-inf, or any NaN or +inf, is an input error (`InvalidArgumentError`).
The loss is computed from logits, never as log(softmax(Z)).
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidArgumentError

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "cross_entropy_grad",
]

_REDUCTIONS = ("mean", "sum", "none")


def _as_logits(z) -> np.ndarray:
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    return z


def _row_max(z: np.ndarray, axis: int) -> np.ndarray:
    """Row maxima with keepdims, rejecting rows that softmax cannot handle.

    np.max propagates NaN, so checking the maxima is enough to find NaN, +inf
    and all -inf rows at O(n) extra cost.
    """
    if z.shape[axis] == 0:
        raise InvalidArgumentError("logits: need at least one class along the class axis")
    m = np.max(z, axis=axis, keepdims=True)
    if np.isnan(m).any():
        raise InvalidArgumentError("logits: contain NaN")
    if np.isposinf(m).any():
        raise InvalidArgumentError("logits: contain +inf")
    if np.isneginf(m).any():
        raise InvalidArgumentError("logits: a row is all -inf (no class has any probability)")
    return m


def logsumexp(z, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(z))) along `axis`, computed as m + log(sum(exp(z - m))) with m the maximum."""
    z = _as_logits(z)
    m = _row_max(z, axis)
    out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax(z, axis: int = -1) -> np.ndarray:
    """exp(z_j) / sum_i exp(z_i) along `axis`; shift-invariant, rows sum to 1."""
    z = _as_logits(z)
    e = np.exp(z - _row_max(z, axis))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def log_softmax(z, axis: int = -1) -> np.ndarray:
    """z - logsumexp(z) along `axis`: exact log-probabilities, -inf only where z is -inf."""
    z = _as_logits(z)
    return z - logsumexp(z, axis=axis, keepdims=True)


def _check_targets(z: np.ndarray, target, label_smoothing: float):
    """Validate (Z, target) and return target as int indices (n,) or soft weights (n, k)."""
    if z.ndim != 2:
        raise InvalidArgumentError(f"logits: expected a 2-D array (n, k), got shape {z.shape}")
    n, k = z.shape
    if not 0.0 <= label_smoothing <= 1.0:
        raise InvalidArgumentError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing}")
    t = np.asarray(target)
    if t.ndim == 1:
        if not np.issubdtype(t.dtype, np.integer):
            raise InvalidArgumentError(f"target: class indices must be integers, got dtype {t.dtype}")
        if t.shape[0] != n:
            raise InvalidArgumentError(f"target: expected {n} class indices to match the logits, got {t.shape[0]}")
        if n and (t.min() < 0 or t.max() >= k):
            raise InvalidArgumentError(
                f"target: class indices must lie in [0, {k - 1}], found {t.min()}..{t.max()}")
        return t
    if t.shape != z.shape:
        raise InvalidArgumentError(
            f"target: expected class indices of shape ({n},) or weights of shape {z.shape}, got {t.shape}")
    t = t.astype(z.dtype, copy=False)
    if not np.isfinite(t).all() or (t < 0).any():
        raise InvalidArgumentError("target: soft targets must be finite and non-negative")
    return t


def smoothed_targets(t: np.ndarray, k: int, dtype, label_smoothing: float) -> np.ndarray:
    """Soft targets (n, k) from indices (n,) or weights (n, k), mixed with the uniform distribution:
    T' = (1 - eps) T + eps * sum_j T_j / k. The one place targets are built (the loss and the objective)."""
    if t.ndim == 1:
        soft = np.zeros((t.shape[0], k), dtype=dtype)
        soft[np.arange(t.shape[0]), t] = 1
    else:
        soft = t
    if label_smoothing:
        soft = (1 - label_smoothing) * soft + label_smoothing * soft.sum(axis=1, keepdims=True) / k
    return soft


def _reduce(values: np.ndarray, reduction: str):
    if reduction == "mean":
        return values.mean() if values.size else values.dtype.type(np.nan)
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise InvalidArgumentError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")


def cross_entropy(logits, target, *, reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross-entropy between softmax(logits) and the targets, from the logits.

    Class indices:  l_i = logsumexp(Z_i) - Z_{i, y_i}           (= -log softmax(Z)_{i, y_i})
    Soft targets:   l_i = -sum_j T_ij log softmax(Z)_ij          (0 * log 0 counts as 0)
    Label smoothing eps replaces T_i by (1 - eps) T_i + eps * sum(T_i) / k.
    `reduction` is "mean" (over rows), "sum" or "none" (the (n,) vector).
    """
    z = _as_logits(logits)
    t = _check_targets(z, target, label_smoothing)
    if t.ndim == 1 and not label_smoothing:
        lse = logsumexp(z, axis=1)
        losses = lse - z[np.arange(z.shape[0]), t]
    else:
        _row_max(z, 1)
        losses, _ = soft_cross_entropy_rows(z, smoothed_targets(t, z.shape[1], z.dtype, label_smoothing))
    return _reduce(losses, reduction)


def cross_entropy_grad(logits, target, *, reduction: str = "mean", label_smoothing: float = 0.0) -> np.ndarray:
    """Gradient of `cross_entropy` with respect to the logits, shape (n, k).

    d l_i / d Z_ij = s_i softmax(Z)_ij - T_ij,  with s_i = sum_j T_ij (1 for one-hot rows),
    so for class indices it is softmax(Z) - onehot(y); "mean" divides by n.
    """
    z = _as_logits(logits)
    t = _check_targets(z, target, label_smoothing)
    n, k = z.shape
    if t.ndim == 1 and not label_smoothing:
        gt = z.T.copy()                            # (k, n), never a view of the input
        softmax_cross_entropy_(gt, t)
        g = np.ascontiguousarray(gt.T)
    else:
        _row_max(z, 1)
        _, g = soft_cross_entropy_rows(z, smoothed_targets(t, k, z.dtype, label_smoothing))
    if reduction == "mean":
        g /= max(n, 1)
    elif reduction not in _REDUCTIONS:
        raise InvalidArgumentError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    return g


def soft_cross_entropy_rows(z: np.ndarray, soft: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row losses l_i = -sum_j T_ij log p_ij (n,) and their gradient s_i p_i - T_i (n, k)
    for soft targets T (n, k), s_i = sum_j T_ij. No validation (callers check the logits)."""
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    sums = e.sum(axis=1, keepdims=True)
    logp = shifted - np.log(sums)
    # where a target weight is 0 its term is 0, even if the probability is 0 too
    losses = -np.multiply(soft, logp, out=np.zeros_like(logp), where=soft != 0).sum(axis=1)
    return losses, e / sums * soft.sum(axis=1, keepdims=True) - soft


def softmax_cross_entropy_(zt: np.ndarray, y: np.ndarray, cols: np.ndarray | None = None) -> tuple[float, int]:
    """Fused, in-place loss and gradient for class-index targets: the training hot path.

    `zt` holds the logits class-major, shape (k, n) (the transpose of Z): the max, sum
    and argmax then run across k rows of length n, which NumPy does far faster than
    along short rows. On return zt holds (softmax(Z) - onehot(y)).T, the gradient of the
    summed loss. Returns (sum_i l_i, number of examples whose argmax is y_i).
    `cols` may pass a preallocated arange(n). No validation: callers pass finite
    logits and in-range int indices.
    """
    cols = np.arange(zt.shape[1]) if cols is None else cols
    correct = int(np.count_nonzero(zt.argmax(axis=0) == y))
    zt -= zt.max(axis=0)
    z_true = zt[y, cols]                           # shifted true-class logits, (n,)
    np.exp(zt, out=zt)
    sums = zt.sum(axis=0)                          # (n,), each >= 1
    loss_sum = float(np.log(sums).sum() - z_true.sum())
    zt /= sums
    zt[y, cols] -= 1
    return loss_sum, correct


def softmax_cross_entropy_rows_(z: np.ndarray, y: np.ndarray, rows: np.ndarray | None = None,
                                scale: float = 1.0) -> tuple[float, int]:
    """`softmax_cross_entropy_` for many classes: z (n, k) row-major, in place, scaled.

    On return z holds scale * (softmax(Z) - onehot(y)), the gradient of scale * sum_i l_i.
    Past a few dozen classes a row is long enough for NumPy's vectorised reductions, so the
    class-major copy buys nothing, and this form makes fewer passes over the (n, k) logits: the
    argmax along the row (its value is the row maximum: no separate max), one subtraction, one
    exp, one sum, and one multiplication that both normalises and scales (scale / sum_j e_ij per
    row). The ones at y are scattered. Returns (sum_i l_i unscaled, number of rows whose argmax
    is y_i). `rows` may pass a preallocated arange(n). No validation: callers pass finite logits
    and in-range int indices.
    """
    rows = np.arange(z.shape[0]) if rows is None else rows
    top = z.argmax(axis=1)
    correct = int(np.count_nonzero(top == y))
    z -= z[rows, top][:, None]
    z_true = z[rows, y]                            # shifted true-class logits, (n,)
    np.exp(z, out=z)
    sums = z.sum(axis=1)                           # (n,), each >= 1
    loss_sum = float(np.log(sums).sum() - z_true.sum())
    z *= (z.dtype.type(scale) / sums)[:, None]
    z[rows, y] -= z.dtype.type(scale)
    return loss_sum, correct
