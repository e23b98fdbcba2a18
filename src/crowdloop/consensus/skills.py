"""Annotator skill for the consensus loop: accuracy with a Beta prior, updated online from gold,
refreshed by the periodic EM refit; bans and promotion to reviewer decided on evidence."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import betaincinv

from crowdloop.errors import ConfigError

MAX_EXAM = 1000
"""Gold answers beyond which no exam goes on (``SkillRules.exam_length``)."""


@dataclass(frozen=True)
class SkillRules:
    """Thresholds for bans and promotion, judged on gold answers with a credible interval.

    A worker is banned when the ``confidence`` upper bound of their gold accuracy is below
    ``ban_below`` after at least ``min_gold`` gold answers (clearly bad, not merely unlucky), or
    when their median answer time is under ``min_seconds`` after ``min_timed`` timed answers
    (implausibly fast). A worker is promoted to reviewer when the lower bound of their gold accuracy
    is at least ``promote_above`` after ``min_gold_promote`` gold answers.

    ``exam``: a new worker's tasks are gold until the ban test can tell: until the lower bound of
    their gold accuracy reaches ``ban_below`` (kept) or they are banned, for at most
    ``exam_length()`` gold answers, the fewest that ban a worker who got every one wrong (a
    qualification test whose length follows from the ban rule itself). A spammer is then banned
    before their answers reach the crowd's items instead of after dozens of them, at the price of a
    few gold answers per worker, which also teach their skill and the calibrator.
    """

    prior_mean: float = 0.7
    prior_strength: float = 4.0
    ban_below: float = 0.5
    min_gold: int = 5
    promote_above: float = 0.9
    min_gold_promote: int = 20
    confidence: float = 0.95
    min_seconds: float = 2.0
    min_timed: int = 10
    exam: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.prior_mean < 1:
            raise ConfigError(f"prior_mean must be in (0, 1), got {self.prior_mean!r}")
        if not self.prior_strength > 0:
            raise ConfigError(f"prior_strength must be > 0, got {self.prior_strength!r}")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"confidence must be in [0.5, 1), got {self.confidence!r}")

    def gold_interval(self, right: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Equal-tailed ``confidence`` credible interval of a gold accuracy, ``right`` of ``total``
        under the prior $\mathrm{Beta}(m\mu, m(1-\mu))$."""
        a = self.prior_strength * self.prior_mean + right
        b = self.prior_strength * (1 - self.prior_mean) + total - right
        tail = (1 - self.confidence) / 2
        return betaincinv(a, b, tail), betaincinv(a, b, 1 - tail)

    def exam_length(self) -> int:
        """The fewest gold answers (at least ``min_gold``) after which a worker who got all of them
        wrong is banned; 0 when no number of wrong answers would ban (no exam: it could ban nobody)."""
        return _exam_length(self)


@functools.lru_cache(maxsize=256)  # asked on every task; the rules are frozen and few
def _exam_length(rules: SkillRules) -> int:
    """``SkillRules.exam_length`` by bisection: the upper bound falls as wrong answers grow."""

    def banned(n: int) -> bool:
        return bool(rules.gold_interval(np.zeros(1), np.full(1, float(n)))[1][0] < rules.ban_below)

    low, high = max(rules.min_gold, 1), MAX_EXAM
    if not banned(high):
        return 0
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if banned(middle) else (middle + 1, high)
    return low


_COUNTERS = ("gold_right", "gold_total", "since_right", "since_total", "model_right", "model_total", "timed", "fast")


