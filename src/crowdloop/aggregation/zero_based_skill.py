"""Zero-Based Skill: skill-weighted majority vote with skills learned by gradient steps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crowdloop.aggregation.base import Aggregator, Gold
from crowdloop.aggregation.posterior import Posterior
from crowdloop.aggregation.voting import vote_posterior
from crowdloop.answers import Answers, as_answers
from crowdloop.errors import ConfigError, InputError


class ZeroBasedSkill(Aggregator):
    r"""Zero-Based Skill (ZBS): a weighted majority vote whose weights are the workers' skills,
    learned by gradient descent on $\frac12 \sum_w (s_w - a_w)^2$ with $a_w$ the worker's
    accuracy against the current weighted vote $\hat z$:

    $$\hat z_i = \arg\max_k \sum_{w} s_w [y_{iw} = k], \qquad
    s_w \leftarrow s_w + \eta_t \Big(\frac{1}{|I_w|}\sum_{i \in I_w} [y_{iw} = \hat z_i] - s_w\Big),$$

    starting from $s_w = 1/K + \epsilon$ (a plain majority vote), with the learning rate $\eta_t$
    starting at ``lr_init`` and multiplied by ``lr_reduce_factor`` every ``lr_steps_to_reduce``
    iterations; at most ``n_iter`` iterations, stopping early once no skill moves by more than
    ``tol``. The labels are the vote with the final skills (crowd-kit's ``ZeroBasedSkill``, a
    heuristic without a paper). Gold items vote for their true labels, so workers' accuracies are
    measured on them too; soft answers vote with their probability rows times their worker's skill,
    and a soft worker's accuracy is the mean probability it gives the voted label.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [1, 1, 1, 2, 2, 2], "worker": list("abcabc"), "label": list("xxyyyx")})
    >>> ZeroBasedSkill().fit_predict(df).tolist()
    ['x', 'y']

    Fitted: ``labels_``, ``probas_`` (the normalised weighted votes), ``skills_`` (Series worker ->
    skill), ``n_iter_``. ``predict(data)`` and ``predict_proba(data)`` vote on new answers with the
    fitted skills (every worker must be known), as in crowd-kit.
    """

    def __init__(
        self,
        n_iter: int = 100,
        lr_init: float = 1.0,
        lr_steps_to_reduce: int = 20,
        lr_reduce_factor: float = 0.5,
        eps: float = 1e-5,
        tol: float = 1e-9,
    ) -> None:
        self.n_iter = n_iter
        self.lr_init = lr_init
        self.lr_steps_to_reduce = lr_steps_to_reduce
        self.lr_reduce_factor = lr_reduce_factor
        self.eps = eps
        self.tol = tol

    def _check_params(self) -> None:
        super()._check_params()
        if not 0 < self.lr_init <= 1:
            raise ConfigError(f"lr_init must be in (0, 1], got {self.lr_init!r}")
        if not isinstance(self.lr_steps_to_reduce, (int, np.integer)) or self.lr_steps_to_reduce < 1:
            raise ConfigError(f"lr_steps_to_reduce must be a positive integer, got {self.lr_steps_to_reduce!r}")
        if not 0 < self.lr_reduce_factor <= 1:
            raise ConfigError(f"lr_reduce_factor must be in (0, 1], got {self.lr_reduce_factor!r}")

    def _fit(self, answers: Answers, gold: Gold) -> Posterior:
        n_present = max(len(np.unique(answers.label)), 1)
        skills = np.full(answers.n_workers, 1.0 / n_present + self.eps)
        rate = self.lr_init
        self.n_iter_ = 0
        for iteration in range(1, self.n_iter + 1):
            if iteration % self.lr_steps_to_reduce == 0:
                rate *= self.lr_reduce_factor
            labels = vote_posterior(answers, gold, skills).labels()
            accuracy = _accuracy(answers, labels)
            update = np.where(np.isnan(accuracy), 0.0, rate * (np.nan_to_num(accuracy) - skills))
            skills = skills + update
            self.n_iter_ = iteration
            if np.abs(update).max(initial=0.0) <= self.tol:
                break
        self.skills_ = self._worker_series(skills)
        return vote_posterior(answers, gold, skills)

    def predict_proba(self, data: Answers | pd.DataFrame) -> pd.DataFrame:
        """The weighted vote on ``data`` with the fitted skills (task x label)."""
        answers = as_answers(data, labels=self.label_space_)
        skills = self.skills_.reindex(answers.workers)
        unknown = skills.index[skills.isna().to_numpy()]
        if len(unknown):
            raise InputError(
                f"worker {unknown[0]!r} has no fitted skill",
                hint="Fit on answers that include every worker you predict for.",
            )
        probs = vote_posterior(answers, Gold.none(), skills.to_numpy()).dense()
        return pd.DataFrame(
            probs, index=answers.items.rename("task"), columns=pd.Index(self.label_space_.labels, name="label")
        )

    def predict(self, data: Answers | pd.DataFrame) -> pd.Series:
        """The most voted label of every task of ``data`` with the fitted skills."""
        probs = self.predict_proba(data)
        codes = Posterior(probs.to_numpy()).labels()
        labels = pd.Series(self.label_space_.decode(np.maximum(codes, 0)), index=probs.index, name="agg_label")
        return labels.where(codes >= 0)


def _accuracy(answers: Answers, labels: np.ndarray) -> np.ndarray:
    """Per worker, the (weighted) share of answers equal to ``labels[item]``; a soft answer counts
    the probability it gives that label. Items without a label (-1) are left out; NaN for a
    worker with nothing counted."""
    voted = labels >= 0
    keep = voted[answers.item]
    weight = (np.ones(answers.n_answers) if answers.weight is None else answers.weight) * keep
    agree = weight * (answers.label == labels[answers.item])
    sums = np.bincount(answers.worker, weights=agree, minlength=answers.n_workers)
    counts = np.bincount(answers.worker, weights=weight, minlength=answers.n_workers)
    if answers.soft is not None:
        soft = answers.soft
        rows = np.flatnonzero(voted[soft.item])
        given = np.asarray(soft.probs[rows, labels[soft.item[rows]]]).ravel()
        sums += np.bincount(soft.worker[rows], weights=given, minlength=answers.n_workers)
        counts += np.bincount(soft.worker[rows], minlength=answers.n_workers)
    return np.divide(sums, counts, out=np.full(answers.n_workers, np.nan), where=counts > 0)
