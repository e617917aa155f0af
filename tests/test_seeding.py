"""The seed rule: `SoftmaxRegression(seed=N)` then `fit(seed=N)` is `softmaxreg train --seed N`, bit for bit."""

import numpy as np

import softmaxreg as sr
from softmaxreg.cli import main
from softmaxreg.options import RECIPE_BEST
from softmaxreg.seeding import init_generator, shuffle_generator
from .conftest import figures


def test_an_integer_seed_splits_into_an_init_and_a_shuffle_stream():
    init, shuffle = np.random.SeedSequence(5).spawn(2)
    assert init_generator(5).random(3).tolist() == np.random.default_rng(init).random(3).tolist()
    assert shuffle_generator(5).random(3).tolist() == np.random.default_rng(shuffle).random(3).tolist()
    rng = np.random.default_rng(1)
    assert init_generator(rng) is rng and shuffle_generator(rng) is rng      # a Generator is used as it is


def test_the_readme_snippet_reproduces_the_reference_run(reference_runs, fashion):
    root, results = reference_runs
    assert results[0].returncode == 0, results[0].stderr
    data = fashion
    model = sr.SoftmaxRegression(784, 10, sigma=0.01, input_scale=1 / 255, input_shape=(28, 28),
                                 class_names=data.class_names)
    history = sr.fit(model, data.train_images, data.train_labels, epochs=10, batch_size=256, lr=0.1,
                     seed=0, validation_data=(data.test_images, data.test_labels))
    assert figures(history) == figures((root / "a" / "metrics.csv").read_text())
    cli_model = sr.load_model(root / "a" / "model.safetensors")
    assert model.W.tobytes() == cli_model.W.tobytes() and model.b.tobytes() == cli_model.b.tobytes()


def test_another_seed_and_recipe_match_the_cli_too(digits_dir, tmp_path):
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(tmp_path / "r"), "--recipe", "best",
                 "--epochs", "3", "--seed", "7", "--dtype", "float64", "--quiet", "--no-plots"]) == 0
    data = sr.load_fashion_mnist(digits_dir)
    model = sr.SoftmaxRegression(64, 10, sigma=0.01, seed=7, dtype=np.float64, input_scale=1 / 255,
                                 input_shape=(8, 8))
    history = sr.fit(model, data.train_images, data.train_labels, sr.TrainConfig(**{**RECIPE_BEST, "epochs": 3}),
                     seed=7, validation_data=(data.test_images, data.test_labels))
    assert figures(history) == figures((tmp_path / "r" / "metrics.csv").read_text())
    cli_model = sr.load_model(tmp_path / "r" / "model.safetensors")
    assert model.W.tobytes() == cli_model.W.tobytes() and model.mean.tobytes() == cli_model.mean.tobytes()
