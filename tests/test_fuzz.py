"""Property-based fuzzing of the two parsers of untrusted files: the IDX reader and the model
(and checkpoint) loader. Only our own error types may escape, nothing may hang, and memory stays
bounded by the input. FUZZ_EXAMPLES scales the campaign (default: a quick run for CI)."""

import gzip
import os
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softmaxreg import DataFormatError, ModelFormatError, SoftmaxRegression, read_idx, save_model
from softmaxreg.checkpoint import load_checkpoint
from softmaxreg.model_file import load_model

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])
MEMORY_LIMIT = 64 * 2**20


def valid_idx() -> bytes:
    a = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    return struct.pack(">HBB3I", 0, 0x08, 3, 2, 3, 5) + a.tobytes()


def valid_model(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "m.safetensors"
    save_model(SoftmaxRegression(6, 3, seed=0, input_shape=(2, 3), class_names=["a", "b", "c"]), path)
    return path.read_bytes()


@st.composite
def mutated(draw, original: bytes):
    """A valid file with random byte flips, cuts, insertions and a spliced random header."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        if kind == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            data = data[:draw(st.integers(0, len(data)))]
        elif kind == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(max_size=16))
        else:
            data[:8] = draw(st.binary(min_size=8, max_size=8))
    return bytes(data)


def check_bounded(path, data: bytes, reader, errors):
    path.write_bytes(data)
    tracemalloc.start()
    try:
        reader(path)
    except errors:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT + 50 * len(data)


@FUZZ
@given(data=st.binary(max_size=256), gz=st.booleans())
def test_idx_reader_on_random_bytes(tmp_path, data, gz):
    check_bounded(tmp_path / "f", gzip.compress(data) if gz else data, read_idx, DataFormatError)


@FUZZ
@given(data=st.data(), gz=st.booleans())
def test_idx_reader_on_mutated_files(tmp_path, data, gz):
    blob = data.draw(mutated(valid_idx()))
    check_bounded(tmp_path / "f", gzip.compress(blob) if gz else blob, read_idx, DataFormatError)


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    return valid_model(tmp_path_factory)


@FUZZ
@given(data=st.binary(max_size=512))
def test_model_loader_on_random_bytes(tmp_path, data):
    check_bounded(tmp_path / "m", data, load_model, ModelFormatError)
    check_bounded(tmp_path / "c", data, load_checkpoint, ModelFormatError)


@FUZZ
@given(data=st.data())
def test_model_loader_on_mutated_models(tmp_path, model_bytes, data):
    check_bounded(tmp_path / "m", data.draw(mutated(model_bytes)), load_model, ModelFormatError)


@FUZZ
@given(data=st.data())
def test_model_loader_on_mutated_headers(tmp_path, model_bytes, data):
    """Mutations aimed at the JSON header, where the structure lives."""
    n = int.from_bytes(model_bytes[:8], "little")
    header = bytearray(model_bytes[8:8 + n])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(header) - 1))
        header[i] = data.draw(st.sampled_from(b'{}[]":,0123456789-eE.naflstru ')) 
    blob = len(header).to_bytes(8, "little") + bytes(header) + model_bytes[8 + n:]
    check_bounded(tmp_path / "m", blob, load_model, ModelFormatError)
