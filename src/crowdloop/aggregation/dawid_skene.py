"""The Dawid-Skene family, fitted by EM on (worker, observed label) pair statistics.

- ``DawidSkene``: one full confusion matrix per worker ($K(K-1)$ free parameters each);
- ``ClassConditionalDawidSkene``: one accuracy per worker and true class ($K$ each);
- ``OneCoinDawidSkene``: one accuracy per worker (1 each).

All three share the machinery of ``em``: answers grouped by (worker, label) pair (``AnswerPairs``),
gold items clamped to their true labels, soft answers (a model's probability rows) voting through
``SoftVotes`` with a learned temperature, and ``run_em``'s loop and stopping rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from crowdloop.aggregation.base import Aggregator, Gold, expected_accuracy
from crowdloop.aggregation.em import EPS, AnswerPairs, SoftVotes, run_em
from crowdloop.aggregation.posterior import CandidatePosterior, Posterior, fits_dense, softmax_rows
from crowdloop.aggregation.voting import vote_posterior
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError

Stopping = Literal["likelihood", "crowdkit"]


class _PairEM(Aggregator):
    r"""Base of the models in which an answer's likelihood depends only on its (worker, observed
    label) pair $p = (w, l)$ and the true class $k$: $P(y_{iw} = l \mid z_i = k) = E_{pk}$.

    The E-step is $\log P(z_i = k \mid y) = \log \pi_k + \sum_{p} A_{ip} \log E_{pk} + c_i$ (one
    sparse product with the item-by-pair incidence $A$); the M-step sees the data only through the
    expected counts $N = A^\top Q$ (``AnswerPairs.counts``). A subclass says how $E$ follows from $N$
    (``_pair_probs``) and which skills to report (``_skills``).

    Fitted by every subclass: ``temperatures_`` (Series soft worker -> learned temperature
    $\alpha$, see ``SoftVotes``; empty without soft answers).
    """

    stopping: Stopping = "likelihood"

    def _check_params(self) -> None:
        super()._check_params()
        if self.stopping not in ("likelihood", "crowdkit"):
            raise ConfigError(f"stopping must be 'likelihood' or 'crowdkit', got {self.stopping!r}")

    def _pair_probs(self, pairs: AnswerPairs, counts: np.ndarray, n_workers: int) -> np.ndarray:
        """``E[p, k]``: probability that pair p's worker answers pair p's label on a class-k item."""
        raise NotImplementedError

    def _prior_counts(self, pairs: AnswerPairs, counts: np.ndarray) -> np.ndarray:
        """Prior pseudo-answers ``c[l, k]`` every worker's confusion starts with (observed label x
        true class), given the expected counts of the fit; none by default."""
        return np.zeros((counts.shape[1], counts.shape[1]))

    def _skills(self, answers: Answers, pairs: AnswerPairs, probs: np.ndarray) -> np.ndarray:
        """Per worker skill (NaN for workers without hard answers)."""
        return expected_accuracy(answers, probs)

    def _log_prior(self, probs: np.ndarray) -> np.ndarray:
        """M-step of the class prior: the mean posterior (maximum likelihood)."""
        return np.log(np.maximum(probs.mean(axis=0), EPS))

    def _fit(self, answers: Answers, gold: Gold) -> Posterior:
        if not fits_dense(answers.n_items, answers.n_labels):
            raise ConfigError(
                f"{answers.n_labels} labels over {answers.n_items} items are too many for per-worker confusion "
                "matrices; use TaxonomySkillModel (method 'taxonomy')"
            )
        pairs = AnswerPairs(answers)
        soft = SoftVotes(answers, gold) if answers.soft is not None else None
        params: dict[str, np.ndarray] = {}

        def m_step(probs: np.ndarray) -> None:
            params["log_prior"] = self._log_prior(probs)
            params["counts"] = pairs.counts(probs)
            params["errors"] = self._pair_probs(pairs, params["counts"], answers.n_workers)

        def log_likelihood() -> np.ndarray:
            log_post = pairs.item_log_likelihood(np.log(params["errors"]))
            log_post += params["log_prior"].astype(log_post.dtype)
            return log_post

        objective = None
        if self.stopping == "crowdkit":
            answers_per_item = np.asarray(pairs.incidence.sum(axis=1)).ravel()

            def objective(probs: np.ndarray) -> float:
                # crowd-kit 1.4.2's DawidSkene "ELBO": evaluated after the M-step on the new
                # posterior, with the log prior counted once per *answer* (not per item).
                m_step(probs)
                joint = pairs.item_log_likelihood(np.log(params["errors"]))
                joint += answers_per_item[:, None] * params["log_prior"]
                clipped = np.maximum(probs, EPS)
                entropy = -(clipped * np.log(clipped)).sum()
                return float(((probs * joint).sum() + entropy) / max(answers.n_answers, 1))

        probs, self.loss_history_ = run_em(
            vote_posterior(answers, gold).dense().astype(np.float32),
            m_step,
            log_likelihood,
            gold,
            n_iter=self.n_iter,
            tol=self.tol,
            n_answers=answers.n_answers,
            soft=soft,
            objective=objective,
        )
        self.n_iter_ = len(self.loss_history_)
        self._scoring = _PairScoring.of(pairs, params, answers, soft, self._prior_counts(pairs, params["counts"]))
        labels = answers.labels.labels
        self.priors_ = pd.Series(np.exp(params["log_prior"]), index=pd.Index(labels, name="label"), name="prior")
        index = pd.MultiIndex.from_arrays(
            [answers.workers[pairs.worker], answers.labels.decode(pairs.label)], names=["worker", "label"]
        )
        self.errors_ = pd.DataFrame(params["errors"], index=index, columns=pd.Index(labels, name="true_label"))
        skills = self._skills(answers, pairs, probs)
        if soft is not None:
            skills = np.where(np.isnan(skills), soft.agreement(probs, answers.n_workers), skills)
        self.skills_ = self._worker_series(skills)
        soft_workers = soft.soft_workers if soft is not None else np.empty(0, dtype=np.int32)
        self.temperatures_ = pd.Series(
            soft.alpha[soft_workers] if soft is not None else np.empty(0),
            index=answers.workers[soft_workers].rename("worker"),
            name="temperature",
        )
        return Posterior(probs)

    def score(self, answers: Answers, *, skill: np.ndarray | None = None) -> CandidatePosterior:
        """The posterior of the items of ``answers`` under the fitted confusion matrices (one
        E-step, no refit). ``answers`` must use the fitted code tables (``Answers.subset``); a
        (worker, label) pair the fit never saw, e.g. a new worker's, gets the pooled confusion of
        all workers. ``skill`` is accepted for the interface of ``TaxonomySkillModel.score`` and
        must be None: these models' skills are their confusion matrices."""
        if skill is not None:
            raise ConfigError(f"{type(self).__name__}.score takes no skill override")
        fitted = self._scoring
        k = answers.n_labels
        log_e = self.answer_log_likelihood(answers)
        log_post = np.full((answers.n_items, k), fitted.log_prior)
        np.add.at(log_post, answers.item, log_e)
        if answers.soft is not None and fitted.alpha is not None:
            soft = SoftVotes(answers, Gold.none())
            soft.alpha[: len(fitted.alpha)] = fitted.alpha
            log_post += soft.item_log_likelihood()
        return CandidatePosterior.from_dense(softmax_rows(log_post))

    def answer_log_likelihood(self, answers: Answers) -> np.ndarray:
        r"""``log P(y = l | z = k)`` of every hard answer of ``answers`` under the fitted model
        (n_answers x K; the fitted code tables, as in ``score``). A (worker, label) pair the fit never
        saw gets its posterior-mean probability under the prior: for a known worker
        $c_{lk} / (n_{wk} + \sum_l c_{lk})$ (prior pseudo-counts $c$, expected answers $n_{wk}$), and
        for an unknown worker (or one without answers or prior) the pooled confusion."""
        fitted = self._scoring
        k = answers.n_labels
        key = answers.worker.astype(np.int64) * k + answers.label
        at = np.minimum(np.searchsorted(fitted.keys, key), len(fitted.keys) - 1)
        worker = np.minimum(answers.worker, len(fitted.worker_totals) - 1)
        known = (answers.worker < len(fitted.worker_totals))[:, None]
        totals = fitted.worker_totals[worker] + fitted.prior_counts.sum(axis=0)
        known = known & (totals > 0)  # a worker without answers or prior answers as the pool
        unseen_known = fitted.prior_counts[answers.label] / np.maximum(totals, EPS)
        unseen_pair = np.log(np.maximum(np.where(known, unseen_known, fitted.pooled[answers.label]), EPS))
        return np.where((fitted.keys[at] == key)[:, None], fitted.log_errors[at], unseen_pair)


