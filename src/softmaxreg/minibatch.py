"""The minibatch driver of `fit` (SGD): epochs of minibatch steps, the divergence check, and the
steps themselves on NumPy arrays (`_NumpySteps`) or on any other library's (`_GenericSteps`)."""

from __future__ import annotations

import math
import time

import numpy as np

from . import generic
from .datasets.batches import iterate_minibatches, num_batches
from .datasets.blocks import iterate_block_minibatches
from .engines import engine_for
from .errors import TrainingDivergedError
from .hooks import EpochRecord, Run, begin, end_epoch, validated
from .model import SoftmaxRegression, StepBuffers
from .row_sparse import row_sparse_steps
from .sampled import SampledSoftmax, SampledSteps

__all__ = ["minibatch_epochs", "DIVERGENCE_FACTOR"]

DIVERGENCE_FACTOR = 1000.0
"""A minibatch whose mean loss is NaN, inf, or above DIVERGENCE_FACTOR * log(k) (1000 times the
loss of the uniform prediction that training starts near) stops training as diverged.
The stable softmax keeps the loss finite even for absurd learning rates: with logits growing
like lr, the loss grows like lr instead. Largest minibatch loss of a 10-epoch Fashion-MNIST run
(limit 2303): lr 0.1 -> 2.3, lr 1 -> 17, lr 10 -> 226, lr 30 -> 694, lr 1e6 -> 2.4e7."""

LARGE_INPUT_RMS = 10.0
"""A divergence on inputs that are not standardized and whose root mean square value (after the
model's input scale) exceeds this is named a scale problem, fixed by standardizing: an SGD step
grows with |x|^2, and standardized features have RMS 1, Fashion-MNIST's pixels / 255 about 0.5,
scikit-learn's breast cancer and wine tables about 100 and 200."""


def minibatch_epochs(objective, optimizer, arrays, cfg, rng, validation, history, callbacks, state, resume) -> None:
    """Epochs of minibatch steps: each batch's loss and gradient, the divergence check, the penalty,
    one optimizer step at the schedule's rate. Ends after cfg.epochs, or when a callback sets
    run.stop. The batches and steps are NumPy's (`_NumpySteps`) or, on its device, any other
    library's (`_GenericSteps`): the same epochs, batches and formulas. Sparse rows with plain SGD
    step on the rows of W each batch uses (row_sparse.RowSparseSteps; sampled softmax: SampledSteps)."""
    model = objective.model
    n, first = arrays[0].shape[0], len(history) + 1
    steps_per_epoch = num_batches(n, cfg.batch_size)
    schedule = cfg.lr_schedule(steps_per_epoch)
    loss_limit = DIVERGENCE_FACTOR * math.log(model.num_outputs)
    engine = engine_for(arrays[0])
    steps = (_GenericSteps if engine.generic else _NumpySteps)(objective, optimizer, arrays, cfg, rng)
    if isinstance(objective, SampledSoftmax):
        steps = SampledSteps(steps)
    else:                                   # sparse rows and plain SGD: the step touches W[R] only
        steps = row_sparse_steps(steps, objective, optimizer, arrays[0])
    run = Run(model, optimizer, history, cfg.epochs, (cfg.epochs - first + 1) * steps_per_epoch, state)
    begin(run, callbacks)
    for epoch in range(first, cfg.epochs + 1):
        if run.stop:
            break
        start, loss_sum, correct = time.perf_counter(), 0.0, 0
        for step, batch in enumerate(steps.batches(), 1):
            m, batch_loss, batch_correct = steps.gradient(batch)
            if not batch_loss <= loss_limit * m:                         # also true for NaN
                mean = batch_loss / m
                raise TrainingDivergedError(
                    f"training diverged at epoch {epoch}, step {step}: minibatch loss {mean:.4g} "
                    f"{'is not finite' if not math.isfinite(mean) else f'exceeds {loss_limit:.4g}'}; "
                    f"{_divergence_fix(model, steps.x_batch)}", epoch=epoch, step=step, loss=mean, history=history)
            steps.step(schedule((epoch - 1) * steps_per_epoch + step - 1))
            loss_sum += batch_loss
            correct = correct + batch_correct                 # a device scalar on the generic path
            for cb in callbacks:
                cb.on_step_end()
        seconds = time.perf_counter() - start                 # training alone: before validation and callbacks
        accuracy = int(correct) / n if steps.counts_hits else math.nan
        record = EpochRecord(epoch, loss_sum / n, accuracy, *validated(model, validation), seconds)
        end_epoch(run, record, callbacks)


OVERFLOW_INPUT = 1e150
"""Inputs beyond this overflow when squared in float64 (1e308): the loss overflows, whatever the rate."""


