"""Any probabilistic classifier in place of the default model, or probabilities computed elsewhere.

Wherever crowdloop uses a model (cross-fitting, pre-labels, auto-labeling, retraining) it needs only
the scikit-learn classifier contract: ``fit(X, y[, sample_weight])`` returning the model,
``predict_proba(X)`` with one column per entry of ``classes_``. ``TextClassifier``, a scikit-learn
``Pipeline`` ending in ``LogisticRegression`` or a wrapped transformer all qualify.
``PrecomputedProba`` turns a table of probabilities (from another system) into such a model: it
looks rows up by key and learns nothing.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import has_fit_parameter

from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import LabelSpace
from crowdloop.models.oof import align_proba
from crowdloop.models.text import check_sample_weight

TOLERANCE = 1e-3
"""How far from 1 a row of probabilities may sum."""


@runtime_checkable
class ProbabilisticClassifier(Protocol):
    """What crowdloop needs of a model: scikit-learn's ``fit`` / ``predict_proba`` / ``classes_``."""

    def fit(self, X: Any, y: Any, *args: Any, **kwargs: Any) -> Any: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...


def check_classifier(model: object) -> ProbabilisticClassifier:
    """``model`` itself when it has callable ``fit`` and ``predict_proba``; otherwise ``ConfigError``."""
    missing = [name for name in ("fit", "predict_proba") if not callable(getattr(model, name, None))]
    if missing:
        raise ConfigError(
            f"{type(model).__name__} cannot be the model: it has no {' or '.join(missing)}",
        )
    return model  # type: ignore[return-value]


def fit_model(
    model: ProbabilisticClassifier,
    texts: Sequence[str] | np.ndarray,
    labels: Sequence[Hashable] | np.ndarray,
    sample_weight: Sequence[float] | np.ndarray | None = None,
) -> ProbabilisticClassifier:
    """``model.fit(texts, labels)``, passing ``sample_weight`` when some weight is not 1 (a model whose
    ``fit`` takes no ``sample_weight`` then raises ``ConfigError``). Returns the fitted model."""
    check_classifier(model)
    if sample_weight is not None:
        weight = check_sample_weight(sample_weight, len(texts))
        if not np.all(weight == 1):
            if not has_fit_parameter(model, "sample_weight"):
                raise ConfigError(
                    f"{type(model).__name__}.fit takes no sample_weight, but the training set is weighted",
                )
            model.fit(texts, labels, sample_weight=weight)
            return model
    model.fit(texts, labels)
    return model


def predict_aligned(
    model: ProbabilisticClassifier, texts: Sequence[str] | np.ndarray, labels: LabelSpace
) -> np.ndarray:
    """A fitted model's probabilities (n, K) on the codes of ``labels`` (``align_proba``), checked:
    finite, non-negative, one row per text, rows summing to 1."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ConfigError(f"{type(model).__name__} has no classes_: fit it first")
    probs = np.asarray(model.predict_proba(texts), dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != len(texts):
        raise InputError(f"the model returned probabilities of shape {probs.shape} for {len(texts)} texts")
    bad = np.flatnonzero(~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
                         | (np.abs(probs.sum(axis=1) - 1) > TOLERANCE))  # fmt: skip
    if bad.size:
        raise InputError("the model's probabilities are not a distribution", rows=(bad + 1).tolist(), unit="row")
    return align_proba(probs, classes, labels)


class PrecomputedProba(ClassifierMixin, BaseEstimator):
    """Probabilities computed elsewhere, as a model: ``predict_proba(keys)`` returns the rows of
    ``table`` (index: item key, e.g. the text or the item id; columns: labels) for those keys.

    ``fit`` checks the table and learns nothing (it ignores ``X`` and ``y``): such probabilities
    come from a model trained elsewhere, so they are only out-of-fold if that model never saw the
    items. A key missing from the table raises ``InputError`` naming it.

    >>> table = pd.DataFrame({"a": [0.9, 0.2], "b": [0.1, 0.8]}, index=["x1", "x2"])
    >>> PrecomputedProba(table).fit(["x1"], ["a"]).predict_proba(["x2", "x1"]).tolist()
    [[0.2, 0.8], [0.9, 0.1]]
    """

    def __init__(self, table: pd.DataFrame | None = None) -> None:
        self.table = table

    @classmethod
    def from_long(
        cls, frame: pd.DataFrame, *, key: str = "task", label: str = "label", probability: str = "probability"
    ) -> PrecomputedProba:
        """From a long frame (one row per key and label; absent pairs are 0)."""
        missing = [c for c in (key, label, probability) if c not in frame.columns]
        if missing:
            raise InputError(f"missing column '{missing[0]}' (columns are: {', '.join(map(str, frame.columns))})")
        table = frame.pivot_table(index=key, columns=label, values=probability, aggfunc="sum", fill_value=0.0)
        return cls(table)

    def fit(self, X: object = None, y: object = None, sample_weight: object = None) -> PrecomputedProba:
        if not isinstance(self.table, pd.DataFrame) or self.table.empty:
            raise InputError("no precomputed probabilities", hint="Give a table: one row per item, a column per label.")
        values = self.table.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1)
                             | (np.abs(values.sum(axis=1) - 1) > TOLERANCE))  # fmt: skip
        if bad.size:
            raise InputError("probabilities are not a distribution (non-negative, summing to 1)",
                             rows=(bad + 1).tolist(), unit="row")  # fmt: skip
        index = pd.Index(self.table.index.astype(str))
        if index.duplicated().any():
            raise InputError(f"key {index[index.duplicated()][0]!r} has two rows of probabilities")
        self.classes_ = np.asarray(self.table.columns, dtype=object)
        self.values_, self.index_ = values, index
        return self

    def predict_proba(self, X: Sequence[Hashable] | np.ndarray) -> np.ndarray:
        keys = pd.Index(np.asarray(X, dtype=object).ravel()).astype(str)
        at = self.index_.get_indexer(keys)
        if (at < 0).any():
            raise InputError(
                f"no precomputed probabilities for {keys[at < 0][0]!r}", rows=(np.flatnonzero(at < 0) + 1).tolist(),
                unit="row", hint="Give a row of probabilities for every item.",
            )  # fmt: skip
        return self.values_[at]

    def predict(self, X: Sequence[Hashable] | np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
