"""Figures of merit for a classifier, from labels and predicted probabilities.

Conventions: y (n,) true class indices in [0, k); pred (n,) predicted indices;
proba (n, k) predicted probabilities, rows summing to 1.

Nothing here is O(k^2) (but confusion_matrix, used up to MAX_MATRIX_CLASSES), and
summary_of_blocks holds one block of logits and its temporaries at a time, never an (n, k) array:
at k = 65,536 and 10,000 rows one float64 copy of the logits is 5 GB.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["accuracy", "top_k_accuracy", "confusion_matrix", "per_class_report", "per_class_counts", "MAX_MATRIX_CLASSES",
           "calibration_bins", "expected_calibration_error", "risk_coverage", "threshold_for_accuracy",
           "in_top_k", "top_confusions", "worst_classes", "TABLE_ROWS", "LOGITS_PER_BLOCK", "block_rows",
           "evaluation_summary", "summary_of_blocks"]


MAX_MATRIX_CLASSES = 50
"""Above this many classes no k x k confusion matrix is built, printed, drawn or reported (k = 2,000
would be 32 MB of counts and a 4-million-cell table); the per-class figures come from O(n + k) counts."""

TABLE_ROWS = 20
"""Rows of the sorted tables (top confusions; the worst classes above MAX_MATRIX_CLASSES classes)."""

LOGITS_PER_BLOCK = 1 << 20
"""evaluation_summary works on blocks of at most this many logits (8 MiB of float64; a few rows
when the classes are many), as model.LOGITS_PER_CHUNK bounds a prediction's."""


