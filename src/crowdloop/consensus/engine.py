"""Dynamic consensus: after every answer, accept an item, ask for more, or escalate it.

``DynamicConsensus`` is the batch face of the one decision: ``fit`` is ``fitting.fit_decision``
(one-coin skills with an empirical-Bayes prior, the model's temperature, a calibrator fitted on
gold), ``decide`` is ``decider.Decider.decide`` on every item (the posterior keeps the mass of the
labels nobody proposed, so one answer is never certainty; the costed lookahead of
``control.outlook`` chooses between accepting, asking more and escalating). The labeling service
takes the same fit in its refit and the same ``Decider`` after every answer.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import pandas as pd

from crowdloop.aggregation.base import Gold
from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.aggregation.posterior import CandidatePosterior
from crowdloop.answers import Answers
from crowdloop.consensus.decider import CAUTION, Decider
from crowdloop.consensus.decisions import ACCEPTED, MORE, ItemStates
from crowdloop.consensus.fitting import DecisionModel, SkillSource, fit_decision
from crowdloop.consensus.policy import ConsensusPolicy
from crowdloop.consensus.priority import priority
from crowdloop.consensus.skills import SkillRules
from crowdloop.errors import ConfigError


class DynamicConsensus:
    """Decide, per item, whether its answers are enough (see ``ConsensusPolicy`` and ``Decider``).

    ``fit(answers, gold)`` fits skills and the calibrator (``fitting.fit_decision``);
    ``decide(answers)`` returns one row per item: ``task, status, label, confidence, answers,
    next, expected, expert`` (``decisions.Decided``). ``skills="em"`` learns skills from all
    answers with gold clamped (EM); ``skills="gold"`` from gold answers only, as platforms with
    control tasks do. ``calibrate=False`` accepts on the raw posterior. ``caution`` (a quantile,
    default ``decider.CAUTION``) decides on that quantile of the accuracy the gold supports rather than on the
    estimate (``TopLabelCalibrator.predict(quantile=...)``); None decides on the estimate.
    """

    def __init__(
        self,
        policy: ConsensusPolicy | None = None,
        *,
        skills: SkillSource = "em",
        calibrate: bool = True,
        rules: SkillRules | None = None,
        caution: float | None = CAUTION,
        random_state: int = 0,
    ) -> None:
        if skills not in ("em", "gold"):
            raise ConfigError(f"skills must be 'em' or 'gold', got {skills!r}")
        self.policy = policy or ConsensusPolicy()
        self.skills = skills
        self.calibrate = calibrate
        self.rules = rules or SkillRules()
        self.caution = caution
        self.random_state = random_state

    def fit(self, answers: Answers, gold: Mapping[Hashable, Hashable] | pd.Series | None = None) -> DynamicConsensus:
        self.gold_ = Gold(*answers.encode_gold(gold))
        self.model_: DecisionModel = fit_decision(
            answers,
            self.gold_,
            self.policy,
            self.rules,
            skills=self.skills,
            calibrate=self.calibrate,
            caution=self.caution,
            random_state=self.random_state,
        )
        self.decider_: Decider = self.model_.decider(answers.labels, self.policy, self.caution)
        return self

    @property
    def calibrator_(self) -> TopLabelCalibrator | None:
        return self.model_.calibrator

    @property
    def skill_(self) -> np.ndarray:
        return self.model_.skill

    def states(self, answers: Answers) -> tuple[ItemStates, CandidatePosterior]:
        """Leading label, calibrated and raw confidence and answer count of every item."""
        return self.decider_.states(self.model_.opinions(answers))

    def decide(self, answers: Answers) -> pd.DataFrame:
        """One row per item: ``task, status, label, confidence, answers, next, expected, expert``;
        gold items are settled (accepted with their gold label)."""
        table = self._decide_codes(answers)
        known = self.gold_.items < answers.n_items
        gold_items, gold_labels = self.gold_.items[known], self.gold_.labels[known]
        table.loc[gold_items, ["status", "confidence", "next", "expected", "expert"]] = [ACCEPTED, 1.0, 0, 0.0, 0.0]
        table.loc[gold_items, "label"] = gold_labels
        labels = answers.labels.decode(np.maximum(table["label"].to_numpy(), 0))
        table["label"] = np.where(table["label"].to_numpy() >= 0, labels, None)
        table.insert(0, "task", answers.items.to_numpy())
        return table

    def _decide_codes(self, answers: Answers) -> pd.DataFrame:
        return self.decider_.decide(self.model_.opinions(answers)).frame()

    def priorities(self, answers: Answers, table: pd.DataFrame | None = None) -> pd.Series:
        """Order of the items that need more answers: expected information of one more crowd answer
        per unit of cost, as a share of the most it can be (``priority``), 0 for settled items;
        highest first."""
        table = self.decide(answers) if table is None else table
        value = priority(table["confidence"].to_numpy(dtype=np.float64), self.typical_skill(), self.policy.prices.crowd)
        value = np.where(table["status"].to_numpy() == MORE, value, 0.0)
        return pd.Series(value, index=answers.items, name="priority").sort_values(ascending=False, kind="stable")

    def calibrated_confidence(self, raw: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Raw posterior confidence of items with ``n`` answers mapped through the gold calibrator."""
        return self.decider_.calibrated_confidence(raw, n)

    def typical_skill(self) -> float:
        """The median accuracy of the fitted workers (the stated prior before a fit)."""
        model = getattr(self, "model_", None)
        return self.policy.prior_accuracy if model is None else model.typical_skill
