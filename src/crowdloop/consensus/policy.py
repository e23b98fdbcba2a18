"""A project's consensus policy: the target, the overlap bounds and what each kind of opinion costs."""

from __future__ import annotations

from dataclasses import dataclass, field

from crowdloop.errors import ConfigError


@dataclass(frozen=True)
class Prices:
    """Price of one answer by kind of opinion (any currency; the default counts crowd answers)."""

    crowd: float = 1.0
    expert: float = 10.0
    model: float = 0.0

    def __post_init__(self) -> None:
        for name in ("crowd", "expert", "model"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"price of a {name} answer must be >= 0, got {getattr(self, name)!r}")


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
    """

    target: float = 0.97
    min_overlap: int = 1
    max_overlap: int = 5
    escalate_early: bool = True
    partial: bool = True
    label_value: float | None = None
    prices: Prices = field(default_factory=Prices)
    prior_accuracy: float = 0.7

    def __post_init__(self) -> None:
        if self.label_value is not None and not self.label_value > 0:
            raise ConfigError(f"label_value must be > 0 (or None), got {self.label_value!r}")
        if not 0 < self.prior_accuracy < 1:
            raise ConfigError(f"prior_accuracy must be in (0, 1), got {self.prior_accuracy!r}")
        if not 0.5 <= self.target < 1:
            raise ConfigError(f"target must be in [0.5, 1), got {self.target!r}")
        if not (isinstance(self.min_overlap, int) and self.min_overlap >= 0):
            raise ConfigError(f"min_overlap must be an integer >= 0, got {self.min_overlap!r}")
        if not (isinstance(self.max_overlap, int) and self.max_overlap >= max(self.min_overlap, 1)):
            raise ConfigError(
                f"max_overlap must be an integer >= max(min_overlap, 1), got {self.max_overlap!r} "
                f"(min_overlap {self.min_overlap})"
            )
