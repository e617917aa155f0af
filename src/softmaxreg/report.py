"""`softmaxreg report RUN_DIR`: one self-contained HTML page about a run, to open in any browser
or send to someone: its settings, where its data came from, the figures (inlined as data: URIs,
nothing fetched), the per-epoch table and, once `softmaxreg evaluate` has left evaluation.json
in the folder, the per-class report, the top confusions, the confusion matrix and calibration
(above metrics.MAX_MATRIX_CLASSES classes: the worst classes and no matrix)."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import json
import math
import time
from pathlib import Path

from ._version import __version__
from .errors import SoftmaxRegError
from .fileio import atomic_write_bytes, output_folder
from .hooks import METRICS_HEADER
from .metrics import MAX_MATRIX_CLASSES, worst_classes

__all__ = ["render_report", "write_report", "REPORT_FILE", "EVALUATION_FILE"]

REPORT_FILE = "report.html"
EVALUATION_FILE = "evaluation.json"
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child, table.keys td { text-align: left; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; } img { max-width: 100%; }
.note { color: #555; } .warning { color: #a40; font-weight: bold; } .best { background: #eef6ee; }
code { font-size: 0.92em; background: #f4f4f4; padding: 0 0.2em; }
"""


def _read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text())
    except OSError as e:
        raise SoftmaxRegError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    except ValueError as e:
        raise SoftmaxRegError(f"{path}: {what} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise SoftmaxRegError(f"{path}: expected a JSON object ({what})")
    return value


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e5 else f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def _table(header, rows, *, css: str = "", row_class=None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header) if header else ""
    body = "".join(f"<tr{f' class={row_class(i)!r}' if row_class and row_class(i) else ''}>"
                   + "".join(f"<td>{html.escape(_text(v))}</td>" for v in row) + "</tr>" for i, row in enumerate(rows))
    return f"<table{f' class={css!r}' if css else ''}>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _figure(folder: Path, name: str, caption: str) -> str:
    path = folder / name
    if not path.is_file():
        return f"<p class='note'>{html.escape(name)} is not in the run folder (drawn unless --no-plots).</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)} ({html.escape(name)})</figcaption></figure>")


