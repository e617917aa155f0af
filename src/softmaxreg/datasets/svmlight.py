"""The svmlight / libsvm text format, read from scratch: one example a line,

    <label> [qid:<n>] <index>:<value> <index>:<value> ...   [# comment]

`#` starts a comment (a whole line or the end of one), blank lines are skipped, `qid:<n>` after the
label is ignored, indices within a line strictly increase. Indices are 1-based unless an index 0
occurs in the training or held-out file (zero_based="auto", as scikit-learn's load_svmlight_file),
or as told (True: 0-based; False: 1-based, where an index 0 is an error). The features are a
scipy.sparse csr_array of float64 with sorted indices (int32 when the width and the count of
values fit, else int64), n_features wide when given, else one past the training file's largest index.

Labels: every label written as digits (0, 7, 12) makes class indices: classes 0..K-1, K declared
(num_classes) or one past the largest label of the training and held-out files. Any other label
(-1, +1, 2.5, 3.0, spam) makes every label a class name: numbers sorted by value (two spellings
of one value, "1" and "+1", are one class, named as first written), otherwise names sorted as text.
A held-out class that never occurs in training is a class with no training rows.

Parsing: a loop over lines splits off labels and comments; the index:value pairs of a block of
lines are parsed at once by NumPy (~1 s per 35 MB); a block whose fast parse fails is parsed again
line by line to name the first bad line. Memory: the file's bytes about twice, and 32 bytes a
value. Every mistake is a DataFormatError of one line naming the file and line number.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..engines.sparse import scipy_sparse
from ..errors import DataFormatError
from .headers import memory_budget
from .held_out import SVMLIGHT_SUFFIXES, held_out_digest
from .svmlight_labels import class_indices, known_classes

__all__ = ["load_svmlight", "open_svmlight", "SvmlightRows", "read_rows", "zero_based_option", "to_csr",
           "MAX_INDEX", "SUFFIXES"]

SUFFIXES = SVMLIGHT_SUFFIXES
"""File names that say svmlight (datasets.sources: --data FILE.svm)."""

MAX_INDEX = 2**53
"""Indices at or past this are refused: they are parsed as float64, exact below 2^53 (past int32's
2^31, below int64's 2^63), and no model could hold a weight for each of that many columns."""

BYTES_PER_VALUE = 32
"""Peak bytes per index:value pair while reading (int64 indices and float64 values, then the CSR
arrays), beside the file's bytes about twice (the text, then its lines)."""

_INDEX = re.compile(rb"[0-9]+")
_QID = re.compile(rb"qid:[0-9]+")


class SvmlightRows(NamedTuple):
    """One file's rows as written: indices not yet shifted to 0-based, labels as text."""
    indptr: np.ndarray             # int64 (n + 1,)
    indices: np.ndarray            # int64 (nnz,), as written
    values: np.ndarray             # float64 (nnz,)
    labels: list[str]              # (n,)
    lines: np.ndarray              # int64 (n,): the 1-based line number of each row
    path: str


def zero_based_option(value) -> str | bool:
    """zero_based= / --zero-based as "auto", True or False ("yes"/"no" too)."""
    table = {"auto": "auto", True: True, False: False, "yes": True, "no": False}
    if isinstance(value, (bool, str)) and value in table:
        return table[value]
    raise DataFormatError(f"--zero-based: expected auto, yes or no, got {value!r}")


def read_rows(path) -> SvmlightRows:
    """The rows of the svmlight file `path`, each line checked (the module docstring's rules)."""
    p = str(path)
    data = _read_bytes(Path(path))
    pairs_at_most = data.count(b":")            # an upper bound (comments may hold colons): the arrays' size
    need = 2 * len(data) + BYTES_PER_VALUE * pairs_at_most
    if need > memory_budget():
        raise DataFormatError(f"{p}: reading its {pairs_at_most:,} values would take about {need / 2**30:.3g} GiB, "
                              f"more than the memory this machine can give them ({memory_budget() / 2**30:.3g} GiB)")
    lines = data.split(b"\n")
    del data                                     # the lines hold the text now; each block frees its own
    indices, values = np.empty(pairs_at_most, np.int64), np.empty(pairs_at_most, np.float64)
    labels, numbers, counts, filled = [], [], [], 0
    for start in range(0, len(lines), BLOCK_LINES):
        block = _block(p, lines, start, min(start + BLOCK_LINES, len(lines)))
        lines[start:start + BLOCK_LINES] = [b""] * len(lines[start:start + BLOCK_LINES])
        labels += block[0]
        numbers += block[1]
        counts.append(block[2])
        size = len(block[3])
        indices[filled:filled + size], values[filled:filled + size] = block[3], block[4]
        filled += size
    if not labels:
        raise DataFormatError(f"{p}: no examples (empty, or only blank and comment lines); expected lines of "
                              "<label> <index>:<value> ...")
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    return SvmlightRows(indptr, indices[:filled], values[:filled], _decode_labels(p, labels, numbers),
                        np.asarray(numbers, dtype=np.int64), p)


BLOCK_LINES = 1 << 14
"""Lines parsed at once: large enough for NumPy to parse at full speed, small enough that the
block's copies of its text (joined, colons replaced) cost little beside the file."""


def _block(p: str, lines: list[bytes], start: int, stop: int):
    """(labels, line numbers, values per row, indices int64, values float64) of lines[start:stop]."""
    labels, rests, numbers = [], [], []
    for number in range(start + 1, stop + 1):
        line = lines[number - 1]
        hash_at = line.find(b"#")
        parts = (line if hash_at < 0 else line[:hash_at]).split(None, 1)
        if not parts:
            continue
        rest = parts[1] if len(parts) > 1 else b""
        if rest.startswith(b"qid:"):
            qid, *rest = rest.split(None, 1)
            rest = rest[0] if rest else b""
            if not _QID.fullmatch(qid):
                _bad_line(p, number, line, f"expected qid:<integer> after the label, found {_show(qid)}")
        labels.append(parts[0])
        rests.append(rest)
        numbers.append(number)
    counts = np.fromiter((r.count(b":") for r in rests), dtype=np.int64, count=len(rests))
    tokens = np.fromiter((len(r.split()) for r in rests), dtype=np.int64, count=len(rests))
    if (counts != tokens).any():
        i = int(np.argmax(counts != tokens))
        _diagnose(p, numbers[i], rests[i])
    parsed = _parse_numbers(b" ".join(rests).replace(b":", b" "), 2 * int(counts.sum()))
    if parsed is None:
        _first_bad_line(p, numbers, rests)
    indices = _checked(p, parsed[0::2], parsed[1::2], counts, numbers, rests)
    return labels, numbers, counts, indices, parsed[1::2]


def _read_bytes(p: Path) -> bytes:
    try:
        size = p.stat().st_size
        if 2 * size > memory_budget():
            raise DataFormatError(f"{p}: {size / 2**30:.3g} GiB of text, more than the memory this machine can give "
                                  f"its parse ({memory_budget() / 2**30:.3g} GiB for about 2 copies)")
        return p.read_bytes()
    except OSError as e:
        raise DataFormatError(f"{p}: cannot read: {e.strerror or e}") from None


def _parse_numbers(text: bytes, expected: int) -> np.ndarray | None:
    """The `expected` numbers of `text` (float64), or None if it holds anything else."""
    if expected == 0:                              # NumPy reads whitespace alone as [-1.0]
        return np.zeros(0)
    try:
        numbers = np.fromstring(text, dtype=np.float64, sep=" ")
    except ValueError:                             # a token that is not a number
        return None
    return numbers if numbers.size == expected else None


def _checked(p: str, idx, values, counts, numbers: list[int], rests: list[bytes]) -> np.ndarray:
    """The int64 indices of a block whose indices are integers in [0, MAX_INDEX), increasing within
    each line, and whose values are finite (else the first bad line's error)."""
    row_of = np.repeat(np.arange(len(counts)), counts)
    bad = (idx != np.floor(idx)) | (idx < 0) | (idx >= MAX_INDEX) | ~np.isfinite(values)
    bad[1:] |= (row_of[1:] == row_of[:-1]) & (idx[1:] <= idx[:-1])
    if bad.any():
        i = row_of[int(np.argmax(bad))]
        _diagnose(p, numbers[i], rests[i])
    return idx.astype(np.int64)


def _first_bad_line(p: str, lines: list[int], rests: list[bytes]):
    for number, rest in zip(lines, rests):
        _diagnose(p, number, rest)
    raise DataFormatError(f"{p}: not readable as svmlight (no single line is at fault)")


def _diagnose(p: str, number: int, rest: bytes) -> None:
    """Raise the DataFormatError of the first bad index:value pair of the line `rest` (after its
    label and qid), if it has one."""
    previous = None
    for token in rest.split():
        index, colon, value = token.partition(b":")
        if not colon or not index or not value or b":" in value:
            _bad_line(p, number, rest, f"expected <index>:<value>, found {_show(token)}")
        if index.startswith(b"-") and _INDEX.fullmatch(index[1:]):
            _bad_line(p, number, rest, f"negative feature index {_show(index)}")
        if not _INDEX.fullmatch(index):
            _bad_line(p, number, rest, f"expected a non-negative integer index, found {_show(index)}")
        if int(index) >= MAX_INDEX:
            _bad_line(p, number, rest, f"index {_show(index)} does not fit the column index type: indices must be "
                      f"below 2^53 (int64 indices, parsed exactly as float64)")
        try:
            number_value = float(value if b"_" not in value else b"x")     # float() takes 1_000; NumPy does not
        except ValueError:
            _bad_line(p, number, rest, f"expected a number after {_show(index)}:, found {_show(value)}")
        if number_value != number_value or abs(number_value) == float("inf"):
            _bad_line(p, number, rest, f"feature {_show(index)} is {_show(value)}; expected a finite number")
        if previous is not None and int(index) <= previous:
            kind = "repeated" if int(index) == previous else "out of order"
            _bad_line(p, number, rest, f"feature index {int(index)} {kind} (after {previous}); indices must "
                      "strictly increase within a line")
        previous = int(index)


def _bad_line(p: str, number: int, text: bytes, why: str):
    raise DataFormatError(f"{p}, line {number}: {why}")


def _show(token: bytes, width: int = 40) -> str:
    text = token.decode("utf-8", "replace")
    return repr(text[:width] + ("..." if len(text) > width else ""))


def _decode_labels(p: str, labels: list[bytes], lines: list[int]) -> list[str]:
    try:
        text = b"\n".join(labels).decode("utf-8")
    except UnicodeDecodeError:
        bad = next(i for i, label in enumerate(labels) if not _utf8(label))
        raise DataFormatError(f"{p}, line {lines[bad]}: the label is not UTF-8 text") from None
    decoded = text.split("\n")
    multi = next((i for i, label in enumerate(decoded) if "," in label), None)
    if multi is not None:
        raise DataFormatError(f"{p}, line {lines[multi]}: label {decoded[multi]!r} names several classes; "
                              "multi-label files are not supported (one class per line)")
    colon = next((i for i, label in enumerate(decoded) if ":" in label), None)
    if colon is not None:
        raise DataFormatError(f"{p}, line {lines[colon]}: expected a label first, found {decoded[colon]!r}")
    return decoded


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def to_csr(rows: SvmlightRows, shift: int, width: int, where_width: str):
    """The csr_array (n, width) of `rows`, indices shifted down by `shift` (1: a 1-based file);
    an index past `width` is an error naming its line and `where_width` (what set the width)."""
    sp = scipy_sparse(rows.path)

    bad = (rows.indices < shift) | (rows.indices >= width + shift)
    if bad.any():
        at = int(np.argmax(bad))
        row = int(np.searchsorted(rows.indptr, at, side="right")) - 1
        written = int(rows.indices[at])
        why = ("feature index 0 in a 1-based file (pass --zero-based yes if its indices start at 0)" if written < shift
               else f"feature index {written} is past the {width:,} features of {where_width}"
                    " (--n-features N sets the width of both files)")
        raise DataFormatError(f"{rows.path}, line {int(rows.lines[row])}: {why}")
    index_type = np.int32 if max(width, rows.indices.size) < 2**31 else np.int64
    indices = rows.indices.astype(index_type)
    indices -= shift
    X = sp.csr_array((rows.values, indices, rows.indptr.astype(index_type)),
                     shape=(len(rows.labels), width))
    X.has_sorted_indices = True                   # checked: indices strictly increase within each line
    return X


def load_svmlight(path, val_path=None, *, n_features=None, zero_based="auto", num_classes=None, class_names=None):
    """(X, y, X_val, y_val, class names or None) of a training file and an optional held-out one
    (X_val, y_val None without it): X csr_arrays of one width, y int64 class indices; names None for
    labels written as digits (classes 0..K-1: the caller counts K), else the sorted class names.
    class_names: the classes of a model judged on the file(s), which labels that are not digits name."""
    return _load_svmlight(path, val_path, n_features, zero_based, num_classes, class_names)[:5]


def _load_svmlight(path, val_path, n_features, zero_based, num_classes, class_names):
    """load_svmlight's (X, y, X_val, y_val, names) and the first feature index it read the files with."""
    zero_based = zero_based_option(zero_based)
    if n_features is not None and not 1 <= n_features <= MAX_INDEX:
        raise DataFormatError(f"--n-features {n_features}: expected 1..2^53 (the columns an index can name)")
    files = [read_rows(path)] + ([read_rows(val_path)] if val_path is not None else [])
    if zero_based == "auto":
        zero_based = any(rows.indices.size and int(rows.indices.min()) == 0 for rows in files)
    shift = 0 if zero_based else 1
    if n_features is None:
        train = files[0]
        width = int(train.indices.max()) + 1 - shift if train.indices.size else 0
        where = f"the training file {train.path}"
    else:
        width, where = n_features, f"--n-features {n_features}"
    Xs = [to_csr(rows, shift, width, where) for rows in files]
    if class_names is not None and tuple(class_names) != tuple(map(str, range(len(class_names)))):
        ys, names = known_classes(files, tuple(class_names)), tuple(class_names)
    else:
        ys, names = class_indices(files, num_classes)
    return Xs[0], ys[0], *(Xs[1:] or [None]), *(ys[1:] or [None]), names, shift


def open_svmlight(p: Path, val_data, labels: bool, num_classes, n_features, zero_based, class_names=None):
    """The ImageDataset of an svmlight training file and its optional held-out file (datasets.sources)."""
    from .splits import dataset, digest

    for f in (p, *([Path(val_data)] if val_data is not None else [])):
        if not f.is_file():
            raise DataFormatError(f"{f}: svmlight file does not exist")
    X, y, X_val, y_val, names, base = _load_svmlight(p, val_data, n_features, zero_based, num_classes, class_names)
    splits = {"train": (X, y if labels else None, str(p))}
    sums = digest(p)
    if X_val is not None:
        splits["test"] = (X_val, y_val if labels else None, str(val_data))
        sums.update(held_out_digest(digest(Path(val_data))))
    return dataset(p, sums, splits, names if labels else None, labels, num_classes, index_base=base)
