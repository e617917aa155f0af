"""Files that must never be half-written: atomic writes (alone, or several that replace their
files together or not at all), output folders claimed by one run at a time, and the safetensors
container that model files and checkpoints share (tensors plus string metadata, no pickle).

Every file written here gets the permissions the user's umask allows (0666 & ~umask), like
files that `open` creates, although its temporary file starts private (mkstemp's 0600).

A container file's metadata always holds format (its kind, e.g. "softmaxreg-model"),
format_version, softmaxreg_version and tensors_sha256 (over every tensor's name, dtype, shape
and bytes), beside the entries its format adds. Its bytes depend only on the tensors and the
metadata, so saving the same thing twice gives the same file.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import os
import struct
import tempfile
import threading
from pathlib import Path

import numpy as np

from ._version import __version__
from .errors import ModelFormatError, OutputError

__all__ = ["atomic_write_bytes", "all_or_nothing", "output_folder", "claim_folder", "write_tensors", "read_tensors",
           "describe_bytes", "MODEL_FORMAT", "CHECKPOINT_FORMAT"]

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


def atomic_write_bytes(path, data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsync, rename.

    Readers see either the old file or the complete new one, never a partial write; on any
    failure (disk full, file-size limit, permission) the temporary file is removed, `path` is
    untouched, and the error is an OutputError naming `path`. Inside `all_or_nothing()` the
    rename waits for the end of the block. exclusive=True (outside such a block) never replaces
    a file: an existing `path`, even one created a moment before, raises FileExistsError (the
    caller names its flag); the last step is a hard link, which fails if the name exists.
    """
    path = Path(path)
    tmp = _write_temporary(path, data)
    if exclusive:
        _publish_exclusive(tmp, path)
        return
    pending = _PENDING.get()
    if pending is not None:
        pending.append((tmp, path))
    else:
        _publish([(tmp, path)])


_PENDING: contextvars.ContextVar[list | None] = contextvars.ContextVar("softmaxreg_pending_writes", default=None)


@contextlib.contextmanager
def all_or_nothing(*, overwrite: bool = True, remove=()):
    """Every `atomic_write_bytes` inside the block replaces its file when the block ends, or none does.

    The temporary files are all written (and fsynced) first, so a write that fails (disk full,
    file-size limit, an interruption) leaves every destination as it was and no temporary file
    behind. Then they are renamed into place in the order written, and the files in `remove`
    that the block did not write are deleted (a previous run's files the new ones make stale).
    With overwrite=False an existing file whose bytes would change is an OutputError, and
    nothing is written.
    """
    if _PENDING.get() is not None:
        raise RuntimeError("all_or_nothing blocks do not nest")
    pending: list[tuple[str, Path]] = []
    token = _PENDING.set(pending)
    try:
        yield
        if not overwrite:
            for tmp, path in pending:
                if path.exists() and not _same_bytes(tmp, path):
                    raise OutputError(f"{path}: already exists with other contents; pass --overwrite to replace "
                                      "it, or choose another --out")
        _publish(pending)
        for path in set(map(Path, remove)) - {path for _, path in pending}:
            try:
                path.unlink(missing_ok=True)
            except OSError as e:
                raise OutputError(f"{path}: cannot remove: {e.strerror or e}") from None
    except BaseException:
        for tmp, _ in pending:
            _unlink_quietly(tmp)
        raise
    finally:
        _PENDING.reset(token)


def _write_temporary(path: Path, data: bytes) -> str:
    """A fsynced temporary file `.NAME.*.tmp` beside `path` holding `data`, with the umask's mode."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        _unlink_quietly(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
        raise
    return tmp


def _publish(pending) -> None:
    """Rename each temporary file onto its destination; on a failure remove the ones left."""
    for i, (tmp, path) in enumerate(pending):
        try:
            os.replace(tmp, path)
        except BaseException as e:
            for left, _ in pending[i:]:
                _unlink_quietly(left)
            if isinstance(e, OSError):
                raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
            raise


def _publish_exclusive(tmp: str, path: Path) -> None:
    """Link the temporary file as `path` unless that name exists; a file system without hard links
    gets a check and a rename instead (a file created between the two is then replaced)."""
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:
            if path.exists():
                raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
            os.replace(tmp, path)
    except BaseException as e:
        _unlink_quietly(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileExistsError):
            raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
        raise
    _unlink_quietly(tmp)


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _same_bytes(a, b) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return os.fstat(fa.fileno()).st_size == os.fstat(fb.fileno()).st_size and fa.read() == fb.read()


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask. Linux reports it in /proc; elsewhere it can only be read by setting it,
    so it is set to the strictest value for that instant: a file another thread creates meanwhile
    gets fewer permissions, never more."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o777)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def output_folder(folder: Path, *, fresh: bool = False):
    """`folder`, created if needed, for the files of the block; the folders it creates are removed
    again when the block ends if they are still empty, so a command that fails, or writes nothing,
    leaves no trace. A file in the way or an unwritable parent is an OutputError; with `fresh`,
    a `folder` that exists already (or that another process creates first) is a FileExistsError."""
    created = _make_folders(folder, fresh)
    try:
        yield folder
    finally:
        _remove_if_empty(created)


def _remove_if_empty(folders: list[Path]) -> None:
    for path in folders:
        try:
            path.rmdir()
        except OSError:              # not empty (something was written), or already gone
            break


def _make_folders(folder: Path, fresh: bool = False) -> list[Path]:
    """Create `folder` and its missing parents; return the ones created, deepest first. With
    `fresh`, FileExistsError if `folder` exists (or another process creates it first)."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--out {folder}: exists and is not a folder")
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        if fresh:
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir()
        else:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if fresh and isinstance(e, FileExistsError) and folder.is_dir():
            raise
        raise OutputError(f"--out {folder}: cannot create folder: {e.strerror or e}") from None
    return missing


@contextlib.contextmanager
def claim_folder(folder: Path, option: str = "--out", *, fresh: bool = False):
    """`output_folder(folder)` held by one process: a second claim, from this process or another,
    is an OutputError at once. The claim is an exclusive flock on the folder itself, which the
    system releases when the process ends however it ends, so a killed run never leaves it stuck,
    and nothing is written into the folder for it."""
    created = _make_folders(folder, fresh)
    # Only the holder of the claim removes the folders when they stay empty: two processes that
    # race to create `folder` may both count it as created, and the one refused must not remove
    # it from under the one that runs.
    with _exclusive_lock(folder, option):
        try:
            yield folder
        finally:
            _remove_if_empty(created)


@contextlib.contextmanager
def _exclusive_lock(folder: Path, option: str):
    try:
        import fcntl
    except ImportError:              # no flock (Windows): runs are not kept apart
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(f"{option} {folder}: another softmaxreg run is using this folder") from None
            # a file system without locks (ENOLCK, ENOTSUP): runs are not kept apart there
        yield
    finally:
        os.close(fd)


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
