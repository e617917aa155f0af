"""Next-word prediction: the GCIDE reader and its markup stripping, the vocabulary, split and hashed
features, the count baselines, the row-sparse full-softmax step, and `softmaxreg experiment next-word`."""

import csv
import gzip
import math

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse", reason="next-word's features are scipy.sparse matrices")

from softmaxreg import SoftmaxRegression, fit, generic                  # noqa: E402
from softmaxreg.cli import main                                         # noqa: E402
from softmaxreg.datasets import corpus                                  # noqa: E402
from softmaxreg.datasets.corpus import read_articles, sentences, strip_markup, tokenize   # noqa: E402
from softmaxreg.datasets.next_word import (MAX_CONTEXT, buckets_for, context_ids, hashed_contexts,  # noqa: E402
                                           next_word_data)
from softmaxreg.errors import DataFormatError                          # noqa: E402
from softmaxreg.ngram import Unigram, WittenBellBigram                 # noqa: E402
from softmaxreg.row_sparse import block_step, full_loss_and_grad_rows  # noqa: E402

from .conftest import cli_refuses, traced_peak                         # noqa: E402

HAS_CORPUS = corpus.GCIDE_PATH.is_file()
needs_corpus = pytest.mark.skipif(not HAS_CORPUS, reason="needs Debian's dict-gcide: apt-get install -y dict-gcide")

ARTICLE = """Calorimeter \\Cal`o*rim"e*ter\\, n. [L. calor heat + -meter; cf.
   F. calorim[`e]tre.]
   1. (Physiol.) An apparatus for measuring the amount of heat
      contained in bodies. See {Foot pound}.
      [1913 Webster +PJC]

   2. (Engineering) An apparatus for measuring unevaporated
      water in steam. [Obs.]
      [1913 Webster]

         Satisfactory calorimetric results.       --Nichol.
   [1913 Webster]

   Syn: heat meter, thermometer.
        [WordNet 1.5]"""

TWO_LINE_HEAD = """Spongiose \\Spon"gi*ose`\\ (sp[u^]n"j[i^]*[=o]s`), Spongious
\\Spon"gi*ous\\ (sp[u^]n"j[i^]*[u^]s), a. [L. spongiosus,
   spongeosus: cf. F. spongieux. See {Sponge}.]
   Somewhat spongy; full of small cavities like a sponge. Note: a caf[`e] word.
   [1913 Webster]"""


def test_markup_is_stripped_to_the_definition_prose():
    assert strip_markup(ARTICLE) == [
        "An apparatus for measuring the amount of heat contained in bodies. See Foot pound.",
        "An apparatus for measuring unevaporated water in steam.",
        "Satisfactory calorimetric results."]
    assert strip_markup(TWO_LINE_HEAD) == ["Somewhat spongy; full of small cavities like a sponge. Note: a cafe word."]
    assert strip_markup("00-database-url\n   ftp://ftp.gnu.org/gnu/gcide") == []


def test_words_are_lower_case_letters_and_definitions_split_into_sentences():
    assert tokenize("The Lark's song -- 1913, don't!") == ["the", "lark's", "song", "don't"]
    assert sentences("A frolic; a jolly time. See Pipit. the end") == [["a", "frolic", "a", "jolly", "time"],
                                                                      ["see", "pipit", "the", "end"]]


def write_dict(path, articles):
    """A dictd file as dict-gcide installs it: a database entry, then articles between blank lines, gzipped."""
    text = "00-database-short\n   A test dictionary\n\n" + "\n\n".join(articles) + "\n"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def test_the_reader_streams_articles_and_stops_at_max_tokens(tmp_path):
    path = write_dict(tmp_path / "d.dict.dz", [ARTICLE, TWO_LINE_HEAD, "Lark \\Lark\\, v. i.\n   To catch larks."])
    articles = list(read_articles(path))
    assert [sum(map(len, a)) for a in articles] == [25, 13, 3]
    assert articles[2] == [["to", "catch", "larks"]]
    assert len(list(read_articles(path, max_tokens=26))) == 2           # stops after the article reaching 26


def test_a_missing_corpus_names_the_package_to_install(tmp_path):
    with pytest.raises(DataFormatError, match=r"nothing\.dz: .*apt-get install -y dict-gcide"):
        next(read_articles(tmp_path / "nothing.dz"))


def tiny_articles():
    return [[["the", "cat", "sat"], ["the", "dog"]], [["a", "cat", "ran"]], [["the", "cat"], ["cat", "sat"]],
            [["dog", "ran", "the", "cat"]]] * 3


def tiny_data(vocab=3):
    return next_word_data(tiny_articles(), vocab, held_out=0.3, seed=1)


def test_the_vocabulary_numbers_words_by_training_count_and_the_split_is_by_article():
    data = tiny_data()
    assert data.words[0] == "<unk>" and len(data.words) == 4 and data.boundary == 4
    ids = np.concatenate([data.train.ids, data.held_out.ids])
    assert ids.size == sum(len(s) for a in tiny_articles() for s in a)
    assert set(data.words[1:]) <= {"the", "cat", "sat", "dog", "a", "ran"} and data.words[1] == "cat"
    counts = {w: int(np.sum(data.train.ids == i)) for i, w in enumerate(data.words)}
    assert counts["cat"] >= counts["the"] >= counts[data.words[3]]
    again = tiny_data()
    assert np.array_equal(again.held_out.ids, data.held_out.ids)     # seeded


