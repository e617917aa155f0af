"""Atomic writes, output folders and the safetensors container (layout, checksum, reproducibility)."""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load, save

from softmaxreg import ModelFormatError, OutputError
from softmaxreg.fileio import atomic_write_bytes, output_folder, read_tensors, write_tensors

TENSORS = {"weight": np.arange(6, dtype=np.float32).reshape(3, 2), "holdout": np.array([4, 0, 7], dtype=np.int64),
           "best": np.array([0.5, -2.0]), "flags": np.array([True, False]), "pixels": np.arange(5, dtype=np.uint8)}


def header_of(raw: bytes) -> tuple[dict, int]:
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), 8 + n


def test_container_is_the_reference_layout_with_sorted_metadata(tmp_path):
    write_tensors(tmp_path / "t", TENSORS, {"zeta": "1", "alpha": "2"}, kind="test-kind", version=3)
    ours = (tmp_path / "t").read_bytes()
    header, data_start = header_of(ours)
    meta = header["__metadata__"]
    assert list(meta) == sorted(meta) and meta["format"] == "test-kind" and meta["format_version"] == "3"
    reference = save(TENSORS, meta)                   # the same, but its metadata order varies by process
    reference_header, reference_start = header_of(reference)
    assert reference_start == data_start and data_start % 8 == 0
    assert reference_header == header and list(reference_header) == list(header)   # tensor order too
    assert reference[data_start:] == ours[data_start:]
    for name, a in load(ours).items():
        assert a.dtype == TENSORS[name].dtype and a.tobytes() == TENSORS[name].tobytes()


def test_read_tensors_returns_what_write_tensors_wrote(tmp_path):
    big_endian = np.array([1.5, -3.0, 2.0**-20], dtype=">f4")
    write_tensors(tmp_path / "t", {**TENSORS, "big": big_endian}, {"note": "x"}, kind="k", version=2)
    tensors, meta = read_tensors(tmp_path / "t", kind="k", version=2, what="thing")
    assert meta["note"] == "x"
    np.testing.assert_array_equal(tensors["big"], big_endian)
    for name, a in TENSORS.items():
        np.testing.assert_array_equal(tensors[name], a)


def test_read_tensors_names_the_expected_format_and_version(tmp_path):
    write_tensors(tmp_path / "t", TENSORS, {}, kind="k", version=2)
    with pytest.raises(ModelFormatError, match="not a softmaxreg thing .metadata lacks format='other'"):
        read_tensors(tmp_path / "t", kind="other", version=2, what="thing")
    with pytest.raises(ModelFormatError, match="thing format version '2' is not supported .expected 1"):
        read_tensors(tmp_path / "t", kind="k", version=1, what="thing")


def test_atomic_write_replaces_whole_files_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_writing_into_a_missing_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write_bytes(tmp_path / "no" / "such" / "file", b"x")


def test_output_folder_creates_folders_and_refuses_a_file_in_the_way(tmp_path):
    assert output_folder(tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        output_folder(tmp_path / "file")
    with pytest.raises(OutputError, match="cannot create folder"):
        output_folder(tmp_path / "file" / "sub")
