import os
import subprocess
import sys

import numpy as np
import pytest

from softmaxreg import load_fashion_mnist, write_idx
from softmaxreg.cli import main


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the decompressed-data cache of the whole test session out of the user's home."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SOFTMAXREG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def fashion():
    """The bundled Fashion-MNIST, loaded once (verified against its SHA-256 sums)."""
    return load_fashion_mnist()


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """scikit-learn's 8x8 digits (a second real dataset) as four MNIST-format IDX files."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)       # 0..16 -> 0..255
    labels = digits.target.astype(np.uint8)
    folder = tmp_path_factory.mktemp("digits")
    write_idx(folder / "train-images-idx3-ubyte.gz", images[:1500])
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels[:1500])
    write_idx(folder / "t10k-images-idx3-ubyte", images[1500:])          # raw, not gzipped
    write_idx(folder / "t10k-labels-idx1-ubyte", labels[1500:])
    return folder


def cli_refuses(args, root, capsys, message):
    """main(args) exits 2 with one line on stderr holding `message`, no traceback, nothing under root changed."""
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and message in err, err
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def figures(metrics) -> list[list[str]]:
    """The rows of metrics.csv text (or of a History) without the epoch_seconds column: every figure
    that must be the same bits from run to run (epoch_seconds is wall-clock time)."""
    text = metrics if isinstance(metrics, str) else metrics.to_csv()
    rows = [line.split(",") for line in text.splitlines()]
    assert rows and rows[0][-1] == "epoch_seconds", rows[:1]
    return [row[:-1] for row in rows]


def run_cli(*args, cwd=None):
    """`python -m softmaxreg ARGS` in a subprocess, as a user would run it."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTMAXREG_DATA_DIR"}
    return subprocess.run([sys.executable, "-m", "softmaxreg", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="session")
def reference_runs(tmp_path_factory):
    """The lesson's reference run with the default settings, twice with the same seed."""
    root = tmp_path_factory.mktemp("runs")
    results = [run_cli("train", "--out", str(root / name)) for name in ("a", "b")]
    return root, results


@pytest.fixture(scope="session")
def reference_model(reference_runs):
    root, results = reference_runs
    assert results[0].returncode == 0, results[0].stderr
    return root / "a" / "model.safetensors"


@pytest.fixture(scope="module")
def problem():
    """2,000 rows x 20 correlated, shifted features, 4 classes read off the first 4 with noise: the
    data the Dask and array-library tests fit both ways and compare."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20)) * np.linspace(0.5, 3, 20) + 1.0
    y = (X[:, :4] + rng.normal(size=(2000, 4))).argmax(axis=1)
    return X, y


@pytest.fixture(scope="module")
def cluster():
    """(LocalCluster, Client): 2 single-threaded worker processes on 127.0.0.1, no dashboard, closed
    after the module's tests; every wait bounded."""
    distributed = pytest.importorskip("distributed", reason="the Dask engine needs pip install 'softmaxreg[dask]'")
    from softmaxreg.engines import dask_cluster

    with dask_cluster.local_cluster(2) as local, distributed.Client(local, set_as_default=False, timeout=30) as client:
        client.wait_for_workers(2, timeout=30)
        yield local, client


def fits_with_a_worker_killed(client, fit):
    """(undisturbed, disturbed): fit(callbacks) run twice on the client's cluster, the second time
    with one worker killed (SIGKILL) at the end of its second epoch; returns once the nanny has
    restarted it (bounded wait)."""
    import signal

    from softmaxreg import Callback

    pids = list(client.run(os.getpid).values())

    class KillAWorker(Callback):
        def on_epoch_end(self, record, history):
            if record.epoch == 2:
                os.kill(pids[0], signal.SIGKILL)

    with client.as_current():
        undisturbed, disturbed = fit(()), fit([KillAWorker()])
    client.wait_for_workers(2, timeout=30)
    return undisturbed, disturbed


def traced_peak(run):
    """(run(), the peak of memory traced by tracemalloc while it ran, in bytes: NumPy's arrays included)."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
