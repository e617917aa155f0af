"""`softmaxreg experiment next-word`: the lesson's exercise 4 for real. Predict the next word of
English definitions (GCIDE, datasets/corpus.py) from the previous n words, with a vocabulary of V
words plus `<unk>` (k = V + 1 classes), by softmax regression on hashed one-hots.

The corpus is read as a stream, its first `max_tokens` words (whole articles, in the dictionary's
alphabetical order: A to "Elater" for the default 1,000,000). For each V it trains, by plain
minibatch SGD on the same split and features:
- the full softmax (row-sparse steps: row_sparse.py), and
- sampled softmax (sampled.py) with S = F V classes a step (--sampled-fraction F, default 5 %) from the
  unigram^0.75 proposal,
and counts two baselines, the add-1 unigram and the Witten-Bell bigram (ngram.py). Every model is
judged on the held-out articles (the softmax models by their full softmax): perplexity
exp(mean cross-entropy), top-1 and top-5 accuracy; the softmax models also by seconds per training epoch (the epoch alone), the count
models by the seconds of their one counting pass. Evaluation reads the logits in row blocks
(judging.logit_blocks, metrics.summary_of_blocks): never (n, k) at once.

`--vocab all` is the full vocabulary: every word of the training split (V is then its size).
The number of buckets B is chosen by V (datasets.next_word.buckets_for: W within 512 MiB).
Perplexities are over the V + 1 classes, `<unk>` a class: they compare models at one V, not across V.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .datasets.corpus import read_articles
from .datasets.next_word import buckets_for, context_ids, hashed_contexts, next_word_data
from .errors import InvalidArgumentError

__all__ = ["VOCABS", "QUICK_VOCABS", "MAX_TOKENS", "QUICK_TOKENS", "EPOCHS", "COLUMNS", "next_word", "hashed_features",
           "train_and_judge", "draw_next_word"]

VOCABS = (1000, 5000, 20000)
QUICK_VOCABS = (200, 1000)
MAX_TOKENS, QUICK_TOKENS = 1_000_000, 40_000
EPOCHS = 3
LR, BATCH = 3.0, 256
"""SGD's rate for the mean loss of a batch: a hashed one-hot row is read by few examples of a batch,
so its share of the mean gradient is small (at V = 1,000 on 300 k tokens, 2 epochs: perplexity 37.0 at lr 3, 38.6 at 10, 41.5 at 1)."""
SAMPLED_FRACTION = 0.05                     # S = 5 % of the vocabulary a step, the bound
COLUMNS = ["vocab", "model", "num_sampled", "buckets", "epochs", "epoch_seconds", "perplexity", "top1_accuracy",
           "top5_accuracy", "train_tokens", "held_out_tokens"]


def _say(line: str) -> None:
    print(f"next-word: {line}", file=sys.stderr, flush=True)


def next_word(vocabs=VOCABS, context: int = 2, epochs: int = EPOCHS, max_tokens: int | None = MAX_TOKENS,
              lr: float = LR, batch_size: int = BATCH, seed: int = 0, corpus=None,
              sampled_fraction: float = SAMPLED_FRACTION):
    """The experiment's (COLUMNS, rows, summary lines, data) (experiments.ExperimentResult's fields):
    a row per (V, model); progress on stderr. `corpus`: the dictionary file (default
    datasets.corpus.GCIDE_PATH)."""

    if not vocabs or any(v != "all" and int(v) < 2 for v in vocabs):
        raise InvalidArgumentError(f"--vocab: expected vocabulary sizes >= 2 or all, got {list(vocabs)}")
    start = time.perf_counter()
    articles = list(read_articles(corpus, max_tokens))
    _say(f"read {sum(len(s) for a in articles for s in a):,} words in {len(articles):,} articles "
         f"({time.perf_counter() - start:.1f} s)")
    rows, sizes = [], []
    for V in vocabs:
        data = next_word_data(articles, None if V == "all" else int(V), held_out=0.1, seed=seed)
        sizes.append(len(data.words) - 1)                 # "all": every word of the training split
        rows += _one_vocabulary(data, sizes[-1], context, epochs, lr, batch_size, seed, sampled_fraction)
    summary = []
    for V in sizes:
        by = {r["model"]: r for r in rows if r["vocab"] == V}
        full, sampled, bigram = by["full softmax"], by["sampled softmax"], by["bigram (Witten-Bell)"]
        summary.append(f"V = {V}: perplexity full {full['perplexity']:.1f}, sampled {sampled['perplexity']:.1f} "
                       f"(S = {sampled['num_sampled']}, {sampled['perplexity'] / full['perplexity'] - 1:+.1%}), "
                       f"bigram {bigram['perplexity']:.1f}; epoch {full['epoch_seconds']:.2f} s full, "
                       f"{sampled['epoch_seconds']:.2f} s sampled "
                       f"({full['epoch_seconds'] / sampled['epoch_seconds']:.1f}x faster)")
    return COLUMNS, rows, summary, {"context": context}


def _one_vocabulary(data, V: int, context: int, epochs: int, lr: float, batch_size: int, seed: int,
                    sampled_fraction: float) -> list[dict]:
    """The four models' rows at one vocabulary size."""
    from .ngram import Unigram, WittenBellBigram

    B = buckets_for(V + 1)
    train_u = context_ids(data.train, 1, data.boundary)[:, 0]
    held_u = context_ids(data.held_out, 1, data.boundary)[:, 0]
    y, y_held = data.train.targets, data.held_out.targets
    common = {"vocab": V, "buckets": B, "train_tokens": y.size, "held_out_tokens": y_held.size}
    rows = []
    start = time.perf_counter()
    unigram = Unigram(y, V + 1)
    unigram_seconds = time.perf_counter() - start
    start = time.perf_counter()
    bigram = WittenBellBigram(train_u, y, unigram)
    bigram_seconds = time.perf_counter() - start
    for name, model, seconds in (("unigram (add-1)", unigram, unigram_seconds),
                                 ("bigram (Witten-Bell)", bigram, bigram_seconds)):
        rows.append({**common, "model": name, "num_sampled": 0, "buckets": 0, "epochs": 1, "epoch_seconds": seconds,
                     **model.figures(held_u, y_held)})
        _say(f"V = {V}: {name}: perplexity {rows[-1]['perplexity']:.1f}")
    X, X_held = hashed_features(data, context, B)
    for name, options in (("full softmax", {}),
                          ("sampled softmax", {"loss": "sampled", "num_sampled": max(1, int(sampled_fraction * V))})):
        seconds, figures = train_and_judge(data, X, y, X_held, y_held, name, V, B, epochs, lr, batch_size, seed,
                                            options)
        rows.append({**common, "model": name, "num_sampled": options.get("num_sampled", 0), "epochs": epochs,
                     "epoch_seconds": seconds, **figures})
    return rows


