"""`softmaxreg train`: a run folder created or resumed, training with checkpoints and signal
handling, then the model and plots. Called by `cli.main`."""

from __future__ import annotations

import hashlib
import json
import platform
import signal
import sys
import time
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ._version import __version__
from .errors import ConvergenceWarning, OutputError, SoftmaxRegError, TrainingDivergedError
from .fileio import output_folder
from .options import RECIPE_BEST, TrainConfig

RECIPES = {
    "lesson": {},
    # chosen by benchmarks/tune_recipe.py on a validation split carved from the training set
    "best": RECIPE_BEST,
}
MINIBATCH_OPTIONS = ("epochs", "batch_size", "lr", "momentum", "nesterov", "schedule", "warmup_epochs",
                     "step_epochs", "gamma", "early_stopping", "validation_fraction", "patience")
"""TrainConfig fields that only the minibatch solver uses: refused with a full-batch one, never ignored."""
RUN_FILES = ("config.json", "metrics.csv", "model.safetensors", "curves.png", "misclassified.png")
CHECKPOINT = "checkpoint.safetensors"
GALLERY_SIZE = 32


def _run_folder(out: str | None, overwrite: bool) -> Path:
    if out is None:
        base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        folder, i = base, 1
        while folder.exists():
            folder, i = base.with_name(f"{base.name}-{i}"), i + 1
    else:
        folder = Path(out)
    existing = [name for name in (*RUN_FILES, CHECKPOINT) if folder.is_dir() and (folder / name).exists()]
    if existing and not overwrite:
        raise OutputError(f"--out {folder}: already holds a run ({existing[0]}); "
                          "choose another folder or pass --overwrite")
    folder = output_folder(folder)
    _remove_stale_temporaries(folder)
    return folder


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed run left mid-write (`.NAME.*.tmp` of our own files only);
    the files they were meant to replace are intact."""
    for name in (*RUN_FILES, CHECKPOINT):
        for stale in folder.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so training unwinds like Ctrl-C; exit code 143."""
    exit_code = 143


def _raise_terminated(signum, frame):
    raise _Terminated()


def _resumed_run(args):
    """(folder, config, TrainConfig, data, model, TrainState) of the run in --resume DIR."""
    from .checkpoint import load_checkpoint
    from .datasets import load_fashion_mnist

    given = [f"--{name.replace('_', '-')}" for name in ["recipe", "seed", "sigma", "dtype", "data_dir", "out",
                                                          *(f.name for f in fields(TrainConfig))]
             if getattr(args, name, None) is not None]
    if given:
        raise SoftmaxRegError(f"--resume continues a run with its own settings; drop {', '.join(given)}")
    folder = Path(args.resume)
    try:
        config = json.loads((folder / "config.json").read_text())
        settings = config["settings"]
        train_config = TrainConfig(**{f.name: settings[f.name] for f in fields(TrainConfig)})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SoftmaxRegError(f"--resume {folder}: no readable run config.json ({e.__class__.__name__})") from None
    if not (folder / CHECKPOINT).is_file():
        raise SoftmaxRegError(f"--resume {folder}: no {CHECKPOINT} (the run stopped before finishing an epoch?)")
    model, state = load_checkpoint(folder / CHECKPOINT)
    _remove_stale_temporaries(folder)
    data = load_fashion_mnist(settings.get("data_dir"))
    if _dataset_digest(data) != config.get("dataset", {}).get("sha256"):
        raise SoftmaxRegError(f"--resume {folder}: the data files differ from the ones this run started with")
    return folder, config, train_config, data, model, state


def _dataset_digest(data) -> str:
    return hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(data.sha256.items())).encode()).hexdigest()


