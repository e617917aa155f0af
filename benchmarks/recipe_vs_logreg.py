"""`softmaxreg train --recipe best` beside scikit-learn's LogisticRegression on Fashion-MNIST,
same preprocessing (pixels / 255, standardized with the training split's statistics), in one run.

    python benchmarks/recipe_vs_logreg.py [--C 0.01] [--max-iter 1000]
"""

import argparse
import time
import warnings


import softmaxreg as sr
from softmaxreg.options import RECIPE_BEST, TrainConfig


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=0.01)
    parser.add_argument("--max-iter", type=int, default=1000)
    args = parser.parse_args()
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    data = sr.load_fashion_mnist()
    Xtr = data.train_images.reshape(60000, -1) / 255.0
    Xte = data.test_images.reshape(10000, -1) / 255.0

    start = time.perf_counter()
    model = sr.SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
    sr.fit(model, data.train_images, data.train_labels, TrainConfig(**RECIPE_BEST), seed=1)
    ours_s = time.perf_counter() - start
    ours = model.evaluate(data.test_images, data.test_labels)[1]

    scaler = StandardScaler().fit(Xtr)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf = LogisticRegression(C=args.C, max_iter=args.max_iter).fit(scaler.transform(Xtr), data.train_labels)
    theirs_s = time.perf_counter() - start
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    theirs = clf.score(scaler.transform(Xte), data.test_labels)
    print("| model | test accuracy | training s |")
    print("|---|---|---|")
    print(f"| softmaxreg --recipe best ({RECIPE_BEST['epochs']} epochs) | {ours:.4f} | {ours_s:.1f} |")
    print(f"| LogisticRegression lbfgs C={args.C} ({int(clf.n_iter_[0])} iterations, "
          f"{'converged' if converged else 'NOT converged'}) | {theirs:.4f} | {theirs_s:.1f} |")


if __name__ == "__main__":
    main()
