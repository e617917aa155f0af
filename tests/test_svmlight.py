"""datasets/svmlight.py against scikit-learn's independent reader and writer (load_svmlight_file,
dump_svmlight_file) on generated and hand-written files, and every bad input named by file and line."""

import numpy as np
import pytest

from softmaxreg.datasets import svmlight
from softmaxreg.datasets.sources import open_data
from softmaxreg.datasets.svmlight import load_svmlight
from softmaxreg.errors import DataFormatError

from .conftest import cli_refuses

sk_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is the independent svmlight reader")
sp = pytest.importorskip("scipy.sparse")


def write(path, text: str):
    path.write_text(text)
    return path


def random_sparse(rng, n, d, density=0.2):
    X = sp.random_array((n, d), density=density, format="csr", rng=rng)
    X.data = np.round(rng.normal(size=X.nnz) * 10, 3)       # negatives, several magnitudes
    return X


@pytest.mark.parametrize("zero_based", [True, False])
@pytest.mark.parametrize("labels", ["integers", "plus_minus"])
def test_reads_what_sklearn_writes_as_sklearn_reads_it(tmp_path, zero_based, labels):
    rng = np.random.default_rng(0)
    X = random_sparse(rng, 60, 25)
    y = rng.integers(0, 4, 60) if labels == "integers" else rng.choice([-1, 1], 60)
    f = tmp_path / "a.svm"
    sk_datasets.dump_svmlight_file(X, y, str(f), zero_based=zero_based, comment="made by scikit-learn\nfor a test",
                                   query_id=rng.integers(0, 3, 60))
    ours, ys, _, _, names = load_svmlight(f, zero_based="yes" if zero_based else "no")
    theirs, their_y = sk_datasets.load_svmlight_file(f, zero_based=zero_based, n_features=ours.shape[1])
    assert ours.format == "csr" and ours.has_sorted_indices and ours.dtype == np.float64
    np.testing.assert_array_equal(ours.toarray(), theirs.toarray())
    if labels == "integers":
        assert names is None
        np.testing.assert_array_equal(ys, their_y.astype(int))
    else:                                  # names sorted by value: -1 is class 0
        assert names == ("-1", "1")
        np.testing.assert_array_equal(np.array(names)[ys].astype(float), their_y)


def test_hand_written_file_with_comments_qid_blank_lines_and_tabs(tmp_path):
    f = write(tmp_path / "hand.svmlight", "# a whole-line comment\n"
                                          "+1 qid:3 1:0.5 3:-1e-3   # a trailing comment\n"
                                          "-1 2:7\n"
                                          "\n"
                                          "   \n"
                                          "+1\tqid:1\t1:1 4:2.5e2\r\n"
                                          "-1\n"
                                          "-1 4:-.5")
    X, y, _, _, names = load_svmlight(f)
    theirs, their_y = sk_datasets.load_svmlight_file(f)
    np.testing.assert_array_equal(X.toarray(), theirs.toarray())
    assert names == ("-1", "+1")          # as written, by value
    np.testing.assert_array_equal(np.array([-1.0, 1.0])[y], their_y)


def test_auto_base_is_decided_over_both_files_as_sklearn_decides(tmp_path):
    """The held-out file's index 0 makes both files 0-based (scikit-learn's load_svmlight_files too)."""
    train = write(tmp_path / "train.svm", "0 1:1 3:2\n1 2:5\n")
    val = write(tmp_path / "val.svm", "1 0:4 3:1\n0 1:1\n")
    X, _, X_val, _, _ = load_svmlight(train, val)
    theirs = sk_datasets.load_svmlight_files([train, val], n_features=4)
    np.testing.assert_array_equal(X.toarray(), theirs[0].toarray())
    np.testing.assert_array_equal(X_val.toarray(), theirs[2].toarray())
    one_based, _, _, _, _ = load_svmlight(train)                    # alone: 1-based
    np.testing.assert_array_equal(one_based.toarray(), sk_datasets.load_svmlight_file(train)[0].toarray())


def test_integer_labels_count_classes_over_both_files_and_allow_a_class_without_training_rows(tmp_path):
    train = write(tmp_path / "train.svm", "0 1:1\n1 2:1\n0 1:2\n")
    val = write(tmp_path / "val.svm", "3 1:1\n1 2:1\n")
    data = open_data(train, val_data=val)
    assert data.class_names == ("0", "1", "2", "3") and not data.features
    np.testing.assert_array_equal(data.test_labels, [3, 1])
    assert open_data(train, num_classes=5).class_names == tuple("01234")