def block_rows(num_classes: int, rows: int = 8192) -> int:
    """Rows per block: at most `rows`, and at most LOGITS_PER_BLOCK logits (at least one row)."""
    return max(1, min(rows, LOGITS_PER_BLOCK // max(num_classes, 1)))


def accuracy(y, pred) -> float:
    """Fraction of predictions equal to the labels."""
    y, pred = np.asarray(y), np.asarray(pred)
    return float(np.mean(y == pred)) if y.size else float("nan")


def top_k_accuracy(y, proba, k: int = 2) -> float:
    """Fraction of rows whose true class is among the k most probable (ties broken by index)."""
    proba = np.asarray(proba)
    if not 1 <= k <= proba.shape[1]:
        raise InvalidArgumentError(f"top-k: k must lie in [1, {proba.shape[1]}], got {k}")
    return float(np.mean(in_top_k(y, proba, k)))


def in_top_k(y, proba, k: int) -> np.ndarray:
    """(n,) bool: is y_i among the k most probable classes of row i, ties broken by index, as a
    stable argsort of -proba would rank them? The true class's rank is the number of classes more
    probable plus those as probable at a lower index: O(k) per row, no (n, k) sort or index array."""
    proba, y = np.asarray(proba), np.asarray(y)
    p_true = proba[np.arange(len(y)), y][:, None]                                     # (n, 1)
    rank = np.count_nonzero(proba > p_true, axis=1)
    rank += np.count_nonzero((proba == p_true) & (np.arange(proba.shape[1]) < y[:, None]), axis=1)
    return rank < k


def confusion_matrix(y, pred, num_classes: int) -> np.ndarray:
    """(k, k) counts: entry [i, j] is the number of examples of class i predicted as j."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    return np.bincount(y * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_report(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix.

    precision_j = C_jj / sum_i C_ij, recall_i = C_ii / sum_j C_ij, F1 = 2PR / (P + R);
    a 0/0 is reported as 0 (as scikit-learn's zero_division=0).
    """
    c = np.asarray(confusion, dtype=np.float64)
    return _scores(np.diag(c), c.sum(axis=0), c.sum(axis=1))


def per_class_counts(y, pred, num_classes: int) -> dict[str, np.ndarray]:
    """per_class_report's figures from the labels and predictions directly, in O(n + k) memory (no
    confusion matrix): the diagonal, column sums and row sums are three bincounts."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    counts = [np.bincount(v, minlength=num_classes).astype(np.float64) for v in (y[y == pred], pred, y)]
    return _scores(*counts)


def top_confusions(y, pred, num_classes: int, count: int = TABLE_ROWS) -> list[tuple[int, int, int]]:
    """The `count` most frequent mistakes as (true class, predicted class, examples), most frequent
    first, ties by true then predicted class index: the largest off-diagonal cells of the confusion
    matrix, counted from the mistaken (y, pred) pairs in O(n) (np.unique of y k + pred), never k x k."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    wrong = y != pred
    cells, counts = np.unique(y[wrong] * num_classes + pred[wrong], return_counts=True)   # cells ascending
    order = np.argsort(-counts, kind="stable")[:count]
    return [(int(c // num_classes), int(c % num_classes), int(m)) for c, m in zip(cells[order], counts[order])]


def worst_classes(per_class: list[dict], count: int = TABLE_ROWS) -> list[dict]:
    """The `count` classes with examples (support > 0) of lowest F1, ties: more examples first, then
    class order; `per_class` as evaluation_summary's. Classes without examples have F1 0 by convention
    and say nothing about the model, so at large k they would fill the table: they are left out."""
    present = [(c["f1"], -c["support"], i) for i, c in enumerate(per_class) if c["support"] > 0]
    return [per_class[i] for *_, i in sorted(present)[:count]]


def _scores(tp, predicted, support) -> dict[str, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def calibration_bins(confidence, correct, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-width confidence bins over (0, 1]: for each, its edges, count, mean confidence
    and accuracy (NaN where empty). Bin b holds confidences in (b/n_bins, (b+1)/n_bins]."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=confidence, minlength=n_bins) / count
        acc = np.bincount(which, weights=correct, minlength=n_bins) / count
    return {"lower": edges[:-1], "upper": edges[1:], "count": count, "confidence": mean_conf, "accuracy": acc}


def expected_calibration_error(confidence, correct, n_bins: int = 15) -> float:
    """ECE = sum_b (n_b / n) |accuracy_b - confidence_b| over equal-width confidence bins
    (Guo et al., 2017, "On Calibration of Modern Neural Networks")."""
    bins = calibration_bins(confidence, correct, n_bins)
    used = bins["count"] > 0
    weights = bins["count"][used] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"][used] - bins["confidence"][used])))


def risk_coverage(confidence, correct) -> dict[str, np.ndarray]:
    """Selective prediction: answer only when the top probability reaches a threshold.

    Returns arrays over every distinct threshold t (descending confidences, plus t = 0):
    threshold, coverage (fraction answered, confidence >= t) and accuracy on the answered.
    At t = 0 coverage is 1 and accuracy the plain accuracy.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    hits = np.cumsum(correct[order])
    answered = np.arange(1, len(order) + 1)
    # keep the last index of each run of equal confidences: a threshold admits all of them
    last = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    threshold = np.r_[conf_sorted[last], 0.0]
    coverage = np.r_[answered[last], len(order)] / len(order)
    acc = np.r_[hits[last] / answered[last], hits[-1] / len(order)]
    return {"threshold": threshold, "coverage": coverage, "accuracy": acc}


def threshold_for_accuracy(curve: dict[str, np.ndarray], target: float) -> tuple[float, float, float] | None:
    """(threshold, coverage, accuracy) of the largest coverage whose accuracy reaches `target`."""
    ok = np.flatnonzero(curve["accuracy"] >= target)
    if not ok.size:
        return None
    best = ok[np.argmax(curve["coverage"][ok])]
    return float(curve["threshold"][best]), float(curve["coverage"][best]), float(curve["accuracy"][best])


def evaluation_summary(y, logits, class_names, *, top_k: int = 2, n_bins: int = 15, rows: int | None = None) -> dict:
    """Every figure `softmaxreg evaluate` reports, as plain JSON-ready Python values, from the
    logits (n, k) taken `rows` rows at a time (default block_rows(k)); see summary_of_blocks."""
    logits = np.asarray(logits)
    rows = rows or block_rows(logits.shape[1])
    return summary_of_blocks(y, (logits[s:s + rows] for s in range(0, len(logits), rows)), class_names,
                             top_k=top_k, n_bins=n_bins)


def summary_of_blocks(y, blocks, class_names, *, top_k: int = 2, n_bins: int = 15) -> dict:
    """evaluation_summary from `blocks`, the logits (rows, k) of consecutive row blocks in order,
    together len(y) rows: each block is reduced to per-row figures (prediction, confidence, loss,
    top-k hit; each (n,)) before the next is made, so beyond one block memory is O(n + k). The
    figures are those of the whole matrix at once whatever the blocks (each is row by row).
    The confusion matrix is None above MAX_MATRIX_CLASSES classes; "top_confusions" holds its
    TABLE_ROWS largest off-diagonal cells (metrics.top_confusions) at every k."""
    y = np.asarray(y)
    k = len(class_names)
    top_k = min(top_k, k)
    figures, start = [], 0
    for z in blocks:
        figures.append(_row_figures(y[start:start + len(z)], z, top_k))
        start += len(z)
    if start != len(y):
        raise InvalidArgumentError(f"evaluation: {start} rows of logits for {len(y)} labels")
    if not figures:
        figures.append(_row_figures(y, np.zeros((0, k)), top_k))
    pred, confidence, losses, hits = (np.concatenate(column) for column in zip(*figures))
    correct = pred == y
    confusion = confusion_matrix(y, pred, k) if k <= MAX_MATRIX_CLASSES else None
    report = per_class_report(confusion) if confusion is not None else per_class_counts(y, pred, k)
    bins = calibration_bins(confidence, correct, n_bins)
    return {
        "examples": int(len(y)),
        "accuracy": accuracy(y, pred),
        "cross_entropy": float(losses.mean() if losses.size else np.nan),
        f"top{top_k}_accuracy": float(np.mean(hits)) if hits.size else float("nan"),
        "expected_calibration_error": expected_calibration_error(confidence, correct, n_bins),
        "per_class": [{"class": name, **dict(zip(report, values))}       # tolist: Python floats and ints
                      for name, values in zip(class_names, zip(*(report[key].tolist() for key in report)))],
        "confusion_matrix": None if confusion is None else confusion.tolist(),   # None: see MAX_MATRIX_CLASSES
        "top_confusions": [{"true": class_names[t], "predicted": class_names[p], "count": m}
                           for t, p, m in top_confusions(y, pred, k)],
        "calibration_bins": [{key: (None if np.isnan(v) else v.item()) for key, v in zip(bins, row)}
                             for row in zip(*bins.values())],
    }


def _row_figures(y: np.ndarray, logits, top_k: int) -> tuple[np.ndarray, ...]:
    """(prediction, confidence, cross-entropy, top-k hit) of each row of one block, each (rows,)."""
    from .functional import cross_entropy, softmax

    proba = softmax(logits, axis=1)                                      # (rows, k)
    pred = proba.argmax(axis=1)
    return pred, proba[np.arange(len(pred)), pred], cross_entropy(logits, y, reduction="none"), in_top_k(y, proba, top_k)
