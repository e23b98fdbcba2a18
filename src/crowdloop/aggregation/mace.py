"""MACE: workers who know the answer or spam from their own strategy, by variational Bayes or EM."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import digamma

from crowdloop.aggregation.base import Aggregator, Gold
from crowdloop.aggregation.em import EPS, SoftVotes, run_em
from crowdloop.aggregation.posterior import Posterior, clamp_gold, fits_dense, softmax_rows
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError

STRATEGY_PRIOR = 10.0
"""The symmetric Dirichlet prior on every spamming strategy in variational Bayes (as in MACE)."""


class MACE(Aggregator):
    r"""MACE (Multi-Annotator Competence Estimation).

    The true label has prior $\pi$, $z_i \sim \operatorname{Cat}(\pi)$. On each item worker $w$ spams with
    probability $1 - \theta_w$ ($s_{iw} \sim \operatorname{Bernoulli}(1 - \theta_w)$); knowing, they
    give the true label, spamming, a label drawn from their own strategy $\xi_w$:

    $$P(y_{iw} = l \mid z_i = k) = \theta_w [l = k] + (1 - \theta_w)\, \xi_{wl}.$$

    A spammer has a low competence $\theta_w$ whatever the labels they favour.

    The class prior. The MACE paper fixes $\pi$ uniform (``class_prior="uniform"``, crowd-kit's
    choice too). On unbalanced classes that makes a careful worker look like a spammer: with 88% of
    items in class 0 (zheng_product), a worker who answers 0 on 90% of items and is right on 92%
    is explained at least as well by "spams 0" ($\theta_w \approx 0$, $\xi_{w0} \approx 1$) as by
    "knows", since under a uniform $\pi$ the model expects only half of the items to be 0. Only
    the workers who over-answer the rare class keep a high competence, and their false positives
    win (zheng_product: .818, below majority vote's .897). ``class_prior="learn"`` (the default)
    sets $\pi$ to the mean posterior in every M-step, as Dawid-Skene does: the frequent class is
    then explained by the prior and the careful workers by their competence (zheng_product .933).
    A learned $\pi$ does not run away to one class here, unlike in the one-coin model, because each
    worker's own strategy $\xi_w$ absorbs their answer bias. ``method="em"``
    maximises the likelihood (counts smoothed by ``smoothing``); ``method="vb"`` (the default) is
    variational Bayes with priors $\theta_w \sim \operatorname{Beta}(\beta, \alpha)$ (``alpha`` on
    spamming, ``beta`` on knowing) and $\xi_w \sim \operatorname{Dir}(10)$: the M-step sets each
    parameter to $\exp\psi(n + a) / \exp\psi(\sum (n + a))$ with $n$ the expected counts and $a$ the
    prior. The expected counts come from the posterior $q$ over $z$ in closed form: an answer
    $y$ was given knowingly with probability $q_{iy}\, \theta_w / (\theta_w + (1 - \theta_w)\xi_{wy})$.
    Each of ``n_restarts`` runs starts from random parameters (seeded by ``random_state``) and the
    run with the highest marginal likelihood wins. Gold items stay clamped to their true labels
    (so they inform the competences); soft answers vote through ``SoftVotes``.

    Against crowd-kit 1.4.2: its restarts all draw their initial parameters with the same seed (one
    start, repeated), and it sums the expected strategy counts in sorted worker order but stores them
    in order of first appearance, so a worker gets another's strategy unless the two orders agree.
    With ids renamed so that they do, its accuracy and that of ``MACE(class_prior="uniform")`` agree
    (``bench/results/accuracy.md``, column ``mace@uniform``).

    D. Hovy, T. Berg-Kirkpatrick, A. Vaswani and E. Hovy. Learning whom to trust with MACE.
    *NAACL-HLT* 2013, 1120-1130.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [1, 1, 1, 2, 2, 2], "worker": list("abcabc"), "label": list("xxyyyx")})
    >>> MACE(n_restarts=2).fit_predict(df).tolist()
    ['x', 'y']

    Parameters follow crowd-kit (``n_restarts``, ``n_iter``, ``method``, ``smoothing``,
    ``default_noise``: random initial weights are drawn from $U(1, 2 + \text{default\_noise})$ and
    normalised; ``alpha``, ``beta``, ``random_state``, ``verbose``, which is accepted and unused),
    plus ``tol``: a run stops early once its mean log-likelihood per answer improves by less. The
    default ``smoothing`` (None) is $0.01 / K$, the value crowd-kit and the original MACE use.

    Fitted: ``labels_``, ``probas_``, ``priors_`` (Series label -> $\pi$), ``spamming_`` (array
    workers x 2: the weights of spamming and of knowing, rows in ``workers_`` order, as crowd-kit),
    ``thetas_`` (array workers x K: the spamming strategies $\xi_w$), ``skills_`` (Series worker ->
    competence $\theta_w$; soft workers: their mean calibrated probability of the posterior's
    label), ``loss_history_`` (mean log-likelihood per answer of the chosen run),
    ``log_likelihood_`` (its last value), ``n_iter_``.
    """

    def __init__(
        self,
        n_restarts: int = 10,
        n_iter: int = 50,
        method: str = "vb",
        smoothing: float | None = None,
        default_noise: float = 0.5,
        alpha: float = 0.5,
        beta: float = 0.5,
        random_state: int | None = 0,
        verbose: int = 0,
        tol: float = 1e-5,
        class_prior: Literal["learn", "uniform"] = "learn",
    ) -> None:
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.method = method
        self.smoothing = smoothing
        self.default_noise = default_noise
        self.alpha = alpha
        self.beta = beta
        self.random_state = random_state
        self.verbose = verbose
        self.tol = tol
        self.class_prior = class_prior

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.n_restarts, (int, np.integer)) or self.n_restarts < 1:
            raise ConfigError(f"n_restarts must be a positive integer, got {self.n_restarts!r}")
        if self.method not in ("vb", "em"):
            raise ConfigError(f"method must be 'vb' or 'em', got {self.method!r}")
        if self.smoothing is not None and not self.smoothing >= 0:
            raise ConfigError(f"smoothing must be >= 0, got {self.smoothing!r}")
        if not self.default_noise >= 0:
            raise ConfigError(f"default_noise must be >= 0, got {self.default_noise!r}")
        if not (self.alpha > 0 and self.beta > 0):
            raise ConfigError(f"alpha and beta must be positive, got {self.alpha!r} and {self.beta!r}")
        if self.class_prior not in ("learn", "uniform"):
            raise ConfigError(f"class_prior must be 'learn' or 'uniform', got {self.class_prior!r}")

    def _fit(self, answers: Answers, gold: Gold) -> Posterior:
        k = answers.n_labels
        if not fits_dense(answers.n_items, k):
            raise ConfigError(
                f"{k} labels over {answers.n_items} items are too many for MACE's dense posterior; "
                "use TaxonomySkillModel (method 'taxonomy')"
            )
        self.smoothing_ = 0.01 / k if self.smoothing is None else float(self.smoothing)
        self.theta_priors_ = np.tile([self.alpha, self.beta], (answers.n_workers, 1)).astype(np.float64)
        self.strategy_priors_ = np.full((answers.n_workers, k), STRATEGY_PRIOR)
        model = _MaceFit(answers, self.method, self.smoothing_, self.theta_priors_, self.strategy_priors_)
        uniform = np.full(k, -np.log(k))
        rng = np.random.default_rng(self.random_state)
        best: tuple | None = None
        for _ in range(self.n_restarts):
            low, high = 1.0, 2.0 + self.default_noise
            model.set(rng.uniform(low, high, (answers.n_workers, 2)), rng.uniform(low, high, (answers.n_workers, k)))
            model.log_prior = uniform
            soft = SoftVotes(answers, gold) if answers.soft is not None else None
            initial = model.log_prior + model.item_log_likelihood()
            if soft is not None:
                initial = initial + soft.item_log_likelihood()
            probs, history = run_em(
                clamp_gold(softmax_rows(initial), gold.items, gold.labels),
                model.m_step if self.class_prior == "uniform" else model.m_step_with_prior,
                lambda: model.log_prior + model.item_log_likelihood(),
                gold,
                n_iter=self.n_iter,
                tol=self.tol,
                n_answers=answers.n_answers,
                soft=soft,
            )
            if best is None or history[-1] > best[0]:
                fitted = (model.spamming.copy(), model.strategy.copy(), model.log_prior.copy())
                best = (history[-1], probs, history, *fitted, soft)
        self.log_likelihood_, probs, self.loss_history_, self.spamming_, self.thetas_, log_prior, soft = best
        self.priors_ = pd.Series(np.exp(log_prior), index=pd.Index(answers.labels.labels, name="label"), name="prior")
        self.n_iter_ = len(self.loss_history_)
        competence = self.spamming_[:, 1] / self.spamming_.sum(axis=1)
        if soft is not None:
            hard_workers = np.bincount(answers.worker, minlength=answers.n_workers) > 0
            competence = np.where(hard_workers, competence, soft.agreement(probs, answers.n_workers))
        self.skills_ = self._worker_series(competence)
        return Posterior(probs)


class _MaceFit:
    """MACE's parameters (``spamming``: weights of spamming and knowing; ``strategy``) and the
    per-answer arrays its E- and M-steps run on."""

    def __init__(
        self,
        answers: Answers,
        method: str,
        smoothing: float,
        theta_priors: np.ndarray,
        strategy_priors: np.ndarray,
    ) -> None:
        self.k = answers.n_labels
        self.n_items = answers.n_items
        self.n_workers = answers.n_workers
        self.item = answers.item.astype(np.intp)
        self.worker = answers.worker.astype(np.intp)
        self.label = answers.label.astype(np.intp)
        self.cell = self.item * self.k + self.label
        self.worker_label = self.worker * self.k + self.label
        self.count = np.ones(answers.n_answers) if answers.weight is None else answers.weight.astype(np.float64)
        self.method = method
        self.smoothing = smoothing
        self.theta_priors = theta_priors
        self.strategy_priors = strategy_priors
        self.spamming = np.empty((self.n_workers, 2))
        self.strategy = np.empty((self.n_workers, self.k))
        self.log_prior = np.full(self.k, -np.log(self.k))

    def set(self, spamming: np.ndarray, strategy: np.ndarray) -> None:
        self.spamming = spamming / spamming.sum(axis=1, keepdims=True)
        self.strategy = strategy / strategy.sum(axis=1, keepdims=True)

    def _answer_probs(self) -> tuple[np.ndarray, np.ndarray]:
        """Per answer: P(this label by spamming) and P(knowing)."""
        spam = self.spamming[self.worker, 0] * self.strategy[self.worker, self.label]
        return spam, self.spamming[self.worker, 1]

    def item_log_likelihood(self) -> np.ndarray:
        """``log P(item's answers | z = k)``: a wrong label can only be spam, the true one either."""
        spam, know = self._answer_probs()
        log_spam = np.log(np.maximum(spam, EPS))
        log_either = np.log(np.maximum(spam + know, EPS))
        base = np.bincount(self.item, weights=self.count * log_spam, minlength=self.n_items)
        bonus = np.bincount(self.cell, weights=self.count * (log_either - log_spam), minlength=self.n_items * self.k)
        return base[:, None] + bonus.reshape(self.n_items, self.k)

    def m_step(self, probs: np.ndarray) -> None:
        """Expected counts of knowing / spamming per worker and of spammed labels, then the
        variational (``vb``) or smoothed maximum-likelihood (``em``) update."""
        spam, know = self._answer_probs()
        knowing = self.count * probs.ravel()[self.cell] * know / np.maximum(spam + know, EPS)
        spamming = self.count - knowing
        counts = np.column_stack(
            [
                np.bincount(self.worker, weights=spamming, minlength=self.n_workers),
                np.bincount(self.worker, weights=knowing, minlength=self.n_workers),
            ]
        )
        strategy = np.bincount(self.worker_label, weights=spamming, minlength=self.n_workers * self.k)
        strategy = strategy.reshape(self.n_workers, self.k)
        if self.method == "vb":
            self.spamming = _variational(counts, self.theta_priors)
            self.strategy = _variational(strategy, self.strategy_priors)
        else:
            self.spamming = _smoothed(counts, self.smoothing)
            self.strategy = _smoothed(strategy, self.smoothing)

    def m_step_with_prior(self, probs: np.ndarray) -> None:
        """``m_step`` and the class prior: the mean posterior (maximum likelihood)."""
        self.m_step(probs)
        self.log_prior = np.log(np.maximum(probs.mean(axis=0), EPS))


def _variational(counts: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """``exp(digamma(n + a)) / exp(digamma(sum(n + a)))`` per row: the geometric-mean weights of VB."""
    posterior = counts + prior
    return np.exp(digamma(posterior) - digamma(posterior.sum(axis=1, keepdims=True)))


def _smoothed(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """Rows of ``counts + smoothing`` normalised (uniform where a row is all zero)."""
    smoothed = counts + smoothing
    sums = smoothed.sum(axis=1, keepdims=True)
    uniform = np.full_like(smoothed, 1.0 / smoothed.shape[1])
    return np.divide(smoothed, sums, out=uniform, where=sums > 0)