def test_held_out_label_names_join_the_training_names(tmp_path):
    train = write(tmp_path / "train.svm", "spam 1:1\nham 2:1\n")
    val = write(tmp_path / "val.svm", "eggs 1:1\nspam 2:1\n")
    data = open_data(train, val_data=val)
    assert data.class_names == ("eggs", "ham", "spam")
    np.testing.assert_array_equal(data.train_labels, [2, 1])
    np.testing.assert_array_equal(data.test_labels, [0, 2])


def test_n_features_sets_the_width_of_both_files(tmp_path):
    train = write(tmp_path / "train.svm", "0 1:1\n1 2:1\n")
    val = write(tmp_path / "val.svm", "0 5:1\n1 2:1\n")
    data = open_data(train, val_data=val, n_features=9)
    assert data.train_images.shape == (2, 9) and data.test_images.shape == (2, 9)
    assert data.test_images[[0]].toarray()[0, 4] == 1.0
    with pytest.raises(DataFormatError, match=r"val\.svm, line 1: feature index 5 is past the 2 features of the "
                                              r"training file"):
        open_data(train, val_data=val)


BAD_LINES = [
    ("0 1:1\n1 2:x\n", "line 2: expected a number after '2':, found 'x'"),
    ("0 1:1\n1 2\n", "line 2: expected <index>:<value>, found '2'"),
    ("0 1:1\n1 2:1:3\n", "line 2: expected <index>:<value>, found '2:1:3'"),
    ("0 1:1\n\n1 a:1\n", "line 3: expected a non-negative integer index, found 'a'"),
    ("0 1:1\n1 -2:1\n", "line 2: negative feature index '-2'"),
    ("0 1:1\n1 2.5:1\n", "line 2: expected a non-negative integer index, found '2.5'"),
    ("0 1:1 3:2 3:4\n", "line 1: feature index 3 repeated (after 3)"),
    ("0 1:1\n1 3:2 2:4\n", "line 2: feature index 2 out of order (after 3)"),
    ("0 1:nan\n", "line 1: feature '1' is 'nan'; expected a finite number"),
    ("0 1:1\n1 1:-inf\n", "line 2: feature '1' is '-inf'; expected a finite number"),
    ("0 qid:x 1:1\n", "line 1: expected qid:<integer> after the label"),
    ("0,1 1:1\n", "line 1: label '0,1' names several classes"),
    ("1:1 2:2\n", "line 1: expected a label first"),
    ("0 1:1\n1 99999999999999999999:1\n", "line 2: index '99999999999999999999' does not fit the column index type"),
    ("# only a comment\n\n", "no examples (empty, or only blank and comment lines)"),
    ("", "no examples"),
]


@pytest.mark.parametrize("text, message", BAD_LINES)
def test_bad_input_is_one_line_naming_the_file_and_line(tmp_path, text, message):
    f = write(tmp_path / "bad.svm", text)
    with pytest.raises(DataFormatError) as caught:
        open_data(f)
    assert message in str(caught.value) and str(f) in str(caught.value) and "\n" not in str(caught.value)


def test_index_zero_in_a_file_said_to_be_one_based_names_its_line(tmp_path):
    f = write(tmp_path / "a.svm", "0 1:1\n1 0:1 2:1\n")
    with pytest.raises(DataFormatError, match=r"a\.svm, line 2: feature index 0 in a 1-based file"):
        open_data(f, zero_based="no")


def test_a_label_past_the_declared_classes_names_its_file_and_line(tmp_path):
    train = write(tmp_path / "train.svm", "0 1:1\n1 2:1\n")
    val = write(tmp_path / "val.svm", "0 1:1\n\n4 2:1\n")
    with pytest.raises(DataFormatError, match=r"val\.svm, line 3: label 4 is past the 3 classes declared"):
        open_data(train, val_data=val, num_classes=3)


def test_a_file_larger_than_the_memory_budget_is_refused_before_parsing(tmp_path, monkeypatch):
    f = write(tmp_path / "a.svm", "0 1:1 2:1 3:1\n1 2:1\n" * 50)
    monkeypatch.setattr(svmlight, "memory_budget", lambda: 4000)
    with pytest.raises(DataFormatError, match=r"a\.svm: reading its 200 values would take about .* GiB, more than"):
        open_data(f)


