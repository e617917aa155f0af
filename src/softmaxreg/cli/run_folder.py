"""A run folder's file names and the claim of a new one: `softmaxreg train` writes RUN_FILES, and
after every epoch CHECKPOINT; a run it replaces loses its FINAL_FILES (cli/train.py says when each
file changes)."""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path

from ..errors import OutputError
from ..fileio import claim_folder

RUN_FILES = ("config.json", "metrics.csv", "model.safetensors", "curves.png", "misclassified.png")
CHECKPOINT = "checkpoint.safetensors"
FINAL_FILES = ("model.safetensors", "curves.png", "misclassified.png")
"""The files written when training ends; a new run removes those of the run it replaces."""


def claim_new_folder(stack: contextlib.ExitStack, out: str | None, overwrite: bool) -> Path:
    """The run folder of a new run, claimed for this process until `stack` closes: --out, or a new
    runs/<timestamp>[-i] (created atomically, so runs started in the same second get one each)."""
    if out is None:
        base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        for i in itertools.count():
            try:
                return stack.enter_context(claim_folder(base.with_name(f"{base.name}-{i}") if i else base, fresh=True))
            except FileExistsError:
                continue
    folder = stack.enter_context(claim_folder(Path(out)))
    existing = [name for name in (*RUN_FILES, CHECKPOINT) if (folder / name).exists()]
    if existing and not overwrite:
        raise OutputError(f"--out {folder}: already holds a run ({existing[0]}); "
                          "choose another folder or pass --overwrite")
    remove_stale_temporaries(folder)
    return folder


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed run left mid-write (`.NAME.*.tmp` of our own files only);
    the files they were meant to replace are intact."""
    for name in (*RUN_FILES, CHECKPOINT):
        for stale in folder.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def what_is_kept(folder: Path, unit: str, saved: int) -> str:
    if not saved:
        return f"no {unit} had finished; the run folder is as it was"
    return f"the checkpoint of {unit} {saved} is in {folder}; resume with: softmaxreg train --resume {folder}"
