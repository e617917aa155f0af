"""Sampled softmax: minibatch SGD at many classes, with logits for a few columns of W per step.

Conventions as in objective.py: x (n, d) float rows of a minibatch (NumPy or a scipy.sparse CSR
array), y (n,) class indices, w (n,) weights or None, W (d, k), b (k,), Z = s X W + b.

At k in the tens of thousands the (n, k) logits dominate a step. Sampled softmax (Jean et al. 2015;
TensorFlow's `sampled_softmax_loss`) draws S classes from a proposal Q each step and computes logits
only for the columns C = (the batch's true classes) U (the sampled ones), an (n, |C|) block with
|C| <= n + S. For row i the candidates are its true class and the S sampled classes; each logit is
corrected by the log of the class's expected count E_c under the sampling (so the estimator of the
softmax's normaliser is less biased), and a sampled class equal to the row's own class (an
accidental hit) is masked out:

    o_i0 = Z_{i y_i} - log E_{y_i},    o_ij = Z_{i s_j} - log E_{s_j}  (-inf where s_j = y_i)
    l_i  = logsumexp(o_i) - o_i0,      d l_i / d o_i = softmax(o_i) - e_0

and the gradient flows back to the columns C only (G (n, |C|): the sampled entries, plus the
true-class entry of each row), dW_C = s X^T G / N, db_C = sum_i G_i / N as in generic._backward.

Sampling is TensorFlow's `unique=True`: draws with replacement from Q until S distinct classes are
seen, T draws in all; a class then is in the sample with probability E_c = 1 - (1 - Q_c)^T, its
expected count. When every class of Q's support is sampled, E_c = 1 for all of them, the
correction is 0 and l_i is the full softmax's loss. The draws come from a seeded
numpy.random.Generator (seeding.sampler_generator), whose state a checkpoint keeps.

Only plain SGD steps (the columns C updated in place); momentum would touch every column with
its velocity each step, so the loss refuses it (options.TrainConfig). With a sparse batch (and no
centring) the step touches only the rows R of W that its non-zeros use: the block W[R, C], never a
dense (d, k) array. Weight decay applies to the block a step touches (the penalty's gradient
lambda W_RC), a lazy L2.
"""

from __future__ import annotations

import math
import numpy as np

from . import generic
from .engines import engine_for
from .errors import InvalidArgumentError
from .row_sparse import Block, BlockSteps, active_rows, block_params, block_step
from .seeding import sampler_generator

__all__ = ["SAMPLERS", "LOSSES", "proposal", "CandidateSampler", "SampledSoftmax", "sampled_loss_and_grad_sums",
           "check_num_sampled", "sampled_objective", "SampledSteps"]

LOSSES = ("full", "sampled")
SAMPLERS = ("uniform", "log-uniform", "unigram")
UNIGRAM_POWER = 0.75
"""The unigram proposal is count^0.75 (word2vec's distortion): rare classes drawn more than their share."""


def proposal(sampler: str, k: int, labels: np.ndarray | None = None) -> np.ndarray:
    """The proposal Q (k,) float64, summing to 1: "uniform" 1/k; "log-uniform" Zipf over the class
    index, Q_c = log((c + 2) / (c + 1)) / log(k + 1) (TensorFlow's; suits classes numbered by
    falling frequency); "unigram" the training labels' counts^0.75, normalised (needs `labels`;
    a class without training rows is never drawn)."""
    if sampler == "uniform":
        return np.full(k, 1.0 / k)
    if sampler == "log-uniform":
        c = np.arange(k, dtype=np.float64)
        return np.log1p(1.0 / (c + 1)) / math.log(k + 1)
    if sampler == "unigram":
        counts = np.bincount(np.asarray(labels).astype(np.int64, copy=False), minlength=k)[:k].astype(np.float64)
        weights = counts ** UNIGRAM_POWER
        return weights / weights.sum()
    raise InvalidArgumentError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")


def check_num_sampled(num_sampled: int, k: int) -> None:
    """num_sampled must be below the number of classes k (S >= k is the full softmax: use loss 'full')."""
    if not 1 <= num_sampled < k:
        raise InvalidArgumentError(f"num_sampled: expected 1 <= S < {k} (the number of classes; the full softmax "
                                   f"uses every class), got {num_sampled}")


