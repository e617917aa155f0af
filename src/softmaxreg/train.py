"""The training loop: `fit`, the per-epoch History, the Callback hooks, resumable state (TrainState)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields, replace

import numpy as np

from .datasets.batches import iterate_minibatches, num_batches
from .errors import InvalidArgumentError, TrainingDivergedError
from .model import SoftmaxRegression, StepBuffers
from .functional import soft_cross_entropy_rows
from .optim import SGD
from .options import TrainConfig, example_weights

__all__ = ["fit", "TrainState", "feature_moments", "History", "EpochRecord", "Callback"]

METRICS_HEADER = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")
DIVERGENCE_FACTOR = 1000.0
"""A minibatch whose mean loss is NaN, inf, or above DIVERGENCE_FACTOR * log(k) (1000 times the
loss of the uniform prediction that training starts near) stops training as diverged.
The stable softmax keeps the loss finite even for absurd learning rates: with logits growing
like lr, the loss grows like lr instead. Largest minibatch loss of a 10-epoch Fashion-MNIST run
(limit 2303): lr 0.1 -> 2.3, lr 1 -> 17, lr 10 -> 226, lr 30 -> 694, lr 1e6 -> 2.4e7."""


@dataclass(frozen=True)
class EpochRecord:
    """Figures of one epoch. train_* average the minibatch losses and hits over the
    epoch as the weights move (the lesson's convention); val_* use the weights at its end."""
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float


class History:
    """The EpochRecords of a run, with column access: history.column("val_acc")."""

    def __init__(self, records=()):
        self.records: list[EpochRecord] = list(records)
        self.best_epoch: int | None = None       # set by early stopping: the epoch whose weights were kept
        self.stopped_early = False

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i) -> EpochRecord:
        return self.records[i]

    def column(self, name: str) -> list:
        if name not in {f.name for f in fields(EpochRecord)}:
            raise InvalidArgumentError(f"History.column: unknown column {name!r}")
        return [getattr(r, name) for r in self.records]

    def to_csv(self) -> str:
        """metrics.csv text: header `epoch,train_loss,train_acc,val_loss,val_acc`, full float precision."""
        lines = [",".join(METRICS_HEADER)]
        for r in self.records:
            lines.append(",".join([str(r.epoch)] + [repr(float(getattr(r, c))) for c in METRICS_HEADER[1:]]))
        return "\n".join(lines) + "\n"


class Callback:
    """Hooks called by `fit`; override the ones you need."""

    def on_train_begin(self, total_steps: int) -> None: ...
    def on_step_end(self) -> None: ...
    def on_epoch_end(self, record: EpochRecord, history: History) -> None: ...
    def on_train_end(self, history: History) -> None: ...


@dataclass
class TrainState:
    """What `fit` needs to continue a run after `epoch`, besides the model's weights."""
    epoch: int
    records: list
    rng_state: dict                         # the shuffle generator's bit_generator.state
    velocity: list | None                   # SGD momentum buffers
    holdout: np.ndarray | None              # early stopping: indices held out of the training set
    best_loss: float
    best_W: np.ndarray | None
    best_b: np.ndarray | None
    bad_epochs: int
    best_epoch: int | None


