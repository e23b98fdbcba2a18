"""Shared machinery of the EM models: answers grouped by (worker, label) pair, soft answers as
Bayesian votes with a learned temperature, and the iteration loop with its stopping rule."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from crowdloop.aggregation.base import Gold
from crowdloop.aggregation.posterior import clamp_gold, row_max, row_sum, softmax_in_place, softmax_rows
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


def completed_rows(probs: sp.spmatrix) -> np.ndarray:
    """Dense probability rows, the mass a row leaves (a model's top labels only) shared equally by
    the labels it leaves out, as ``consensus.Decider`` reads them."""
    probs = sp.csr_matrix(probs)
    n_labels = probs.shape[1]
    rest = np.maximum(1 - np.asarray(probs.sum(axis=1)).ravel(), 0) / np.maximum(n_labels - np.diff(probs.indptr), 1)
    dense = np.repeat(rest[:, None], n_labels, axis=1)
    rows = np.repeat(np.arange(probs.shape[0]), np.diff(probs.indptr))
    dense[rows, probs.indices] = probs.data
    return dense


class SoftVotes:
    r"""Soft answers (a model's probability rows) as opinions in an EM model.

    A prediction that is independent of the crowd given the true label enters the posterior as
    one more factor $\tilde p_{ik} \propto p_{ik}^{\alpha_m}$, tempered by the soft worker's
    temperature $\alpha_m$: $P(z_i = k \mid \cdot) \propto \pi_k \tilde p_{ik} L_{ik}$, where
    $L_{ik}$ is the likelihood of the item's human answers (gold: an indicator of its label).

    **Estimating $\alpha$.** Read as a model of the data, $q_{ik}(\alpha) \propto \pi_k \tilde p_{ik}$
    is the item's prior and the human answers are drawn given $z_i$, so the log-likelihood of
    $\alpha$ given the crowd's parameters is

    $$\ell(\alpha) = \sum_i \log \sum_k q_{ik}(\alpha) L_{ik}
                   = \sum_i \Big[\operatorname{lse}_k(h_{ik} + \alpha \log p_{ik})
                                - \operatorname{lse}_k(\log \pi_k + \alpha \log p_{ik})\Big]$$

    with $h = \log \pi + \log L$ the posterior of the other opinions. Unlike fitting $\tilde p$ to
    that posterior by cross-entropy, this is not biased towards flat when the crowd is uncertain:
    one answer of a 70% worker is weak evidence, and the likelihood says so instead of asking the
    model to be as unsure as the crowd (which gave $\alpha \approx 0.3$ for a model whose true
    temperature is 0.77). It is maximised, alternating with the crowd's M-step (an ECM step: the
    observed-data likelihood never falls), by safeguarded Newton steps in $u = \log \alpha$:
    $\ell'(u) = \alpha \sum_i (\mathrm E_{post}[\log p] - \mathrm E_{q}[\log p])$,
    $\ell''(u) = \ell'(u) + \alpha^2 \sum_i (\mathrm{Var}_{post}[\log p] - \mathrm{Var}_q[\log p])$.

    **Gold.** On a gold item $L$ is the indicator of its true label and its term is the
    log-likelihood of temperature scaling (Guo et al., ICML 2017). Once the gold items are worth
    more than the prior below (``prior_items`` of them), they alone set $\alpha$: exact evidence,
    free of any error of the crowd's model (a per-worker confusion matrix fitted on one answer per
    item overrates the model); less gold joins the crowd's evidence. Wherever gold is split to
    calibrate (``CalibratedAggregator``, ``DynamicConsensus``), the temperature that scores a gold
    item is fitted on the other half: cross-fitted. If the model was trained on the gold items,
    its rows for them must be out-of-fold (``crowdloop.models.out_of_fold_proba``).

    **A thin crowd.** When most items have one answer, worker skill and $\alpha$ explain the same
    agreements and the likelihood is flat along that ridge (the cross-entropy fit collapsed to
    $\alpha \approx 0.3$ there). A normal prior on $\alpha$ centred at 1 (the model taken at face
    value) keeps the estimate sane: $\alpha$ maximises $\ell(\alpha) - \tfrac{\lambda}{2}(\alpha - 1)^2$
    (MAP) with $\lambda = n_0 \bar I$, where $\bar I = \overline{\mathrm{Var}_{p_i}[\log p_i]}$ is the
    Fisher information about $\alpha$ of one item whose true label is known, at $\alpha = 1$; so the
    prior is worth $n_0$ gold items (``Temperature.prior_items``, default 10). With hundreds of items
    with several answers, or with gold, the data outweigh it; with none, $\alpha$ stays near 1
    instead of collapsing. (A prior on $\log \alpha$ would not do: the data's information about
    $\log\alpha$, $\alpha^2 \mathrm{Var}$, vanishes as $\alpha \to 0$ while the prior's does not, so
    it would keep a useless model from being silenced.) A stated temperature (``Temperature.value``)
    is used as is; a learned one stays within ``Temperature.bounds``. Both come from
    ``Answers.with_soft(..., temperature=...)``, and so reach every model and ``decide``.

    The factor is not divided by the class prior $\pi$ (as Bayes' rule would for a calibrated
    $P(z_i \mid x_i)$): divided, a model flattened to $\alpha \to 0$ would cancel the prior and
    favour rare labels; undivided it leaves the prior intact, at the cost of counting the prior
    twice for a model that already includes it (negligible unless classes are very unbalanced).
    """

    NEWTON_STEPS = 8
    """Newton steps per refit at most (each refit starts from the last estimate)."""

    def __init__(self, answers: Answers, gold: Gold) -> None:
        soft = answers.soft
        self.item = soft.item
        self.worker = soft.worker
        self.log_probs = np.log(np.maximum(completed_rows(soft.probs), EPS))
        self.soft_workers = np.unique(soft.worker)
        self.alpha = np.ones(answers.n_workers)
        self.specs = {int(m): soft.temperature(m) for m in self.soft_workers}
        self.prior_precision = np.zeros(answers.n_workers)
        for m, spec in self.specs.items():
            if spec.value is not None:
                self.alpha[m] = spec.value
            else:
                self.alpha[m] = float(np.clip(1.0, *spec.bounds))
                self.prior_precision[m] = spec.prior_items * _mean_information(self.log_probs[self.worker == m])
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
        """Per soft row: ``alpha * log p - log normaliser`` (n_rows x K)."""
        scaled = self.alpha[self.worker][:, None] * self.log_probs
        return scaled - logsumexp(scaled, axis=1, keepdims=True)

    def item_log_likelihood(self) -> np.ndarray:
        return np.asarray(self._rows @ self.contributions())

    def fit(self, hard_log_posterior: np.ndarray) -> None:
        """Refit each learned temperature given the unnormalised log posterior of the other opinions
        (hard answers and class prior; gold items: their true labels), or on the gold items alone
        when the soft worker has at least ``prior_items`` of them."""
        for m, spec in self.specs.items():
            rows = np.flatnonzero((self.worker == m) & self.referenced)
            if spec.value is not None or not len(rows):
                continue
            gold = self.gold_row[self.item[rows]]
            on_gold = gold >= 0
            if on_gold.sum() >= max(spec.prior_items, 1):  # exact evidence, worth more than the prior
                rows, gold = rows[on_gold], gold[on_gold]
            other = np.array(hard_log_posterior[self.item[rows]], dtype=np.float64)
            other -= other.max(axis=1, keepdims=True)
            # the class prior: the mean posterior of the other opinions
            log_prior = np.log(np.maximum(softmax_rows(other).mean(axis=0), EPS))
            on_gold = gold >= 0
            if on_gold.any():
                other[on_gold] = -np.inf
                other[on_gold, gold[on_gold]] = log_prior[gold[on_gold]]
            self.alpha[m] = _map_temperature(
                self.log_probs[rows], other, log_prior, self.alpha[m], self.prior_precision[m], spec.bounds
            )

    def agreement(self, probs: np.ndarray, n_workers: int) -> np.ndarray:
        """Per soft worker, the mean calibrated probability given to the posterior's label."""
        calibrated = np.exp(self.contributions())
        agree = (calibrated * probs[self.item]).sum(axis=1)
        counts = np.bincount(self.worker, minlength=n_workers)
        sums = np.bincount(self.worker, weights=agree, minlength=n_workers)
        return np.divide(sums, counts, out=np.full(n_workers, np.nan), where=counts > 0)


