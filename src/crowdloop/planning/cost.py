r"""From a learning curve to money: buy more labels, or pay an engineer to change the model?

Cost of data: $(n(t) - n_{now})\,\cdot$ ``price_per_label``, with $n(t)$ the labels the fitted curve
needs for the target $t$ (and its bootstrap interval). Cost of a model change: ``engineer_hours``
$\cdot$ ``engineer_hour_ratio`` $\cdot$ ``annotator_hour_price`` (an ML engineer's hour costs 10-15
annotator hours). The recommendation is the cheaper of the two; a target above the curve's asymptote
cannot be bought with labels at all (the model must change), and a target already reached needs
neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from crowdloop.errors import ConfigError
from crowdloop.planning.curve import Interval, LearningCurve

ADD_DATA, CHANGE_MODEL, REACHED = "add data", "change the model", "target reached"


@dataclass(frozen=True)
class CostModel:
    """Prices: one label, one annotator hour, the engineer's hour as a multiple of it, and the hours
    a model change takes (default two weeks)."""

    price_per_label: float = 0.10
    annotator_hour_price: float = 6.0
    engineer_hour_ratio: float = 12.5
    engineer_hours: float = 80.0

    def __post_init__(self) -> None:
        for name in ("price_per_label", "annotator_hour_price", "engineer_hour_ratio", "engineer_hours"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and value == value and value != float("inf")):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")

    @property
    def model_change_cost(self) -> float:
        return self.engineer_hours * self.engineer_hour_ratio * self.annotator_hour_price


@dataclass(frozen=True)
class Plan:
    """A forecast for ``target`` and what to do about it."""

    target: float
    current_labels: int
    current_accuracy: Interval
    labels_needed: Interval
    data_cost: Interval
    model_change_cost: float
    recommendation: str
    reason: str


def plan(
    curve: LearningCurve, target: float, costs: CostModel | None = None, current_labels: int | None = None
) -> Plan:
    """The labels ``target`` needs, what they cost, and ``add data`` / ``change the model`` /
    ``target reached`` with the reason in money.

    ``current_labels`` defaults to the largest label count of the curve.

    >>> import numpy as np
    >>> from crowdloop.planning.curve import fit_learning_curve, power_law
    >>> n = np.array([250, 500, 1000, 2000])
    >>> curve = fit_learning_curve(n, power_law(n, 0.9, 1.5, 0.5), n_eval=5000, n_boot=30)
    >>> plan(curve, 0.88, CostModel(price_per_label=0.1)).recommendation
    'add data'
    >>> plan(curve, 0.95).recommendation
    'change the model'
    """
    costs = costs or CostModel()
    now = int(curve.n_labels.max() if current_labels is None else current_labels)
    if now < 0:
        raise ConfigError(f"current_labels must be >= 0, got {current_labels!r}")
    needed = curve.labels_for(target)
    current = curve.accuracy_at(max(now, 1))
    extra = [max(v - now, 0.0) for v in (needed.estimate, needed.low, needed.high)]
    data = Interval(*(x * costs.price_per_label for x in extra))
    change = costs.model_change_cost
    asymptote = curve.asymptote
    if not curve.reaches(target):
        choice = CHANGE_MODEL
        reason = (
            f"the curve levels off at {asymptote.estimate:.3f} (interval {asymptote.low:.3f}-{asymptote.high:.3f}), "
            f"below the target {target:.3f}: no number of labels reaches it with this model; a model change "
            f"costs about {change:,.0f}"
        )
    elif needed.estimate <= now:
        choice = REACHED
        reason = f"{now:,} labels already reach {target:.3f} (forecast {current.estimate:.3f})"
    else:
        choice = ADD_DATA if data.estimate <= change else CHANGE_MODEL
        cheaper = "cheaper" if choice == ADD_DATA else "dearer"
        reason = (
            f"{extra[0]:,.0f} more labels (interval {extra[1]:,.0f}-{_amount(extra[2])}) cost {data.estimate:,.0f} "
            f"({_amount(data.low)}-{_amount(data.high)}), {cheaper} than a model change at {change:,.0f}"
        )
        if needed.high == float("inf"):
            reason += "; the interval reaches the asymptote, so the data may not suffice"
    return Plan(target, now, current, needed, data, change, choice, reason)


def _amount(value: float) -> str:
    return "unbounded" if value == float("inf") else f"{value:,.0f}"
