"""`softmaxreg report RUN_DIR`: one self-contained report.html of a run (report.write_report)."""

from __future__ import annotations


def report_command(args) -> int:
    from ..report import write_report
    from ..text import printable

    print(f"wrote {printable(write_report(args.run, args.out))}")
    return 0
