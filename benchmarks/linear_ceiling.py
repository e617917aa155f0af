"""How far can a linear softmax model on raw Fashion-MNIST pixels go? Three attempts past the
tuned recipe, each scored on a validation split carved from the training set (fit on the
first 50,000 training images, score on the last 10,000; the test split is never looked at).

  smoothness   converged full-batch L-BFGS (scipy) on standardized pixels with an L2 penalty
               plus a spatial smoothness penalty on each class's 28x28 weight image,
               mu/2 * sum_c ||D w_c||^2 (D: differences of horizontal and vertical neighbours).
               mu = 0 is the plain L2 optimum (lambda = 1/(C n) for scikit-learn's C = 0.01).
  std-floor    the recipe with standardization by (std + eps) instead of std: a different
               geometry for the same weight decay.
  distill      soft targets from a nonlinear teacher (softmax regression on 4,096 random
               ReLU features of the standardized pixels) at temperatures T, then the recipe
               on raw pixels with those targets. The student stays linear in the pixels.

    python benchmarks/linear_ceiling.py [smoothness] [std-floor] [distill]
"""

import argparse
import time

import numpy as np

import softmaxreg as sr
from softmaxreg.options import RECIPE_BEST, TrainConfig
from softmaxreg.moments import feature_moments


def split():
    data = sr.load_fashion_mnist()
    X, y = data.train_images.reshape(60000, -1), data.train_labels
    return X[:50000], y[:50000], X[50000:], y[50000:]


def recipe_val_acc(X_fit, y_fit, X_val, y_val, *, eps=0.0, **overrides):
    """Train the recipe (standardized by std + eps) on X_fit; validation accuracy."""
    cfg = TrainConfig(**{**RECIPE_BEST, "standardize": False, **overrides})
    model = sr.SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
    mean, std = feature_moments(model, X_fit)
    model.set_standardization(mean, std + eps)
    sr.fit(model, X_fit, y_fit, cfg, seed=1)
    return model.evaluate(X_val, y_val)[1]


def smoothness(X_fit, y_fit, X_val, y_val):
    import scipy.optimize
    import scipy.sparse

    mean, std = X_fit.mean(axis=0) / 255, X_fit.std(axis=0) / 255
    std[std == 0] = 1
    A, A_val = (X_fit / 255 - mean) / std, (X_val / 255 - mean) / std
    d, k = A.shape[1], 10
    grid = np.arange(d).reshape(28, 28)
    edges = np.concatenate([np.stack([grid[:, :-1].ravel(), grid[:, 1:].ravel()], 1),
                            np.stack([grid[:-1].ravel(), grid[1:].ravel()], 1)])
    rows = np.arange(len(edges))
    D = scipy.sparse.csr_matrix((np.r_[np.ones(len(edges)), -np.ones(len(edges))],
                                 (np.r_[rows, rows], np.r_[edges[:, 0], edges[:, 1]])), shape=(len(edges), d))
    laplacian = (D.T @ D).tocsr()
    lam = 1 / (0.01 * 60000)

    def objective(theta, mu):
        W, b = theta[:d * k].reshape(d, k), theta[d * k:]
        Z = A @ W + b
        G = sr.cross_entropy_grad(Z, y_fit)
        LW = laplacian @ W
        f = sr.cross_entropy(Z, y_fit) + 0.5 * lam * (W * W).sum() + 0.5 * mu * (W * LW).sum()
        return f, np.r_[(A.T @ G + lam * W + mu * LW).ravel(), G.sum(axis=0)]

    for mu in (0.0, 0.01, 0.1):
        start = time.perf_counter()
        r = scipy.optimize.minimize(objective, np.zeros(d * k + k), args=(mu,), jac=True, method="L-BFGS-B",
                                    options={"maxiter": 1000, "maxcor": 20})
        W, b = r.x[:d * k].reshape(d, k), r.x[d * k:]
        acc = np.mean((A_val @ W + b).argmax(axis=1) == y_val)
        print(f"| smoothness | lambda {lam:.3g}, mu {mu:g} ({r.nit} L-BFGS iterations) | {acc:.4f} | "
              f"{time.perf_counter() - start:.0f} s |", flush=True)


def std_floor(X_fit, y_fit, X_val, y_val):
    for eps in (0.0, 0.02, 0.05, 0.1, 0.2):
        for wd in (1e-3, 3e-3, 1e-2):
            start = time.perf_counter()
            acc = recipe_val_acc(X_fit, y_fit, X_val, y_val, eps=eps, weight_decay=wd)
            print(f"| std-floor | eps {eps}, weight_decay {wd:g} | {acc:.4f} | {time.perf_counter() - start:.0f} s |",
                  flush=True)


def distill(X_fit, y_fit, X_val, y_val, features=4096):
    rng = np.random.default_rng(0)
    mean, std = X_fit.mean(axis=0) / 255, X_fit.std(axis=0) / 255 + 0.05
    R = (rng.standard_normal((784, features)) / np.sqrt(784)).astype(np.float32)
    c = rng.uniform(-1, 1, features).astype(np.float32)

    def relu_features(X):
        return np.maximum(((X / 255 - mean) / std).astype(np.float32) @ R + c, 0)

    H_fit = relu_features(X_fit)
    scale = H_fit.std(axis=0).mean()
    H_fit /= scale
    start = time.perf_counter()
    teacher = sr.SoftmaxRegression(features, 10, seed=0)
    sr.fit(teacher, H_fit, y_fit, TrainConfig(epochs=15, batch_size=256, lr=0.03, momentum=0.9, nesterov=True,
                                              weight_decay=1e-4, schedule="cosine", warmup_epochs=1), seed=1)
    teacher_acc = teacher.evaluate(relu_features(X_val) / scale, y_val)[1]
    print(f"| distill | teacher: {features} random ReLU features | {teacher_acc:.4f} | "
          f"{time.perf_counter() - start:.0f} s |", flush=True)
    Z = teacher.logits(H_fit).astype(np.float64)
    del H_fit
    for T in (1.0, 2.0, 4.0):
        start = time.perf_counter()
        acc = recipe_val_acc(X_fit, sr.softmax(Z / T, axis=1).astype(np.float32), X_val, y_val)
        print(f"| distill | student on the teacher's softmax(z/{T:g}) | {acc:.4f} | {time.perf_counter() - start:.0f} s |",
              flush=True)


EXPERIMENTS = {"smoothness": smoothness, "std-floor": std_floor, "distill": distill}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="*", help=f"any of {', '.join(EXPERIMENTS)} (default: all)")
    args = parser.parse_args()
    if unknown := set(args.experiments) - set(EXPERIMENTS):
        parser.error(f"unknown experiments {sorted(unknown)}; expected any of {', '.join(EXPERIMENTS)}")
    data = split()
    print("| experiment | setting | val acc | time |\n|---|---|---|---|")
    start = time.perf_counter()
    print(f"| recipe | `--recipe best` as shipped | {recipe_val_acc(*data):.4f} | "
          f"{time.perf_counter() - start:.0f} s |", flush=True)
    for name in args.experiments or EXPERIMENTS:
        EXPERIMENTS[name](*data)


if __name__ == "__main__":
    main()
