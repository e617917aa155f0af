"""Issue 23 part 1: `--scheduler local:N` is capped by the machine, and every process it starts is gone
when the command ends, however it ends (done, an error, SIGTERM: exit 143). Clusters on 127.0.0.1 only,
each run bounded by a subprocess timeout."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from softmaxreg.cli import main
from softmaxreg.errors import InvalidArgumentError

from .test_bad_inputs import snapshot

pytest.importorskip("distributed", reason="--scheduler local:N needs pip install 'softmaxreg[dask]'")
psutil = pytest.importorskip("psutil", reason="the process check reads the process table with psutil")
from softmaxreg.engines import dask_cluster  # noqa: E402  (after the skip)


def test_more_workers_than_cores_are_refused(tmp_path, digits_dir, capsys):
    cores, _ = dask_cluster.machine_limits()
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["train", "--solver", "lbfgs", "--data", str(digits_dir), "--scheduler", f"local:{cores + 1}",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"--scheduler local:{cores + 1}: this machine has {cores} cores" in err and f"N <= {cores}" in err
    assert snapshot(tmp_path) == before
    with pytest.raises(InvalidArgumentError, match=f"this machine has {cores} cores"):
        with dask_cluster.connect(f"local:{cores + 1}"):
            pass


def test_workers_are_capped_by_memory_too(monkeypatch):
    monkeypatch.setattr(dask_cluster, "machine_limits", lambda: (64, 3 * dask_cluster.MIN_WORKER_MEMORY))
    with pytest.raises(InvalidArgumentError, match=r"local:4: this machine has 64 cores and .* GiB of memory .* N <= 3"):
        dask_cluster.check_local_workers(4, "local:4")
    dask_cluster.check_local_workers(3, "local:3")


SCRIPT = """
import contextlib, os, signal, sys
from softmaxreg.cli import main
from softmaxreg.engines import dask_cluster
from softmaxreg.errors import SoftmaxRegError

mode, mark, data, out = sys.argv[1:]
real = dask_cluster.connect

def marked():
    found = 0
    for pid in os.listdir("/proc"):
        try:
            found += pid.isdigit() and mark.encode() in open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            pass
    return found

@contextlib.contextmanager
def connect(*args, **kwargs):
    with real(*args, **kwargs) as client:
        print("processes while the cluster runs:", marked(), file=sys.stderr, flush=True)
        if mode == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        elif mode == "error":
            raise SoftmaxRegError("stopped by the test")
        yield client

dask_cluster.connect = connect
sys.exit(main(["train", "--solver", "lbfgs", "--max-iter", "2", "--data", data, "--scheduler", "local:1",
               "--quiet", "--no-plots", "--out", out]))
"""


def _marked_processes(mark: str) -> list:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("SOFTMAXREG_TEST_MARK") == mark:
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("mode, code", [("done", 0), ("error", 2), ("sigterm", 143)])
def test_no_worker_process_survives_the_command(tmp_path, digits_dir, mode, code):
    mark = uuid.uuid4().hex
    env = {**os.environ, "SOFTMAXREG_TEST_MARK": mark}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode, mark, str(digits_dir), str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == code, done.stderr
    running = int(done.stderr.split("processes while the cluster runs: ")[1].split()[0])
    assert running >= 2, done.stderr                      # this process and at least its worker: the check sees them
    gone, alive = psutil.wait_procs(_marked_processes(mark), timeout=20)   # a helper may take a moment to see EOF
    assert not alive, [p.cmdline() for p in alive]
    assert "leaked semaphore" not in done.stderr and "Traceback" not in done.stderr, done.stderr
