"""SoftmaxRegression: the linear model, its predictions, and its hand-derived gradient.

Conventions
-----------
X : (n, d) raw inputs, or (n, *input_shape) images; any real dtype (uint8 pixels stay uint8
    until a chunk is converted to the model's float dtype).
W : (d, k) weights, b : (k,) bias, s : input_scale (1/255 for 0..255 pixels).
Z = s * (X @ W) + b : (n, k) logits; the scale is folded into the small (n, k) result so
    the big input matrix is never rescaled.
With standardization (mean mu, std sigma of the scaled inputs s X, per feature) the model sees
    X' = (s X - mu) / sigma  and  Z = X' W + b = X (W * s / sigma) + (b - (mu / sigma) W),
    again folded into small (d, k) and (k,) arrays, so X is never standardized in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .datasets.blocks import iterate_rows
from .errors import InvalidArgumentError
from .functional import softmax, softmax_cross_entropy_
from .gemm import matmul_rows
from .seeding import init_generator

__all__ = ["SoftmaxRegression"]

_CHUNK_ROWS = 2048   # rows converted to float at a time in predict/evaluate (6 MB as float32)

class SoftmaxRegression:
    """Multinomial logistic regression Z = s X W + b, p = softmax(Z).

    W is drawn from N(0, sigma^2) with a seeded generator and b starts at 0, as
    in the lesson; an integer `seed` uses the first stream of the seed rule (seeding.py).
    `class_names`, `input_shape`, `input_scale` and `input_range` (the (low, high) raw values it
    was trained on, e.g. (0, 255) for pixels; None if unknown) travel with the model into its
    file, so a loaded model knows how to read raw inputs.
    """

    def __init__(self, num_inputs: int, num_outputs: int, sigma: float = 0.01, *,
                 seed: int | np.random.Generator = 0, dtype=np.float32, input_scale: float = 1.0,
                 input_shape: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
                 input_range: tuple[float, float] | None = None):
        if int(num_inputs) < 1 or int(num_outputs) < 2:
            raise InvalidArgumentError(
                f"need num_inputs >= 1 and num_outputs >= 2, got {num_inputs} and {num_outputs}")
        if not np.isfinite(sigma) or sigma < 0:
            raise InvalidArgumentError(f"sigma: expected a finite value >= 0, got {sigma}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise InvalidArgumentError(f"dtype: expected float32 or float64, got {self.dtype}")
        rng = init_generator(seed)
        self.W = rng.normal(0.0, sigma, size=(int(num_inputs), int(num_outputs))).astype(self.dtype)
        self.b = np.zeros(int(num_outputs), dtype=self.dtype)
        self.input_scale = float(input_scale)
        self.input_shape = tuple(int(s) for s in input_shape) if input_shape else (int(num_inputs),)
        if int(np.prod(self.input_shape)) != self.num_inputs:
            raise InvalidArgumentError(f"input_shape {self.input_shape} does not hold {num_inputs} inputs")
        self.mean: np.ndarray | None = None       # (d,) standardization of the scaled inputs, if any
        self.std: np.ndarray | None = None
        names = list(class_names) if class_names is not None else [str(i) for i in range(num_outputs)]
        if len(names) != self.num_outputs:
            raise InvalidArgumentError(f"class_names: expected {num_outputs} names, got {len(names)}")
        self.class_names = [str(c) for c in names]
        if input_range is not None and not (len(input_range) == 2 and np.isfinite(input_range).all()
                                            and input_range[0] < input_range[1]):
            raise InvalidArgumentError(f"input_range: expected finite (low, high) with low < high, got {input_range!r}")
        self.input_range = None if input_range is None else (float(input_range[0]), float(input_range[1]))

    def __repr__(self) -> str:
        names = self.class_names if self.num_outputs <= 12 else [*self.class_names[:5], "...", *self.class_names[-2:]]
        shape = f" ({'x'.join(map(str, self.input_shape))})" if len(self.input_shape) > 1 else ""
        inverse = 1 / self.input_scale                                   # 1/255 reads better than 0.00392157
        scale = f"1/{round(inverse)}" if inverse > 1 and abs(inverse - round(inverse)) < 1e-9 * inverse \
            else f"{self.input_scale:g}"
        return (f"SoftmaxRegression({self.num_inputs} inputs{shape} -> {self.num_outputs} classes "
                f"[{', '.join(names)}], {self.dtype.name}, input_scale {scale}, "
                f"{'standardized' if self.mean is not None else 'not standardized'})")

    @property
    def num_inputs(self) -> int:
        return self.W.shape[0]

    @property
    def num_outputs(self) -> int:
        return self.W.shape[1]

    def _flatten(self, X) -> np.ndarray:
        """(n, d) view of the inputs, checked against the model's input size."""
        X = np.asarray(X)
        if X.ndim == 0 or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise InvalidArgumentError(f"X: expected a numeric array of shape (n, {self.num_inputs}), got {X.dtype} {X.shape}")
        if X.ndim == 1 or int(np.prod(X.shape[1:])) != self.num_inputs:
            raise InvalidArgumentError(
                f"X: expected shape (n, {self.num_inputs}) or (n, {', '.join(map(str, self.input_shape))}), got {X.shape}")
        X = X.reshape(X.shape[0], self.num_inputs)
        if not np.issubdtype(X.dtype, np.integer) and X.dtype != bool and \
                not all(np.isfinite(block).all() for _, _, block in iterate_rows(X)):   # a memory map: streamed
            raise InvalidArgumentError("X: contains NaN or infinite values")
        return X

    def set_standardization(self, mean, std) -> None:
        """Standardize features: the model sees (s X - mean) / std; zero std counts as 1."""
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.shape != (self.num_inputs,) or std.shape != (self.num_inputs,) \
                or not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std < 0).any():
            raise InvalidArgumentError(f"standardization: expected finite mean and std >= 0 of shape ({self.num_inputs},)")
        self.mean = mean.astype(self.dtype)
        self.std = np.where(std > 0, std, 1.0).astype(self.dtype)

    def _logits_into(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """z (n, k) <- s * (x @ W) + b (or its standardized form) for float rows x (n, d)."""
        if self.mean is None:
            matmul_rows(x, self.W, z)
            if self.input_scale != 1.0:
                z *= self.dtype.type(self.input_scale)
            z += self.b
        else:
            matmul_rows(x, self.W * (self.dtype.type(self.input_scale) / self.std)[:, None], z)
            z += self.b - (self.mean / self.std) @ self.W
        return z

    def _float_chunks(self, X: np.ndarray):
        """Yield (rows, x): x is X[rows] as float, in one reused buffer of up to _CHUNK_ROWS rows,
        so a big uint8 set is never held as float."""
        buf = np.empty((min(_CHUNK_ROWS, X.shape[0]), self.num_inputs), dtype=self.dtype)
        for start in range(0, X.shape[0], _CHUNK_ROWS):
            x = buf[:X[start:start + _CHUNK_ROWS].shape[0]]
            np.copyto(x, X[start:start + x.shape[0]])
            yield slice(start, start + x.shape[0]), x

    def logits(self, X) -> np.ndarray:
        """Z = s X W + b, shape (n, k)."""
        X = self._flatten(X)
        Z = np.empty((X.shape[0], self.num_outputs), dtype=self.dtype)
        for rows, x in self._float_chunks(X):
            self._logits_into(x, Z[rows])
        return Z

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities softmax(Z), shape (n, k); rows sum to 1."""
        return softmax(self.logits(X), axis=1)

    def predict(self, X) -> np.ndarray:
        """Index of the most probable class for each row, shape (n,)."""
        return self.logits(X).argmax(axis=1)

    def _check_labels(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise InvalidArgumentError(f"y: expected {n} integer class indices, got {y.dtype} array of shape {y.shape}")
        if n and (y.min() < 0 or y.max() >= self.num_outputs):
            raise InvalidArgumentError(f"y: labels must lie in [0, {self.num_outputs - 1}], found {y.min()}..{y.max()}")
        return y

    def evaluate(self, X, y) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) on (X, y), computed in float chunks.

        A model whose logits have overflowed gives a NaN loss here rather than an error.
        """
        X = self._flatten(X)
        y = self._check_labels(y, X.shape[0])
        if X.shape[0] == 0:
            raise InvalidArgumentError("X: cannot evaluate on 0 examples")
        buffers = StepBuffers(min(_CHUNK_ROWS, X.shape[0]), self)
        loss_sum, correct = 0.0, 0
        for rows, x in self._float_chunks(X):
            m = x.shape[0]
            zt = buffers.zt[:, :m]
            np.copyto(zt, self._logits_into(x, buffers.z[:m]).T)
            chunk_loss, chunk_correct = softmax_cross_entropy_(zt, y[rows], buffers.cols[:m])
            loss_sum += chunk_loss
            correct += chunk_correct
        return loss_sum / X.shape[0], correct / X.shape[0]

    def _check_targets(self, y, n: int) -> np.ndarray:
        """Class indices (n,), or soft targets (n, k): finite, non-negative."""
        y = np.asarray(y)
        if y.ndim != 2:
            return self._check_labels(y, n)
        if y.shape != (n, self.num_outputs) or not np.issubdtype(y.dtype, np.floating) \
                or not np.isfinite(y).all() or (y < 0).any():
            raise InvalidArgumentError(f"y: soft targets must be finite non-negative floats of shape ({n}, "
                                       f"{self.num_outputs}), got {y.dtype} {y.shape}")
        return y.astype(self.dtype, copy=False)


class StepBuffers:
    """Scratch arrays for logits and gradients of up to `rows` examples (evaluate, the objective's chunks)."""

    def __init__(self, rows: int, model: SoftmaxRegression):
        self.z = np.empty((rows, model.num_outputs), dtype=model.dtype)     # (B, k) logits
        self.zt = np.empty((model.num_outputs, rows), dtype=model.dtype)    # (k, B) class-major
        self.cols = np.arange(rows)
        self.dW = np.empty_like(model.W)                                      # (d, k) block product
