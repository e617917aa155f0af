"""A sparse .npz (datasets/sparse_npz.py): files written by scipy.sparse.save_npz plus labels read
back as scipy's load_npz reads them, and every broken hand-built matrix refused in one line."""

import numpy as np
import pytest

from softmaxreg.datasets.sources import open_data
from softmaxreg.errors import DataFormatError

sp = pytest.importorskip("scipy.sparse")


def save_with_labels(path, X, y, **extra):
    """scipy.sparse.save_npz, then the labels added to the same archive (the README's recipe)."""
    sp.save_npz(path, X)
    np.savez(path, **dict(np.load(path)), y=y, **extra)
    return path


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("kind", [sp.csr_array, sp.csr_matrix])
def test_save_npz_files_read_back_as_scipy_reads_them(tmp_path, fmt, kind):
    rng = np.random.default_rng(0)
    X = kind(sp.random_array((40, 30), density=0.2, rng=rng)).asformat(fmt)
    y = rng.integers(0, 3, 40)
    f = save_with_labels(tmp_path / "train.npz", X, y)
    data = open_data(f)
    assert data.train_images.format == "csr" and data.train_images.has_canonical_format
    np.testing.assert_array_equal(data.train_images.toarray(), sp.load_npz(f).toarray())   # scipy's own reader
    np.testing.assert_array_equal(data.train_labels, y)
    assert data.class_names == ("0", "1", "2") and not data.features and data.test_images is None


def test_class_names_and_float32_are_kept_and_repeats_summed(tmp_path):
    X = sp.csr_array((np.array([1, 2, 3], np.float32), np.array([2, 0, 2]), np.array([0, 2, 3])), shape=(2, 3))
    f = tmp_path / "a.npz"
    np.savez(f, format="csr", shape=np.array(X.shape), data=X.data, indices=X.indices, indptr=X.indptr,
             y=np.array([0, 1]), class_names=np.array(["cat", "dog"]))
    data = open_data(f)
    assert data.train_images.dtype == np.float32 and data.class_names == ("cat", "dog")
    np.testing.assert_array_equal(data.train_images.toarray(), [[2, 0, 1], [0, 0, 3]])


def csr_arrays(**changes):
    arrays = {"format": np.array(b"csr"), "shape": np.array([2, 3]), "data": np.array([1.0, 2.0, 3.0]),
              "indices": np.array([0, 2, 1]), "indptr": np.array([0, 2, 3]), "y": np.array([0, 1])}
    arrays.update(changes)
    return {name: value for name, value in arrays.items() if value is not None}


BROKEN = [
    (csr_arrays(indices=np.array([0, -1, 1])), "indices[1] = -1 is outside 0..2"),
    (csr_arrays(indices=np.array([0, 3, 1])), "indices[1] = 3 is outside 0..2"),
    (csr_arrays(indptr=np.array([0, 3, 2])), "indptr runs from 0 to 2; expected 0 to 3"),
    (csr_arrays(indptr=np.array([0, 3, 1, 3]), shape=np.array([3, 3]), y=np.array([0, 1, 0])),
     "indptr is not monotone: indptr[2] = 1 is below indptr[1] = 3"),
    (csr_arrays(indptr=np.array([0, 3])), "indptr has 2 entries; expected 3"),
    (csr_arrays(indices=np.array([0, 2])), "indices has 2 entries, data has 3"),
    (csr_arrays(data=np.array([1.0, np.nan, 3.0])), "data[1] is nan; expected finite numbers"),
    (csr_arrays(shape=np.array([0, 3]), indptr=np.array([0]), data=np.zeros(0), indices=np.zeros(0, int),
                y=np.zeros(0, int)), "an empty matrix (shape 0 x 3)"),
    (csr_arrays(shape=np.array([2, 3, 1])), "shape: expected 2 non-negative integers"),
    (csr_arrays(format=np.array(b"dia")), "format: expected one of csr, csc, coo, found 'dia'"),
    (csr_arrays(indices=np.array([0, 2, 1], np.int8), shape=np.array([2, 300])),
     "indices: 300 positions do not fit its index type int8"),
    (csr_arrays(indices=None), "missing array 'indices'"),
    (csr_arrays(y=None), "a sparse matrix without its labels: expected an array y"),
    (csr_arrays(weights=np.ones(2)), "unexpected array 'weights' in a sparse .npz"),
    (csr_arrays(y=np.array([0, 1, 1])), "2 rows of features but 3 labels"),
]


@pytest.mark.parametrize("arrays, message", BROKEN)
def test_a_broken_hand_built_matrix_is_refused_in_one_line(tmp_path, arrays, message):
    f = tmp_path / "bad.npz"
    np.savez(f, **arrays)
    with pytest.raises(DataFormatError) as caught:
        open_data(f)
    assert message in str(caught.value) and str(f) in str(caught.value) and "\n" not in str(caught.value)


def test_the_cli_refuses_a_broken_matrix_with_exit_2(tmp_path, capsys):
    from .conftest import cli_refuses

    f = tmp_path / "bad.npz"
    np.savez(f, **csr_arrays(indices=np.array([0, 5, 1])))
    cli_refuses(["train", "--data", str(f), "--out", str(tmp_path / "run"), "--quiet"], tmp_path, capsys,
                "indices[1] = 5 is outside 0..2")
