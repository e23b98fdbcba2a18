"""Voting aggregators: majority vote and worker-agreement-weighted vote (Wawa)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crowdloop.aggregation.base import Aggregator, Gold
from crowdloop.aggregation.posterior import Posterior, clamp_gold, fits_dense, normalize_rows
from crowdloop.answers import Answers


def vote_scores(answers: Answers, worker_weight: np.ndarray | None = None) -> np.ndarray | sp.csr_matrix:
    """Sum of votes per (item, label): each hard answer adds its worker's weight (times the answer's
    own weight), each soft answer adds its probability row times its worker's weight.
    Dense when it fits (``fits_dense``), else CSR."""
    w = np.ones(answers.n_workers) if worker_weight is None else np.asarray(worker_weight, dtype=np.float64)
    weight = w[answers.worker] if answers.weight is None else w[answers.worker] * answers.weight
    shape = (answers.n_items, answers.n_labels)
    dense = fits_dense(*shape)
    if dense:  # one bincount over cells, no sparse matrix in between
        cells = answers.item.astype(np.int64) * shape[1] + answers.label
        scores = np.bincount(cells, weights=weight, minlength=shape[0] * shape[1]).reshape(shape)
    else:
        scores = sp.csr_matrix((weight, (answers.item, answers.label)), shape=shape)
    if answers.soft is not None:
        soft = answers.soft
        rows = sp.csr_matrix((w[soft.worker], (soft.item, np.arange(len(soft)))), shape=(answers.n_items, len(soft)))
        scores = scores + rows @ soft.probs
    return np.asarray(scores) if dense else scores.tocsr()


def vote_posterior(answers: Answers, gold: Gold, worker_weight: np.ndarray | None = None) -> Posterior:
    probs = normalize_rows(vote_scores(answers, worker_weight))
    if not sp.issparse(probs):
        clamp_gold(probs, gold.items, gold.labels)
    elif len(gold):
        probs = probs.tolil()
        probs[gold.items] = 0.0
        probs[gold.items, gold.labels] = 1.0
        probs = probs.tocsr()
    return Posterior(probs)


def agreement_with(answers: Answers, labels: np.ndarray) -> np.ndarray:
    """Per worker, the share of their hard answers equal to ``labels[item]`` (NaN without answers)."""
    agree = (answers.label == labels[answers.item]).astype(np.float64)
    counts = np.bincount(answers.worker, minlength=answers.n_workers)
    sums = np.bincount(answers.worker, weights=agree, minlength=answers.n_workers)
    return np.divide(sums, counts, out=np.full(answers.n_workers, np.nan), where=counts > 0)


class MajorityVote(Aggregator):
    r"""Majority vote: $P(z_i = k) \propto \sum_{w} [y_{iw} = k]$ (one vote per answer).

    Ties go to the first label in label-space order (the lowest code; sorted labels by default).
    crowd-kit 1.4.2 does the same with pandas < 3; with pandas >= 3 its ``DataFrame.value_counts``
    keeps data order and crowd-kit's tie goes to the label seen first in the answers, so the two
    differ only on tied items and only there. Soft answers vote with their probability rows.
    ``skills_`` is each worker's agreement with the majority.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [1, 1, 1], "worker": ["a", "b", "c"], "label": ["x", "y", "x"]})
    >>> MajorityVote().fit_predict(df).tolist()
    ['x']
    """

    def _fit(self, answers: Answers, gold: Gold) -> Posterior:
        posterior = vote_posterior(answers, gold)
        self.skills_ = self._worker_series(agreement_with(answers, posterior.labels()))
        return posterior


class Wawa(Aggregator):
    r"""Worker Agreement with Aggregate (Wawa): majority vote weighted by each worker's agreement
    with the plain majority, $s_w = \frac{1}{|I_w|}\sum_{i \in I_w} [y_{iw} = \hat z^{MV}_i]$,
    then $P(z_i = k) \propto \sum_w s_w [y_{iw} = k]$ (Appen's "trust score" heuristic).
    """

    def _fit(self, answers: Answers, gold: Gold) -> Posterior:
        majority = vote_posterior(answers, gold)
        skills = agreement_with(answers, majority.labels())
        self.skills_ = self._worker_series(skills)
        return vote_posterior(answers, gold, np.nan_to_num(skills, nan=1.0))
