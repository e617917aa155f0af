"""benchmarks/text.py's corpus reader (apt's deb822 package index), its split and its exact F."""

import email
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location("bench_text", Path(__file__).parents[1] / "benchmarks" / "text.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

# Stanzas as `apt-cache dumpavail` prints them (fields trimmed); the second has a long description
# with a paragraph mark, the third is a duplicate name, the fourth is in contrib.
INDEX = """\
Package: 0ad
Version: 0.0.26-3
Description: Real-time strategy game of ancient warfare
Description-md5: d943033bedada21853d2ae54a2578a7b
Tag: game::strategy, interface::graphical, interface::x11, role::program,
 uitoolkit::sdl, uitoolkit::wxwidgets, use::gameplaying,
 x11::application
Section: games

Package: abc
Description: parser of things: short
 A long description, first paragraph
 on two lines.
 .
 Second paragraph.
Section: utils

Package: 0ad
Version: 0.0.25
Description: an older stanza of the same name
Section: misc

Package: zed
Description: a contrib package
Section: contrib/games

Package: nosection
Description: no Section field at all
"""


def email_fields(block: str) -> dict:
    """The fields of one stanza by Python's RFC 822 parser (deb822's syntax is RFC 822's headers)."""
    return dict(email.message_from_string(block).items())


def test_parse_packages_agrees_with_the_rfc822_parser():
    stanzas = bench.parse_packages(INDEX)
    expected = [email_fields(block) for block in INDEX.strip().split("\n\n")]
    assert stanzas == expected
    assert stanzas[1]["Description"].split("\n") == ["parser of things: short", " A long description, first paragraph",
                                                      " on two lines.", " .", " Second paragraph."]


def test_documents_dedupe_strip_the_area_and_drop_small_sections():
    docs, sections = bench.documents(bench.parse_packages(INDEX), min_section=1)
    assert sections == ["games", "utils", "games"]             # by name: 0ad (its first stanza), abc, zed
    assert docs[0] == "Real-time strategy game of ancient warfare"
    assert docs[1] == "parser of things: short A long description, first paragraph on two lines. Second paragraph."
    assert bench.documents(bench.parse_packages(INDEX), min_section=2) == (
        [docs[0], docs[2]], ["games", "games"])


def test_split_is_seeded_disjoint_and_eighty_twenty():
    docs, labels = [f"doc {i}" for i in range(100)], ["a", "b"] * 50
    train, test = bench.split(docs, labels, None, seed=3)
    assert (train, test) == bench.split(docs, labels, None, seed=3)
    assert (len(train), len(test)) == (80, 20)
    assert sorted(d for d, _ in train + test) == sorted(docs)
    assert all(labels[int(d.split()[1])] == label for d, label in train + test)
    assert bench.split(docs, labels, None, seed=4) != (train, test)
    small, rest = bench.split(docs, labels, 10, seed=3)
    assert (len(small), len(rest)) == (8, 2) and not {d for d, _ in small} & {d for d, _ in rest}


def test_objective_is_the_mean_log_loss_plus_the_penalty(monkeypatch):
    sp = pytest.importorskip("scipy.sparse")
    from sklearn.metrics import log_loss
    from scipy.special import softmax

    rng = np.random.default_rng(0)
    X = sp.random_array((50, 30), density=0.1, format="csr", rng=rng)
    y, W, b, C = rng.integers(0, 4, 50), rng.normal(size=(30, 4)), rng.normal(size=4), 0.3
    expected = log_loss(y, softmax(X @ W + b, axis=1), labels=range(4)) + (W ** 2).sum() / (2 * C * 50)
    assert bench.Objective(X, y, C)(W, b) == pytest.approx(expected, rel=1e-12)
    monkeypatch.setattr(bench, "OBJECTIVE_LOGITS", 4 * 7)      # chunks of 7 rows
    assert bench.Objective(X, y, C)(W, b) == pytest.approx(expected, rel=1e-12)


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="no apt-cache (not a Debian system)")
def test_parse_packages_reads_this_machines_apt_index():
    listing = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    stanzas = bench.parse_packages(listing)
    assert len(stanzas) == listing.count("\nPackage: ") + listing.startswith("Package: ")
    blocks = [block for block in listing.split("\n\n") if block.strip()]
    assert stanzas[:200] == [email_fields(block) for block in blocks[:200]]


def test_select_C_scores_each_C_on_the_held_out_fifth_as_logistic_regression_does():
    sp = pytest.importorskip("scipy.sparse")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    n, d, k = 400, 60, 3
    X = sp.random_array((n, d), density=0.2, format="csr", rng=rng)
    y = np.argmax(X @ rng.normal(size=(d, k)) + rng.normal(scale=0.5, size=(n, k)), axis=1)
    grid = [0.01, 1.0, 100.0]
    C, scores = bench.select_C(X, y, grid, seed=5)
    index = np.random.default_rng(5).permutation(n)
    fit_rows, val_rows = np.sort(index[:320]), np.sort(index[320:])
    for c in grid:                      # the same split and objective: the same predictions, up to a row
        ref = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(X[fit_rows], y[fit_rows])
        assert abs(scores[c] - ref.score(X[val_rows], y[val_rows])) <= 1 / len(val_rows) + 1e-12
    assert scores[C] == max(scores.values()) and C == min(c for c in grid if scores[c] == scores[C])
    assert len(set(scores.values())) > 1           # the grid's Cs are told apart
