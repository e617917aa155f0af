"""The training loop, its per-epoch History, and callbacks (progress bar, metrics.csv)."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, fields

import numpy as np

from .datasets.batches import iterate_minibatches, num_batches
from .errors import InvalidArgumentError, TrainingDivergedError
from .model import SoftmaxRegression, StepBuffers
from .optim import SGD

__all__ = ["fit", "History", "EpochRecord", "Callback", "ConsoleLog", "MetricsCSV"]

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


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def fit(model: SoftmaxRegression, X, y, *, epochs: int = 10, batch_size: int = 256, lr: float = 0.1,
        optimizer=None, seed: int | np.random.Generator = 0, validation_data=None,
        callbacks=()) -> History:
    """Train `model` in place by minibatch SGD on (X, y) and return its History.

    X (n, d) or (n, *input_shape), any real dtype (uint8 images stay uint8; each
    batch is converted to the model's float dtype in a reused buffer); y (n,) ints.
    Each epoch draws one permutation from the seeded generator `seed`, so the same
    seed and the same initial weights give bit-identical results.
    Raises TrainingDivergedError when a minibatch loss breaks the DIVERGENCE_FACTOR rule.
    """
    epochs = _positive_int("epochs", epochs)
    batch_size = _positive_int("batch_size", batch_size)
    optimizer = optimizer if optimizer is not None else SGD(lr)
    X = model._flatten(X)
    y = model._check_labels(y, X.shape[0])
    n, d = X.shape[0], model.num_inputs
    if n == 0:
        raise InvalidArgumentError("X: cannot train on 0 examples")
    if validation_data is not None:
        X_val, y_val = validation_data
        X_val = model._flatten(X_val)
        y_val = model._check_labels(y_val, X_val.shape[0])
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    rows = min(batch_size, n)
    gathered = (np.empty((rows, d), dtype=X.dtype), np.empty(rows, dtype=y.dtype))   # raw batch
    x_buf = np.empty((rows, d), dtype=model.dtype)        # (B, d) the batch as float
    scratch = StepBuffers(rows, model)
    dW, db = np.empty_like(model.W), np.empty_like(model.b)
    params, grads = (model.W, model.b), (dW, db)

    loss_limit = DIVERGENCE_FACTOR * math.log(model.num_outputs)
    history = History()
    for cb in callbacks:
        cb.on_train_begin(epochs * num_batches(n, batch_size))
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        loss_sum, correct = 0.0, 0
        for step, (xb, yb) in enumerate(iterate_minibatches(X, y, batch_size, rng, buffers=gathered), 1):
            x = x_buf[:xb.shape[0]]
            np.copyto(x, xb)                                  # uint8 -> float, no scaling
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # caught just below
                batch_loss, batch_correct = model.loss_and_grad_into(x, yb, dW, db, scratch)
            if not batch_loss <= loss_limit * xb.shape[0]:    # also true for NaN
                mean = batch_loss / xb.shape[0]
                raise TrainingDivergedError(
                    f"training diverged at epoch {epoch}, step {step}: minibatch loss {mean:.4g} "
                    f"{'is not finite' if not math.isfinite(mean) else f'exceeds {loss_limit:.4g}'}; "
                    "try a smaller learning rate", epoch=epoch, step=step, loss=mean, history=history)
            optimizer.step(params, grads)
            loss_sum += batch_loss
            correct += batch_correct
            for cb in callbacks:
                cb.on_step_end()
        val_loss, val_acc = model.evaluate(X_val, y_val) if validation_data is not None else (math.nan, math.nan)
        record = EpochRecord(epoch, loss_sum / n, correct / n, val_loss, val_acc, time.perf_counter() - start)
        history.records.append(record)
        for cb in callbacks:
            cb.on_epoch_end(record, history)
    for cb in callbacks:
        cb.on_train_end(history)
    return history


def format_record(record: EpochRecord, epochs: int) -> str:
    width = len(str(epochs))
    return (f"epoch {record.epoch:>{width}}/{epochs}  train_loss {record.train_loss:.4f}  "
            f"train_acc {record.train_acc:.4f}  val_loss {record.val_loss:.4f}  "
            f"val_acc {record.val_acc:.4f}  ({record.seconds:.2f} s)")


class ConsoleLog(Callback):
    """One line per epoch on `out` (stdout) and, if `progress`, a tqdm bar over all steps
    on `err` (stderr); by default the bar is shown only when stderr is a terminal."""

    def __init__(self, epochs: int, progress: bool | None = None, out=None, err=None):
        self.epochs = epochs
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.progress = self.err.isatty() if progress is None else progress
        self.bar = None

    def on_train_begin(self, total_steps: int) -> None:
        if self.progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, file=self.err, unit="step", leave=False, mininterval=0.1,
                            desc=f"epoch 1/{self.epochs}")

    def on_step_end(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def on_epoch_end(self, record: EpochRecord, history: History) -> None:
        line = format_record(record, self.epochs)
        if self.bar is not None:
            self.bar.write(line, file=self.out)     # clears the bar, prints, redraws it
            self.bar.set_description_str(f"epoch {min(record.epoch + 1, self.epochs)}/{self.epochs}")
        else:
            print(line, file=self.out, flush=True)

    def on_train_end(self, history: History) -> None:
        if self.bar is not None:
            self.bar.close()


class MetricsCSV(Callback):
    """Rewrites `path` atomically after every epoch, so it is always complete."""

    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, record: EpochRecord, history: History) -> None:
        from .persist import atomic_write_bytes
        atomic_write_bytes(self.path, history.to_csv().encode())
