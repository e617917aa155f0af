"""`softmaxreg experiment NAME`: run one of the lesson's exercises (experiments.registry), print its
table and write NAME.csv and NAME.png; a sweep interrupted by Ctrl-C keeps the runs that finished."""

from __future__ import annotations

import sys
from pathlib import Path

from ..fileio import output_folder
from ..text import printable
from .table import format_table


def experiment_command(args) -> int:
    from ..experiments import ExperimentInterrupted, registry
    from ..fileio import atomic_write_bytes
    from ..plots import plot_experiment

    name = args.name
    experiment = registry()[name]
    with output_folder(Path(args.out)) as out:           # a new --out is left only if written to
        def write(result) -> str:
            atomic_write_bytes(out / f"{name}.csv", result.to_csv().encode())
            plot_experiment(experiment.draw, result, out / f"{name}.png")
            return f"{out / f'{name}.csv'}, {out / f'{name}.png'}"
        try:
            result = experiment.run(args)
        except ExperimentInterrupted as stop:            # Ctrl-C in a sweep: keep the runs that finished
            kept = f"kept them in {write(stop.result)}" if stop.result.rows else "nothing written"
            print(f"softmaxreg: interrupted after {stop.done} of {stop.total} runs; {kept}", file=sys.stderr)
            return 130
        rows = result.rows
        if result.curve and len(rows) > 25:
            step = len(rows) / 20
            rows = [rows[int(i * step)] for i in range(20)] + [rows[-1]]
        print(format_table(result.columns, rows))
        if rows is not result.rows:
            print(f"({len(rows)} of {len(result.rows)} rows shown; all in the CSV)")
        for line in result.summary:
            print(line)
        written = write(result)
    print(f"wrote {printable(written)}")
    return 0