@dataclass(frozen=True)
class _PairScoring:
    """What ``score`` needs of a fit: the log confusion row of every fitted (worker, label) pair
    (sorted by ``worker * K + label``); for pairs the fit never saw, the pooled confusion of all
    workers (label x class), each worker's expected answers per true class and the prior
    pseudo-counts (label x class; see ``answer_log_likelihood``); the log class prior and the soft
    temperatures."""

    keys: np.ndarray
    log_errors: np.ndarray
    pooled: np.ndarray
    worker_totals: np.ndarray
    prior_counts: np.ndarray
    log_prior: np.ndarray
    alpha: np.ndarray | None

    @classmethod
    def of(
        cls,
        pairs: AnswerPairs,
        params: dict,
        answers: Answers,
        soft: SoftVotes | None,
        prior_counts: np.ndarray,
    ) -> _PairScoring:
        k = answers.n_labels
        return cls(
            keys=pairs.worker.astype(np.int64) * k + pairs.label,
            log_errors=np.log(params["errors"]),
            pooled=pooled_confusion(pairs, params["counts"]),
            worker_totals=pairs.per_worker(params["counts"]),
            prior_counts=prior_counts,
            log_prior=params["log_prior"],
            alpha=soft.alpha.copy() if soft is not None else None,
        )


