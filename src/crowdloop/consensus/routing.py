"""Per-branch skill and routing: send an item whose branch is settled but whose leaf is not to the
annotators who are good in that branch."""

from __future__ import annotations

import numpy as np

from crowdloop.answers import Answers
from crowdloop.errors import ConfigError
from crowdloop.labels import Taxonomy


class BranchSkills:
    r"""Accuracy of each worker in each top-level branch of a taxonomy.

    With $c_{wb}$ right answers of $n_{wb}$ on items of branch $b$ (against gold or the accepted
    labels) and the worker's overall accuracy $s_w$, the estimate shrinks towards $s_w$ with
    ``strength`` pseudo-answers: $s_{wb} = (c_{wb} + m s_w) / (n_{wb} + m)$ (empirical Bayes, so a
    branch seen twice says little). Memory: workers x top-level branches (21 in Google's taxonomy).
    """

    def __init__(self, strength: float = 5.0) -> None:
        if not strength > 0:
            raise ConfigError(f"strength must be > 0, got {strength!r}")
        self.strength = strength

    def fit(self, answers: Answers, labels: np.ndarray, overall: np.ndarray) -> BranchSkills:
        """``labels[i]``: the true or accepted label code of item i (-1: unknown); ``overall``:
        each worker's accuracy."""
        taxonomy = answers.labels
        if not isinstance(taxonomy, Taxonomy):
            raise ConfigError("branch skills need a taxonomy")
        tops = np.flatnonzero(taxonomy.depth == 1)
        branch_of = np.full(len(taxonomy), -1)
        branch_of[tops] = np.arange(len(tops))
        truth = np.asarray(labels)[answers.item]
        known = truth >= 0
        branch = branch_of[taxonomy.ancestor_at(np.maximum(truth, 0), 1)]
        key = answers.worker[known].astype(np.int64) * len(tops) + branch[known]
        size = answers.n_workers * len(tops)
        right = np.bincount(key, weights=taxonomy.credit(answers.label[known], truth[known]), minlength=size)
        total = np.bincount(key, minlength=size)
        prior = np.repeat(np.asarray(overall, dtype=np.float64), len(tops))
        self.skill_ = ((right + self.strength * prior) / (total + self.strength)).reshape(answers.n_workers, len(tops))
        self.branches_ = tops
        self._branch_of = branch_of
        return self

    def branch(self, taxonomy: Taxonomy, codes: np.ndarray) -> np.ndarray:
        """The top-level branch index of each label code."""
        return self._branch_of[taxonomy.ancestor_at(np.asarray(codes), 1)]

    def best_workers(self, branch: int, workers: np.ndarray, k: int = 1) -> np.ndarray:
        """The ``k`` workers among ``workers`` (codes) most accurate in ``branch``, best first."""
        workers = np.asarray(workers)
        order = np.argsort(-self.skill_[workers, branch], kind="stable")
        return workers[order[:k]]
