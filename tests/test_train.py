"""The training loop against an independent, plainly written implementation, and real data."""

import numpy as np
import pytest

from softmaxreg import SGD, Callback, InvalidArgumentError, SoftmaxRegression, fit
from .conftest import figures


def reference_sgd(W, b, X, y, epochs, batch_size, lr, rng):
    """The lesson's loop written out plainly in float64: a fresh permutation per epoch,
    probabilities by softmax, gradient X^T (P - Y) / B, no buffers, no folding."""
    W, b = W.astype(np.float64), b.astype(np.float64)
    X = X.reshape(len(X), -1).astype(np.float64) / 255
    k = W.shape[1]
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            Z = X[idx] @ W + b
            P = np.exp(Z - Z.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            E = (P - np.eye(k)[y[idx]]) / len(idx)
            W = W - lr * X[idx].T @ E
            b = b - lr * E.sum(axis=0)
    return W, b


# With batch 1, lr 0.1 takes steps of lr * |x|^2 ~ 20 on single images: a chaotic regime where
# rounding differences grow exponentially, so that case uses a stable learning rate.
@pytest.mark.parametrize("batch_size, lr", [(1, 0.002), (17, 0.1), (256, 0.1), (5000, 0.1)])
def test_fit_matches_the_plain_reference_loop(fashion, batch_size, lr):
    X, y = fashion.train_images[:3000], fashion.train_labels[:3000]
    model = SoftmaxRegression(784, 10, seed=0, dtype=np.float64, input_scale=1 / 255)
    W_ref, b_ref = reference_sgd(model.W, model.b, X, y, 2, batch_size, lr, np.random.default_rng(9))
    fit(model, X, y, epochs=2, batch_size=batch_size, lr=lr, seed=np.random.default_rng(9))
    np.testing.assert_allclose(model.W, W_ref, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(model.b, b_ref, rtol=1e-9, atol=1e-11)


def test_float32_training_stays_within_rounding_of_float64(fashion):
    X, y = fashion.train_images[:5000], fashion.train_labels[:5000]
    models = [SoftmaxRegression(784, 10, seed=1, dtype=dt, input_scale=1 / 255) for dt in (np.float32, np.float64)]
    for m in models:
        fit(m, X, y, epochs=2, seed=4)
    np.testing.assert_allclose(models[0].W, models[1].W, rtol=1e-3, atol=2e-5)


def test_history_reports_the_epoch_averages(digits_dir):
    from softmaxreg import load_fashion_mnist

    data = load_fashion_mnist(digits_dir)

    class Record(Callback):
        def __init__(self):
            self.steps, self.total = 0, None

        def on_train_begin(self, run):
            self.total = run.total_steps

        def on_step_end(self):
            self.steps += 1

    model = SoftmaxRegression(64, 10, seed=0, input_scale=1 / 255)
    record = Record()
    history = fit(model, data.train_images, data.train_labels, epochs=3, batch_size=100, lr=0.5,
                  validation_data=(data.test_images, data.test_labels), callbacks=[record])
    assert record.total == record.steps == 3 * 15
    assert history.column("epoch") == [1, 2, 3]
    assert history[-1].val_acc > 0.85
    val_loss, val_acc = model.evaluate(data.test_images, data.test_labels)
    assert (history[-1].val_loss, history[-1].val_acc) == (val_loss, val_acc)
    assert history.to_csv().splitlines()[0] == "epoch,train_loss,train_acc,val_loss,val_acc,epoch_seconds"
    # the train figures are averages over the epoch: between the loss before and after it
    fresh = SoftmaxRegression(64, 10, seed=0, input_scale=1 / 255)
    assert fresh.evaluate(data.train_images, data.train_labels)[0] > history[0].train_loss


def test_same_seed_gives_bit_identical_weights(fashion):
    X, y = fashion.train_images[:4000], fashion.train_labels[:4000]
    runs = []
    for _ in range(2):
        model = SoftmaxRegression(784, 10, seed=11, input_scale=1 / 255)
        history = fit(model, X, y, epochs=2, seed=12)
        runs.append((model.W.tobytes(), model.b.tobytes(), figures(history)))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), "epochs"), (dict(epochs=2.5), "epochs"), (dict(batch_size=0), "batch_size"),
    (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"),
])
def test_nonsensical_hyperparameters_are_rejected(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        fit(SoftmaxRegression(4, 2), np.zeros((3, 4)), np.zeros(3, dtype=int), **kwargs)


def test_sgd_step_is_p_minus_lr_g():
    p, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    SGD().step([p], [g], 0.1)
    np.testing.assert_allclose(p, [0.95, 2.1])


def test_the_lessons_rate_and_a_sane_rate_1_never_count_as_divergence(fashion):
    for lr in (0.1, 1.0):
        model = SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
        history = fit(model, fashion.train_images, fashion.train_labels, epochs=3, lr=lr, seed=1)
        assert len(history) == 3


def test_an_absurd_rate_diverges_at_once_with_its_place(fashion):
    from softmaxreg import TrainingDivergedError

    model = SoftmaxRegression(784, 10, seed=0, input_scale=1 / 255)
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, step \d+.*smaller learning rate") as info:
        fit(model, fashion.train_images, fashion.train_labels, epochs=3, lr=1e6, seed=1)
    assert info.value.epoch == 1 and info.value.step <= 5 and len(info.value.history) == 0
