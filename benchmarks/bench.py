"""Time the lesson's reference run against its peers, in one invocation, interleaved.

Each measurement runs in its own Python process (so start-up, import and peak RSS are its
own); the rounds are interleaved (every peer once, then every peer again) so that machine
noise spreads over all of them. Prints medians, min-max, ratios against softmaxreg, test
accuracy and peak RSS, then a scaling series, as a Markdown report.

    python benchmarks/bench.py [--reps 5] [--quick] [--out BENCHMARKS-run.md]

Peers: PyTorch (torch==2.13.0, CPU) concise (nn.Linear, preloaded tensors) and d2l-style
(autograd, DataLoader with 0 and 4 workers), scikit-learn LogisticRegression (lbfgs, 100
iterations) and SGDClassifier (log loss, 10 epochs). Peers that are not installed are skipped.
Per the project's rules, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for the measured
processes only, and the BLAS kernel that then runs is reported, with the row blocking of the
products that softmaxreg chose for this machine (decided here, before the timed runs).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

COMMON = """
import json, sys, time
T0 = time.perf_counter()
import numpy as np
import softmaxreg as sr
QUICK = {quick}
d = sr.load_fashion_mnist()
n = 10000 if QUICK else 60000
EPOCHS = 1 if QUICK else 10
Xtr, ytr = d.train_images[:n], d.train_labels[:n]
Xte, yte = d.test_images, d.test_labels
T_LOADED = time.perf_counter()
"""

PEERS = {
    "softmaxreg": """
model = sr.SoftmaxRegression(784, 10, 0.01, seed=0, input_scale=1 / 255)
t = time.perf_counter()
h = sr.fit(model, Xtr, ytr, epochs=EPOCHS, batch_size=256, lr=0.1, seed=1, validation_data=(Xte, yte))
train = time.perf_counter() - t
acc = h[-1].val_acc
""",
    "torch concise": """
import torch
torch.manual_seed(0)
X = torch.from_numpy(Xtr.reshape(n, -1).astype(np.float32) / 255); y = torch.from_numpy(ytr.astype(np.int64))
Xt = torch.from_numpy(Xte.reshape(len(Xte), -1).astype(np.float32) / 255); yt = torch.from_numpy(yte.astype(np.int64))
net = torch.nn.Linear(784, 10); torch.nn.init.normal_(net.weight, std=0.01); torch.nn.init.zeros_(net.bias)
opt = torch.optim.SGD(net.parameters(), lr=0.1); loss_fn = torch.nn.CrossEntropyLoss()
t = time.perf_counter()
for epoch in range(EPOCHS):
    perm = torch.randperm(n)
    for i in range(0, n, 256):
        idx = perm[i:i + 256]
        opt.zero_grad(); loss = loss_fn(net(X[idx]), y[idx]); loss.backward(); opt.step()
    with torch.no_grad():
        acc = (net(Xt).argmax(1) == yt).float().mean().item()
train = time.perf_counter() - t
""",
    "torch d2l-style, 0 workers": """
import torch
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
WORKERS = 0
X = torch.from_numpy(Xtr.reshape(n, -1).astype(np.float32) / 255); y = torch.from_numpy(ytr.astype(np.int64))
Xt = torch.from_numpy(Xte.reshape(len(Xte), -1).astype(np.float32) / 255); yt = torch.from_numpy(yte.astype(np.int64))
train_iter = DataLoader(TensorDataset(X, y), batch_size=256, shuffle=True, num_workers=WORKERS)
test_iter = DataLoader(TensorDataset(Xt, yt), batch_size=256, shuffle=False, num_workers=WORKERS)
W = torch.normal(0, 0.01, size=(784, 10), requires_grad=True); b = torch.zeros(10, requires_grad=True)
def softmax(Z):
    e = torch.exp(Z); return e / e.sum(1, keepdim=True)
def net(X):
    return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)
def cross_entropy(y_hat, y):
    return -torch.log(y_hat[list(range(len(y_hat))), y])
