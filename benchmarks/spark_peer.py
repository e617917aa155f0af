"""Spark MLlib's multinomial LogisticRegression on local[2] beside softmaxreg's L-BFGS, to one objective value.

    python benchmarks/spark_peer.py [--C 0.01] [--scale 1] [--spark-max-iter 100] [--target F]
                                    [--driver-memory 4g]

Needs pyspark (its wheel carries Spark; Java 17 on the PATH), pyarrow, psutil and threadpoolctl besides
softmaxreg; run from anywhere (it imports lbfgs_vs_logreg.py from its own folder).

Both solvers minimise one function: Fashion-MNIST's training pixels / 255, standardized with the
training split's mean and (population) standard deviation, as lbfgs_vs_logreg.py and `fit(...,
standardize=True)` do, and

    F(W, b) = (1 / n) sum_i l_i + (wd / 2) |W|^2,     wd = 1 / (C 60000), the bias not penalised.

Spark is given the standardized features and LogisticRegression(family="multinomial",
regParam=wd, elasticNetParam=0, standardization=False, fitIntercept=True): its objective is the
mean loss plus L2RegularizationLoss = 0.5 regParam sum_j (w'_j / std_j)^2 over the coefficients
it trains in its internally scaled space (w' = w std), i.e. 0.5 regParam |W|^2, intercepts
excluded (mllib ml/classification/LogisticRegression.scala and ml/optim/loss/
DifferentiableRegularization.scala). So regParam = wd, and the script checks it: Spark's last
objectiveHistory value beside F of its coefficients evaluated by our code (float64).
--scale m repeats the training set m times: F, and so the target, stay the same.

Each solver runs in its own process (this file with --worker); the parent samples the resident
memory of the worker's process tree (for Spark: the Python driver and its JVM) every 50 ms.
  1. Spark: start-up (imports and SparkSession local[2], i.e. the JVM), data (the standardized
     rows written to a Parquet file in 60,000-row pieces, read back as a cached DataFrame of
     vectors), fit with maxIter=--spark-max-iter, tol=--spark-tol (Spark's defaults, 100 and
     1e-6), its iterations and F. spark.driver.memory sizes the whole JVM in local mode: the JVM's
     resident memory grows towards it, so the peak shown depends on it. At Spark's default 1g the
     1x fit runs (the cache may spill to disk); 4g holds the cached rows and the blocks that
     LogisticRegression caches (two copies of the data, 376 MB each at 1x).
  2. The target T is --target, or else the F that Spark's fit reached. With --target, Spark is
     refitted with the smallest maxIter whose objectiveHistory value is <= T, and that fit timed.
  3. softmaxreg L-BFGS in float64 and float32 (uint8 images in, as `softmaxreg train` reads them):
     seconds until F <= T, the exact float64 F evaluated after each iteration off the clock.
Prints a Markdown table: start-up, data, seconds to F <= T, iterations, F reached, test accuracy,
peak memory of the process tree.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

T0 = time.perf_counter()

import numpy as np  # noqa: E402

import softmaxreg as sr  # noqa: E402
from lbfgs_vs_logreg import ExactObjective, machine  # noqa: E402
from softmaxreg.moments import feature_moments  # noqa: E402

IMPORTED = time.perf_counter()

N_TRAIN = 60000


def fashion_mnist(scale: int):
    """(train images (m n, 784) uint8, train labels, test images, test labels, mean, std): the
    training split repeated `scale` times; mean and std of its pixels / 255 (zero std counts as 1)."""
    data = sr.load_fashion_mnist()
    X = np.tile(data.train_images.reshape(N_TRAIN, -1), (scale, 1))
    y = np.tile(data.train_labels, scale)
    mean, std = feature_moments(sr.SoftmaxRegression(784, 10, input_scale=1 / 255), X)
    X_test = data.test_images.reshape(len(data.test_labels), -1)
    return X, y, X_test, data.test_labels, mean, np.where(std > 0, std, 1.0)


def write_parquet(path: str, X: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """Standardized rows (X / 255 - mean) / std as a Parquet file of (label double, features
    list<double>), written 60,000 rows at a time so no float64 copy of a large X is ever whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("label", pa.float64()), ("features", pa.list_(pa.float64()))])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(y), N_TRAIN):
            rows = (X[start:start + N_TRAIN] / 255.0 - mean) / std                 # (60000, 784) float64
            features = pa.ListArray.from_arrays(np.arange(0, rows.size + 1, rows.shape[1], dtype=np.int32),
                                                rows.ravel())
            writer.write_table(pa.table({"label": y[start:start + N_TRAIN].astype(np.float64), "features": features},
                                        schema=schema))


