"""The package version, in a module of its own so that any module can import it without
running the package `__init__` (and everything it imports)."""

__version__ = "0.1.0"
