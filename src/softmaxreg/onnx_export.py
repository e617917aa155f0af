"""ONNX export: a trained model as one ONNX graph that onnxruntime (C++, C#, Java, JavaScript, a
browser) runs without softmaxreg.

The graph folds in the model's whole preprocessing, as `SoftmaxRegression.logits` computes it:

    input (N, *input_shape) --Cast--> model float --Flatten--> x (N, d)
    not standardized:  z = (x @ W) * s + b                      (MatMul, Mul, Add)
    standardized:      z = x @ (W * s / std) + (b - (mean / std) @ W)   (MatMul, Add; folded here)
    probabilities = Softmax(z, axis=1)                          (N, k), a plain tensor (no ZipMap)
    label = Gather(classes, ArgMax(z, axis=1))                  (N,), string or int64 labels

The batch dimension N is dynamic; W, b and the folded constants are in the model's float type, so
onnxruntime's probabilities equal `predict_proba` to rounding. The metadata (`metadata_props`) holds
class_names (JSON), input_shape (JSON), preprocessing (JSON) and softmaxreg_version.
`onnx` is an optional extra (pip install 'softmaxreg[onnx]'); `import softmaxreg` never imports it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ._version import __version__
from .engines.array_api import to_numpy
from .errors import ExportError, OutputError
from .fileio import atomic_write_bytes
from .model import SoftmaxRegression

__all__ = ["to_onnx", "export_onnx", "OPSET", "IR_VERSION"]

OPSET = 17          # Softmax over one axis (opset >= 13); onnxruntime >= 1.14 runs it
IR_VERSION = 8      # the IR of opset 17, so older runtimes load the file too
INPUT_DTYPES = ("uint8", "float32", "float64")
MAX_BYTES = 2**31 - 1 - 2**20   # protobuf serializes at most 2 GiB in one message; 1 MiB left for the graph


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'softmaxreg[onnx]'") from None
    return onnx


def _model_and_labels(model) -> tuple[SoftmaxRegression, np.ndarray]:
    """The SoftmaxRegression to export and its class labels: the model's class names (strings), or a
    fitted scikit-learn estimator's classes_ (its model_; int64 or string labels)."""
    if isinstance(model, SoftmaxRegression):
        return model, np.array(model.class_names, dtype=object)
    inner, classes = getattr(model, "model_", None), getattr(model, "classes_", None)
    if not isinstance(inner, SoftmaxRegression) or classes is None:
        raise ExportError(f"expected a SoftmaxRegression or a fitted SoftmaxRegressionClassifier, "
                          f"got {type(model).__name__}")
    classes = np.asarray(classes)
    if classes.dtype.kind in "iub":
        if classes.size and (classes.min() < np.iinfo(np.int64).min or classes.max() > np.iinfo(np.int64).max):
            raise ExportError("classes_: integer labels beyond int64 cannot be ONNX labels")
        return inner, classes.astype(np.int64)
    if classes.dtype.kind in "UO" and all(isinstance(c, str) for c in classes.tolist()):
        return inner, classes.astype(object)
    raise ExportError(f"classes_: ONNX labels must be integers or strings, got {classes.dtype} labels; "
                      "refit with integer or string labels")


