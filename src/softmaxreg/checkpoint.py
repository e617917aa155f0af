"""Checkpoints: the model and everything `fit` needs to continue a run bit-identically
(optimizer momentum, shuffle-generator state, history, early-stopping state), in one
safetensors file written atomically. No pickle: arrays are tensors, the rest is JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np

from .errors import ModelFormatError
from .fileio import read_tensors, write_tensors
from .model_file import model_from_tensors, model_metadata, model_tensors
from .train import EpochRecord, TrainState

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "softmaxreg-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


def save_checkpoint(path, model, state: TrainState) -> None:
    """Write `model` and `state` to `path` atomically (the previous checkpoint survives a crash)."""
    tensors = dict(model_tensors(model))
    for i, v in enumerate(state.velocity or ()):
        tensors[f"velocity_{i}"] = v
    if state.holdout is not None:
        tensors["holdout"] = np.asarray(state.holdout, dtype=np.int64)
    if state.best_W is not None:
        tensors |= {"best_weight": state.best_W, "best_bias": state.best_b}
    metadata = {
        **model_metadata(model),
        "epoch": str(state.epoch),
        "records": json.dumps([asdict(r) for r in state.records]),
        "rng_state": json.dumps(state.rng_state),
        "velocity": str(len(state.velocity or ())),
        "best_loss": repr(float(state.best_loss)),
        "bad_epochs": str(state.bad_epochs),
        "best_epoch": json.dumps(state.best_epoch),
    }
    write_tensors(path, tensors, metadata, kind=CHECKPOINT_FORMAT, version=CHECKPOINT_FORMAT_VERSION)


def load_checkpoint(path):
    """(model, TrainState) from a file written by `save_checkpoint`, all of it checked."""
    tensors, meta = read_tensors(path, kind=CHECKPOINT_FORMAT, version=CHECKPOINT_FORMAT_VERSION, what="checkpoint")
    model = model_from_tensors(tensors, meta, path)
    try:
        epoch = int(meta["epoch"])
        records = [EpochRecord(**r) for r in json.loads(meta["records"])]
        rng_state = json.loads(meta["rng_state"])
        velocity = [tensors[f"velocity_{i}"] for i in range(int(meta["velocity"]))] or None
        best_loss = float(meta["best_loss"])
        bad_epochs = int(meta["bad_epochs"])
        best_epoch = json.loads(meta["best_epoch"])
    except (KeyError, TypeError, ValueError, RecursionError) as e:
        raise ModelFormatError(f"{path}: corrupt checkpoint metadata: {e!r}") from None
    try:
        np.random.default_rng().bit_generator.state = rng_state
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFormatError(f"{path}: corrupt checkpoint generator state: {e!r}") from None
    if epoch < 1 or len(records) != epoch or math.isnan(best_loss) \
            or (velocity is not None and [v.shape for v in velocity] != [model.W.shape, model.b.shape]):
        raise ModelFormatError(f"{path}: inconsistent checkpoint (epoch {epoch}, {len(records)} history rows)")
    state = TrainState(epoch, records, rng_state, velocity, tensors.get("holdout"), best_loss,
                       tensors.get("best_weight"), tensors.get("best_bias"), bad_epochs, best_epoch)
    return model, state
