"""What dask-ml's LogisticRegression gives a user on Fashion-MNIST's 10 classes today.

    python benchmarks/dask_ml_peer.py [--max-iter 100] [--chunk 10000]

Needs dask-ml (and dask) besides softmaxreg. Fits dask_ml.linear_model.LogisticRegression with its
defaults (solver "admm", C=1, max_iter=100) on the training pixels / 255 as a dask array of
--chunk-row blocks, twice: with the default multi_class="ovr" and with multi_class="multinomial".
dask-ml documents multi_class as "Ignored. Multiclass solvers not currently supported." and fits
one binary model whatever the labels (dask-ml issues #761 and #859). The script prints the fit
times, the warnings raised (whether any says that the classes were ignored), coef_'s shape,
whether the two fits are identical, the predicted values (booleans: p > 0.5 of that single model)
and the test accuracy that `score` reports. Takes minutes at the default max_iter.
"""

import argparse
import time
import warnings

import dask.array as da
import numpy as np

import softmaxreg as sr


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-iter", type=int, default=100, help="dask-ml's max_iter (its default 100)")
    parser.add_argument("--chunk", type=int, default=10000, help="rows per dask block")
    args = parser.parse_args()
    import dask_ml
    from dask_ml.linear_model import LogisticRegression

    data = sr.load_fashion_mnist()
    X = da.from_array(data.train_images.reshape(len(data.train_labels), -1) / 255.0, chunks=(args.chunk, 784))
    y = da.from_array(data.train_labels, chunks=args.chunk)
    X_test = da.from_array(data.test_images.reshape(len(data.test_labels), -1) / 255.0, chunks=(args.chunk, 784))
    print(f"dask-ml {dask_ml.__version__}, dask {__import__('dask').__version__}; Fashion-MNIST {X.shape}, "
          f"{len(np.unique(data.train_labels))} classes, blocks of {args.chunk} rows\n")

    fits = {}
    for multi_class in ("ovr", "multinomial"):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = LogisticRegression(multi_class=multi_class, max_iter=args.max_iter).fit(X, y)
        seconds = time.perf_counter() - start
        predictions = model.predict(X_test).compute()
        fits[multi_class] = model
        messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        print(f"LogisticRegression(multi_class={multi_class!r}, max_iter={args.max_iter}).fit: {seconds:.1f} s; "
              f"{len(caught)} warnings: {messages}")
        print(f"  coef_ shape {model.coef_.shape}, intercept_ {float(model.intercept_):.4g}: one binary model")
        print(f"  predict_proba shape {model.predict_proba(X_test[:5]).compute().shape}; predict values "
              f"{np.unique(predictions).tolist()} ({predictions.dtype})")
        print(f"  test accuracy (score): {float(model.score(X_test, data.test_labels)):.4f}")
    same = np.array_equal(fits["ovr"].coef_, fits["multinomial"].coef_)
    print(f"\nmulti_class='multinomial' gives the same coefficients as the default: {same}")


if __name__ == "__main__":
    main()
