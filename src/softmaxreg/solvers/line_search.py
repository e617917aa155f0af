"""The strong Wolfe line search that the full-batch solvers share (Nocedal and Wright, Numerical
Optimization, 2nd ed., algorithm 3.5 with zoom 3.6 and safeguarded cubic steps).

phi(alpha) -> (f, f', payload) is the objective along a descent direction d from the current point
(f' = g(x + alpha d)'d); f0 and slope = g'd < 0 are its value and derivative at alpha = 0. A step is
accepted when it meets

    f(x + alpha d) <= f0 + c1 alpha g'd     and     |g(x + alpha d)'d| <= c2 |g'd|.
"""

from __future__ import annotations

import math

__all__ = ["strong_wolfe"]


def strong_wolfe(phi, f0: float, slope: float, alpha: float, *, c1: float, c2: float, max_evaluations: int):
    """(alpha, f, payload) of the accepted point, starting from the trial step `alpha` (doubled while
    the function keeps falling). If the interval collapses or `max_evaluations` run out first: the
    best point with sufficient decrease found, else None (the objective is flat to rounding along d)."""
    evaluations = 0
    lo, lo_payload = (0.0, f0, slope), None     # (alpha, f, f') of the best point with sufficient decrease
    hi = None
    while evaluations < max_evaluations:
        if hi is None:
            evaluations += 1
            f, df, payload = phi(alpha)
            if not (math.isfinite(f) and f <= f0 + c1 * alpha * slope and (lo[0] == 0.0 or f < lo[1])):
                hi = (alpha, f, df)
            elif abs(df) <= -c2 * slope:
                return alpha, f, payload
            elif df >= 0:
                hi, (lo, lo_payload) = lo, ((alpha, f, df), payload)
            else:
                (lo, lo_payload), alpha = ((alpha, f, df), payload), 2.0 * alpha
                continue
        else:                               # zoom: the interval between lo and hi holds a Wolfe point
            alpha = _cubic_step(lo, hi)
            if abs(alpha - lo[0]) <= 1e-12 * max(abs(alpha), 1e-300):
                break
            evaluations += 1
            f, df, payload = phi(alpha)
            if not (math.isfinite(f) and f <= f0 + c1 * alpha * slope and f < lo[1]):
                hi = (alpha, f, df)
            elif abs(df) <= -c2 * slope:
                return alpha, f, payload
            else:
                if df * (hi[0] - lo[0]) >= 0:
                    hi = lo
                lo, lo_payload = (alpha, f, df), payload
        if hi is not None and abs(hi[0] - lo[0]) <= 1e-14 * max(lo[0], hi[0]):
            break
    return (lo[0], lo[1], lo_payload) if lo_payload is not None else None


def _cubic_step(lo: tuple, hi: tuple) -> float:
    """The minimiser of the cubic through (alpha, f, f') at lo and hi, kept at least a tenth of the
    interval away from both ends; bisection when the cubic is unusable (no real minimiser, inf)."""
    (a, fa, da), (b, fb, db) = lo, hi
    low, high = min(a, b), max(a, b)
    margin = 0.1 * (high - low)
    if math.isfinite(fb) and math.isfinite(db):
        d1 = da + db - 3 * (fa - fb) / (a - b)
        disc = d1 * d1 - da * db
        if disc >= 0:
            d2 = math.copysign(math.sqrt(disc), b - a)
            denom = db - da + 2 * d2
            if denom != 0:
                x = b - (b - a) * (db + d2 - d1) / denom
                if math.isfinite(x) and low + margin <= x <= high - margin:
                    return x
    return 0.5 * (a + b)
