"""Next-word prediction at V = 1k, 5k, 20k: our full and sampled softmax against PyTorch's
AdaptiveLogSoftmaxWithLoss and fastText supervised (`-loss hs`, `-loss ns`), in one run.

Data: `softmaxreg experiment next-word`'s (GCIDE definitions, the first --max-tokens words, 10% of
the articles held out, the V most frequent training words + `<unk>`), the previous --context words.

    ours          plain SGD, batch 256, lr 3, W = 0, on the hashed one-hots (B buckets, next_word.py);
                  full softmax (row-sparse steps) and sampled softmax (S = V / 20, unigram^0.75)
    torch-asm     the same hashed one-hots as an EmbeddingBag(B, --dim, mode="sum", sparse=True) (the
                  sparse input: the sum of the context's bucket embeddings; row-sparse gradients),
                  then AdaptiveLogSoftmaxWithLoss(--dim, V + 1, cutoffs [V/20, V/4], div_value 4);
                  SparseAdam (the bag) and Adam (the head), lr 2e-3, batch 256, one torch thread;
                  classes numbered by falling frequency, as it assumes
    fasttext-hs   supervised on lines "__label__<id> 1:<w-1> 2:<w-2> ...": the same (position, word)
    fasttext-ns   keys as words (fastText hashes only its n-grams), dim --dim, wordNgrams 1, minCount 1,
                  the same epochs, threads = cores; `-loss hs` / `-loss ns`; lr 0.1; fastText stops
                  with "Encountered NaN" at random on this data (the same call succeeds on a retry),
                  so a call is tried 3 times, then at lr 0.05 twice, then 0.025 (the lr used is shown)

Figures per model: seconds per training epoch (ours: EpochRecord.seconds; torch: the epoch's loop;
fastText: its whole train_supervised call / epochs, which includes building its dictionary),
held-out perplexity exp(mean cross-entropy) over the V + 1 classes (fastText hs: from its
normalised probabilities of all labels on the first --ft-ppl-rows held-out rows; ns has no
normalised distribution: not reported), top-1 / top-5 accuracy on all held-out rows.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/next_word.py [--vocab 1000,5000,20000]
        [--max-tokens 1000000] [--epochs 3] [--models ours,torch-asm,fasttext-hs,fasttext-ns]
"""

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

from softmaxreg.datasets.corpus import read_articles
from softmaxreg.datasets.next_word import buckets_for, context_ids, next_word_data
from softmaxreg.next_word import BATCH, LR, SAMPLED_FRACTION, hashed_features, train_and_judge


THREADS = 1
"""torch threads: 2 threads stalled on the shared 2-core machine (48 ms a step at V = 1,000 against 21 ms on 1 thread)."""


def say(line):
    print(line, file=sys.stderr, flush=True)


