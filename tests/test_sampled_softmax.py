"""Sampled softmax (sampled.py): equal to the full softmax when every class is a candidate, its
gradient against finite differences, its bias against the full gradient shrinking as S grows,
seeded and resumable bit for bit, sparse batches, and the CLI's and the estimator's options."""

import math

import numpy as np
import pytest

from softmaxreg import SoftmaxRegression, fit
from softmaxreg import generic
from softmaxreg.checkpoint import Checkpoint, load_checkpoint
from softmaxreg.errors import InvalidArgumentError
from softmaxreg.sampled import CandidateSampler, SampledSoftmax, proposal, sampled_loss_and_grad_sums

from .conftest import cli_refuses, figures
from .test_gradients import numeric_grad


def standardized_model(rng, d, k):
    """A float64 model with an input scale, a standardization and a non-zero bias (every term of Z)."""
    model = SoftmaxRegression(d, k, sigma=0.5, seed=1, dtype=np.float64, input_scale=0.5)
    model.set_standardization(rng.normal(size=d), rng.uniform(0.5, 2.0, size=d))
    model.b = rng.normal(size=k)
    return model


def dense(block, dW, db, d, k):
    """The block's gradient as full (d, k), (k,) arrays, zero elsewhere."""
    R, cols, full_W, full_b = block.rows, block.cols, np.zeros((d, k)), np.zeros(k)
    full_W[(slice(None), cols) if R is None else np.ix_(R, cols)], full_b[cols] = dW, db
    return full_W, full_b


@pytest.mark.parametrize("log_e", [0.0, -1.3])
def test_with_every_class_a_candidate_the_loss_and_gradient_are_the_full_softmaxs(log_e):
    rng = np.random.default_rng(0)
    n, d, k = 12, 5, 7
    model = standardized_model(rng, d, k)
    x, y, w = rng.normal(size=(n, d)), rng.integers(0, k, n), rng.uniform(0.5, 2, n)
    loss, (_, cols, _), dW, dbc = sampled_loss_and_grad_sums(model, x, y, w, 4.0, np.arange(k)[::-1].copy(),
                                                     np.full(k, log_e), np.full(n, log_e))
    full_loss, _, full_dW, full_db = generic.loss_and_grad_sums(np, model, x, y, w, 4.0)
    assert cols.tolist() == list(range(k))
    np.testing.assert_allclose(loss, full_loss, rtol=1e-12)
    np.testing.assert_allclose(dW, full_dW, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dbc, full_db, rtol=1e-10, atol=1e-14)


def test_the_sampler_drawing_every_class_gives_the_full_softmax():
    rng = np.random.default_rng(1)
    n, d, k = 20, 4, 6
    model = standardized_model(rng, d, k)
    x, y = rng.normal(size=(n, d)), rng.integers(0, k, n)
    objective = SampledSoftmax(model, proposal("unigram", k, np.arange(k).repeat(3)), k, np.random.default_rng(0))
    loss, cols, dW, db = objective.chunk(x, y, None, n)
    full = generic.loss_and_grad_sums(np, model, x, y, None, float(n))
    np.testing.assert_allclose(loss, full[0], rtol=1e-12)
    np.testing.assert_allclose(dense(cols, dW, db, d, k)[0], full[2], rtol=1e-10, atol=1e-14)