t = time.perf_counter()
for epoch in range(EPOCHS):
    for Xb, yb in train_iter:
        l = cross_entropy(net(Xb), yb); l.mean().backward()
        with torch.no_grad():
            for p in (W, b):
                p -= 0.1 * p.grad; p.grad.zero_()
    with torch.no_grad():
        hits = sum((net(Xb).argmax(1) == yb).sum().item() for Xb, yb in test_iter)
    acc = hits / len(yt)
train = time.perf_counter() - t
""",
    "sklearn LogisticRegression": """
from sklearn.linear_model import LogisticRegression
import warnings; warnings.simplefilter("ignore")
t = time.perf_counter()
clf = LogisticRegression(max_iter=5 if QUICK else 100).fit(Xtr.reshape(n, -1) / 255.0, ytr)
train = time.perf_counter() - t
acc = clf.score(Xte.reshape(len(Xte), -1) / 255.0, yte)
""",
    "sklearn SGDClassifier": """
from sklearn.linear_model import SGDClassifier
import warnings; warnings.simplefilter("ignore")
t = time.perf_counter()
clf = SGDClassifier(loss="log_loss", max_iter=EPOCHS, tol=None, random_state=0).fit(Xtr.reshape(n, -1) / 255.0, ytr)
train = time.perf_counter() - t
acc = clf.score(Xte.reshape(len(Xte), -1) / 255.0, yte)
""",
}
PEERS["torch d2l-style, 4 workers"] = PEERS["torch d2l-style, 0 workers"].replace("WORKERS = 0", "WORKERS = 4")
NEEDS = {"torch": "torch", "sklearn": "sklearn"}

FOOTER = """
print(json.dumps({"train_s": train, "acc": float(acc), "load_s": T_LOADED - T0}))
"""


def bench_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return env


def run_peer(name: str, quick: bool, env: dict) -> dict:
    code = COMMON.format(quick=quick) + PEERS[name] + FOOTER
    rss_probe = ("import json, resource, sys; "
                 "exec(compile(sys.stdin.read(), 'peer', 'exec')); "
                 "print(json.dumps({'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", rss_probe], input=code, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: {proc.stderr.strip()[-800:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {**lines[0], **lines[1], "wall_s": wall}


def run_cli(extra: list[str], env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        probe = ("import resource, sys; from softmaxreg.cli import main; code = main(sys.argv[1:]); "
                 "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr); sys.exit(code)")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", probe, "train", "--quiet", "--out", f"{tmp}/run", *extra],
                              capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"softmaxreg train failed: {proc.stderr[-500:]}")
        return {"wall_s": wall, "rss_mb": float(proc.stderr.strip().splitlines()[-1])}


def startup(env: dict) -> dict:
    out = {}
    for label, argv in (("import softmaxreg", [sys.executable, "-c", "import softmaxreg"]),
                        ("softmaxreg --help", [sys.executable, "-m", "softmaxreg", "--help"]),
                        ("python -c pass", [sys.executable, "-c", "pass"])):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, env=env, check=True)
            times.append(time.perf_counter() - start)
        out[label] = statistics.median(times)
    heavy = subprocess.run([sys.executable, "-c", "import sys, softmaxreg.cli; print(sorted(m for m in "
                            "('matplotlib', 'sklearn', 'torch', 'tqdm', 'PIL', 'safetensors') if m in sys.modules))"],
                           capture_output=True, text=True, env=env, check=True).stdout.strip()
    out["heavy modules after import"] = heavy
    return out


def scaling(quick: bool, env: dict) -> str:
    code = """
import time, json, numpy as np, softmaxreg as sr
d = sr.load_fashion_mnist()
rows = []
for m in (1, 2) if {quick} else (1, 2, 4, 8):
    X = np.concatenate([d.train_images] * m); y = np.concatenate([d.train_labels] * m)
    model = sr.SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
    t = time.perf_counter(); sr.fit(model, X, y, epochs=1, seed=1); rows.append(("train set x%d" % m, len(X), time.perf_counter() - t))
from softmaxreg.experiments import class_scaling
for r in class_scaling(classes=(10, 100, 1000), steps=5).rows:
    rows.append(("classes %d (one step)" % r["classes"], 256, r["step_ms"] / 1000))
