"""Text from outside (class names, file names, error messages that quote them) shown as plain text,
never as markup or code: `printable` for the terminal, `plain_text_kwargs` for matplotlib. HTML is
escaped where it is written (report.py), CSV quoted by the csv module (experiments.to_csv).

A class name "\\x1b[31m" printed as it is would turn the terminal red (or, with other sequences, retitle
the window or hide text), "\\r" or "\\u202e" would make a line read as something else, "\\n" would break
the CLI's one-line errors; a name "$\\frac{1}{2}$" given to matplotlib as it is would be drawn as math.
"""

from __future__ import annotations

import re

__all__ = ["printable", "PLAIN_TEXT"]

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
"""C0 and C1 control characters (escape sequences, carriage returns, newlines, tabs), and the invisible
format characters that reorder or hide text (bidirectional overrides and isolates, zero-width ones)."""


def printable(text) -> str:
    """str(text) with every control or invisible format character written as its Python escape
    (\\x1b, \\n, \\u202e), so it prints as the characters it holds, on one line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


PLAIN_TEXT = {"parse_math": False, "usetex": False}
"""matplotlib Text properties for text that is data: drawn as its characters ($, _, ^ and \\ included),
never parsed as math text or handed to TeX, whatever rcParams say."""
