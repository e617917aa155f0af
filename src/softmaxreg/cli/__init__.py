"""The `softmaxreg` command line. main(argv) -> exit code: 0 ok, 2 bad input, 3 training diverged,
130 interrupted.

Every user mistake ends in one line on stderr ("softmaxreg: error: ...") and exit code 2,
never a traceback. Options are never abbreviated (--epoch is not --epochs); an unknown one is
answered with the closest known one. Output whose reader has gone (`| head`) is dropped quietly
and the command carries on: `train` still finishes its run folder.

Inside: parser.py holds every command's options and names the function that runs it, one module
per command family: train.py (with train_setup.py and run_folder.py), judge.py (evaluate, predict),
experiment.py, report.py, export.py; streams.py and table.py serve them. The modules import down only, and
nothing outside the command line imports it.
"""

from __future__ import annotations

import sys

from ..errors import SoftmaxRegError, TrainingDivergedError
from ..text import printable
from .parser import build_parser
from .run_folder import CHECKPOINT, RUN_FILES
from .streams import DropWhenClosed

__all__ = ["main", "build_parser", "RUN_FILES", "CHECKPOINT"]


def main(argv=None) -> int:
    parser = build_parser()
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = DropWhenClosed(sys.stdout), DropWhenClosed(sys.stderr)
    try:
        return _run(parser, argv)
    finally:
        sys.stdout.flush()                # what is still buffered meets a closed pipe here, not at exit
        sys.stdout, sys.stderr = streams


def _run(parser, argv) -> int:
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:             # --help, --version, or a usage error (already printed)
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args)
    except TrainingDivergedError as e:
        print(f"softmaxreg: error: {printable(e)}", file=sys.stderr)
        return 3
    except SoftmaxRegError as e:                  # names and paths it quotes stay text, on one line
        print(f"softmaxreg: error: {printable(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:      # Ctrl-C, or SIGTERM where a command turns it into one (exit 143)
        print("softmaxreg: interrupted", file=sys.stderr)
        return getattr(e, "exit_code", 130)