def test_fast_and_slow_paths_agree_on_a_large_generated_file(tmp_path):
    """Thousands of rows parsed at once by NumPy equal scikit-learn's parse, and one bad value deep in
    the file is found by the line-by-line pass."""
    rng = np.random.default_rng(1)
    X = random_sparse(rng, 3000, 400, density=0.05)
    y = rng.integers(0, 7, 3000)
    f = tmp_path / "big.svm"
    sk_datasets.dump_svmlight_file(X, y, str(f))
    ours, ys, _, _, _ = load_svmlight(f, n_features=400)
    np.testing.assert_array_equal(ours.toarray(), X.toarray())
    np.testing.assert_array_equal(ys, y)
    lines = f.read_text().splitlines()
    lines[2345] = lines[2345] + " 9999:1e-3x"
    write(f, "\n".join(lines))
    with pytest.raises(DataFormatError, match=r"big\.svm, line 2346: expected a number after '9999':, found '1e-3x'"):
        load_svmlight(f)


@pytest.mark.parametrize("extra, message", [
    (["--val-data", "{val}"], "val.svm, line 1: feature index 7 is past the 3 features of the training file"),
    (["--zero-based", "no", "--val-data", "{zero}"], "zero.svm, line 1: feature index 0 in a 1-based file"),
    (["--n-features", "2"], "train.svm, line 2: feature index 3 is past the 2 features of --n-features 2"),
    (["--val-data", "{csv}"], "--val-data"),
])
def test_cli_refuses_bad_svmlight_input_in_one_line(tmp_path, capsys, extra, message):
    files = {"train": write(tmp_path / "train.svm", "0 1:1\n1 3:1\n"), "val": write(tmp_path / "val.svm", "0 7:1\n"),
             "zero": write(tmp_path / "zero.svm", "1 0:1\n"), "csv": write(tmp_path / "v.csv", "a,label\n1,0\n")}
    args = ["train", "--data", str(files["train"]), "--out", str(tmp_path / "run"), "--quiet",
            *[a.format(**files) for a in extra]]
    cli_refuses(args, tmp_path, capsys, message)


def test_n_features_and_zero_based_go_with_svmlight_only(tmp_path):
    f = write(tmp_path / "a.csv", "x,label\n1,0\n2,1\n")
    with pytest.raises(DataFormatError, match="--n-features: goes with svmlight data"):
        open_data(f, label_column="label", n_features=3)
    with pytest.raises(DataFormatError, match="--zero-based: goes with svmlight data"):
        open_data(f, label_column="label", zero_based="yes")


def test_random_and_mutated_files_end_in_a_dataset_or_one_line(tmp_path):
    """Random svmlight-like text and bytes mutated in a valid file: a dataset or a one-line
    DataFormatError naming the file (never another exception, and the line at fault found); a
    dataset read agrees with scikit-learn's reader where that reads it."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from .test_fuzz import mutated

    valid = b"# comment\n1 qid:2 1:0.5 3:-2 # end\n0 2:1e-3\n\n2 1:4 4:+.5\n"
    text = st.text(alphabet=st.sampled_from(list("01:2 .-+e#\nqid\tnaxf,")), max_size=120).map(str.encode)

    @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(blob=text | mutated(valid))
    def check(blob):
        f = tmp_path / "fuzz.svm"
        f.write_bytes(blob)
        try:
            X, y, _, _, names = load_svmlight(f)
        except DataFormatError as e:
            assert "\n" not in str(e) and str(f) in str(e)
            assert "no single line is at fault" not in str(e)      # the line-by-line pass names the culprit
            return
        try:
            theirs, their_y = sk_datasets.load_svmlight_file(str(f), n_features=X.shape[1], zero_based="auto")
        except ValueError:                     # scikit-learn refuses some files this reader takes (e.g. no values)
            return
        np.testing.assert_array_equal(X.toarray(), theirs.toarray())
        assert len(y) == len(their_y)
    check()


def test_a_width_whose_weights_exceed_memory_is_refused_before_any_model(tmp_path, monkeypatch):
    from softmaxreg.datasets import splits

    f = write(tmp_path / "wide.svm", "0 1:1\n1 1000000:1\n")
    monkeypatch.setattr(splits, "memory_budget", lambda: 8 * 10**6)
    with pytest.raises(DataFormatError, match=r"wide\.svm: 1,000,000 features x 2 classes need 0.0149 GiB of weights"):
        open_data(f)


def test_without_scipy_an_svmlight_file_is_one_line_naming_the_extra(tmp_path):
    import subprocess
    import sys

    (tmp_path / "train.svm").write_text("0 1:1\n1 2:1\n")
    code = ("import sys; sys.modules['scipy'] = sys.modules['scipy.sparse'] = None; from softmaxreg.cli import main;"
            f"sys.exit(main(['train', '--data', {str(tmp_path / 'train.svm')!r}, '--out', {str(tmp_path / 'run')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "train.svm: sparse data need scipy: pip install 'softmaxreg[sparse]'" in done.stderr
    assert not (tmp_path / "run").exists()
