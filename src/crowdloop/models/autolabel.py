r"""Auto-labeling with a guarantee: the model labels the items it is sure of, humans the rest.

The model labels an item when its confidence reaches a threshold $t$. We want the accuracy of the
auto-labeled items, $\mathrm{acc}(t) = P(\text{right} \mid \text{conf} \ge t)$, to be at least the
target $\tau$ with confidence $1 - \alpha$, and as many items automated as that allows.

``choose_threshold`` (ours) is a fixed-sequence test in the "Learn then Test" framework
(Angelopoulos, Bates, Candes, Jordan & Lei, 2021). On gold items the model did not train on it tests
the null hypotheses $H_t: \mathrm{acc}(t) < \tau$ along a sequence of thresholds $t_1 > t_2 > \dots$.
$H_t$ is rejected when the one-sided Clopper-Pearson lower bound (Clopper & Pearson, Biometrika 1934)
of the accuracy of the $n_t$ gold items with confidence $\ge t$, $k_t$ of them right, reaches $\tau$:
$\mathrm{Beta}^{-1}(\alpha;\ k_t,\ n_t - k_t + 1) \ge \tau$. The walk goes down the sequence while
the hypotheses are rejected, each at level $\alpha$, and stops at the first that is not; the lowest
rejected threshold $\hat t$ is chosen (none rejected: automate nothing). Fixed-sequence testing
(Westfall & Krishen, JSPI 2001) controls the family-wise error at $\alpha$ with no multiplicity
correction, since $H_{t_j}$ is tested only if $H_{t_1}, \dots, H_{t_{j-1}}$ were all rejected, so
$P(\mathrm{acc}(\hat t) < \tau) \le \alpha$.

The guarantee needs the sequence to be fixed before the correctness labels are seen; it may depend
on the model's confidences (they carry no label). Given the $n_t$-th largest gold confidence $t$,
the $n_t - 1$ gold items above it are i.i.d. draws from the items above $t$, so $k_t$ is binomial
(up to that one boundary item) with the very accuracy being tested. We use that freedom for power.
A start at the $n_0 = \lceil \log \alpha / \log \tau \rceil$ most confident items (59 at
$\alpha = 0.05$, $\tau = 0.95$: the fewest an all-right sample passes with) needs every one of them
right, fails often, and then automates nothing, however good the model is below: a single gold item
the model is sure of and wrong on (often a gold label two careful people would give differently; on
the Flipkart sample through the API the same one or two gold items were among the surest eight of
every version) vetoes every threshold on its own. So the walk tolerates the chance errors $e$ that
the surest $\min(200, n/2)$ of the $n$ gold items could hold and pass with (``start_items``,
``chance_errors_for``), and starts at $n_e$, the fewest surest items with which a sample holding $e$
wrong ones passes (``fewest_passing``: $n_1 = 99$ at $\alpha = 0.2$, $\tau = 0.97$); then it steps
down in ``n_steps`` equal counts of gold items (quantiles of the gold confidence) to all of them.
Why $n_e$ and not the surest half itself: every count from $n_e$ up to $n_{e+1} - 1$ passes with
$e$ errors and no more, and errors only accumulate down the ranking, so a walk that passes its test
at a larger start of that band passes every test from $n_e$ up to it; the start at $n_e$ loses no
walk the larger start wins, and wins those whose first error lies between the two. Started at the
surest half, 186 gold items (the Flipkart sample's) needed all of their 93 surest right (one error
can pass only from 99): with a model 99% right there, a threshold was proven in 38% of simulated
trials, against 57% from $n_0 = 53$, and 11% against 40% where the accuracy falls off from the top
(``bench/bench_threshold_power.py``). ``min_items`` overrides the
start (never below $n_e$; a smaller gold automates nothing). A coarse grid costs nothing in level and
stops less often on a chance dip between neighbouring thresholds. Simulated
(``bench/bench_threshold_power.py``: models whose surest 60% are 98-99.5% right), a start at $n_1$
rather than $n_0$ automates 0-15 points more of the items on 200 and 400 gold items, a proven
threshold's items falling short of the target in at most 15% of the trials (the promise: 20%).
The promise is per test: a project that tests version after version on the same gold proves some
version below the target far more often (``bench/bench_version_multiplicity.py``), which is why the
service confirms each proven threshold on a fresh sample before it labels (``service.automation``).

A monotone recalibration of the confidence leaves the ranking, hence the
chosen set, unchanged; a calibrator fitted on the same gold would make the order depend on the
labels and void the guarantee, so the raw confidence is tested.

**The items it labels are not the gold.** The guarantee is for items drawn like the gold. In a
labeling loop they are not: people take the items the model is unsure of first, so the items left
for the model are those of the labels it is confident about, often a few labels it is *wrongly*
confident about (a category the data itself names two ways). Given the items the model would label
(``Pool``: their confidence and a stratum, ``automation_stratum``: the top-level taxonomy branch
of the predicted label, or the label itself in a flat label space), the test at each threshold
reweights the gold to the pool: a gold item of stratum $s$ weighs $w_s = q_s / g_s$, the share of
$s$ among the pool items above the threshold over its share among the gold above it (importance
weighting under covariate shift, Shimodaira, JSPI 2000), and the Clopper-Pearson bound is taken
at the effective sample size $n_e = (\sum w)^2 / \sum w^2$ with $k_e = n_e \hat p_w$ right (Kish
1965; Korn & Graubard, Survey Methodology 1998). A stratum with no gold above the threshold has no
evidence: its pool items are not labelled by the model (``ThresholdChoice.strata`` lists the proven
ones). The weights depend on the strata and confidences alone, never on whether an item is right,
so the walk starts at the first threshold (at or after the plain start) whose effective size
reaches $n_0$ (or $n_1$): started where the plain count is $n_0$, any unequal weighting leaves
fewer than $n_0$ effective items, and the first test fails whatever the gold says.

``point_estimate_threshold`` is the baseline of SageMaker Ground Truth's automated labeling: the
lowest threshold whose *observed* validation accuracy reaches the target. It selects where the
estimate happens to be high, so the accuracy it delivers on new items is below the target about
half of the time (``bench/bench_autolabel.py`` measures how often).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import beta

from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import LabelSpace, Taxonomy

MIN_ITEMS = 200
"""The gold items whose chance errors the walk tolerates when it has ``MIN_ITEMS / START_SHARE`` or more."""
START_SHARE = 0.5
"""The share of the gold whose chance errors the walk tolerates when it has fewer (module docstring)."""


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold (``inf``: automate nothing) and the evidence for it: ``n_gold`` gold items
    at or above it, their ``gold_accuracy`` and its ``lower_bound``; ``steps`` is the tested sequence
    (threshold, n, right, lower_bound, rejected)."""

    threshold: float
    target: float
    confidence_level: float
    n_gold: int
    gold_accuracy: float
    lower_bound: float
    steps: pd.DataFrame
    strata: np.ndarray | None = None  # with a pool: the strata proven at the threshold (others: not labelled)
    effective_n: float = float("nan")  # with a pool: the gold's effective size, reweighted to it

    def automate(self, confidence: np.ndarray, stratum: np.ndarray | None = None) -> np.ndarray:
        """Which items the model labels on its own (``stratum``: theirs, when the choice was made
        for a pool)."""
        sure = np.asarray(confidence, dtype=np.float64) >= self.threshold
        if self.strata is not None:
            sure &= np.isin(np.asarray(stratum), self.strata)
        return sure


