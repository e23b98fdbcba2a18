r"""When to stop labelling: predictions that no longer change between rounds.

Stabilizing predictions (Bloodgood & Vijay-Shanker, CoNLL 2009): keep a *stop set* of unlabelled
items (it needs no labels), predict it after every round, and measure the agreement of successive
rounds' predictions with Cohen's kappa,
$\kappa = (p_o - p_e) / (1 - p_e)$, $p_o$ the share of equal predictions and
$p_e = \sum_k a_k b_k$ the agreement expected from the two rounds' label shares $a$, $b$.
Stop once the last ``window`` kappas are all at least ``threshold`` (the paper: 3 and 0.99).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from crowdloop.errors import ConfigError, InputError


def cohen_kappa(first: Sequence[Hashable] | np.ndarray, second: Sequence[Hashable] | np.ndarray) -> float:
    """Cohen's kappa of two label vectors of the same items (1.0 when both are the same constant).

    >>> cohen_kappa(["a", "a", "b", "b"], ["a", "a", "b", "a"])
    0.5
    """
    first, second = np.asarray(first, dtype=object).ravel(), np.asarray(second, dtype=object).ravel()
    if len(first) != len(second) or len(first) == 0:
        raise InputError(f"kappa needs two non-empty label vectors of equal length, got {len(first)} and {len(second)}")
    codes, _ = pd.factorize(pd.Series(np.concatenate([first, second])))
    a, b = codes[: len(first)], codes[len(first) :]
    n_labels = codes.max() + 1
    observed = float((a == b).mean())
    expected = float(np.dot(np.bincount(a, minlength=n_labels), np.bincount(b, minlength=n_labels))) / len(a) ** 2
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


class StabilizingPredictions:
    """The stopping rule: ``update(predictions)`` after each round (predictions on the same stop set
    every time) returns True once the last ``window`` successive-round kappas reach ``threshold``.
    ``kappas_`` holds every kappa so far (one fewer than the rounds)."""

    def __init__(self, threshold: float = 0.99, window: int = 3) -> None:
        if not (0 < threshold <= 1):
            raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}")
        if not isinstance(window, (int, np.integer)) or window < 1:
            raise ConfigError(f"window must be a positive integer, got {window!r}")
        self.threshold = float(threshold)
        self.window = int(window)
        self.kappas_: list[float] = []
        self._previous: np.ndarray | None = None

    def update(self, predictions: Sequence[Hashable] | np.ndarray) -> bool:
        predictions = np.asarray(predictions, dtype=object).ravel()
        if self._previous is not None:
            if len(predictions) != len(self._previous):
                raise InputError(
                    f"the stop set changed size ({len(self._previous)} then {len(predictions)} predictions)",
                    hint="Predict the same stop set every round.",
                )
            self.kappas_.append(cohen_kappa(self._previous, predictions))
        self._previous = predictions
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        recent = self.kappas_[-self.window :]
        return len(recent) == self.window and min(recent) >= self.threshold