def test_the_sampled_gradient_matches_finite_differences_of_the_sampled_loss():
    rng = np.random.default_rng(2)
    n, d, k = 9, 4, 30
    model = standardized_model(rng, d, k)
    x, w = rng.normal(size=(n, d)), rng.uniform(0.5, 2, n)
    sampled = np.array([3, 17, 8, 25, 0])
    y = np.array([3, 3, 8, 11, 2, 29, 25, 11, 4])                    # accidental hits: 3, 8, 25
    log_e_sampled, log_e_true = np.log(rng.uniform(0.05, 1, 5)), np.log(rng.uniform(0.05, 1, n))

    def loss():
        return sampled_loss_and_grad_sums(model, x, y, w, 3.0, sampled, log_e_sampled, log_e_true)[0] / 3.0

    _, block, dW, db = sampled_loss_and_grad_sums(model, x, y, w, 3.0, sampled, log_e_sampled, log_e_true)
    full_W, full_b = dense(block, dW, db, d, k)
    np.testing.assert_allclose(full_W, numeric_grad(loss, model.W), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(full_b, numeric_grad(loss, model.b), rtol=1e-6, atol=1e-9)
    assert set(block.cols.tolist()) == set(y.tolist()) | set(sampled.tolist())


def test_a_sparse_batch_gives_the_dense_gradient_on_the_rows_its_non_zeros_use():
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(4)
    n, d, k = 10, 40, 30
    model = SoftmaxRegression(d, k, sigma=0.5, seed=1, dtype=np.float64, input_scale=0.5)
    model.set_standardization(np.zeros(d), rng.uniform(0.5, 2.0, size=d))       # scale only, as sparse X takes
    x = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.1)
    y, w, sampled = rng.integers(0, k, n), rng.uniform(0.5, 2, n), np.array([4, 0, 22, 9])
    args = (y, w, 2.0, sampled, np.log(rng.uniform(0.1, 1, 4)), np.log(rng.uniform(0.1, 1, n)))
    loss, block, dW, db = sampled_loss_and_grad_sums(model, sp.csr_array(x), *args)
    dense_loss, dense_block, dense_dW, dense_db = sampled_loss_and_grad_sums(model, x, *args)
    assert block.rows.tolist() == np.flatnonzero(x.any(axis=0)).tolist() and dense_block.rows is None
    assert loss == pytest.approx(dense_loss, rel=1e-12)
    np.testing.assert_allclose(dense(block, dW, db, d, k)[0], dense(dense_block, dense_dW, dense_db, d, k)[0],
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("sampler", ["uniform", "log-uniform", "unigram"])
def test_the_bias_against_the_full_gradient_shrinks_as_more_classes_are_sampled(sampler):
    """The mean of the sampled gradient over many draws against the full gradient, relative error
    |mean - full| / |full| (W and b together) for S = k/20, k/5, k/2: it falls as S grows."""
    rng = np.random.default_rng(3)
    n, d, k, draws = 64, 6, 200, 1000
    model = SoftmaxRegression(d, k, sigma=0.3, seed=2, dtype=np.float64)
    x = rng.normal(size=(n, d))
    labels = np.concatenate([np.arange(k), np.minimum(rng.zipf(1.3, 5000) - 1, k - 1)])   # skewed, every class
    y = labels[-n:]
    _, _, full_W, full_b = generic.loss_and_grad_sums(np, model, x, y, None, float(n))
    q = proposal(sampler, k, labels)
    errors = {}
    for S in (k // 20, k // 5, k // 2):
        objective = SampledSoftmax(model, q, S, np.random.default_rng(S))
        mean_W, mean_b = np.zeros((d, k)), np.zeros(k)
        for _ in range(draws):
            _, (_, cols, _), dW, db = objective.chunk(x, y, None, n)
            mean_W[:, cols] += dW / draws
            mean_b[cols] += db / draws
        errors[S] = math.sqrt((np.sum((mean_W - full_W) ** 2) + np.sum((mean_b - full_b) ** 2))
                              / (np.sum(full_W ** 2) + np.sum(full_b ** 2)))
    print(f"{sampler}: relative error of the mean sampled gradient ({draws} draws) against the full gradient:",
          ", ".join(f"S={S}: {e:.3f}" for S, e in errors.items()))
    a, b, c = errors.values()
    assert a > b > c


def test_proposals():
    k = 5
    np.testing.assert_allclose(proposal("log-uniform", k), [math.log((c + 2) / (c + 1)) / math.log(k + 1)
                                                            for c in range(k)])
    counts = np.array([4, 0, 1, 9, 2])
    np.testing.assert_allclose(proposal("unigram", k, np.arange(k).repeat(counts)), counts ** 0.75 / np.sum(counts ** 0.75))
    np.testing.assert_allclose(proposal("uniform", k), np.full(k, 0.2))
    sampler = CandidateSampler(proposal("unigram", k, np.arange(k).repeat(counts)), 3)
    for _ in range(50):
        drawn = sampler.draw(np.random.default_rng(_))
        assert len(set(drawn.tolist())) == 3 and 1 not in drawn            # distinct, never a class of Q 0
        assert sampler.tries >= 3
    with pytest.raises(InvalidArgumentError, match="num_sampled"):
        CandidateSampler(proposal("unigram", k, np.arange(k).repeat(counts)), 5)   # only 4 classes can be drawn


def test_expected_counts_are_the_inclusion_probabilities_of_T_draws():
    """E_c = 1 - (1 - Q_c)^T: for draws of a fixed T (here T = the draws of one round, checked by
    simulation) the frequency with which a class is among them."""
    q = proposal("log-uniform", 8)
    sampler = CandidateSampler(q, 3)
    sampler.tries = 4
    rng = np.random.default_rng(0)
    hits = np.zeros(8)
    for _ in range(20000):
        hits[np.unique(rng.choice(8, 4, p=q))] += 1
    np.testing.assert_allclose(np.exp(sampler.log_expected_count(np.arange(8))), hits / 20000, atol=0.015)


def data(seed=0, n=600, d=12, k=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.argmax(X @ rng.normal(size=(d, k)) + rng.gumbel(size=(n, k)), axis=1)
    return X, y


SAMPLED = dict(loss="sampled", num_sampled=8, epochs=3, lr=0.5, batch_size=32)


@pytest.mark.parametrize("sampler", ["uniform", "log-uniform", "unigram"])
def test_the_same_seed_gives_the_same_bits_and_validation_is_the_full_softmax(sampler):
    X, y = data()
    runs = []
    for seed in (0, 0, 1):
        model = SoftmaxRegression(12, 40, seed=seed, dtype=np.float64)
        history = fit(model, X, y, seed=seed, sampler=sampler, validation_data=(X[:100], y[:100]), **SAMPLED)
        runs.append((model.W.tobytes(), model.b.tobytes(), figures(history)))
    assert runs[0] == runs[1] and runs[0][0] != runs[2][0]
    assert history[-1].val_loss == pytest.approx(model.evaluate(X[:100], y[:100])[0], rel=1e-12)
    assert all(math.isnan(r.train_acc) for r in history) and history[-1].train_loss < history[0].train_loss


def test_sampled_training_learns():
    X, y = data(n=2000)
    model = SoftmaxRegression(12, 40, seed=0, dtype=np.float64)
    before = model.evaluate(X, y)[0]
    fit(model, X, y, seed=0, **{**SAMPLED, "epochs": 10})
    assert model.evaluate(X, y)[0] < before - 0.5


def test_a_resumed_sampled_run_continues_bit_for_bit(tmp_path):
    X, y = data()

    class AtEpoch2(Checkpoint):
        def on_epoch_end(self, record, history):
            if record.epoch == 2:
                super().on_epoch_end(record, history)

    whole = SoftmaxRegression(12, 40, seed=0, dtype=np.float64)
    history = fit(whole, X, y, seed=0, callbacks=[AtEpoch2(tmp_path / "c.safetensors")], **{**SAMPLED, "epochs": 4})
    model, state = load_checkpoint(tmp_path / "c.safetensors")
    assert state.sampler_state is not None
    resumed = fit(model, X, y, seed=0, resume=state, **{**SAMPLED, "epochs": 4})
    assert model.W.tobytes() == whole.W.tobytes() and model.b.tobytes() == whole.b.tobytes()
    assert figures(resumed)[1:] == figures(history)[1:]


def test_sparse_batches_train_as_dense_ones():
    sp = pytest.importorskip("scipy.sparse")
    X, y = data()
    X[np.abs(X) < 1.0] = 0.0                                           # two thirds zeros
    models = []
    for rows in (X, sp.csr_array(X)):
        model = SoftmaxRegression(12, 40, seed=0, dtype=np.float64)
        fit(model, rows, y, seed=0, **SAMPLED)
        models.append(model)
    np.testing.assert_allclose(models[0].W, models[1].W, rtol=1e-9, atol=1e-12)


def test_options_that_sampled_softmax_does_not_take_are_refused():
    X, y = data(n=50)
    model = SoftmaxRegression(12, 40, seed=0)
    for options, message in [({"num_sampled": 40}, "num_sampled: expected 1 <= S < 40"),
                             ({"momentum": 0.9}, "momentum"),
                             ({"num_sampled": None}, "needs the number of classes"),
                             ({"label_smoothing": 0.1}, "label smoothing")]:
        with pytest.raises(InvalidArgumentError, match=message):
            fit(model, X, y, **{**SAMPLED, **options})
    with pytest.raises(InvalidArgumentError, match="full-batch solver 'lbfgs'"):
        fit(model, X, y, solver="lbfgs", loss="sampled", num_sampled=8)
    with pytest.raises(InvalidArgumentError, match="goes with loss 'sampled'"):
        fit(model, X, y, num_sampled=3)


@pytest.mark.parametrize("args, message", [
    (["--num-sampled", "3"], "--num-sampled: goes with loss 'sampled'"),
    (["--loss", "sampled", "--num-sampled", "10"], "--num-sampled: expected 1 <= S < 10"),
    (["--loss", "sampled"], "--num-sampled: loss 'sampled' needs the number"),
    (["--loss", "sampled", "--num-sampled", "3", "--solver", "lbfgs"], "not the full-batch solver 'lbfgs'"),
    (["--loss", "sampled", "--num-sampled", "3", "--momentum", "0.9"], "--loss: 'sampled' takes plain SGD steps"),
    (["--sampler", "uniform"], "--sampler: goes with --loss sampled"),
    (["--loss", "sampled", "--num-sampled", "0"], "--num-sampled: expected an integer >= 1"),
    (["--loss", "sampled", "--num-sampled", "3", "--backend", "array_api_strict"], "--loss: 'sampled' trains with NumPy"),
])
def test_cli_errors_are_one_line_and_exit_2(args, message, digits_dir, tmp_path, capsys):
    cli_refuses(["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "run"), *args], tmp_path, capsys,
                message)
    assert not (tmp_path / "run").exists()


def test_the_cli_trains_with_sampled_softmax(digits_dir, tmp_path):
    from softmaxreg.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(out), "--loss", "sampled", "--num-sampled", "4",
                 "--sampler", "uniform", "--epochs", "3", "--lr", "0.5", "--quiet", "--no-plots"]) == 0
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()]
    assert rows[0] == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds"]
    assert all(r[2] == "nan" and float(r[5]) > 0 for r in rows[1:])      # no train accuracy; seconds measured
    assert float(rows[-1][4]) > 0.3                                          # chance: 0.1


@pytest.mark.filterwarnings("ignore::softmaxreg.errors.ConvergenceWarning")
def test_the_estimator_takes_sampled_softmax():
    pytest.importorskip("sklearn")
    from softmaxreg.sklearn import SoftmaxRegressionClassifier

    X, y = data(n=1000)
    clf = SoftmaxRegressionClassifier(solver="sgd", loss="sampled", num_sampled=8, momentum=0.0, max_iter=10,
                                      random_state=0, tol=0.0).fit(X, y)
    assert clf.score(X, y) > 0.3                                        # chance: 1/40
    with pytest.raises(InvalidArgumentError, match="momentum"):
        SoftmaxRegressionClassifier(solver="sgd", loss="sampled", num_sampled=8).fit(X, y)
    with pytest.raises(InvalidArgumentError, match="lbfgs"):
        SoftmaxRegressionClassifier(loss="sampled", num_sampled=8).fit(X, y)


def test_arrays_of_other_libraries_are_refused_in_one_line():
    xp = pytest.importorskip("array_api_strict")
    X, y = data(n=50)
    with pytest.raises(InvalidArgumentError, match="NumPy arrays or scipy.sparse matrices in memory, not array_api_strict"):
        fit(SoftmaxRegression(12, 40), xp.asarray(X), xp.asarray(y), **SAMPLED)


def test_an_interrupted_cli_run_resumes_bit_for_bit(digits_dir, tmp_path, monkeypatch):
    from softmaxreg import load_model
    from softmaxreg.cli import main

    args = ["train", "--data-dir", str(digits_dir), "--loss", "sampled", "--num-sampled", "4", "--epochs", "4",
            "--lr", "0.5", "--quiet", "--no-plots"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0

    def interrupt_after_two(self):                   # within epoch 3, after epoch 2's checkpoint
        if self.saved == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Checkpoint, "on_step_end", interrupt_after_two, raising=False)
        assert main([*args, "--out", str(tmp_path / "run")]) == 130
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet", "--no-plots"]) == 0
    a, b = (load_model(tmp_path / run / "model.safetensors") for run in ("whole", "run"))
    assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()
    assert figures((tmp_path / "whole" / "metrics.csv").read_text()) == figures((tmp_path / "run" / "metrics.csv").read_text())
