"""The package's cache folder, shared by every cache (decompressed data, the GEMM blocking).

A leaf: it imports nothing from the package, so any module may ask where the cache lives.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir"]

CACHE_ENV = "SOFTMAXREG_CACHE_DIR"


def cache_dir() -> Path | None:
    """$SOFTMAXREG_CACHE_DIR ("off" disables), else $XDG_CACHE_HOME/softmaxreg, else ~/.cache/softmaxreg."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return None if env.lower() == "off" else Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "softmaxreg"
