"""Shared machinery of the EM models: answers grouped by (worker, label) pair, soft answers as
Bayesian votes with a learned temperature, and the iteration loop with its stopping rule."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from crowdloop.aggregation.base import Gold
from crowdloop.aggregation.posterior import clamp_gold, softmax_in_place, softmax_rows
from crowdloop.answers import Answers

EPS = 1e-10
"""Floor of every probability that is logged (as crowd-kit's ``_EPS``)."""


class AnswerPairs:
    r"""Hard answers grouped by (worker, observed label) pair: the sufficient statistics of every
    confusion-matrix model. With the item-by-pair incidence matrix $A$ (entry: number of answers,
    or their weights), the E-step is $\log L = A \log E$ and the M-step counts are $A^\top Q$,
    two sparse products instead of joins over the answers."""

    def __init__(self, answers: Answers) -> None:
        k = answers.n_labels
        key = answers.worker.astype(np.int64) * k + answers.label
        unique, pair = _dense_unique(key, answers.n_workers * k)
        self.worker = (unique // k).astype(np.int32)
        self.label = (unique % k).astype(np.int32)
        weight = np.ones(answers.n_answers) if answers.weight is None else answers.weight
        # float32: the products below are memory-bound, and 7 digits are plenty for probabilities
        self.incidence = sp.csr_matrix(
            (weight.astype(np.float32), (answers.item, pair)), shape=(answers.n_items, len(unique))
        )
        self.by_worker = sp.csr_matrix(
            (np.ones(len(unique)), (self.worker, np.arange(len(unique)))), shape=(answers.n_workers, len(unique))
        )

    def __len__(self) -> int:
        return len(self.worker)

    def counts(self, probs: np.ndarray) -> np.ndarray:
        """Expected counts ``N[p, k]``: answers of pair p on items whose true label is k. The product
        runs on the CSC transpose of the item-major incidence: the posterior is read in order and
        the (small) count table is scattered into, several times faster than a pair-major CSR."""
        return np.asarray(self.incidence.T @ probs.astype(np.float32, copy=False), dtype=np.float64)

    def item_log_likelihood(self, log_pair_probs: np.ndarray) -> np.ndarray:
        """``sum`` over an item's answers of ``log P(answer | true label k)`` (n_items x K)."""
        return np.asarray(self.incidence @ log_pair_probs.astype(np.float32, copy=False))

    def per_worker(self, pair_values: np.ndarray) -> np.ndarray:
        """Sum of pair rows per worker (n_workers x ...)."""
        return np.asarray(self.by_worker @ pair_values)


def _dense_unique(key: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_inverse=True)`` for keys in ``0..n_keys-1``: by counting when the
    key range is not much larger than the data (no sort), else by sorting."""
    if n_keys > 4 * len(key) + 1_000_000:
        unique, inverse = np.unique(key, return_inverse=True)
        return unique, inverse.ravel()
    present = np.bincount(key, minlength=n_keys) > 0
    code = np.cumsum(present) - 1
    return np.flatnonzero(present), code[key]


class SoftVotes:
    r"""Soft answers (a model's probability rows) as opinions in an EM model.

    A prediction that is independent of the crowd given the true label enters the posterior as
    one more likelihood factor $\tilde p_{ik}$, tempered by the soft worker's learned reliability:
    $\tilde p_{ik} \propto p_{ik}^{\alpha_m}$, with $\alpha_m$ minimising the cross-entropy between
    $\tilde p_i$ and the posterior the *other* opinions give (gold items: their true labels), as
    in temperature scaling (Guo et al., ICML 2017) with the crowd as the reference. An unreliable
    model gets $\alpha \to 0$ and stops counting; a sharp, reliable one keeps $\alpha \approx 1$.

    The factor is not divided by the class prior $\pi$ (as Bayes' rule would for a calibrated
    $P(z_i \mid x_i)$): divided, a model flattened to $\alpha \to 0$ would cancel the prior and
    favour rare labels; undivided it leaves the prior intact, at the cost of counting the prior
    twice for a model that already includes it (negligible unless classes are very unbalanced).
    """

    def __init__(self, answers: Answers, gold: Gold) -> None:
        soft = answers.soft
        self.item = soft.item
        self.worker = soft.worker
        self.log_probs = np.log(np.maximum(soft.probs.toarray(), EPS))
        self.soft_workers = np.unique(soft.worker)
        self.alpha = np.ones(answers.n_workers)
        has_hard = np.zeros(answers.n_items, dtype=bool)
        has_hard[answers.item] = True
        has_hard[gold.items] = True
        self.referenced = has_hard[self.item]
        self.gold_row = np.full(answers.n_items, -1)
        self.gold_row[gold.items] = gold.labels
        self._rows = sp.csr_matrix(
            (np.ones(len(self.item)), (self.item, np.arange(len(self.item)))), shape=(answers.n_items, len(self.item))
        )

    def contributions(self) -> np.ndarray:
        """Per soft row: ``alpha * log p - log normaliser - log prior`` (n_rows x K)."""
        scaled = self.alpha[self.worker][:, None] * self.log_probs
        return scaled - logsumexp(scaled, axis=1, keepdims=True)

    def item_log_likelihood(self) -> np.ndarray:
        return np.asarray(self._rows @ self.contributions())

    def fit(self, hard_log_posterior: np.ndarray) -> None:
        """Refit each soft worker's temperature against the posterior of the hard answers (and
        gold), i.e. the opinions other than the soft ones."""
        reference = softmax_rows(hard_log_posterior[self.item])
        gold = self.gold_row[self.item]
        reference[gold >= 0] = 0.0
        reference[gold >= 0, gold[gold >= 0]] = 1.0
        for m in self.soft_workers:
            rows = (self.worker == m) & self.referenced
            if rows.any():
                self.alpha[m] = _fit_temperature(self.log_probs[rows], reference[rows])

    def agreement(self, probs: np.ndarray, n_workers: int) -> np.ndarray:
        """Per soft worker, the mean calibrated probability given to the posterior's label."""
        calibrated = np.exp(self.contributions())
        agree = (calibrated * probs[self.item]).sum(axis=1)
        counts = np.bincount(self.worker, minlength=n_workers)
        sums = np.bincount(self.worker, weights=agree, minlength=n_workers)
        return np.divide(sums, counts, out=np.full(n_workers, np.nan), where=counts > 0)


def _fit_temperature(log_probs: np.ndarray, reference: np.ndarray) -> float:
    def cross_entropy(alpha: float) -> float:
        scaled = alpha * log_probs
        return float(-(reference * (scaled - logsumexp(scaled, axis=1, keepdims=True))).sum())

    return float(minimize_scalar(cross_entropy, bounds=(1e-3, 20.0), method="bounded").x)


def run_em(
    initial: np.ndarray,
    m_step: Callable[[np.ndarray], None],
    log_likelihood: Callable[[], np.ndarray],
    gold: Gold,
    *,
    n_iter: int,
    tol: float,
    n_answers: int,
    soft: SoftVotes | None = None,
    objective: Callable[[np.ndarray], float] | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Alternate M-step (parameters from the posterior) and E-step (posterior from parameters).

    ``log_likelihood()`` returns the unnormalised log posterior of every item under the current
    parameters (prior included, soft votes excluded). Stops when the mean log-likelihood per
    answer improves by less than ``tol``, or after ``n_iter`` rounds. Returns the posterior (gold
    clamped) and the history of the mean log-likelihood.

    ``objective(probs)``, if given, replaces the mean log-likelihood in the stopping rule and the
    history; it is called with each new posterior (e.g. to reproduce another library's rule).
    """
    probs = initial
    history: list[float] = []
    for _ in range(n_iter):
        m_step(probs)
        log_post = log_likelihood()
        if soft is not None:
            soft.fit(log_post)
            log_post = log_post + soft.item_log_likelihood()
        # softmax and log-normaliser from one exponentiation, in place (scipy's logsumexp is slow
        # on many rows); the log-likelihood is summed in float64 whatever the posterior's dtype
        log_normaliser = softmax_in_place(log_post)
        probs = clamp_gold(log_post, gold.items, gold.labels)
        if objective is None:
            history.append(float(log_normaliser.sum()) / max(n_answers, 1))
        else:
            history.append(float(objective(probs)))
        if len(history) > 1 and history[-1] - history[-2] < tol:
            break
    return probs, history
