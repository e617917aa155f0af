"""`softmaxreg report RUN_DIR`: one self-contained report.html of a run (report.write_report)."""

from __future__ import annotations


def report_command(args) -> int:
    from ..report import write_report

    print(f"wrote {write_report(args.run, args.out)}")
    return 0