def feature_moments(model: SoftmaxRegression, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of the scaled inputs s X, in float64 chunks."""
    total, total_sq = np.zeros(model.num_inputs), np.zeros(model.num_inputs)
    for start in range(0, X.shape[0], 4096):
        chunk = X[start:start + 4096].astype(np.float64) * model.input_scale
        total += chunk.sum(axis=0)
        total_sq += np.square(chunk).sum(axis=0)
    mean = total / X.shape[0]
    return mean, np.sqrt(np.maximum(total_sq / X.shape[0] - mean ** 2, 0.0))


def _holdout_loss(model: SoftmaxRegression, X: np.ndarray, y: np.ndarray) -> float:
    if y.ndim == 1:
        return model.evaluate(X, y)[0]
    with np.errstate(over="ignore", invalid="ignore"):
        losses, _ = soft_cross_entropy_rows(model.logits(X).astype(np.float64), y.astype(np.float64))
    return float(losses.mean())


def fit(model: SoftmaxRegression, X, y, config: TrainConfig | None = None, *, seed: int | np.random.Generator = 0,
        validation_data=None, sample_weight=None, optimizer: SGD | None = None, callbacks=(),
        resume: "TrainState | None" = None, on_checkpoint=None, **options) -> History:
    """Train `model` in place by minibatch SGD on (X, y) and return its History.

    X (n, d) or (n, *input_shape), any real dtype (uint8 images stay uint8; each batch is
    converted to the model's float dtype in a reused buffer); y (n,) class indices or (n, k)
    soft targets. Options come from `config` (a TrainConfig, default the lesson's recipe),
    overridden by keyword arguments of the same names (epochs=, lr=, momentum=, ...).
    `optimizer` continues an existing SGD (its momentum state), e.g. across partial fits.
    Each epoch draws one permutation from the seeded generator `seed`, so the same seed and
    the same initial weights give bit-identical results.
    After every epoch `on_checkpoint(TrainState)` receives all that is needed to continue; passing
    that state back as `resume` (with the model's weights as they were then) continues the run
    bit-identically to one that was never interrupted.
    With early_stopping, a seeded validation_fraction of (X, y) is held out; training stops after
    `patience` epochs without improving its loss by more than tol, and the best weights are
    restored (history.best_epoch). Raises TrainingDivergedError when a minibatch loss breaks the
    DIVERGENCE_FACTOR rule.
    """
    cfg = replace(config or TrainConfig(), **options)
    X = model._flatten(X)
    y = model._check_targets(y, X.shape[0])
    if X.shape[0] == 0:
        raise InvalidArgumentError("X: cannot train on 0 examples")
    weights = example_weights(y, model.num_outputs, sample_weight, cfg.class_weight, model.dtype)
    if validation_data is not None:
        X_val, y_val = validation_data
        X_val = model._flatten(X_val)
        y_val = model._check_labels(y_val, X_val.shape[0])
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    holdout, held = None, None
    if cfg.early_stopping:
        if resume is not None:
            held = resume.holdout
        else:
            order = rng.permutation(X.shape[0])
            cut = max(1, round(cfg.validation_fraction * X.shape[0]))
            if cut >= X.shape[0]:
                raise InvalidArgumentError(f"validation_fraction {cfg.validation_fraction}: leaves no training data")
            held = np.sort(order[:cut])
        kept = np.setdiff1d(np.arange(X.shape[0]), held, assume_unique=True)
        holdout = (X[held], y[held])
        X, y = X[kept], y[kept]
        weights = None if weights is None else weights[kept]
    if cfg.standardize and model.mean is None:
        model.set_standardization(*feature_moments(model, X))

    n, d = X.shape[0], model.num_inputs
    steps_per_epoch = num_batches(n, cfg.batch_size)
    if optimizer is None:
        optimizer = SGD(cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    schedule = cfg.lr_schedule(steps_per_epoch)
    arrays = (X, y) if weights is None else (X, y, weights)
    rows = min(cfg.batch_size, n)
    gathered = tuple(np.empty((rows, *a.shape[1:]), dtype=a.dtype) for a in arrays)   # raw batch
    x_buf = np.empty((rows, d), dtype=model.dtype)        # (B, d) the batch as float
    scratch = StepBuffers(rows, model)
    dW, db = np.empty_like(model.W), np.empty_like(model.b)
    params, grads, decay = (model.W, model.b), (dW, db), (True, False)
    loss_limit = DIVERGENCE_FACTOR * math.log(model.num_outputs)

    history = History()
    best = (math.inf, None, None)                          # held-out loss, W, b
    bad_epochs, first_epoch = 0, 1
    if resume is not None:                                 # continue exactly where the checkpoint left off
        rng.bit_generator.state = resume.rng_state
        history = History(resume.records)
        history.best_epoch = resume.best_epoch
        best, bad_epochs, first_epoch = (resume.best_loss, resume.best_W, resume.best_b), resume.bad_epochs, resume.epoch + 1
        if resume.velocity is not None:
            optimizer.velocity = [v.copy() for v in resume.velocity]
        if (holdout is not None or cfg.converge) and bad_epochs >= cfg.patience:
            history.stopped_early, first_epoch = True, cfg.epochs + 1
    for cb in callbacks:
        cb.on_train_begin((cfg.epochs - first_epoch + 1) * steps_per_epoch)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # a blow-up is caught per step
        for epoch in range(first_epoch, cfg.epochs + 1):
            start = time.perf_counter()
            loss_sum, correct = 0.0, 0
            for step, batch in enumerate(iterate_minibatches(arrays, cfg.batch_size, rng, buffers=gathered), 1):
                xb, yb = batch[0], batch[1]
                x = x_buf[:xb.shape[0]]
                np.copyto(x, xb)                                  # uint8 -> float, no scaling
                batch_loss, batch_correct = model.loss_and_grad_into(
                    x, yb, dW, db, scratch, sample_weight=batch[2] if len(batch) > 2 else None,
                    label_smoothing=cfg.label_smoothing)
                if not batch_loss <= loss_limit * xb.shape[0]:    # also true for NaN
                    mean = batch_loss / xb.shape[0]
                    raise TrainingDivergedError(
                        f"training diverged at epoch {epoch}, step {step}: minibatch loss {mean:.4g} "
                        f"{'is not finite' if not math.isfinite(mean) else f'exceeds {loss_limit:.4g}'}; "
                        "try a smaller learning rate", epoch=epoch, step=step, loss=mean, history=history)
                if not schedule.is_constant:
                    optimizer.lr = schedule((epoch - 1) * steps_per_epoch + step - 1)
                optimizer.step(params, grads, decay)
                loss_sum += batch_loss
                correct += batch_correct
                for cb in callbacks:
                    cb.on_step_end()
            val_loss, val_acc = model.evaluate(X_val, y_val) if validation_data is not None else (math.nan, math.nan)
            record = EpochRecord(epoch, loss_sum / n, correct / n, val_loss, val_acc, time.perf_counter() - start)
            history.records.append(record)
            if holdout is not None or cfg.converge:
                loss = _holdout_loss(model, *holdout) if holdout is not None else record.train_loss
                if loss < best[0] - cfg.tol:
                    bad_epochs = 0
                    best = (loss, model.W.copy(), model.b.copy()) if holdout is not None else (loss, None, None)
                    history.best_epoch = epoch
                else:
                    bad_epochs += 1
            if on_checkpoint is not None:                      # before the callbacks: metrics.csv never runs ahead
                on_checkpoint(TrainState(epoch, list(history.records), rng.bit_generator.state, optimizer.velocity,
                                         held, best[0], best[1], best[2], bad_epochs, history.best_epoch))
            for cb in callbacks:
                cb.on_epoch_end(record, history)
            if (holdout is not None or cfg.converge) and bad_epochs >= cfg.patience:
                history.stopped_early = True
                break
    if holdout is not None and best[1] is not None:
        model.W[...], model.b[...] = best[1], best[2]
    for cb in callbacks:
        cb.on_train_end(history)
    return history
