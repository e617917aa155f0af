"""Files that must never be half-written: atomic writes (alone, or several that replace their
files together or not at all) and output folders claimed by one run at a time. (The safetensors
container that model files and checkpoints share, written through here, is tensor_file.py.)

Every file written here gets the permissions the user's umask allows (0666 & ~umask), like
files that `open` creates, although its temporary file starts private (mkstemp's 0600).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import tempfile
import threading
from pathlib import Path

from .errors import OutputError

__all__ = ["atomic_write_bytes", "all_or_nothing", "output_folder", "claim_folder"]


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
