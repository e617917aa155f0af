"""Choose `softmaxreg train --recipe best` on a validation split carved from the training set.

Trains on the first 50,000 training images, scores on the last 10,000 (never the test split),
over a small grid around standardized inputs, Nesterov momentum, a cosine schedule with
warm-up, weight decay and label smoothing. Prints one line per setting, best last.
With --solver lbfgs: the exact L2 optimum (full-batch L-BFGS, standardized) over a grid of
C = 1 / (weight_decay n), the candidate for a recipe that is the validated optimum.

    python benchmarks/tune_recipe.py [--epochs 30] [--solver lbfgs]
"""

import argparse
import itertools
import time


import softmaxreg as sr
from softmaxreg.options import TrainConfig


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--solver", choices=("sgd", "lbfgs"), default="sgd")
    args = parser.parse_args()
    data = sr.load_fashion_mnist()
    X, y = data.train_images, data.train_labels
    X_fit, y_fit, X_val, y_val = X[:50000], y[:50000], X[50000:], y[50000:]
    if args.solver == "lbfgs":
        return tune_l2_optimum(X_fit, y_fit, X_val, y_val)
    grid = itertools.product([0.003, 0.01, 0.03, 0.1], [0.0, 1e-4, 1e-3, 3e-3], [0.0, 0.1])
    results = []
    for lr, wd, smoothing in grid:
        cfg = TrainConfig(epochs=args.epochs, batch_size=256, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd,
                          schedule="cosine", warmup_epochs=1, label_smoothing=smoothing, standardize=True)
        model = sr.SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
        start = time.perf_counter()
        try:
            sr.fit(model, X_fit, y_fit, cfg, seed=1)
            loss, acc = model.evaluate(X_val, y_val)
        except sr.TrainingDivergedError:
            loss, acc = float("nan"), 0.0
        results.append((acc, lr, wd, smoothing))
        print(f"lr {lr:<6} weight_decay {wd:<7} label_smoothing {smoothing:<4} val_acc {acc:.4f} "
              f"val_loss {loss:.4f} ({time.perf_counter() - start:.1f} s)", flush=True)
    best = max(results)
    print(f"best: lr {best[1]} weight_decay {best[2]} label_smoothing {best[3]} val_acc {best[0]:.4f}")


def tune_l2_optimum(X_fit, y_fit, X_val, y_val):
    results = []
    for C in (0.001, 0.003, 0.01, 0.03, 0.1):
        model = sr.SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
        start = time.perf_counter()
        history = sr.fit(model, X_fit, y_fit, solver="lbfgs", standardize=True, weight_decay=1 / (C * len(y_fit)),
                         max_iter=2000)
        loss, acc = model.evaluate(X_val, y_val)
        results.append((acc, C))
        print(f"C {C:<6} val_acc {acc:.4f} val_loss {loss:.4f} ({len(history)} iterations, "
              f"{time.perf_counter() - start:.1f} s)", flush=True)
    best = max(results)
    print(f"best: C {best[1]} val_acc {best[0]:.4f}")


if __name__ == "__main__":
    main()
