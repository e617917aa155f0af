"""The products in row blocks, and the per-machine choice of the block: override, cache, measurement."""

import json

import numpy as np
import pytest

from softmaxreg import InvalidArgumentError
from softmaxreg.engines import gemm


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A process that has not decided its blocking yet, with its cache in tmp_path/cache and
    no override; counts the measurements it makes."""
    monkeypatch.setattr(gemm, "_decision", None)
    monkeypatch.setenv("SOFTMAXREG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(gemm.ROWS_ENV, raising=False)
    measure, calls = gemm._measure, []

    def counted():
        calls.append(1)
        return measure()
    monkeypatch.setattr(gemm, "_measure", counted)
    return calls


@pytest.mark.parametrize("rows", gemm.CANDIDATES)
@pytest.mark.parametrize("n", [1, 37, 64, 128, 256, 300])
def test_blocked_products_equal_the_plain_product(rows, n):
    """For n below, equal to, and not a multiple of the block, both products equal the plain one
    to float32 rounding (the gradient is summed block by block, so not bit for bit)."""
    rng = np.random.default_rng(n)
    x = rng.integers(0, 256, size=(n, 784)).astype(np.float32)
    W = rng.normal(0, 0.01, size=(784, 10)).astype(np.float32)
    Gt = rng.normal(0, 0.01, size=(10, n)).astype(np.float32)      # G arrives as a (k, n) buffer's transpose
    z = gemm.matmul_rows(x, W, np.empty((n, 10), np.float32), rows=rows)
    np.testing.assert_allclose(z, x.astype(np.float64) @ W, rtol=1e-5, atol=1e-3)
    dW = gemm.matmul_t_rows(x, Gt.T, np.empty((784, 10), np.float32), np.empty((784, 10), np.float32), rows=rows)
    np.testing.assert_allclose(dW, x.T.astype(np.float64) @ Gt.T, rtol=1e-5, atol=1e-3)


def test_products_use_the_process_choice(fresh, monkeypatch):
    monkeypatch.setenv(gemm.ROWS_ENV, "64")
    matmul, shapes = np.matmul, []
    monkeypatch.setattr(np, "matmul", lambda a, b, out: shapes.append(a.shape) or matmul(a, b, out=out))
    x = np.ones((130, 3), np.float32)
    gemm.matmul_rows(x, np.ones((3, 2), np.float32), np.empty((130, 2), np.float32))
    gemm.matmul_t_rows(x, np.ones((130, 2), np.float32), np.empty((3, 2), np.float32), np.empty((3, 2), np.float32))
    assert shapes == [(64, 3), (64, 3), (2, 3), (3, 64), (3, 64), (3, 2)]


@pytest.mark.parametrize("value, rows", [("0", 0), ("64", 64), (" 100 ", 100)])
def test_env_override_is_honoured(fresh, monkeypatch, tmp_path, value, rows):
    monkeypatch.setenv(gemm.ROWS_ENV, value)
    assert gemm.block_rows() == rows
    info = gemm.blocking_info()
    assert (info["rows"], info["source"], info["file"]) == (rows, "env", None)
    assert not fresh and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "6_4", "64 rows"])
def test_bad_env_override_is_refused(fresh, monkeypatch, value):
    monkeypatch.setenv(gemm.ROWS_ENV, value)
    with pytest.raises(InvalidArgumentError) as err:
        gemm.block_rows()
    message = str(err.value)
    assert message.startswith(f"{gemm.ROWS_ENV}: expected an integer >= 0") and repr(value) in message
    assert "\n" not in message


def test_choice_is_measured_once_cached_and_reused(fresh, monkeypatch, tmp_path):
    first = gemm.blocking_info()
    assert first["source"] == "measured" and first["rows"] in gemm.CANDIDATES and len(fresh) == 1
    assert set(first["median_us"]) == set(first["ratio"]) == {str(rows) for rows in gemm.CANDIDATES}
    files = list((tmp_path / "cache").iterdir())
    assert [str(f) for f in files] == [first["file"]]
    assert json.loads(files[0].read_text())["rows"] == first["rows"]

    monkeypatch.setattr(gemm, "_decision", None)           # a new process on the same machine
    second = gemm.blocking_info()
    assert len(fresh) == 1 and second["source"] == "cached"
    assert {k: v for k, v in second.items() if k != "source"} == {k: v for k, v in first.items() if k != "source"}
    assert list((tmp_path / "cache").iterdir()) == files

    files[0].write_text("{damaged")                          # a damaged record is measured again, and replaced
    monkeypatch.setattr(gemm, "_decision", None)
    assert gemm.blocking_info()["source"] == "measured" and len(fresh) == 2
    assert json.loads(files[0].read_text())["key"] == first["key"]


def test_another_machine_measures_again(fresh, monkeypatch, tmp_path):
    first = gemm.blocking_info()
    monkeypatch.setattr(gemm, "_decision", None)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")      # another BLAS kernel: another key
    second = gemm.blocking_info()
    assert second["source"] == "measured" and len(fresh) == 2
    assert second["key"]["env"] == {"OPENBLAS_CORETYPE": "Haswell"} and second["key"] != first["key"]
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_cache_off_measures_without_writing(fresh, monkeypatch, tmp_path):
    monkeypatch.setenv("SOFTMAXREG_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    info = gemm.blocking_info()
    assert (info["source"], info["file"]) == ("measured", None) and len(fresh) == 1
    assert not any(tmp_path.iterdir())


def test_first_writer_wins(fresh, monkeypatch, tmp_path):
    """Two processes that measured at once: the second to finish takes the first one's choice."""
    theirs = {"key": gemm.machine_key(), "rows": 128, "median_us": None, "ratio": None, "measure_s": 0.0}
    ours = {**theirs, "rows": 0}
    path = tmp_path / "cache" / "gemm-blocking-x.json"
    assert gemm._publish(path, theirs) is theirs
    assert gemm._publish(path, ours)["rows"] == 128
    assert json.loads(path.read_text())["rows"] == 128
    assert [p.name for p in path.parent.iterdir()] == [path.name]          # no temporary file left
