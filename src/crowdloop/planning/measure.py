"""Measure a learning curve: train a model on growing subsets of the labelled items, score it on a
fixed held-out set.

The held-out set is a share of the *distinct* (normalised) texts with every copy of them, so that a
duplicate title never scores its own copy; the training subsets are nested (the first n of one
random order of the remaining items), so the curve is monotone in data, not in luck of the draw.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from crowdloop.errors import ConfigError, InputError
from crowdloop.models.text import TextClassifier, check_texts_labels, group_folds, normalize_text

DEFAULT_POINTS = 6
SMALLEST = 50


def default_sizes(n_train: int, n_points: int = DEFAULT_POINTS, smallest: int = SMALLEST) -> np.ndarray:
    """``n_points`` label counts spaced geometrically from ``smallest`` to ``n_train``.

    >>> default_sizes(1000).tolist()
    [50, 91, 166, 302, 549, 1000]
    """
    smallest = min(smallest, n_train)
    return np.unique(np.geomspace(smallest, n_train, n_points).round().astype(np.int64))


def measure_learning_curve(
    texts: Sequence[str] | np.ndarray,
    labels: Sequence[Hashable] | np.ndarray,
    *,
    sizes: Sequence[int] | None = None,
    model=None,
    test_size: float = 0.2,
    random_state: int | None = 0,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Accuracy of ``model`` (default ``TextClassifier()``) trained on the first n items of a random
    order, for each n in ``sizes``, on a held-out share ``test_size`` of the distinct texts.

    Returns a frame ``labels, accuracy, n_eval`` (the input of ``fit_learning_curve``). An item of a
    class no training subset has counts as wrong. ``progress`` is called with the points measured
    so far after each.
    """
    texts, labels = check_texts_labels(texts, labels)
    if not 0 < test_size < 1:
        raise ConfigError(f"test_size must be in (0, 1), got {test_size!r}")
    groups = normalize_text(texts)
    n_groups = len(pd.unique(groups))
    n_folds = max(2, round(1 / test_size))
    if n_groups < n_folds:
        raise InputError(f"{n_groups} distinct texts are too few to hold out {test_size:.0%} of them", source="texts")
    test = group_folds(groups, n_folds, random_state) == 0
    train = np.random.default_rng(random_state).permutation(np.flatnonzero(~test))
    sizes = default_sizes(len(train)) if sizes is None else np.unique(np.asarray(sizes, dtype=np.int64))
    if len(sizes) == 0 or sizes.min() < 2 or sizes.max() > len(train):
        raise ConfigError(f"sizes must be between 2 and the {len(train)} training items, got {sizes.tolist()}")
    model = TextClassifier() if model is None else model
    accuracy = []
    for n in sizes:  # one fit per curve point
        subset = train[:n]
        if progress is not None and accuracy:
            progress(len(accuracy))
        if len(pd.unique(labels[subset])) < 2:
            accuracy.append(float(np.mean(labels[test] == labels[subset][0])))
            continue
        with warnings.catch_warnings():  # few labels over many classes: scikit-learn's "regression?" hint
            warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
            fitted = clone(model).fit(texts[subset], labels[subset])
        accuracy.append(float(np.mean(fitted.predict(texts[test]) == labels[test])))
    if progress is not None:
        progress(len(accuracy))
    return pd.DataFrame({"labels": sizes, "accuracy": accuracy, "n_eval": int(test.sum())})
