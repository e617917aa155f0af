"""Property-based tests of every data reader (CSV, .npy folder, .npz, Parquet, Zarr; IDX and the model
loader's bytes are in test_fuzz.py) and of the model file's metadata (issue 23, part 5): random and
mutated inputs (bytes flipped, cut, inserted into valid files) end in success or a SoftmaxRegError,
never another exception, with memory bounded by the input (tracemalloc); at the CLI, exit 0 or 2 with
one line on stderr. Derandomized, without deadlines, and small, so that CI is fast and reproducible."""

import io
import json
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softmaxreg import ModelFormatError, SoftmaxRegError, SoftmaxRegression, load_model, save_model
from softmaxreg.cli import main
from softmaxreg.datasets.sources import open_data
from softmaxreg.tensor_file import write_tensors
from softmaxreg.model_file import FORMAT, FORMAT_VERSION

from .test_fuzz import mutated

READERS = settings(max_examples=40, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MEMORY_LIMIT = 64 * 2**20


def bounded(call, size: int) -> None:
    """call() succeeds or raises a SoftmaxRegError, its peak Python allocations below the bound."""
    tracemalloc.start()
    try:
        call()
    except SoftmaxRegError as e:
        assert "\n" not in str(e), str(e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT + 50 * size


def valid_csv() -> bytes:
    return b"a,b,label\n0.5,1,cat\n2,-3e2,dog\n4,5,cat\n"


def valid_npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def valid_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, X_train=np.arange(12.0).reshape(4, 3), y_train=np.array([0, 1, 0, 1]),
             class_names=np.array(["a", "b"]))
    return buf.getvalue()


def valid_parquet() -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    buf = io.BytesIO()
    pq.write_table(pa.table({"a": [1.0, 2, 3, 4], "b": pa.array([1, None, 3, 4]), "y": [0, 1, 0, 1]}), buf)
    return buf.getvalue()


@READERS
@given(text=st.text(alphabet=st.sampled_from(list('ab,y"\n\r 01.-e\tx\x00')), max_size=200))
def test_csv_reader_on_random_text(tmp_path, text):
    (tmp_path / "d.csv").write_text(text, encoding="utf-8")
    bounded(lambda: open_data(tmp_path / "d.csv", label_column="y"), len(text))


@READERS
@given(data=st.data())
def test_csv_reader_on_mutated_files(tmp_path, data):
    blob = data.draw(mutated(valid_csv()))
    (tmp_path / "d.csv").write_bytes(blob)
    bounded(lambda: open_data(tmp_path / "d.csv", label_column="label"), len(blob))


@READERS
@given(data=st.data(), which=st.sampled_from(["X_train", "y_train"]))
def test_npy_folder_reader_on_mutated_files(tmp_path, data, which):
    arrays = {"X_train": np.arange(12.0).reshape(4, 3), "y_train": np.array([0, 1, 0, 1])}
    blob = data.draw(mutated(valid_npy(arrays[which])))
    (tmp_path / "d").mkdir(exist_ok=True)
    for name, a in arrays.items():
        (tmp_path / "d" / f"{name}.npy").write_bytes(blob if name == which else valid_npy(a))
    bounded(lambda: open_data(tmp_path / "d"), len(blob))


@pytest.mark.parametrize("name, valid, options", [("d.npz", valid_npz, {}),
                                                   ("d.parquet", valid_parquet, {"label_column": "y"})])
@READERS
@given(data=st.data())
def test_single_file_readers_on_mutated_files(tmp_path, data, name, valid, options):
    blob = data.draw(mutated(valid()))
    (tmp_path / name).write_bytes(blob)
    bounded(lambda: open_data(tmp_path / name, **options), len(blob))


@pytest.fixture(scope="module")
def zarr_store(tmp_path_factory):
    zarr = pytest.importorskip("zarr")
    root = tmp_path_factory.mktemp("zarr") / "d.zarr"
    group = zarr.open_group(str(root), mode="w")
    group.create_array("X_train", shape=(4, 3), chunks=(2, 3), dtype="f8")[...] = np.arange(12.0).reshape(4, 3)
    group.create_array("y_train", shape=(4,), chunks=(2,), dtype="i8")[...] = np.array([0, 1, 0, 1])
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@READERS
@given(data=st.data())
def test_zarr_reader_on_mutated_stores(tmp_path, zarr_store, data):
    """One file of the store (array metadata, group metadata or a chunk) mutated."""
    target = data.draw(st.sampled_from(sorted(zarr_store)))
    blob = data.draw(mutated(zarr_store[target]))
    root = tmp_path / "d.zarr"
    for name, content in zarr_store.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(blob if name == target else content)
    bounded(lambda: open_data(root), len(blob))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=12)
FIELDS = ["class_names", "input_shape", "preprocessing", "input_range", "dtype"]
GOOD = {"class_names": '["a", "b", "c"]', "input_shape": "[2, 3]", "preprocessing": '{"input_scale": 1.0}',
        "input_range": "[0, 1]", "dtype": "float32"}


@READERS
@given(field=st.sampled_from(FIELDS), value=JSON | st.text(max_size=40).map(lambda s: s))
def test_model_loader_on_random_metadata(tmp_path, field, value):
    """Any JSON (or text) in any metadata field: the model loads or is refused naming the field."""
    text = value if isinstance(value, str) and field != "class_names" else json.dumps(value)
    tensors = {"weight": np.zeros((6, 3), np.float32), "bias": np.zeros(3, np.float32)}
    write_tensors(tmp_path / "m.safetensors", tensors, {**GOOD, field: text}, kind=FORMAT, version=FORMAT_VERSION)
    try:
        load_model(tmp_path / "m.safetensors")
    except ModelFormatError as e:
        assert "\n" not in str(e) and str(tmp_path / "m.safetensors") in str(e)


@pytest.fixture(scope="module")
def model_for_cli(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    save_model(SoftmaxRegression(3, 2, seed=0, input_shape=(3,), input_range=(-1e3, 1e3)), path)
    return path


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(["csv", "npz"]))
def test_the_cli_answers_mutated_data_with_one_line(tmp_path, capsys, model_for_cli, data, kind):
    blob = data.draw(mutated(valid_csv() if kind == "csv" else valid_npz()))
    (tmp_path / f"d.{kind}").write_bytes(blob)
    capsys.readouterr()
    code = main(["predict", str(model_for_cli), "--data", str(tmp_path / f"d.{kind}"),
                 *(["--label-column", "label"] if kind == "csv" else [])])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err
    assert code == 0 or err.count("\n") == 1, err
