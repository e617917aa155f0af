"""`softmaxreg evaluate` and `softmaxreg predict`: judge a trained model on a data set's test split,
and classify images, arrays, IDX files or the rows of a --data source (cli/parser.py builds the parser)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import SoftmaxRegError
from ..fileio import all_or_nothing, output_folder
from ..text import printable
from .table import format_table

__all__ = ["evaluate_command", "predict_command"]


def evaluate_command(args) -> int:
    """`softmaxreg evaluate MODEL`: the figures, confusion.png, calibration.png and evaluation.json."""
    import hashlib
    import time

    from ..judging import load_model_and_data, logit_blocks
    from ..fileio import atomic_write_bytes
    from ..metrics import summary_of_blocks
    from ..plots import plot_confusion, plot_reliability
    from ..report import EVALUATION_FILE

    from ..datasets.sources import SPLIT_NAMES, evaluation_split

    model, data = load_model_and_data(args.model, args.data_dir, force=args.force, label_column=args.label_column,
                                      zero_based=args.zero_based)
    X, y, split = evaluation_split(data)
    summary = summary_of_blocks(y, logit_blocks(model, X), model.class_names, n_bins=args.bins)   # O(n + k) memory
    bins = {key: np.array([np.nan if b[key] is None else b[key] for b in summary["calibration_bins"]])
            for key in summary["calibration_bins"][0]}
    out = Path(args.out) if args.out else Path(args.model).parent
    # another evaluation's figures stay unless --overwrite
    with output_folder(out), all_or_nothing(overwrite=args.overwrite):
        if summary["confusion_matrix"] is not None:       # None above MAX_MATRIX_CLASSES classes
            plot_confusion(np.array(summary["confusion_matrix"]), model.class_names, out / "confusion.png",
                           title=f"Confusion matrix ({summary['examples']} examples, {SPLIT_NAMES[split]}, accuracy {summary['accuracy']:.4f})")
        plot_reliability(bins, summary["expected_calibration_error"], out / "calibration.png")
    evaluation = {"model": str(args.model), "model_sha256": hashlib.sha256(Path(args.model).read_bytes()).hexdigest(),
                  "data": data.source, "split": split, "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **summary}
    atomic_write_bytes(out / EVALUATION_FILE, (json.dumps(evaluation, indent=2) + "\n").encode())  # for `report`
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"model: {printable(args.model)}  data: {printable(data.source)} {SPLIT_NAMES[split]}, {summary['examples']} examples")
    print(f"accuracy {summary['accuracy']:.4f}  cross-entropy {summary['cross_entropy']:.4f}  "
          f"top-2 accuracy {summary['top2_accuracy']:.4f}  ECE {summary['expected_calibration_error']:.4f}")
    print()
    print(_class_tables(summary, model.class_names))
    print()
    figures = [out / "confusion.png"] if summary["confusion_matrix"] is not None else []
    print(f"wrote {', '.join(map(printable, [*figures, out / 'calibration.png', out / EVALUATION_FILE]))}")
    return 0


def _class_tables(summary: dict, names: list) -> str:
    """The per-class figures, the top confusions and the confusion matrix as text. Above
    MAX_MATRIX_CLASSES classes no k x k matrix exists and the per-class table holds the worst classes
    (metrics.worst_classes) only: 65,536 lines would bury the rest (all are in evaluation.json)."""
    from ..metrics import MAX_MATRIX_CLASSES, worst_classes

    small = summary["confusion_matrix"] is not None
    per_class = summary["per_class"] if small else worst_classes(summary["per_class"])
    present = sum(c["support"] > 0 for c in summary["per_class"])
    lines = [] if small else [f"the {len(per_class)} classes of lowest F1 of the {present} with examples "
                              f"(ties: more examples first; all {len(names)} in evaluation.json)"]
    lines += [format_table(["class", "precision", "recall", "f1", "support"], per_class), ""]
    mistakes = summary["top_confusions"]
    lines.append(f"top confusions: the {len(mistakes)} most frequent (true, predicted) mistakes" if mistakes
                 else "top confusions: none, every example is predicted right")
    if mistakes:
        lines.append(format_table(["true", "predicted", "count"], mistakes))
    lines.append("")
    if not small:
        lines.append(f"confusion matrix: not built for {len(names)} classes (more than {MAX_MATRIX_CLASSES}; "
                     "the per-class figures are its diagonal and sums, the top confusions its largest other cells)")
    else:
        lines.append("confusion matrix (rows: true, columns: predicted)")
        lines.append(format_table(["true"] + names, [{"true": n, **dict(zip(names, row))}
                                                     for n, row in zip(names, summary["confusion_matrix"])]))
    return "\n".join(lines)


def predict_command(args) -> int:
    """`softmaxreg predict MODEL INPUT... [--data PATH]`: the most probable classes of each input."""
    from ..datasets.inputs import in_model_range, read_inputs, without_signal
    from ..model_file import load_model

    if not args.inputs and args.data is None:
        raise SoftmaxRegError("predict: give INPUT files, --data PATH, or both")
    model = load_model(args.model)
    if args.top_k is None:
        args.top_k = min(3, model.num_outputs)
    if args.top_k > model.num_outputs:
        raise SoftmaxRegError(f"--top-k {args.top_k}: the model has only {model.num_outputs} classes")
    if args.input_range is not None and not args.input_range[0] < args.input_range[1]:
        raise SoftmaxRegError(f"--input-range {args.input_range[0]:g} {args.input_range[1]:g}: expected LOW < HIGH")
    inputs = read_inputs(args.inputs, model.input_shape, args.invert, model_range=model.input_range,
                         input_range=args.input_range)
    if args.data is not None:
        inputs.append(_data_rows(args, model, in_model_range))
    results = []
    for name, X in inputs:
        proba = model.predict_proba(X)
        blank = without_signal(X, model.input_range)
        for i, p in enumerate(proba):
            top = np.argsort(-p, kind="stable")[:args.top_k]
            uncertain = args.reject_below is not None and float(p[top[0]]) < args.reject_below
            results.append({"input": name, "index": i if X.shape[0] > 1 else None,
                            "prediction": None if uncertain or blank[i] else model.class_names[top[0]],
                            "uncertain": uncertain, "no_signal": bool(blank[i]),
                            "top_k": [{"class": model.class_names[j], "probability": float(p[j])} for j in top]})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    low, high = model.input_range or (None, None)
    for r in results:
        label = printable(r["input"]) + (f"[{r['index']}]" if r["index"] is not None else "")
        ranked = ", ".join(f"{printable(t['class'])} {t['probability']:.3f}" for t in r["top_k"])
        if r["no_signal"]:
            print(f"{label}: no signal (its values barely vary over the model's input range {low:g}..{high:g}: "
                  "a blank image, or values already scaled? see --input-range)")
        elif r["uncertain"]:
            print(f"{label}: uncertain (top probability {r['top_k'][0]['probability']:.3f} < {args.reject_below}; {ranked})")
        else:
            print(f"{label}: {ranked}")
    return 0


def _data_rows(args, model, in_model_range) -> tuple[str, np.ndarray]:
    """("PATH", X) of `predict --data PATH`: the rows it judges (its test split, else all), in memory,
    checked to fit the model and its input range."""
    from ..datasets.sources import SPLIT_NAMES, evaluation_split, open_data, svmlight_width
    from ..engines import engine_for

    data = open_data(args.data, label_column=args.label_column, labels=False, **svmlight_width(args.data, model,
                                                                                               args.zero_based, False))
    X, _, split = evaluation_split(data)
    shape = tuple(X.shape[1:])
    if shape not in (tuple(model.input_shape), (model.num_inputs,)):
        raise SoftmaxRegError(f"--data {args.data}: rows of {'x'.join(map(str, shape))} values ({SPLIT_NAMES[split]}); "
                              f"the model takes {'x'.join(map(str, model.input_shape))}")
    X = X if engine_for(X).name == "sparse" else np.asarray(X)                   # sparse rows stay sparse
    return args.data, in_model_range(X, f"--data {args.data}", model.input_range, args.input_range)
