"""Atomic writes (alone and all or nothing, with the umask's permissions), output folders (claimed,
left clean), the safetensors container (layout, checksum, reproducibility) and file descriptions."""

import json
import os
import stat

import numpy as np
import pytest
from safetensors.numpy import load, save

from softmaxreg import ModelFormatError, OutputError
from softmaxreg import fileio
from softmaxreg.fileio import all_or_nothing, atomic_write_bytes, claim_folder, output_folder
from softmaxreg.tensor_file import describe_bytes, read_tensors, write_tensors

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
    with output_folder(tmp_path / "a" / "b") as folder:
        assert folder.is_dir()
        (folder / "f").write_bytes(b"x")
    assert (tmp_path / "a" / "b" / "f").exists()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError, match="exists and is not a folder"), output_folder(tmp_path / "file"):
        pass
    with pytest.raises(OutputError, match="cannot create folder"), output_folder(tmp_path / "file" / "sub"):
        pass


def test_output_folder_leaves_no_folder_it_created_when_nothing_was_written(tmp_path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError), output_folder(tmp_path / "new" / "deeper"):
        raise ValueError("the command failed")
    with output_folder(tmp_path / "kept" / "empty"):
        pass
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "one", b"1")
        with all_or_nothing():
            atomic_write_bytes(tmp_path / "two", b"2")
        write_tensors(tmp_path / "t", TENSORS, {}, kind="k", version=1)
        assert fileio._umask() == umask
    finally:
        os.umask(previous)
    for name in ("one", "two", "t"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_the_umask_is_read_without_changing_it_where_proc_is_missing(monkeypatch):
    monkeypatch.setattr(fileio, "open", lambda *a, **k: (_ for _ in ()).throw(OSError("no /proc")), raising=False)
    previous = os.umask(0o027)
    try:
        assert fileio._umask() == 0o027 and os.umask(0o027) == 0o027
    finally:
        os.umask(previous)


def test_all_or_nothing_replaces_every_file_or_none(tmp_path):
    for name in ("a", "b", "stale"):
        (tmp_path / name).write_bytes(b"old " + name.encode())
    with pytest.raises(KeyboardInterrupt):
        with all_or_nothing(remove=[tmp_path / "stale"]):
            atomic_write_bytes(tmp_path / "a", b"new a")
            assert (tmp_path / "a").read_bytes() == b"old a"          # nothing moves before the end
            raise KeyboardInterrupt
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"a": b"old a", "b": b"old b",
                                                                     "stale": b"old stale"}
    with all_or_nothing(remove=[tmp_path / "stale", tmp_path / "b"]):                # b is written, not removed
        atomic_write_bytes(tmp_path / "a", b"new a")
        atomic_write_bytes(tmp_path / "b", b"new b")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"a": b"new a", "b": b"new b"}


def test_all_or_nothing_without_overwrite_keeps_files_that_would_change(tmp_path):
    (tmp_path / "same").write_bytes(b"same")
    (tmp_path / "other").write_bytes(b"theirs")
    with all_or_nothing(overwrite=False):
        atomic_write_bytes(tmp_path / "same", b"same")                 # rewriting the same bytes is fine
        atomic_write_bytes(tmp_path / "new", b"new")
    with pytest.raises(OutputError, match="other: already exists with other contents; pass --overwrite"):
        with all_or_nothing(overwrite=False):
            atomic_write_bytes(tmp_path / "fresh", b"fresh")
            atomic_write_bytes(tmp_path / "other", b"ours")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"same": b"same", "other": b"theirs",
                                                                     "new": b"new"}


def test_claim_folder_is_exclusive_and_released(tmp_path):
    with claim_folder(tmp_path / "run") as folder:
        (folder / "file").write_bytes(b"x")
        with pytest.raises(OutputError, match="--out .*run: another softmaxreg run is using this folder"):
            with claim_folder(tmp_path / "run"):
                pass
    with claim_folder(tmp_path / "run"):                              # released when the first block ended
        pass
    with pytest.raises(FileExistsError), claim_folder(tmp_path / "run", fresh=True):
        pass


def test_a_refused_claim_never_removes_the_folder_another_process_holds(tmp_path, monkeypatch):
    """Two runs started together both find --out missing, so each counts it among the folders it
    created; the one whose claim is refused must leave the (still empty) folder to the other."""
    run = tmp_path / "run"
    with claim_folder(run):
        monkeypatch.setattr(fileio, "_make_folders", lambda folder, fresh=False: [folder])
        with pytest.raises(OutputError, match="another softmaxreg run"), claim_folder(run):
            pass
        assert run.is_dir()
    assert not run.exists()                                          # the holder still tidies up after itself


@pytest.mark.parametrize("head, looks", [
    (b"", "an empty file"), (b"\x89PNG\r\n\x1a\n" + bytes(8), "a PNG image"), (b"\xff\xd8\xff\xe0", "a JPEG image"),
    (b"\x80\x04\x95\x10", "a Python pickle"), (b'  {"weight": [1, 2]}', "JSON text"), (b"[1, 2]", "JSON text"),
    (b"0,1,2\n3,4,5\n", "text with commas (CSV?)"), (b"hello", "text"), (b"PK\x03\x04", "a ZIP archive"),
    (b"\x93NUMPY\x01\x00", "a NumPy .npy array"), (b"\x00\x01\xfe\xff\x00", "binary data"),
    ("caf\u00e9".encode()[:4], "text"),                                 # a character cut at the end
])
def test_describe_bytes_names_common_kinds_of_file(head, looks):
    assert describe_bytes(head).startswith(looks)
