"""The `softmaxreg` argument parser: every command's options, their checks and help. Each command
is a function of its own module (train, judge, experiment, report); cli.main runs it.

An error is one line ("softmaxreg train: error: ..."); options are never abbreviated (--epoch is not
--epochs), and an unknown one is answered with the closest known one.
"""

from __future__ import annotations

import argparse
import difflib
import math

from .._version import __version__
from ..engines.array_api import BACKENDS
from ..solvers import OPTIMIZERS, SCHEDULES, solver_options
from ..options import SHUFFLES
from ..sampled import LOSSES, SAMPLERS
from .experiment import experiment_command
from .export import export_command
from .judge import evaluate_command, predict_command
from .report import report_command
from .run_folder import RUN_FILES
from .train import train_command
from .train_setup import RECIPES

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the usage block by default), no abbreviated
    options, and a suggestion for an unknown option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        args, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = self.commands.get(getattr(args, "command", None), self)
            command.error(f"unrecognized arguments: {' '.join(unknown)}{_suggestion(command, unknown)}")
        return args


def _suggestion(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """"; did you mean --lr?" for the first unknown option: the closest spelling among the parser's
    options, else the option whose help says the unknown one's words ("--learning-rate": "learning rate")."""
    given = next((u.split("=")[0] for u in unknown if u.startswith("--")), None)
    if given is None:
        return ""
    options = {name: action.help or "" for action in parser._actions for name in action.option_strings
               if name.startswith("--")}
    close = difflib.get_close_matches(given, options, n=1, cutoff=0.75)
    words = given.strip("-").replace("-", " ").lower()
    by_help = [name for name, text in options.items() if words in text.lower()]
    match = close or by_help[:1]
    return f"; did you mean {match[0]}?" if match else ""


def _vocab_list(text: str) -> list:
    """--vocab: comma-separated vocabulary sizes >= 2, or `all` (every word of the training split)."""
    try:
        values = [part if part == "all" else int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v != "all" and v < 2 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 2 or all, got {text!r}")
    return values


def _number(kind, minimum, inclusive: bool, maximum: float = math.inf):
    """An argparse type: a finite int/float above (or at) `minimum`, at most `maximum`."""
    bound = "" if minimum == -math.inf else f" {'>=' if inclusive else '>'} {minimum}"
    bound += f" and <= {maximum}" if maximum != math.inf else ""
    expected = f"expected {'an integer' if kind is int else 'a finite number'}{bound}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive) or value > maximum:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value
    return parse


def _only_scale(text: str) -> str:
    """--standardize's optional value: "scale" (no centring) is the one there is."""
    if text != "scale":
        raise argparse.ArgumentTypeError(f"expected nothing or 'scale', got {text!r}")
    return text


def _per_solver(option: str) -> str:
    """What `option` means for each solver that takes it, from the solvers' declarations."""
    return "; ".join(f"{solver}: {meaning}" for solver, meaning in solver_options()[option].items())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="softmaxreg", description="Softmax regression from scratch, with Fashion-MNIST built in.")
    parser.add_argument("--version", action="version", version=f"softmaxreg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train the lesson's model and write a run folder",
        description="Train softmax regression by minibatch SGD (defaults: the lesson's reference run) and write "
                    f"a run folder holding {', '.join(RUN_FILES)}.")
    train.add_argument("--resume", metavar="DIR", default=None,
                       help="continue the interrupted run in DIR from its last checkpoint, with its settings")
    train.add_argument("--recipe", choices=tuple(RECIPES), default=None,
                       help="starting settings: lesson (the reference run, default) or best (see README); "
                            "options given explicitly override them")
    train.add_argument("--solver", choices=tuple(OPTIMIZERS), default=None,
                       help="sgd: minibatch SGD epochs (default); lbfgs: full-batch L-BFGS, newton-cg: full-batch "
                            "Newton-CG, both to the exact optimum of the L2-penalised loss (--max-iter, --tol)")
    train.add_argument("--max-iter", type=_number(int, 1, True), help=_per_solver("max_iter"))
    train.add_argument("--tol", type=_number(float, 0, True), help=_per_solver("tol") + " (default 1e-4)")
    train.add_argument("--epochs", type=_number(int, 1, True), help="passes over the training set (default 10)")
    train.add_argument("--batch-size", type=_number(int, 1, True), help="minibatch size (default 256)")
    train.add_argument("--lr", type=_number(float, 0, False), help="SGD learning rate (default 0.1)")
    train.add_argument("--momentum", type=_number(float, 0, True), help="SGD momentum in [0, 1] (default 0)")
    train.add_argument("--nesterov", action="store_const", const=True, help="Nesterov momentum")
    train.add_argument("--weight-decay", type=_number(float, 0, True),
                       help="L2 penalty (weight_decay / 2) |W|^2, bias not penalised (default 0)")
    train.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default constant)")
    train.add_argument("--warmup-epochs", type=_number(float, 0, True), help="linear warm-up length (default 0)")
    train.add_argument("--step-epochs", type=_number(int, 1, True),
                       help="schedule step: multiply the rate by --gamma every N epochs (default 10)")
    train.add_argument("--gamma", type=_number(float, 0, False), help="schedule step: factor (default 0.1)")
    train.add_argument("--label-smoothing", type=_number(float, 0, True), help="label smoothing in [0, 1) (default 0)")
    train.add_argument("--class-weight", choices=("balanced",), help="weight classes inversely to their frequency")
    train.add_argument("--standardize", nargs="?", const=True, type=_only_scale, metavar="scale",
                       help="standardize features with the training split's mean and std (kept in the model); "
                            "the default for dense feature tables from --data (CSV, Parquet, .npz, .npy, Zarr rows "
                            "of features), not for images (IDX, Fashion-MNIST, uint8 pixels) nor sparse data; "
                            "`--standardize scale` divides by the std without centring (the one sparse data take)")
    train.add_argument("--no-standardize", dest="standardize", action="store_const", const=False,
                       help="train on the features as they are (no standardization, also for feature tables)")
    train.add_argument("--early-stopping", action="store_const", const=True,
                       help="hold out --validation-fraction of the training set; stop after --patience epochs "
                            "without improvement, keep the best weights")
    train.add_argument("--validation-fraction", type=_number(float, 0, False), help="held-out share (default 0.1)")
    train.add_argument("--patience", type=_number(int, 1, True), help="early stopping patience in epochs (default 5)")
    train.add_argument("--loss", choices=LOSSES, default=None,
                       help="full: the softmax over every class (default); sampled: sampled softmax, logits for the "
                            "batch's classes and --num-sampled drawn ones (SGD without momentum; validation uses "
                            "the full softmax)")
    train.add_argument("--num-sampled", type=_number(int, 1, True), metavar="S", default=None,
                       help="--loss sampled: classes drawn per step, fewer than the classes")
    train.add_argument("--sampler", choices=SAMPLERS, default=None,
                       help="--loss sampled: the proposal the classes are drawn from: uniform, log-uniform (Zipf over "
                            "the class index) or unigram (training label counts^0.75, default)")
    train.add_argument("--sigma", type=_number(float, 0, True), default=None,
                       help="standard deviation of the initial weights (default 0.01)")
    train.add_argument("--seed", type=_number(int, 0, True), default=None,
                       help="seed of the weight initialisation and the shuffles (default 0)")
    train.add_argument("--dtype", choices=("float32", "float64"), default=None, help="float type (default float32)")
    _data_options(train, DATA_HELP)
    train.add_argument("--val-data", metavar="PATH", default=None,
                       help="the held-out set of a single-file --data (svmlight, CSV, .npz, Parquet): a file of the "
                            "same kind and columns, judged after each epoch as a test split is")
    train.add_argument("--n-features", metavar="N", type=_number(int, 1, True), default=None,
                       help="svmlight: the features are N wide in both files (default: one past the training "
                            "file's largest index; a held-out index past it is an error)")
    train.add_argument("--num-classes", metavar="K", type=int, default=None,
                       help="the classes are 0..K-1 (labels at or past K are an error); without it, integer labels "
                            "without names name 0..max label, refused when fewer than half of those occur "
                            "(above 16 classes)")
    train.add_argument("--shuffle", choices=SHUFFLES, default=None,
                       help="SGD epoch order: full (a permutation of all rows, the lesson's), blocks (blocks of "
                            "rows in seeded order, shuffled in windows: memory of a window), auto (default: "
                            "blocks for memory-mapped and Dask data, full otherwise)")
    train.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="lbfgs: run on a Dask cluster: tcp://HOST:PORT (an existing scheduler) or local:N "
                            "(N worker processes on this machine); needs pip install 'softmaxreg[dask]'")
    train.add_argument("--dashboard", action="store_true",
                       help="with --scheduler local:N: serve Dask's dashboard at 127.0.0.1:8787 (the next free "
                            "port if taken) and print its address (default: no dashboard)")
    train.add_argument("--backend", choices=BACKENDS, default=None,
                       help="array library to train with: numpy (default, the fast CPU path), torch, jax, cupy "
                            "(pip install softmaxreg[torch|jax|cupy]); the model file is the same from every one")
    train.add_argument("--device", metavar="DEVICE", default=None,
                       help="cpu (default) or cuda[:N], for --backend torch, jax or cupy")
    train.add_argument("--out", metavar="DIR", default=None, help="run folder (default runs/<timestamp>)")
    train.add_argument("--overwrite", action="store_true", help="allow replacing a run already in --out")
    train.add_argument("--no-plots", action="store_true", help="skip curves.png and misclassified.png")
    train.add_argument("--quiet", action="store_true", help="print nothing but errors (no progress bar)")
    train.add_argument("--log-every", type=_number(int, 1, True), metavar="N",
                       help="print every Nth epoch's line (L-BFGS: iteration) and the last (default 1)")
    train.set_defaults(func=train_command)

    evaluate = commands.add_parser(
        "evaluate", help="judge a trained model on the test split",
        description="Accuracy, mean cross-entropy, top-2 accuracy, per-class precision/recall/F1, the confusion "
                    "matrix and calibration (ECE, reliability diagram) on the test split; writes confusion.png, "
                    "calibration.png and evaluation.json (every figure, for `softmaxreg report`).")
    evaluate.add_argument("model", metavar="MODEL", help="a model.safetensors written by softmaxreg train")
    _data_options(evaluate, "as for train; judged on its test split (X_test/y_test or X_val/y_val, the IDX "
                            "t10k files), else on all its rows (default: bundled Fashion-MNIST)")
    evaluate.add_argument("--out", metavar="DIR", default=None,
                          help="where to write the plots and evaluation.json (default: the model's folder)")
    evaluate.add_argument("--bins", type=_number(int, 1, True), default=15, help="calibration bins (default 15)")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.add_argument("--force", action="store_true",
                          help="judge the model even if its classes or input range differ from the data's")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace confusion.png / calibration.png of another evaluation in the output folder")
    evaluate.set_defaults(func=evaluate_command)

    predict = commands.add_parser(
        "predict", help="classify images, .npy arrays or IDX files",
        description="Print the most probable classes of each input. Images (PNG, JPEG, ...) of any size are "
                    "converted as Fashion-MNIST was made: grey, negated if the background is light, trimmed, "
                    "longest edge resized to the model's size, centred on black. .npy and IDX inputs hold raw "
                    "pixel values (0-255), one example or a stack.")
    predict.add_argument("model", metavar="MODEL", help="a model.safetensors written by softmaxreg train")
    predict.add_argument("inputs", metavar="INPUT", nargs="*", help="image, .npy or IDX file")
    predict.add_argument("--data", metavar="PATH", default=None,
                         help="also classify the rows of a data source as for train (its test split, else all "
                              "its rows; labels, if any, are not used)")
    predict.add_argument("--label-column", metavar="NAME|INDEX", default=None,
                         help="CSV / Parquet --data: the label column to leave out of the features")
    _zero_based_option(predict)
    predict.add_argument("--top-k", type=_number(int, 1, True), default=None,
                         help="classes shown per input (default 3, or the model's classes if fewer)")
    predict.add_argument("--reject-below", type=_number(float, 0, True, maximum=1), default=None, metavar="P",
                         help="answer 'uncertain' when the top probability is below P (0..1)")
    predict.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                         help="negate images first: auto (if the border is light), yes, no (default auto)")
    predict.add_argument("--input-range", type=_number(float, -math.inf, True), nargs=2, metavar=("LOW", "HIGH"),
                         help="the inputs' values lie in LOW..HIGH (e.g. 0 1 for arrays already scaled) and are "
                              "rescaled to the model's range (default: they lie in the model's range, 0..255 for "
                              "pixels, as decoded images do)")
    predict.add_argument("--json", action="store_true", help="print the predictions as JSON")
    predict.set_defaults(func=predict_command)

    from ..experiments import registry
    experiments = registry()
    experiment = commands.add_parser(
        "experiment", help="run one of the lesson's exercises",
        description="Run an experiment, print its table and write NAME.csv and NAME.png. "
                    + "; ".join(f"{e.name}: {e.help}" for e in experiments.values()) + ".")
    experiment.add_argument("name", choices=experiments, metavar="NAME", help=", ".join(experiments))
    experiment.add_argument("--out", metavar="DIR", default="experiments", help="output folder (default experiments)")
    experiment.add_argument("--data-dir", metavar="DIR", default=None, help="as for train (default: bundled Fashion-MNIST)")
    experiment.add_argument("--model", metavar="MODEL", default=None,
                            help="reject: the model to judge (default: train the reference run first)")
    experiment.add_argument("--epochs", type=_number(int, 1, True), default=None,
                            help="lr-sweep / batch-sweep / next-word: epochs per run (default 10 / 5 / 3)")
    experiment.add_argument("--seeds", type=_number(int, 1, True), default=3, help="lr-sweep: seeds per rate (default 3)")
    experiment.add_argument("--quick", action="store_true", help="small grids, for a fast check")
    experiment.add_argument("--vocab", type=_vocab_list, default=None, metavar="V[,V...]",
                            help="next-word: vocabulary sizes, `all` for every training word (default 1000,5000,20000)")
    experiment.add_argument("--context", type=_number(int, 1, True, maximum=8), default=2, metavar="N",
                            help="next-word: previous words used as features (default 2)")
    experiment.add_argument("--max-tokens", type=_number(int, 1000, True), default=None, metavar="N",
                            help="next-word: the corpus's first N words, whole articles (default 1000000; --quick 40000)")
    experiment.add_argument("--sampled-fraction", type=_number(float, 0.0, False, maximum=1.0), default=0.05,
                            metavar="F", help="next-word: sampled softmax draws S = F V classes a step (default 0.05)")
    experiment.add_argument("--force", action="store_true",
                            help="reject: judge --model even if its classes or input range differ from the data's")
    experiment.set_defaults(func=experiment_command)

    report = commands.add_parser(
        "report", help="write one self-contained report.html of a run",
        description="Write report.html: the run's settings, data provenance, figures (inlined), per-epoch table "
                    "and, once `softmaxreg evaluate` has run on its model, the per-class report, confusion matrix "
                    "and calibration. One file with nothing to fetch: open it in any browser, or send it.")
    report.add_argument("run", metavar="RUN_DIR", help="a run folder written by softmaxreg train")
    report.add_argument("--out", metavar="DIR", default=None, help="where to write report.html (default: RUN_DIR)")
    report.set_defaults(func=report_command)
    export = commands.add_parser(
        "export", help="export a trained model to ONNX",
        description="Write a trained model as one ONNX graph (its preprocessing folded in; outputs label and "
                    "probabilities) that onnxruntime serves from C++, C#, Java, JavaScript or a browser; needs "
                    "pip install 'softmaxreg[onnx]'.")
    export.add_argument("source", metavar="RUN_DIR|MODEL_FILE",
                        help="a run folder written by softmaxreg train (its model.safetensors), or a model file")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="the file format (default onnx)")
    export.add_argument("--out", metavar="FILE", required=True,
                        help="the file to write, e.g. model.onnx (required: there is no default)")
    export.add_argument("--overwrite", action="store_true", help="allow replacing an existing --out file")
    export.set_defaults(func=export_command)
    parser.commands = {"train": train, "evaluate": evaluate, "predict": predict, "experiment": experiment,
                       "report": report, "export": export}
    return parser