class CandidateSampler:
    """S distinct classes a step from Q, drawn with replacement until S are distinct (TensorFlow's
    unique=True), and the log expected counts log E_c = log(1 - (1 - Q_c)^T) of T draws."""

    def __init__(self, q: np.ndarray, num_sampled: int):
        self.q = np.asarray(q, dtype=np.float64)
        self.support = np.flatnonzero(self.q > 0)
        if not 1 <= num_sampled <= self.support.size:
            raise InvalidArgumentError(f"num_sampled: expected 1 <= S <= {self.support.size} (the classes the "
                                       f"proposal can draw), got {num_sampled}")
        self.num_sampled = num_sampled
        self.cdf = np.cumsum(self.q)
        self.log1m_q = np.log1p(-self.q)                              # (k,) log(1 - Q_c)
        self.tries = 0                                                # T of the last draw

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """The S sampled classes (S,) int64, in the order first drawn."""
        S = self.num_sampled
        if S == self.support.size:                                    # every class: T is infinite, E_c = 1
            self.tries = math.inf
            return self.support.copy()
        seen = np.zeros(self.q.shape[0], dtype=bool)
        found, tries = [], 0                                          # distinct classes in the order drawn
        while S > 0:                                                  # rounds of num_sampled draws until S are new
            u = rng.random(self.num_sampled) * self.cdf[-1]
            draws = np.minimum(np.searchsorted(self.cdf, u, side="right"), self.support[-1])
            classes, first = np.unique(draws, return_index=True)
            new = ~seen[classes]
            order = np.argsort(first[new], kind="stable")[:S]         # the round's new classes, as drawn
            chosen, at = classes[new][order], first[new][order]
            seen[chosen] = True
            found.append(chosen)
            S -= chosen.size
            tries += int(at[-1]) + 1 if S == 0 else draws.size        # T: up to the S-th distinct draw
        self.tries = tries
        return np.concatenate(found)

    def log_expected_count(self, classes: np.ndarray) -> np.ndarray:
        """log E_c (len(classes),) float64 for the last draw's T (0 when every class was drawn)."""
        if self.tries == math.inf:
            return np.zeros(len(classes))
        with np.errstate(divide="ignore"):                            # Q_c = 0: log 0 = -inf, never drawn
            return np.log(-np.expm1(self.tries * self.log1m_q[classes]))


def sampled_loss_and_grad_sums(params, x, y, w, divisor: float, sampled, log_e_sampled, log_e_true):
    """One minibatch's sampled softmax (see the module's docstring): (sum_i w_i l_i, Block, dW_RC,
    db_C), the gradient that of sum_i w_i l_i / divisor: the block's C (c,) the columns (sorted), R (r,)
    the rows of W a sparse x touches or None for all; dW_RC (r or d, c), db_C (c,).

    params: the model's attributes (W, b, mean, std, input_scale); sampled (S,) distinct classes,
    log_e_sampled (S,) and log_e_true (n,) their and the rows' true classes' log expected counts.
    x may be dense or a scipy.sparse CSR array (only x @ W_RC and x.T @ G are taken)."""
    n = y.shape[0]
    cols, inverse = np.unique(np.concatenate([y, sampled]), return_inverse=True)
    true_pos, sampled_pos = inverse[:n], inverse[n:]
    R, x = active_rows(x, params)
    local = block_params(params, R, cols)   # W_RC a copy: the step updates it and writes it back
    z = generic.logits(np, local, x)                                  # (n, c)
    rows = np.arange(n)
    o = np.empty((n, 1 + sampled.shape[0]), dtype=z.dtype)            # (n, 1 + S) corrected candidate logits
    o[:, 0] = z[rows, true_pos] - log_e_true.astype(z.dtype)
    o[:, 1:] = z[:, sampled_pos] - log_e_sampled.astype(z.dtype)
    o[:, 1:][sampled[None, :] == y[:, None]] = -np.inf                 # accidental hits
    shifted = o - o.max(axis=1, keepdims=True)                        # the true logit keeps each row finite
    e = np.exp(shifted)
    sums = e.sum(axis=1)
    losses = np.log(sums) - shifted[:, 0]                              # (n,)
    g = e / sums[:, None]                                             # softmax(o) - e_0
    g[:, 0] -= 1
    if w is not None:
        losses, g = losses * w, g * w[:, None]
    G = np.zeros_like(z)                                              # (n, c) back to the columns C
    G[:, sampled_pos] = g[:, 1:]                                      # distinct sampled columns
    G[rows, true_pos] += g[:, 0]                                      # one true column a row
    dW, db = generic._backward(np, local, x, G, divisor)
    return losses.sum(), Block(R, cols, local.W), dW, db


