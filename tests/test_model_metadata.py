"""Model-file metadata is checked as strictly as the tensors (issue 23, part 2): every field's type,
class names (unique strings of 1..MAX_NAME_CHARS characters, no control characters), JSON sizes
bounded before parsing. Each case is refused with one line naming the file and the field, through
the Python API (ModelFormatError) and the CLI (exit 2, one line, no traceback, no file changed)."""

import numpy as np
import pytest

from softmaxreg import InvalidArgumentError, ModelFormatError, SoftmaxRegression, load_model, save_model
from softmaxreg import tensor_file
from softmaxreg.tensor_file import write_tensors
from softmaxreg.model_file import FORMAT, FORMAT_VERSION, MAX_NAME_CHARS

from .conftest import cli_refuses

GOOD = {"class_names": '["a", "b", "c"]', "input_shape": "[6]", "preprocessing": '{"input_scale": 1.0}'}
TENSORS = {"weight": np.zeros((6, 3), np.float32), "bias": np.zeros(3, np.float32)}

# (id, metadata change, what the one line must say)
CASES = [
    ("repeated class names", {"class_names": '["a", "b", "a"]'}, "class_names repeats 'a'"),
    ("class name not a string", {"class_names": '["a", 2, "c"]'}, r"class_names\[1\] is int"),
    ("class name too long", {"class_names": f'["a", "b", "{"x" * (MAX_NAME_CHARS + 1)}"]'},
     rf"class_names\[2\] has {MAX_NAME_CHARS + 1} characters"),
    ("empty class name", {"class_names": '["a", "", "c"]'}, r"class_names\[1\] has 0 characters"),
    ("escape sequence in a class name", {"class_names": '["a", "\\u001b[31mred", "c"]'},
     r"class_names\[1\] holds a control character"),
    ("newline in a class name", {"class_names": '["a", "b\\nc", "c"]'}, "control character"),
    ("class_names not a list", {"class_names": '{"a": 1}'}, "class_names must be 3 strings"),
    ("field too long", {"input_shape": "[6" + " " * 5000 + "]"}, "field input_shape is 5003 characters"),
    ("field not JSON", {"preprocessing": "{"}, "field preprocessing is not valid JSON"),
    ("preprocessing not an object", {"preprocessing": "[1]"}, "field preprocessing must be an object"),
    ("input_scale a string", {"preprocessing": '{"input_scale": "2"}'}, "field preprocessing must be an object"),
    ("standardize not a bool", {"preprocessing": '{"input_scale": 1, "standardize": "yes"}'},
     "field preprocessing must be an object"),
    ("unknown preprocessing key", {"preprocessing": '{"input_scale": 1, "exec": "rm"}'}, "field preprocessing"),
    ("input_shape of floats", {"input_shape": "[6.0]"}, "field input_shape"),
    ("input_range of strings", {"input_range": '["0", "1"]'}, "field input_range"),
    ("input_range of a 4000-digit integer", {"input_range": "[0, " + "9" * 4000 + "]"}, "field input_range"),
    ("input_range infinite", {"input_range": "[0, Infinity]"}, "field input_range"),
    ("index_base 2", {"index_base": "2"}, "field index_base must be 0 or 1"),
    ("index_base a string", {"index_base": '"0"'}, "field index_base must be 0 or 1"),
    ("index_base a bool", {"index_base": "true"}, "field index_base must be 0 or 1"),
    ("input_scale a 4000-digit integer", {"preprocessing": '{"input_scale": ' + "9" * 4000 + "}"},
     "field preprocessing"),
    ("missing field", {"class_names": None}, "lacks field class_names"),
]


def write_case(path, change):
    meta = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    write_tensors(path, TENSORS, meta, kind=FORMAT, version=FORMAT_VERSION)


def test_the_good_metadata_loads(tmp_path):
    write_case(tmp_path / "m.safetensors", {})
    assert tuple(load_model(tmp_path / "m.safetensors").class_names) == ("a", "b", "c")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_metadata_is_refused_by_the_api(case, tmp_path):
    _, change, message = case
    write_case(tmp_path / "m.safetensors", change)
    with pytest.raises(ModelFormatError, match=message) as e:
        load_model(tmp_path / "m.safetensors")
    assert str(tmp_path / "m.safetensors") in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("case", CASES[::3], ids=[c[0] for c in CASES[::3]])
def test_bad_metadata_is_refused_by_the_cli(case, tmp_path, capsys):
    _, change, message = case
    write_case(tmp_path / "m.safetensors", change)
    np.save(tmp_path / "x.npy", np.zeros(6))
    cli_refuses(["predict", str(tmp_path / "m.safetensors"), str(tmp_path / "x.npy"), "--input-range", "0", "1"],
                tmp_path, capsys, message.replace("\\", ""))


def test_the_header_size_is_bounded_before_parsing(tmp_path, monkeypatch, capsys):
    write_case(tmp_path / "m.safetensors", {})
    monkeypatch.setattr(tensor_file, "MAX_HEADER_BYTES", 100)
    with pytest.raises(ModelFormatError, match=r"header of \d+ bytes is too large \(at most 100"):
        load_model(tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", np.zeros(6))
    cli_refuses(["predict", str(tmp_path / "m.safetensors"), str(tmp_path / "x.npy")], tmp_path, capsys,
                "too large")


@pytest.mark.parametrize("names", [["a", "b\x1b[2J"], ["a", "a"], ["a", "x" * (MAX_NAME_CHARS + 1)]])
def test_names_the_loader_would_refuse_are_not_saved(names, tmp_path):
    with pytest.raises(InvalidArgumentError, match="cannot save"):
        save_model(SoftmaxRegression(2, 2, class_names=names), tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []
