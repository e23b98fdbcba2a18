"""The aggregator contract (crowd-kit's and scikit-learn's): parameters in ``__init__``,
``fit(data, true_labels=None)`` returning ``self``, results in trailing-underscore attributes."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from crowdloop.aggregation.posterior import Posterior
from crowdloop.answers import Answers, as_answers
from crowdloop.errors import ConfigError
from crowdloop.labels import LabelSpace

TrueLabels = Mapping[Hashable, Hashable] | pd.Series | None


@dataclass(frozen=True)
class Gold:
    """Gold (true) labels as codes: ``items[j]`` has true label ``labels[j]``."""

    items: np.ndarray
    labels: np.ndarray

    @classmethod
    def none(cls) -> Gold:
        return cls(np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int32))

    def __len__(self) -> int:
        return len(self.items)


class Aggregator(BaseEstimator):
    """Base of every truth-inference model.

    ``fit`` takes ``Answers`` (the fast path) or a crowd-kit frame with ``task``, ``worker`` and
    ``label`` columns, and optional ``true_labels`` (gold: task -> label), which clamp their items.
    Fitted: ``posterior_`` (codes), ``labels_`` (Series task -> label), ``probas_`` (DataFrame
    task x label; sparse for large label spaces), ``skills_`` (Series worker -> skill).
    """

    def fit(self, data: Answers | pd.DataFrame, true_labels: TrueLabels = None) -> Aggregator:
        self._check_params()
        answers = as_answers(data)
        gold = Gold(*answers.encode_gold(true_labels))
        self.label_space_: LabelSpace = answers.labels
        self.items_: pd.Index = answers.items.rename("task")
        self.workers_: pd.Index = answers.workers.rename("worker")
        self.posterior_: Posterior = self._fit(answers, gold)
        codes = self.posterior_.labels()
        labels = pd.Series(self.label_space_.decode(np.maximum(codes, 0)), index=self.items_, name="agg_label")
        self.labels_: pd.Series = labels.where(codes >= 0)
        return self

    def fit_predict(self, data: Answers | pd.DataFrame, true_labels: TrueLabels = None) -> pd.Series:
        return self.fit(data, true_labels).labels_

    def fit_predict_proba(self, data: Answers | pd.DataFrame, true_labels: TrueLabels = None) -> pd.DataFrame:
        return self.fit(data, true_labels).probas_

    @property
    def probas_(self) -> pd.DataFrame:
        """Posterior as a frame (task x label); a sparse frame when the posterior is sparse."""
        columns = pd.Index(self.label_space_.labels, name="label")
        if self.posterior_.is_sparse:
            return pd.DataFrame.sparse.from_spmatrix(self.posterior_.probs, index=self.items_, columns=columns)
        return pd.DataFrame(self.posterior_.probs, index=self.items_, columns=columns)

    def _fit(self, answers: Answers, gold: Gold) -> Posterior:
        raise NotImplementedError

    def _check_params(self) -> None:
        """Validate the common parameters in one place (subclasses extend)."""
        n_iter = getattr(self, "n_iter", 1)
        if not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
            raise ConfigError(f"n_iter must be a positive integer, got {n_iter!r}")
        tol = getattr(self, "tol", 0.0)
        if not np.isfinite(tol) or tol < 0:
            raise ConfigError(f"tol must be a non-negative number, got {tol!r}")

    def _worker_series(self, values: np.ndarray, name: str = "skill") -> pd.Series:
        return pd.Series(values, index=self.workers_, name=name)


def expected_accuracy(answers: Answers, probs: np.ndarray, default: float = np.nan) -> np.ndarray:
    """Per worker, the mean posterior probability of the labels they gave (their accuracy as the
    model sees it); ``default`` for workers without hard answers."""
    agree = probs[answers.item, answers.label]
    counts = np.bincount(answers.worker, minlength=answers.n_workers)
    sums = np.bincount(answers.worker, weights=agree, minlength=answers.n_workers)
    return np.divide(sums, counts, out=np.full(answers.n_workers, default), where=counts > 0)
