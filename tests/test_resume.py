"""Interrupted runs resume bit-identically; signals, divergence and --resume errors."""

import os
import signal
import subprocess
import sys

import pytest

from softmaxreg import load_model
from softmaxreg.cli import CHECKPOINT, main

from .conftest import figures

ARGS = ["--epochs", "6", "--momentum", "0.9", "--schedule", "cosine", "--quiet", "--no-plots"]


STEPS_PER_EPOCH = 235                                 # 60,000 training images in batches of 256

# `softmaxreg train` that signals itself at the end of its STEP-th training step (a minibatch, or an
# L-BFGS iteration) counted from its start: the step after epoch e's checkpoint is step
# e * STEPS_PER_EPOCH + 1. Where the interruption falls is then exact, whatever the machine's load.
SIGNAL_AT_STEP = """
import os, signal, sys
from softmaxreg.checkpoint import Checkpoint
from softmaxreg.cli import main

at, sig, steps = int(sys.argv[1]), signal.Signals[sys.argv[2]], 0

def on_step_end(self):
    global steps
    steps += 1
    if steps == at:
        os.kill(os.getpid(), sig)

Checkpoint.on_step_end = on_step_end
sys.exit(main(sys.argv[3:]))
"""


def start(out, args=ARGS, signal_at=None):
    """`softmaxreg train` in a child process; signal_at=(step, signal name) interrupts it there."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTMAXREG_DATA_DIR"}
    head = ["-m", "softmaxreg"] if signal_at is None else ["-c", SIGNAL_AT_STEP, str(signal_at[0]), signal_at[1]]
    return subprocess.Popen([sys.executable, *head, "train", "--out", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    proc = start(out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return out


def assert_same_run(a, b):
    ma, mb = load_model(a / "model.safetensors"), load_model(b / "model.safetensors")
    assert ma.W.tobytes() == mb.W.tobytes() and ma.b.tobytes() == mb.b.tobytes()
    assert figures((a / "metrics.csv").read_text()) == figures((b / "metrics.csv").read_text())


@pytest.mark.parametrize("after_epoch", [1, 4])
def test_sigkill_between_epochs_then_resume_is_bit_identical(uninterrupted, tmp_path, after_epoch):
    out = tmp_path / "run"
    proc = start(out, signal_at=(after_epoch * STEPS_PER_EPOCH + 1, "SIGKILL"))
    assert proc.wait(timeout=300) == -signal.SIGKILL
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + after_epoch
    assert not (out / "model.safetensors").exists()
    (out / ".checkpoint.safetensors.abc123.tmp").write_bytes(b"half")    # as if killed mid-write
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert_same_run(uninterrupted, out)


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_mid_epoch_saves_says_how_to_resume_and_resumes_exactly(uninterrupted, tmp_path, sig, code):
    out = tmp_path / "run"
    proc = start(out, signal_at=(2 * STEPS_PER_EPOCH + 100, sig))         # inside epoch 3
    assert proc.wait(timeout=300) == code
    err = proc.stderr.read().strip().splitlines()
    assert len(err) == 1 and f"softmaxreg train --resume {out}" in err[0] and "Traceback" not in err[0]
    assert (out / CHECKPOINT).exists() and not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert_same_run(uninterrupted, out)


LBFGS_ARGS = ["--solver", "lbfgs", "--standardize", "--weight-decay", "1e-3", "--max-iter", "12", "--tol", "0",
              "--quiet", "--no-plots"]


def test_lbfgs_killed_between_iterations_resumes_bit_identically(tmp_path):
    """The L-BFGS history pairs, point, gradient and iteration count are checkpointed: a run killed
    after iteration 4 and resumed ends with the uninterrupted run's weights and metrics.csv."""
    full = start(tmp_path / "full", LBFGS_ARGS)
    assert full.wait(timeout=300) == 0, full.stderr.read()
    assert "stopped before max|gradient| <= tol=0" in full.stderr.read()       # max_iter reached: said once
    out = tmp_path / "run"
    proc = start(out, LBFGS_ARGS, signal_at=(5, "SIGKILL"))                  # inside iteration 5
    assert proc.wait(timeout=300) == -signal.SIGKILL
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 4
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert_same_run(tmp_path / "full", out)
    assert len((out / "metrics.csv").read_text().splitlines()) == 13           # header + one row per iteration


def test_resuming_a_finished_run_changes_nothing(uninterrupted, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(uninterrupted, out)
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert_same_run(uninterrupted, out)


def test_resume_errors(tmp_path, digits_dir, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no readable run config.json" in capsys.readouterr().err
    run = tmp_path / "r"
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(run), "--epochs", "1", "--quiet",
                 "--no-plots"]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 2
    assert "drop --epochs" in capsys.readouterr().err
    (run / CHECKPOINT).unlink()
    assert main(["train", "--resume", str(run)]) == 2
    assert f"no {CHECKPOINT}" in capsys.readouterr().err


def test_divergence_stops_with_exit_3_and_keeps_the_good_model(tmp_path, digits_dir, capsys):
    run = tmp_path / "r"
    base = ["train", "--data-dir", str(digits_dir), "--out", str(run), "--quiet", "--no-plots"]
    assert main(base + ["--epochs", "2"]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(base + ["--lr", "1e6", "--overwrite"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diverged at epoch 1, step" in err and "smaller learning rate" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before      # nothing touched
    for lr in ("0.1", "1"):
        assert main(base + ["--lr", lr, "--overwrite", "--epochs", "3"]) == 0