DATA_HELP = ("the data: a folder of the four MNIST-format IDX files (raw ones are memory-mapped); a folder of "
             "X_train.npy and y_train.npy (optionally X_test.npy, y_test.npy; memory-mapped); a .npz of X_train, "
             "y_train (optionally X_test, y_test or X_val, y_val), or of a scipy.sparse matrix (save_npz) and y; "
             "an svmlight / libsvm file (.svm, .svmlight, .libsvm); a .csv with a header line (--label-column); "
             "a Zarr store of those arrays, or Parquet files or a glob (--label-column), both through Dask. "
             "Default: $SOFTMAXREG_DATA_DIR, else the bundled Fashion-MNIST. --data-dir is the same option")


def _data_options(parser: argparse.ArgumentParser, help: str) -> None:
    """--data PATH (alias --data-dir) and --label-column, for train and evaluate."""
    parser.add_argument("--data", "--data-dir", dest="data_dir", metavar="PATH", default=None, help=help)
    parser.add_argument("--label-column", metavar="NAME|INDEX", default=None,
                        help="CSV / Parquet: the column holding the class labels (a name, or a 0-based index)")
    _zero_based_option(parser)


def _zero_based_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zero-based", choices=("auto", "yes", "no"), default="auto",
                        help="svmlight: feature indices start at 0 (yes) or 1 (no); auto (default): in train, at 1 "
                             "unless an index 0 occurs in the file(s) read; in evaluate and predict, as in the "
                             "model's training files (the model file records it)")