class SkillBook:
    r"""Per-worker accuracy $s_w$ with a Beta prior.

    $s_w \sim \mathrm{Beta}(m\mu, m(1-\mu))$ (``prior_mean`` $\mu$, ``prior_strength`` $m$): a new
    worker starts at the crowd's average and moves with evidence, so two answers neither trust nor
    condemn them. Evidence is of two kinds: gold answers, recorded online as they come
    ($c_w$ right of $n_w$), and the expected agreements of the last EM refit on all answers
    ($\hat c_w$ of $\hat n_w$, gold included at refit time and not counted twice). The estimate is
    the posterior mean $(m\mu + c_w + \hat c_w) / (m + n_w + \hat n_w)$ where $c, n$ count gold
    answers since the refit. Bans and promotions use gold only (``SkillRules``).
    """

    def __init__(self, n_workers: int = 0, rules: SkillRules | None = None) -> None:
        self.rules = rules or SkillRules()
        self.gold_right = np.zeros(n_workers)
        self.gold_total = np.zeros(n_workers)
        self.since_right = np.zeros(n_workers)
        self.since_total = np.zeros(n_workers)
        self.model_right = np.zeros(n_workers)
        self.model_total = np.zeros(n_workers)
        self.timed = np.zeros(n_workers)
        self.fast = np.zeros(n_workers)

    @property
    def n_workers(self) -> int:
        return len(self.gold_total)

    def grow(self, n_workers: int) -> None:
        """Make room for workers up to code ``n_workers - 1`` (new workers start at the prior)."""
        extra = n_workers - self.n_workers
        if extra <= 0:
            return
        for name in _COUNTERS:
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra)]))

    def record_gold(self, worker: np.ndarray | int, right: np.ndarray | bool) -> None:
        """Gold answers as they come: ``right`` says whether each was the gold label."""
        worker = np.atleast_1d(np.asarray(worker, dtype=np.int64))
        right = np.atleast_1d(np.asarray(right, dtype=np.float64))
        self.grow(int(worker.max()) + 1 if worker.size else 0)
        for target, values in ((self.gold_right, right), (self.gold_total, np.ones_like(right))):
            np.add.at(target, worker, values)
        np.add.at(self.since_right, worker, right)
        np.add.at(self.since_total, worker, 1.0)

    def record_time(self, worker: np.ndarray | int, seconds: np.ndarray | float) -> None:
        """Answer durations; a worker's median is under ``min_seconds`` exactly when more than half
        of their answers are, so two counters decide it."""
        worker = np.atleast_1d(np.asarray(worker, dtype=np.int64))
        seconds = np.atleast_1d(np.asarray(seconds, dtype=np.float64))
        self.grow(int(worker.max()) + 1 if worker.size else 0)
        np.add.at(self.timed, worker, 1.0)
        np.add.at(self.fast, worker, (seconds < self.rules.min_seconds).astype(np.float64))

    def refresh(self, skill: np.ndarray, n_answers: np.ndarray) -> None:
        """Take the EM refit's skills (NaN: no estimate) over ``n_answers`` answers per worker."""
        skill = np.asarray(skill, dtype=np.float64)
        self.grow(len(skill))
        known = np.isfinite(skill)
        self.model_right[: len(skill)] = np.where(known, np.nan_to_num(skill) * n_answers, 0.0)
        self.model_total[: len(skill)] = np.where(known, n_answers, 0.0)
        self.since_right[:] = 0.0
        self.since_total[:] = 0.0

    def accuracy(self, workers: np.ndarray | None = None) -> np.ndarray:
        """Posterior mean accuracy of each worker (all workers when ``workers`` is None)."""
        m, mu = self.rules.prior_strength, self.rules.prior_mean
        right = self.model_right + self.since_right
        total = self.model_total + self.since_total
        skill = (m * mu + right) / (m + total)
        return skill if workers is None else self._at(skill, workers, mu)

    def gold_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed credible interval of each worker's gold accuracy (``rules.confidence``)."""
        return self.rules.gold_interval(self.gold_right, self.gold_total)

    def in_exam(self) -> np.ndarray:
        """Workers whose tasks are gold (``SkillRules.exam``): fewer gold answers than the exam's
        length and not yet clear of ``ban_below``."""
        if not self.rules.exam:
            return np.zeros(self.n_workers, dtype=bool)
        lower, _ = self.gold_bounds()
        return (self.gold_total < self.rules.exam_length()) & (lower < self.rules.ban_below)

    def banned(self) -> np.ndarray:
        """Workers to ban: clearly below ``ban_below`` on gold, or implausibly fast."""
        _, upper = self.gold_bounds()
        bad = (upper < self.rules.ban_below) & (self.gold_total >= self.rules.min_gold)
        fast = (self.timed >= self.rules.min_timed) & (self.fast > self.timed / 2)
        return bad | fast

    def promoted(self) -> np.ndarray:
        """Workers whose gold accuracy is clearly at least ``promote_above``: reviewers."""
        lower, _ = self.gold_bounds()
        return (lower >= self.rules.promote_above) & (self.gold_total >= self.rules.min_gold_promote)

    @staticmethod
    def _at(values: np.ndarray, workers: np.ndarray, default: float) -> np.ndarray:
        """``values[workers]``, with ``default`` for workers the book has not seen."""
        workers = np.asarray(workers, dtype=np.int64)
        padded = np.append(values, default)
        return padded[np.where((workers >= 0) & (workers < len(values)), workers, len(values))]
