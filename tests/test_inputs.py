"""Inputs for predict: the Fashion-MNIST-style conversion of photos, arrays and IDX files."""

import numpy as np
import pytest
from PIL import Image

from softmaxreg import DataFormatError, write_idx
from softmaxreg.datasets.inputs import read_inputs, to_mnist_format


def test_a_dataset_image_survives_the_conversion_unchanged(fashion):
    # trouser images span the full height; any centred image whose bounding box touches
    # the long edges is a fixed point of trim -> resize -> centre
    for image in fashion.test_images[:200]:
        rows = np.flatnonzero((image > 16).any(axis=1))
        cols = np.flatnonzero((image > 16).any(axis=0))
        if rows[0] == 0 and rows[-1] == 27 and cols[0] == 27 - cols[-1]:
            np.testing.assert_array_equal(to_mnist_format(image, (28, 28)), image)
            return
    pytest.fail("no full-height centred image among the first 200")


def test_a_light_background_photo_is_negated_trimmed_and_centred():
    photo = np.full((90, 60), 250, dtype=np.uint8)           # white background
    photo[10:70, 20:40] = 30                                 # a dark 60x20 object, off-centre
    out = to_mnist_format(photo, (28, 28))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    rows = np.flatnonzero(out.max(axis=1) > 100)
    cols = np.flatnonzero(out.max(axis=0) > 100)
    assert rows[0] == 0 and rows[-1] == 27                  # longest edge fills the height
    assert abs(cols[0] - (27 - cols[-1])) <= 1 and 8 <= len(cols) <= 11     # 20/60 of 28, centred
    assert out[14, 14] == 255 - 30 and out[0, 0] == 0
    np.testing.assert_array_equal(to_mnist_format(photo, (28, 28), invert="no"),
                                  to_mnist_format(255 - photo, (28, 28), invert="yes"))


def test_read_inputs_handles_every_kind(fashion, tmp_path):
    images = fashion.test_images[:3]
    np.save(tmp_path / "one.npy", images[0])
    np.save(tmp_path / "flat.npy", images.reshape(3, 784).astype(np.float32))
    write_idx(tmp_path / "imgs.idx.gz", images)
    Image.fromarray(255 - images[2]).resize((84, 84)).save(tmp_path / "photo.jpg", quality=95)
    out = read_inputs([tmp_path / n for n in ("one.npy", "flat.npy", "imgs.idx.gz", "photo.jpg")], (28, 28))
    assert [x.shape for _, x in out] == [(1, 28, 28), (3, 28, 28), (3, 28, 28), (1, 28, 28)]
    np.testing.assert_array_equal(out[0][1][0], images[0])
    np.testing.assert_array_equal(out[2][1], images)
    assert out[3][0].endswith("photo.jpg")


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"definitely not an image"), "cannot decode"),
    (lambda p: np.save(p, np.zeros((2, 5))), r"shape \(2, 5\) does not fit"),
    (lambda p: np.save(p, np.full(784, np.nan)), "NaN"),
    (lambda p: np.save(p, np.array(["x"] * 784)), "numeric"),
    (lambda p: np.save(p, np.array([object()] * 784, dtype=object)), "not a plain numeric"),
])
def test_bad_inputs_name_the_file(tmp_path, make, message):
    path = tmp_path / "input.bin"
    make(path)
    if not path.exists():
        path = path.with_suffix(".bin.npy")
    with pytest.raises(DataFormatError, match=message) as info:
        read_inputs([path], (28, 28))
    assert str(path) in str(info.value)
