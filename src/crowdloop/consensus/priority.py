"""Which open item deserves the next answer: the expected information of one more answer per unit
of cost, as a share of the most one answer can give."""

from __future__ import annotations

import numpy as np


def expected_gain(confidence: np.ndarray, skill: float | np.ndarray) -> np.ndarray:
    r"""Expected information (bits) one more answer of skill ``skill`` gives about the item's label.

    Binary reduction "leading label vs the rest", with $p$ the probability that the leading label
    is right: the next answer agrees with probability $q = p s + (1 - p)(1 - s)$, after which
    $p_+ = p s / q$, else $p_- = p (1 - s) / (1 - q)$. The gain is the mutual information
    $H(p) - q H(p_+) - (1 - q) H(p_-)$ (binary entropy $H$): largest near a tie, small for nearly
    settled items, and never zero short of certainty, unlike the one-step gain in accuracy, which
    is zero whenever a single answer cannot flip the label (the myopia noted by Ipeirotis et al.,
    "Repeated labeling using multiple noisy labelers", DMKD 2014).
    """
    p = np.clip(np.asarray(confidence, dtype=np.float64), 1e-12, 1 - 1e-12)
    s = np.clip(np.asarray(skill, dtype=np.float64), 1e-6, 1 - 1e-6)
    agree = p * s + (1 - p) * (1 - s)
    p_plus = p * s / agree
    p_minus = p * (1 - s) / (1 - agree)
    return np.maximum(_entropy(p) - agree * _entropy(p_plus) - (1 - agree) * _entropy(p_minus), 0.0)


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def priority(confidence: np.ndarray, skill: float | np.ndarray, price: float | np.ndarray = 1.0) -> np.ndarray:
    r"""Expected information of one more answer as a share of the most it can be, per unit of cost:
    ``expected_gain(p, s) / expected_gain(1/2, s) / price``, in $[0, 1/\text{price}]$.

    The gain is largest at a tie ($p = 1/2$: the capacity $1 - H(s)$ of a binary symmetric channel
    of accuracy $s$), so an item nobody answered scores $1/\text{price}$ whatever the crowd's
    skill. The order of items is the gain's own; the scale no longer moves with the skill, so a
    stored order key (the service's pool) stays put for every unanswered item when a refit
    re-estimates the crowd, instead of being rewritten for all of them."""
    price = np.maximum(np.asarray(price, dtype=np.float64), 1e-12)
    return expected_gain(confidence, skill) / np.maximum(expected_gain(0.5, skill), 1e-12) / price


def highest(price: float | np.ndarray = 1.0) -> np.ndarray:
    """The most ``priority`` can score: an item nobody answered, ``1 / price``."""
    return 1.0 / np.maximum(np.asarray(price, dtype=np.float64), 1e-12)


def ahead_of_all(value: np.ndarray | float, price: float | np.ndarray = 1.0) -> np.ndarray:
    """A priority lifted above any ``priority`` can score (``highest``), keeping its order among the
    lifted: for items whose answer decides more than themselves (the model's audit, whose outcome
    keeps or takes back every label of a version), served before every other."""
    return np.asarray(value, dtype=np.float64) + highest(price)