def _new_run(args):
    """(folder, config, TrainConfig, data, model, None) for a fresh run."""
    from .datasets import load_fashion_mnist
    from .model import SoftmaxRegression

    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    recipe = args.recipe or "lesson"
    if options.get("solver", "sgd") != "sgd":
        minibatch_only = [f"--{name.replace('_', '-')}" for name in (*MINIBATCH_OPTIONS, "recipe")
                          if getattr(args, name, None) is not None]
        if minibatch_only:
            raise SoftmaxRegError(f"{minibatch_only[0]}: applies to --solver sgd only, not to --solver {options['solver']}")
    train_config = TrainConfig(**{**RECIPES[recipe], **options})
    seed = 0 if args.seed is None else args.seed
    sigma = 0.01 if args.sigma is None else args.sigma
    dtype = args.dtype or "float32"
    data = load_fashion_mnist(args.data_dir)
    folder = _run_folder(args.out, args.overwrite)
    n_train, *image_shape = data.train_images.shape
    model = SoftmaxRegression(int(np.prod(image_shape)), len(data.class_names), sigma,
                              seed=seed, dtype=dtype, input_scale=1 / 255,
                              input_shape=image_shape, class_names=data.class_names)
    config = {
        "softmaxreg_version": __version__,
        "command": "train",
        "settings": {**asdict(train_config), "recipe": recipe, "sigma": sigma, "seed": seed,
                     "dtype": dtype, "validation": "test split",
                     "data_dir": None if data.source == "bundled" else str(Path(data.source).resolve())},
        "dataset": {"source": data.source, "sha256": _dataset_digest(data), "files": data.sha256,
                    "train_size": n_train, "validation_size": len(data.test_images),
                    "image_shape": image_shape, "class_names": list(data.class_names)},
        "preprocessing": {"input_scale": model.input_scale, "description": "pixels / 255, flattened row-major"},
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return folder, config, train_config, data, model, None


def train_command(args) -> int:
    from .callbacks import ConsoleLog, MetricsCSV
    from .checkpoint import Checkpoint
    from .fileio import atomic_write_bytes
    from .model_file import save_model
    from .train import fit

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    folder, config, train_config, data, model, state = _resumed_run(args) if args.resume else _new_run(args)
    n_train, *image_shape = data.train_images.shape
    say(f"data: {data.source}, {n_train} train / {len(data.test_images)} validation images "
        f"{'x'.join(map(str, image_shape))}, {len(data.class_names)} classes")
    full_batch = train_config.optimizer().full_batch
    unit, last = ("iteration", train_config.solver_max_iter) if full_batch else ("epoch", train_config.epochs)
    if state is not None:
        say(f"resuming {folder} after {unit} {state.epoch}/{last}")

    def write_config():
        atomic_write_bytes(folder / "config.json", (json.dumps(config, indent=2) + "\n").encode())

    class RunCheckpoint(Checkpoint):
        """The checkpoint after every epoch; the first one of a new run writes config.json before it."""

        def on_epoch_end(self, record, history):
            if not self.saved:                            # the first epoch of a new run: now it is a run
                write_config()
            super().on_epoch_end(record, history)
            self.saved = record.epoch

    checkpoint = RunCheckpoint(folder / CHECKPOINT)
    checkpoint.saved = state.epoch if state else 0
    callbacks = [checkpoint, MetricsCSV(folder / "metrics.csv")]      # metrics.csv never runs ahead
    callbacks += [] if args.quiet else [ConsoleLog()]
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            history = fit(model, data.train_images, data.train_labels, train_config,
                          seed=config["settings"]["seed"],
                          validation_data=(data.test_images, data.test_labels), callbacks=callbacks, resume=state)
        for warning in caught:
            print(f"softmaxreg: warning: {warning.message}", file=sys.stderr)
        if not checkpoint.saved:                          # L-BFGS converged at the initial point
            write_config()
        save_model(model, folder / "model.safetensors")
    except KeyboardInterrupt as e:
        where = (f"the checkpoint of {unit} {checkpoint.saved} is in {folder}; resume with: "
                 f"softmaxreg train --resume {folder}") if checkpoint.saved else f"no {unit} had finished, nothing to resume"
        print(f"softmaxreg: interrupted; {where}", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except TrainingDivergedError as e:
        kept = f"; the checkpoint of epoch {checkpoint.saved} is intact" if checkpoint.saved else ""
        raise TrainingDivergedError(f"{e}{kept}", epoch=e.epoch, step=e.step, loss=e.loss, history=e.history) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    written = ["config.json", "metrics.csv", CHECKPOINT, "model.safetensors"]
    if not args.no_plots:
        _write_plots(folder, model, data, history)
        written += ["curves.png", "misclassified.png"]
    if len(history):
        last = history[-1]
        say(f"final: train_loss {last.train_loss:.4f}  val_loss {last.val_loss:.4f}  val_acc {last.val_acc:.4f}")
    say(f"run folder: {folder}  ({', '.join(written)})")
    return 0


def _write_plots(folder: Path, model, data, history) -> None:
    import numpy as np

    from .runplots import plot_curves, plot_image_grid

    plot_curves(history, folder / "curves.png")
    predicted = model.predict(data.test_images)
    wrong = np.flatnonzero(predicted != data.test_labels)[:GALLERY_SIZE]
    names = data.class_names
    titles = [f"{names[data.test_labels[i]]}\n{names[predicted[i]]}" for i in wrong]
    plot_image_grid(data.test_images[wrong], titles, folder / "misclassified.png",
                    title=f"Misclassified validation images: true label over predicted ({len(wrong)} shown)")
