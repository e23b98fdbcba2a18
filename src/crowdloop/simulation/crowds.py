r"""Synthetic flat crowds: K-class answers from workers of varied skill, with ground truth.

The benchmarks (``bench/``) and the tests use this to measure accuracy and speed on crowds of any
size. Generative process:

1. True labels $z_i$ with a skewed class prior $\pi_k \propto (k + 1)^{-\text{class_skew}}$.
2. Workers of a few archetypes (``ARCHETYPES``): *good* (mean accuracy about 0.85), *sloppy*
   (about 0.6), and *spammers*, who either answer uniformly at random or always give one label.
   Each non-spammer has a skill $s_w \sim \text{Beta}(a, b)$ of their archetype and a per-class
   accuracy $a_{wk} = \sigma(\operatorname{logit} s_w + d_k + \varepsilon_{wk})$ around it
   (class difficulty $d_k$, personal noise $\varepsilon_{wk}$ of scale ``class_noise``).
3. Wrong answers follow a class-conditional confusion: with probability ``bias_share`` the
   worker's own favourite wrong label (a per-worker bias, as a worker who over-uses "neutral"),
   otherwise a shared confusion row $C_{z\cdot}$ that prefers neighbouring classes
   ($C_{kl} \propto \exp(-|k - l| / \text{confusion_width})$, $C_{kk} = 0$).
4. Each item gets ``answers_per_item`` *distinct* workers, drawn by a log-normal activity of
   spread ``activity_spread``: a few workers give most answers, as on real platforms.

Everything is vectorized (one million items with three answers each take about a second) and
deterministic for an integer ``random_state``. Worker ids carry their archetype
(``good-0007``, ``sloppy-0012``, ``spammer-0003``) so experiments can check what a model learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crowdloop.errors import ConfigError


@dataclass(frozen=True)
class WorkerArchetype:
    """A kind of worker: its share of the crowd and its skill ~ Beta(a, b); spammers ignore the item."""

    name: str
    share: float
    skill_a: float = 1.0
    skill_b: float = 1.0
    spammer: bool = False


ARCHETYPES: tuple[WorkerArchetype, ...] = (
    WorkerArchetype("good", 0.55, 17.0, 3.0),  # mean skill 0.85
    WorkerArchetype("sloppy", 0.30, 6.0, 4.0),  # mean skill 0.60
    WorkerArchetype("spammer", 0.15, spammer=True),
)
"""The default crowd: 55% good, 30% sloppy and 15% spammers."""

CONSTANT_SPAMMER_SHARE = 0.3
"""Share of spammers who always give the same label (the others answer uniformly at random)."""


def synthetic_crowd(
    n_items: int = 1_000,
    answers_per_item: int = 3,
    n_workers: int = 100,
    n_labels: int = 2,
    *,
    archetypes: Sequence[WorkerArchetype] = ARCHETYPES,
    class_skew: float = 0.5,
    class_noise: float = 0.5,
    confusion_width: float = 1.0,
    bias_share: float = 0.3,
    activity_spread: float = 1.0,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[pd.DataFrame, pd.Series]:
    """Answers (a crowd-kit frame: ``task`` int, ``worker`` str, ``label`` int in ``0..K-1``) and
    the truth (Series task -> label), following the process in the module docstring.

    >>> answers, truth = synthetic_crowd(100, 3, 20, 4, random_state=1)
    >>> answers.shape, truth.shape
    ((300, 3), (100,))
    """
    _check(n_items, answers_per_item, n_workers, n_labels, archetypes, activity_spread)
    rng = np.random.default_rng(random_state)
    k = n_labels

    prior = 1.0 / np.arange(1, k + 1) ** class_skew
    truth = rng.choice(k, size=n_items, p=prior / prior.sum())

    shares = np.array([a.share for a in archetypes], dtype=np.float64)
    kind = rng.choice(len(archetypes), size=n_workers, p=shares / shares.sum())
    spammer = np.array([a.spammer for a in archetypes])[kind]
    skill = rng.beta(np.array([a.skill_a for a in archetypes])[kind], np.array([a.skill_b for a in archetypes])[kind])
    skill = np.clip(skill, 1e-6, 1 - 1e-6)
    logit = np.log(skill) - np.log1p(-skill)
    difficulty = rng.normal(0.0, class_noise, size=k)
    accuracy = _sigmoid(logit[:, None] + difficulty[None, :] + rng.normal(0.0, class_noise, size=(n_workers, k)))
    favourite = rng.integers(0, k, size=n_workers)
    constant = spammer & (rng.random(n_workers) < CONSTANT_SPAMMER_SHARE)

    activity = rng.lognormal(0.0, activity_spread, size=n_workers)
    worker = _distinct_workers(activity / activity.sum(), n_items, answers_per_item, rng).ravel()
    item = np.repeat(np.arange(n_items), answers_per_item)
    true = truth[item]
    n = len(item)

    confusion = _shared_confusion(k, confusion_width)
    from_confusion = _draw_rows(np.cumsum(confusion, axis=1), true, rng.random(n))
    biased = (rng.random(n) < bias_share) & (favourite[worker] != true)
    wrong_label = np.where(biased, favourite[worker], from_confusion)
    correct = rng.random(n) < accuracy[worker, true]
    label = np.where(correct, true, wrong_label)
    label = np.where(spammer[worker], rng.integers(0, k, size=n), label)
    label = np.where(constant[worker], favourite[worker], label)

    names = pd.Index([f"{archetypes[kind[w]].name}-{w:04d}" for w in range(n_workers)])
    answers = pd.DataFrame({"task": item, "worker": names.take(worker), "label": label.astype(np.int64)})
    return answers, pd.Series(truth.astype(np.int64), index=pd.RangeIndex(n_items, name="task"), name="truth")


def synthetic_model_probs(
    truth: np.ndarray,
    n_labels: int,
    *,
    signal: float = 2.23,
    overconfidence: float = 1.0,
    class_skew: float = 0.5,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    r"""Probability rows of a model of known calibration for items whose true labels are ``truth``.

    The model sees features $x_i = \mu e_{z_i} + \varepsilon_i$, $\varepsilon_i \sim N(0, I)$
    ($\mu$ = ``signal``); the Bayes posterior under the class prior of ``synthetic_crowd``
    ($\pi_k \propto (k + 1)^{-\text{class_skew}}$) is $P(z_i = k \mid x_i) \propto \pi_k e^{\mu x_{ik}}$,
    calibrated by construction. The model reports it to the power ``overconfidence`` (renormalised),
    so its true temperature is ``1 / overconfidence``. With ten classes, ``signal=2.23`` gives a
    top-1 accuracy of about .75.
    """
    rng = np.random.default_rng(random_state)
    truth = np.asarray(truth)
    features = rng.normal(size=(len(truth), n_labels))
    features[np.arange(len(truth)), truth] += signal
    prior = 1.0 / np.arange(1, n_labels + 1) ** class_skew
    logit = signal * features + np.log(prior / prior.sum())
    logit = overconfidence * (logit - logit.max(axis=1, keepdims=True))
    probs = np.exp(logit)
    return probs / probs.sum(axis=1, keepdims=True)


def _check(
    n_items: int,
    answers_per_item: int,
    n_workers: int,
    n_labels: int,
    archetypes: Sequence[WorkerArchetype],
    activity_spread: float,
) -> None:
    if n_items < 1 or answers_per_item < 1:
        raise ConfigError("n_items and answers_per_item must be positive")
    if n_labels < 2:
        raise ConfigError(f"n_labels must be at least 2, got {n_labels}")
    if n_workers < answers_per_item:
        raise ConfigError(f"n_workers ({n_workers}) must be at least answers_per_item ({answers_per_item})")
    if not archetypes or any(a.share < 0 for a in archetypes) or sum(a.share for a in archetypes) <= 0:
        raise ConfigError("archetypes must have non-negative shares that sum to a positive number")
    if activity_spread < 0:
        raise ConfigError(f"activity_spread must be >= 0, got {activity_spread}")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _shared_confusion(k: int, width: float) -> np.ndarray:
    """Rows: where the wrong answers for each true class go (neighbours first, never the class)."""
    distance = np.abs(np.arange(k)[:, None] - np.arange(k)[None, :])
    weight = np.exp(-distance / max(width, 1e-9))
    np.fill_diagonal(weight, 0.0)
    return weight / weight.sum(axis=1, keepdims=True)


def _draw_rows(cumulative: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One draw per entry from the distribution ``cumulative[rows[j]]`` (row-wise CDFs), by a
    single ``searchsorted`` on the CDFs laid end to end (row r shifted by r)."""
    k = cumulative.shape[1]
    cdf = cumulative / cumulative[:, -1:]
    flat = (cdf + np.arange(len(cdf))[:, None]).ravel()
    position = np.searchsorted(flat, rows + u, side="right")
    return np.minimum(position - rows * k, k - 1)


def _distinct_workers(p: np.ndarray, n_items: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` distinct workers per item (n_items x m), each drawn with probability ``p``: entries
    that repeat an earlier one in their row are redrawn (only the rows that clashed are checked
    again); the few rows still clashing after many rounds get a uniform sample without repeats."""
    workers = rng.choice(len(p), size=(n_items, m), p=p)
    rows = np.arange(n_items)
    for _ in range(200):
        block = workers[rows]
        repeat = np.zeros(block.shape, dtype=bool)
        for j in range(1, m):
            repeat[:, j] = (block[:, :j] == block[:, j : j + 1]).any(axis=1)
        clashing = repeat.any(axis=1)
        if not clashing.any():
            return workers
        block[repeat] = rng.choice(len(p), size=int(repeat.sum()), p=p)
        workers[rows] = block
        rows = rows[clashing]
    workers[rows] = np.argsort(rng.random((len(rows), len(p))), axis=1)[:, :m]
    return workers
