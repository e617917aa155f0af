"""The Dask engine (softmaxreg.engines.dask): Dask arrays in, the in-memory L-BFGS's model out, the
same bits on any scheduler or worker, on a LocalCluster of 2 worker processes on 127.0.0.1."""

import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest

import softmaxreg as sr
from softmaxreg.cli import main
from softmaxreg.errors import ClusterError, InvalidArgumentError


def test_import_softmaxreg_does_not_import_dask():
    code = ("import sys, numpy as np, softmaxreg as sr, warnings; warnings.simplefilter('ignore');"
            "m = sr.SoftmaxRegression(4, 3); X = np.random.default_rng(0).normal(size=(30, 4));"
            "sr.fit(m, X, np.arange(30) % 3, epochs=1); sr.fit(m, X, np.arange(30) % 3, solver='lbfgs', max_iter=2);"
            "assert not [n for n in sys.modules if n.split('.')[0] in ('dask', 'distributed')], 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_scheduler_without_dask_says_what_to_install(tmp_path, digits_dir):
    code = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None; from softmaxreg.cli import main;"
            f"sys.exit(main(['train', '--solver', 'lbfgs', '--data-dir', {str(digits_dir)!r}, '--scheduler', 'local:2',"
            f"'--out', {str(tmp_path / 'run')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--scheduler: needs Dask" in done.stderr and "pip install 'softmaxreg[dask]'" in done.stderr
    assert not (tmp_path / "run").exists()


distributed = pytest.importorskip("distributed", reason="the Dask engine needs pip install 'softmaxreg[dask]'")
dask = pytest.importorskip("dask", reason="the Dask engine needs pip install 'softmaxreg[dask]'")
da = pytest.importorskip("dask.array", reason="the Dask engine needs pip install 'softmaxreg[dask]'")
from softmaxreg.engines import dask_cluster  # noqa: E402  (after the skip)

from .conftest import fits_with_a_worker_killed  # noqa: E402

N, D, K = 2000, 20, 4                                        # conftest.problem's shape




def fit_lbfgs(X, y, callbacks=(), **options):
    model = sr.SoftmaxRegression(D, K, seed=0, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sr.ConvergenceWarning)
        sr.fit(model, X, y, solver="lbfgs", max_iter=25, weight_decay=1e-3, callbacks=callbacks, **options)
    return model


def close(a, b, rtol=1e-6):
    return np.abs(a.W - b.W).max() <= rtol * np.abs(b.W).max() and np.abs(a.b - b.b).max() <= rtol * np.abs(b.b).max()


def test_cluster_fit_matches_in_memory_and_is_the_same_bits_on_any_scheduler(problem, cluster):
    X, y = problem
    reference = fit_lbfgs(X, y)
    Xd, yd = da.from_array(X, chunks=(300, D)), da.from_array(y, chunks=450)      # uneven, unaligned chunks
    with cluster[1].as_current():
        first, second = fit_lbfgs(Xd, yd), fit_lbfgs(Xd, yd)
    threaded = fit_lbfgs(Xd, yd)
    assert close(first, reference)
    assert np.array_equal(first.W, second.W) and np.array_equal(first.b, second.b)
    assert np.array_equal(first.W, threaded.W) and np.array_equal(first.b, threaded.b)


def test_worker_killed_mid_fit_changes_nothing(problem, cluster):
    X, y = problem
    Xd = da.from_array(X, chunks=(250, D))
    undisturbed, disturbed = fits_with_a_worker_killed(cluster[1],
                                                       lambda callbacks: fit_lbfgs(Xd, y, callbacks, standardize=True))
    assert np.array_equal(undisturbed.W, disturbed.W) and np.array_equal(undisturbed.b, disturbed.b)


@pytest.mark.parametrize("chunks", [(1,) * 40, (7, 1, 20, 12)], ids=["one-row", "uneven"])
def test_small_and_one_row_chunks_match_in_memory(problem, chunks):
    X, y = problem[0][:40], problem[1][:40]
    assert close(fit_lbfgs(da.from_array(X, chunks=(chunks, D)), y), fit_lbfgs(X, y))


def test_soft_targets_sample_and_class_weights_and_standardization_match_in_memory(problem):
    X, y = problem
    soft = np.full((N, K), 0.1)
    soft[np.arange(N), y] = 0.7
    weights = np.linspace(0.5, 2.0, N)
    for targets, options in [(soft, {}), (y, dict(sample_weight=weights, class_weight="balanced", standardize=True))]:
        dask_options = {**options, **({"sample_weight": da.from_array(weights, chunks=600)} if options else {})}
        assert close(fit_lbfgs(da.from_array(X, chunks=(500, D)), da.from_array(targets, chunks=(700, -1)[:targets.ndim]),
                               **dask_options), fit_lbfgs(X, targets, **options))


def test_bad_chunks_are_named(problem):
    X, y = problem
    bad = X.copy()
    bad[950, 3] = np.nan
    with pytest.raises(InvalidArgumentError, match=r"^X: chunk 3 \(rows 900\.\.1199\) contains NaN"):
        fit_lbfgs(da.from_array(bad, chunks=(300, D)), y)
    labels = y.copy()
    labels[1500] = K
    with pytest.raises(InvalidArgumentError, match=r"^y: chunk 5 \(rows 1500\.\.1799\) has labels outside \[0, 3\]"):
        fit_lbfgs(da.from_array(X, chunks=(300, D)), da.from_array(labels, chunks=300))


def test_classifier_fits_dask_arrays_like_numpy_and_predicts_lazily(problem):
    from softmaxreg.sklearn import SoftmaxRegressionClassifier

    X, y = problem
    names = np.array(["ant", "bee", "cat", "dog"])[y]
    Xd, yd = da.from_array(X, chunks=(400, D)), da.from_array(names, chunks=400)
    settings = dict(solver="lbfgs", alpha=1e-3, max_iter=30, standardize=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sr.ConvergenceWarning)
        in_memory = SoftmaxRegressionClassifier(**settings).fit(X, names)
        on_dask = SoftmaxRegressionClassifier(**settings).fit(Xd, yd)
        odd = names.copy()
        odd[1300] = "eel"
        with pytest.raises(InvalidArgumentError, match=r"^y: chunk 3 \(rows 1200\.\.1599\) has labels not among "
                                                       r"the classes: \['eel'\]"):
            SoftmaxRegressionClassifier(**settings).fit(Xd, da.from_array(odd, chunks=400),
                                                        classes=["ant", "bee", "cat", "dog"])
    assert list(on_dask.classes_) == ["ant", "bee", "cat", "dog"]
    assert np.allclose(on_dask.coef_, in_memory.coef_, rtol=1e-6, atol=1e-9 * np.abs(in_memory.coef_).max())
    predicted = on_dask.predict(Xd)
    assert isinstance(predicted, da.Array)
    assert np.array_equal(predicted.compute(), on_dask.predict(X))
    assert np.allclose(on_dask.predict_proba(Xd).compute(), on_dask.predict_proba(X))


def test_classifier_default_penalty_on_dask_counts_the_weights_as_in_memory(problem):
    """alpha="auto" is 1 / (sum of sample weight x class weight): the same sum from Dask arrays."""
    from softmaxreg.sklearn import SoftmaxRegressionClassifier

    X, y = problem
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    for class_weight in (None, "balanced", {0: 3.0}):
        clf = SoftmaxRegressionClassifier(class_weight=class_weight, tol=1e-8, standardize=True, random_state=0)
        in_memory = clf.fit(X, y, sample_weight=w).coef_
        on_dask = clf.fit(da.from_array(X, chunks=(400, D)), da.from_array(y, chunks=400),
                          sample_weight=da.from_array(w, chunks=300)).coef_
        # (alpha=0 moves these weights by 1e-2 of their size)
        np.testing.assert_allclose(on_dask, in_memory, atol=1e-8 * np.abs(in_memory).max())


def test_all_workers_gone_is_a_clear_error(problem, monkeypatch):
    monkeypatch.setattr(dask_cluster, "NO_WORKERS_TIMEOUT", 1.0)
    X, y = problem

    with dask_cluster.local_cluster(1) as cluster, distributed.Client(cluster, set_as_default=False, timeout=30) as client:

        class StopEveryWorker(sr.Callback):
            def on_epoch_end(self, record, history):
                cluster.scale(0)

        with client.as_current(), pytest.raises(ClusterError, match="no worker left"):
            fit_lbfgs(da.from_array(X, chunks=(500, D)), y, [StopEveryWorker()])


def test_cli_all_workers_gone_is_one_line_exit_2(tmp_path, capsys, monkeypatch, digits_dir):
    """A cluster without workers: nothing written. Workers lost after an iteration: the run folder
    holds that iteration's checkpoint, the line says so, and the run resumes from it."""
    from softmaxreg.checkpoint import Checkpoint

    monkeypatch.setattr(dask_cluster, "NO_WORKERS_TIMEOUT", 1.0)
    args = ["train", "--solver", "lbfgs", "--max-iter", "5", "--data-dir", str(digits_dir), "--quiet", "--no-plots"]
    with dask_cluster.local_cluster(0) as empty:
        assert main([*args, "--scheduler", empty.scheduler_address, "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no worker left" in err and "the run folder is as it was" in err
    assert not (tmp_path / "none").exists()

    with dask_cluster.local_cluster(1) as cluster:
        def lose_the_workers(self):
            cluster.scale(0)

        with monkeypatch.context() as patch:
            patch.setattr(Checkpoint, "on_step_end", lose_the_workers, raising=False)
            assert main([*args, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "lost")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no worker left" in err and "resume with: softmaxreg train --resume" in err
    assert sorted(p.name for p in (tmp_path / "lost").iterdir()) == ["checkpoint.safetensors", "config.json",
                                                                     "metrics.csv"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_exit_2_nothing_written(tmp_path, capsys, monkeypatch, digits_dir):
    monkeypatch.setattr(dask_cluster, "CONNECT_TIMEOUT", 2.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "run"
    assert main(["train", "--solver", "lbfgs", "--data-dir", str(digits_dir), "--scheduler", address,
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--scheduler {address}: cannot reach" in err
    assert not out.exists()
    assert main(["train", "--data-dir", str(digits_dir), "--scheduler", "local:1", "--out", str(out)]) == 2
    assert "--scheduler: runs full-batch solvers" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("address, culprit", [
    ("tcp://nohost", "--scheduler tcp://nohost: not a Dask scheduler address"),
    ("foo://x:1", "--scheduler foo://x:1: expected tcp://HOST:PORT"),
])
def test_malformed_scheduler_address_is_one_line_exit_2(tmp_path, capsys, digits_dir, address, culprit):
    out = tmp_path / "run"
    assert main(["train", "--solver", "lbfgs", "--data-dir", str(digits_dir), "--scheduler", address,
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and culprit in err and "Traceback" not in err, err
    assert not out.exists()


def test_cli_local_cluster_run_and_its_resume_are_bit_identical(tmp_path, monkeypatch, digits_dir):
    from softmaxreg.checkpoint import Checkpoint

    environ = dict(os.environ)

    monkeypatch.setattr(dask_cluster, "CHUNK_ROWS", 400)            # 1,500 digits: 4 blocks, uneven
    args = ["train", "--solver", "lbfgs", "--standardize", "--weight-decay", "1e-3", "--max-iter", "4", "--tol", "0",
            "--data-dir", str(digits_dir), "--scheduler", "local:2", "--quiet", "--no-plots"]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0

    def interrupt_after_two(self):
        if self.saved == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Checkpoint, "on_step_end", interrupt_after_two, raising=False)
        assert main([*args, "--out", str(tmp_path / "run")]) == 130
        assert main([*args, "--out", str(tmp_path / "here")]) == 130
    monkeypatch.setattr(dask_cluster, "CHUNK_ROWS", 8192)            # the blocks come from config.json
    assert main(["train", "--resume", str(tmp_path / "run"), "--scheduler", "local:2", "--quiet", "--no-plots"]) == 0
    assert dask.config.get("scheduler", None) is None          # --scheduler's default ends with the command
    assert main(["train", "--resume", str(tmp_path / "here"), "--quiet", "--no-plots"]) == 0   # Dask's threads
    in_process = [a for a in args if a not in ("--scheduler", "local:2")]
    with monkeypatch.context() as patch:
        patch.setattr(Checkpoint, "on_step_end", interrupt_after_two, raising=False)
        assert main([*in_process, "--out", str(tmp_path / "in-process")]) == 130
    assert main(["train", "--resume", str(tmp_path / "in-process"), "--scheduler", "local:2"]) == 2
    for run in ("run", "here"):
        for name in ("model.safetensors", "metrics.csv"):
            assert (tmp_path / run / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), (run, name)
    assert dict(os.environ) == environ                          # the workers' BLAS settings stay theirs


def test_scheduler_with_another_backend_is_refused(tmp_path, capsys, digits_dir):
    pytest.importorskip("torch", reason="the refusal is reached once the backend resolves: needs torch")
    out = tmp_path / "run"
    assert main(["train", "--solver", "lbfgs", "--backend", "torch", "--data-dir", str(digits_dir),
                 "--scheduler", "local:1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scheduler: the workers compute with NumPy, not --backend torch" in err
    assert not out.exists()


@pytest.fixture
def port_8787_taken():
    """Something listening on 127.0.0.1:8787, Dask's dashboard port (this socket, unless another
    process already holds the port)."""
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass                                       # taken already: just as good
        yield


def test_quiet_cluster_run_prints_nothing_and_starts_no_dashboard(tmp_path, port_8787_taken):
    from .conftest import run_cli

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    np.savez(tmp_path / "d.npz", X_train=X, y_train=X[:, :3].argmax(axis=1))
    args = ["train", "--data", str(tmp_path / "d.npz"), "--solver", "lbfgs", "--weight-decay", "1e-2",
            "--scheduler", "local:2", "--no-plots"]
    quiet = run_cli(*args, "--quiet", "--out", str(tmp_path / "quiet"))
    assert quiet.returncode == 0 and (quiet.stdout, quiet.stderr) == ("", "")     # no "Port 8787 is already in use"
    told = run_cli(*args, "--out", str(tmp_path / "told"))
    assert told.returncode == 0 and "dashboard" not in told.stdout and "8787" not in told.stderr, told.stderr
    shown = run_cli(*args, "--dashboard", "--out", str(tmp_path / "shown"))
    assert shown.returncode == 0 and shown.stdout.startswith("dashboard: http://127.0.0.1:"), shown.stdout


def test_dashboard_goes_with_a_local_cluster_only(tmp_path, capsys, digits_dir):
    out = tmp_path / "run"
    assert main(["train", "--solver", "lbfgs", "--data-dir", str(digits_dir), "--dashboard", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dashboard: goes with --scheduler local:N" in err and not out.exists()