def _divergence_fix(model: SoftmaxRegression, x) -> str:
    """What to try after the batch x (raw inputs, (B, d)) diverged: standardizing, if the inputs are
    not standardized and large (LARGE_INPUT_RMS), else a smaller learning rate."""
    top, rms = engine_for(x).magnitudes(x)                               # x: a batch, never empty
    top, rms = model.input_scale * top, model.input_scale * rms          # inf if the squares overflow
    if not top <= OVERFLOW_INPUT:             # squares, and so the loss, beyond float64: no learning rate helps
        return (f"values too large: the loss overflowed (inputs up to {top:.3g}); scale the data down"
                + ("" if model.mean is not None else " or standardize it (--standardize; standardize=True in Python)"))
    if model.mean is None:
        if not rms <= LARGE_INPUT_RMS:
            return (f"the inputs are not standardized and large (root mean square {rms:.3g}): standardize "
                    "them (--standardize; standardize=True in Python)")
    return "try a smaller learning rate"


class _NumpySteps:
    """Minibatches of NumPy arrays (in memory, memory-mapped or Dask): each epoch's order from the
    shuffle generator (a permutation, or the block shuffle), batches gathered raw and converted to
    float in reused buffers, the gradient in reused buffers, the step in place. `x_batch` is the
    last batch as float (what a divergence message looks at)."""
    counts_hits = True

    def __init__(self, objective, optimizer, arrays, cfg, rng):
        self.objective, self.optimizer, self.cfg, self.rng = objective, optimizer, cfg, rng
        model = objective.model
        X, y, w = arrays
        self.weighted = w is not None
        self.arrays = (X, y) if w is None else (X, y, w)
        rows = min(cfg.batch_size, X.shape[0])
        self.gathered = tuple(np.empty((rows, *a.shape[1:]), dtype=a.dtype) for a in self.arrays)   # raw batch
        self.x = np.empty((rows, model.num_inputs), dtype=model.dtype)     # (B, d) the batch as float
        self.scratch = StepBuffers(rows, model)
        self.dW = self.db = None

    def batches(self):
        order = iterate_block_minibatches if self.cfg.shuffle == "blocks" else iterate_minibatches
        return order(self.arrays, self.cfg.batch_size, self.rng, buffers=self.gathered)

    def rows(self, batch):
        """(x (m, d) float, y (m,), w (m,) or None) of a batch: x converted into the reused buffer, or
        the gathered rows themselves when they are already floats of the model's dtype."""
        m = batch[0].shape[0]
        if batch[0].dtype == self.x.dtype and batch[0].ndim == 2:       # already float rows: no second copy
            x = self.x_batch = batch[0]
        else:
            x = self.x_batch = self.x[:m]
            np.copyto(x, batch[0])                                      # uint8 -> float, no scaling
        return x, batch[1], batch[2] if self.weighted else None

    def gradient(self, batch) -> tuple[int, float, int]:
        x, y, w = self.rows(batch)
        m = x.shape[0]
        loss, correct, self.dW, self.db = self.objective.chunk(x, y, w, m, self.scratch)
        return m, float(loss), correct

    def step(self, lr: float) -> None:
        model = self.objective.model
        self.objective.add_penalty(self.dW)
        self.optimizer.step((model.W, model.b), (self.dW, self.db), lr)


class _GenericSteps:
    """`_NumpySteps` for arrays of any array API library, on their device, and for sparse rows: each epoch's permutation
    is drawn on the host by the same generator call as the NumPy run's (iterate_minibatches) and
    moved to the device; batches are gathered with xp.take; the optimizer returns new parameters
    (`SGD.updated`), which are rebound. One synchronisation a step: the minibatch loss, for the
    divergence check."""
    counts_hits = True

    def __init__(self, objective, optimizer, arrays, cfg, rng):
        self.objective, self.optimizer, self.cfg, self.rng = objective, optimizer, cfg, rng
        self.X, self.y, self.w = arrays
        self.engine = engine = engine_for(self.X)
        self.xp, self.device = engine.xp, engine.device

    def batches(self):
        n, size = self.X.shape[0], self.cfg.batch_size
        order = self.xp.asarray(self.rng.permutation(n), device=self.device)
        return (order[begin:min(begin + size, n)] for begin in range(0, n, size))   # no out-of-bounds slices

    def rows(self, idx):
        """(x (m, d) float rows, y (m,), w (m,) or None) of the batch of row indices idx."""
        xp, m = self.xp, idx.shape[0]
        x = self.x_batch = self.engine.float_rows(self.engine.take(self.X, idx), 0, m, self.objective.model.W.dtype)
        return x, xp.take(self.y, idx, axis=0), None if self.w is None else xp.take(self.w, idx, axis=0)

    def gradient(self, idx) -> tuple[int, float, object]:
        x, y, w = self.rows(idx)
        m = x.shape[0]
        loss, correct, self.dW, self.db = self.objective.chunk(x, y, w, m)
        return m, float(loss), correct

    def step(self, lr: float) -> None:
        model = self.objective.model
        dW = generic.penalty_grad(model.W, self.objective.weight_decay, self.dW)
        model.W, model.b = self.optimizer.updated((model.W, model.b), (dW, self.db), lr)
