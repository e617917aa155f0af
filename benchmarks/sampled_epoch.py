"""Seconds per SGD epoch of the full softmax and of sampled softmax at many classes, in one run.

Random float32 features (n x d), Zipf-distributed labels over k classes (as words are), batch 256,
lr 0.1, two epochs each; the figure is EpochRecord.seconds (metrics.csv's epoch_seconds: training
alone). Synthetic data: this times the step, it says nothing about accuracy (see the next-word
experiment for that).

    OPENBLAS_NUM_THREADS=1 python benchmarks/sampled_epoch.py [--n 10240] [--d 256] [--k 20000]
"""

import argparse
import statistics

import numpy as np

import softmaxreg as sr


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10240)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--k", type=int, default=20000)
    parser.add_argument("--sampled", type=int, nargs="*", default=[1000, 200])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.d)).astype(np.float32)
    y = np.minimum(rng.zipf(1.2, args.n) - 1, args.k - 1)
    print(f"n {args.n}, d {args.d}, k {args.k}, batch 256: median seconds per epoch of 2")
    full = None
    for S in [None, *args.sampled]:
        model = sr.SoftmaxRegression(args.d, args.k, seed=0)
        options = {} if S is None else dict(loss="sampled", num_sampled=S)
        history = sr.fit(model, X, y, epochs=2, lr=0.1, seed=0, **options)
        seconds = statistics.median(history.column("seconds"))
        full = full or seconds
        print(f"{'full softmax' if S is None else f'sampled, S = {S}':>18}: {seconds:7.3f} s  ({full / seconds:5.1f}x)")


if __name__ == "__main__":
    main()
