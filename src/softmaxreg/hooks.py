"""What a training run records and shows its hooks: EpochRecord, History, the Callback hooks, the
Run they see, and TrainState (everything needed to continue a run exactly)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["EpochRecord", "History", "Callback", "Run", "TrainState", "METRICS_HEADER"]

METRICS_HEADER = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")


@dataclass(frozen=True)
class EpochRecord:
    """Figures of one epoch (SGD) or one iteration (L-BFGS). For SGD, train_* average the minibatch
    losses and hits over the epoch as the weights move (the lesson's convention); for L-BFGS they are
    the full training set's at the iteration's point. val_* use the weights at its end."""
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float


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

    def to_csv(self) -> str:
        """metrics.csv text: header `epoch,train_loss,train_acc,val_loss,val_acc`, full float precision."""
        lines = [",".join(METRICS_HEADER)]
        for r in self.records:
            lines.append(",".join([str(r.epoch)] + [repr(float(getattr(r, c))) for c in METRICS_HEADER[1:]]))
        return "\n".join(lines) + "\n"


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
