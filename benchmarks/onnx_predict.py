"""Prediction latency and throughput of an exported model in onnxruntime beside our NumPy
`predict_proba`, at batch 1, 256 and 10,000 rows of Fashion-MNIST test images.

The model: 784 -> 10, float32, input_scale 1/255, trained by one short SGD epoch (the weights do
not change the cost). Each graph is exported twice: with uint8 pixels as its input (the Cast in the
graph) and with float32. Each timing is one call, the ways interleaved within each round so that
a noisy neighbour hits them alike; the table gives medians over the rounds (batch 1: --calls calls
a round). onnxruntime runs with its default threads (one per core), NumPy with its BLAS's.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/onnx_predict.py [--rounds 15]

The header says which CPU and BLAS kernel ran, and the load average before and after.
"""

import argparse
import os
import statistics
import time

import numpy as np

import softmaxreg as sr
from lbfgs_vs_logreg import machine       # the header: CPU, NumPy, BLAS kernel and threads (a sibling script)

BATCHES = (1, 256, 10_000)


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def timed(call, repeat: int) -> float:
    """Seconds per call of `repeat` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200, help="batch-1 calls per round")
    args = parser.parse_args()

    data = sr.load_fashion_mnist()
    model = sr.SoftmaxRegression(784, 10, sigma=0.01, input_scale=1 / 255, input_shape=(28, 28),
                                 class_names=data.class_names)
    sr.fit(model, data.train_images[:10_000], data.train_labels[:10_000], epochs=1, batch_size=256, lr=0.1)
    sessions = {kind: ort.InferenceSession(sr.to_onnx(model, input_dtype=kind).SerializeToString(),
                                           providers=["CPUExecutionProvider"]) for kind in ("uint8", "float32")}
    print(f"# {machine()}; onnxruntime {ort.__version__}; {load()}")

    ways = {
        "numpy predict_proba, uint8 pixels": lambda X: model.predict_proba(X),
        "onnxruntime, uint8 input": lambda X: sessions["uint8"].run(["probabilities"], {"input": X}),
        "numpy predict_proba, float32 pixels": lambda X: model.predict_proba(X.astype(np.float32)),
        "onnxruntime, float32 input": lambda X: sessions["float32"].run(["probabilities"],
                                                                         {"input": X.astype(np.float32)}),
    }
    for batch in BATCHES:
        X = data.test_images[:batch]
        got = sessions["uint8"].run(["probabilities"], {"input": X})[0]
        assert np.abs(got - model.predict_proba(X)).max() <= 1e-5
        repeat = args.calls if batch == 1 else max(3, 25_600 // batch)
        times = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                way(X)                                       # warm: buffers, the session's first run
                times[name].append(timed(lambda: way(X), repeat))
        print(f"\n## batch {batch:,} ({args.rounds} rounds of {repeat} calls)\n")
        print("| way | median latency | min-max | rows/s (median) |\n|---|---:|---:|---:|")
        for name, seconds in times.items():
            median = statistics.median(seconds)
            print(f"| {name} | {median * 1e6:,.1f} us | {min(seconds) * 1e6:,.1f}-{max(seconds) * 1e6:,.1f} us "
                  f"| {batch / median:,.0f} |")
    print(f"\n# {load()}")


if __name__ == "__main__":
    main()