def _metrics(folder: Path) -> list[dict]:
    try:
        with open(folder / "metrics.csv", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames not in (list(METRICS_HEADER), list(METRICS_HEADER[:5])):   # older runs: no seconds
                raise ValueError(f"expected the columns {','.join(METRICS_HEADER)}")
            return [{"epoch_seconds": math.nan, **{k: float(v) if k != "epoch" else int(v) for k, v in row.items()}}
                    for row in reader]
    except OSError as e:
        raise SoftmaxRegError(f"{folder / 'metrics.csv'}: cannot read: {e.strerror or e}") from None
    except (ValueError, TypeError) as e:
        raise SoftmaxRegError(f"{folder / 'metrics.csv'}: not a metrics table ({e})") from None


def _run_sections(folder: Path, config: dict, epochs: list[dict]) -> list[str]:
    """Settings, data provenance, environment, and training (curves, the per-epoch table, mistakes)."""
    settings, dataset = config.get("settings", {}), config.get("dataset", {})
    best = max(range(len(epochs)), key=lambda i: epochs[i]["val_acc"], default=None)
    data_rows = [["source", dataset.get("source")], ["training images", dataset.get("train_size")],
                 ["validation images", f"{dataset.get('validation_size')} ({settings.get('validation', '?')})"],
                 ["image shape", "x".join(map(str, dataset.get("image_shape", [])))],
                 ["classes", ", ".join(dataset.get("class_names", []))],
                 ["preprocessing", config.get("preprocessing", {}).get("description", "")],
                 ["SHA-256 of the data set", dataset.get("sha256")]]
    return ["<h2>Settings</h2>",
            _table(None, [(k, repr(v) if isinstance(v, float) else v)          # a setting with all its digits
                          for k, v in sorted(settings.items())], css="keys"),
            "<h2>Data</h2>", _table(None, data_rows, css="keys"),
            _table(["file", "SHA-256"], sorted(dataset.get("files", {}).items()), css="keys"),
            "<h3>Environment</h3>", _table(None, sorted(config.get("environment", {}).items()), css="keys"),
            "<h2>Training</h2>", _figure(folder, "curves.png", "Loss and accuracy per epoch"),
            _table(["epoch", "train loss", "train accuracy", "val loss", "val accuracy", "seconds"],
                   [[r[c] for c in METRICS_HEADER] for r in epochs], row_class=lambda i: "best" if i == best else ""),
            "<p class='note'>highlighted: the epoch of the highest validation accuracy</p>",
            _figure(folder, "misclassified.png", "Misclassified validation images, true label over predicted")]


def _evaluation_sections(folder: Path, evaluation: dict) -> list[str]:
    """The figures of `softmaxreg evaluate`: headline, per class, top confusions, confusion matrix, calibration."""
    names = [c["class"] for c in evaluation["per_class"]]
    headline = (f"{evaluation['examples']} images of the {evaluation.get('split', 'test')} split (data: "
                f"{evaluation.get('data')}), evaluated {evaluation.get('evaluated', '?')}: accuracy ")
    parts = ["<h2>Evaluation</h2>",
             f"<p>{html.escape(headline)}<b>{evaluation['accuracy']:.4f}</b>, cross-entropy "
             f"{evaluation['cross_entropy']:.4f}, top-2 accuracy {evaluation['top2_accuracy']:.4f}, "
             f"expected calibration error {evaluation['expected_calibration_error']:.4f}.</p>"]
    model = folder / "model.safetensors"
    if model.is_file() and evaluation.get("model_sha256") != hashlib.sha256(model.read_bytes()).hexdigest():
        parts.append("<p class='warning'>This evaluation is of another model than the model.safetensors now in the "
                     "folder (retrained since?): evaluate it again.</p>")
    bins = [[f"({b['lower']:.3f}, {b['upper']:.3f}]", b["count"], *("" if b[key] is None else b[key]   # empty bin
                                                                    for key in ("confidence", "accuracy"))]
            for b in evaluation["calibration_bins"]]
    return parts + [
        *_per_class_sections(evaluation["per_class"]),
        *_top_confusions_sections(evaluation.get("top_confusions")),
        *_confusion_sections(folder, names, evaluation.get("confusion_matrix")),
        "<h3>Calibration</h3>",
        _table(["confidence bin", "examples", "mean confidence", "accuracy"], bins),
        _figure(folder, "calibration.png", "Reliability diagram")]


def _per_class_sections(per_class: list[dict]) -> list[str]:
    """Every class's figures in class order; above MAX_MATRIX_CLASSES classes the worst ones only
    (metrics.worst_classes: a 65,536-row table would bury the page; evaluation.json has them all)."""
    small = len(per_class) <= MAX_MATRIX_CLASSES
    shown = per_class if small else worst_classes(per_class)
    note = [] if small else [f"<p class='note'>the {len(shown)} classes of lowest F1 of the "
                             f"{sum(c['support'] > 0 for c in per_class)} with examples (ties: more examples "
                             f"first); all {len(per_class)} are in {EVALUATION_FILE}</p>"]
    return ["<h3>Per class</h3>", *note,
            _table(["class", "precision", "recall", "F1", "support"],
                   [[c["class"], c["precision"], c["recall"], c["f1"], c["support"]] for c in shown])]


def _top_confusions_sections(mistakes) -> list[str]:
    """The most frequent (true, predicted) mistakes; a note for an evaluation.json from before they
    were kept."""
    if mistakes is None:
        return ["<h3>Top confusions</h3><p class='note'>not in this evaluation (evaluate again)</p>"]
    if not mistakes:
        return ["<h3>Top confusions</h3><p class='note'>none: every example is predicted right</p>"]
    return ["<h3>Top confusions</h3><p class='note'>the most frequent mistakes, the largest cells of the "
            "confusion matrix off its diagonal</p>",
            _table(["true", "predicted", "examples"], [[m["true"], m["predicted"], m["count"]] for m in mistakes])]


def _confusion_sections(folder: Path, names: list, confusion) -> list[str]:
    """The confusion matrix's table and figure; a note instead when evaluate built none (more than
    metrics.MAX_MATRIX_CLASSES classes: a k x k table would dwarf the page), whatever confusion.png
    an earlier evaluation left in the folder."""
    if confusion is None or len(names) > MAX_MATRIX_CLASSES:
        return ["<h3>Confusion matrix</h3>", f"<p class='note'>not built for {len(names)} classes (more than "
                f"{MAX_MATRIX_CLASSES}): the per-class figures are its diagonal and sums, the top "
                "confusions its largest other cells</p>"]
    return ["<h3>Confusion matrix</h3><p class='note'>rows: true class, columns: predicted class</p>",
            _table(["true \\ predicted", *names], [[n, *row] for n, row in zip(names, confusion)]),
            _figure(folder, "confusion.png", "Confusion matrix")]


def _sections(folder: Path, name: str, build, *args) -> list[str]:
    """build(folder, *args), with content a softmaxreg command did not write reported against `name`."""
    try:
        return build(folder, *args)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SoftmaxRegError(f"{folder / name}: not written by softmaxreg ({e.__class__.__name__}: {e})") from None


def render_report(folder) -> str:
    """The report of the run in `folder` as one HTML document (no external resources)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise SoftmaxRegError(f"{folder}: not a run folder (no config.json; a run writes it after its first epoch)")
    config = _read_json(folder / "config.json", "run config")
    epochs = _metrics(folder)
    title = f"softmaxreg run {folder.resolve().name}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='note'>trained {html.escape(str(config.get('started', '?')))} with softmaxreg "
             f"{html.escape(str(config.get('softmaxreg_version', '?')))}; report by softmaxreg {__version__}, "
             f"{time.strftime('%Y-%m-%d %H:%M')}</p>"]
    if epochs:
        last = epochs[-1]
        parts.append(f"<p>After {len(epochs)} epochs: validation accuracy <b>{last['val_acc']:.4f}</b>, validation "
                     f"loss {last['val_loss']:.4f}, training loss {last['train_loss']:.4f}.</p>")
    parts += _sections(folder, "config.json", _run_sections, config, epochs)
    if (folder / EVALUATION_FILE).is_file():
        parts += _sections(folder, EVALUATION_FILE, _evaluation_sections,
                           _read_json(folder / EVALUATION_FILE, "evaluation"))
    else:
        parts.append("<h2>Evaluation</h2><p class='note'>Not evaluated yet: run <code>softmaxreg evaluate "
                     f"{html.escape(str(folder / 'model.safetensors'))}</code>, then the report again.</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_report(folder, out=None) -> Path:
    """Write report.html of the run in `folder` into `out` (default the run folder), atomically."""
    text = render_report(folder)
    with output_folder(Path(out) if out is not None else Path(folder)) as target:
        atomic_write_bytes(target / REPORT_FILE, text.encode())
    return target / REPORT_FILE
