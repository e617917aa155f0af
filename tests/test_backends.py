"""The generic array-API path against the NumPy fast path, on every installed library (CPU).

array-api-strict is the standard's referee (it refuses anything the standard leaves unspecified);
torch and JAX are the libraries people use; each is skipped with its reason when absent. GPU code
paths are these same functions with device "cpu".
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import softmaxreg as sr
from softmaxreg.engines.array_api import resolve, to_device, to_numpy
from softmaxreg.cli import main


def _namespace(name):
    pytest.importorskip("array_api_compat", reason="the generic path needs array-api-compat")
    pytest.importorskip(name, reason=f"{name} is not installed")
    if name == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)       # float64 arrays (JAX's default truncates to float32)
    if name == "torch":
        import torch
        torch.set_num_threads(1)                         # 2 shared cores: OpenMP barriers cost more than the ops
    return resolve(name, "cpu")


@pytest.fixture(params=["array_api_strict", "torch", "jax"])
def xp_device(request):
    return _namespace(request.param)


def _data(n=300, d=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, d), dtype=np.uint8), rng.integers(0, k, n).astype(np.int64)


@pytest.mark.parametrize("options", [
    {},
    {"weight_decay": 0.03},
    {"label_smoothing": 0.2, "weight_decay": 0.01},
    {"sample_weight": True},
    {"soft": True},
    {"standardize": True, "weight_decay": 0.01},
])
def test_objective_and_gradient_match_numpy_in_float64(xp_device, options):
    """Same F, dW, db as the fused NumPy kernel to 1e-10 relative (float64: only summation order differs)."""
    xp, device = xp_device
    X, y = _data()
    options = dict(options)
    rng = np.random.default_rng(1)
    if options.pop("soft", False):
        y = rng.dirichlet(np.ones(4), size=y.shape[0])
    weights = rng.uniform(0.5, 2, y.shape[0]) if options.pop("sample_weight", False) else None
    standardize = options.pop("standardize", False)
    models = []
    for _ in range(2):
        model = sr.SoftmaxRegression(12, 4, sigma=0.5, seed=2, dtype=np.float64, input_scale=1 / 255)
        if standardize:
            model.set_standardization(X.mean(axis=0) / 255, X.std(axis=0) / 255)
        models.append(model)
    models[1].to(*_name_device(xp, device))
    ref = sr.SoftmaxCrossEntropy(models[0], **options).loss_and_grad(X, y, sample_weight=weights)
    got = sr.SoftmaxCrossEntropy(models[1], **options).loss_and_grad(
        to_device(X, xp, device), to_device(y, xp, device),
        sample_weight=None if weights is None else to_device(weights, xp, device))
    assert got[0] == pytest.approx(ref[0], rel=1e-10)
    for a, b in zip(got[1:], ref[1:]):
        assert np.abs(to_numpy(a) - b).max() <= 1e-10 * np.abs(b).max()


def _name_device(xp, device):
    from softmaxreg.engines.array_api import backend_name
    return backend_name(xp), "cpu"


def test_one_epoch_of_the_reference_run_matches_numpy(xp_device, fashion):
    """One epoch of the lesson's run (Fashion-MNIST, batch 256, lr 0.1, float32) gives the NumPy
    run's weights to float32 rounding, so the minibatches came in the same order (the permutation is
    drawn once on the host): a different order, or one different batch, moves weights by ~1e-2.

    Tolerance: each step's gradient is a sum over 256 rows done in another order by another GEMM
    (NumPy's block products vs the library's kernel), an error of a few ulps of the gradient
    (~1e-3 here, ulp ~1e-10) per step; over 235 steps that stays below ~1e-7 in weights of ~0.1 to
    ~1. Measured on CPU: max |dW| 1.2e-7 to 1.3e-7 (torch, JAX, array-api-strict; ~9 ulps of the largest
    weight, 0.22), the bias 6e-8 to 7.5e-8 (1 ulp of 0.57). atol
    2e-6 is 15x that and still 4 orders below what a different batch order gives."""
    xp, device = xp_device
    models = [sr.SoftmaxRegression(784, 10, input_scale=1 / 255) for _ in range(2)]
    sr.fit(models[0], fashion.train_images, fashion.train_labels, epochs=1)
    history = sr.fit(models[1], to_device(fashion.train_images, xp, device),
                     to_device(fashion.train_labels, xp, device), epochs=1)
    assert not isinstance(models[1].W, np.ndarray)          # the model followed X
    np.testing.assert_allclose(to_numpy(models[1].W), models[0].W, rtol=0, atol=2e-6)
    np.testing.assert_allclose(to_numpy(models[1].b), models[0].b, rtol=0, atol=2e-6)
    assert 0.7 < history[-1].train_acc < 0.8


def test_momentum_early_stopping_and_validation_follow_numpy(xp_device):
    xp, device = xp_device
    X, y = _data(400)
    options = dict(epochs=3, batch_size=64, lr=0.3, momentum=0.9, nesterov=True, weight_decay=1e-3,
                   schedule="cosine", early_stopping=True, patience=5, seed=4)
    models = [sr.SoftmaxRegression(12, 4, seed=1, dtype=np.float64, input_scale=1 / 255) for _ in range(2)]
    h0 = sr.fit(models[0], X, y, validation_data=(X, y), **options)
    h1 = sr.fit(models[1], to_device(X, xp, device), to_device(y, xp, device), validation_data=(X, y), **options)
    np.testing.assert_allclose(to_numpy(models[1].W), models[0].W, rtol=1e-10, atol=1e-12)
    for a, b in zip(h0.records, h1.records):
        assert a.val_acc == b.val_acc and a.val_loss == pytest.approx(b.val_loss, rel=1e-10)


def test_lbfgs_on_digits_reaches_numpy_optimum(xp_device):
    """Full-batch L-BFGS on load_digits in float64: the same optimum to 1e-6 relative."""
    from sklearn.datasets import load_digits
    xp, device = xp_device
    digits = load_digits()
    X, y = digits.data.astype(np.float64), digits.target
    models = [sr.SoftmaxRegression(64, 10, seed=0, dtype=np.float64, input_scale=1 / 16) for _ in range(2)]
    options = dict(solver="lbfgs", weight_decay=1e-3, tol=1e-9, max_iter=400)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sr.ConvergenceWarning)
        sr.fit(models[0], X, y, **options)
        sr.fit(models[1], to_device(X, xp, device), to_device(y, xp, device), **options)
    W0, W1 = models[0].W, to_numpy(models[1].W)
    assert np.abs(W1 - W0).max() <= 1e-6 * np.abs(W0).max()
    assert np.abs(to_numpy(models[1].b) - models[0].b).max() <= 1e-6 * np.abs(models[0].b).max()


def test_predictions_answer_in_the_library_of_x(xp_device):
    xp, device = xp_device
    X, y = _data()
    model = sr.SoftmaxRegression(12, 4, sigma=0.5, seed=3, input_scale=1 / 255)
    Xd = to_device(X, xp, device)
    for method in ("logits", "predict_proba", "predict"):
        got = getattr(model, method)(Xd)                     # a NumPy model, X of another library
        assert not isinstance(got, np.ndarray)
        np.testing.assert_allclose(to_numpy(got), getattr(model, method)(X), rtol=1e-5, atol=1e-6)
    loss, acc = model.evaluate(Xd, to_device(y, xp, device))
    assert type(loss) is float and type(acc) is float
    assert (loss, acc) == pytest.approx(model.evaluate(X, y), rel=1e-5)
    model.to(*_name_device(xp, device))                      # a moved model, NumPy X
    np.testing.assert_array_equal(model.predict(X), to_numpy(model.predict(Xd)))


def test_to_round_trips_and_model_files_cross_libraries(xp_device, tmp_path):
    xp, device = xp_device
    name, _ = _name_device(xp, device)
    model = sr.SoftmaxRegression(12, 4, sigma=0.5, seed=3, input_scale=1 / 255)
    model.set_standardization(np.linspace(0, 1, 12), np.linspace(0.5, 1, 12))
    W = model.W.copy()
    assert model.to(name, "cpu") is model and model.backend == name
    assert str(model.W.dtype).endswith("float32")
    sr.save_model(model, tmp_path / "from_xp.safetensors")                     # saved from the library
    back = sr.load_model(tmp_path / "from_xp.safetensors")
    assert isinstance(back.W, np.ndarray) and np.array_equal(back.W, W) and back.mean is not None
    np.testing.assert_array_equal(to_numpy(model.to("numpy").W), W)
    sr.save_model(back, tmp_path / "from_numpy.safetensors")
    moved = sr.load_model(tmp_path / "from_numpy.safetensors", backend=name, device="cpu")
    assert moved.backend == name and np.array_equal(to_numpy(moved.W), W)


def test_absent_library_or_device_is_one_line():
    with pytest.raises(sr.InvalidArgumentError, match="backend: expected one of"):
        resolve("mxnet")
    with pytest.raises(sr.InvalidArgumentError, match="device: expected cpu, cuda or cuda:N"):
        resolve("numpy", "gpu")
    with pytest.raises(sr.InvalidArgumentError, match="device: numpy runs on the cpu only"):
        resolve("numpy", "cuda")


def test_cli_train_with_torch_scores_like_the_numpy_run(tmp_path, capsys):
    """`softmaxreg train --backend torch --device cpu`: a run folder whose model `evaluate` (NumPy)
    scores within 0.002 of the NumPy run's accuracy."""
    _namespace("torch")
    accuracy = {}
    for backend in ("numpy", "torch"):
        out = tmp_path / backend
        assert main(["train", "--backend", backend, "--device", "cpu", "--epochs", "1", "--out", str(out),
                     "--no-plots", "--quiet"]) == 0
        config = json.loads((out / "config.json").read_text())
        assert (config["settings"]["backend"], config["settings"]["device"]) == (backend, "cpu")
        capsys.readouterr()
        assert main(["evaluate", str(out / "model.safetensors"), "--out", str(tmp_path / f"eval-{backend}"),
                     "--json"]) == 0
        accuracy[backend] = json.loads(capsys.readouterr().out)["accuracy"]
    assert abs(accuracy["torch"] - accuracy["numpy"]) <= 0.002


