"""Fashion-MNIST loading, checksums, other MNIST-format folders, resizing, minibatches."""

import shutil

import numpy as np
import pytest
from PIL import Image

from softmaxreg import (FASHION_MNIST_CLASSES, ChecksumError, DataFormatError, load_fashion_mnist, resize_images,
                        write_idx)
from softmaxreg.datasets import fashion_mnist, iterate_minibatches


def test_bundled_fashion_mnist_has_the_published_shapes_and_classes(fashion):
    assert fashion.train_images.shape == (60000, 28, 28) and fashion.train_images.dtype == np.uint8
    assert fashion.test_images.shape == (10000, 28, 28)
    assert fashion.train_labels.shape == (60000,) and fashion.train_labels.dtype == np.uint8
    assert np.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert np.bincount(fashion.test_labels).tolist() == [1000] * 10
    assert fashion.class_names == FASHION_MNIST_CLASSES
    assert FASHION_MNIST_CLASSES[0] == "t-shirt/top" and FASHION_MNIST_CLASSES[9] == "ankle boot"
    assert fashion.source == "bundled" and fashion.sha256 == fashion_mnist.SHA256


def test_a_corrupted_bundled_file_fails_its_checksum(tmp_path, monkeypatch):
    for name in fashion_mnist.SHA256:
        shutil.copy(fashion_mnist.BUNDLED_DIR / name, tmp_path / name)
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setattr(fashion_mnist, "BUNDLED_DIR", tmp_path)
    monkeypatch.delenv(fashion_mnist.DATA_DIR_ENV, raising=False)
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz: SHA-256"):
        load_fashion_mnist()


def test_a_folder_of_another_dataset_gives_its_own_size_and_classes(digits_dir):
    data = load_fashion_mnist(digits_dir)
    assert data.train_images.shape == (1500, 8, 8) and data.test_images.shape == (297, 8, 8)
    assert data.class_names == tuple(str(i) for i in range(10))
    assert data.source == str(digits_dir)


def test_class_names_file_and_environment_variable(digits_dir, tmp_path, monkeypatch):
    for f in digits_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    (tmp_path / "class_names.txt").write_text("\n".join(names) + "\n")
    monkeypatch.setenv(fashion_mnist.DATA_DIR_ENV, str(tmp_path))
    data = load_fashion_mnist()
    assert data.class_names == tuple(names)              # 11 names: more classes than labels seen is fine


def copy_with(folder, tmp_path, name, array):
    for f in folder.iterdir():
        shutil.copy(f, tmp_path / f.name)
    write_idx(tmp_path / name, array)
    return tmp_path


def test_images_and_labels_of_different_counts_are_an_error(digits_dir, tmp_path):
    folder = copy_with(digits_dir, tmp_path, "train-labels-idx1-ubyte.gz", np.zeros(1499, np.uint8))
    with pytest.raises(DataFormatError, match="holds 1500 images but .*train-labels-idx1-ubyte.gz holds 1499 labels"):
        load_fashion_mnist(folder)


def test_labels_outside_the_named_classes_are_an_error(digits_dir, tmp_path):
    folder = copy_with(digits_dir, tmp_path, "t10k-labels-idx1-ubyte", np.full(297, 12, np.uint8))
    (folder / "class_names.txt").write_text("\n".join("abcdefghij"))
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte: labels must lie in \[0, 9\], found 12..12"):
        load_fashion_mnist(folder)


def test_images_must_be_uint8_of_three_dimensions(digits_dir, tmp_path):
    folder = copy_with(digits_dir, tmp_path, "t10k-images-idx3-ubyte", np.zeros((297, 64), np.float32))
    with pytest.raises(DataFormatError, match="expected uint8 images of 3 dimensions"):
        load_fashion_mnist(folder)


def test_missing_files_and_folders_are_named(tmp_path):
    with pytest.raises(DataFormatError, match="missing train-images-idx3-ubyte.gz"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(DataFormatError, match="does not exist"):
        load_fashion_mnist(tmp_path / "nowhere")


@pytest.mark.parametrize("size", [(28, 28), (14, 14), (64, 64), (20, 36), (7, 3)])
def test_resize_agrees_with_pillow_bilinear(fashion, size):
    images = fashion.test_images[:20]
    ours = resize_images(images, size)
    assert ours.shape == (20, *size) and ours.dtype == np.uint8
    theirs = np.stack([np.asarray(Image.fromarray(im).resize(size[::-1], Image.BILINEAR)) for im in images])
    assert np.abs(ours.astype(int) - theirs).max() <= 1


def test_resize_keeps_identity_and_constants():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 9, 5), dtype=np.uint8)
    np.testing.assert_array_equal(resize_images(images, (9, 5)), images)
    np.testing.assert_array_equal(resize_images(np.full((2, 7, 7), 93, np.uint8), 30), np.full((2, 30, 30), 93))


def test_loader_resize_option(digits_dir):
    data = load_fashion_mnist(digits_dir, resize=(16, 12))
    assert data.train_images.shape == (1500, 16, 12) and data.test_images.shape == (297, 16, 12)


def test_minibatches_cover_every_example_once_in_a_seeded_order():
    X = np.arange(10 * 3, dtype=np.uint8).reshape(10, 3)
    y = np.arange(10)
    batches = [(xb.copy(), yb.copy()) for xb, yb in iterate_minibatches((X, y), 4, np.random.default_rng(5))]
    assert [len(b) for b, _ in batches] == [4, 4, 2]
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen) == list(range(10))
    np.testing.assert_array_equal(seen, np.random.default_rng(5).permutation(10))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb, X[yb])
        assert xb.dtype == np.uint8


def test_decompressed_cache_is_used_verified_and_rebuilt(digits_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(fashion_mnist.CACHE_ENV, str(tmp_path / "cache"))
    first = load_fashion_mnist(digits_dir)
    cached = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 4                     # raw ones too: below blocks.STREAM_BYTES they are read, as before
    assert not isinstance(first.test_images, np.memmap)

    def no_idx(path):
        raise AssertionError(f"read {path} despite a valid cache")
    monkeypatch.setattr(fashion_mnist, "read_idx", no_idx)
    second = load_fashion_mnist(digits_dir)
    for a, b in zip(first[:4], second[:4]):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype

    # damage one cached array: its checksum no longer matches, so the IDX file is read again
    target = max(cached, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="despite a valid cache"):
        load_fashion_mnist(digits_dir)
    monkeypatch.undo()
    monkeypatch.setenv(fashion_mnist.CACHE_ENV, str(tmp_path / "cache"))
    third = load_fashion_mnist(digits_dir)
    np.testing.assert_array_equal(third.train_images, first.train_images)
    assert target.read_bytes() != bytes(data)              # rebuilt


def test_cache_can_be_switched_off(digits_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(fashion_mnist.CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    load_fashion_mnist(digits_dir)
    assert not any(tmp_path.iterdir())