print(json.dumps(rows))
""".format(quick=quick)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    rows = json.loads(proc.stdout)
    lines = ["| series | examples | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {n} | {s:.4f} |" for name, n, s in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 10,000 images, 1 repetition: a smoke test")
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    env = bench_env()
    peers = [name for name in PEERS
             if not (name.startswith("torch") and importlib.util.find_spec("torch") is None)
             and not (name.startswith("sklearn") and importlib.util.find_spec("sklearn") is None)]
    if args.quick:
        peers = [p for p in peers if "4 workers" not in p]
    kernel = subprocess.run([sys.executable, "-c", "import numpy, threadpoolctl, json; print(json.dumps("
                             "[(i['internal_api'], i.get('architecture'), i['num_threads'], i.get('version')) "
                             "for i in threadpoolctl.threadpool_info()]))"], capture_output=True, text=True,
                            env=env).stdout.strip() if importlib.util.find_spec("threadpoolctl") else "unknown"
    blocking = json.loads(subprocess.run([sys.executable, "-c", "import json; from softmaxreg.engines.gemm import "
                                          "blocking_info; print(json.dumps(blocking_info()))"],
                                         capture_output=True, text=True, env=env, check=True).stdout)
    rows = blocking["rows"]
    results = {name: [] for name in peers}
    cli = {"train --quiet": [], "train --quiet --no-plots": []}
    for rep in range(reps):
        for name in peers:
            results[name].append(run_peer(name, args.quick, env))
            print(f"round {rep + 1}/{reps}: {name}: {results[name][-1]['train_s']:.3f} s", file=sys.stderr, flush=True)
        if not args.quick:
            cli["train --quiet"].append(run_cli([], env))
            cli["train --quiet --no-plots"].append(run_cli(["--no-plots"], env))

    def med(values):
        return statistics.median(values)
    base = med([r["train_s"] for r in results["softmaxreg"]])
    report = [f"## Run of {datetime.date.today().isoformat()}",
              "",
              f"Command: `python benchmarks/bench.py{' --quick' if args.quick else f' --reps {reps}'}`  ",
              f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, Python "
              f"{platform.python_version()}  ",
              f"BLAS (OPENBLAS_CORETYPE/L2_SIZE unset): {kernel}  ",
              f"softmaxreg GEMM row blocking: {f'blocks of {rows} rows' if rows else 'one product per batch'} "
              f"({blocking['source']}; measured us per step by block rows: {blocking['median_us']})  ",
              f"Recipe: {'1 epoch on 10,000 images' if args.quick else '10 epochs on 60,000 images'}, batch 256, "
              f"lr 0.1, validation on the 10,000 test images after every epoch (sklearn: fit, then score)",
              "",
              "| implementation | training s (median) | min-max | x softmaxreg | whole process s | peak RSS MB | test acc |",
              "|---|---|---|---|---|---|---|"]
    for name in peers:
        rs = results[name]
        t = [r["train_s"] for r in rs]
        report.append(f"| {name} | {med(t):.3f} | {min(t):.3f}-{max(t):.3f} | {med(t) / base:.1f} | "
                      f"{med([r['wall_s'] for r in rs]):.2f} | {med([r['rss_mb'] for r in rs]):.0f} | "
                      f"{med([r['acc'] for r in rs]):.4f} |")
    if not args.quick:
        report += ["", "| `softmaxreg` command (whole process, bundled .gz, cache warm) | median s | min-max | peak RSS MB |",
                   "|---|---|---|---|"]
        for label, rs in cli.items():
            w = [r["wall_s"] for r in rs]
            report.append(f"| `{label}` | {med(w):.2f} | {min(w):.2f}-{max(w):.2f} | {med([r['rss_mb'] for r in rs]):.0f} |")
        report += ["", "| start-up | median s |", "|---|---|"]
        for label, value in startup(env).items():
            report.append(f"| {label} | {value if isinstance(value, str) else f'{value:.3f}'} |")
    report += ["", "Scaling (softmaxreg, one epoch without validation; classes: one SGD step of batch 256):", "",
               scaling(args.quick, env)]
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
