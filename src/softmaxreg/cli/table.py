"""The text tables that `evaluate` and `experiment` print."""

from __future__ import annotations

import numpy as np

from ..text import printable


def format_table(columns, rows) -> str:
    """Rows (dicts) as right-aligned text columns, floats to 4 significant places; text (class names)
    with its control characters escaped (text.printable)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.4f}"
        return printable(v)
    cells = [[cell(r[c]) for c in columns] for r in rows]
    columns = [printable(c) for c in columns]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