def test_contexts_and_hashed_features_match_a_plain_loop():
    data = tiny_data(vocab=5)
    n, buckets = 3, 64
    ctx = context_ids(data.train, n, data.boundary)
    X = hashed_contexts(ctx, buckets, dtype=np.float64)
    ids, pos = data.train.ids.tolist(), data.train.position.tolist()
    golden, bits = 0x9E3779B97F4A7C15, 6
    for t in range(len(ids)):
        expected_ctx = [ids[t - j] if pos[t] >= j else data.boundary for j in range(1, n + 1)]
        assert ctx[t].tolist() == expected_ctx
        row = np.zeros(buckets)
        for j, word in enumerate(expected_ctx, 1):
            key = word * (MAX_CONTEXT + 1) + j
            row[((key * golden) % 2**64) >> (64 - bits)] += 1
        assert np.array_equal(X[[t]].toarray()[0], row)
    assert X.has_canonical_format and X.shape == (len(ids), buckets)
    assert buckets_for(1001) == 2**14 and buckets_for(5001) == 2**14 and buckets_for(20001) == 2**12


def test_the_count_baselines_match_a_hand_computation():
    # classes 0..3, contexts 0..4; pairs (u, y): (4,1) (1,2) (2,3) (4,1) (1,3)
    u, y = np.array([4, 1, 2, 4, 1]), np.array([1, 2, 3, 1, 3])
    uni = Unigram(y, 4)
    assert uni.p.tolist() == pytest.approx([1 / 9, 3 / 9, 2 / 9, 3 / 9])      # (c + 1) / (5 + 4)
    bi = WittenBellBigram(u, y, uni)
    # u = 1: c = 2, T = 2 (words 2, 3): P(3 | 1) = (1 + 2 * 3/9) / 4; u = 4: c = 2, T = 1: P(1 | 4) = (2 + 3/9) / 3
    # u = 0: never seen: the unigram
    got = np.exp(bi.log_proba(np.array([1, 4, 0, 3]), np.array([3, 1, 2, 0])))
    assert got.tolist() == pytest.approx([(1 + 2 * 3 / 9) / 4, (2 + 3 / 9) / 3, 2 / 9, 1 / 9])
    full = np.exp(bi.log_proba(np.repeat([1, 4], 4), np.tile(np.arange(4), 2))).reshape(2, 4)
    assert full.sum(axis=1).tolist() == pytest.approx([1.0, 1.0])             # a distribution for each context
    figures = bi.figures(np.array([1, 4]), np.array([3, 2]))
    assert figures["perplexity"] == pytest.approx(math.exp(-(math.log(full[0, 3]) + math.log(full[1, 2])) / 2))
    # after u = 1: P(3|1) = (1 + 2 * 3/9) / 4 > P(2|1) = (1 + 2 * 2/9) / 4 > P(1|1) = 2 * 3/9 / 4 > P(0|1): a hit;
    # after u = 4: word 1 first, a miss for y = 2
    assert bi.top(np.array([1, 4]), 2, 4).tolist() == [[3, 2, 1, 0], [1, 3, 2, 0]]
    assert figures["top1_accuracy"] == 0.5 and figures["top5_accuracy"] == 1.0
    assert Unigram(y, 4).top(None, 2, 2).tolist() == [[1, 3], [1, 3]]          # P(1) = P(3): ties to the smaller id


def sparse_batch(n=16, d=200, k=12, seed=0):
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, d // 4, size=(n, 3)) * 4                  # few rows of W used, some shared
    x = sp.csr_array((rng.uniform(0.5, 2, n * 3), cols.ravel(), np.arange(0, 3 * n + 1, 3)), shape=(n, d))
    x.sum_duplicates()
    return x, rng.integers(0, k, n)


def test_the_row_sparse_step_is_the_dense_step_without_weight_decay():
    d, k, lr = 200, 12, 0.7
    x, y = sparse_batch(d=d, k=k)
    model = SoftmaxRegression(d, k, sigma=0.3, seed=2, dtype=np.float64, input_scale=0.5)
    W0, b0 = model.W.copy(), model.b.copy()
    loss, correct, dW_dense, db_dense = generic.loss_and_grad_sums(np, model, x, y, None, float(len(y)))
    got_loss, got_correct, block, dW, db = full_loss_and_grad_rows(model, x, y, None, len(y))
    assert block.rows.tolist() == np.unique(x.indices).tolist() and block.cols is None
    assert got_loss == pytest.approx(float(loss), rel=1e-13) and got_correct == int(correct)
    block_step(model, block, dW, db, lr, 0.0)
    assert np.array_equal(model.W, W0 - lr * dW_dense) and np.array_equal(model.b, b0 - lr * db_dense)


