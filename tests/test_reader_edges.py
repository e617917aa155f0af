"""Every reader's edge cases (issue 23, part 4): each one works, or is refused with one line naming
the file (and line, column or array) and what was expected: through the Python API (the specific
exception) and the CLI (exit 2, one line on stderr, no traceback, no file changed)."""

import json
import struct

import numpy as np
import pytest

from softmaxreg import DataFormatError, InvalidArgumentError, SoftmaxRegression, load_model, save_model
from softmaxreg.cli import main
from softmaxreg.datasets.sources import open_data

from .conftest import cli_refuses


def train_args(data, root, *extra):
    return ["train", "--data", str(data), "--out", str(root / "run"), "--epochs", "1", "--no-plots", "--quiet", *extra]


def npy_header_claiming(shape, dtype="<f8") -> bytes:
    """A .npy file of ~100 bytes whose header declares `shape` and holds no data."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


# CSV: (id, text, what works or the one line)
CSV_REFUSED = [
    ("repeated header names", "a,a,y\n1,2,0\n3,4,1\n", "column name 'a' repeats (columns 1 and 2)"),
    ("one class", "a,y\n1,0\n2,0\n", "every label is 0; training needs examples of at least 2 classes"),
    ("one class name", "a,y\n1,cat\n2,cat\n", "at least 2 classes"),
    ("missing cell", "a,y\n,0\n2,1\n", "line 2, column 'a': expected a number, found ''"),
    ("bool cell", "a,y\nTrue,0\n2,1\n", "line 2, column 'a': expected a number, found 'True'"),
    ("long bad cell", "a,y\n\"" + "x" * 300_000 + "\",0\n2,1\n", "line 2, column 'a': expected a number"),
    ("escape sequence in a label", 'a,y\n1,cat\n2,"d\x1bog"\n', "without control characters"),
    ("line number after blank lines", "a,y\n\n1,0\n\nzz,1\n", "line 5, column 'a'"),
]


@pytest.mark.parametrize("case", CSV_REFUSED, ids=[c[0] for c in CSV_REFUSED])
def test_csv_edge_cases_refused(case, tmp_path, capsys):
    _, text, message = case
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        open_data(tmp_path / "d.csv", label_column="y")
    assert str(tmp_path / "d.csv") in str(e.value)
    cli_refuses(train_args(tmp_path / "d.csv", tmp_path, "--label-column", "y"), tmp_path, capsys, message)


def test_a_model_is_evaluated_on_rows_of_one_class(tmp_path, capsys):
    """One-class data is refused for training, not for judging a model (its classes are declared)."""
    (tmp_path / "train.csv").write_text("a,y\n0,0\n1,1\n0.2,0\n0.9,1\n")
    (tmp_path / "ones.csv").write_text("a,y\n0.8,1\n1.1,1\n")
    run = tmp_path / "run"
    assert main(train_args(tmp_path / "train.csv", tmp_path, "--label-column", "y")) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run / "model.safetensors"), "--data", str(tmp_path / "ones.csv"),
                 "--label-column", "y", "--out", str(tmp_path / "eval"), "--json"]) == 0
    model = load_model(run / "model.safetensors")
    expected = float(np.mean(model.predict(np.array([[0.8], [1.1]])) == 1))
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(expected)
    with pytest.raises(DataFormatError, match="every label is 1"):
        open_data(tmp_path / "ones.csv", label_column="y")


def test_csv_blank_lines_are_skipped_and_long_fields_read(tmp_path):
    long = "1" + "0" * 200_000                        # a field beyond csv's default limit of 131072 characters
    (tmp_path / "d.csv").write_text("a,b,y\n\n1,2,0\n\n3,4,1\n\n")
    d = open_data(tmp_path / "d.csv", label_column="y")
    np.testing.assert_array_equal(d.train_images, [[1, 2], [3, 4]])
    (tmp_path / "e.csv").write_text(f"a,y\n0.{long},0\n2,1\n")
    d = open_data(tmp_path / "e.csv", label_column="y")
    assert d.train_images[0, 0] == float(f"0.{long}")


def test_csv_labels_mixing_numbers_and_text_are_all_names(tmp_path):
    """Any label that is not an integer makes every label a class name, sorted as text (documented)."""
    (tmp_path / "d.csv").write_text("a,y\n1,10\n2,cat\n3,2\n4,cat\n")
    d = open_data(tmp_path / "d.csv", label_column="y")
    assert d.class_names == ("10", "2", "cat")
    np.testing.assert_array_equal(d.train_labels, [0, 2, 1, 2])


def parquet(tmp_path, columns: dict, name="d.parquet"):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table(columns), tmp_path / name)
    return tmp_path / name


def test_parquet_nullable_bool_and_text_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    p = parquet(tmp_path, {"f": pa.array([1.5, 2, 3, 4], pa.float64()), "i": pa.array([1, 2, 3, 4], pa.int64()),
                           "b": pa.array([True, False, True, False]),
                           "y": pa.array(["cat", "dog", "cat", "ant"])})
    d = open_data(p, label_column="y")
    np.testing.assert_array_equal(d.train_images, [[1.5, 1, 1], [2, 2, 0], [3, 3, 1], [4, 4, 0]])
    assert d.class_names == ("ant", "cat", "dog")
    np.testing.assert_array_equal(d.train_labels, [1, 2, 1, 0])
    p = parquet(tmp_path, {"f": pa.array([1.0, 2, 3, 4]),
                           "y": pa.array(["b", "a", "b", "a"]).dictionary_encode()}, "cat.parquet")
    d = open_data(p, label_column="y")
    assert d.class_names == ("a", "b") and d.train_labels.tolist() == [1, 0, 1, 0]


def test_parquet_pandas_extension_dtypes_without_na_are_read(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"f": pd.array([1.5, 2, 3, 4], dtype="Float64"), "i": pd.array([1, 2, 3, 4], dtype="Int64"),
                          "b": pd.array([True, False, True, False], dtype="boolean"),
                          "y": pd.array([0, 1, 0, 1], dtype="Int64")})
    frame.to_parquet(tmp_path / "d.parquet")
    d = open_data(tmp_path / "d.parquet", label_column="y")
    np.testing.assert_array_equal(d.train_images, frame[["f", "i", "b"]].astype("float64").to_numpy())
    np.testing.assert_array_equal(d.train_labels, [0, 1, 0, 1])


def parquet_cases():
    pa = pytest.importorskip("pyarrow")
    y = pa.array([0, 1, 0, 1])
    return [
        ("NA in a nullable float", {"f": pa.array([1.0, None, 3, 4]), "y": y}, "feature column 'f', row 2: missing value"),
        ("NA in a nullable int", {"f": pa.array([1, 2, None, 4]), "y": y}, "feature column 'f', row 3: missing value"),
        ("NaN in a float", {"f": pa.array([1.0, 2, float("nan"), 4], from_pandas=False), "y": y},
         "feature column 'f', row 3"),
        ("a string feature", {"f": pa.array(["1", "2", "3", "4"]), "y": y}, "feature column 'f' holds"),
        ("a categorical feature", {"f": pa.array(["a", "b", "a", "b"]).dictionary_encode(), "y": y},
         "feature column 'f' holds category"),
        ("NA in the labels", {"f": pa.array([1.0, 2, 3, 4]), "y": pa.array([0, None, 1, 1])},
         "label column 'y', row 2: missing label"),
        ("float labels", {"f": pa.array([1.0, 2, 3, 4]), "y": pa.array([0.0, 1, 0, 1])},
         "label column 'y' holds float64"),
        ("repeated column names", pa.Table.from_arrays([pa.array([1.0, 2]), pa.array([3.0, 4]), pa.array([0, 1])],
                                                       names=["a", "a", "y"]), "column name 'a' repeats"),
        ("one class", {"f": pa.array([1.0, 2]), "y": pa.array([3, 3])}, "every label is 3"),
    ]


@pytest.mark.parametrize("index", range(9))
def test_parquet_edge_cases_refused(index, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    _, columns, message = parquet_cases()[index]
    pq.write_table(columns if isinstance(columns, pa.Table) else pa.table(columns), tmp_path / "d.parquet")
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(")):
        open_data(tmp_path / "d.parquet", label_column="y")
    cli_refuses(train_args(tmp_path / "d.parquet", tmp_path, "--label-column", "y"), tmp_path, capsys, message)


def test_npy_header_claiming_a_trillion_elements_is_refused_without_allocating(tmp_path, capsys):
    import tracemalloc
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "X_train.npy").write_bytes(npy_header_claiming((10**6, 10**6)))
    np.save(tmp_path / "data" / "y_train.npy", np.zeros(10**6, np.int64)[:4])
    assert len((tmp_path / "data" / "X_train.npy").read_bytes()) <= 128
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match=r"X_train.npy: truncated: its header declares shape \(1000000, "
                                                  r"1000000\)"):
            open_data(tmp_path / "data")
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()
    cli_refuses(train_args(tmp_path / "data", tmp_path), tmp_path, capsys, "truncated: its header declares")


def test_npy_declared_rows_of_features_and_labels_are_compared_before_reading(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "X_train.npy", np.zeros((5, 3)))
    np.save(tmp_path / "data" / "y_train.npy", np.arange(4) % 2)
    with pytest.raises(DataFormatError, match=r"\(X_train, y_train\): 5 rows of features but 4 labels"):
        open_data(tmp_path / "data")
    cli_refuses(train_args(tmp_path / "data", tmp_path), tmp_path, capsys, "5 rows of features but 4 labels")


def test_npz_member_claiming_more_than_it_holds_is_refused(tmp_path, capsys):
    import zipfile
    with zipfile.ZipFile(tmp_path / "d.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("X_train.npy", npy_header_claiming((10**6, 10**6)))
        z.writestr("y_train.npy", npy_header_claiming((10**6,), "<i8"))
    with pytest.raises(DataFormatError, match=r"d.npz \(array X_train\): truncated"):
        open_data(tmp_path / "d.npz")
    cli_refuses(train_args(tmp_path / "d.npz", tmp_path), tmp_path, capsys, "(array X_train): truncated")


def test_zarr_declared_shapes_are_checked_before_reading(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(tmp_path / "d.zarr"), mode="w")
    group.create_array("X_train", shape=(10**12, 4), chunks=(1000, 4), dtype="f8")      # nothing written
    group.create_array("y_train", shape=(10**12,), chunks=(1000,), dtype="i8")
    with pytest.raises(DataFormatError, match="more than the memory this machine can give them"):
        open_data(tmp_path / "d.zarr")
    group.create_array("y_test", shape=(5,), chunks=(5,), dtype="i8")
    group.create_array("X_test", shape=(6, 4), chunks=(6, 4), dtype="f8")
    with pytest.raises(DataFormatError, match=r"\(X_test, y_test\): 6 rows of features but 5 labels"):
        open_data(tmp_path / "d.zarr")
    cli_refuses(train_args(tmp_path / "d.zarr", tmp_path), tmp_path, capsys, "rows of features but")


def test_a_streamed_zarr_store_of_countless_tiny_chunks_is_refused_before_a_dask_graph(tmp_path, capsys):
    """A store of fill values declares any number of chunks at no cost; each would be a Dask task.
    Below the bound, a row-chunk mismatch is still one short line, however many chunks it lists."""
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("dask.array")
    group = zarr.open_group(str(tmp_path / "d.zarr"), mode="w")
    group.create_array("X_train", shape=(2_000_000, 200), dtype="u1", chunks=(1, 200))     # 400 MB: streamed
    group.create_array("y_train", shape=(2_000_000,), dtype="u1", chunks=(2_000_000,))
    with pytest.raises(DataFormatError, match=r"X_train\): row chunks of 1 rows make more than 1,000,000 chunks"):
        open_data(tmp_path / "d.zarr")
    cli_refuses(train_args(tmp_path / "d.zarr", tmp_path), tmp_path, capsys, "make more than 1,000,000 chunks")
    group = zarr.open_group(str(tmp_path / "e.zarr"), mode="w")
    group.create_array("X_train", shape=(1_000_000, 300), dtype="u1", chunks=(4, 300))       # 250,000 chunks
    group.create_array("y_train", shape=(1_000_000,), dtype="u1", chunks=(1_000_000,))
    with pytest.raises(DataFormatError, match=r"row chunks of the features \(4, 4, 4, 4, ... 250,000 in all\)") as e:
        open_data(tmp_path / "e.zarr")
    assert len(str(e.value)) < 400


def test_an_empty_array_given_to_predict(tmp_path, capsys):
    """The CLI refuses it (as scikit-learn's predict does); the array API returns empty results."""
    model = SoftmaxRegression(6, 3, seed=0, input_shape=(6,), input_range=(0, 1))
    save_model(model, tmp_path / "m.safetensors")
    np.save(tmp_path / "empty.npy", np.zeros((0, 6)))
    cli_refuses(["predict", str(tmp_path / "m.safetensors"), str(tmp_path / "empty.npy")], tmp_path, capsys,
                "empty.npy: holds no examples (shape (0, 6)); expected at least one")
    assert model.predict(np.zeros((0, 6))).shape == (0,)
    assert model.predict_proba(np.zeros((0, 6))).shape == (0, 3)


def test_values_so_large_the_loss_overflows_say_so(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "big.npz", X_train=rng.normal(size=(40, 3)) * 1e300, y_train=np.arange(40) % 2)
    for extra in ([], ["--solver", "lbfgs"]):
        cli_refuses(train_args(tmp_path / "big.npz", tmp_path, *extra)[:5] + ["--no-plots", "--quiet"] + extra,
                    tmp_path, capsys, "values too large")
    with pytest.raises(InvalidArgumentError, match="values too large"):
        SoftmaxRegression(3, 2).set_standardization(np.full(3, np.inf), np.ones(3))
    from softmaxreg import TrainingDivergedError, fit
    from softmaxreg.train import TrainConfig
    with pytest.raises(TrainingDivergedError, match="values too large: the loss overflowed"):
        fit(SoftmaxRegression(3, 2, dtype=np.float64), rng.normal(size=(40, 3)) * 1e200, np.arange(40) % 2,
            TrainConfig(epochs=1, batch_size=8))