def spark_worker(args) -> dict:
    """Fit Spark's multinomial LogisticRegression; coefficients to args.coefficients (npz)."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("spark_peer")
             .config("spark.driver.memory", args.driver_memory).config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter()
    X, y, _, _, mean, std = fashion_mnist(args.scale)
    loaded = time.perf_counter()
    parquet = os.path.join(os.path.dirname(args.coefficients), "train.parquet")
    write_parquet(parquet, X, y, mean, std)
    df = spark.read.parquet(parquet).select("label", array_to_vector("features").alias("features")).cache()
    df.count()
    in_spark = time.perf_counter()

    def fit(max_iter):
        estimator = LogisticRegression(family="multinomial", regParam=args.wd, elasticNetParam=0.0,
                                       standardization=False, fitIntercept=True, maxIter=max_iter, tol=args.spark_tol)
        start = time.perf_counter()
        model = estimator.fit(df)
        return model, time.perf_counter() - start

    model, fit_s = fit(args.spark_max_iter)
    history = list(model.summary.objectiveHistory)       # history[i]: the objective after i iterations
    out = {"startup_s": started - T0, "load_s": loaded - started, "to_spark_s": in_spark - loaded,
           "fit_s": fit_s, "iterations": model.summary.totalIterations, "history": history,
           "java": spark.sparkContext._jvm.System.getProperty("java.version"),
           "spark": spark.version, "blas": spark.sparkContext._jvm.dev.ludovic.netlib.blas.BLAS.getInstance()
           .getClass().getName()}
    fits = {"": model}
    if args.target is not None:
        reached = next((i for i, f in enumerate(history) if f <= args.target), None)
        out["target_iterations"] = reached
        if reached is not None and reached < out["iterations"]:
            fits["target_"], out["target_fit_s"] = fit(reached)
    np.savez(args.coefficients, **{f"{key}{name}": value for key, m in fits.items() for name, value in
                                   (("W", m.coefficientMatrix.toArray().T), ("b", m.interceptVector.toArray()))})
    spark.stop()
    return out


def ours_worker(args) -> dict:
    """softmaxreg L-BFGS until F <= args.target (or max|gradient| <= args.tol): seconds, iterations, F."""
    X, y, X_test, y_test, mean, std = fashion_mnist(args.scale)
    exact = ExactObjective(X, y, mean, std, args.wd)
    loaded = time.perf_counter()

    class Clock(sr.Callback):
        def __init__(self):
            self.excluded, self.reached, self.iterations, self.F = 0.0, None, 0, None

        def on_train_begin(self, run):
            self.run = run

        def on_epoch_end(self, record, history):
            paused = time.perf_counter()
            self.F, self.iterations = exact(model.W, model.b), record.epoch
            if self.F <= args.target:
                self.reached, self.run.stop = paused - start - self.excluded, True
            self.excluded += time.perf_counter() - paused

    model = sr.SoftmaxRegression(784, 10, seed=0, dtype=args.worker, input_scale=1 / 255)
    clock = Clock()
    start = time.perf_counter()
    sr.fit(model, X, y, solver="lbfgs", standardize=True, weight_decay=args.wd, tol=args.tol, max_iter=5000,
           callbacks=[clock])
    return {"startup_s": IMPORTED - T0, "load_s": loaded - IMPORTED, "fit_s": clock.reached,
            "iterations": clock.iterations, "F": clock.F, "accuracy": model.evaluate(X_test, y_test)[1]}


def run_worker(kind: str, args, extra: list[str]) -> dict:
    """Run this file as a worker; returns its JSON result with the peak RSS (MB) of its process tree
    and of the worker's child processes alone (Spark's JVM)."""
    import psutil

    argv = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--C", str(args.C),
            "--scale", str(args.scale), *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, done = [0, 0], threading.Event()                # (tree, children)

    def sample():
        root = psutil.Process(proc.pid)
        while not done.wait(0.05):
            try:
                own = root.memory_info().rss
                children = sum(p.memory_info().rss for p in root.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
            peak[0], peak[1] = max(peak[0], own + children), max(peak[1], children)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{err[-3000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_mb": peak[0] / 2**20, "children_mb": peak[1] / 2**20}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--C", type=float, default=0.01, help="wd = 1 / (C 60000), as lbfgs_vs_logreg.py")
    parser.add_argument("--scale", type=int, default=1, help="repeat the training set this many times")
    parser.add_argument("--spark-max-iter", type=int, default=100)
    parser.add_argument("--spark-tol", type=float, default=1e-6)
    parser.add_argument("--driver-memory", default="4g", help="spark.driver.memory (local mode: the whole JVM)")
    parser.add_argument("--target", type=float, help="the F to reach (default: Spark's final F)")
    parser.add_argument("--tol", type=float, default=1e-6, help="our L-BFGS stops here if it never reaches the target")
    parser.add_argument("--worker", choices=("spark", "float64", "float32"), help=argparse.SUPPRESS)
    parser.add_argument("--coefficients", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.wd = 1 / (args.C * N_TRAIN)
    if args.worker:
        result = spark_worker(args) if args.worker == "spark" else ours_worker(args)
        print(json.dumps(result))
        return

    X, y, X_test, y_test, mean, std = fashion_mnist(args.scale)
    exact = ExactObjective(X, y, mean, std, args.wd)
    print(f"machine: {machine()}")
    print(f"Fashion-MNIST x{args.scale}, {len(y)} x 784 standardized, C = {args.C} (wd = regParam = {args.wd:.6g})")
    target = [] if args.target is None else ["--target", repr(args.target)]
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "spark.npz")
        spark = run_worker("spark", args, ["--spark-max-iter", str(args.spark_max_iter), "--spark-tol",
                                           str(args.spark_tol), "--driver-memory", args.driver_memory,
                                           "--coefficients", npz, *target])
        coefficients = dict(np.load(npz))
    spark["F"] = exact(coefficients["W"], coefficients["b"])
    if "target_W" in coefficients:                     # the refit to the target's iteration
        spark["target_F"] = exact(coefficients["target_W"], coefficients["target_b"])
    spark["accuracy"] = exact.model.evaluate(X_test, y_test)[1]
    print(f"Spark {spark['spark']}, Java {spark['java']}, BLAS {spark['blas']}, local[2], "
          f"spark.driver.memory {args.driver_memory}")
    print(f"Spark's last objectiveHistory value {spark['history'][-1]:.12g}; our F of the same coefficients "
          f"{spark['F']:.12g} (relative difference {spark['F'] / spark['history'][-1] - 1:.1e})")
    if args.target is None:
        args.target, spark_s, spark_iter = spark["F"], spark["fit_s"], spark["iterations"]
    else:
        spark_iter = spark["target_iterations"]
        if "target_F" in spark:
            print(f"Spark's objectiveHistory[{spark_iter}] {spark['history'][spark_iter]:.12g}; our F of its refit "
                  f"with maxIter={spark_iter} {spark['target_F']:.12g}")
        spark_s = spark["fit_s"] if spark_iter == spark["iterations"] else spark.get("target_fit_s")
    rows = [("Spark MLlib LogisticRegression multinomial, local[2]", spark["startup_s"],
             spark["load_s"] + spark["to_spark_s"], spark_s, spark_iter, spark.get("target_F", spark["F"]),
             spark["accuracy"],
             spark["peak_mb"])]
    for dtype in ("float64", "float32"):
        ours = run_worker(dtype, args, ["--target", repr(args.target), "--tol", str(args.tol)])
        rows.append((f"softmaxreg lbfgs {dtype}", ours["startup_s"], ours["load_s"], ours["fit_s"],
                     ours["iterations"], ours["F"], ours["accuracy"], ours["peak_mb"]))
    print(f"\ntarget T = {args.target:.10g}; Spark's data column: load and standardize "
          f"{spark['load_s']:.1f} s + to a cached DataFrame {spark['to_spark_s']:.1f} s; Spark's peak memory: "
          f"its JVM {spark['children_mb']:.0f} MB of the process tree's {spark['peak_mb']:.0f} MB\n")
    print("| solver | start-up s | data s | seconds to F <= T | iterations | F reached | test accuracy | peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, startup, data, seconds, iterations, F, acc, mb in rows:
        print(f"| {name} | {startup:.1f} | {data:.1f} | {'-' if seconds is None else f'{seconds:.1f}'} | "
              f"{'-' if iterations is None else iterations} | {F:.10g} | {acc:.4f} | {mb:.0f} |")


if __name__ == "__main__":
    main()
