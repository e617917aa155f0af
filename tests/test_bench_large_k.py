"""benchmarks/large_k.py's pieces on a small problem: the data, the exact objective, each contender
(no timing asserted)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

spec = importlib.util.spec_from_file_location("bench_large_k", Path(__file__).parents[1] / "benchmarks" / "large_k.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_the_problem_is_seeded_and_has_every_class():
    X, y = bench.make_problem(300, 8, 120, seed=4)
    again = bench.make_problem(300, 8, 120, seed=4)
    assert X.dtype == np.float32 and X.shape == (300, 8) and y.shape == (300,)
    assert X.tobytes() == again[0].tobytes() and np.array_equal(y, again[1])
    assert np.array_equal(np.unique(y), np.arange(120))
    with pytest.raises(ValueError, match="at least as many rows"):
        bench.make_problem(10, 3, 20)


def test_the_exact_objective_is_the_written_out_formula():
    X, y = bench.make_problem(200, 6, 30, seed=1)
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(6, 30)), rng.normal(size=30)
    Z = X.astype(np.float64) @ W + b
    expected = np.mean(logsumexp(Z, axis=1) - Z[np.arange(200), y]) + 0.5 * 0.01 * np.sum(W * W)
    assert bench.exact_objective(X, y, W, b, 0.01) == pytest.approx(expected, rel=1e-12)


def test_ours_reaches_scikit_learns_objective():
    pytest.importorskip("sklearn")
    X, y = bench.make_problem(400, 10, 64, seed=3)
    _, W, b, iterations = bench.sklearn_lbfgs(X, y)
    target = bench.exact_objective(X, y, W, b, 1.0 / 400)
    _, model, ours, evaluations, reached = bench.ours_lbfgs(X, y, 64, target)
    assert reached and iterations >= 1 and evaluations >= ours >= 1
    assert bench.exact_objective(X, y, model.W, model.b, 1.0 / 400) <= target * (1 + 1e-6)
    rows = bench.lbfgs_rows(X, y, 64, 1)
    assert len(rows) == 2 and all(row.startswith("| ") and row.endswith(" |") for row in rows)


def test_both_epochs_run():
    pytest.importorskip("torch")
    X, y = bench.make_problem(300, 8, 70, seed=5)
    assert bench.ours_epoch(X, y, 70, 64, 0.1) > 0
    assert bench.torch_epoch(X, y, 70, 64, 0.1) > 0
    assert bench.median_range([3.0, 1.0, 2.0]) == "2.000 (1.000-3.000)"
    assert bench.parse_size("20000x1024") == (20000, 1024)
