"""How many classes integer labels name: 0..max label, unless declared (`num_classes`, --num-classes).

Labels without class names are class indices, so their largest value says how many classes there
are: labels 0..9 are 10 classes, and a label never seen (0..max) is still a class (the model gets a
row of weights for it). One stray label (70000 among 0..9) would make a model and every per-class
figure 7,000 times larger than the data support, so an implied count is refused unless the data
support it:

- a largest label of MAX_CLASSES or more is refused (is this the label column?);
- above SPARSE_BOUND classes, fewer than half of 0..max occurring in the training labels is refused.

Declaring the count (`num_classes=K`, --num-classes K) accepts any K >= 2: the classes are 0..K-1
and a label at or past K is an error naming its file. Counting the labels that occur costs O(n + k)
time and O(k) memory (k < MAX_CLASSES), in blocks of rows: a memory-mapped label file stays on disk.
"""

from __future__ import annotations

import operator

import numpy as np

from ..errors import DataFormatError, InvalidArgumentError

__all__ = ["MAX_CLASSES", "SPARSE_BOUND", "implied_classes", "named_classes", "check_num_classes"]

MAX_CLASSES = 65536
"""The most classes a data source without class names may imply by its largest label (0..65535):
a larger label is refused as a mistake rather than turned into that many classes."""

SPARSE_BOUND = 16
"""Up to this many implied classes any labels are accepted (a few unused classes cost little);
above it, at least half of 0..max label must occur in the training labels."""

COUNT_ROWS = 1 << 20
"""Labels counted per block (8 MiB of int64 at most besides the O(k) counts)."""


def check_num_classes(num_classes) -> int | None:
    """`num_classes` as an int >= 2, or None; anything else is an InvalidArgumentError."""
    if num_classes is None:
        return None
    try:
        k = operator.index(num_classes)
    except TypeError:
        raise InvalidArgumentError(f"num_classes: expected an integer >= 2, got {num_classes!r}") from None
    if isinstance(num_classes, bool) or k < 2:
        raise InvalidArgumentError(f"num_classes: expected an integer >= 2, got {num_classes!r}")
    return k


def implied_classes(train, others=(), num_classes=None) -> int:
    """The number of classes of integer labels without names: `num_classes` if declared, else
    max label + 1 (at least 2) when the labels support it (the module's rule; DataFormatError of one
    line with the numbers otherwise). `train` and each of `others` are (labels, where); only the
    training labels count as evidence, every split's largest label names classes."""
    declared = check_num_classes(num_classes)
    if declared is not None:
        return declared
    splits = [(y, where) for y, where in (train, *others) if y is not None and y.size]
    if not splits:
        return 2
    tops = [(int(y.max()), where) for y, where in splits]
    top, at = max(tops, key=lambda t: t[0])
    hint = "pass --num-classes K (num_classes=K) if K classes are meant"
    if top >= MAX_CLASSES:
        raise DataFormatError(f"{at}: the largest label is {top}; without class names, labels are class indices "
                              f"below {MAX_CLASSES} (is this the label column?); {hint}")
    k = max(2, top + 1)
    y = train[0]
    if k <= SPARSE_BOUND or y is None or not y.size or min(int(s.min()) for s, _ in splits) < 0:
        return k                                  # a negative label is refused by the range check after
    seen = np.zeros(k, dtype=bool)
    for start in range(0, len(y), COUNT_ROWS):
        block = np.asarray(y[start:start + COUNT_ROWS])
        seen[np.unique(block[block < k])] = True
    distinct = int(seen.sum())
    if 2 * distinct < k:
        raise DataFormatError(f"{at}: the largest label is {top} but only {distinct} distinct labels occur in the "
                              f"{len(y)} training rows; classes are 0..max label (fewer than half of them occur): {hint}")
    return k


def named_classes(names: tuple[str, ...], num_classes, where) -> tuple[str, ...]:
    """Class names the data give, checked against a declared `num_classes` (they must agree)."""
    declared = check_num_classes(num_classes)
    if declared is not None and declared != len(names):
        raise DataFormatError(f"{where}: names {len(names)} classes, but {declared} are declared (num_classes: "
                              "--num-classes, or the classes of the model judged)")
    return tuple(names)
