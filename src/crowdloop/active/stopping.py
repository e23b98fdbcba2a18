r"""When to stop labelling: predictions that no longer change between rounds, or a learning curve
that says the next batch is not worth it.

Stabilizing predictions (Bloodgood & Vijay-Shanker, CoNLL 2009): keep a *stop set* of unlabelled
items (it needs no labels), predict it after every round, and measure the agreement of successive
rounds' predictions with Cohen's kappa,
$\kappa = (p_o - p_e) / (1 - p_e)$, $p_o$ the share of equal predictions and
$p_e = \sum_k a_k b_k$ the agreement expected from the two rounds' label shares $a$, $b$.
Stop once the last ``window`` kappas are all at least ``threshold`` (the paper: 3 and 0.99).

The learning-curve forecast (``LearningCurveForecast``) fits planning's power law to the curve so
far and stops when the next batch's forecast gain is too small, does not pay for its labels, or the
target is reached; ``CombinedStopping`` stops when any (or all) of several rules say stop. Every rule
has the same interface (``StoppingRule``), which ``run_active_learning`` calls after each round.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from crowdloop.errors import ConfigError, InputError
from crowdloop.planning import CostModel, Interval, LearningCurve, fit_learning_curve, power_law

Predictions = Sequence[Hashable] | np.ndarray


class StoppingRule(Protocol):
    """What the loop asks of a stopping rule after each round: ``update`` with the round's
    predictions on the stop set and its point of the learning curve (each rule uses what it needs,
    the rest is ignored) returns whether to stop; ``fired`` names what says stop ('' when nothing
    does); ``record()`` is the round's measurements, as columns of the learning curve."""

    @property
    def should_stop(self) -> bool: ...

    @property
    def fired(self) -> str: ...

    def update(
        self,
        predictions: Predictions | None = None,
        *,
        labels: int | None = None,
        accuracy: float | None = None,
        n_eval: int | None = None,
        next_batch: int | None = None,
    ) -> bool: ...

    def record(self) -> dict[str, float]: ...


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
    ``kappas_`` holds every kappa so far (one fewer than the rounds). The curve point arguments of
    ``update`` are ignored."""

    name = "stable predictions"

    def __init__(self, threshold: float = 0.99, window: int = 3) -> None:
        if not (0 < threshold <= 1):
            raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}")
        if not isinstance(window, (int, np.integer)) or window < 1:
            raise ConfigError(f"window must be a positive integer, got {window!r}")
        self.threshold = float(threshold)
        self.window = int(window)
        self.kappas_: list[float] = []
        self._previous: np.ndarray | None = None

    def update(
        self,
        predictions: Predictions | None = None,
        *,
        labels: int | None = None,
        accuracy: float | None = None,
        n_eval: int | None = None,
        next_batch: int | None = None,
    ) -> bool:
        if predictions is None:
            raise InputError("the stabilizing-predictions rule needs the round's predictions on the stop set")
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

    @property
    def fired(self) -> str:
        return self.name if self.should_stop else ""

    def record(self) -> dict[str, float]:
        return {"kappa": self.kappas_[-1] if self.kappas_ else float("nan")}


SMALL_GAIN, NOT_WORTH_ITS_PRICE, TARGET_REACHED = "small gain", "not worth its price", "target reached"


class LearningCurveForecast:
    r"""Stop when the learning curve forecasts that the next batch is not worth labelling.

    After each round the power law $\mathrm{acc}(n) = a - b n^{-c}$ is fitted to the curve so far
    (``crowdloop.planning.fit_learning_curve``: weighted by each point's binomial error on ``n_eval``
    test items, with bootstrap replicates). With $n$ labels now and a next batch of $m$, the forecast
    gain is $g = \mathrm{acc}(n + m) - \mathrm{acc}(n)$, on the fit and on every replicate; its
    upper bound $g^+$ (of the ``level`` interval) decides, so that a noisy curve does not stop early:

    - ``min_gain``: stop when $g^+ <$ ``min_gain`` (``small gain``);
    - ``point_value``, the money one accuracy point (0.01) is worth: stop when
      $100\,g^+ \cdot$ ``point_value`` $< m \cdot$ ``costs.price_per_label`` (``not worth its price``);
    - ``target``: stop when the lower bound of $\mathrm{acc}(n)$ reaches it (``target reached``).

    Each criterion is off when None. Nothing fires before ``min_points`` rounds. The gradient of the
    curve as a stopping signal follows Laws & Schütze (COLING 2008); the curve and its intervals
    are planning's (Figueroa et al. 2012). ``forecast_`` is the last fitted curve (None before the
    fit or when the points admit none), ``gain_`` and ``accuracy_now_`` its intervals.
    """

    def __init__(
        self,
        min_gain: float | None = 0.002,
        *,
        point_value: float | None = None,
        costs: CostModel | None = None,
        target: float | None = None,
        min_points: int = 4,
        n_boot: int = 100,
        level: float = 0.9,
        random_state: int | None = 0,
    ) -> None:
        if min_gain is None and point_value is None and target is None:
            raise ConfigError("the learning-curve stopping rule needs min_gain, point_value or target")
        for name, value in (("min_gain", min_gain), ("point_value", point_value)):
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if target is not None and not 0 < target < 1:
            raise ConfigError(f"target accuracy must be in (0, 1), got {target!r}")
        if not isinstance(min_points, (int, np.integer)) or min_points < 3:
            raise ConfigError(f"min_points must be an integer >= 3 (a power law has 3 parameters), got {min_points!r}")
        if not isinstance(n_boot, (int, np.integer)) or n_boot < 1 or not 0 < level < 1:
            raise ConfigError(f"n_boot must be a positive integer and level in (0, 1), got {n_boot!r} and {level!r}")
        self.min_gain, self.point_value, self.target = min_gain, point_value, target
        self.costs = costs or CostModel()
        self.min_points, self.n_boot, self.level, self.random_state = int(min_points), n_boot, level, random_state
        self.labels_: list[int] = []
        self.accuracy_: list[float] = []
        self.forecast_: LearningCurve | None = None
        self.gain_: Interval | None = None
        self.accuracy_now_: Interval | None = None
        self.batch_: int | None = None

    def update(
        self,
        predictions: Predictions | None = None,
        *,
        labels: int | None = None,
        accuracy: float | None = None,
        n_eval: int | None = None,
        next_batch: int | None = None,
    ) -> bool:
        """Add the round's point (``labels``, ``accuracy`` on ``n_eval`` items) and forecast a next
        batch of ``next_batch`` labels (default: the last round's step). ``predictions`` are ignored."""
        if labels is None or accuracy is None:
            raise InputError("the learning-curve stopping rule needs the round's labels and accuracy")
        if self.labels_ and labels <= self.labels_[-1]:
            raise InputError(f"label counts must grow between rounds, got {self.labels_[-1]} then {labels}")
        self.labels_.append(int(labels))
        self.accuracy_.append(float(accuracy))
        if next_batch is None and len(self.labels_) > 1:
            next_batch = self.labels_[-1] - self.labels_[-2]
        self.forecast_ = self.gain_ = self.accuracy_now_ = None
        self.batch_ = next_batch
        if len(self.labels_) < self.min_points or next_batch is None or next_batch < 1:
            return False
        try:
            self.forecast_ = fit_learning_curve(
                self.labels_, self.accuracy_, n_eval=n_eval, n_boot=self.n_boot, level=self.level,
                random_state=self.random_state,
            )  # fmt: skip
        except InputError:  # points no power law fits: no forecast, no stop
            return False
        curve, now = self.forecast_, self.labels_[-1]
        params = np.vstack([[curve.a, curve.b, curve.c], curve.replicates]).T  # the fit, then each replicate
        gains = power_law(now + next_batch, *params) - power_law(now, *params)
        tail = (1 - self.level) / 2
        low, high = np.quantile(gains[1:], [tail, 1 - tail], method="inverted_cdf")
        self.gain_ = Interval(float(gains[0]), float(low), float(high))
        self.accuracy_now_ = curve.accuracy_at(now)
        return self.should_stop

    @property
    def reasons(self) -> list[str]:
        """The criteria that say stop now."""
        if self.gain_ is None:
            return []
        reasons = []
        if self.min_gain is not None and self.gain_.high < self.min_gain:
            reasons.append(SMALL_GAIN)
        if self.point_value is not None and 100 * self.gain_.high * self.point_value < self.batch_price:
            reasons.append(NOT_WORTH_ITS_PRICE)
        if self.target is not None and self.accuracy_now_.low >= self.target:
            reasons.append(TARGET_REACHED)
        return reasons

    @property
    def batch_price(self) -> float:
        """What the next batch's labels cost."""
        return (self.batch_ or 0) * self.costs.price_per_label

    @property
    def should_stop(self) -> bool:
        return bool(self.reasons)

    @property
    def fired(self) -> str:
        return ", ".join(self.reasons)

    def record(self) -> dict[str, float]:
        nan = float("nan")
        gain, now = self.gain_, self.accuracy_now_
        return {
            "forecast_gain": gain.estimate if gain else nan,
            "forecast_gain_high": gain.high if gain else nan,
            "forecast_accuracy_low": now.low if now else nan,
        }


class CombinedStopping:
    """Several rules at once: stop when ``any`` of them says stop (or, with ``mode="all"``, when all
    do in the same round). ``fired`` names the rules that say stop, joined by '; '."""

    def __init__(self, *rules: StoppingRule, mode: str = "any") -> None:
        if len(rules) < 1:
            raise ConfigError("CombinedStopping needs at least one rule")
        if mode not in ("any", "all"):
            raise ConfigError(f"mode must be 'any' or 'all', got {mode!r}")
        self.rules, self.mode = rules, mode

    def update(
        self,
        predictions: Predictions | None = None,
        *,
        labels: int | None = None,
        accuracy: float | None = None,
        n_eval: int | None = None,
        next_batch: int | None = None,
    ) -> bool:
        point = {"labels": labels, "accuracy": accuracy, "n_eval": n_eval, "next_batch": next_batch}
        for rule in self.rules:  # every rule sees every round
            rule.update(predictions, **point)
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        return (any if self.mode == "any" else all)(rule.should_stop for rule in self.rules)

    @property
    def fired(self) -> str:
        return "; ".join(rule.fired for rule in self.rules if rule.should_stop) if self.should_stop else ""

    def record(self) -> dict[str, float]:
        return {key: value for rule in self.rules for key, value in rule.record().items()}
