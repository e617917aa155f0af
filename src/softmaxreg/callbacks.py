"""Callbacks for `fit`: the console log (progress bar and one line per epoch) and metrics.csv."""

from __future__ import annotations

import sys

from .train import Callback, EpochRecord, History

__all__ = ["ConsoleLog", "MetricsCSV", "format_record"]


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
        from .fileio import atomic_write_bytes
        atomic_write_bytes(self.path, history.to_csv().encode())
