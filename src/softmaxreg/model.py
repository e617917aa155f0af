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

import copy
from collections.abc import Sequence

import numpy as np

from . import generic
from .engines import engine_for
from .engines.array_api import backend_name, dtype_name, resolve, to_device, to_numpy
from .engines.rows import iterate_rows
from .errors import InvalidArgumentError
from .functional import softmax, softmax_cross_entropy_
from .engines.gemm import matmul_rows
from .seeding import init_generator

__all__ = ["SoftmaxRegression"]

_CHUNK_ROWS = 2048   # rows converted to float at a time in predict/evaluate (6 MB as float32)
_GENERIC_CHUNK_ROWS = 16384   # the same on the generic path: fewer, larger kernels for a GPU (51 MB at d = 784)
LOGITS_PER_CHUNK = 1 << 20    # and at most this many logits (8 MiB of float64): few rows when the classes are many

class SoftmaxRegression:
    """Multinomial logistic regression Z = s X W + b, p = softmax(Z).

    W is drawn from N(0, sigma^2) with a seeded generator and b starts at 0, as
    in the lesson; an integer `seed` uses the first stream of the seed rule (seeding.py).
    `class_names`, `input_shape`, `input_scale` and `input_range` (the (low, high) raw values it
    was trained on, e.g. (0, 255) for pixels; None if unknown) travel with the model into its
    file, so a loaded model knows how to read raw inputs; so does `index_base`, the first feature
    index of the svmlight files it was trained on (0 or 1; None: not trained on svmlight files),
    so its test files are read as its training files were.

    The parameters W, b (and mean, std) are NumPy arrays unless the model is moved to another
    array library with `to(backend, device)`, or trained by `fit` on another library's arrays
    (which moves it to them, scikit-learn's rule). The initial weights are always drawn by the
    seeded NumPy generator, so a model has the same initial values on every library.
    logits, predict_proba and predict answer in the library and on the device of X; evaluate
    returns Python floats.
    """

    def __init__(self, num_inputs: int, num_outputs: int, sigma: float = 0.01, *,
                 seed: int | np.random.Generator = 0, dtype=np.float32, input_scale: float = 1.0,
                 input_shape: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
                 input_range: tuple[float, float] | None = None, index_base: int | None = None):
        if int(num_inputs) < 1 or int(num_outputs) < 2:
            raise InvalidArgumentError(
                f"need num_inputs >= 1 and num_outputs >= 2, got {num_inputs} and {num_outputs}")
        if not np.isfinite(sigma) or sigma < 0:
            raise InvalidArgumentError(f"sigma: expected a finite value >= 0, got {sigma}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise InvalidArgumentError(f"dtype: expected float32 or float64, got {self.dtype}")
        rng = init_generator(seed)
        # float64 draws: the model's dtype without a second (d, k) array when that is float64
        self.W = rng.normal(0.0, sigma, size=(int(num_inputs), int(num_outputs))).astype(self.dtype, copy=False)
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
        if index_base not in (None, 0, 1) or isinstance(index_base, bool):
            raise InvalidArgumentError(f"index_base: expected 0, 1 or None, got {index_base!r}")
        self.index_base = index_base

    def __repr__(self) -> str:
        names = self.class_names if self.num_outputs <= 12 else [*self.class_names[:5], "...", *self.class_names[-2:]]
        shape = f" ({'x'.join(map(str, self.input_shape))})" if len(self.input_shape) > 1 else ""
        inverse = 1 / self.input_scale                                   # 1/255 reads better than 0.00392157
        scale = f"1/{round(inverse)}" if inverse > 1 and abs(inverse - round(inverse)) < 1e-9 * inverse \
            else f"{self.input_scale:g}"
        return (f"SoftmaxRegression({self.num_inputs} inputs{shape} -> {self.num_outputs} classes "
                f"[{', '.join(names)}], {self.dtype.name}, input_scale {scale}, "
                f"{'standardized' if self.mean is not None else 'not standardized'})")

    def to(self, backend: str = "numpy", device: str | None = None) -> "SoftmaxRegression":
        """Move the parameters, in place, to `backend` ("numpy", "torch", "jax", "cupy",
        "array_api_strict") on `device` ("cpu", "cuda", "cuda:N"; None: the library's default);
        returns self (like torch's Module.to). Values and dtype are unchanged; an absent library
        or device raises InvalidArgumentError. (JAX needs jax_enable_x64 for a float64 model.)"""
        return self._move(*resolve(backend, device))

    def _move(self, xp, device) -> "SoftmaxRegression":
        """Rebind W, b, mean, std as arrays of namespace xp on `device`, all or none."""
        names = ("W", "b", "mean", "std")
        moved = [to_device(getattr(self, name), xp, device, dtype=self.dtype) for name in names]
        if dtype_name(moved[0].dtype) != self.dtype.name:
            raise InvalidArgumentError(f"dtype: {self.dtype.name} is not available on this backend "
                                       "(jax: set jax.config.update('jax_enable_x64', True))")
        for name, array in zip(names, moved):
            setattr(self, name, array)
        return self

    @property
    def backend(self) -> str:
        """The library holding the parameters: "numpy", "torch", "jax", "cupy", "array_api_strict"."""
        return backend_name(self.engine.xp)

    @property
    def device(self):
        """The device holding the parameters ("cpu" for NumPy)."""
        return self.engine.device

    @property
    def engine(self):
        """The engine of the parameters (engines.engine_for): their library and device."""
        return engine_for(self.W)

    def _like(self, X) -> "SoftmaxRegression":
        """This model with its arrays in X's library and on X's device: itself when they are
        already there, else a shallow copy moved there (the parameters are small)."""
        data, engine = engine_for(X), self.engine
        if (data.xp, data.device) == (engine.xp, engine.device):      # NumPy's arrays serve dense and sparse X
            return self
        return copy.copy(self)._move(data.xp, data.device)

    @property
    def num_inputs(self) -> int:
        return self.W.shape[0]

    @property
    def num_outputs(self) -> int:
        return self.W.shape[1]

    def _flatten(self, X) -> np.ndarray:
        """(n, d) view of the inputs, checked against the model's input size (sparse X: a checked
        CSR array in the model's dtype, engines.sparse.checked_csr)."""
        data = engine_for(X)
        if data.name == "sparse":
            return data.rows(X, self.num_inputs, self.dtype)
        if data.name == "array_api":
            return self._flatten_generic(X)
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

    def _flatten_generic(self, X):
        """`_flatten` for an array of another library: the same checks, in its namespace."""
        xp = engine_for(X).xp
        if X.ndim == 0 or not xp.isdtype(X.dtype, ("integral", "real floating", "bool")):
            raise InvalidArgumentError(f"X: expected a numeric array of shape (n, {self.num_inputs}), got {X.dtype} {tuple(X.shape)}")
        if X.ndim == 1 or int(np.prod(X.shape[1:])) != self.num_inputs:
            raise InvalidArgumentError(
                f"X: expected shape (n, {self.num_inputs}) or (n, {', '.join(map(str, self.input_shape))}), got {tuple(X.shape)}")
        X = xp.reshape(X, (X.shape[0], self.num_inputs))
        if xp.isdtype(X.dtype, "real floating") and not bool(xp.all(xp.isfinite(X))):
            raise InvalidArgumentError("X: contains NaN or infinite values")
        return X

    def set_standardization(self, mean, std) -> None:
        """Standardize features: the model sees (s X - mean) / std; zero std counts as 1.
        mean and std (d,) of any library; they are kept in the parameters' library and device."""
        mean = np.asarray(to_numpy(mean), dtype=np.float64)
        std = np.asarray(to_numpy(std), dtype=np.float64)
        if mean.shape == std.shape == (self.num_inputs,) and not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise InvalidArgumentError("standardization: values too large: the mean or standard deviation of the "
                                       "inputs overflowed; scale the data down (or check it for NaN)")
        if mean.shape != (self.num_inputs,) or std.shape != (self.num_inputs,) or (std < 0).any():
            raise InvalidArgumentError(f"standardization: expected finite mean and std >= 0 of shape ({self.num_inputs},)")
        self.mean = mean.astype(self.dtype)
        self.std = np.where(std > 0, std, 1.0).astype(self.dtype)
        self._move(self.engine.xp, self.engine.device)

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

    def center_bias(self) -> None:
        """b <- b - mean(b) (mean in float64): the softmax is shift-invariant, so the centred bias
        gives the same predictions and equal problems equal parameters whatever path led there."""
        xp = self.engine.xp
        self.b = self.b - xp.astype(xp.mean(xp.astype(self.b, xp.float64)), self.b.dtype)

    def _float_chunks(self, X: np.ndarray):
        """Yield (rows, x): x is X[rows] as float, in one reused buffer of up to _CHUNK_ROWS rows,
        so a big uint8 set is never held as float."""
        buf = np.empty((min(_CHUNK_ROWS, X.shape[0]), self.num_inputs), dtype=self.dtype)
        for start in range(0, X.shape[0], _CHUNK_ROWS):
            x = buf[:X[start:start + _CHUNK_ROWS].shape[0]]
            np.copyto(x, X[start:start + x.shape[0]])
            yield slice(start, start + x.shape[0]), x

    def _generic_chunks(self, X):
        """Yield (start, x): X's rows as float in chunks, for the generic path."""
        data = engine_for(X)
        dtype = getattr(data.xp, self.dtype.name)
        rows = max(1, min(_GENERIC_CHUNK_ROWS, LOGITS_PER_CHUNK // self.num_outputs))
        for start in range(0, X.shape[0], rows):
            yield start, data.float_rows(X, start, min(start + rows, X.shape[0]), dtype)

    def logits(self, X):
        """Z = s X W + b, shape (n, k), in X's library and on its device."""
        X = self._flatten(X)
        model, data = self._like(X), engine_for(X)
        if data.generic:
            xp = data.xp
            return xp.concat([generic.logits(xp, model, x) for _, x in model._generic_chunks(X)], axis=0)
        if model is not self:
            return model.logits(X)
        Z = np.empty((X.shape[0], self.num_outputs), dtype=self.dtype)
        for rows, x in self._float_chunks(X):
            self._logits_into(x, Z[rows])
        return Z

    def predict_proba(self, X):
        """Class probabilities softmax(Z), shape (n, k); rows sum to 1."""
        z = self.logits(X)
        logits = engine_for(z)
        if logits.name == "numpy":
            return softmax(z, axis=1)                    # checked: a NaN or +inf row is an error
        xp = logits.xp
        e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
        return e / xp.sum(e, axis=1, keepdims=True)

    def predict(self, X):
        """Index of the most probable class for each row, shape (n,)."""
        z = self.logits(X)
        return engine_for(z).xp.argmax(z, axis=1)

    def _check_labels(self, y, n: int, like=None):
        """Class indices (n,), checked; in the library and on the device of `like` (default NumPy)."""
        if engine_for(y, like).name == "array_api":
            checked = self._check_labels(to_numpy(y), n)
            target = engine_for(like)
            return target.asarray(y if engine_for(y) == target else checked)
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
        y = self._check_labels(y, X.shape[0], like=X)
        if X.shape[0] == 0:
            raise InvalidArgumentError("X: cannot evaluate on 0 examples")
        model, data = self._like(X), engine_for(X)
        if data.generic:
            xp, loss_sum, correct = data.xp, 0.0, 0
            sums = generic.compiled(generic.loss_and_correct_sums, xp)
            for start, x in model._generic_chunks(X):
                chunk_loss, chunk_correct = sums(xp, model, x, y[start:start + x.shape[0]], 0.0)
                loss_sum, correct = loss_sum + chunk_loss, correct + chunk_correct
            return float(loss_sum) / X.shape[0], int(correct) / X.shape[0]
        if model is not self:
            return model.evaluate(X, y)
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

    def _check_targets(self, y, n: int, like=None):
        """Class indices (n,), or soft targets (n, k): finite, non-negative; in the library and on
        the device of `like` (default NumPy)."""
        if engine_for(y, like).name == "array_api":
            return engine_for(like).asarray(self._check_targets(to_numpy(y), n))
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
        self.grad_W, self.grad_b = np.empty_like(model.W), np.empty_like(model.b)   # the chunk's gradient
