"""What a training run records and shows its hooks: EpochRecord, History, the Callback hooks, the
Run they see, and TrainState (everything needed to continue a run exactly); and how both drivers
(train.py's full batch, minibatch.py's epochs) call the hooks: `begin`, `end_epoch`, `validated`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from .errors import InvalidArgumentError
from .fileio import atomic_write_bytes

__all__ = ["EpochRecord", "History", "Callback", "Run", "TrainState", "METRICS_HEADER", "begin", "end_epoch",
           "validated"]

METRICS_HEADER = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds")
"""metrics.csv's columns; epoch_seconds is EpochRecord.seconds (the one figure that is not the same
bit for bit from run to run). Run folders written before it have the first five only."""
REPR_ROWS = 5                           # History's repr shows this many first and last rows of a long run


def _figure(value: float, column: str) -> str:
    """A figure as people read it: 4 decimals (seconds: 2), or 4 significant digits when tiny or huge."""
    if column == "epoch":
        return str(value)
    if column == "seconds":
        return f"{value:.2f}"
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.4g}"


@dataclass(frozen=True)
class EpochRecord:
    """Figures of one epoch (SGD) or one iteration (L-BFGS). For SGD, train_* average the minibatch
    losses and hits over the epoch as the weights move (the lesson's convention); for L-BFGS they are
    the full training set's at the iteration's point. val_* use the weights at its end. seconds is the
    training time of the epoch (iteration) alone: no validation, no epoch-end callback (checkpoint).
    With loss "sampled", train_loss is the sampled loss that SGD minimises and train_acc is NaN (the
    argmax needs all k logits); val_* are the full softmax's."""
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float

    def __repr__(self) -> str:
        return f"EpochRecord({', '.join(f'{f.name}={_figure(getattr(self, f.name), f.name)}' for f in fields(self))})"


class History:
    """The EpochRecords of a run, with column access: history.column("val_acc").

    best_epoch and stopped_early are set by early stopping; converged by the full-batch solver
    (whether its gradient test held when it stopped)."""

    def __init__(self, records=()):
        self.records: list[EpochRecord] = list(records)
        self.best_epoch: int | None = None       # set by early stopping: the epoch whose weights were kept
        self.stopped_early = False
        self.converged: bool | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i) -> EpochRecord:
        return self.records[i]

    def column(self, name: str) -> list:
        if name not in {f.name for f in fields(EpochRecord)}:
            raise InvalidArgumentError(f"History.column: unknown column {name!r}")
        return [getattr(r, name) for r in self.records]

    def to_dict(self) -> dict[str, np.ndarray]:
        """Every column as an array (n,): epoch (int64), the figures and seconds (float64)."""
        return {f.name: np.array(self.column(f.name), dtype=np.int64 if f.name == "epoch" else np.float64)
                for f in fields(EpochRecord)}

    def to_csv(self, path=None) -> str | None:
        """metrics.csv text: header `epoch,train_loss,train_acc,val_loss,val_acc,epoch_seconds`, full
        float precision. With `path`, written there atomically instead (and None returned)."""
        lines = [",".join(METRICS_HEADER)]
        for r in self.records:
            figures = (r.train_loss, r.train_acc, r.val_loss, r.val_acc, r.seconds)
            lines.append(",".join([str(r.epoch)] + [repr(float(v)) for v in figures]))
        text = "\n".join(lines) + "\n"
        if path is None:
            return text
        atomic_write_bytes(path, text.encode())
        return None

    def __repr__(self) -> str:
        """A small table: every row of a short run, the first and last REPR_ROWS of a long one."""
        notes = [f"{len(self)} epoch{'s' * (len(self) != 1)}"]
        notes += [f"best_epoch {self.best_epoch}"] if self.best_epoch is not None else []
        notes += ["stopped early"] if self.stopped_early else []
        notes += [("" if self.converged else "not ") + "converged"] if self.converged is not None else []
        columns = [f.name for f in fields(EpochRecord)]
        records = self.records
        if len(records) > 2 * REPR_ROWS + 1:
            records = records[:REPR_ROWS] + [None] + records[-REPR_ROWS:]
        cells = [[_figure(getattr(r, c), c) for c in columns] if r else ["..."] * len(columns) for r in records]
        if not cells:
            return f"History({', '.join(notes)})"
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
        lines = [f"History({', '.join(notes)})", "  ".join(c.rjust(w) for c, w in zip(columns, widths))]
        return "\n".join(lines + ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells])


@dataclass
class TrainState:
    """What `fit` needs to continue a run after `epoch` (an iteration for L-BFGS), besides the model's
    weights: the history, the shuffle generator, the optimizer's and early stopping's state dicts."""
    epoch: int
    records: list
    rng_state: dict                          # the shuffle generator's bit_generator.state
    solver: str                              # the optimizer's registered name
    optimizer: dict                          # optimizer.state_dict()
    holdout: np.ndarray | None = None        # early stopping: indices held out of the training set
    early_stopping: dict | None = None       # EarlyStopping.state_dict()
    sampler_state: dict | None = None        # loss "sampled": its class generator's bit_generator.state


@dataclass
class Run:
    """The run in progress, as callbacks see it from `on_train_begin` on. A callback may set
    `stop` to end training after the current epoch; `state()` is what a checkpoint saves."""
    model: object
    optimizer: object
    history: History
    epochs: int                              # the last epoch (or iteration) the run may reach
    total_steps: int                         # progress steps still to come (minibatches, or iterations)
    state: object = field(repr=False)        # () -> TrainState after the last finished epoch
    stop: bool = False


class Callback:
    """Hooks called by `fit`; override the ones you need."""

    def on_train_begin(self, run: Run) -> None: ...
    def on_step_end(self) -> None: ...
    def on_epoch_end(self, record: EpochRecord, history: History) -> None: ...
    def on_train_end(self, history: History) -> None: ...


def begin(run: Run, callbacks) -> None:
    """The callbacks' on_train_begin, in order."""
    for cb in callbacks:
        cb.on_train_begin(run)


def end_epoch(run: Run, record: EpochRecord, callbacks) -> None:
    """`record` joins the run's history; then the callbacks' on_epoch_end, in order."""
    run.history.records.append(record)
    for cb in callbacks:
        cb.on_epoch_end(record, run.history)


def validated(model, validation) -> tuple[float, float]:
    """(val_loss, val_acc) of an EpochRecord: the model's on the (X, y) `validation`, NaN without one."""
    return model.evaluate(*validation) if validation is not None else (math.nan, math.nan)