def _folded_parameters(model: SoftmaxRegression) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(W', b', scale) in the model's float type such that logits = (x @ W') [* scale] + b', computed
    as `SoftmaxRegression._logits_into` computes them (so the rounding is the model's own)."""
    dtype = model.dtype
    W, b = to_numpy(model.W).astype(dtype, copy=False), to_numpy(model.b).astype(dtype, copy=False)
    if model.mean is None:
        return W, b, (None if model.input_scale == 1.0 else model.input_scale)
    mean, std = to_numpy(model.mean).astype(dtype, copy=False), to_numpy(model.std).astype(dtype, copy=False)
    W_folded = W * (dtype.type(model.input_scale) / std)[:, None]
    b_folded = b - (mean / std) @ W
    return W_folded.astype(dtype, copy=False), b_folded.astype(dtype, copy=False), None


def to_onnx(model, *, input_dtype: str | None = None):
    """The model as an `onnx.ModelProto` (see the module docstring for the graph), checked by
    `onnx.checker.check_model`. `model`: a SoftmaxRegression (any array library; its parameters are
    copied to NumPy) or a fitted SoftmaxRegressionClassifier. `input_dtype`: the graph input's
    element type, "uint8" (raw pixels), "float32" or "float64"; default the model's float type.
    Raises ExportError for what ONNX cannot express here (non-finite parameters, float labels,
    parameters over protobuf's 2 GiB: MAX_BYTES)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    model, labels = _model_and_labels(model)
    dtype = np.dtype(model.dtype)
    input_dtype = dtype.name if input_dtype is None else str(input_dtype)
    if input_dtype not in INPUT_DTYPES:
        raise ExportError(f"input_dtype: expected one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    W, b, scale = _folded_parameters(model)
    if not (np.isfinite(W).all() and np.isfinite(b).all()) or (scale is not None and not math.isfinite(scale)):
        raise ExportError("the model's parameters are not all finite (a diverged run?); nothing to export")
    size = W.nbytes + b.nbytes + sum(len(str(c).encode("utf-8")) + 2 for c in labels)
    if size > MAX_BYTES:
        raise ExportError(f"the model's parameters take {size / 2**30:.2f} GiB; one ONNX file (protobuf) holds "
                          f"at most 2 GiB, so a model with {W.shape[0]} inputs and {W.shape[1]} classes cannot "
                          "be exported")
    float_type = helper.np_dtype_to_tensor_dtype(dtype)

    nodes, x = [], "input"
    if input_dtype != dtype.name:
        nodes.append(helper.make_node("Cast", [x], ["input_float"], to=float_type))
        x = "input_float"
    nodes.append(helper.make_node("Flatten", [x], ["x"], axis=1))                              # (N, d)
    nodes.append(helper.make_node("MatMul", ["x", "weight"], ["xw"]))                          # (N, k)
    initializers = [numpy_helper.from_array(W, "weight"), numpy_helper.from_array(b, "bias")]
    if scale is not None:
        nodes.append(helper.make_node("Mul", ["xw", "input_scale"], ["xws"]))
        initializers.append(numpy_helper.from_array(np.array(scale, dtype=dtype), "input_scale"))
    nodes.append(helper.make_node("Add", ["xws" if scale is not None else "xw", "bias"], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))           # (N, k)
    nodes.append(helper.make_node("ArgMax", ["logits"], ["class_index"], axis=1, keepdims=0))  # (N,) first max
    nodes.append(helper.make_node("Gather", ["classes", "class_index"], ["label"], axis=0))   # (N,)
    if labels.dtype == object:
        classes = helper.make_tensor("classes", TensorProto.STRING, [len(labels)],
                                     [str(c).encode("utf-8") for c in labels])
        label_type = TensorProto.STRING
    else:
        classes = numpy_helper.from_array(labels, "classes")
        label_type = TensorProto.INT64
    initializers.append(classes)

    k = model.num_outputs
    graph = helper.make_graph(
        nodes, "softmaxreg",
        inputs=[helper.make_tensor_value_info("input", helper.np_dtype_to_tensor_dtype(np.dtype(input_dtype)),
                                              ["N", *model.input_shape])],
        outputs=[helper.make_tensor_value_info("label", label_type, ["N"]),
                 helper.make_tensor_value_info("probabilities", float_type, ["N", k])],
        initializer=initializers)
    proto = helper.make_model(graph, producer_name="softmaxreg", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              doc_string=repr(model))
    helper.set_model_props(proto, {
        "class_names": json.dumps([str(c) if labels.dtype == object else int(c) for c in labels]),
        "input_shape": json.dumps(list(model.input_shape)),
        "preprocessing": json.dumps({"input_scale": model.input_scale, "standardize": model.mean is not None}),
        "softmaxreg_version": __version__,
    })
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:            # a bug of ours, not of the user's model
        raise ExportError(f"the exported graph fails onnx.checker: {str(e).splitlines()[0]}") from None
    return proto


def export_onnx(model, path, *, overwrite: bool = False, input_dtype: str | None = None) -> Path:
    """Write `to_onnx(model)` to `path` atomically (a temporary file in the same folder, then a
    rename: a failed write leaves no partial file). An existing `path` is refused (OutputError)
    unless overwrite=True, also one that appears while the graph is built (the final step is a
    link that fails if the name exists, not a rename over it). Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"--out {path}: is a folder; expected a file name such as model.onnx")
    if path.exists() and not overwrite:
        raise OutputError(f"--out {path}: already exists; choose another name or pass --overwrite")
    data = to_onnx(model, input_dtype=input_dtype).SerializeToString()
    try:
        atomic_write_bytes(path, data, exclusive=not overwrite)
    except FileExistsError:
        raise OutputError(f"--out {path}: already exists; choose another name or pass --overwrite") from None
    return path
