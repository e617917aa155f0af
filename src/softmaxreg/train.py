"""Training: `fit` prepares the data, the objective and the optimizer, then runs the minibatch
driver (SGD: minibatch.py) or the full-batch driver (L-BFGS, Newton-CG: here). Both report through
the same callbacks."""

from __future__ import annotations

import time
import warnings
from dataclasses import replace

import numpy as np

from .callbacks import ConsoleLog, EarlyStopping, LiveCurves
from .engines.rows import check_rows
from .engines import engine_for, has_sparse_blocks
from .engines.array_api import to_numpy
from .errors import ConvergenceWarning, InvalidArgumentError
from .full_batch import full_batch, prepare_dask
from .hooks import Callback, EpochRecord, History, Run, TrainState, begin, end_epoch, validated
from .minibatch import minibatch_epochs
from .model import SoftmaxRegression
from .moments import standardization
from .objective import SoftmaxCrossEntropy, flat_params, set_flat_params
from .options import TrainConfig, example_weights
from .sampled import sampled_objective
from .seeding import shuffle_generator
from .solvers import Optimizer

__all__ = ["fit", "History", "EpochRecord", "Callback", "TrainState"]


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
    driver = _full_batch if optimizer.full_batch else minibatch_epochs
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
        begin(run, callbacks)
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
            end_epoch(run, EpochRecord(iteration, train_loss, train_acc, *validated(model, validation), seconds),
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