def torch_asm(data, V, X, X_held, epochs, dim, seed):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)
    B, k = X.shape[1], V + 1
    bag = torch.nn.EmbeddingBag(B, dim, mode="sum", sparse=True)     # row-sparse gradients, as ours
    cutoffs = [c for c in (max(1, V // 20), max(2, V // 4)) if c < k - 1]
    head = torch.nn.AdaptiveLogSoftmaxWithLoss(dim, k, cutoffs=sorted(set(cutoffs)), div_value=4.0)
    optimizers = [torch.optim.SparseAdam(list(bag.parameters()), lr=2e-3), torch.optim.Adam(head.parameters(), lr=2e-3)]
    y = torch.as_tensor(data.train.targets)
    n = X.shape[0]

    def bags(csr, rows):
        part = csr[rows]
        return (torch.as_tensor(part.indices.astype(np.int64)), torch.as_tensor(part.indptr[:-1].astype(np.int64)),
                torch.as_tensor(part.data))

    rng = np.random.default_rng(seed)
    seconds = []
    for _ in range(epochs):
        order = rng.permutation(n)
        start = time.perf_counter()
        for begin in range(0, n, BATCH):
            rows = order[begin:begin + BATCH]
            idx, offsets, weights = bags(X, rows)
            hidden = bag(idx, offsets, per_sample_weights=weights)
            loss = head(hidden, y[rows]).loss
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
        seconds.append(time.perf_counter() - start)
    y_held = data.held_out.targets
    nll, top1, top5 = 0.0, 0, 0
    with torch.no_grad():
        for begin in range(0, X_held.shape[0], 2048):
            rows = np.arange(begin, min(begin + 2048, X_held.shape[0]))
            logp = head.log_prob(bag(*bags(X_held, rows)[:2], per_sample_weights=bags(X_held, rows)[2])).numpy()
            truth = y_held[rows]
            nll -= float(logp[np.arange(rows.size), truth].sum())
            top = np.argpartition(-logp, 5, axis=1)[:, :5]
            top5 += int((top == truth[:, None]).any(axis=1).sum())
            top1 += int((logp.argmax(axis=1) == truth).sum())
    m = y_held.size
    return float(np.mean(seconds)), {"perplexity": math.exp(nll / m), "top1_accuracy": top1 / m,
                                     "top5_accuracy": top5 / m}


def fasttext_lines(data, part, context):
    ctx = context_ids(part, context, data.boundary)
    names = [*data.words, "<s>"]
    return [f"__label__{y} " + " ".join(f"{j + 1}:{names[w]}" for j, w in enumerate(row))
            for y, row in zip(part.targets.tolist(), ctx.tolist())]


def fasttext_model(data, V, context, epochs, dim, loss, ppl_rows, seed):
    import fasttext

    train = fasttext_lines(data, data.train, context)
    held = [line.split(" ", 1)[1] for line in fasttext_lines(data, data.held_out, context)]
    y_held = data.held_out.targets
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "train.txt")
        with open(path, "w") as f:
            f.write("\n".join(train) + "\n")
        model = None
        for lr in (0.1, 0.1, 0.1, 0.05, 0.05, 0.025):   # "Encountered NaN": at random (a race?) or a too high lr
            try:
                start = time.perf_counter()
                model = fasttext.train_supervised(path, dim=dim, lr=lr, epoch=epochs, wordNgrams=1, minCount=1,
                                                  loss=loss, thread=os.cpu_count() or 1, seed=seed, verbose=0)
                seconds = (time.perf_counter() - start) / epochs
                break
            except RuntimeError as e:
                say(f"fastText -loss {loss}, lr {lr}: {e}")
    if model is None:
        return math.nan, {"lr": "failed", "perplexity": math.nan, "top1_accuracy": math.nan, "top5_accuracy": math.nan}
    labels, _ = model.predict(held, k=5)
    top = [[int(label[9:]) for label in row] for row in labels]
    figures = {"lr": lr, "top1_accuracy": float(np.mean([t[0] == y for t, y in zip(top, y_held)])),
               "top5_accuracy": float(np.mean([y in t for t, y in zip(top, y_held)])), "perplexity": math.nan}
    if loss == "hs":
        nll = 0.0
        for line, y in zip(held[:ppl_rows], y_held[:ppl_rows]):
            names, proba = model.predict(line, k=-1, threshold=0.0)
            p = dict(zip(names, proba)).get(f"__label__{y}", 0.0)
            nll -= math.log(max(float(p), 1e-300))
        figures["perplexity"] = math.exp(nll / min(ppl_rows, len(held)))
    return seconds, figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", default="1000,5000,20000")
    parser.add_argument("--max-tokens", type=int, default=1_000_000)
    parser.add_argument("--context", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--ft-ppl-rows", type=int, default=2000)
    parser.add_argument("--models", default="ours,torch-asm,fasttext-hs,fasttext-ns")
    args = parser.parse_args()
    models = args.models.split(",")
    from threadpoolctl import threadpool_info

    blas = [f"{i['internal_api']} {i.get('version')} {i.get('architecture')} kernel, {i['num_threads']} threads"
            for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"BLAS: {'; '.join(blas)}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}; load average at the start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    start = time.perf_counter()
    articles = list(read_articles(max_tokens=args.max_tokens))
    print(f"corpus: {sum(len(s) for a in articles for s in a):,} words, {len(articles):,} articles; "
          f"context {args.context}, {args.epochs} epochs")
    print("| V | model | seconds / epoch | perplexity | top-1 | top-5 |")
    print("|---|---|---|---|---|---|")
    for V in map(int, args.vocab.split(",")):
        data = next_word_data(articles, V, held_out=0.1, seed=0)
        B = buckets_for(V + 1)
        X, X_held = hashed_features(data, args.context, B)
        runs = []
        if "ours" in models:
            for name, options in (("ours full softmax", {}),
                                  ("ours sampled softmax", {"loss": "sampled", "num_sampled": int(SAMPLED_FRACTION * V)})):
                runs.append((name, lambda options=options, name=name: train_and_judge(
                    data, X, data.train.targets, X_held, data.held_out.targets, name, V, B, args.epochs, LR, BATCH, 0,
                    options)))
        if "torch-asm" in models:
            runs.append(("torch AdaptiveLogSoftmaxWithLoss", lambda: torch_asm(data, V, X, X_held, args.epochs,
                                                                                args.dim, 0)))
        for loss in ("hs", "ns"):
            if f"fasttext-{loss}" in models:
                runs.append((f"fastText -loss {loss}", lambda loss=loss: fasttext_model(
                    data, V, args.context, args.epochs, args.dim, loss, args.ft_ppl_rows, 0)))
        for name, run in runs:
            say(f"V = {V}: {name} ...")
            seconds, f = run()
            name += f" (lr {f['lr']})" if "lr" in f else ""
            print(f"| {V:,} | {name} | {seconds:.2f} | {f['perplexity']:.1f} | {f['top1_accuracy']:.3f} | "
                  f"{f['top5_accuracy']:.3f} |", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s; load average at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
