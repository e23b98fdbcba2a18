r"""Cross-fitted (out-of-fold) probabilities: a model's opinion on items whose labels it never saw.

A model scored on its own training items is far more confident and accurate there than on new ones,
so its probabilities, used as a vote beside the crowd (``Answers.with_soft``) or to find label
errors (confident learning, Northcutt et al., JAIR 2021), must be *cross-fitted*: split the items
into ``n_folds`` folds and predict each fold with a model fitted on the others (the K-fold
cross-fitting of Chernozhukov et al., Econometrics Journal 2018; scikit-learn's
``cross_val_predict``). ``groups`` (e.g. the normalised title) keep every copy of a duplicate in one
fold, or its copy in the training folds would leak its label.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import LabelSpace
from crowdloop.models.text import check_sample_weight, check_texts_labels, group_folds


def align_proba(probs: np.ndarray, classes: Sequence[Hashable] | np.ndarray, labels: LabelSpace) -> np.ndarray:
    """Probability columns in the model's ``classes`` order moved to the codes of ``labels`` (n, K);
    labels the model does not know get 0. A class outside ``labels`` raises ``UnknownLabelError``."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise InputError(f"probabilities have shape {probs.shape}, expected (n, {len(classes)} classes)")
    out = np.zeros((probs.shape[0], len(labels)))
    out[:, labels.encode(np.asarray(classes, dtype=object), source="model classes", unit="class")] = probs
    return out


def out_of_fold_proba(
    model,
    texts: Sequence[str] | np.ndarray,
    labels: Sequence[Hashable] | np.ndarray,
    n_folds: int = 5,
    groups: Sequence[Hashable] | np.ndarray | None = None,
    random_state: int | None = 0,
    *,
    label_space: LabelSpace | None = None,
    sample_weight: Sequence[float] | np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Cross-fitted probabilities (n, K): row i comes from a clone of ``model`` fitted without item i
    (and without every item in i's group); columns follow ``label_space`` (default: the sorted labels).

    ``model`` is any scikit-learn style classifier (``fit(texts, labels)``, ``predict_proba``,
    ``classes_``), e.g. ``TextClassifier()``. Folds deal the distinct groups (each item its own group
    when ``groups`` is None) round-robin in a random order seeded by ``random_state``; ``sample_weight``
    is passed to every fold's ``fit`` (a model whose fit takes none then fails); ``progress`` is
    called with the number of folds done after each. A class a fold's
    model never saw gets probability 0 in that fold; rows are renormalised to sum to 1.

    >>> from crowdloop.models import TextClassifier
    >>> texts = ["red apple", "green apple", "apple pie", "blue car", "fast car", "car wash"]
    >>> p = out_of_fold_proba(TextClassifier(cv=2), texts, list("aaabbb"), n_folds=3)
    >>> p.shape, bool(np.allclose(p.sum(axis=1), 1))
    ((6, 2), True)
    """
    texts, labels = check_texts_labels(texts, labels)
    weight = None if sample_weight is None else check_sample_weight(sample_weight, len(texts))
    if not (isinstance(n_folds, (int, np.integer)) and n_folds >= 2):
        raise ConfigError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if groups is None:
        groups = np.arange(len(texts))
    else:
        groups = np.asarray(groups, dtype=object).ravel()
        if len(groups) != len(texts):
            raise InputError(f"{len(texts)} texts but {len(groups)} groups", hint="Give one group per text.")
        if pd.isna(pd.Series(groups)).any():
            raise InputError(
                "missing group", rows=(np.flatnonzero(pd.isna(pd.Series(groups))) + 1).tolist(), unit="row"
            )
    if label_space is None:
        label_space = LabelSpace.from_values(labels)
    label_space.encode(labels, source="labels", unit="row")  # unknown labels fail here, with their rows
    n_groups = len(pd.unique(pd.Series(groups)))
    if n_groups < n_folds:
        raise InputError(
            f"{n_groups} distinct groups cannot fill {n_folds} folds", hint="Lower n_folds or give more items."
        )
    folds = group_folds(groups, n_folds, random_state)
    out = np.zeros((len(texts), len(label_space)))
    for f in range(n_folds):
        train, test = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        extra = {} if weight is None else {"sample_weight": weight[train]}
        fitted = clone(model).fit(texts[train], labels[train], **extra)
        out[test] = align_proba(fitted.predict_proba(texts[test]), fitted.classes_, label_space)
        if progress is not None:
            progress(f + 1)
    sums = out.sum(axis=1, keepdims=True)
    return np.divide(out, sums, out=np.full_like(out, 1.0 / out.shape[1]), where=sums > 0)
