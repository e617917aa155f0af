"""The generic path: the model's logits, the objective's chunk and evaluation written against the
array API standard, for arrays of any library (PyTorch, JAX, CuPy, array-api-strict) on any device.

The same formulas as the NumPy fast path (model.py, objective.py; conventions and derivation there):

    Z = s X W + b            (standardized: Z = X (W s / sigma) + (b - (mu / sigma) W))
    log p = (Z - m) - log sum_j exp(Z_j - m),   m = max_j Z_j               (stable log-softmax)
    l_i = -sum_j T'_ij log p_ij,   G = w_i (sum_j T'_ij p_i - T'_i) / N,   dW = s X^T G,  db = sum_i G_i

Only `xp` functions and operators are used, and nothing is updated in place (JAX arrays are
immutable): every function returns new arrays. `params` is anything with the model's attributes
W, b, mean, std (arrays of the namespace, on one device) and input_scale; x holds float rows in
the parameters' dtype. Scalars come back as 0-D arrays: the caller decides when to synchronise.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["logits", "probabilities", "loss_and_grad_sums", "hessian_product_sums", "loss_and_correct_sums", "penalty", "penalty_grad", "compiled"]


def logits(xp, params, x):
    """Z (n, k) = s x W + b, or its standardized form, for float rows x (n, d)."""
    W, b, s = params.W, params.b, params.input_scale
    if params.mean is None:
        z = x @ W                                                      # (n, k)
        return (z * s if s != 1.0 else z) + b
    a = s / params.std                                                 # (d,)
    return x @ (W * a[:, None]) + (b - (params.mean / params.std) @ W)


def _log_softmax(xp, z):
    """(log p, p) for logits z (n, k): the row maximum subtracted before exponentiating."""
    shifted = z - xp.max(z, axis=1, keepdims=True)
    e = xp.exp(shifted)
    sums = xp.sum(e, axis=1, keepdims=True)                            # (n, 1), each >= 1
    return shifted - xp.log(sums), e / sums


def _targets(xp, y, k: int, dtype, smoothing: float):
    """(T' (n, k) soft targets in `dtype`, class indices (n,) compared with the argmax)."""
    if y.ndim == 1:
        labels = y
        T = xp.astype(y[:, None] == xp.arange(k, dtype=y.dtype, device=y.device if hasattr(y, "device") else None),
                      dtype)                                            # one-hot (n, k)
    else:
        labels = xp.argmax(y, axis=1)
        T = xp.astype(y, dtype)
    if smoothing:
        T = (1 - smoothing) * T + smoothing * xp.sum(T, axis=1, keepdims=True) / k
    return T, labels


def _correct(xp, z, labels):
    """Rows whose largest logit is the label's, a 0-D integer array (the default int: JAX has no
    int64 without jax_enable_x64)."""
    return xp.count_nonzero(xp.argmax(z, axis=1) == labels)


def loss_and_correct_sums(xp, params, x, y, smoothing: float = 0.0):
    """(sum_i l_i, number of rows whose argmax is the target) as 0-D arrays: the forward only."""
    z = logits(xp, params, x)
    logp, _ = _log_softmax(xp, z)
    T, labels = _targets(xp, y, z.shape[1], z.dtype, smoothing)
    return -xp.sum(xp.where(T != 0, T * logp, 0.0)), _correct(xp, z, labels)


def loss_and_grad_sums(xp, params, x, y, w, divisor: float, smoothing: float = 0.0):
    """One chunk's forward and backward: (sum_i w_i l_i, correct count, dW (d, k), db (k,)), the
    gradient being that of sum_i w_i l_i / divisor. y: class indices (n,) or soft targets (n, k);
    w: (n,) weights or None. No penalty (see `penalty`), no validation. The (n, k) passes are few
    (they dominate next to the two products on a GPU): for class indices l_i = log sum_j exp(Z_ij - m_i)
    - (Z_iy - m_i) and G = P - Y without log p; the divisor and the input scale multiply the small
    (d, k) and (k,) results, not G."""
    z = logits(xp, params, x)                                          # (n, k)
    shifted = z - xp.max(z, axis=1, keepdims=True)
    e = xp.exp(shifted)
    sums = xp.sum(e, axis=1, keepdims=True)                            # (n, 1), each >= 1
    p = e / sums
    T, labels = _targets(xp, y, z.shape[1], z.dtype, smoothing)
    if y.ndim == 1 and not smoothing:                                  # one-hot T: sum_j T_ij = 1
        losses = xp.log(sums[:, 0]) - xp.sum(T * shifted, axis=1)
        G = p - T
    else:
        logp = shifted - xp.log(sums)
        losses = -xp.sum(xp.where(T != 0, T * logp, 0.0), axis=1)    # (n,); 0 log 0 counts as 0
        G = p * xp.sum(T, axis=1, keepdims=True) - T                   # (n, k) d l_i / d Z_i
    if w is not None:
        losses, G = losses * w, G * w[:, None]
    dW, db = _backward(xp, params, x, G, divisor)
    return xp.sum(losses), _correct(xp, z, labels), dW, db


def _backward(xp, params, x, G, divisor: float):
    """(dW (d, k), db (k,)) of sum_i G_i . Z_i / divisor through Z = X' W + b: db = sum_i G_i / N,
    dW = X'^T G / N = (s X^T G - mu sum_i G_i) / (sigma N) row-wise. The divisor and the input
    scale multiply the small results, not G."""
    db = xp.sum(G, axis=0) / divisor                                   # (k,)
    if params.mean is None:
        dW = (x.T @ G) * (params.input_scale / divisor)                # (d, k) s X^T G / N
    else:
        dW = (x.T @ G) * (params.input_scale / (divisor * params.std))[:, None] - (params.mean / params.std)[:, None] * db
    return dW, db


def probabilities(xp, params, x):
    """P = softmax(Z) (n, k) for float rows x (n, d): the row maximum subtracted first."""
    z = logits(xp, params, x)                                          # (n, k)
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def class_curvature_sums(xp, params, x, y, w, p=None):
    """sum_i w_i t_i (diag(p_i) - p_i p_i^T) (k, k): the Hessian of the loss in the logits, summed over
    the rows (t_i = sum_j T'_ij, 1 for class indices). The full Hessian is its Kronecker-like mix
    with the inputs' Gram matrix; preconditioner.GramPreconditioner uses it. p: `probabilities`."""
    if p is None:
        p = probabilities(xp, params, x)
    c = xp.ones((p.shape[0],), dtype=p.dtype) if w is None else w
    if y.ndim == 2:
        c = c * xp.sum(y, axis=1)
    pc = p * c[:, None]
    return xp.linalg.matrix_transpose(pc) @ (-p) + xp.eye(p.shape[1], dtype=p.dtype) * xp.sum(pc, axis=0)


def hessian_product_sums(xp, params, VW, Vb, x, y, w, divisor: float, p=None):
    """The Hessian of sum_i w_i l_i / divisor at params (W, b), applied to the direction (VW (d, k),
    Vb (k,)): (HW (d, k), Hb (k,)), no penalty, no (d k) x (d k) matrix. p: `probabilities` at
    params, if the caller has them.

    With p_i = softmax(Z_i) and t_i = sum_j T'_ij (1 for class indices; label smoothing keeps the
    row sum, so it drops out), the Hessian of l_i in Z_i is t_i (diag(p_i) - p_i p_i^T). The
    direction moves the logits by dZ = X' VW + Vb (the logits of (VW, Vb)), so

        R_i = w_i t_i (p_i * dZ_i - p_i (p_i . dZ_i))            (n, k)
        H V = (X'^T R / N, sum_i R_i / N)                         the gradient's backward, R for G
    """
    if p is None:                                                      # callers may keep P across products
        p = probabilities(xp, params, x)                               # at one point (Newton-CG's CG steps)
    dz = logits(xp, _Params(VW, Vb, params.mean, params.std, params.input_scale), x)   # (n, k)
    pdz = p * dz
    R = pdz - p * xp.sum(pdz, axis=1, keepdims=True)
    if y.ndim == 2:
        R = R * xp.sum(y, axis=1, keepdims=True)                       # t_i for soft targets
    if w is not None:
        R = R * w[:, None]
    return _backward(xp, params, x, R, divisor)


def penalty(xp, W, weight_decay: float, dW=None):
    """((lambda / 2) |W|^2 as a float, dW + lambda W (a new array; None without dW))."""
    if not weight_decay:
        return 0.0, dW
    return 0.5 * weight_decay * float(xp.sum(W * W)), None if dW is None else penalty_grad(W, weight_decay, dW)


def penalty_grad(W, weight_decay: float, dW):
    """dW + lambda W (a new array), without the penalty's value: no synchronisation (SGD's steps)."""
    return dW + weight_decay * W if weight_decay else dW


class _Params(NamedTuple):
    W: object
    b: object
    mean: object
    std: object
    input_scale: float


_STATIC = {"loss_and_grad_sums": (4, 8, 9), "loss_and_correct_sums": (4, 7), "hessian_product_sums": (4, 10), "probabilities": (4,)}
"""Positions of the Python scalars (input_scale, divisor, smoothing) in a compiled kernel's arguments."""
_COMPILED: dict = {}


def compiled(fn, xp):
    """`fn` (loss_and_grad_sums, loss_and_correct_sums, probabilities or hessian_product_sums) as called for namespace xp: compiled with
    jax.jit for JAX, whose op-by-op dispatch costs ~10-50 us an operation (one trace per batch
    shape and scalar values; the math is the same function); `fn` itself for every other library."""
    if getattr(xp, "__name__", "") != "jax.numpy":
        return fn
    if fn not in _COMPILED:
        import jax

        def kernel(W, b, mean, std, input_scale, *args):
            return fn(xp, _Params(W, b, mean, std, input_scale), *args)
        jitted = jax.jit(kernel, static_argnums=_STATIC[fn.__name__])
        _COMPILED[fn] = lambda xp, p, *args: jitted(p.W, p.b, p.mean, p.std, p.input_scale, *args)
    return _COMPILED[fn]