class DawidSkene(_PairEM):
    r"""Dawid-Skene model: worker $w$ answers $l$ for an item of true class $k$ with probability
    $e^w_{kl}$ (a full $K \times K$ confusion matrix per worker); classes have prior $\pi_k$.

    $$P(z_i = k \mid y) \propto \pi_k \prod_{w \in W_i} e^w_{k, y_{iw}}$$

    MAP EM from the majority-vote posterior. Every confusion row has a Dirichlet prior of $s$
    pseudo-answers (``prior_strength``, default $2K$: two per cell on average),
    $e^w_{k\cdot} \sim \operatorname{Dir}(1 + s\,m_{k\cdot})$, centred on a stated prior accuracy $a$
    (``prior_accuracy``, default .7), $m_{kk} = a$, with the wrong answers' share $1 - a$ spread
    as the crowd spreads its errors on class $k$ (``prior_errors="crowd"``, the default):
    $$m_{kl} = (1 - a)\,\frac{\bar e_{kl}}{\sum_{l' \ne k} \bar e_{kl'}}, \qquad l \ne k,$$
    where $\bar e$ is the pooled confusion of all workers (the distribution of all answers given on
    items of class $k$), re-estimated at every M-step; ``prior_errors="uniform"``:
    $m_{kl} = (1 - a)/(K - 1)$. The M-step sets $\pi$ to the mean posterior and takes the
    posterior mode of each row,
    $$\hat e^w_{kl} = \frac{\sum_{i: y_{iw} = l} P(z_i = k) + s\,m_{kl}}{\sum_{i \in I_w} P(z_i = k) + s};$$
    the E-step applies Bayes' rule. Gold items stay clamped to their true labels; soft answers vote
    through ``SoftVotes``.

    Why a prior. The maximum-likelihood fit (``prior_strength=0``, crowd-kit's) gives a worker
    who answered a class twice, both times alike, a confusion row of exactly 0 and 1: one answer of
    theirs then outvotes any number of others. On small sparse crowds, where most workers give a
    handful of answers spread over many classes, that fit falls below majority vote (5-class crowds
    of 300 items, 5 answers each, 110 workers, as in ``tests/test_dawid_skene.py``; mean of 20:
    .84 against majority vote's .90, and .91 with the prior). With many answers per worker the data
    dominate $s$ and the fit is the maximum-likelihood one.

    Why this centre. Workers share their confusions (a relevance grade 1 is taken for a 2 far more
    often than for a 4): a worker with few answers on a class is better assumed to err as the
    crowd does than uniformly (the hierarchical view of H.-C. Kim and Z. Ghahramani, Bayesian
    classifier combination, AISTATS 2012, and of M. Venanzi et al., Community-based Bayesian
    aggregation models for crowdsourcing, WWW 2014). The diagonal stays at the stated $a$: a prior
    centred wholly on $\bar e$ has no anchor and follows the posterior, and on sparse synthetic
    crowds (``synthetic_crowd(500, 3, 200, 4)``) it fell up to 12 points below majority vote. With
    two labels there is one wrong label and the two spreads are the same model. On the public
    crowds with more labels (``bench/results/accuracy.md``, column ds@uniform-errors for the
    other spread) the crowd's spread is the more accurate: zheng_relevance .623 against .614,
    zheng_adult .763 against .754, face .649 against .642, dog .839 both.

    Stopping: ``stopping="likelihood"`` runs until the mean log-likelihood per answer improves by
    less than ``tol``. crowd-kit (1.4.2) stops when its "ELBO" improves by less than ``tol``, but
    that quantity counts the log prior once per answer rather than once per item, so it is not
    EM's objective and can fall; EM then stops after two or three rounds on some data (bluebirds,
    zencrowd, zheng_adult). ``DawidSkene(prior_strength=0, stopping="crowdkit")`` reproduces
    crowd-kit's fit and its answers.

    A. P. Dawid and A. M. Skene. Maximum likelihood estimation of observer error-rates using the
    EM algorithm. *Applied Statistics* 28(1), 1979.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [1, 1, 1, 2, 2, 2], "worker": list("abcabc"), "label": list("xxyyyx")})
    >>> DawidSkene().fit_predict(df).tolist()
    ['x', 'y']

    Fitted: ``labels_``, ``probas_``, ``priors_`` (Series label -> prior), ``errors_`` (frame
    indexed by worker and observed label, a column per true label), ``skills_`` (the mean
    posterior probability of each worker's answers), ``loss_history_`` (mean log-likelihood per
    answer, or crowd-kit's loss), ``n_iter_``.
    """

    def __init__(
        self,
        n_iter: int = 100,
        tol: float = 1e-5,
        stopping: Stopping = "likelihood",
        prior_accuracy: float = 0.7,
        prior_strength: float | None = None,
        prior_errors: Literal["crowd", "uniform"] = "crowd",
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.stopping = stopping
        self.prior_accuracy = prior_accuracy
        self.prior_strength = prior_strength
        self.prior_errors = prior_errors

    def _check_params(self) -> None:
        super()._check_params()
        if not 0 < self.prior_accuracy < 1:
            raise ConfigError(f"prior_accuracy must be in (0, 1), got {self.prior_accuracy!r}")
        if self.prior_strength is not None and not self.prior_strength >= 0:
            raise ConfigError(f"prior_strength must be >= 0 (or None: 2K), got {self.prior_strength!r}")
        if self.prior_errors not in ("crowd", "uniform"):
            raise ConfigError(f"prior_errors must be 'crowd' or 'uniform', got {self.prior_errors!r}")

    def _prior_counts(self, pairs: AnswerPairs, counts: np.ndarray) -> np.ndarray:
        k = counts.shape[1]
        strength = float(2 * k if self.prior_strength is None else self.prior_strength)
        right = np.eye(k, dtype=bool)
        if self.prior_errors == "crowd":
            wrong = np.where(right, 0.0, pooled_confusion(pairs, counts))
            wrong /= np.maximum(wrong.sum(axis=0, keepdims=True), EPS)
        else:
            wrong = np.full((k, k), 1.0 / max(k - 1, 1))
        return strength * np.where(right, self.prior_accuracy, (1 - self.prior_accuracy) * wrong)

    def _pair_probs(self, pairs: AnswerPairs, counts: np.ndarray, n_workers: int) -> np.ndarray:
        prior = self._prior_counts(pairs, counts)
        numerator = np.maximum(counts + prior[pairs.label], EPS)
        totals = pairs.per_worker(np.maximum(counts, EPS)) + prior.sum(axis=0)
        return numerator / totals[pairs.worker]


def pooled_confusion(pairs: AnswerPairs, counts: np.ndarray) -> np.ndarray:
    r"""The crowd's confusion $\bar e$ as a (observed label x true class) array: column k is the
    distribution of all answers given on items of class k (expected counts ``counts``)."""
    k = counts.shape[1]
    pooled = np.zeros((k, k))
    np.add.at(pooled, pairs.label, counts)
    pooled += EPS
    return pooled / pooled.sum(axis=0, keepdims=True)


class _SymmetricErrorEM(_PairEM):
    r"""Models in which a wrong answer is uniform over the $K - 1$ wrong labels: with accuracy
    $s_{wk}$ of worker $w$ on true class $k$,
    $P(y_{iw} = l \mid z_i = k) = s_{wk}$ if $l = k$, else $(1 - s_{wk}) / (K - 1)$.

    M-step (MAP under a $\mathrm{Beta}(a, b)$ prior on every accuracy, $a, b \ge 1$): with
    $c_{wk} = \sum_{i \in I_w} P(z_i = k)\,[y_{iw} = k]$ (expected correct answers) and
    $n_{wk} = \sum_{i \in I_w} P(z_i = k)$ (expected answers on class-$k$ items),
    $$\hat s_{wk} = \frac{c_{wk} + a - 1}{n_{wk} + a + b - 2}.$$
    ``skill_prior = (a - 1, b - 1)``: pseudo-answers, right and wrong, every worker starts with.
    """

    pooled_classes: bool = False

    def _check_params(self) -> None:
        super()._check_params()
        if self.class_prior not in ("learn", "uniform"):
            raise ConfigError(f"class_prior must be 'learn' or 'uniform', got {self.class_prior!r}")
        prior = self.skill_prior
        if len(prior) != 2 or not all(np.isfinite(x) and x >= 0 for x in prior):
            raise ConfigError(f"skill_prior must be two non-negative pseudo-counts (right, wrong), got {prior!r}")

    def _log_prior(self, probs: np.ndarray) -> np.ndarray:
        if self.class_prior == "uniform":
            return np.full(probs.shape[1], -np.log(probs.shape[1]))
        return super()._log_prior(probs)

    def _accuracies(self, pairs: AnswerPairs, counts: np.ndarray, n_workers: int) -> np.ndarray:
        """``s[w, k]`` (n_workers x K); pooled over k (one column) for the one-coin model."""
        correct_mass = counts[np.arange(len(pairs)), pairs.label]
        correct = np.zeros((n_workers, counts.shape[1]))
        np.add.at(correct, (pairs.worker, pairs.label), correct_mass)
        total = pairs.per_worker(counts)
        if self.pooled_classes:
            correct, total = correct.sum(axis=1, keepdims=True), total.sum(axis=1, keepdims=True)
        right, wrong = self.skill_prior
        return (correct + right) / np.maximum(total + right + wrong, EPS)

    def answer_log_likelihood(self, answers: Answers) -> np.ndarray:
        r"""``log P(y = l | z = k)`` of every hard answer of ``answers`` (fitted code tables):
        $\log \hat s_{wk}$ if $l = k$, else $\log \frac{1 - \hat s_{wk}}{K - 1}$; a worker the fit never
        saw has the prior's accuracy (the mode of the Beta prior)."""
        k = answers.n_labels
        fitted = self._fitted_accuracy
        right, wrong = self.skill_prior
        prior = (right / (right + wrong)) if right + wrong > 0 else 1.0 / k
        known = answers.worker < len(fitted)
        accuracy = np.where(known[:, None], fitted[np.minimum(answers.worker, len(fitted) - 1)], prior)
        accuracy = np.clip(np.broadcast_to(accuracy, (answers.n_answers, k)), EPS, 1 - EPS)
        same = answers.label[:, None] == np.arange(k)
        return np.log(np.where(same, accuracy, (1 - accuracy) / max(k - 1, 1)))

    def _pair_probs(self, pairs: AnswerPairs, counts: np.ndarray, n_workers: int) -> np.ndarray:
        n_labels = counts.shape[1]
        accuracy = np.clip(self._accuracies(pairs, counts, n_workers), EPS, 1 - EPS)
        self._fitted_accuracy = accuracy  # the parameters behind errors_, reported as skills
        accuracy = np.broadcast_to(accuracy, (n_workers, n_labels))[pairs.worker]
        probs = (1.0 - accuracy) / max(n_labels - 1, 1)
        rows = np.arange(len(pairs))
        probs[rows, pairs.label] = accuracy[rows, pairs.label]
        return np.maximum(probs, EPS)


class OneCoinDawidSkene(_SymmetricErrorEM):
    r"""One-coin Dawid-Skene: worker $w$ is right with probability $s_w$ whatever the true class,
    and a wrong answer is uniform over the other $K - 1$ labels:

    $$P(y_{iw} = l \mid z_i = k) = \begin{cases} s_w & l = k \\ \frac{1 - s_w}{K - 1} & l \ne k
    \end{cases}, \qquad P(z_i = k \mid y) \propto \pi_k \prod_{w \in W_i} P(y_{iw} \mid z_i = k).$$

    EM from the majority-vote posterior. M-step: $s_w$ is the MAP estimate under a
    $\mathrm{Beta}(a, b)$ prior,
    $$\hat s_w = \frac{\sum_{i \in I_w} P(z_i = y_{iw}) + a - 1}{|I_w| + a + b - 2},$$
    with ``skill_prior = (a - 1, b - 1)`` (default (2, 1): every worker starts as if they had
    answered three control questions and got two right, prior mode 2/3, the "better than chance"
    prior of Liu, Peng and Ihler, NIPS 2012), and the class prior $\pi$ is uniform
    (``class_prior="uniform"``; ``"learn"`` takes the mean posterior, as crowd-kit does).

    Why crowd-kit's one-coin model collapses (1.4.2: .194 on zheng_relevance, .583 on bluebirds)
    and why the uniform class prior is the fix. Under symmetric errors the model's answer
    frequencies are $P(y = l) = \pi_l \bar s + (1 - \pi_l)(1 - \bar s)/(K - 1)$: the only way it can
    explain that one label is answered more often than another is a larger prior for that class.
    Real crowds are biased (bluebirds: workers answer class 0 62% of the time, truth is 56%;
    relevance: grade 1 is 37% of answers and 19% of truth). With $\pi$ learned, the prior of the
    most answered class grows, items with weak evidence move to it, the workers who gave that
    answer look more accurate and the others less, which moves more items: a positive feedback
    that ends at $\pi \approx 1$ (bluebirds $\pi_0 = .97$; relevance $\pi_1 = .84$, $\pi_2 = 0$),
    a maximum of the likelihood that labels almost everything with one class. It is not a
    numerical accident: a mild Beta prior on $s_w$ alone (e.g. (1, 1)) reaches the same fixed
    point. A uniform $\pi$ removes the feedback (the models that need class
    biases, ``ClassConditionalDawidSkene`` and ``DawidSkene``, have per-class parameters to
    absorb them). Its price: where the classes are unbalanced and the crowd is not biased, uniform
    is simply the wrong prior (zencrowd, 78% of items class 0: .830, against .853 with the prior
    learned; bench column onecoin@learn-prior), and the held-out likelihood of the answers cannot
    tell the two cases apart: it prefers the runaway fits (zheng_product, zheng_relevance,
    zheng_adult, bluebirds) and the uniform prior on zencrowd. The Beta prior keeps $\hat s_w$ off
    0 and 1 for workers with few answers, whose single answer would otherwise move the odds by
    $10^{10}$ (crowd-kit clips at $10^{-10}$).
    ``OneCoinDawidSkene(skill_prior=(0, 0), class_prior="learn", stopping="crowdkit")`` gives
    crowd-kit's answers exactly.

    Y. Zhang, X. Chen, D. Zhou and M. I. Jordan. Spectral methods meet EM: a provably optimal
    algorithm for crowdsourcing. *JMLR* 17, 2016 (the one-coin model, section 2).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [1, 1, 1, 2, 2, 2], "worker": list("abcabc"), "label": list("xxyyyx")})
    >>> OneCoinDawidSkene().fit_predict(df).tolist()
    ['x', 'y']

    Fitted: ``labels_``, ``probas_``, ``priors_``, ``errors_`` (as ``DawidSkene``'s, built from
    the accuracies), ``skills_`` ($\hat s_w$), ``loss_history_``, ``n_iter_``.
    """

    pooled_classes = True

    def __init__(
        self,
        n_iter: int = 100,
        tol: float = 1e-5,
        skill_prior: tuple[float, float] = (2.0, 1.0),
        class_prior: Literal["uniform", "learn"] = "uniform",
        stopping: Stopping = "likelihood",
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.skill_prior = skill_prior
        self.class_prior = class_prior
        self.stopping = stopping

    def _skills(self, answers: Answers, pairs: AnswerPairs, probs: np.ndarray) -> np.ndarray:
        accuracy = self._fitted_accuracy[:, 0]
        return np.where(answers.answers_per_worker() > 0, accuracy, np.nan)


class ClassConditionalDawidSkene(_SymmetricErrorEM):
    r"""Class-conditional Dawid-Skene: worker $w$ is right with probability $s_{wk}$ on an item of
    true class $k$, and a wrong answer is uniform over the other $K - 1$ labels:

    $$P(y_{iw} = l \mid z_i = k) = \begin{cases} s_{wk} & l = k \\ \frac{1 - s_{wk}}{K - 1} & l \ne k
    \end{cases}, \qquad P(z_i = k \mid y) \propto \pi_k \prod_{w \in W_i} P(y_{iw} \mid z_i = k).$$

    Between the one-coin model (one parameter per worker) and full Dawid-Skene ($K(K-1)$): $K$
    parameters, the diagonal of the confusion matrix, so a worker who is reliable on some classes
    and not others is modelled, with far fewer answers than a full matrix needs.

    EM from the majority-vote posterior. M-step: $\pi$ is the mean posterior and, with a
    $\mathrm{Beta}(a, b)$ prior on each accuracy (``skill_prior = (a - 1, b - 1)``),
    $$\hat s_{wk} = \frac{\sum_{i \in I_w} P(z_i = k)\,[y_{iw} = k] + a - 1}
    {\sum_{i \in I_w} P(z_i = k) + a + b - 2}.$$
    The prior keeps accuracies off 0 and 1 where a worker saw few items of a class (see
    ``OneCoinDawidSkene`` for what happens without it).

    A. P. Dawid and A. M. Skene, *Applied Statistics* 28(1), 1979, with the diagonal
    parametrisation of the confusion matrix as in Y. Zheng, G. Li, Y. Li, C. Shan and R. Cheng,
    Truth inference in crowdsourcing: is the problem solved? *PVLDB* 10(5), 2017.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [1, 1, 1, 2, 2, 2], "worker": list("abcabc"), "label": list("xxyyyx")})
    >>> ClassConditionalDawidSkene().fit_predict(df).tolist()
    ['x', 'y']

    Fitted: ``labels_``, ``probas_``, ``priors_``, ``errors_``, ``class_skills_`` (frame worker x
    true label: $\hat s_{wk}$), ``skills_`` (accuracy on a random item, $\sum_k \pi_k \hat s_{wk}$),
    ``loss_history_``, ``n_iter_``.
    """

    def __init__(
        self,
        n_iter: int = 100,
        tol: float = 1e-5,
        skill_prior: tuple[float, float] = (2.0, 1.0),
        class_prior: Literal["learn", "uniform"] = "learn",
        stopping: Stopping = "likelihood",
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.skill_prior = skill_prior
        self.class_prior = class_prior
        self.stopping = stopping

    def _skills(self, answers: Answers, pairs: AnswerPairs, probs: np.ndarray) -> np.ndarray:
        accuracy = self._fitted_accuracy
        self.class_skills_ = pd.DataFrame(
            accuracy, index=self.workers_, columns=pd.Index(answers.labels.labels, name="true_label")
        )
        overall = accuracy @ self.priors_.to_numpy()
        return np.where(answers.answers_per_worker() > 0, overall, np.nan)
