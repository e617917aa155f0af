"""softmaxreg: softmax regression from scratch, with Fashion-MNIST built in.

>>> import softmaxreg as sr
>>> data = sr.load_fashion_mnist()
>>> model = sr.SoftmaxRegression(784, 10, sigma=0.01, input_scale=1 / 255, class_names=data.class_names)
>>> history = sr.fit(model, data.train_images, data.train_labels, epochs=10, batch_size=256, lr=0.1,
...                  validation_data=(data.test_images, data.test_labels))   # doctest: +SKIP
"""

from . import experiments, metrics
from ._version import __version__
from .datasets import FASHION_MNIST_CLASSES, ImageDataset, load_fashion_mnist, read_idx, resize_images, write_idx
from .datasets.inputs import read_inputs, to_mnist_format
from .errors import (ChecksumError, ClusterError, ConvergenceWarning, DataFormatError, ExportError, InvalidArgumentError,
                     ModelFormatError, OutputError, SoftmaxRegError, TrainingDivergedError)
from .functional import cross_entropy, cross_entropy_grad, log_softmax, logsumexp, softmax
from .model import SoftmaxRegression
from .hooks import Callback, EpochRecord, History
from .objective import SoftmaxCrossEntropy
from .solvers import LBFGS, OPTIMIZERS, SGD, NewtonCG
from .options import TrainConfig
from .model_file import load_model, save_model
from .train import fit


def export_onnx(model, path, *, overwrite: bool = False, input_dtype: str | None = None):
    """Write `model` as an ONNX graph to `path` (onnx_export.export_onnx; needs the onnx extra,
    imported only here so that `import softmaxreg` never imports onnx)."""
    from .onnx_export import export_onnx
    return export_onnx(model, path, overwrite=overwrite, input_dtype=input_dtype)


def to_onnx(model, *, input_dtype: str | None = None):
    """The model as an onnx.ModelProto (onnx_export.to_onnx; needs the onnx extra)."""
    from .onnx_export import to_onnx
    return to_onnx(model, input_dtype=input_dtype)

__all__ = [
    "__version__",
    # math
    "logsumexp", "softmax", "log_softmax", "cross_entropy", "cross_entropy_grad",
    # model and training
    "SoftmaxRegression", "SoftmaxCrossEntropy", "SGD", "LBFGS", "NewtonCG", "OPTIMIZERS", "fit", "TrainConfig", "History",
    "EpochRecord", "Callback",
    # data and files
    "load_fashion_mnist", "ImageDataset", "FASHION_MNIST_CLASSES", "read_idx", "write_idx", "resize_images",
    "save_model", "load_model", "read_inputs", "to_mnist_format", "export_onnx", "to_onnx",
    # evaluation and the lesson's exercises (modules)
    "metrics", "experiments",
    # errors
    "SoftmaxRegError", "InvalidArgumentError", "DataFormatError", "ChecksumError", "ModelFormatError", "OutputError",
    "ExportError", "ClusterError", "TrainingDivergedError", "ConvergenceWarning",
]
