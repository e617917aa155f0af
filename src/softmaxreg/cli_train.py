"""`softmaxreg train`: a run folder claimed (created, or resumed), training with checkpoints and
signal handling, then the model and plots. Called by `cli.main`.

The run folder is held by one process at a time (fileio.claim_folder). Its files change in two
steps, each all or nothing: after every epoch the checkpoint and metrics.csv (and on a new run's
first epoch config.json, when the files of a run it replaces go); at the end the model and the
plots. So a failed write, a divergence or an interruption leaves either the previous run or a
resumable one, never a mixture, and a run that finished no epoch leaves no folder behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
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
from .engines import is_dask
from .errors import ClusterError, ConvergenceWarning, InvalidArgumentError, OutputError, SoftmaxRegError, TrainingDivergedError
from .fileio import all_or_nothing, atomic_write_bytes, claim_folder
from .engines.array_api import resolve, to_device
from .engines.gemm import block_rows
from .solvers import OPTIMIZERS, solver_options
from .options import RECIPE_BEST, TrainConfig

RECIPES = {
    "lesson": {},
    # chosen by benchmarks/tune_recipe.py on a validation split carved from the training set
    "best": RECIPE_BEST,
}
RUN_FILES = ("config.json", "metrics.csv", "model.safetensors", "curves.png", "misclassified.png")
CHECKPOINT = "checkpoint.safetensors"
FINAL_FILES = ("model.safetensors", "curves.png", "misclassified.png")
"""The files written when training ends; a new run removes those of the run it replaces."""
GALLERY_SIZE = 32


def _claim_new_folder(stack: contextlib.ExitStack, out: str | None, overwrite: bool) -> Path:
    """The run folder of a new run, claimed for this process until `stack` closes: --out, or a new
    runs/<timestamp>[-i] (created atomically, so runs started in the same second get one each)."""
    if out is None:
        base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        for i in itertools.count():
            try:
                return stack.enter_context(claim_folder(base.with_name(f"{base.name}-{i}") if i else base, fresh=True))
            except FileExistsError:
                continue
    folder = stack.enter_context(claim_folder(Path(out)))
    existing = [name for name in (*RUN_FILES, CHECKPOINT) if (folder / name).exists()]
    if existing and not overwrite:
        raise OutputError(f"--out {folder}: already holds a run ({existing[0]}); "
                          "choose another folder or pass --overwrite")
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


def _resumed_run(args, folder: Path):
    """(config, TrainConfig, data, model, TrainState) of the run in the claimed folder --resume DIR."""
    from .checkpoint import load_checkpoint
    from .datasets.sources import open_data

    given = [f"--{name.replace('_', '-')}" for name in ["recipe", "seed", "sigma", "dtype", "backend", "device",
                                                          "data_dir", "label_column", "out",
                                                          *(f.name for f in fields(TrainConfig))]
             if getattr(args, name, None) is not None]
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
    _remove_stale_temporaries(folder)
    data = open_data(settings.get("data_dir"), label_column=settings.get("label_column"))
    if _dataset_digest(data) != config.get("dataset", {}).get("sha256"):
        raise SoftmaxRegError(f"--resume {folder}: the data files differ from the ones this run started with")
    return config, train_config, data, model, state


LATER_SETTINGS = {"shuffle": "full"}
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
                                                                                 "device"}
"""Settings whose errors ("label_smoothing: expected ...") name the option typed (--label-smoothing)."""


@contextlib.contextmanager
def _errors_named_by_flag():
    try:
        yield
    except InvalidArgumentError as e:
        name, colon, rest = str(e).partition(": ")
        if colon and name in SETTING_FLAGS:
            raise InvalidArgumentError(f"--{name.replace('_', '-')}: {rest}") from None
        raise


def _new_run(args):
    """(config, TrainConfig, data, model, None) for a fresh run, every setting and the data checked."""
    from .datasets.sources import open_data
    from .model import SoftmaxRegression

    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    recipe = args.recipe or "lesson"
    _refuse_options_of_the_other_solver(args, options.get("solver", "sgd"))
    seed = 0 if args.seed is None else args.seed
    sigma = 0.01 if args.sigma is None else args.sigma
    dtype = args.dtype or "float32"
    backend, device = args.backend or "numpy", args.device or "cpu"
    with _errors_named_by_flag():
        resolve(backend, device)                  # an absent library or device: one line, before any file
        train_config = TrainConfig(**{**RECIPES[recipe], **options})
        data = open_data(args.data_dir, label_column=args.label_column)
        n_train, *image_shape = data.train_images.shape
        pixels = data.train_images.dtype == np.uint8          # 0..255 values: the lesson's pixels
        model = SoftmaxRegression(int(np.prod(image_shape)), len(data.class_names), sigma,
                                  seed=seed, dtype=dtype, input_scale=1 / 255 if pixels else 1.0,
                                  input_shape=image_shape, class_names=data.class_names,
                                  input_range=(0, 255) if pixels else None)
    validation = data.test_images is not None
    config = {
        "softmaxreg_version": __version__,
        "command": "train",
        "settings": {**asdict(train_config), "recipe": recipe, "sigma": sigma, "seed": seed,
                     "dtype": dtype, "backend": backend, "device": device,
                     "validation": "test split" if validation else "none (the data have no test split)",
                     "data_dir": None if data.source == "bundled" else str(Path(data.source).resolve()),
                     "label_column": args.label_column, "dask_block_rows": _block_rows(args.scheduler)},
        "dataset": {"source": data.source, "sha256": _dataset_digest(data), "files": data.sha256,
                    "train_size": n_train, "validation_size": len(data.test_images) if validation else 0,
                    "image_shape": image_shape, "class_names": list(data.class_names)},
        "preprocessing": {"input_scale": model.input_scale,
                          "description": "pixels / 255, flattened row-major" if pixels else "features as given"
                                         + (", flattened row-major" if len(image_shape) > 1 else "")},
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "platform": platform.platform(), "gemm_rows": block_rows()},   # it changes the bits
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return config, train_config, data, model, None


def train_command(args) -> int:
    with contextlib.ExitStack() as claimed:
        if args.resume:
            folder = Path(args.resume)
            if not folder.is_dir():
                raise SoftmaxRegError(f"--resume {folder}: no such folder")
            run = _resumed_run(args, claimed.enter_context(claim_folder(folder, "--resume")))
        else:
            run = _new_run(args)
        if args.scheduler and args.resume and run[0]["settings"].get("dask_block_rows") is None \
                and not is_dask(run[2].train_images):     # its sums would change order, and so its bits
            raise SoftmaxRegError("--scheduler: this run was started in process; resume it without --scheduler")
        if args.scheduler:                                 # connected before a new folder is claimed
            _connect(claimed, args.scheduler, run[1], run[0]["settings"].get("backend", "numpy"))
        if not args.resume:
            folder = _claim_new_folder(claimed, args.out, args.overwrite)
        return _train(args, folder, *run)


def _connect(stack: contextlib.ExitStack, address: str, train_config: TrainConfig, backend: str) -> None:
    """--scheduler: a Dask Client for the rest of the command (dask_cluster.connect), or one line why not."""
    if not train_config.optimizer().full_batch:
        raise SoftmaxRegError(f"--scheduler: runs full-batch solvers (--solver lbfgs or newton-cg), not --solver {train_config.solver}")
    if backend != "numpy":
        raise SoftmaxRegError(f"--scheduler: the workers compute with NumPy, not --backend {backend}")
    stack.enter_context(_dask_cluster("--scheduler").connect(address))


def _dask_cluster(flag: str):
    """The dask_cluster module, or one line naming `flag` and what to install."""
    try:
        from .engines import dask_cluster
    except ImportError as e:
        raise SoftmaxRegError(f"{flag}: needs Dask ({e.name} is not installed): pip install 'softmaxreg[dask]'") from None
    return dask_cluster


def _train(args, folder: Path, config, train_config, data, model, state) -> int:
    from .callbacks import ConsoleLog
    from .checkpoint import Checkpoint
    from .model_file import save_model
    from .train import fit

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    n_train, *image_shape = data.train_images.shape
    validation = None if data.test_images is None else (data.test_images, data.test_labels)
    say(f"data: {data.source}, {n_train} train / {len(validation[0]) if validation else 'no'} validation "
        f"{'images' if len(image_shape) == 2 else 'rows of'} {'x'.join(map(str, image_shape))}, "
        f"{len(data.class_names)} classes")
    full_batch = train_config.optimizer().full_batch
    unit, last = ("iteration", train_config.solver_max_iter) if full_batch else ("epoch", train_config.epochs)
    if state is not None:
        say(f"resuming {folder} after {unit} {state.epoch}/{last}")
    replaced_run = [folder / name for name in FINAL_FILES]         # a previous run's, if --overwrite

    def write_config():
        atomic_write_bytes(folder / "config.json", (json.dumps(config, indent=2) + "\n").encode())

    class RunCheckpoint(Checkpoint):
        """After every epoch the checkpoint and metrics.csv, and after a new run's first, config.json:
        replaced together or not at all (metrics.csv never runs ahead of the checkpoint)."""

        def on_epoch_end(self, record, history):
            first = not self.saved                        # the first epoch of a new run: now it is a run
            with all_or_nothing(remove=replaced_run if first else ()):
                super().on_epoch_end(record, history)
                if first:
                    write_config()
                atomic_write_bytes(folder / "metrics.csv", history.to_csv().encode())
            self.saved = record.epoch

    checkpoint = RunCheckpoint(folder / CHECKPOINT)
    checkpoint.saved = state.epoch if state else 0
    console = None if args.quiet else ConsoleLog(every=args.log_every or 1)
    callbacks = [checkpoint] + ([console] if console else [])
    rows = _training_rows(config["settings"].get("dask_block_rows"), data)
    backend = config["settings"].get("backend", "numpy")                # settings of older runs: NumPy
    if backend != "numpy":                        # the data on the run's library and device, the model following it
        with _errors_named_by_flag():
            xp, device = resolve(backend, config["settings"].get("device", "cpu"))
        if backend == "jax":                      # float64 models and L-BFGS's float64 vectors (this process is ours)
            import jax
            jax.config.update("jax_enable_x64", True)
        rows = tuple(to_device(a, xp, device) for a in rows)
        validation = validation and tuple(to_device(a, xp, device) for a in validation)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                history = fit(model, *rows, train_config, seed=config["settings"]["seed"],
                              validation_data=validation, callbacks=callbacks, resume=state)
            for warning in caught:
                print(f"softmaxreg: warning: {warning.message}", file=sys.stderr)
            with all_or_nothing(remove=() if checkpoint.saved else [*replaced_run, folder / CHECKPOINT]):
                if not checkpoint.saved:                  # L-BFGS converged at the initial point: no iteration
                    write_config()
                    atomic_write_bytes(folder / "metrics.csv", history.to_csv().encode())
                save_model(model, folder / "model.safetensors")
                if not args.no_plots:
                    _write_plots(folder, model, data, history, unit)
        finally:
            if console is not None:
                console.close()                           # a message after this starts on its own line
            signal.signal(signal.SIGTERM, previous)
    except KeyboardInterrupt as e:
        print(f"softmaxreg: interrupted; {_what_is_kept(folder, unit, checkpoint.saved)}", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except TrainingDivergedError as e:
        kept = f"; the checkpoint of epoch {checkpoint.saved} is intact" if checkpoint.saved else ""
        raise TrainingDivergedError(f"{e}{kept}", epoch=e.epoch, step=e.step, loss=e.loss, history=e.history) from None
    except OutputError as e:
        raise OutputError(f"{e}; {_what_is_kept(folder, unit, checkpoint.saved)}") from None
    except ClusterError as e:                             # --scheduler: the cluster was lost
        raise ClusterError(f"{e}; {_what_is_kept(folder, unit, checkpoint.saved)}") from None
    written = ["config.json", "metrics.csv", *([CHECKPOINT] if checkpoint.saved else []), "model.safetensors"]
    if not args.no_plots:
        written += ["curves.png", *(["misclassified.png"] if _has_gallery(data) else [])]
    if len(history):
        last = history[-1]
        scores = f"  val_loss {last.val_loss:.4f}  val_acc {last.val_acc:.4f}" if validation is not None else ""
        say(f"final: train_loss {last.train_loss:.4f}{scores}")
    say(f"run folder: {folder}  ({', '.join(written)})")
    return 0


def _block_rows(scheduler: str | None) -> int | None:
    """The rows per Dask block of a new run's NumPy data: dask_cluster.CHUNK_ROWS with --scheduler
    (recorded in config.json, so the run resumes with the same blocks), else None (in process)."""
    return _dask_cluster("--scheduler").CHUNK_ROWS if scheduler else None


def _training_rows(block_rows: int | None, data):
    """(X, y) of the training split: as read, or for a run started with --scheduler, Dask arrays of
    `block_rows`-row blocks (dask_cluster.row_chunks: in the graph for in-memory data, read from the
    file by the workers for a memory map). The blocks fix the order of the sums, so a resumed run
    gives the same bits on any cluster, or without --scheduler on Dask's threads here."""
    if block_rows is None:
        return data.train_images, data.train_labels
    row_chunks = _dask_cluster("--resume").row_chunks
    return tuple(a if is_dask(a) else row_chunks(a, block_rows) for a in (data.train_images, data.train_labels))


def _what_is_kept(folder: Path, unit: str, saved: int) -> str:
    if not saved:
        return f"no {unit} had finished; the run folder is as it was"
    return f"the checkpoint of {unit} {saved} is in {folder}; resume with: softmaxreg train --resume {folder}"


def _has_gallery(data) -> bool:
    """misclassified.png is drawn for a test split of images (n, height, width)."""
    return data.test_images is not None and data.test_images.ndim == 3


def _write_plots(folder: Path, model, data, history, unit: str) -> None:
    import numpy as np

    from .runplots import plot_curves, plot_image_grid

    plot_curves(history, folder / "curves.png", unit=unit)
    if not _has_gallery(data):
        return
    predicted = model.predict(data.test_images)
    wrong = np.flatnonzero(predicted != data.test_labels)[:GALLERY_SIZE]
    names = data.class_names
    titles = [f"{names[data.test_labels[i]]}\n{names[predicted[i]]}" for i in wrong]
    plot_image_grid(data.test_images[wrong], titles, folder / "misclassified.png",
                    title=f"Misclassified validation images: true label over predicted ({len(wrong)} shown)")
