"""The `softmaxreg` command line. main(argv) -> exit code: 0 ok, 2 bad input, 130 interrupted.

Every user mistake ends in one line on stderr ("softmaxreg: error: ...") and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from pathlib import Path

from . import __version__
from .errors import OutputError, SoftmaxRegError

RUN_FILES = ("config.json", "metrics.csv", "model.safetensors", "curves.png", "misclassified.png")
GALLERY_SIZE = 32


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the usage block by default)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, minimum, inclusive: bool):
    """An argparse type: a finite int/float above (or at) `minimum`."""
    bound = f"{'>=' if inclusive else '>'} {minimum}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} {bound}, got {text!r}")
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} {bound}, got {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="softmaxreg", description="Softmax regression from scratch, with Fashion-MNIST built in.")
    parser.add_argument("--version", action="version", version=f"softmaxreg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train the lesson's model and write a run folder",
        description="Train softmax regression by minibatch SGD (defaults: the lesson's reference run) and write "
                    f"a run folder holding {', '.join(RUN_FILES)}.")
    train.add_argument("--epochs", type=_number(int, 1, True), default=10, help="passes over the training set (default 10)")
    train.add_argument("--batch-size", type=_number(int, 1, True), default=256, help="minibatch size (default 256)")
    train.add_argument("--lr", type=_number(float, 0, False), default=0.1, help="SGD learning rate (default 0.1)")
    train.add_argument("--sigma", type=_number(float, 0, True), default=0.01,
                       help="standard deviation of the initial weights (default 0.01)")
    train.add_argument("--seed", type=_number(int, 0, True), default=0,
                       help="seed of the weight initialisation and the shuffles (default 0)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="float type (default float32)")
    train.add_argument("--data-dir", metavar="DIR", default=None,
                       help="folder with the four MNIST-format IDX files (default: $SOFTMAXREG_DATA_DIR, "
                            "else the bundled Fashion-MNIST)")
    train.add_argument("--out", metavar="DIR", default=None, help="run folder (default runs/<timestamp>)")
    train.add_argument("--overwrite", action="store_true", help="allow replacing a run already in --out")
    train.add_argument("--no-plots", action="store_true", help="skip curves.png and misclassified.png")
    train.add_argument("--quiet", action="store_true", help="print nothing but errors (no progress bar)")
    train.set_defaults(func=_train)
    return parser


def _run_folder(out: str | None, overwrite: bool) -> Path:
    if out is None:
        base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        folder, i = base, 1
        while folder.exists():
            folder, i = base.with_name(f"{base.name}-{i}"), i + 1
    else:
        folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--out {folder}: exists and is not a folder")
    existing = [name for name in RUN_FILES if (folder / name).exists()]
    if existing and not overwrite:
        raise OutputError(f"--out {folder}: already holds a run ({existing[0]}); "
                          "choose another folder or pass --overwrite")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"--out {folder}: cannot create folder: {e.strerror or e}") from None
    return folder


def _train(args) -> int:
    import numpy as np

    from .datasets import load_fashion_mnist
    from .model import SoftmaxRegression
    from .persist import atomic_write_bytes, save_model
    from .train import ConsoleLog, MetricsCSV, fit

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    folder = _run_folder(args.out, args.overwrite)
    data = load_fashion_mnist(args.data_dir)
    n_train, *image_shape = data.train_images.shape
    say(f"data: {data.source}, {n_train} train / {len(data.test_images)} validation images "
        f"{'x'.join(map(str, image_shape))}, {len(data.class_names)} classes")

    init_seed, shuffle_seed = np.random.SeedSequence(args.seed).spawn(2)
    model = SoftmaxRegression(int(np.prod(image_shape)), len(data.class_names), args.sigma,
                              seed=np.random.default_rng(init_seed), dtype=args.dtype, input_scale=1 / 255,
                              input_shape=image_shape, class_names=data.class_names)
    digest = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(data.sha256.items())).encode()).hexdigest()
    config = {
        "softmaxreg_version": __version__,
        "command": "train",
        "settings": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "sigma": args.sigma,
                     "seed": args.seed, "dtype": args.dtype, "optimizer": "sgd",
                     "validation": "test split", "data_dir": args.data_dir},
        "dataset": {"source": data.source, "sha256": digest, "files": data.sha256,
                    "train_size": n_train, "validation_size": len(data.test_images),
                    "image_shape": image_shape, "class_names": list(data.class_names)},
        "preprocessing": {"input_scale": model.input_scale, "description": "pixels / 255, flattened row-major"},
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_bytes(folder / "config.json", (json.dumps(config, indent=2) + "\n").encode())

    callbacks = [MetricsCSV(folder / "metrics.csv")] + ([] if args.quiet else [ConsoleLog(args.epochs)])
    history = fit(model, data.train_images, data.train_labels, epochs=args.epochs, batch_size=args.batch_size,
                  lr=args.lr, seed=np.random.default_rng(shuffle_seed),
                  validation_data=(data.test_images, data.test_labels),
                  callbacks=callbacks)
    save_model(model, folder / "model.safetensors")
    written = ["config.json", "metrics.csv", "model.safetensors"]
    if not args.no_plots:
        _write_plots(folder, model, data, history)
        written += ["curves.png", "misclassified.png"]
    last = history[-1]
    say(f"final: train_loss {last.train_loss:.4f}  val_loss {last.val_loss:.4f}  val_acc {last.val_acc:.4f}")
    say(f"run folder: {folder}  ({', '.join(written)})")
    return 0


def _write_plots(folder: Path, model, data, history) -> None:
    import numpy as np

    from .plots import plot_curves, plot_image_grid

    plot_curves(history, folder / "curves.png")
    predicted = model.predict(data.test_images)
    wrong = np.flatnonzero(predicted != data.test_labels)[:GALLERY_SIZE]
    names = data.class_names
    titles = [f"{names[data.test_labels[i]]}\n{names[predicted[i]]}" for i in wrong]
    plot_image_grid(data.test_images[wrong], titles, folder / "misclassified.png",
                    title=f"Misclassified validation images: true label over predicted ({len(wrong)} shown)")


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:             # --help, --version, or a usage error (already printed)
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args)
    except SoftmaxRegError as e:
        print(f"softmaxreg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("softmaxreg: interrupted", file=sys.stderr)
        return 130
