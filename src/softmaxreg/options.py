"""Training options: TrainConfig (shared by `fit`, `softmaxreg train` and the scikit-learn
estimator), the tuned recipe, and per-example loss weights."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InvalidArgumentError
from .moments import check_standardize
from .sampled import LOSSES, SAMPLERS
from .solvers import OPTIMIZERS, LRSchedule, Optimizer

__all__ = ["TrainConfig", "RECIPE_BEST", "example_weights"]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


@dataclass
class TrainConfig:
    """Every training option, shared by `fit`, `softmaxreg train` and the scikit-learn estimator.
    The defaults are the lesson's reference run."""
    solver: str = "sgd"                  # a name in solvers.OPTIMIZERS: "sgd" (minibatch), "lbfgs" or "newton-cg"
                                         # (full batch); each declares the options below that it takes
    max_iter: int | None = None          # full-batch solvers: most iterations (None: LBFGS_MAX_ITER)
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0            # L2 penalty (weight_decay / 2) |W|^2; the bias is not penalised
    schedule: str = "constant"           # constant, step, cosine
    warmup_epochs: float = 0.0
    step_epochs: int = 10                # schedule "step": multiply the rate by gamma every step_epochs
    gamma: float = 0.1
    label_smoothing: float = 0.0
    class_weight: dict | str | None = None   # {class index: weight} or "balanced"
    standardize: bool | str = False      # per-feature mean/std of the training inputs, kept in the model;
                                         # "scale": the std only, no centring (moments.STANDARDIZE)
    early_stopping: bool = False         # hold out validation_fraction of the training set
    validation_fraction: float = 0.1
    patience: int = 5                    # epochs without a held-out loss improvement > tol
    tol: float = 1e-4                    # SGD: least loss improvement for early stopping / converge;
                                         # full batch: stop when max |gradient| <= tol (scipy's pgtol rule)
    converge: bool = False               # without early stopping: stop when the epoch's training
                                         # loss has not improved by > tol for `patience` epochs
    shuffle: str = "auto"                # SGD epoch order: "full" (a permutation of all rows, the lesson's),
                                         # "blocks" (datasets.blocks: seeded blocks, shuffled in windows;
                                         # memory of a window), "auto": blocks for memory maps and Dask arrays
    loss: str = "full"                   # "full" softmax, or "sampled" softmax (sampled.py; SGD without momentum)
    num_sampled: int | None = None       # loss "sampled": classes drawn per step, 1 <= S < k (required)
    sampler: str = "unigram"             # loss "sampled": the proposal, "uniform", "log-uniform" or "unigram"

    def lr_schedule(self, steps_per_epoch: int, epochs: int | None = None) -> LRSchedule:
        """The learning rate at each step of a run with these settings (over `epochs`, default self.epochs)."""
        return LRSchedule(self.lr, self.schedule, steps_per_epoch=steps_per_epoch,
                          epochs=self.epochs if epochs is None else epochs, warmup_epochs=self.warmup_epochs,
                          step_epochs=self.step_epochs, gamma=self.gamma)

    @property
    def solver_max_iter(self) -> int:
        return LBFGS_MAX_ITER if self.max_iter is None else self.max_iter

    def optimizer(self) -> Optimizer:
        """A new optimizer of `solver`, built from these settings."""
        return OPTIMIZERS[self.solver].from_config(self)

    def __post_init__(self):
        if self.solver not in OPTIMIZERS:
            raise InvalidArgumentError(f"solver: expected one of {', '.join(OPTIMIZERS)}, got {self.solver!r}")
        if self.max_iter is not None:
            self.max_iter = _positive_int("max_iter", self.max_iter)
        self.epochs = _positive_int("epochs", self.epochs)
        self.batch_size = _positive_int("batch_size", self.batch_size)
        self.step_epochs = _positive_int("step_epochs", self.step_epochs)
        self.patience = _positive_int("patience", self.patience)
        self.lr_schedule(steps_per_epoch=1)                                        # validates the rate options
        self.optimizer()                                                           # validates the solver's
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InvalidArgumentError(f"weight_decay: expected a finite value >= 0, got {self.weight_decay}")
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            raise InvalidArgumentError(f"label_smoothing: expected a value in [0, 1), got {self.label_smoothing}")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise InvalidArgumentError(f"validation_fraction: expected a value in (0, 1), got {self.validation_fraction}")
        if not (math.isfinite(self.tol) and self.tol >= 0):
            raise InvalidArgumentError(f"tol: expected a finite value >= 0, got {self.tol}")
        check_standardize(self.standardize)
        if self.shuffle not in SHUFFLES:
            raise InvalidArgumentError(f"shuffle: expected one of {', '.join(SHUFFLES)}, got {self.shuffle!r}")
        if not (self.class_weight is None or self.class_weight == "balanced" or isinstance(self.class_weight, dict)):
            raise InvalidArgumentError(f"class_weight: expected None, 'balanced' or a dict, got {self.class_weight!r}")
        self._check_loss()

    def _check_loss(self) -> None:
        """loss, num_sampled and sampler, and what sampled softmax does not go with."""
        if self.loss not in LOSSES:
            raise InvalidArgumentError(f"loss: expected one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.sampler not in SAMPLERS:
            raise InvalidArgumentError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.loss == "full":
            if self.num_sampled is not None:
                raise InvalidArgumentError("num_sampled: goes with loss 'sampled' (the full softmax uses every class)")
            return
        if self.num_sampled is None:
            raise InvalidArgumentError("num_sampled: loss 'sampled' needs the number of classes drawn per step")
        self.num_sampled = _positive_int("num_sampled", self.num_sampled)
        if self.optimizer().full_batch:
            raise InvalidArgumentError(f"loss: 'sampled' trains with minibatch SGD (solver 'sgd'), not the full-batch "
                                       f"solver {self.solver!r}")
        if self.momentum:
            raise InvalidArgumentError(f"loss: 'sampled' takes plain SGD steps on the sampled columns; momentum would "
                                       f"move every column each step (set momentum 0, not {self.momentum})")
        if self.label_smoothing:
            raise InvalidArgumentError("loss: 'sampled' takes class-index targets without label smoothing")


SHUFFLES = ("auto", "full", "blocks")

LBFGS_MAX_ITER = 500
"""Default most iterations of L-BFGS: Fashion-MNIST's L2 optimum at C = 0.01 needs a few hundred."""

RECIPE_BEST = dict(epochs=30, batch_size=256, lr=0.03, momentum=0.9, nesterov=True, weight_decay=3e-3,
                   schedule="cosine", warmup_epochs=1.0, standardize=True)
"""`softmaxreg train --recipe best`: the setting with the highest accuracy on the last 10,000
training images held out as validation (benchmarks/tune_recipe.py; never the test split)."""


def class_weight_vector(class_weight, k: int, counts: np.ndarray) -> np.ndarray:
    """The weight of each class (k,) float64: a {class index: weight} dict (others 1), or "balanced":
    n / (classes present * count) from the class counts (k,), 0 for an absent class."""
    if class_weight == "balanced":
        counts = np.asarray(counts, dtype=np.float64)
        return np.where(counts > 0, counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)
    per_class = np.ones(k)
    for c, v in class_weight.items():
        if not 0 <= int(c) < k or not (math.isfinite(float(v)) and float(v) >= 0):
            raise InvalidArgumentError(f"class_weight: bad entry {c!r}: {v!r}")
        per_class[int(c)] = float(v)
    return per_class


def example_weights(y: np.ndarray, k: int, sample_weight, class_weight, dtype) -> np.ndarray | None:
    """Per-example loss weights: sample_weight times the weight of each example's class."""
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (y.shape[0],) or not np.isfinite(w).all() or (w < 0).any():
            raise InvalidArgumentError(f"sample_weight: expected {y.shape[0]} finite non-negative weights, got shape {w.shape}")
    if class_weight is not None:
        if y.ndim != 1:
            raise InvalidArgumentError("class_weight: needs class-index targets, not soft targets")
        per_class = class_weight_vector(class_weight, k, np.bincount(y, minlength=k))
        w = per_class[y] if w is None else w * per_class[y]
    if w is not None and not w.sum() > 0:
        raise InvalidArgumentError("sample_weight: every weight is zero, nothing to learn from")
    return None if w is None else w.astype(dtype)
