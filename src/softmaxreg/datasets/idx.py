"""Read and write IDX files, the format of MNIST and Fashion-MNIST, raw or gzipped.

Layout (all sizes big-endian):
    bytes 0-1   zero
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions D
    4*D bytes   the size of each dimension, uint32
    payload     prod(sizes) items, C order, big-endian

The reader checks each of these and that the payload has exactly the promised
length. It never allocates more than the file actually holds: raw files are
compared with their size on disk, gzipped ones are inflated in bounded chunks.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from ..fileio import atomic_write_bytes

__all__ = ["read_idx", "open_idx_memmap", "write_idx"]

_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}
_CHUNK = 1 << 22


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open(path: Path):
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _read_header(f, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    magic = f.read(4)
    if len(magic) < 4:
        raise DataFormatError(f"{path}: not an IDX file: {len(magic)} bytes, too short for the 4-byte magic number")
    zero, code, ndim = struct.unpack(">HBB", magic)
    if zero != 0 or code not in _DTYPES:
        raise DataFormatError(
            f"{path}: not an IDX file: magic number {magic.hex()} should be 0000 then a type code "
            f"({', '.join(f'{c:02x}' for c in _DTYPES)}) and the number of dimensions")
    if ndim == 0:
        raise DataFormatError(f"{path}: IDX header declares 0 dimensions")
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataFormatError(f"{path}: truncated IDX header: {ndim} dimension sizes promised, file ends first")
    return _DTYPES[code], struct.unpack(f">{ndim}I", raw)


def _read_payload(f, path: Path, nbytes: int, gz: bool) -> bytearray:
    if not gz:
        left = os.fstat(f.fileno()).st_size - f.tell()
        if left != nbytes:
            raise DataFormatError(_length_message(path, nbytes, left))
        data = bytearray(nbytes)
        f.readinto(data)
        return data
    data = bytearray()
    while len(data) <= nbytes:      # read one byte past the promise to detect trailing data
        chunk = f.read(min(_CHUNK, nbytes + 1 - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) != nbytes:
        actual = len(data) if len(data) < nbytes else f"more than {nbytes}"
        raise DataFormatError(_length_message(path, nbytes, actual))
    return data


def _length_message(path: Path, expected: int, actual) -> str:
    what = "truncated" if isinstance(actual, int) and actual < expected else "trailing data"
    return f"{path}: {what}: header promises a payload of {expected} bytes, found {actual}"


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or raw, detected from its first bytes) into a native-endian array."""
    path = Path(path)
    try:
        with _open(path) as f:
            dtype, shape = _read_header(f, path)
            nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            data = _read_payload(f, path, nbytes, isinstance(f, gzip.GzipFile))
    except IsADirectoryError:
        raise DataFormatError(f"{path}: expected an IDX file, found a directory") from None
    except OSError as e:
        if isinstance(e, gzip.BadGzipFile):
            raise DataFormatError(f"{path}: corrupt gzip stream: {e}") from None
        raise DataFormatError(f"{path}: cannot read: {e.strerror or e}") from None
    except (EOFError, zlib.error) as e:
        raise DataFormatError(f"{path}: corrupt or truncated gzip stream: {e}") from None
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def open_idx_memmap(path) -> np.ndarray:
    """A raw (uncompressed) IDX file as a read-only np.memmap of its payload, in the file's byte
    order, checked like `read_idx` (header, exact payload length); nothing is read until used.
    A gzipped file cannot be mapped: DataFormatError saying to decompress it."""
    path = Path(path)
    try:
        if _is_gzip(path):
            raise DataFormatError(f"{path}: gzip-compressed IDX cannot be memory-mapped; decompress it (gunzip)")
        with open(path, "rb") as f:
            dtype, shape = _read_header(f, path)
            offset, left = f.tell(), os.fstat(f.fileno()).st_size - f.tell()
    except IsADirectoryError:
        raise DataFormatError(f"{path}: expected an IDX file, found a directory") from None
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read: {e.strerror or e}") from None
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if left != nbytes:
        raise DataFormatError(_length_message(path, nbytes, left))
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def write_idx(path, array) -> None:
    """Write `array` as an IDX file, gzipped when `path` ends in .gz; atomic (temp file + rename)."""
    a = np.asarray(array)
    native = a.dtype.newbyteorder("=")
    if native not in _CODES:
        raise DataFormatError(f"{path}: IDX cannot store dtype {a.dtype}; use uint8, int8, int16, int32, float32 or float64")
    if a.ndim == 0 or a.ndim > 255 or any(s >= 2**32 for s in a.shape):
        raise DataFormatError(f"{path}: IDX stores 1 to 255 dimensions of size < 2**32, got shape {a.shape}")
    code = _CODES[native]
    header = struct.pack(f">HBB{a.ndim}I", 0, code, a.ndim, *a.shape)
    payload = np.ascontiguousarray(a, dtype=_DTYPES[code]).tobytes()
    data = header + payload
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(path, data)