@dataclass(frozen=True)
class Pool:
    """The items the model would label: its confidence on each and their stratum (the predicted
    label, or its top-level branch in a taxonomy), to which ``choose_threshold`` reweights the gold."""

    confidence: np.ndarray
    stratum: np.ndarray


def automation_stratum(labels: LabelSpace, codes: np.ndarray) -> np.ndarray:
    """The stratum of a predicted label in the automation proof: its top-level branch in a taxonomy,
    else the label itself."""
    codes = np.asarray(codes, dtype=np.int64)
    return labels.ancestor_at(codes, 1).astype(np.int64) if isinstance(labels, Taxonomy) else codes


def reweighted_to_pool(
    correct: np.ndarray, stratum: np.ndarray, pool_stratum: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """The gold's right answers and size at the effective sample size once reweighted to the pool's
    strata (module docstring), and the strata with gold in the pool. A pool with none of the gold's
    strata puts nothing at stake: the gold as it is, and no stratum."""
    proven, gold_count = np.unique(stratum, return_counts=True)
    in_pool = pool_stratum[np.isin(pool_stratum, proven)]
    if not len(in_pool):
        return float(np.sum(correct)), float(len(correct)), proven[:0]
    pool_count = np.array([np.sum(in_pool == s) for s in proven], dtype=np.float64)
    weight = (pool_count / len(in_pool) / (gold_count / len(stratum)))[np.searchsorted(proven, stratum)]
    n_effective = weight.sum() ** 2 / np.square(weight).sum()
    accuracy = float(np.sum(weight * correct) / weight.sum())
    return n_effective * accuracy, n_effective, proven[pool_count > 0]


def clopper_pearson_lower(right: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """One-sided ``1 - alpha`` Clopper-Pearson lower bounds of proportions ``right / n`` (0 when right = 0)."""
    right, n = np.asarray(right, dtype=np.float64), np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(alpha, right, n - right + 1)
    return np.where(right > 0, bound, 0.0)


def clopper_pearson_upper(right: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """One-sided ``1 - alpha`` Clopper-Pearson upper bounds of proportions ``right / n``: one minus
    the lower bound of the wrong share (1 when none is wrong)."""
    right, n = np.asarray(right, dtype=np.float64), np.asarray(n, dtype=np.float64)
    return 1.0 - clopper_pearson_lower(n - right, n, alpha)


def fewest_passing(target: float, confidence_level: float, errors: int = 0) -> int:
    r"""The fewest gold items with which a sample of ``errors`` wrong ones passes the test: the least
    $n$ with $\mathrm{Beta}^{-1}(\alpha;\ n - e,\ e + 1) \ge \tau$ ($\lceil \log \alpha / \log \tau \rceil$
    for $e = 0$: 53 at $\alpha = 0.2$, $\tau = 0.97$; 99 for $e = 1$)."""
    alpha = 1 - confidence_level
    n = int(np.ceil(np.log(alpha) / np.log(target))) + errors
    while clopper_pearson_lower(n - errors, n, alpha) < target:
        n += 1
    return n


def start_items(n_gold: int) -> int:
    """The surest gold items whose chance errors the walk tolerates by default (``chance_errors_for``):
    ``MIN_ITEMS``, at most ``START_SHARE`` of the gold."""
    return min(MIN_ITEMS, int(START_SHARE * n_gold))


def chance_errors_for(n_gold: int, target: float, confidence_level: float) -> int:
    """The chance errors a walk over ``n_gold`` gold items tolerates by default (module docstring):
    as many as a sample of ``start_items`` can hold and pass with."""
    errors, start = 0, start_items(n_gold)
    while fewest_passing(target, confidence_level, errors + 1) <= start:
        errors += 1
    return errors


def _check(confidence: object, correct: object, target: float) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=bool).ravel()
    if confidence.shape != correct.shape:
        raise InputError(f"{confidence.size} confidences but {correct.size} correctness flags", source="gold")
    if confidence.size == 0:
        raise InputError("no gold items to choose a threshold on", source="gold",
                         hint="Give gold labels for items the model did not train on.")  # fmt: skip
    if not np.isfinite(confidence).all():
        raise InputError("confidence must be finite", source="gold")
    if not 0 < target < 1:
        raise ConfigError(f"the target accuracy must be in (0, 1), got {target!r}")
    return confidence, correct


def _ranked(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (descending), gold items at or above each, and the right ones among them."""
    order = np.argsort(-confidence, kind="stable")
    conf, right = confidence[order], np.cumsum(correct[order])
    last_of_tie = np.r_[conf[1:] != conf[:-1], True]  # a threshold selects a whole tie
    return conf[last_of_tie], np.flatnonzero(last_of_tie) + 1, right[last_of_tie]


def choose_threshold(
    confidence: np.ndarray | Sequence[float],
    correct: np.ndarray | Sequence[bool],
    target: float = 0.95,
    confidence_level: float = 0.95,
    n_steps: int = 20,
    min_items: int | None = None,
    *,
    chance_errors: int | None = None,
    stratum: np.ndarray | Sequence[Hashable] | None = None,
    pool: Pool | None = None,
) -> ThresholdChoice:
    """The lowest threshold whose auto-labeled accuracy is at least ``target`` with probability
    ``confidence_level``, by fixed-sequence Clopper-Pearson tests on gold (module docstring).
    ``confidence`` and ``correct``: the model's top-label confidence and whether its label is right,
    on gold items it did not train on. The tested thresholds hold ``min_items`` (None: the fewest a
    sample with ``chance_errors`` errors can pass with, ``fewest_passing``; never fewer; at most all
    gold items), then up to ``n_steps`` equal steps more, to all gold items. ``chance_errors`` (None:
    ``chance_errors_for``, as many as the surest half of the gold, at most 200 items, could hold and
    pass with). ``pool`` (with the gold's ``stratum``):
    the items the model would label, to which each test reweights the gold."""
    confidence, correct = _check(confidence, correct, target)
    if not 0 < confidence_level < 1:
        raise ConfigError(f"confidence_level must be in (0, 1), got {confidence_level!r}")
    alpha, n_gold = 1 - confidence_level, len(confidence)
    if min_items is not None and not (isinstance(min_items, (int, np.integer)) and min_items >= 0):
        raise ConfigError(f"min_items must be an integer >= 0, got {min_items!r}")
    thresholds, n, right = _ranked(confidence, correct)
    chance_errors = chance_errors_for(n_gold, target, confidence_level) if chance_errors is None else chance_errors
    if not (isinstance(chance_errors, (int, np.integer)) and chance_errors >= 0):
        raise ConfigError(f"chance_errors must be an integer >= 0, got {chance_errors!r}")
    n_min = fewest_passing(target, confidence_level, chance_errors)  # below this such a sample fails
    start = n_min if min_items is None else max(n_min, min(min_items, n_gold))
    if pool is not None:
        if stratum is None:
            raise ConfigError("a pool needs the stratum of each gold item")
        stratum = np.asarray(stratum)
        # reweighting shrinks the sample: start where its effective size could pass (no label used)
        blank = np.zeros(n_gold, dtype=bool)
        sizes = [reweighted_to_pool(blank[confidence >= t], stratum[confidence >= t],
                                    pool.stratum[np.asarray(pool.confidence) >= t])[1] for t in thresholds]  # fmt: skip
        reachable = np.flatnonzero((np.asarray(sizes) >= n_min) & (n >= start))
        start = int(n[reachable[0]]) if len(reachable) else n_gold + 1
    wanted = np.unique(np.linspace(start, n_gold, max(n_steps, 1) + 1).round().astype(np.int64))
    at = np.unique(np.searchsorted(n, wanted[wanted <= n_gold]))  # first threshold reaching each count
    k_test, n_test = right[at].astype(np.float64), n[at].astype(np.float64)
    strata: list[np.ndarray | None] = [None] * len(at)
    if pool is not None:
        for j, t in enumerate(thresholds[at]):
            above, pooled = confidence >= t, pool.stratum[np.asarray(pool.confidence) >= t]
            k_test[j], n_test[j], strata[j] = reweighted_to_pool(correct[above], stratum[above], pooled)
    bound = clopper_pearson_lower(k_test, n_test, alpha)
    passed = bound >= target
    n_pass = len(passed) if passed.all() else int(np.argmin(passed))  # the walk stops at the first failure
    steps = pd.DataFrame({"threshold": thresholds[at], "n": n[at], "right": right[at], "effective_n": n_test,
                          "lower_bound": bound, "rejected": np.arange(len(at)) < n_pass})  # fmt: skip
    if n_pass == 0:
        return ThresholdChoice(np.inf, target, confidence_level, 0, float("nan"), float("nan"), steps)
    last = at[n_pass - 1]
    return ThresholdChoice(float(thresholds[last]), target, confidence_level, int(n[last]),
                           float(right[last] / n[last]), float(bound[n_pass - 1]), steps,
                           strata[n_pass - 1], float(n_test[n_pass - 1]))  # fmt: skip


def point_estimate_threshold(
    confidence: np.ndarray | Sequence[float], correct: np.ndarray | Sequence[bool], target: float = 0.95
) -> float:
    """SageMaker Ground Truth's rule: the lowest threshold at which the observed accuracy of the
    validation items at or above it reaches ``target`` (``inf`` when none does)."""
    confidence, correct = _check(confidence, correct, target)
    thresholds, n, right = _ranked(confidence, correct)
    ok = np.flatnonzero(right / n >= target)
    return float(thresholds[ok[-1]]) if ok.size else float("inf")


def autolabel(
    probs: np.ndarray,
    classes: Sequence[Hashable] | np.ndarray,
    items: Sequence[Hashable],
    threshold: float | ThresholdChoice,
    stratum: np.ndarray | Sequence[Hashable] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split items into the auto-labeled (``item, label, confidence``) and those to ask humans
    (``item, suggestion, confidence``) at ``threshold``: a number, or a ``ThresholdChoice`` whose
    ``automate`` decides (made for a pool, it needs the items' ``stratum``: only those of the strata
    its gold proved are auto-labeled)."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    labels = np.asarray(classes, dtype=object)[probs.argmax(axis=1)]
    items = np.asarray(items, dtype=object)
    if isinstance(threshold, ThresholdChoice):
        if threshold.strata is not None and (stratum is None or len(stratum) != len(items)):
            raise ConfigError("a threshold chosen for a pool needs the stratum of each item")
        auto = threshold.automate(confidence, stratum)
    else:
        auto = confidence >= threshold
    done = pd.DataFrame({"item": items[auto], "label": labels[auto], "confidence": confidence[auto]})
    ask = pd.DataFrame({"item": items[~auto], "suggestion": labels[~auto], "confidence": confidence[~auto]})
    return done, ask
