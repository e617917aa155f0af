"""Callbacks for `fit`: the console log (progress bar and one line per epoch), metrics.csv, and
early stopping."""

from __future__ import annotations

import math
import sys

import numpy as np

from .fileio import atomic_write_bytes
from .functional import soft_cross_entropy_rows
from .hooks import Callback, EpochRecord, History, Run

__all__ = ["ConsoleLog", "MetricsCSV", "EarlyStopping", "format_record"]


def format_record(record: EpochRecord, epochs: int, unit: str = "epoch") -> str:
    """One line of figures; the validation ones are left out when there was no validation (NaN)."""
    width = len(str(epochs))
    validation = "" if math.isnan(record.val_loss) else \
        f"  val_loss {record.val_loss:.4f}  val_acc {record.val_acc:.4f}"
    return (f"{unit} {record.epoch:>{width}}/{epochs}  train_loss {record.train_loss:.4f}  "
            f"train_acc {record.train_acc:.4f}{validation}  ({record.seconds:.2f} s)")


class ConsoleLog(Callback):
    """One line per epoch (L-BFGS: per iteration) on `out` (stdout), or per `every` epochs and the
    last, and, if `progress`, a tqdm bar over the run's steps on `err` (stderr); by default the bar
    is shown only when stderr is a terminal. A resumed run's bar starts at the share already done.
    `close()` removes the bar (also when training ends by an exception), so what is printed next
    starts on its own line."""

    def __init__(self, progress: bool | None = None, out=None, err=None, every: int = 1):
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.progress = self.err.isatty() if progress is None else progress
        self.every = every
        self.bar = None
        self.pending: EpochRecord | None = None       # the latest record not yet printed
        self.epochs, self.unit = 0, "epoch"

    def on_train_begin(self, run: Run) -> None:
        self.epochs = run.epochs
        self.unit = "iteration" if run.optimizer.full_batch else "epoch"
        if self.progress:
            from tqdm import tqdm
            done, left = len(run.history), run.epochs - len(run.history)
            done_steps = done * (run.total_steps // left) if left > 0 else 0
            self.bar = tqdm(total=done_steps + run.total_steps, initial=done_steps, file=self.err, unit="step",
                            leave=False, mininterval=0.1, desc=f"{self.unit} {done + 1}/{self.epochs}")

    def on_step_end(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def on_epoch_end(self, record: EpochRecord, history: History) -> None:
        self.pending = record
        if record.epoch % self.every == 0 or record.epoch == self.epochs:
            self._print_pending()
        if self.bar is not None:
            self.bar.set_description_str(f"{self.unit} {min(record.epoch + 1, self.epochs)}/{self.epochs}")

    def _print_pending(self) -> None:
        line = format_record(self.pending, self.epochs, self.unit)
        self.pending = None
        if self.bar is not None:
            self.bar.write(line, file=self.out)     # clears the bar, prints, redraws it
        else:
            print(line, file=self.out, flush=True)

    def on_train_end(self, history: History) -> None:
        if self.pending is not None:                # stopped early between two printed epochs
            self._print_pending()
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsCSV(Callback):
    """Rewrites `path` atomically after every epoch, so it is always complete."""

    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, record: EpochRecord, history: History) -> None:
        atomic_write_bytes(self.path, history.to_csv().encode())


class EarlyStopping(Callback):
    """Stop when the monitored loss has not improved by more than `tol` for `patience` epochs.

    With `holdout` (X, y) the monitored loss is the held-out mean cross-entropy and the best weights
    are restored when training ends (history.best_epoch); without, it is the epoch's training loss
    (scikit-learn's n_iter_no_change rule) and the last weights stay. Its state is checkpointed.
    """

    def __init__(self, patience: int, tol: float, holdout: tuple | None = None):
        self.patience, self.tol, self.holdout = patience, tol, holdout
        self.best_loss, self.best_W, self.best_b = math.inf, None, None
        self.bad_epochs, self.best_epoch = 0, None
        self.run: Run | None = None

    def on_train_begin(self, run: Run) -> None:
        self.run = run
        run.history.best_epoch = self.best_epoch
        if self.bad_epochs >= self.patience:             # resumed from the epoch that stopped it
            run.stop = run.history.stopped_early = True

    def on_epoch_end(self, record: EpochRecord, history: History) -> None:
        model = self.run.model
        loss = _holdout_loss(model, *self.holdout) if self.holdout is not None else record.train_loss
        if loss < self.best_loss - self.tol:
            self.bad_epochs, self.best_loss, self.best_epoch = 0, loss, record.epoch
            if self.holdout is not None:
                self.best_W, self.best_b = model.W.copy(), model.b.copy()
            history.best_epoch = record.epoch
        else:
            self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.run.stop = history.stopped_early = True

    def on_train_end(self, history: History) -> None:
        if self.best_W is not None:
            self.run.model.W[...], self.run.model.b[...] = self.best_W, self.best_b

    def state_dict(self) -> dict:
        state = {"best_loss": self.best_loss, "bad_epochs": self.bad_epochs, "best_epoch": self.best_epoch}
        return state if self.best_W is None else {**state, "best_W": self.best_W, "best_b": self.best_b}

    def load_state_dict(self, state: dict) -> None:
        self.best_loss, self.bad_epochs = float(state["best_loss"]), int(state["bad_epochs"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        self.best_W, self.best_b = state.get("best_W"), state.get("best_b")


def _holdout_loss(model, X: np.ndarray, y: np.ndarray) -> float:
    if y.ndim == 1:
        return model.evaluate(X, y)[0]
    with np.errstate(over="ignore", invalid="ignore"):
        losses, _ = soft_cross_entropy_rows(model.logits(X).astype(np.float64), y.astype(np.float64))
    return float(losses.mean())
