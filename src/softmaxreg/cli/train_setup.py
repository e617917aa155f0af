"""What `softmaxreg train` starts from: a new run, every setting and the data checked (the contents
of its config.json), or the run in a --resume folder, read back and checked against its data. Both
give (config, TrainConfig, data, model, TrainState or None) to cli/train.py."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

from .._version import __version__
from ..engines.array_api import resolve
from ..errors import InvalidArgumentError, SoftmaxRegError
from ..engines.gemm import block_rows
from ..solvers import OPTIMIZERS, solver_options
from ..options import RECIPE_BEST, TrainConfig
from ..sampled import check_num_sampled
from .run_folder import CHECKPOINT, remove_stale_temporaries

RECIPES = {
    "lesson": {},
    # chosen by benchmarks/tune_recipe.py on a validation split carved from the training set
    "best": RECIPE_BEST,
}


def resumed_run(args, folder: Path):
    """(config, TrainConfig, data, model, TrainState) of the run in the claimed folder --resume DIR."""
    from ..checkpoint import load_checkpoint
    from ..datasets.sources import open_data

    given = [f"--{name.replace('_', '-')}" for name in ["recipe", "seed", "sigma", "dtype", "backend", "device",
                                                          "data_dir", "label_column", "num_classes", "out",
                                                          "val_data", "n_features",
                                                          *(f.name for f in fields(TrainConfig))]
             if getattr(args, name, None) is not None]
    if getattr(args, "zero_based", "auto") != "auto":
        given.append("--zero-based")
    if given:
        raise SoftmaxRegError(f"--resume continues a run with its own settings; drop {', '.join(given)}")
    try:
        config = json.loads((folder / "config.json").read_text())
        settings = config["settings"]
        train_config = TrainConfig(**{f.name: settings[f.name] if f.name in settings or f.name not in LATER_SETTINGS
                                      else LATER_SETTINGS[f.name] for f in fields(TrainConfig)})
    except OSError as e:
        reason = "not found" if isinstance(e, FileNotFoundError) else e.strerror or str(e)
        raise SoftmaxRegError(f"--resume {folder}: no readable run config.json ({reason}): not a run folder?") from None
    except KeyError as e:
        raise SoftmaxRegError(f"--resume {folder}: no readable run config.json (it lacks {e})") from None
    except (TypeError, SoftmaxRegError) as e:
        raise SoftmaxRegError(f"--resume {folder}: no readable run config.json (bad settings: {e})") from None
    except ValueError as e:
        raise SoftmaxRegError(f"--resume {folder}: no readable run config.json (not valid JSON: {e})") from None
    if not (folder / CHECKPOINT).is_file():
        raise SoftmaxRegError(f"--resume {folder}: no {CHECKPOINT} (the run stopped before finishing an epoch?)")
    model, state = load_checkpoint(folder / CHECKPOINT)
    remove_stale_temporaries(folder)
    data = open_data(settings.get("data_dir"), label_column=settings.get("label_column"),
                     num_classes=settings.get("num_classes"), **_data_settings(settings))
    if _dataset_digest(data) != config.get("dataset", {}).get("sha256"):
        raise SoftmaxRegError(f"--resume {folder}: the data files differ from the ones this run started with")
    return config, train_config, data, model, state


def _data_settings(settings: dict) -> dict:
    """open_data's options for the held-out file and svmlight, as a run recorded them (none before they existed)."""
    return {"val_data": settings.get("val_data"), "n_features": settings.get("n_features"),
            "zero_based": settings.get("zero_based", "auto")}


LATER_SETTINGS = {"shuffle": "full", "loss": "full", "num_sampled": None, "sampler": "unigram"}
"""TrainConfig fields added after runs were first written, with the value those runs used: a run folder
without them resumes as it ran (shuffle: the full permutation, whatever "auto" would pick now)."""


def _dataset_digest(data) -> str:
    return hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(data.sha256.items())).encode()).hexdigest()


def _refuse_options_of_the_other_solver(args, solver: str) -> None:
    """An option given on the command line that `solver` does not take (solvers declare theirs:
    solvers.base) is refused with a line naming the solver, never silently dropped. SGD's --tol
    needs --early-stopping or --converge, which use it."""
    takes, table = OPTIMIZERS[solver].options, solver_options()
    ignored = [name for name in table if name not in takes and getattr(args, name, None) is not None]
    if args.recipe is not None and any(name in table and name not in takes for name in RECIPES[args.recipe]):
        ignored.append("recipe")
    if ignored:
        flag = f"--{ignored[0].replace('_', '-')}"
        takers = [f"--solver {name}" for name in OPTIMIZERS if ignored[0] == "recipe" and name == "sgd"
                  or ignored[0] in OPTIMIZERS[name].options]
        raise SoftmaxRegError(f"{flag}: applies to {' or '.join(takers)}, not to --solver {solver}")
    if solver == "sgd" and args.tol is not None and not (args.early_stopping or getattr(args, "converge", None)):
        raise SoftmaxRegError("--tol: with --solver sgd, goes with --early-stopping (the held-out loss's least "
                              "improvement); full-batch solvers stop on max |gradient| <= tol")