class SampledSoftmax:
    """The sampled softmax objective of `model` for minibatch SGD: `chunk` draws the step's classes
    from `rng` and returns the columns' gradient; `step` updates those columns in place.

    >>> objective = SampledSoftmax(model, proposal("unigram", k, y), num_sampled=100, rng=rng)
    """

    def __init__(self, model, q: np.ndarray, num_sampled: int, rng: np.random.Generator, *,
                 weight_decay: float = 0.0):
        self.model, self.rng, self.weight_decay = model, rng, float(weight_decay)
        self.sampler = CandidateSampler(q, num_sampled)

    def chunk(self, x, y, w, divisor: float):
        """(sum_i w_i l_i, Block, dW_RC, db_C) of the minibatch (x, y, w), classes drawn anew
        (`sampled_loss_and_grad_sums`)."""
        sampled = self.sampler.draw(self.rng)
        log_e = self.sampler.log_expected_count
        return sampled_loss_and_grad_sums(self.model, x, y, w, divisor, sampled, log_e(sampled), log_e(y))

    def step(self, block: Block, dW: np.ndarray, db: np.ndarray, lr: float) -> None:
        """W_RC <- W_RC - lr (dW_RC + lambda W_RC), b_C <- b_C - lr db_C: plain SGD on the block of
        the last `chunk` only (row_sparse.block_step: the L2 on the block, lazily)."""
        block_step(self.model, block, dW, db, lr, self.weight_decay)


def sampled_objective(model, X, y, cfg, seed, optimizer, resume) -> SampledSoftmax:
    """The SampledSoftmax of a TrainConfig with loss "sampled", checked: NumPy parameters, dense NumPy or scipy.sparse rows in
    memory, class indices; the proposal from the training labels; the classes' generator from `seed`
    (seeding.sampler_generator), continued from `resume` (a TrainState). Called by train.fit."""
    data = engine_for(X)
    if data.name not in ("numpy", "sparse") or engine_for(model.W).name != "numpy":
        raise InvalidArgumentError(f"loss: 'sampled' trains on NumPy arrays or scipy.sparse matrices in memory, not "
                                   f"{data.xp.__name__ if data.name == 'array_api' else data.name} arrays")
    if y.ndim != 1:
        raise InvalidArgumentError("loss: 'sampled' needs class-index targets (n,), not soft targets (n, k)")
    if optimizer.full_batch or getattr(optimizer, "momentum", 0):
        raise InvalidArgumentError(f"loss: 'sampled' takes plain SGD steps, not {optimizer.name!r} with its options")
    check_num_sampled(cfg.num_sampled, model.num_outputs)
    rng = sampler_generator(seed)
    if resume is not None and resume.sampler_state is not None:
        rng.bit_generator.state = resume.sampler_state
    q = proposal(cfg.sampler, model.num_outputs, y)
    return SampledSoftmax(model, q, cfg.num_sampled, rng, weight_decay=cfg.weight_decay)


class SampledSteps(BlockSteps):
    """BlockSteps for SampledSoftmax (inner: minibatch._NumpySteps for NumPy arrays, minibatch._GenericSteps
    for sparse rows): the sampled gradient (`chunk`: the columns C only) and its step (those columns
    updated in place). No hits are counted: the argmax needs all k logits."""
    counts_hits = False

    def gradient(self, batch) -> tuple[int, float, int]:
        x, y, w = self.inner.rows(batch)
        loss, *self.update = self.objective.chunk(x, y, w, x.shape[0])
        return x.shape[0], float(loss), 0

    def step(self, lr: float) -> None:
        self.objective.step(*self.update, lr)
