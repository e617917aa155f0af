"""Fashion-MNIST, bundled and checksummed, and any folder of four MNIST-format IDX files.

Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT licence, see data/LICENSE-fashion-mnist.txt)
ships inside the package as the four original .gz files from Debian's
dataset-fashion-mnist. Every load checks them against the SHA-256 sums below.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..cachedir import CACHE_ENV, cache_dir
from ..errors import ChecksumError, DataFormatError
from ..fileio import atomic_write_bytes
from . import blocks
from .classes import implied_classes, named_classes
from .idx import _is_gzip, open_idx_memmap, read_idx
from .resize import resize_images

__all__ = ["load_fashion_mnist", "read_class_names", "check_class_names", "ImageDataset", "FASHION_MNIST_CLASSES", "DATA_DIR_ENV", "CACHE_ENV", "BUNDLED_DIR"]

DATA_DIR_ENV = "SOFTMAXREG_DATA_DIR"
BUNDLED_DIR = Path(__file__).parent / "data"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle boot")
CLASS_NAMES_FILE = "class_names.txt"


class ImageDataset(NamedTuple):
    """uint8 images (n, h, w) and uint8 labels (n,) for both splits, plus provenance; or, from
    `--data` (datasets.sources), rows of features and integer labels."""
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str                    # folder the files came from, or "bundled"
    sha256: dict                   # file name -> SHA-256 of the file as read
    features: bool = False         # a dense table of features (n, d), not images: the command line
                                   # standardizes it by default
    index_base: int | None = None  # svmlight files: the first feature index they were read with (0 or 1)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _read_cached(path: Path, digest: str) -> np.ndarray:
    """read_idx(path), through a decompressed .npy copy named by the source file's SHA-256.

    Inflating the .gz files takes ~0.3 s, more than training; the cache takes ~0.03 s.
    The .npy is trusted only if its own SHA-256 matches the one recorded beside it when
    it was written, so a damaged cache is rebuilt, never used. The cache is best-effort:
    if it cannot be read or written, the IDX file is read directly.
    """
    folder = cache_dir()
    if folder is None:
        return read_idx(path)
    npy, recorded = folder / f"{digest}.npy", folder / f"{digest}.sha256"
    try:
        data = bytearray(npy.stat().st_size)
        with open(npy, "rb") as f:
            f.readinto(data)
        if hashlib.sha256(data).hexdigest() == recorded.read_text().strip():
            stream = io.BytesIO(data[:4096])               # the header only: BytesIO copies
            np.lib.format.read_magic(stream)
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            if not fortran and not dtype.hasobject:
                return np.frombuffer(data, dtype=dtype, offset=stream.tell()).reshape(shape)
    except (OSError, ValueError):
        pass
    array = read_idx(path)
    stream = io.BytesIO()
    np.lib.format.write_array(stream, array, version=(1, 0), allow_pickle=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(npy, stream.getvalue())
        atomic_write_bytes(recorded, hashlib.sha256(stream.getvalue()).hexdigest().encode())
    except OSError:
        pass
    return array


def _find(folder: Path, name: str) -> Path:
    """`name` in `folder`, or its decompressed twin without .gz."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    raise DataFormatError(f"{folder}: missing {name} (or {name.removesuffix('.gz')})")


def read_class_names(names_file: Path) -> tuple[str, ...]:
    """One class name per line (blank lines skipped), checked by `check_class_names`."""
    names = tuple(line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip())
    return check_class_names(names, names_file, "one class name per line")


def check_class_names(names, where, form: str = "class names") -> tuple[str, ...]:
    """`names` (a sequence of str) as a tuple, refused unless at least 2 and none repeated
    (DataFormatError naming `where`); that they cover the labels is checked where the labels are."""
    names = tuple(names)
    if len(names) < 2:
        raise DataFormatError(f"{where}: expected {form}, at least 2, found {len(names)}")
    for name in names:                       # what a model file may hold (model_file.MAX_NAME_CHARS)
        if not 0 < len(name) <= 1000 or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
            raise DataFormatError(f"{where}: class name {name[:40]!r}{'...' if len(name) > 40 else ''}: expected "
                                  "1 to 1000 characters without control characters")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataFormatError(f"{where}: class names repeat: {', '.join(map(repr, repeated))}")
    return names


def _class_names(folder: Path, sums: dict, labels: list[np.ndarray], paths: list[Path], num_classes) -> tuple[str, ...]:
    if all(sums.get(name) == digest for name, digest in SHA256.items()):
        return named_classes(FASHION_MNIST_CLASSES, num_classes, folder)
    names_file = folder / CLASS_NAMES_FILE
    if names_file.is_file():
        return named_classes(read_class_names(names_file), num_classes, names_file)
    k = implied_classes((labels[0], paths[0]), [(labels[1], paths[1])], num_classes)   # classes.py's rule
    return tuple(map(str, range(k)))


