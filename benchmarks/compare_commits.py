"""The lesson's reference run from this checkout beside the same run from another checkout's source
(e.g. a `git worktree` of an older commit), interleaved in one invocation: whole-process seconds,
the training time that `softmaxreg train` prints (since metrics.csv has epoch_seconds, without
validation), and whether metrics.csv's figures (all but epoch_seconds) and the weights are the same bits.

    git worktree add /tmp/old COMMIT
    python benchmarks/compare_commits.py [--reps 5] /tmp/old/src [train options ...]

Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1] / "src"


def run(src: Path, out: Path, extra) -> tuple[float, float]:
    """(whole-process seconds, training seconds summed from the epoch lines) of one train."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "softmaxreg", "train", "--no-plots", "--out", str(out), *extra],
                            env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    return wall, sum(float(s) for s in re.findall(r"\(([\d.]+) s\)", result.stdout))


def weights(path: Path, src: Path) -> bytes:
    code = ("import sys; from softmaxreg import load_model; m = load_model(sys.argv[1]); "
            "sys.stdout.buffer.write(m.W.tobytes() + m.b.tobytes())")
    return subprocess.run([sys.executable, "-c", code, str(path)], env={**os.environ, "PYTHONPATH": str(src)},
                          capture_output=True, check=True).stdout


def figures(path: Path) -> list[str]:
    """metrics.csv without its epoch_seconds column (wall-clock; absent before it was added): the
    figures that must be the same bits."""
    return [",".join(line.split(",")[:5]) for line in path.read_text().splitlines()]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("other", type=Path, help="the other checkout's src folder")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="more train options (not --quiet: the epoch lines give the training time)")
    args = parser.parse_args()
    times = {"this": [], "other": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name, src in (("other", args.other), ("this", HERE)):
                times[name].append(run(src, Path(tmp) / f"{name}{rep}", args.extra))
        same_csv = figures(Path(tmp) / "this0/metrics.csv") == figures(Path(tmp) / "other0/metrics.csv")
        same_weights = weights(Path(tmp) / "this0/model.safetensors", HERE) == \
            weights(Path(tmp) / "other0/model.safetensors", args.other)
    print("| source | whole process s (median, min-max) | training s (median, min-max) |")
    print("|---|---|---|")
    for name in ("other", "this"):
        wall, train = np.array(times[name]).T
        print(f"| {name} | {np.median(wall):.2f} ({wall.min():.2f}-{wall.max():.2f}) | "
              f"{np.median(train):.2f} ({train.min():.2f}-{train.max():.2f}) |")
    print(f"metrics.csv identical: {same_csv}; weights identical: {same_weights}")


if __name__ == "__main__":
    main()
