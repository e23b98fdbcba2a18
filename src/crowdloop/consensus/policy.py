"""A project's consensus policy: the target, the overlap bounds and what each kind of opinion costs.

Each setting's default and bounds are declared once, on its field here (``setting``): the checks
of ``ConsensusPolicy`` and ``Prices``, the API's request models and the web settings form read them
from there (``bounds_of``, the dataclass defaults)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from numbers import Real
from typing import Any

from crowdloop.errors import ConfigError


@dataclass(frozen=True)
class Bounds:
    """The values a number setting may take: from ``low`` to ``high`` (None: no bound on that
    side), each included unless ``low_open`` / ``high_open``; ``integer``: whole numbers only;
    ``optional``: None too (the setting is not used)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, int if self.integer else Real):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return bool(above and below)  # NaN is neither

    def interval(self) -> str:
        """The bounds in symbols, the same in every language: ``[0.5, 1)``, ``>= 0``."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return "any number"

    def describe(self) -> str:
        """The bounds in words: ``in [0.5, 1)``, ``an integer in [0, 100]``, ``>= 0``."""
        text = self.interval()
        text = f"in {text}" if self.low is not None and self.high is not None else text
        text = f"an integer {text}" if self.integer else text
        return f"{text} (or None)" if self.optional else text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def setting(default: Any, bounds: Bounds) -> Any:
    """A number setting's field: its default and its bounds, declared once."""
    return field(default=default, metadata={"bounds": bounds})


def bounds_of(settings: type | object, name: str) -> Bounds:
    """The declared bounds of the number setting ``name`` of a settings dataclass."""
    found = {f.name: f for f in fields(settings)}.get(name)  # type: ignore[arg-type]
    if found is None or "bounds" not in found.metadata:
        raise KeyError(f"{getattr(settings, '__name__', type(settings).__name__)} has no number setting {name!r}")
    return found.metadata["bounds"]


def check_bounds(settings: object, describe_name: Callable[[str], str] = str) -> None:
    """``ConfigError`` for the first number setting of ``settings`` outside its declared bounds;
    ``describe_name(name)`` says what the setting is in the message."""
    for f in fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, f.name)
        if "bounds" in f.metadata and not f.metadata["bounds"].allows(value):
            raise ConfigError(f"{describe_name(f.name)} must be {f.metadata['bounds'].describe()}, got {value!r}")


PRICE = Bounds(0, 1e6)
"""A price of one answer, in any currency."""


@dataclass(frozen=True)
class Prices:
    """Price of one answer by kind of opinion (any currency; the default counts crowd answers)."""

    crowd: float = setting(1.0, PRICE)
    expert: float = setting(10.0, PRICE)
    model: float = setting(0.0, PRICE)

    def __post_init__(self) -> None:
        check_bounds(self, lambda name: f"price of a {name} answer")


@dataclass(frozen=True)
class ConsensusPolicy:
    """When an item is done.

    - ``target``: accept an item once the calibrated probability that its leading label is right
      reaches this (0.97: 97% of accepted items are right);
    - ``min_overlap`` / ``max_overlap``: human answers every item gets at least / at most; an item
      that has not reached the target at ``max_overlap`` goes to an expert (escalated), and so does
      one that could not reach it even if every remaining answer agreed;
    - ``escalate_early``: escalate as soon as the target is out of reach even if every remaining
      answer agreed (saves crowd answers when an expert will decide anyway); without an expert,
      set it to False so that such items keep collecting answers up to ``max_overlap``;
    - ``partial``: in a taxonomy, an item that cannot reach the target at its leaf by
      ``max_overlap`` is accepted at the deepest level that does (e.g. "Electronics > Audio")
      instead of escalated;
    - ``label_value``: what a right label is worth, in the currency of ``prices`` (None: not
      used). No item is worth more: the costed lookahead (``consensus.control``) stops buying
      answers for an item once finishing it is expected to cost more than the cheaper of an
      expert review and its label's value;
    - ``prices``: cost of a crowd, expert or model answer: each step takes the action (accept, ask
      more, escalate) of the lowest expected total cost of reaching the target;
    - ``prior_accuracy``: the stated prior mean accuracy of an annotator, before any evidence;
      the crowd's agreement on items with two or more answers moves it (``consensus.fitting``).

    The number settings' bounds are declared on their fields (``bounds_of``); ``max_overlap`` is
    also at least ``min_overlap``.
    """

    target: float = setting(0.97, Bounds(0.5, 1, high_open=True))
    min_overlap: int = setting(1, Bounds(0, 100, integer=True))
    max_overlap: int = setting(5, Bounds(1, 100, integer=True))
    escalate_early: bool = True
    partial: bool = True
    label_value: float | None = setting(None, Bounds(0, 1e6, low_open=True, optional=True))
    prices: Prices = field(default_factory=Prices)
    prior_accuracy: float = setting(0.7, Bounds(0, 1, low_open=True, high_open=True))

    def __post_init__(self) -> None:
        check_bounds(self)
        if not isinstance(self.prices, Prices):
            raise ConfigError(f"prices must be a Prices, got {type(self.prices).__name__}")
        if self.max_overlap < self.min_overlap:
            raise ConfigError(
                f"max_overlap must be an integer >= max(min_overlap, 1), got {self.max_overlap!r} "
                f"(min_overlap {self.min_overlap})"
            )