def load_fashion_mnist(data_dir=None, *, resize=None, num_classes=None) -> ImageDataset:
    """Load Fashion-MNIST (bundled, verified) or the four IDX files in `data_dir`.

    data_dir: a folder holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),
        t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz); defaults to
        $SOFTMAXREG_DATA_DIR, then to the bundled copy. Image size and the number of
        classes come from the files; class names are Fashion-MNIST's when the files are
        Fashion-MNIST, else read from class_names.txt in the folder, else "0", "1", ...
        Data that cannot be right is refused (DataFormatError naming the file): images and labels
        of different counts, splits of different image sizes, labels outside the classes, a test
        class with no training example, a training split of one class, repeated class names.
    resize: optional (height, width) or int; images are resized bilinearly (as the
        lesson's loader does with transforms.Resize) and stay uint8.
    num_classes: the classes are 0..num_classes-1, declared (datasets.classes: otherwise labels
        without names imply 0..max label, refused when most of those never occur).
    Raw (uncompressed) IDX files whose training images are larger than blocks.STREAM_BYTES (256 MiB) are
    memory-mapped, not read (see datasets.blocks), so a training split larger than memory can be streamed
    (and SGD's shuffle="auto" is the block shuffle); smaller ones, and gzipped ones, are read into memory. The decompressed arrays are cached (see `_read_cached`; $SOFTMAXREG_CACHE_DIR=off disables).
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    folder = BUNDLED_DIR if data_dir is None else Path(data_dir)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: data folder does not exist or is not a folder")
    paths = {key: _find(folder, name) for key, name in FILES.items()}
    sums = {p.name: _sha256(p) for p in paths.values()}
    if data_dir is None:
        for name, digest in SHA256.items():
            if sums[name] != digest:
                raise ChecksumError(f"{folder / name}: SHA-256 {sums[name]} does not match the bundled "
                                    f"Fashion-MNIST's {digest}; reinstall softmaxreg")
    # raw files are memory-mapped (read as they are used: out-of-core) when the training images are larger
    # than STREAM_BYTES; otherwise, and for gzipped ones, read once into memory (cached), as before
    streamed = not _is_gzip(paths["train_images"]) and paths["train_images"].stat().st_size > blocks.STREAM_BYTES
    arrays = {key: open_idx_memmap(p) if streamed and not _is_gzip(p) else _read_cached(p, sums[p.name])
              for key, p in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        img_path, lbl_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataFormatError(f"{img_path}: expected uint8 images of 3 dimensions (n, height, width), "
                                  f"found {images.dtype} with shape {images.shape}")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataFormatError(f"{lbl_path}: expected integer labels of 1 dimension, found {labels.dtype} {labels.shape}")
        if images.shape[0] != labels.shape[0]:
            raise DataFormatError(f"{img_path} holds {images.shape[0]} images but {lbl_path} holds {labels.shape[0]} labels")
        if images.shape[0] == 0:
            raise DataFormatError(f"{img_path}: holds no images")
        if 0 in images.shape[1:]:
            raise DataFormatError(f"{img_path}: images of size {'x'.join(map(str, images.shape[1:]))}; "
                                  "expected at least 1x1")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataFormatError(f"{paths['train_images']} and {paths['test_images']}: image sizes differ "
                              f"({arrays['train_images'].shape[1:]} and {arrays['test_images'].shape[1:]})")
    labels = [arrays["train_labels"], arrays["test_labels"]]
    class_names = _class_names(folder, sums, labels, [paths["train_labels"], paths["test_labels"]],
                               num_classes)
    for key in ("train_labels", "test_labels"):
        y = arrays[key]
        if y.min() < 0 or y.max() >= len(class_names):
            raise DataFormatError(f"{paths[key]}: labels must lie in [0, {len(class_names) - 1}], found {y.min()}..{y.max()}")
        arrays[key] = y.astype(np.uint8) if len(class_names) <= 256 else y.astype(np.int32)
    trained = np.bincount(arrays["train_labels"], minlength=len(class_names)) > 0
    if trained.sum() < 2:
        raise DataFormatError(f"{paths['train_labels']}: every label is {np.argmax(trained)}; "
                              "training needs examples of at least 2 classes")
    untrained = np.flatnonzero(~trained[arrays["test_labels"]])
    if untrained.size:
        c = arrays["test_labels"][untrained[0]]
        raise DataFormatError(f"{paths['test_labels']}: class {c} ({class_names[c]!r}) is in the test split but "
                              f"has no training examples in {paths['train_labels'].name}; the splits disagree")
    if resize is not None:
        for key in ("train_images", "test_images"):
            arrays[key] = resize_images(arrays[key], resize)
    return ImageDataset(class_names=class_names, source="bundled" if data_dir is None else str(folder),
                        sha256=sums, **arrays)
