"""The run folder under misuse: one run at a time, failed writes and interruptions that leave either
the previous run or a resumable one, the same bytes for the same seed, and the user's umask."""

import io
import json
import os
import resource
import stat
import subprocess
import sys

import pytest

from softmaxreg.callbacks import ConsoleLog
from softmaxreg.cli import CHECKPOINT, main

from .conftest import figures

DIGITS_RUN = ["--epochs", "2", "--momentum", "0.9", "--quiet"]


def train_process(digits_dir, out, *args, preexec_fn=None, umask=-1, env=None):
    """`softmaxreg train` on the digits in a child process."""
    env = {**{k: v for k, v in os.environ.items() if k != "SOFTMAXREG_DATA_DIR"}, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "softmaxreg", "train", "--data-dir", str(digits_dir),
                             "--out", str(out), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=preexec_fn, umask=umask)


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_two_trains_into_one_folder_started_together_exactly_one_runs(digits_dir, tmp_path):
    out = tmp_path / "run"
    procs = [train_process(digits_dir, out, "--epochs", "30", "--no-plots", "--quiet", "--seed", str(seed))
             for seed in (1, 2)]
    results = [(proc.wait(timeout=300), proc.stderr.read()) for proc in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    (winner,) = [seed for seed, (code, _) in zip((1, 2), results) if code == 0]
    (refusal,) = [err for code, err in results if code == 2]
    assert refusal.count("\n") == 1 and "Traceback" not in refusal
    # together, the second finds the folder claimed; had the first already finished, it holds a run
    assert "another softmaxreg run is using this folder" in refusal or "already holds a run" in refusal
    assert json.loads((out / "config.json").read_text())["settings"]["seed"] == winner
    assert len((out / "metrics.csv").read_text().splitlines()) == 31
    assert sorted(files(out)) == ["checkpoint.safetensors", "config.json", "metrics.csv", "model.safetensors"]


def file_size_limit(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_failed_write_over_a_run_keeps_that_run_whole(digits_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(out), *DIGITS_RUN]) == 0
    before = files(out)
    proc = train_process(digits_dir, out, *DIGITS_RUN, "--seed", "5", "--overwrite", preexec_fn=file_size_limit(1000))
    assert proc.wait(timeout=300) == 2
    err = proc.stderr.read()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{out / CHECKPOINT}: cannot write: File too large; no epoch had finished" in err
    assert files(out) == before                        # no file replaced or removed, no temporary file left


def test_a_failed_final_write_leaves_a_resumable_run_and_no_temporary_file(digits_dir, tmp_path):
    out = tmp_path / "run"
    # 16 kB: enough for the checkpoint, config.json, metrics.csv and the model, not for curves.png
    proc = train_process(digits_dir, out, *DIGITS_RUN, preexec_fn=file_size_limit(16_000))
    assert proc.wait(timeout=300) == 2
    err = proc.stderr.read()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (f"curves.png: cannot write: File too large; the checkpoint of epoch 2 is in {out}; "
            f"resume with: softmaxreg train --resume {out}") in err
    assert sorted(files(out)) == ["checkpoint.safetensors", "config.json", "metrics.csv"]    # no model either
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert sorted(files(out)) == ["checkpoint.safetensors", "config.json", "curves.png", "metrics.csv",
                                  "misclassified.png", "model.safetensors"]


@pytest.mark.parametrize("solver", [["--momentum", "0.9"], ["--solver", "lbfgs", "--max-iter", "4"]],
                         ids=["sgd", "lbfgs"])
def test_the_same_seed_gives_the_same_bytes_in_two_processes_and_files_follow_the_umask(digits_dir, tmp_path, solver):
    epochs = ["--epochs", "2"] if "--momentum" in solver else []
    procs = {umask: train_process(digits_dir, tmp_path / f"umask-{umask:o}", *solver, *epochs, "--quiet",
                                  umask=umask, env={"PYTHONHASHSEED": str(umask)})
             for umask in (0o022, 0o007)}
    for proc in procs.values():
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    a, b = (files(tmp_path / f"umask-{umask:o}") for umask in procs)
    assert sorted(a) == sorted(b) == ["checkpoint.safetensors", "config.json", "curves.png", "metrics.csv",
                                      "misclassified.png", "model.safetensors"]
    config_a, config_b = (json.loads(files_["config.json"]) for files_ in (a, b))
    assert config_a.pop("started") and config_b.pop("started")          # the one timestamp field
    assert config_a == config_b
    for name in a:
        if name not in ("config.json", "metrics.csv"):
            assert a[name] == b[name], name
    assert figures(a["metrics.csv"].decode()) == figures(b["metrics.csv"].decode())     # all but epoch_seconds
    for umask in procs:
        for path in (tmp_path / f"umask-{umask:o}").iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_an_interrupted_overwrite_holds_no_file_of_the_old_run_and_says_so_on_a_line_of_its_own(
        digits_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    base = ["train", "--data-dir", str(digits_dir), "--out", str(out)]
    assert main(base + ["--epochs", "1", "--quiet"]) == 0                # with model.safetensors and the plots
    printed = ConsoleLog.on_epoch_end

    def interrupt_after_the_first_epoch(self, record, history):
        printed(self, record, history)
        raise KeyboardInterrupt
    monkeypatch.setattr(ConsoleLog, "on_epoch_end", interrupt_after_the_first_epoch)
    monkeypatch.setattr(sys, "stderr", FakeTerminal())                   # so the progress bar is drawn
    assert main(base + ["--epochs", "3", "--seed", "7", "--overwrite"]) == 130
    err = sys.stderr.getvalue()
    assert "%|" in err                                                    # the bar was there
    last_line = err.rsplit("\r", 1)[-1]                                   # the bar is cleared before it
    assert last_line == (f"softmaxreg: interrupted; the checkpoint of epoch 1 is in {out}; resume with: "
                         f"softmaxreg train --resume {out}\n")
    assert sorted(files(out)) == ["checkpoint.safetensors", "config.json", "metrics.csv"]
    assert json.loads((out / "config.json").read_text())["settings"]["seed"] == 7
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert len((out / "metrics.csv").read_text().splitlines()) == 4


def test_a_run_that_finishes_no_epoch_leaves_no_folder(digits_dir, tmp_path, monkeypatch, capsys):
    def interrupt(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(ConsoleLog, "on_step_end", interrupt)
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "new" / "run")]) == 130
    assert "no epoch had finished" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_default_run_folders_started_in_the_same_second_are_distinct(digits_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("time.strftime", lambda fmt, *a: "20250101-000000")
    for _ in range(3):
        assert main(["train", "--data-dir", str(digits_dir), "--epochs", "1", "--quiet", "--no-plots"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["20250101-000000", "20250101-000000-1",
                                                                     "20250101-000000-2"]
