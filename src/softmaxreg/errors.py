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
