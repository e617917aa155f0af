"""Model files (safetensors, no pickle): round trips, refusals, atomic and reproducible saves."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from softmaxreg import ModelFormatError, OutputError, SoftmaxRegression, load_model, save_model
from softmaxreg.tensor_file import write_tensors
from softmaxreg.model_file import FORMAT, FORMAT_VERSION


def make_model(dtype=np.float32):
    model = SoftmaxRegression(6, 3, sigma=0.3, seed=2, dtype=dtype, input_scale=1 / 255, input_shape=(2, 3),
                              class_names=["cat", "dog", "t-shirt/top"])
    model.b[:] = [0.1, -0.2, 0.3]
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_keeps_weights_and_metadata_exactly(tmp_path, dtype):
    model = make_model(dtype)
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.W.tobytes() == model.W.tobytes() and loaded.b.tobytes() == model.b.tobytes()
    assert loaded.W.dtype == dtype
    assert loaded.class_names == model.class_names
    assert loaded.input_shape == (2, 3) and loaded.input_scale == model.input_scale
    X = np.random.default_rng(0).integers(0, 256, size=(5, 2, 3))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_file_is_plain_safetensors_readable_by_the_reference_library(tmp_path):
    model = make_model()
    save_model(model, tmp_path / "m.safetensors")
    tensors = load_file(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(tensors["weight"], model.W)
    np.testing.assert_array_equal(tensors["bias"], model.b)
    raw = (tmp_path / "m.safetensors").read_bytes()
    assert b"pickle" not in raw and not raw.startswith(b"\x80")
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"]["format"] == "softmaxreg-model"
    assert json.loads(header["__metadata__"]["class_names"]) == ["cat", "dog", "t-shirt/top"]


def test_files_that_are_not_our_models_are_refused(tmp_path):
    save_file({"weight": np.zeros((2, 2), np.float32)}, tmp_path / "other.safetensors")
    (tmp_path / "pickle.pkl").write_bytes(b"\x80\x04\x95" + bytes(40))
    (tmp_path / "empty").write_bytes(b"")
    for name, message in [("other.safetensors", "not a softmaxreg model"), ("pickle.pkl", "truncated|not"),
                          ("empty", "not a safetensors"), ("missing", "cannot read model")]:
        with pytest.raises(ModelFormatError, match=message):
            load_model(tmp_path / name)


def test_truncated_or_mismatched_model_files_are_refused(tmp_path):
    save_model(make_model(), tmp_path / "m.safetensors")
    raw = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-8])
    with pytest.raises(ModelFormatError, match="corrupt"):
        load_model(tmp_path / "cut")
    good = {"class_names": '["a", "b", "c"]', "input_shape": "[6]", "preprocessing": '{"input_scale": 1.0}'}
    tensors = {"weight": np.zeros((6, 3), np.float32), "bias": np.zeros(3, np.float32)}
    for name, change, message in [
        ("names", {"class_names": '["a", "b"]'}, "class_names must be 3 strings"),
        ("shape", {"input_shape": "[2, 2]"}, "input_shape does not match"),
        ("negative", {"input_shape": "[-6]"}, "input_shape"),
        ("scale", {"preprocessing": '{"input_scale": -1}'}, "preprocessing"),
        ("dtype", {"dtype": "float64"}, "declared dtype"),
        ("json", {"class_names": "[[[["}, "corrupt model metadata"),
    ]:
        write_tensors(tmp_path / name, tensors, {**good, **change}, kind=FORMAT, version=FORMAT_VERSION)
        with pytest.raises(ModelFormatError, match=message):
            load_model(tmp_path / name)
    write_tensors(tmp_path / "bias", {**tensors, "bias": np.zeros(4, np.float32)}, good, kind=FORMAT,
                  version=FORMAT_VERSION)
    with pytest.raises(ModelFormatError, match="bias"):
        load_model(tmp_path / "bias")
    save_file(tensors, tmp_path / "v9", {"format": "softmaxreg-model", "format_version": "9", **good})
    with pytest.raises(ModelFormatError, match="version '9' is not supported"):
        load_model(tmp_path / "v9")


def test_tampered_tensors_fail_the_checksum(tmp_path):
    save_model(make_model(), tmp_path / "m.safetensors")
    raw = bytearray((tmp_path / "m.safetensors").read_bytes())
    raw[-3] ^= 0x01                                   # one bit of the last tensor
    (tmp_path / "t.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="checksum mismatch"):
        load_model(tmp_path / "t.safetensors")


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    save_model(make_model(), target)
    before = target.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match="No space left on device"):
        save_model(SoftmaxRegression(6, 3, seed=5), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]


SAVE_IN_A_FRESH_PROCESS = """
import sys
import numpy as np
import softmaxreg as sr
model = sr.SoftmaxRegression(6, 3, sigma=0.3, seed=2, input_shape=(2, 3), class_names=["cat", "dog", "t-shirt/top"])
model.set_standardization(np.arange(6.0), np.full(6, 2.0))
sr.save_model(model, sys.argv[1], extra_metadata={"class_labels": '["a", "b", "c"]'})
"""


def test_the_same_model_saved_in_two_processes_gives_the_same_bytes(tmp_path):
    for name, hash_seed in (("a", "1"), ("b", "2")):
        subprocess.run([sys.executable, "-c", SAVE_IN_A_FRESH_PROCESS, str(tmp_path / name)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed})
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
