"""The console log: lines per epoch or every N epochs, the progress bar of a resumed run, and
closing the bar so that what follows starts on its own line."""

import io
import math

from softmaxreg.callbacks import ConsoleLog, format_record
from softmaxreg.hooks import EpochRecord, History, Run
from softmaxreg.solvers import SGD


def record(epoch, val=0.5):
    return EpochRecord(epoch, 0.25, 0.75, val, val, 0.01)


def run(done, epochs=10, steps_per_epoch=7):
    return Run(model=None, optimizer=SGD(), history=History([record(e) for e in range(1, done + 1)]), epochs=epochs,
               total_steps=(epochs - done) * steps_per_epoch, state=None)


def test_a_resumed_runs_bar_starts_at_the_share_already_done():
    err = io.StringIO()
    log = ConsoleLog(progress=True, out=io.StringIO(), err=err)
    log.on_train_begin(run(done=3))
    assert (log.bar.n, log.bar.total) == (21, 70)
    assert "epoch 4/10" in err.getvalue() and " 30%" in err.getvalue()
    log.close()
    assert log.bar is None and err.getvalue().endswith("\r")             # the bar's line is cleared
    log.close()                                                          # closing twice is harmless


def test_every_nth_epoch_and_the_last_are_printed_also_when_stopping_early():
    out = io.StringIO()
    log = ConsoleLog(progress=False, out=out, every=4)
    r = run(done=0)
    log.on_train_begin(r)
    for epoch in range(1, 7):
        log.on_epoch_end(record(epoch), r.history)
    log.on_train_end(r.history)                                          # stopped after epoch 6 of 10
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["4/10", "6/10"]


def test_a_line_without_validation_leaves_the_validation_figures_out():
    assert "val_loss" not in format_record(record(1, val=math.nan), 5)
    assert "val_loss 0.5000  val_acc 0.5000" in format_record(record(1), 5)
