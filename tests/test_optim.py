"""Optimizer, schedules and training options, each against its definition."""

import math

import numpy as np
import pytest

from softmaxreg import SGD, Callback, InvalidArgumentError, SoftmaxRegression, fit
from softmaxreg.solvers import LRSchedule
from softmaxreg.options import TrainConfig
from softmaxreg.objective import SoftmaxCrossEntropy


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True), (0.5, True)])
def test_sgd_follows_its_recurrence(momentum, nesterov):
    rng = np.random.default_rng(0)
    p = rng.normal(size=(3, 2))
    q, v = p.copy(), np.zeros_like(p)
    opt = SGD(momentum=momentum, nesterov=nesterov)
    for lr in (0.05, 0.1, 0.02, 0.05, 0.3):
        g = rng.normal(size=p.shape)
        v = momentum * v + g
        step = g + momentum * v if nesterov else (v if momentum else g)
        q = q - lr * step
        opt.step([p], [g.copy()], lr)
    np.testing.assert_allclose(p, q, rtol=1e-12)


def test_the_penalty_gradient_skips_the_bias():
    model = SoftmaxRegression(2, 2, sigma=0.0)
    model.W[...], model.b[...] = 1.0, 1.0
    dW = np.zeros_like(model.W)
    assert SoftmaxCrossEntropy(model, weight_decay=1.0).add_penalty(dW) == pytest.approx(2.0)   # (1/2) |W|^2
    np.testing.assert_array_equal(dW, model.W)


@pytest.mark.parametrize("momentum, nesterov, wd", [(0.0, False, 0.3), (0.9, False, 0.01), (0.5, True, 0.1)])
def test_weight_decay_in_the_objective_leaves_sgd_trajectories_unchanged(fashion, momentum, nesterov, wd):
    """The penalty used to live in SGD.step (g <- g + wd p for W only, then momentum); with it in
    the objective, fit must follow that old recurrence bit for bit, replayed here in a plain loop."""
    X, y = fashion.train_images[:300], fashion.train_labels[:300].astype(np.int64)
    model = SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
    reference = SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
    fit(model, X, y, epochs=2, batch_size=64, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd,
        seed=np.random.default_rng(3))
    rng, velocity = np.random.default_rng(3), [np.zeros_like(reference.W), np.zeros_like(reference.b)]
    plain = SoftmaxCrossEntropy(reference)
    for _ in range(2):
        order = rng.permutation(len(y))
        for start in range(0, len(y), 64):
            rows = order[start:start + 64]
            _, dW, db = plain.loss_and_grad(X[rows], y[rows])
            for i, (p, g, decay) in enumerate([(reference.W, dW, True), (reference.b, db, False)]):
                if decay:
                    g += np.float32(wd) * p
                if momentum:
                    velocity[i] *= np.float32(momentum)
                    velocity[i] += g
                    if nesterov:
                        g += np.float32(momentum) * velocity[i]
                    else:
                        g[...] = velocity[i]
                g *= np.float32(0.1)
                p -= g
    assert model.W.tobytes() == reference.W.tobytes() and model.b.tobytes() == reference.b.tobytes()


def test_schedules_follow_their_formulas():
    steps = 10
    const = LRSchedule(0.5, "constant", steps_per_epoch=steps, epochs=4)
    assert const.is_constant and const(37) == 0.5
    step = LRSchedule(0.5, "step", steps_per_epoch=steps, epochs=6, step_epochs=2, gamma=0.1)
    assert [step(s) for s in (0, 19, 20, 39, 40, 59)] == pytest.approx([0.5, 0.5, 0.05, 0.05, 0.005, 0.005])
    cos = LRSchedule(0.5, "cosine", steps_per_epoch=steps, epochs=4, warmup_epochs=1)
    assert [cos(s) for s in range(10)] == pytest.approx([0.5 * (s + 1) / 10 for s in range(10)])
    span = 40 - 10 - 1
    for s in (10, 17, 25, 39):
        assert cos(s) == pytest.approx(0.25 * (1 + math.cos(math.pi * (s - 10) / span)))
    assert cos(10) == pytest.approx(0.5) and cos(39) == pytest.approx(0.0, abs=1e-12)


def test_fit_applies_the_schedule_each_step(digits_dir):
    from softmaxreg import load_fashion_mnist

    data = load_fashion_mnist(digits_dir)
    seen = []

    class Spy(SGD):
        def step(self, params, grads, lr):
            seen.append(lr)
            super().step(params, grads, lr)
    model = SoftmaxRegression(64, 10, seed=0, input_scale=1 / 255)
    fit(model, data.train_images, data.train_labels, epochs=3, batch_size=500, lr=0.2, schedule="cosine",
        warmup_epochs=1, optimizer=Spy())
    expected = LRSchedule(0.2, "cosine", steps_per_epoch=3, epochs=3, warmup_epochs=1)
    assert seen == pytest.approx([expected(s) for s in range(9)])