@pytest.mark.parametrize("args", [["--backend", "numpy", "--device", "cuda"],
                                  ["--backend", "torch", "--device", "cuda:7"],
                                  ["--backend", "cupy"],
                                  ["--device", "tpu"]])
def test_cli_absent_library_or_device_exits_2_writing_nothing(args, tmp_path, capsys):
    library = args[1] if args[0] == "--backend" else "numpy"
    if _installed_with_device(library, args):
        pytest.skip(f"{library} and the device are available here")
    assert main(["train", *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("softmaxreg: error: --")
    assert not (tmp_path / "run").exists()


def _installed_with_device(library, args):
    import importlib.util
    if library == "numpy" or importlib.util.find_spec(library) is None:
        return False
    try:
        resolve(library, args[3] if len(args) > 3 else "cuda")
        return True
    except sr.InvalidArgumentError:
        return False


def test_numpy_runs_import_no_other_array_library():
    code = ("import sys, numpy as np, softmaxreg as sr\n"
            "X = np.random.default_rng(0).integers(0, 255, (100, 8), dtype=np.uint8); y = np.arange(100) % 3\n"
            "m = sr.SoftmaxRegression(8, 3); sr.fit(m, X, y, epochs=1); m.predict(X); m.evaluate(X, y)\n"
            "sr.fit(sr.SoftmaxRegression(8, 3), X, y, solver='lbfgs', max_iter=3)\n"
            "print(sorted(n for n in ('torch', 'jax', 'cupy', 'array_api_compat', 'array_api_extra',"
            " 'array_api_strict') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_resumed_from_its_checkpoint_continues_on_the_library(tmp_path):
    """Checkpoints hold NumPy arrays; a torch run resumed from one (momentum, early stopping)
    ends with the bits of the uninterrupted torch run."""
    from softmaxreg.checkpoint import Checkpoint, load_checkpoint
    xp, device = _namespace("torch")
    X, y = _data(400)
    Xd, yd = to_device(X, xp, device), to_device(y, xp, device)
    options = dict(batch_size=64, lr=0.3, momentum=0.9, early_stopping=True, patience=9, seed=4)
    whole = sr.SoftmaxRegression(12, 4, seed=1, input_scale=1 / 255)
    sr.fit(whole, Xd, yd, epochs=3, **options)
    first = sr.SoftmaxRegression(12, 4, seed=1, input_scale=1 / 255)
    path = tmp_path / "checkpoint.safetensors"
    sr.fit(first, Xd, yd, epochs=1, callbacks=[Checkpoint(path)], **options)
    model, state = load_checkpoint(path)
    sr.fit(model, Xd, yd, epochs=3, resume=state, **options)
    assert model.backend == "torch"
    np.testing.assert_array_equal(to_numpy(model.W), to_numpy(whole.W))


def test_a_moved_model_follows_numpy_data_back():
    xp, device = _namespace("torch")
    X, y = _data()
    model = sr.SoftmaxRegression(12, 4, seed=1, input_scale=1 / 255).to("torch", "cpu")
    reference = sr.SoftmaxRegression(12, 4, seed=1, input_scale=1 / 255)
    sr.fit(model, X, y, epochs=2)
    sr.fit(reference, X, y, epochs=2)
    assert model.backend == "numpy" and np.array_equal(model.W, reference.W)


def test_block_shuffle_is_refused_on_another_library(xp_device):
    xp, device = xp_device
    X, y = _data()
    model = sr.SoftmaxRegression(12, 4, seed=0)
    with pytest.raises(sr.InvalidArgumentError, match="^shuffle: 'blocks' streams NumPy memory maps"):
        sr.fit(model, to_device(X, xp, device), to_device(y, xp, device), epochs=1, shuffle="blocks")


def test_sgd_steps_with_weight_decay_do_not_evaluate_the_penalty(monkeypatch):
    """The penalty's value needs a device synchronisation; SGD's steps use only its gradient."""
    from softmaxreg import generic

    xp, device = _namespace("torch")

    def no_value(*args, **kwargs):
        raise AssertionError("the penalty's value was computed in an SGD step")

    monkeypatch.setattr(generic, "penalty", no_value)
    X, y = _data()
    torch_model = sr.SoftmaxRegression(12, 4, seed=0, input_scale=1 / 255)
    sr.fit(torch_model, to_device(X, xp, device), to_device(y, xp, device), epochs=2, weight_decay=0.01, momentum=0.9)
    numpy_model = sr.SoftmaxRegression(12, 4, seed=0, input_scale=1 / 255)
    sr.fit(numpy_model, X, y, epochs=2, weight_decay=0.01, momentum=0.9)
    np.testing.assert_allclose(to_numpy(torch_model.W), numpy_model.W, atol=1e-6)


def test_lbfgs_state_refuses_a_library_without_float64():
    """A resumed L-BFGS on JAX without x64 would silently run in float32: refused, as at the start."""
    code = ("import numpy as np, softmaxreg as sr; from softmaxreg.solvers import LBFGS\n"
            "import jax.numpy as jnp\n"
            "state = {'x': np.zeros(6), 'g': np.zeros(6), 'S': np.zeros((10, 6)), 'Y': np.zeros((10, 6)), 'f': 1.0,"
            " 'pairs': 0, 'evaluations': 1, 'extra': [1.0, 0.5]}\n"
            "try:\n"
            "    LBFGS().load_state_dict(state, (jnp.zeros((1, 3), dtype=jnp.float32), jnp.zeros(3)))\n"
            "except sr.InvalidArgumentError as e:\n"
            "    print(e)\n")
    pytest.importorskip("jax", reason="jax is not installed")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "solver lbfgs: keeps float64 vectors" in done.stdout, done.stderr
