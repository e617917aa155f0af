"""`softmaxreg train`: a run folder claimed (created, or resumed), training with checkpoints and
signal handling, then the model and plots. Called by `cli.main`; the run to train comes from
train_setup.py, the run folder's file names and its claim from run_folder.py.

The run folder is held by one process at a time (fileio.claim_folder). Its files change in two
steps, each all or nothing: after every epoch the checkpoint and metrics.csv (and on a new run's
first epoch config.json, when the files of a run it replaces go); at the end the model and the
plots. So a failed write, a divergence or an interruption leaves either the previous run or a
resumable one, never a mixture, and a run that finished no epoch leaves no folder behind.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import warnings
from pathlib import Path

from ..engines.array_api import resolve, to_device
from ..engines import engine_for
from ..errors import ClusterError, ConvergenceWarning, OutputError, SoftmaxRegError, TrainingDivergedError
from ..fileio import all_or_nothing, atomic_write_bytes, claim_folder
from ..options import TrainConfig
from .run_folder import CHECKPOINT, FINAL_FILES, claim_new_folder, what_is_kept
from .train_setup import errors_named_by_flag, import_dask_cluster, new_run, resumed_run

GALLERY_SIZE = 32


def train_command(args) -> int:
    previous = signal.signal(signal.SIGTERM, _raise_terminated)     # a --scheduler local:N cluster closes too
    try:
        return _train_command(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train_command(args) -> int:
    with contextlib.ExitStack() as claimed:
        if args.resume:
            folder = Path(args.resume)
            if not folder.is_dir():
                raise SoftmaxRegError(f"--resume {folder}: no such folder")
            run = resumed_run(args, claimed.enter_context(claim_folder(folder, "--resume")))
        else:
            run = new_run(args)
        if args.scheduler and args.resume and run[0]["settings"].get("dask_block_rows") is None \
                and engine_for(run[2].train_images).name != "dask":     # its sums would change order, and so its bits
            raise SoftmaxRegError("--scheduler: this run was started in process; resume it without --scheduler")
        if args.dashboard and not (args.scheduler or "").startswith("local:"):
            raise SoftmaxRegError("--dashboard: goes with --scheduler local:N (a cluster started elsewhere "
                                  "serves its own dashboard)")
        if args.scheduler:                                 # connected before a new folder is claimed
            _connect(claimed, args, run[1], run[0]["settings"].get("backend", "numpy"))
        if not args.resume:
            folder = claim_new_folder(claimed, args.out, args.overwrite)
        return _train(args, folder, *run)


def _connect(stack: contextlib.ExitStack, args, train_config: TrainConfig, backend: str) -> None:
    """--scheduler: a Dask Client for the rest of the command (dask_cluster.connect: --dashboard, and
    nothing from distributed printed with --quiet), or one line why not."""
    if not train_config.optimizer().full_batch:
        raise SoftmaxRegError(f"--scheduler: runs full-batch solvers (--solver lbfgs or newton-cg), not --solver {train_config.solver}")
    if backend != "numpy":
        raise SoftmaxRegError(f"--scheduler: the workers compute with NumPy, not --backend {backend}")
    client = stack.enter_context(import_dask_cluster("--scheduler").connect(args.scheduler, dashboard=args.dashboard,
                                                                           quiet=args.quiet))
    if args.dashboard and not args.quiet:
        print(f"dashboard: {client.dashboard_link}", flush=True)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so training unwinds like Ctrl-C; exit code 143."""
    exit_code = 143


def _raise_terminated(signum, frame):
    raise _Terminated()


def _train(args, folder: Path, config, train_config, data, model, state) -> int:
    from ..callbacks import ConsoleLog
    from ..checkpoint import Checkpoint
    from ..model_file import save_model
    from ..train import fit

    from ..text import printable

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*map(printable, a), flush=True))   # paths stay text
    n_train, *image_shape = data.train_images.shape
    validation = None if data.test_images is None else (data.test_images, data.test_labels)
    say(f"data: {data.source}, {n_train} train / {validation[0].shape[0] if validation else 'no'} validation "
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
        with errors_named_by_flag():
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
        print(f"softmaxreg: interrupted; {what_is_kept(folder, unit, checkpoint.saved)}", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except TrainingDivergedError as e:
        kept = f"; the checkpoint of epoch {checkpoint.saved} is intact" if checkpoint.saved else ""
        raise TrainingDivergedError(f"{e}{kept}", epoch=e.epoch, step=e.step, loss=e.loss, history=e.history) from None
    except OutputError as e:
        raise OutputError(f"{e}; {what_is_kept(folder, unit, checkpoint.saved)}") from None
    except ClusterError as e:                             # --scheduler: the cluster was lost
        raise ClusterError(f"{e}; {what_is_kept(folder, unit, checkpoint.saved)}") from None
    written = ["config.json", "metrics.csv", *([CHECKPOINT] if checkpoint.saved else []), "model.safetensors"]
    if not args.no_plots:
        written += ["curves.png", *(["misclassified.png"] if _has_gallery(data) else [])]
    if len(history):
        last = history[-1]
        scores = f"  val_loss {last.val_loss:.4f}  val_acc {last.val_acc:.4f}" if validation is not None else ""
        say(f"final: train_loss {last.train_loss:.4f}{scores}")
    say(f"run folder: {folder}  ({', '.join(written)})")
    return 0


def _training_rows(block_rows: int | None, data):
    """(X, y) of the training split: as read, or for a run started with --scheduler, Dask arrays of
    `block_rows`-row blocks (dask_cluster.row_chunks: in the graph for in-memory data, read from the
    file by the workers for a memory map). The blocks fix the order of the sums, so a resumed run
    gives the same bits on any cluster, or without --scheduler on Dask's threads here."""
    if block_rows is None:
        return data.train_images, data.train_labels
    row_chunks = import_dask_cluster("--resume").row_chunks
    return tuple(a if engine_for(a).name == "dask" else row_chunks(a, block_rows) for a in (data.train_images, data.train_labels))


def _has_gallery(data) -> bool:
    """misclassified.png is drawn for a test split of images (n, height, width)."""
    return data.test_images is not None and data.test_images.ndim == 3


def _write_plots(folder: Path, model, data, history, unit: str) -> None:
    import numpy as np

    from ..runplots import plot_curves, plot_image_grid
    from ..text import printable

    plot_curves(history, folder / "curves.png", unit=unit)
    if not _has_gallery(data):
        return
    predicted = model.predict(data.test_images)
    wrong = np.flatnonzero(predicted != data.test_labels)[:GALLERY_SIZE]
    names = data.class_names
    titles = [f"{printable(names[data.test_labels[i]])}\n{printable(names[predicted[i]])}" for i in wrong]
    plot_image_grid(data.test_images[wrong], titles, folder / "misclassified.png",
                    title=f"Misclassified validation images: true label over predicted ({len(wrong)} shown)")