def test_the_lazy_l2_shrinks_only_the_rows_a_batch_touches():
    d, k, lr, decay = 200, 12, 0.5, 0.1
    model = SoftmaxRegression(d, k, sigma=0.3, seed=2, dtype=np.float64)
    W, b = model.W.copy(), model.b.copy()
    for seed in range(3):
        x, y = sparse_batch(d=d, k=k, seed=seed)
        dW_dense = generic.loss_and_grad_sums(np, generic._Params(W, b, None, None, 1.0), x, y, None, len(y))[2]
        db_dense = generic.loss_and_grad_sums(np, generic._Params(W, b, None, None, 1.0), x, y, None, len(y))[3]
        touched = set(x.indices.tolist())
        for i in range(d):                                            # the rule, row by row
            if i in touched:
                W[i] = W[i] - lr * (dW_dense[i] + decay * W[i])
        b = b - lr * db_dense
        _, _, block, dW, db = full_loss_and_grad_rows(model, x, y, None, len(y))
        block_step(model, block, dW, db, lr, decay)
    np.testing.assert_allclose(model.W, W, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.b, b, rtol=1e-12, atol=1e-15)


def test_sparse_fit_with_plain_sgd_is_the_dense_fit():
    rng = np.random.default_rng(5)
    n, d, k = 300, 120, 7
    X = sp.random_array((n, d), density=0.03, format="csr", rng=rng, dtype=np.float64)
    y = rng.integers(0, k, n)
    models = [SoftmaxRegression(d, k, seed=3, dtype=np.float64) for _ in range(2)]
    fit(models[0], X, y, epochs=3, lr=0.5, batch_size=32, seed=4)
    fit(models[1], X.toarray(), y, epochs=3, lr=0.5, batch_size=32, seed=4)
    np.testing.assert_allclose(models[0].W, models[1].W, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(models[0].b, models[1].b, rtol=1e-12, atol=1e-14)


def test_a_row_sparse_step_allocates_nothing_of_the_size_of_w():
    d, k = 2**15, 64
    x, y = sparse_batch(n=64, d=d, k=k)
    model = SoftmaxRegression(d, k, sigma=0.0, dtype=np.float64)

    def step():
        _, _, block, dW, db = full_loss_and_grad_rows(model, x, y, None, len(y))
        block_step(model, block, dW, db, 0.1, 1e-3)
    step()
    _, peak = traced_peak(step)
    assert peak < model.W.nbytes / 20                                 # W is 16 MiB; the step's arrays r x k
    _, dense_peak = traced_peak(lambda: generic.loss_and_grad_sums(np, model, x, y, None, len(y)))
    assert dense_peak >= model.W.nbytes                               # the dense gradient, for contrast


@needs_corpus
def test_the_experiment_runs_end_to_end_on_the_real_corpus(tmp_path, capsys):
    assert main(["experiment", "next-word", "--quick", "--max-tokens", "20000", "--vocab", "100,400,all",
                 "--sampled-fraction", "0.1", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "next-word: read" in captured.err and "held-out perplexity" in captured.err
    with open(tmp_path / "next-word.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["vocab", "model", "num_sampled", "buckets", "epochs", "epoch_seconds", "perplexity",
                             "top1_accuracy", "top5_accuracy", "train_tokens", "held_out_tokens"]
    words = next_word_data(list(read_articles(max_tokens=20000)), None, held_out=0.1, seed=0).words
    full = str(len(words) - 1)                                       # every word of the training split
    assert int(full) > 400 and len(set(words)) == len(words)
    assert [(r["vocab"], r["model"]) for r in rows] == [(v, m) for v in ("100", "400", full) for m in (
        "unigram (add-1)", "bigram (Witten-Bell)", "full softmax", "sampled softmax")]
    for r in rows:
        assert 1 < float(r["perplexity"]) < int(r["vocab"]) + 1           # better than uniform over V + 1
        assert 0 <= float(r["top1_accuracy"]) <= float(r["top5_accuracy"]) <= 1
    assert [r["num_sampled"] for r in rows if r["model"] == "sampled softmax"] == ["10", "40", str(int(full) // 10)]
    assert (tmp_path / "next-word.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (["--vocab", "1000,abc"], "--vocab: expected comma-separated integers >= 2 or all, got '1000,abc'"),
    (["--vocab", "1"], "--vocab: expected comma-separated integers >= 2 or all"),
    (["--context", "9"], "--context: expected an integer >= 1 and <= 8"),
    (["--max-tokens", "10"], "--max-tokens: expected an integer >= 1000"),
    (["--sampled-fraction", "0"], "--sampled-fraction: expected a finite number > 0.0 and <= 1.0"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, args, message):
    cli_refuses(["experiment", "next-word", "--out", str(tmp_path / "out"), *args], tmp_path, capsys, message)


def test_a_missing_corpus_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(corpus, "GCIDE_PATH", tmp_path / "gcide.dict.dz")
    cli_refuses(["experiment", "next-word", "--quick", "--out", str(tmp_path / "out")], tmp_path, capsys,
                "apt-get install -y dict-gcide")
