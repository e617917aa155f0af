"""The classes of svmlight labels (datasets.svmlight's rows): labels all written as digits are
class indices; any other label makes every label a class name, numbers sorted by value (two
spellings of one value are one class, named as first written), other names sorted as text; or,
judging a model, each label names one of the model's classes by spelling or by value."""

from __future__ import annotations

import numpy as np

from ..errors import DataFormatError

__all__ = ["class_indices", "known_classes"]

# `files`: datasets.svmlight.SvmlightRows, one per file (its labels as text, lines, path)


def class_indices(files: list, num_classes=None):
    """([y of each file], names): labels all written as digits are class indices (names None), a
    label at or past a declared num_classes an error naming its file and line; any other label makes
    class names of them all (the module docstring's order)."""
    if all(label.isascii() and label.isdigit() for rows in files for label in rows.labels):
        ys = [_integers(rows) for rows in files]
        if num_classes is not None:
            for rows, y in zip(files, ys):
                if y.size and int(y.max()) >= num_classes:
                    at = int(np.argmax(y >= num_classes))
                    raise DataFormatError(f"{rows.path}, line {int(rows.lines[at])}: label {int(y[at])} is past the "
                                          f"{num_classes} classes declared (classes 0..{num_classes - 1})")
        return ys, None
    written = sorted({label for rows in files for label in rows.labels})
    numbers = _as_numbers(written)
    if numbers is None:                               # names: sorted as text
        index = {label: i for i, label in enumerate(written)}
        names = written
    else:                                             # numbers: by value, one class per value
        first = {}
        for rows in files:
            for label in rows.labels:
                first.setdefault(numbers[label], label)
        values = sorted(first)
        names = [first[v] for v in values]
        position = {v: i for i, v in enumerate(values)}
        index = {label: position[value] for label, value in numbers.items()}
    ys = [np.array([index[label] for label in rows.labels], dtype=np.int64) for rows in files]
    return ys, tuple(names)


def known_classes(files: list, names: tuple) -> list[np.ndarray]:
    """[y of each file]: each label the class of that spelling among `names`, else of that value
    ("+1" is a model's class "1"); a label of neither is an error naming its line."""
    spelled = {name: i for i, name in enumerate(names)}
    valued = {value: spelled[name] for name, value in (_as_numbers(list(names)) or {}).items()}
    ys = []
    for rows in files:
        y = np.empty(len(rows.labels), dtype=np.int64)
        for i, label in enumerate(rows.labels):
            found = spelled.get(label)
            if found is None:
                value = (_as_numbers([label]) or {}).get(label)
                found = valued.get(value)
            if found is None:
                raise DataFormatError(f"{rows.path}, line {int(rows.lines[i])}: label {label[:40]!r} is not one of the "
                                      f"model's {len(names)} classes ({', '.join(map(repr, names[:8]))}"
                                      f"{', ...' if len(names) > 8 else ''})")
            y[i] = found
        ys.append(y)
    return ys


def _integers(rows) -> np.ndarray:
    long = next((i for i, label in enumerate(rows.labels) if len(label) > 18), None)
    if long is not None:                          # int64 holds 18 digits; no model has 10^18 classes
        raise DataFormatError(f"{rows.path}, line {int(rows.lines[long])}: label {rows.labels[long][:30]} is too large "
                              "for a class index")
    return np.array(rows.labels, dtype=np.int64)


def _as_numbers(labels: list[str]) -> dict | None:
    """{label: its value} if every label is a finite number, else None."""
    values = {}
    for label in labels:
        try:
            value = float(label)
        except ValueError:
            return None
        if value != value or abs(value) == float("inf"):
            return None
        values[label] = value
    return values
