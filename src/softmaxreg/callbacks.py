"""Callbacks for `fit`: the console log (progress bar and one line per epoch), the live curves of a
notebook, metrics.csv, early stopping, and scikit-learn's callbacks (SklearnTasks): all of them
are hooks of the same training loop."""

from __future__ import annotations

import math
import sys

import numpy as np

from .engines.array_api import to_numpy
from .fileio import atomic_write_bytes
from .functional import soft_cross_entropy_rows
from .hooks import Callback, EpochRecord, History, Run

__all__ = ["ConsoleLog", "LiveCurves", "MetricsCSV", "EarlyStopping", "StepProgress", "format_record", "progress_bar",
           "SklearnTasks"]


def format_record(record: EpochRecord, epochs: int, unit: str = "epoch") -> str:
    """One line of figures; the validation ones are left out when there was no validation (NaN)."""
    width = len(str(epochs))
    validation = "" if math.isnan(record.val_loss) else \
        f"  val_loss {record.val_loss:.4f}  val_acc {record.val_acc:.4f}"
    return (f"{unit} {record.epoch:>{width}}/{epochs}  train_loss {record.train_loss:.4f}  "
            f"train_acc {record.train_acc:.4f}{validation}  ({record.seconds:.2f} s)")


def progress_bar(total: int, *, desc: str, unit: str, show: bool | None = None, file=None, **options):
    """A tqdm bar on `file` (stderr) that clears itself when done, shown if `show` (default: when
    `file` is a terminal); a hidden one has .disable set and costs nothing to update."""
    from tqdm import tqdm

    file = sys.stderr if file is None else file
    return tqdm(total=total, desc=desc, unit=unit, file=file, leave=False, mininterval=0.1,
                disable=not (file.isatty() if show is None else show), **options)


class StepProgress(Callback):
    """Advances a progress bar by one per training step."""

    def __init__(self, bar):
        self.bar = bar

    def on_step_end(self) -> None:
        self.bar.update()


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
            done, left = len(run.history), run.epochs - len(run.history)
            done_steps = done * (run.total_steps // left) if left > 0 else 0
            self.bar = progress_bar(done_steps + run.total_steps, initial=done_steps, unit="step", show=True,
                                    file=self.err, desc=f"{self.unit} {done + 1}/{self.epochs}")

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


def _jupyter_display():
    """(display, clear_output) of IPython when running in a Jupyter kernel, else (None, None).
    IPython is never imported here: if no one has imported it, this is not a notebook."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or getattr(shell, "kernel", None) is None:       # plain Python, terminal IPython
        return None, None
    from IPython.display import clear_output, display
    return display, clear_output


class LiveCurves(Callback):
    """The lesson's animated board, without widgets: after each epoch the cell's output is replaced
    (`clear_output(wait=True)`, then `display`) by the loss and accuracy curves so far
    (runplots.render_curves, ~0.1 s a redraw), the x axis fixed to the whole run.

    Outside a Jupyter kernel it does nothing. `display` and `clear_output` stand in for IPython's."""

    def __init__(self, display=None, clear_output=None):
        self.given = (display, clear_output) if display is not None else None
        self.display, self.clear_output = display, clear_output
        self.epochs, self.unit = None, "epoch"

    def on_train_begin(self, run: Run) -> None:
        self.display, self.clear_output = self.given or _jupyter_display()
        self.unit = "iteration" if run.optimizer.full_batch else "epoch"
        self.epochs = run.epochs

    def on_epoch_end(self, record: EpochRecord, history: History) -> None:
        if self.display is None:
            return
        from .runplots import render_curves

        figure = render_curves(history, title=f"{self.unit} {record.epoch}/{self.epochs}: val_loss "
                               f"{record.val_loss:.4f}, val_acc {record.val_acc:.4f}",
                               epochs=self.epochs if self.unit == "epoch" else None, unit=self.unit)
        self.clear_output(wait=True)                # the old figure goes when the new one arrives
        self.display(figure)


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
                self.best_W, self.best_b = to_numpy(model.W).copy(), to_numpy(model.b).copy()   # host copies
            history.best_epoch = record.epoch
        else:
            self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.run.stop = history.stopped_early = True

    def on_train_end(self, history: History) -> None:
        model = self.run.model
        if self.best_W is not None:                      # copies, in the parameters' library and on their device
            model.W, model.b = (model.engine.asarray(a.copy(), dtype=model.dtype) for a in (self.best_W, self.best_b))

    def state_dict(self) -> dict:
        state = {"best_loss": self.best_loss, "bad_epochs": self.bad_epochs, "best_epoch": self.best_epoch}
        return state if self.best_W is None else {**state, "best_W": self.best_W, "best_b": self.best_b}

    def load_state_dict(self, state: dict) -> None:
        self.best_loss, self.bad_epochs = float(state["best_loss"]), int(state["bad_epochs"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        self.best_W, self.best_b = state.get("best_W"), state.get("best_b")


class SklearnTasks(Callback):
    """scikit-learn's callbacks (sklearn.callback, scikit-learn >= 1.9) fed from our hooks: each epoch
    (SGD) or iteration (L-BFGS, Newton-CG) is a subtask `task_name` of the estimator's fit task
    `context` (a CallbackContext), begun at its first step and ended with its record.

    `hook_args` (estimator, X, y, metadata: the user's data and labels) go to every hook;
    `reconstruct(model)` gives the attributes that make a copy of the estimator a fitted one at the
    model's current weights (what ScoringMonitor scores), computed only when a callback asks. No
    scikit-learn import here: the context brings it."""

    def __init__(self, context, task_name: str, hook_args: dict, reconstruct):
        self.context, self.task_name, self.hook_args = context, task_name, hook_args
        self.reconstruct = reconstruct
        self.task = None                               # the subcontext of the epoch in progress
        self.model = None

    def on_train_begin(self, run: Run) -> None:
        self.model = run.model

    def _begin(self) -> None:
        self.task = self.context.subcontext(task_name=self.task_name)
        self.task.call_on_fit_task_begin(**self.hook_args)

    def on_step_end(self) -> None:
        if self.task is None:
            self._begin()

    def on_epoch_end(self, record: EpochRecord, history: History) -> None:
        if self.task is None:                          # an epoch without steps
            self._begin()
        model = self.model
        self.task.call_on_fit_task_end(**self.hook_args, reconstruction_attributes=lambda: self.reconstruct(model))
        self.task = None

    def on_train_end(self, history: History) -> None:
        if self.task is not None:                      # stopped within an epoch: its task ends empty
            self.task.call_on_fit_task_end(estimator=self.hook_args["estimator"])
            self.task = None


def _holdout_loss(model, X: np.ndarray, y: np.ndarray) -> float:
    if y.ndim == 1:
        return model.evaluate(X, y)[0]
    with np.errstate(over="ignore", invalid="ignore"):
        losses, _ = soft_cross_entropy_rows(to_numpy(model.logits(X)).astype(np.float64), to_numpy(y).astype(np.float64))
    return float(losses.mean())
