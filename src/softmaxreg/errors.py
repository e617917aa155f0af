"""Exception types. Every user mistake raises a subclass of `SoftmaxRegError`
whose message names the file or argument and what was expected; the CLI prints
that message on one line and exits with 2."""


class SoftmaxRegError(Exception):
    """Base class of every error softmaxreg raises on bad input."""


class InvalidArgumentError(SoftmaxRegError, ValueError):
    """A hyperparameter, array or option has a value we cannot work with."""


class DataFormatError(SoftmaxRegError, ValueError):
    """A data file is missing, unreadable, truncated or not what it claims to be."""


class ChecksumError(DataFormatError):
    """A bundled data file does not match its recorded SHA-256."""


class ModelFormatError(SoftmaxRegError, ValueError):
    """A model file is missing, corrupt, or not a softmaxreg model."""


class OutputError(SoftmaxRegError, OSError):
    """An output file or folder cannot be written."""


class ExportError(SoftmaxRegError, ValueError):
    """A model cannot be exported (onnx_export): the format cannot express it, or onnx is absent."""


class ClusterError(SoftmaxRegError, ConnectionError):
    """The Dask cluster given by --scheduler cannot be reached, or was lost during a fit (no worker left)."""


class TrainingDivergedError(SoftmaxRegError, ArithmeticError):
    """The training loss became NaN/inf or exploded (see `softmaxreg.train.fit`).

    Carries `epoch`, `step` (1-based, within the epoch), `loss` (the minibatch's mean
    loss) and `history` (the epochs completed before it). The CLI exits with 3.
    """

    def __init__(self, message: str, *, epoch: int, step: int, loss: float, history=None):
        super().__init__(message)
        self.epoch, self.step, self.loss, self.history = epoch, step, loss, history


class ConvergenceWarning(UserWarning):
    """A solver stopped before its convergence test held (L-BFGS at max_iter, or a line search
    that could make no more progress); the result is usable but not the optimum to `tol`.
    Named like scikit-learn's, which it mirrors."""
