"""The safetensors container that model files and checkpoints share: tensors plus string metadata,
no pickle, written atomically (fileio.atomic_write_bytes).

A container file's metadata always holds format (its kind, e.g. "softmaxreg-model"),
format_version, softmaxreg_version and tensors_sha256 (over every tensor's name, dtype, shape
and bytes), beside the entries its format adds. Its bytes depend only on the tensors and the
metadata, so saving the same thing twice gives the same file.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from ._version import __version__
from .errors import ModelFormatError
from .fileio import atomic_write_bytes

__all__ = ["write_tensors", "read_tensors", "describe_bytes", "MODEL_FORMAT", "CHECKPOINT_FORMAT"]

MODEL_FORMAT = "softmaxreg-model"
CHECKPOINT_FORMAT = "softmaxreg-checkpoint"
_FORMAT_NAMES = {
    MODEL_FORMAT: "a softmaxreg model",
    CHECKPOINT_FORMAT: "the training checkpoint of a run that has not finished (`softmaxreg train --resume "
                       "{folder}` finishes it and writes its model.safetensors)",
}

# safetensors dtype names, in the reference writer's dtype order (it stores the data widest first)
_DTYPES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16", "float16": "F16",
           "int32": "I32", "uint32": "U32", "float32": "F32", "float64": "F64", "int64": "I64", "uint64": "U64"}
_DTYPE_RANK = {name: rank for rank, name in enumerate(_DTYPES)}


def _tensors_digest(tensors: dict) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _safetensors_bytes(tensors: dict, metadata: dict) -> bytes:
    """The safetensors encoding of little-endian contiguous `tensors` and string `metadata`.

    Layout: the header's length (8 bytes, little-endian), the JSON header ({"__metadata__": ...,
    then per tensor its dtype, shape and data_offsets}) padded with spaces to a multiple of 8,
    then the tensors' bytes in header order. This is what `safetensors.numpy.save` writes (the
    same tensor order: widest dtype first, then by name), except that its metadata comes out in
    a different order in each process; here the keys are sorted, so the bytes are reproducible.
    """
    order = sorted(tensors, key=lambda name: (-_DTYPE_RANK[tensors[name].dtype.name], name))
    header, offset = {"__metadata__": dict(sorted(metadata.items()))}, 0
    for name in order:
        a = tensors[name]
        header[name] = {"dtype": _DTYPES[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(tensors[name].tobytes() for name in order)


def write_tensors(path, tensors: dict, metadata: dict, *, kind: str, version: int) -> None:
    """Atomically write `tensors` (arrays of a safetensors dtype) and string `metadata` as a
    safetensors file of format `kind`, adding its format name and `version`, the package version
    and the SHA-256 of the tensors."""
    tensors = {name: np.ascontiguousarray(a, dtype=np.asarray(a).dtype.newbyteorder("<"))
               for name, a in tensors.items()}
    header = {"format": kind, "format_version": str(version), "softmaxreg_version": __version__,
              "tensors_sha256": _tensors_digest(tensors), **metadata}
    atomic_write_bytes(path, _safetensors_bytes(tensors, header))


MAX_HEADER_BYTES = 96 * 2**20
"""The largest safetensors JSON header read (checked before parsing; the reference reader's own
limit is 100 MB): the header holds the metadata, whose longest field is the class names."""


def _header_metadata(data: bytes, path: Path, kind: str, what: str) -> dict:
    """The __metadata__ object of a safetensors header (8-byte little-endian length, then JSON)."""
    if len(data) < 8 or (struct.unpack("<Q", data[:8])[0] > len(data) - 8 and data[8:9] != b"{"):
        raise ModelFormatError(f"{path}: not a safetensors {what} file: it is {describe_bytes(data[:64])}")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ModelFormatError(f"{path}: not a safetensors {what} file, or truncated: its header claims {n} bytes, "
                               f"{len(data) - 8} follow")
    if n > MAX_HEADER_BYTES:
        raise ModelFormatError(f"{path}: safetensors {what} header of {n} bytes is too large (at most "
                               f"{MAX_HEADER_BYTES} allowed)")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFormatError(f"{path}: not a safetensors {what} file (header is not JSON)") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != kind and found in _FORMAT_NAMES:
        name = _FORMAT_NAMES[found].format(folder=path.parent)
        raise ModelFormatError(f"{path}: not a softmaxreg {what} but {name}")
    if found != kind:
        raise ModelFormatError(f"{path}: not a softmaxreg {what} (metadata lacks format={kind!r})")
    return meta


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
               (b"RIFF", "a RIFF file (WebP image?)"), (b"\x93NUMPY", "a NumPy .npy array"),
               (b"PK\x03\x04", "a ZIP archive (.npz, PyTorch .pt, ...)"), (b"\x1f\x8b", "gzip-compressed data"),
               (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras .h5?)"), (b"%PDF", "a PDF document"))


def describe_bytes(head: bytes) -> str:
    """What a file starting with `head` looks like, for error messages: "an empty file", "a PNG
    image", "a Python pickle", "JSON text", "text with commas (CSV?)", ... """
    if not head:
        return "an empty file (0 bytes)"
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[0] == 0x80 and head[1:2] and 2 <= head[1] <= 5:
        return "a Python pickle"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:          # not just a character cut at the end
            return "binary data of an unknown kind"
        text = head[:e.start].decode("utf-8")
    if "\x00" in text:
        return "binary data of an unknown kind"
    first = text.lstrip().split("\n", 1)[0]
    if first[:1] in ("{", "["):
        return "JSON text"
    if "," in first or ";" in first or "\t" in first:
        return "text with commas (CSV?)"
    return "text"


def read_tensors(path, *, kind: str, version: int, what: str) -> tuple[dict, dict]:
    """(tensors, metadata) of a file written by `write_tensors`, after checking that it is of format
    `kind` and `version` and that its tensors match their checksum; errors call the file a `what`
    ("model", "checkpoint"). Reads at most the file's own bytes; never unpickles."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    meta = _header_metadata(data, path, kind, what)
    if meta.get("format_version") != str(version):
        raise ModelFormatError(
            f"{path}: {what} format version {meta.get('format_version')!r} is not supported (expected {version})")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, TypeError, OverflowError) as e:
        raise ModelFormatError(f"{path}: corrupt {what} file: {e}") from None
    if "tensors_sha256" not in meta:
        raise ModelFormatError(f"{path}: {what} file has no tensor checksum (written by an older softmaxreg?)")
    if meta.get("tensors_sha256") != _tensors_digest(tensors):
        raise ModelFormatError(f"{path}: tensor checksum mismatch: the {what} file was damaged or altered")
    return tensors, meta