def hashed_features(data, context: int, buckets: int):
    """(X, X_held): the training and held-out rows' previous `context` words as hashed one-hots (CSR)."""
    return tuple(hashed_contexts(context_ids(part, context, data.boundary), buckets)
                 for part in (data.train, data.held_out))


def train_and_judge(data, X, y, X_held, y_held, name, V, B, epochs, lr, batch_size, seed, options):
    """(mean seconds per training epoch, held-out figures) of one softmax model, W = 0 at the start
    (the loss is convex: the starting point only moves the path)."""
    from .callbacks import Callback
    from .judging import logit_blocks
    from .metrics import summary_of_blocks
    from .model import SoftmaxRegression
    from .train import fit

    class EpochLine(Callback):
        def on_epoch_end(self, record, history):
            _say(f"V = {V}: {name}: epoch {record.epoch}/{epochs} {record.seconds:.2f} s, "
                 f"training loss {record.train_loss:.4f}")

    model = SoftmaxRegression(B, V + 1, 0.0, seed=seed, class_names=data.words)
    history = fit(model, X, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, callbacks=[EpochLine()],
                  **options)
    summary = summary_of_blocks(y_held, logit_blocks(model, X_held, progress=False), data.words, top_k=5)
    figures = {"perplexity": float(np.exp(summary["cross_entropy"])), "top1_accuracy": summary["accuracy"],
               "top5_accuracy": summary["top5_accuracy"]}
    _say(f"V = {V}: {name}: held-out perplexity {figures['perplexity']:.1f}, top-1 {figures['top1_accuracy']:.3f}, "
         f"top-5 {figures['top5_accuracy']:.3f}")
    return float(np.mean([r.seconds for r in history])), figures


def draw_next_word(fig, result) -> None:
    """Seconds per training epoch and held-out perplexity against V, one line per model."""
    ax_time, ax_ppl = fig.subplots(1, 2)
    models = list(dict.fromkeys(r["model"] for r in result.rows))
    for model in models:
        mine = [r for r in result.rows if r["model"] == model]
        V = [r["vocab"] for r in mine]
        style = "-o" if "softmax" in model else "--s"
        ax_time.loglog(V, [r["epoch_seconds"] for r in mine], style, ms=4, label=model)
        ax_ppl.semilogx(V, [r["perplexity"] for r in mine], style, ms=4, label=model)
    ax_time.set_ylabel("seconds per training epoch (count models: one pass)")
    ax_ppl.set_ylabel("held-out perplexity (V + 1 classes)")
    ax_time.set_title("Time per epoch")
    ax_ppl.set_title("Perplexity")
    for ax in (ax_time, ax_ppl):
        ax.set_xlabel("vocabulary V")
        ax.grid(alpha=0.3, which="both")
    ax_ppl.legend(fontsize="small")
    fig.suptitle(f"Next word from the previous {result.data.get('context', '?')} (GCIDE definitions)")