SETTING_FLAGS = {f.name for f in fields(TrainConfig) if f.name != "converge"} | {"sigma", "seed", "dtype", "backend",
                                                                                 "device", "num_classes"}
"""Settings whose errors ("label_smoothing: expected ...") name the option typed (--label-smoothing)."""


@contextlib.contextmanager
def errors_named_by_flag():
    try:
        yield
    except InvalidArgumentError as e:
        name, colon, rest = str(e).partition(": ")
        if colon and name in SETTING_FLAGS:
            raise InvalidArgumentError(f"--{name.replace('_', '-')}: {rest}") from None
        raise


def new_run(args):
    """(config, TrainConfig, data, model, None) for a fresh run, every setting and the data checked."""
    from ..datasets.sources import open_data
    from ..model import SoftmaxRegression

    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    recipe = args.recipe or "lesson"
    _refuse_options_of_the_other_solver(args, options.get("solver", "sgd"))
    if args.sampler is not None and args.loss != "sampled":
        raise SoftmaxRegError("--sampler: goes with --loss sampled")
    seed = 0 if args.seed is None else args.seed
    sigma = 0.01 if args.sigma is None else args.sigma
    dtype = args.dtype or "float32"
    backend, device = args.backend or "numpy", args.device or "cpu"
    with errors_named_by_flag():
        resolve(backend, device)                  # an absent library or device: one line, before any file
        train_config = TrainConfig(**{**RECIPES[recipe], **options})
        data = open_data(args.data_dir, label_column=args.label_column, num_classes=args.num_classes,
                         val_data=args.val_data, n_features=args.n_features, zero_based=args.zero_based)
        if args.standardize is None and data.features:     # a table of features: standardized unless told
            train_config = replace(train_config, standardize=True)
        if train_config.loss == "sampled":
            check_num_sampled(train_config.num_sampled, len(data.class_names))
            if backend != "numpy":
                raise InvalidArgumentError(f"loss: 'sampled' trains with NumPy (--backend numpy), not --backend {backend}")
        n_train, *image_shape = data.train_images.shape
        pixels = data.train_images.dtype == np.uint8          # 0..255 values: the lesson's pixels
        model = SoftmaxRegression(int(np.prod(image_shape)), len(data.class_names), sigma,
                                  seed=seed, dtype=dtype, input_scale=1 / 255 if pixels else 1.0,
                                  input_shape=image_shape, class_names=data.class_names,
                                  input_range=(0, 255) if pixels else None, index_base=data.index_base)
    validation = data.test_images is not None
    config = {
        "softmaxreg_version": __version__,
        "command": "train",
        "settings": {**asdict(train_config), "recipe": recipe, "sigma": sigma, "seed": seed,
                     "dtype": dtype, "backend": backend, "device": device,
                     "validation": "test split" if validation else "none (the data have no test split)",
                     "data_dir": None if data.source == "bundled" else str(Path(data.source).resolve()),
                     "label_column": args.label_column, "num_classes": args.num_classes,
                     "val_data": None if args.val_data is None else _absolute(args.val_data),
                     "n_features": args.n_features, "zero_based": args.zero_based, "dask_block_rows": _block_rows(args.scheduler)},
        "dataset": {"source": data.source, "sha256": _dataset_digest(data), "files": data.sha256,
                    "train_size": n_train, "validation_size": data.test_images.shape[0] if validation else 0,
                    "image_shape": image_shape, "class_names": list(data.class_names)},
        "preprocessing": {"input_scale": model.input_scale,
                          "description": ("pixels / 255, flattened row-major" if pixels else "features as given"
                                          + (", flattened row-major" if len(image_shape) > 1 else ""))
                                         + {True: ", standardized by the training split's mean and std",
                                            "scale": ", divided by the training split's std (not centred)",
                                            False: ""}[train_config.standardize]},
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "platform": platform.platform(), "gemm_rows": block_rows()},   # it changes the bits
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return config, train_config, data, model, None


def _absolute(path: str) -> str:
    """A data path as the run records it: absolute, so --resume finds it from any folder (a Parquet glob too)."""
    return str(Path(path).resolve()) if Path(path).exists() else os.path.abspath(path)


def _block_rows(scheduler: str | None) -> int | None:
    """The rows per Dask block of a new run's NumPy data: dask_cluster.CHUNK_ROWS with --scheduler
    (recorded in config.json, so the run resumes with the same blocks), else None (in process)."""
    return import_dask_cluster("--scheduler").CHUNK_ROWS if scheduler else None


def import_dask_cluster(flag: str):
    """The dask_cluster module, or one line naming `flag` and what to install."""
    try:
        from ..engines import dask_cluster
    except ImportError as e:
        raise SoftmaxRegError(f"{flag}: needs Dask ({e.name} is not installed): pip install 'softmaxreg[dask]'") from None
    return dask_cluster