def _mean_information(log_probs: np.ndarray) -> float:
    """Mean Fisher information about the temperature of one row with a known label, at alpha = 1:
    the variance of log p under p."""
    if not len(log_probs):
        return 0.0
    p = np.exp(log_probs)
    p /= p.sum(axis=1, keepdims=True)
    mean = (p * log_probs).sum(axis=1)
    return float(((p * log_probs**2).sum(axis=1) - mean**2).mean())


def _lse_moments(
    scores: np.ndarray, values: np.ndarray, squares: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: log-sum-exp of ``scores`` and the mean and variance of ``values`` (``squares``: their
    squares) under softmax(scores). Row reductions run column by column (``row_sum``): NumPy is
    slow on a short last axis."""
    top = row_max(scores)
    weight = np.exp(scores - top[:, None])
    total = row_sum(weight)
    mean = row_sum(weight * values) / total
    variance = np.maximum(row_sum(weight * squares) / total - mean**2, 0.0)
    return np.log(total) + top, mean, variance


NEWTON_TOLERANCE = 1e-3
"""A Newton step in log-temperature below this (0.1% of the temperature) ends the refit."""


def _map_temperature(
    log_probs: np.ndarray,
    other: np.ndarray,
    log_prior: np.ndarray,
    start: float,
    precision: float,
    bounds: tuple[float, float],
) -> float:
    """The MAP temperature of ``SoftVotes`` (see its docstring) by safeguarded Newton steps in
    ``u = log alpha`` from ``start``: a step that does not raise the objective is halved."""
    low, high = np.log(bounds[0]), np.log(bounds[1])
    squares = log_probs**2

    def terms(u: float) -> tuple[float, float, float]:
        alpha = np.exp(u)
        scaled = alpha * log_probs
        post, post_mean, post_var = _lse_moments(other + scaled, log_probs, squares)
        base, base_mean, base_var = _lse_moments(log_prior + scaled, log_probs, squares)
        gradient = alpha * float((post_mean - base_mean).sum())
        curvature = gradient + alpha**2 * float((post_var - base_var).sum())
        value = float((post - base).sum()) - 0.5 * precision * (alpha - 1) ** 2
        # the prior's terms in u: d/du = -lambda (alpha - 1) alpha, d2/du2 = -lambda alpha (2 alpha - 1)
        return value, gradient - precision * (alpha - 1) * alpha, curvature - precision * alpha * (2 * alpha - 1)

    u = float(np.clip(np.log(start), low, high))
    value, gradient, curvature = terms(u)
    for _ in range(SoftVotes.NEWTON_STEPS):
        step = -gradient / curvature if curvature < 0 else np.sign(gradient) * 0.5
        step = float(np.clip(step, -1.0, 1.0))
        if curvature < 0 and abs(step) < NEWTON_TOLERANCE:  # converged: take the last, tiny step
            return float(np.exp(np.clip(u + step, low, high)))
        for _ in range(20):
            candidate = float(np.clip(u + step, low, high))
            if candidate == u:
                return float(np.exp(u))
            new = terms(candidate)
            if new[0] >= value:
                break
            step /= 2
        else:
            break
        u, (value, gradient, curvature) = candidate, new
    return float(np.exp(u))


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
