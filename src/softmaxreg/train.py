"""Training: `fit` prepares the data, the objective and the optimizer, then runs the minibatch
driver (SGD) or the full-batch driver (L-BFGS). Both report through the same callbacks."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import replace

import numpy as np

from . import generic
from .callbacks import ConsoleLog, EarlyStopping, LiveCurves
from .datasets.batches import iterate_minibatches, num_batches
from .datasets.blocks import iterate_block_minibatches
from .engines.rows import check_rows
from .engines import engine_for, has_sparse_blocks
from .engines.array_api import to_numpy
from .errors import ConvergenceWarning, InvalidArgumentError, TrainingDivergedError
from .full_batch import full_batch, prepare_dask
from .hooks import Callback, EpochRecord, History, Run, TrainState
from .model import SoftmaxRegression, StepBuffers
from .moments import standardization
from .objective import SoftmaxCrossEntropy, flat_params, set_flat_params
from .options import TrainConfig, example_weights
from .row_sparse import row_sparse_steps
from .sampled import SampledSoftmax, SampledSteps, sampled_objective
from .seeding import shuffle_generator
from .solvers import Optimizer

__all__ = ["fit", "History", "EpochRecord", "Callback", "TrainState"]

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


def fit(model: SoftmaxRegression, X, y, config: TrainConfig | None = None, *, seed: int | np.random.Generator = 0,
        validation_data=None, sample_weight=None, optimizer: Optimizer | None = None, callbacks=(),
        resume: TrainState | None = None, verbose: bool = False, plot: bool = False, **options) -> History:
    """Train `model` in place on (X, y) and return its History.

    X (n, d) or (n, *input_shape), any real dtype (uint8 images stay uint8; chunks are converted to
    the model's float dtype in reused buffers); y (n,) class indices or (n, k) soft targets.
    Options come from `config` (a TrainConfig, default the lesson's recipe), overridden by keyword
    arguments of the same names (epochs=, lr=, solver=, max_iter=, ...). The objective is
    objective.SoftmaxCrossEntropy; `solver` picks the optimizer (optim.OPTIMIZERS): "sgd" runs
    minibatch epochs, "lbfgs" full-batch iterations to max|gradient| <= tol (ConvergenceWarning
    if it stops first). `optimizer` continues an existing one (its state), e.g. across partial fits.
    loss="sampled" (with num_sampled=S, sampler=...) trains SGD with sampled softmax (sampled.py: each
    step's logits and update for the batch's classes and S drawn ones; validation is the full softmax's).
    Each SGD epoch's order comes from `seed`'s shuffle stream: with shuffle="full" one permutation of
    the rows, with "blocks" a permutation of blocks then of rows in windows of blocks
    (datasets.blocks.iterate_block_minibatches, memory of a window); "auto" (default) is "blocks"
    for data streamed from disk or computed (a memory map, a Dask array), else "full" (seeding.py: an integer N is
    split in two, so SoftmaxRegression(..., seed=N) then fit(..., seed=N) is `softmaxreg train
    --seed N`, bit for bit); the same seed and initial weights give bit-identical results.
    Callbacks see a `Run` from on_train_begin; `run.state()` after an epoch, passed back as `resume` (with the model's weights as they were
    then), continues the run bit-identically to one that was never interrupted.
    With early_stopping, a seeded validation_fraction of (X, y) is held out (X in memory only: streamed X
    is refused, pass validation_data); training stops after
    `patience` epochs without improving its loss by more than tol, and the best weights are
    restored (history.best_epoch). Raises TrainingDivergedError when a minibatch loss breaks the
    DIVERGENCE_FACTOR rule.
    The model follows X (scikit-learn's rule): X of another array library (a torch tensor, a JAX or
    CuPy array) moves the model's parameters to that library and X's device (`model.to`) and trains
    there on the generic path (generic.py), y and validation data moved along; the permutations are
    still drawn by the seeded NumPy generator on the host, so every library sees the NumPy run's
    minibatches in the same order. verbose=True prints the command line's log, a line per epoch
    (callbacks.ConsoleLog); plot=True redraws the loss and accuracy curves after each epoch in a
    Jupyter notebook (callbacks.LiveCurves; nothing elsewhere).
    """
    cfg = replace(config or TrainConfig(), **options)
    optimizer = optimizer or cfg.optimizer()
    data = engine_for(X, y, sample_weight)
    if data.name == "dask" and engine_for(model.W).name != "numpy":
        model.to("numpy")                                 # Dask blocks are NumPy arrays
    on_engine = data.name == "dask" and optimizer.full_batch
    if has_sparse_blocks(X) and not on_engine:
        raise InvalidArgumentError(f"solver: Dask arrays of sparse blocks train with a full-batch solver ('lbfgs' or "
                                   f"'newton-cg'), not {optimizer.name!r} (or pass the sparse matrix in memory)")
    if cfg.early_stopping and data.streamed:             # X[kept] would copy nearly all of it into memory
        raise InvalidArgumentError("early_stopping: not available for streamed X (a memory map or a Dask array); "
                                   "pass validation_data (a held-out split) instead")
    if on_engine:                   # checks, class counts and moments in one pass over the chunks
        X, y, weights = prepare_dask(model, X, y, sample_weight, cfg)
    else:
        X = _dask_rows(model, X) if data.name == "dask" else model._flatten(X)
        data = engine_for(X)
        if engine_for(X, model.W).name == "array_api":  # the model follows X, to NumPy too
            model._move(*((data.xp, data.device) if data.name == "array_api" else (np, "cpu")))
        y = model._check_targets(y, X.shape[0], like=X)
        if X.shape[0] == 0:
            raise InvalidArgumentError("X: cannot train on 0 examples")
        weights = data.asarray(example_weights(to_numpy(y), model.num_outputs, sample_weight, cfg.class_weight,
                                               model.dtype))
    validation = None
    if validation_data is not None:
        X_val = model._flatten(validation_data[0])
        validation = (X_val, model._check_labels(validation_data[1], X_val.shape[0], like=X_val))
    if cfg.shuffle == "auto" and not optimizer.full_batch:
        cfg = replace(cfg, shuffle="blocks" if data.streamed else "full")
    if cfg.shuffle == "blocks" and data.name == "array_api":
        raise InvalidArgumentError("shuffle: 'blocks' streams NumPy memory maps and Dask arrays; arrays of "
                                   f"{data.xp.__name__} take the full shuffle (shuffle='full')")
    rng = shuffle_generator(seed)
    stoppers, held = [], None
    if cfg.early_stopping:
        held = resume.holdout if resume is not None else _holdout_indices(X.shape[0], cfg.validation_fraction, rng)
        kept = np.setdiff1d(np.arange(X.shape[0]), held, assume_unique=True)
        stoppers = [EarlyStopping(cfg.patience, cfg.tol, holdout=(data.take(X, held), data.take(y, held)))]
        X, y, weights = data.take(X, kept), data.take(y, kept), data.take(weights, kept)
    elif cfg.converge:
        stoppers = [EarlyStopping(cfg.patience, cfg.tol)]
    if cfg.standardize and model.mean is None and not on_engine:
        model.set_standardization(*standardization(model, X, cfg.standardize))
    history = History(resume.records if resume is not None else ())
    if resume is not None:
        if resume.solver != optimizer.name:
            raise InvalidArgumentError(f"resume: the state is {resume.solver!r}'s, not {optimizer.name!r}'s")
        rng.bit_generator.state = resume.rng_state
        optimizer.load_state_dict(resume.optimizer, (model.W, model.b))
        for stopper in stoppers:
            stopper.load_state_dict(resume.early_stopping)
    if cfg.loss == "sampled":
        objective = sampled_objective(model, X, y, cfg, seed, optimizer, resume)
    else:
        objective = SoftmaxCrossEntropy(model, weight_decay=cfg.weight_decay, label_smoothing=cfg.label_smoothing)
    driver = _full_batch if optimizer.full_batch else _minibatch
    callbacks = [*stoppers, *callbacks, *([LiveCurves()] if plot else []), *([ConsoleLog()] if verbose else [])]

    def state() -> TrainState:
        sampler = objective.rng.bit_generator.state if cfg.loss == "sampled" else None
        return TrainState(len(history), list(history.records), rng.bit_generator.state, optimizer.name,
                          optimizer.state_dict(), held, stoppers[0].state_dict() if stoppers else None, sampler)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # a blow-up is caught per step
        driver(objective, optimizer, (X, y, weights), cfg, rng, validation, history, callbacks, state, resume)
    for cb in callbacks:
        cb.on_train_end(history)
    return history


def _dask_rows(model: SoftmaxRegression, X):
    """A Dask array of inputs as (n, d) rows, checked without computing it (NaN/inf are found as each
    window of blocks is read: datasets.blocks.iterate_block_minibatches)."""
    check_rows(X, model.num_inputs, "a Dask array")
    return X.reshape(X.shape[0], model.num_inputs) if X.ndim > 2 else X


def _holdout_indices(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    cut = max(1, round(fraction * n))
    if cut >= n:
        raise InvalidArgumentError(f"validation_fraction {fraction}: leaves no training data")
    return np.sort(rng.permutation(n)[:cut])


def _begin(run: Run, callbacks) -> None:
    for cb in callbacks:
        cb.on_train_begin(run)


def _end_epoch(run: Run, record: EpochRecord, callbacks) -> None:
    run.history.records.append(record)
    for cb in callbacks:
        cb.on_epoch_end(record, run.history)


def _validate(model: SoftmaxRegression, validation) -> tuple[float, float]:
    return model.evaluate(*validation) if validation is not None else (math.nan, math.nan)


def _minibatch(objective, optimizer, arrays, cfg, rng, validation, history, callbacks, state, resume) -> None:
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
    _begin(run, callbacks)
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
        record = EpochRecord(epoch, loss_sum / n, accuracy, *_validate(model, validation), seconds)
        _end_epoch(run, record, callbacks)


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


def _full_batch(objective, optimizer, arrays, cfg, rng, validation, history, callbacks, state, resume) -> None:
    """Iterations of a full-batch optimizer on F (objective.py, divisor: the sum of the weights)
    until max |dF| <= cfg.tol, cfg.max_iter iterations, or a callback's stop. One record per
    iteration: the training loss and accuracy at its point, and validation."""
    model = objective.model
    with full_batch(objective, *arrays) as fun:
        if optimizer.uses_preconditioner:
            optimizer.preconditioner = fun.preconditioner()
        if resume is None:                                # a given optimizer starts afresh from the model
            with fun.solving():
                optimizer.start(flat_params(model), fun)
        first, max_iter = len(history) + 1, cfg.solver_max_iter
        run = Run(model, optimizer, history, max_iter, max(max_iter - first + 1, 0), state)
        _begin(run, callbacks)
        reason = None
        for iteration in range(first, max_iter + 1):
            if run.stop or optimizer.grad_max() <= cfg.tol:
                break
            start = time.perf_counter()
            with fun.solving():
                stepped = optimizer.step(fun)
            if not stepped:
                reason = "the line search found no point that lowers the objective (flat to rounding)"
                break
            set_flat_params(model, optimizer.x)
            for cb in callbacks:
                cb.on_step_end()
            seconds = time.perf_counter() - start                 # the iteration alone, before validation
            train_loss, train_acc = optimizer.extra
            _end_epoch(run, EpochRecord(iteration, train_loss, train_acc, *_validate(model, validation), seconds),
                       callbacks)
        set_flat_params(model, optimizer.x)
    # F is flat along b + t (1, ..., 1) (softmax is shift-invariant, the bias unpenalised): keep the
    # centred representative, so equal problems give equal parameters whatever path led there
    model.center_bias()
    history.converged = optimizer.grad_max() <= cfg.tol
    if not history.converged and not run.stop:
        reason = reason or f"it reached max_iter={max_iter}"
        warnings.warn(f"{optimizer.name} stopped before max|gradient| <= tol={cfg.tol:g} "
                      f"(it is {optimizer.grad_max():.3g}): {reason}", ConvergenceWarning, stacklevel=3)
