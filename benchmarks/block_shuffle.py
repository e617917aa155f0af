"""The block shuffle (datasets.blocks: seeded blocks of 4,096 rows, rows shuffled inside windows of 8
blocks) against the lesson's full shuffle on the reference run (10 epochs of Fashion-MNIST, test
accuracy), on the training split as published (rows in random order) and on a copy sorted by label,
where a window (32,768 rows) holds only a few classes.

    python benchmarks/block_shuffle.py [--seeds 3] [--block-rows 4096] [--window 8]
"""

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from softmaxreg import SoftmaxRegression, fit, load_fashion_mnist  # noqa: E402
from softmaxreg.datasets import blocks  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--block-rows", type=int, default=blocks.SHUFFLE_BLOCK_ROWS)
    parser.add_argument("--window", type=int, default=blocks.SHUFFLE_WINDOW)
    args = parser.parse_args()
    data = load_fashion_mnist()
    X, y = np.asarray(data.train_images), np.asarray(data.train_labels)
    order = np.argsort(y, kind="stable")
    sets = {"as published": (X, y), "sorted by label": (X[order], y[order])}
    defaults = blocks.iterate_block_minibatches.__kwdefaults__
    print(f"reference run, 10 epochs; blocks of {args.block_rows} rows, windows of {args.window} blocks; "
          f"test accuracy over seeds 0..{args.seeds - 1}")
    print(f"{'training rows':16} {'shuffle':7} {'mean':>7} {'min':>7} {'max':>7}")
    with mock.patch.dict(defaults, block_rows=args.block_rows, window=args.window):
        for name, (Xs, ys) in sets.items():
            for shuffle in ("full", "blocks"):
                accuracy = []
                for seed in range(args.seeds):
                    model = SoftmaxRegression(784, 10, seed=seed, input_scale=1 / 255)
                    fit(model, Xs, ys, seed=seed, shuffle=shuffle)
                    accuracy.append(model.evaluate(data.test_images, data.test_labels)[1])
                print(f"{name:16} {shuffle:7} {np.mean(accuracy):7.4f} {min(accuracy):7.4f} {max(accuracy):7.4f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
