"""The IDX reader and writer on round trips, the real bundled files, and broken files."""

import gzip
import struct
import tracemalloc

import numpy as np
import pytest

from softmaxreg import DataFormatError, read_idx, write_idx
from softmaxreg.datasets.fashion_mnist import BUNDLED_DIR


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (0, 7), (1, 1, 1, 2)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_preserves_values_dtype_and_shape(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    a = (rng.normal(0, 50, size=shape)).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == shape
    np.testing.assert_array_equal(a, b)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_writer_emits_the_documented_big_endian_layout(tmp_path):
    write_idx(tmp_path / "a", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16))
    assert (tmp_path / "a").read_bytes() == struct.pack(">HBB2I6h", 0, 0x0B, 2, 2, 3, 1, 2, 3, 4, 5, 6)


def test_reads_a_hand_built_file_independently_of_the_writer(tmp_path):
    payload = struct.pack(">3f", 1.5, -2.0, 3.25)
    (tmp_path / "f.gz").write_bytes(gzip.compress(struct.pack(">HBBI", 0, 0x0D, 1, 3) + payload))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.gz"), np.array([1.5, -2.0, 3.25], dtype=np.float32))


def test_real_bundled_files_have_the_published_shapes():
    images = read_idx(BUNDLED_DIR / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(BUNDLED_DIR / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [1000] * 10
    with gzip.open(BUNDLED_DIR / "t10k-images-idx3-ubyte.gz") as f:
        raw = f.read()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert images.tobytes() == raw[16:]


def write_raw(path, data: bytes, gz: bool):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


GOOD_HEADER = struct.pack(">HBB2I", 0, 0x08, 2, 3, 4)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("data, message", [
    (b"", "too short"),
    (b"\x00\x00", "too short"),
    (struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">I", 2), "truncated IDX header"),
    (struct.pack(">HBB", 1, 0x08, 1) + struct.pack(">I", 1) + b"x", "magic number 00010801"),
    (struct.pack(">HBB", 0, 0x07, 1) + struct.pack(">I", 1) + b"x", "magic number 00000701"),
    (struct.pack(">HBB", 0, 0x08, 0), "0 dimensions"),
    (GOOD_HEADER + bytes(11), "truncated: header promises a payload of 12 bytes, found 11"),
    (GOOD_HEADER + bytes(13), "trailing data"),
    (struct.pack(">HBB", 0, 0x0C, 1) + struct.pack(">I", 2) + bytes(7), "promises a payload of 8 bytes"),
])
def test_broken_files_give_a_clear_error_naming_the_file(tmp_path, gz, data, message):
    path = write_raw(tmp_path / "broken.idx", data, gz)
    with pytest.raises(DataFormatError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True])
def test_a_lying_header_does_not_drive_a_huge_allocation(tmp_path, gz):
    header = struct.pack(">HBB3I", 0, 0x0E, 3, 2**31, 2**31, 2**31)    # promises ~10**29 bytes
    path = write_raw(tmp_path / "liar.idx", header + bytes(1000), gz)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match="truncated"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_corrupt_gzip_stream_is_a_data_error(tmp_path):
    good = gzip.compress(GOOD_HEADER + bytes(12))
    path = tmp_path / "cut.gz"
    path.write_bytes(good[:-12])                 # cut inside the stream
    with pytest.raises(DataFormatError, match="gzip"):
        read_idx(path)
    path.write_bytes(good[:12] + b"\xff" * 20 + good[32:])
    with pytest.raises(DataFormatError):
        read_idx(path)


def test_missing_file_and_directory_are_data_errors(tmp_path):
    with pytest.raises(DataFormatError, match="nope.idx: cannot read"):
        read_idx(tmp_path / "nope.idx")
    with pytest.raises(DataFormatError, match="directory"):
        read_idx(tmp_path)


def test_writer_refuses_what_idx_cannot_store(tmp_path):
    with pytest.raises(DataFormatError, match="dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(DataFormatError, match="dimensions"):
        write_idx(tmp_path / "x", np.float32(1.0))
    assert not list(tmp_path.iterdir())