@pytest.fixture(scope="module")
def small(fashion):
    return fashion.train_images[:600], fashion.train_labels[:600].astype(np.int64)


def train(small, **options):
    model = SoftmaxRegression(784, 10, seed=0, dtype=np.float64, input_scale=1 / 255)
    history = fit(model, *small, seed=1, **{"epochs": 2, "batch_size": 64, "lr": 0.2, **options})
    return model, history


def test_one_hot_soft_targets_and_unit_weights_equal_the_fast_path(small):
    X, y = small
    base, _ = train((X, y))
    soft, _ = train((X, np.eye(10)[y]))
    weighted, _ = train((X, y), sample_weight=np.ones(len(y)))
    for other in (soft, weighted):
        np.testing.assert_allclose(other.W, base.W, rtol=1e-9, atol=1e-12)


def test_label_smoothing_equals_training_on_smoothed_targets(small):
    X, y = small
    smoothed, _ = train((X, y), label_smoothing=0.2)
    explicit, _ = train((X, 0.8 * np.eye(10)[y] + 0.02))
    np.testing.assert_allclose(smoothed.W, explicit.W, rtol=1e-9, atol=1e-12)


def test_sample_weights_scale_each_example_gradient(small):
    X, y = small
    w = np.linspace(0.5, 2.0, len(y))
    model = SoftmaxRegression(784, 10, sigma=0.1, seed=0, dtype=np.float64, input_scale=1 / 255)
    loss, dW, db = SoftmaxCrossEntropy(model).loss_and_grad(X, y, sample_weight=w)
    per_example = [SoftmaxCrossEntropy(model).loss_and_grad(X[i:i + 1], y[i:i + 1]) for i in range(0, len(y), 50)]
    # L = (1/n) sum w_i l_i: check against the per-example pieces on every 50th row
    sub = slice(0, len(y), 50)
    l_sub, dW_sub, _ = SoftmaxCrossEntropy(model).loss_and_grad(X[sub], y[sub], sample_weight=w[sub])
    assert l_sub == pytest.approx(np.mean([w[i] * p[0] for i, p in zip(range(0, len(y), 50), per_example)]))
    np.testing.assert_allclose(dW_sub, np.mean([w[i] * p[1] for i, p in zip(range(0, len(y), 50), per_example)],
                                              axis=0), rtol=1e-9, atol=1e-14)


def test_standardized_training_equals_training_on_standardized_inputs(small):
    X, y = small
    Xf = X.reshape(len(X), -1) / 255.0
    mean, std = Xf.mean(axis=0), Xf.std(axis=0)
    ours, _ = train((X, y), standardize=True)
    manual = SoftmaxRegression(784, 10, seed=0, dtype=np.float64)
    fit(manual, (Xf - mean) / np.where(std > 0, std, 1), y, epochs=2, batch_size=64, lr=0.2, seed=1)
    np.testing.assert_allclose(ours.W, manual.W, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.logits(X), manual.logits((Xf - mean) / np.where(std > 0, std, 1)), rtol=1e-7,
                               atol=1e-9)


def test_early_stopping_keeps_the_best_held_out_epoch(small):
    X, y = small
    snapshots = {}

    class Snap(Callback):
        def on_epoch_end(self, record, history):
            snapshots[record.epoch] = model.W.copy()
    model = SoftmaxRegression(784, 10, seed=0, dtype=np.float64, input_scale=1 / 255)
    history = fit(model, X, y, epochs=40, batch_size=32, lr=2.0, seed=5, early_stopping=True,
                  validation_fraction=0.25, patience=3, callbacks=[Snap()])
    held = np.sort(np.random.default_rng(5).permutation(len(y))[:150])
    losses = {}
    for epoch, W in snapshots.items():
        probe = SoftmaxRegression(784, 10, dtype=np.float64, input_scale=1 / 255)
        probe.W[...] = W
        losses[epoch] = probe.evaluate(X[held], y[held])[0]
    assert history.stopped_early and len(history) == history.best_epoch + 3
    assert history.best_epoch == min(losses, key=losses.get)
    np.testing.assert_array_equal(model.W, snapshots[history.best_epoch])


def test_converge_stops_when_the_training_loss_plateaus(small):
    _, history = train(small, converge=True, tol=1e9, patience=1, epochs=2)
    assert len(history) == 2 and history.stopped_early
    model, history = train(small, converge=True, tol=0.0, patience=5)
    assert len(history) == 2 and not history.stopped_early


@pytest.mark.parametrize("options, message", [
    (dict(momentum=1.5), "momentum"), (dict(weight_decay=-1), "weight_decay"), (dict(schedule="linear"), "schedule"),
    (dict(label_smoothing=1.0), "label_smoothing"), (dict(validation_fraction=0.0), "validation_fraction"),
    (dict(class_weight="heavy"), "class_weight"), (dict(warmup_epochs=-1), "warmup_epochs"),
])
def test_bad_options_are_rejected(options, message):
    with pytest.raises(InvalidArgumentError, match=message):
        TrainConfig(**options)
