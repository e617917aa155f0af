"""Checkpoints: the model and everything `fit` needs to continue a run bit-identically (the
optimizer's state dict, the shuffle generator's state, history, early stopping), in one
safetensors file written atomically. No pickle: arrays are tensors, the rest is JSON.
The history is kept without its wall-clock seconds, so the same run gives the same bytes
(resumed epochs read back seconds=nan)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np

from .errors import ModelFormatError
from .hooks import Callback, EpochRecord, Run, TrainState
from .solvers import OPTIMIZERS
from .tensor_file import CHECKPOINT_FORMAT, read_tensors, write_tensors
from .model_file import model_from_tensors, model_metadata, model_tensors

__all__ = ["save_checkpoint", "load_checkpoint", "Checkpoint", "CHECKPOINT_FORMAT"]

JSON_TYPES = (type(None), bool, int, float, str, list, tuple, dict)
CHECKPOINT_FORMAT_VERSION = 2          # 2: optimizer and early-stopping state dicts under "state"


def _split(prefix: str, state: dict | None) -> tuple[dict, dict]:
    """A state dict as (tensors named PREFIX.KEY, the JSON-able rest): a value of a JSON type stays
    in the metadata, every other one (state dicts hold NumPy arrays) is a tensor."""
    tensors, rest = {}, {}
    for key, value in (state or {}).items():
        if isinstance(value, JSON_TYPES):
            rest[key] = value
        else:
            tensors[f"{prefix}.{key}"] = value
    return tensors, rest


def _join(prefix: str, rest: dict | None, tensors: dict) -> dict | None:
    if rest is None:
        return None
    return {**rest, **{name[len(prefix) + 1:]: a for name, a in tensors.items() if name.startswith(prefix + ".")}}


def save_checkpoint(path, model, state: TrainState) -> None:
    """Write `model` and `state` to `path` atomically (the previous checkpoint survives a crash)."""
    optimizer_tensors, optimizer_rest = _split("optimizer", state.optimizer)
    stopping_tensors, stopping_rest = _split("early_stopping", state.early_stopping)
    tensors = {**model_tensors(model), **optimizer_tensors, **stopping_tensors}
    if state.holdout is not None:
        tensors["holdout"] = np.asarray(state.holdout, dtype=np.int64)
    records = [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in state.records]
    run_state = {"epoch": state.epoch, "records": records, "rng_state": state.rng_state,
                 "solver": state.solver, "optimizer": optimizer_rest,
                 "early_stopping": None if state.early_stopping is None else stopping_rest,
                 **({} if state.sampler_state is None else {"sampler_state": state.sampler_state})}
    write_tensors(path, tensors, {**model_metadata(model), "state": json.dumps(run_state)}, kind=CHECKPOINT_FORMAT,
                  version=CHECKPOINT_FORMAT_VERSION)


def load_checkpoint(path):
    """(model, TrainState) from a file written by `save_checkpoint`, all of it checked."""
    tensors, meta = read_tensors(path, kind=CHECKPOINT_FORMAT, version=CHECKPOINT_FORMAT_VERSION, what="checkpoint")
    model = model_from_tensors(tensors, meta, path)
    try:
        run_state = json.loads(meta["state"])
        epoch, solver = int(run_state["epoch"]), run_state["solver"]
        records = [EpochRecord(**{"seconds": math.nan, **r}) for r in run_state["records"]]
        state = TrainState(epoch, records, run_state["rng_state"], solver,
                           _join("optimizer", run_state["optimizer"], tensors), tensors.get("holdout"),
                           _join("early_stopping", run_state["early_stopping"], tensors), run_state.get("sampler_state"))
        np.random.default_rng().bit_generator.state = state.rng_state
        if state.sampler_state is not None:
            np.random.default_rng().bit_generator.state = state.sampler_state
        OPTIMIZERS[solver]().load_state_dict(state.optimizer, (model.W, model.b))
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise ModelFormatError(f"{path}: corrupt checkpoint state: {e}") from None
    if epoch < 1 or len(records) != epoch:
        raise ModelFormatError(f"{path}: inconsistent checkpoint (epoch {epoch}, {len(records)} history rows)")
    return model, state


class Checkpoint(Callback):
    """Saves the model and `run.state()` to `path` after every epoch (L-BFGS: every iteration)."""

    def __init__(self, path):
        self.path = path
        self.run: Run | None = None

    def on_train_begin(self, run: Run) -> None:
        self.run = run

    def on_epoch_end(self, record, history) -> None:
        save_checkpoint(self.path, self.run.model, self.run.state())
