"""Dynamic consensus: after every answer, accept an item, ask for more, or escalate it.

Skills and the shape of wrong answers come from a periodic EM refit (``TaxonomySkillModel``: a
per-worker skill over a pooled, taxonomy-shaped confusion; for a flat label space one-coin
Dawid-Skene); a model's probability rows vote by Bayes' rule with a learned temperature; the
posterior keeps the mass of the labels nobody proposed (one answer is never certainty); and a
calibrator fitted on gold items turns the posterior into an honest probability of being right.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Mapping
from dataclasses import replace
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crowdloop.aggregation.auto import LARGE_LABEL_SPACE
from crowdloop.aggregation.base import Gold
from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.aggregation.dawid_skene import DawidSkene
from crowdloop.aggregation.posterior import CandidatePosterior
from crowdloop.aggregation.taxonomy_model import TaxonomySkillModel
from crowdloop.answers import Answers, SoftAnswers
from crowdloop.consensus.decisions import ACCEPTED, ESCALATED, MORE, ItemStates, decide
from crowdloop.consensus.policy import ConsensusPolicy
from crowdloop.consensus.priority import priority
from crowdloop.consensus.skills import SkillBook, SkillRules
from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import LabelSpace, Taxonomy

SkillSource = Literal["em", "gold"]
HORIZONS = (1, 2, 3, 5, 8, 13, 21, 34)
"""How many answers ahead the value of more answers is measured (``gain_per_answer``)."""
ScoringModel = DawidSkene | TaxonomySkillModel


class DynamicConsensus:
    """Decide, per item, whether its answers are enough (see ``ConsensusPolicy`` and ``decide``).

    ``fit(answers, gold)`` refits worker skills and the calibrator; ``decide(answers)`` returns one
    row per item: ``task, status, label, confidence, answers, next``. ``skills="em"`` learns
    skills from all answers with gold clamped (EM); ``skills="gold"`` uses gold answers only, as
    platforms with control tasks do. ``calibrate=False`` accepts on the raw posterior.

    The calibrator is fitted on *prefix states* of gold items: a gold item answered n times yields
    the states after 1, 2, ..., min(n, max_overlap) answers, each scored with skills fitted while
    that item's gold was hidden (two-fold cross-fitting), labelled by whether the leading label
    was right. The stopping rule sees exactly such states, so a calibrated 0.97 at the moment of
    acceptance means 97% right. With little gold the curve itself is uncertain: ``caution`` (a
    quantile, default 0.2) makes the engine decide on that quantile of the accuracy the gold
    supports (``TopLabelCalibrator.predict(quantile=...)``) rather than on the estimate; None
    decides on the estimate.
    """

    def __init__(
        self,
        policy: ConsensusPolicy | None = None,
        *,
        skills: SkillSource = "em",
        calibrate: bool = True,
        rules: SkillRules | None = None,
        n_iter: int = 50,
        shrinkage: float = 4.0,
        caution: float | None = 0.2,
        random_state: int = 0,
    ) -> None:
        if skills not in ("em", "gold"):
            raise ConfigError(f"skills must be 'em' or 'gold', got {skills!r}")
        self.policy = policy or ConsensusPolicy()
        self.skills = skills
        self.calibrate = calibrate
        self.rules = rules or SkillRules()
        self.n_iter = n_iter
        self.shrinkage = shrinkage
        self.caution = caution
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, answers: Answers, gold: Mapping[Hashable, Hashable] | pd.Series | None = None) -> DynamicConsensus:
        codes = Gold(*answers.encode_gold(gold))
        self.gold_ = codes
        kinds = self._candidate_kinds(answers)
        states = {kind: self._gold_states(answers, codes, kind) for kind in kinds} if len(codes) else {}
        # the skill model whose leading labels are right most often on cross-fitted gold states
        self.kind_ = max(kinds, key=lambda kind: states[kind][1].mean() if kind in states else 0.0)
        self.model_, self.skill_ = self._refit(answers, codes, self.kind_)
        truth = _gold_of(codes, answers.n_items)[answers.item]
        on_gold = truth >= 0
        self.book_ = SkillBook(answers.n_workers, self.rules)
        self.book_.record_gold(answers.worker[on_gold], answers.labels.credit(answers.label[on_gold], truth[on_gold]))
        if answers.time is not None:
            self.book_.record_time(answers.worker, answers.time)
        self.calibrator_ = None
        if self.calibrate and self.kind_ in states:
            confidence, right, count, _ = states[self.kind_]
            calibrator = TopLabelCalibrator(features=("confidence", "n_answers"))
            with contextlib.suppress(InputError):  # too little gold, or all of it right: stay raw
                self.calibrator_ = calibrator.fit(confidence, right, n_answers=count)
        self.outlook_ = {}
        if self.policy.label_value is not None and self.kind_ in states:
            self.outlook_ = self._fit_outlook(*states[self.kind_])
        return self

    def _candidate_kinds(self, answers: Answers) -> list[str]:
        """The skill models worth trying: for a small flat label space, Dawid-Skene (a confusion
        matrix per worker: workers who mix up two particular classes are common) and the one-coin
        ``TaxonomySkillModel`` (fewer parameters: better when workers answer little or classes
        are unbalanced); gold decides between them. A taxonomy or a large label space, and
        ``skills="gold"``, take ``TaxonomySkillModel``."""
        flat = not isinstance(answers.labels, Taxonomy) and answers.n_labels < LARGE_LABEL_SPACE
        return ["ds", "taxonomy"] if self.skills == "em" and flat else ["taxonomy"]

    def _refit(self, answers: Answers, gold: Gold, kind: str) -> tuple[ScoringModel, np.ndarray]:
        """The skill model ``kind`` fitted on the answers with ``gold`` clamped, and each worker's
        skill. Confusion matrices shrink towards the crowd's (``shrinkage`` pseudo-answers per
        class), so that a worker seen three times is not taken for infallible."""
        if kind == "ds":
            model = DawidSkene(n_iter=self.n_iter, shrinkage=self.shrinkage)
            model.fit(answers, _gold_series(answers, gold))
            skill = model.skills_.to_numpy(dtype=np.float64)
            return model, np.where(np.isfinite(skill), skill, self.rules.prior_mean)
        model = TaxonomySkillModel(n_iter=self.n_iter).fit(answers, _gold_series(answers, gold))
        return model, self._skills(answers, gold, model)

    def _skills(self, answers: Answers, gold: Gold, model: TaxonomySkillModel) -> np.ndarray:
        if self.skills == "em":
            return model.skill_codes_
        gold_label = _gold_of(gold, answers.n_items)[answers.item]
        on_gold = gold_label >= 0
        credit = answers.labels.credit(answers.label[on_gold], gold_label[on_gold])
        right = np.bincount(answers.worker[on_gold], weights=credit, minlength=answers.n_workers)
        total = np.bincount(answers.worker[on_gold], minlength=answers.n_workers)
        mean = (right.sum() + 1.0) / (total.sum() + 2.0)
        m = self.rules.prior_strength
        return np.clip((right + m * mean) / (total + m), 1e-4, 1 - 1e-4)

    def _gold_states(self, answers: Answers, gold: Gold, kind: str) -> tuple[np.ndarray, ...]:
        """Raw confidence, correctness and answer count of the prefix states of every gold item,
        each scored by a model fitted with that item's half of the gold hidden, and the index of
        the item's last state (all its answers, up to ``max_overlap``)."""
        fold = np.random.default_rng(self.random_state).permutation(len(gold)) % 2
        truth = _gold_of(gold, answers.n_items)
        confidence, right, count, last = [], [], [], []
        offset = 0
        for f in (0, 1):
            hidden = fold == f
            if not hidden.any():
                continue
            model, skill = self._refit(answers, Gold(gold.items[~hidden], gold.labels[~hidden]), kind)
            states, state_item = prefix_states(answers, gold.items[hidden], self.policy.max_overlap)
            label, raw = _score(model, skill, states).top()
            is_last = np.r_[state_item[1:] != state_item[:-1], True]  # an item's states are consecutive
            ends = np.flatnonzero(is_last)
            confidence.append(raw)
            right.append(label == truth[state_item])
            count.append(np.bincount(states.item, minlength=states.n_items))
            last.append(offset + ends[np.cumsum(np.r_[True, is_last[:-1]]) - 1])
            offset += len(raw)
        return tuple(np.concatenate(x) for x in (confidence, right, count, last))

    def _fit_outlook(self, confidence: np.ndarray, right: np.ndarray, count: np.ndarray, last: np.ndarray) -> dict:
        """Per horizon h (``HORIZONS`` up to ``max_overlap - 1``) a calibrator of the chance that a gold
        item in a given state is right after at most h more answers (its state h answers later, or
        its last one)."""
        outlook = {}
        index = np.arange(len(confidence))
        for h in HORIZONS:
            if h >= self.policy.max_overlap:
                break
            later = right[np.minimum(index + h, last)]
            with contextlib.suppress(InputError):  # too little gold, or every state ends right
                outlook[h] = TopLabelCalibrator(features=("confidence", "n_answers")).fit(
                    confidence, later, n_answers=count
                )
        return outlook

    # -- deciding ------------------------------------------------------------------------------

    def states(self, answers: Answers) -> tuple[ItemStates, CandidatePosterior]:
        """Leading label, calibrated and raw confidence and answer count of every item."""
        posterior = _score(self.model_, self.skill_, answers)
        label, raw = posterior.top()
        n = np.bincount(answers.item, minlength=answers.n_items)
        return ItemStates(label, self.calibrated_confidence(raw, n), raw, n), posterior

    def decide(self, answers: Answers) -> pd.DataFrame:
        """One row per item: ``task, status, label, confidence, answers, next``; gold items are
        settled (accepted with their gold label)."""
        table = self._decide_codes(answers)
        known = self.gold_.items < answers.n_items
        gold_items, gold_labels = self.gold_.items[known], self.gold_.labels[known]
        table.loc[gold_items, ["status", "confidence", "next"]] = [ACCEPTED, 1.0, 0]
        table.loc[gold_items, "label"] = gold_labels
        labels = answers.labels.decode(np.maximum(table["label"].to_numpy(), 0))
        table["label"] = np.where(table["label"].to_numpy() >= 0, labels, None)
        table.insert(0, "task", answers.items.to_numpy())
        return table

    def decide_item(
        self, answers: Answers, workers: np.ndarray, labels: np.ndarray, model_probs: np.ndarray | None = None
    ) -> dict:
        """The decision for one item after a new answer, in O(answers of the item): ``workers`` are
        codes in the fitted answers' worker table (-1: a worker the last refit did not see, who
        gets the prior skill), ``labels`` label codes, ``model_probs`` an optional probability
        row of the model (the fitted soft worker). Returns the row of ``decide`` as a dict."""
        workers = np.asarray(workers, dtype=np.int64)
        unseen = answers.n_workers
        one = replace(
            answers,
            item=np.zeros(len(workers), dtype=np.int32),
            worker=np.where(workers >= 0, workers, unseen).astype(np.int32),
            label=np.asarray(labels, dtype=np.int32),
            items=pd.RangeIndex(1),
            workers=answers.workers.append(pd.Index([object()])),
            weight=None,
            time=None,
            soft=None,
        )
        if model_probs is not None and answers.soft is not None:
            one = replace(
                one,
                soft=SoftAnswers(
                    item=np.zeros(1, dtype=np.int32),
                    worker=answers.soft.worker[:1],
                    probs=sp.csr_matrix(np.asarray(model_probs, dtype=np.float64).reshape(1, -1)),
                ),
            )
        row = self._decide_codes(one).iloc[0].to_dict()
        row["label"] = answers.labels.decode([row["label"]])[0] if row["label"] >= 0 else None
        return row

    def priorities(self, answers: Answers, table: pd.DataFrame | None = None) -> pd.Series:
        """Order of the items that need more answers: expected information per unit of cost of
        one more crowd answer (``priority``), 0 for settled items; highest first."""
        table = self.decide(answers) if table is None else table
        value = priority(table["confidence"].to_numpy(dtype=np.float64), self.typical_skill(), self.policy.prices.crowd)
        value = np.where(table["status"].to_numpy() == MORE, value, 0.0)
        return pd.Series(value, index=answers.items, name="priority").sort_values(ascending=False, kind="stable")

    def _decide_codes(self, answers: Answers) -> pd.DataFrame:
        states, posterior = self.states(answers)
        needed = self.answers_needed(states, answers.n_labels)
        fallback = (
            self.partial_acceptance(posterior, answers.labels, states.answers) if self.policy.partial else (None, None)
        )
        table = decide(states, self.policy, needed, fallback_label=fallback[0], fallback_confidence=fallback[1])
        if self.outlook_:
            stop = (table["status"].to_numpy() == MORE) & (self.gain_per_answer(states) * self.policy.label_value
                                                           < self.policy.prices.crowd)  # fmt: skip
            table.loc[stop, ["status", "next"]] = [ESCALATED, 0]
        return table

    def gain_per_answer(self, states: ItemStates) -> np.ndarray:
        r"""Expected gain in accuracy per further crowd answer, at the best horizon:
        $\max_h (\hat a_h - \hat a_0) / h$ over $h$ more answers (``HORIZONS``, within
        ``max_overlap``), where $\hat a_0$ is the calibrated probability that the leading label is
        right now and $\hat a_h$ how often gold items in the same state (raw confidence, answers so
        far) had a right leading label $h$ answers later (calibrators fitted on the cross-fitted gold
        prefix states). Measuring the value of more answers on items seen further captures what a
        per-answer model cannot: an item still torn after many answers is usually ambiguous, and
        more answers rarely fix it; the horizons keep it from being myopic (one answer seldom flips
        a label, three may). Needs ``policy.label_value`` at fit time (NaN otherwise). The stopping
        rule it serves is the value-of-information control of Dai, Mausam and Weld,
        "Decision-theoretic control of crowd-sourced workflows" (AAAI 2010): keep buying answers
        while they are expected to add more value than they cost."""
        if not getattr(self, "outlook_", None):
            return np.full(len(states), np.nan)
        raw, n = states.raw_confidence, states.answers
        now = raw if self.calibrator_ is None else self.calibrator_.predict(raw, n_answers=n)
        best = np.full(len(states), -np.inf)
        for h, calibrator in self.outlook_.items():
            reachable = n + h <= self.policy.max_overlap
            gain = (calibrator.predict(raw, n_answers=n) - now) / h
            best = np.where(reachable, np.maximum(best, gain), best)
        return np.where(raw > 0, best, np.inf)

    def calibrated_confidence(self, raw: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Raw posterior confidence of items with ``n`` answers mapped through the gold calibrator."""
        if self.calibrator_ is None:
            return raw
        return np.where(raw > 0, self.calibrator_.predict(raw, n_answers=n, quantile=self.caution), 0.0)

    def typical_skill(self) -> float:
        """The median accuracy of the fitted workers (the prior mean before a fit)."""
        skill = getattr(self, "skill_", None)
        if skill is None or not len(skill):
            return self.rules.prior_mean
        cached = getattr(self, "_typical", None)
        if cached is None or cached[0] is not skill:
            cached = self._typical = (skill, float(np.median(skill)))
        return cached[1]

    def answers_needed(self, states: ItemStates, n_labels: int) -> np.ndarray:
        r"""Least m such that m more agreeing answers of a typical worker would reach the target.

        Each agreeing answer of skill $\bar s$ multiplies the odds of the leading label against
        any other by $\bar s (K - 1) / (1 - \bar s)$ (the flat one-coin factor)."""
        k = max(n_labels, 2)
        typical = min(max(self.typical_skill(), 0.05), 0.999)
        step = np.log(typical * (k - 1) / (1 - typical))
        room = max(self.policy.max_overlap, 1)
        m = np.arange(1, room + 1)
        raw = np.clip(states.raw_confidence, 1e-12, 1 - 1e-12)
        logit = np.log(raw / (1 - raw))[:, None] + step * m[None, :]
        future = 1 / (1 + np.exp(-logit))
        n_future = states.answers[:, None] + m[None, :]
        if self.calibrator_ is not None:
            future = self.calibrator_.predict(future.ravel(), n_answers=n_future.ravel(), quantile=self.caution)
            future = future.reshape(n_future.shape)
        enough = (future >= self.policy.target) & (n_future <= self.policy.max_overlap)
        needed = np.where(enough.any(axis=1), m[np.argmax(enough, axis=1)], np.inf)
        return np.where(states.label < 0, 1.0, needed)

    def partial_acceptance(
        self, posterior: CandidatePosterior, labels: LabelSpace, n: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The deepest ancestor level whose calibrated confidence reaches the target (-1: none),
        for items with ``n`` human answers each.

        The leaf calibrator is applied to the ancestor's posterior mass: conservative, since a
        coarser label is right at least as often as a leaf label of the same confidence."""
        n_items = len(n)
        best = np.full(n_items, -1, dtype=np.int64)
        best_conf = np.zeros(n_items)
        if not isinstance(labels, Taxonomy):
            return best, best_conf
        for depth in range(1, labels.max_depth):
            code, raw = posterior.ancestor_top(labels, depth)
            conf = self.calibrated_confidence(raw, n)
            ok = (conf >= self.policy.target) & (code >= 0) & (labels.depth[np.maximum(code, 0)] == depth)
            best = np.where(ok, code, best)
            best_conf = np.where(ok, conf, best_conf)
        return best, best_conf


def _score(model: ScoringModel, skill: np.ndarray, answers: Answers) -> CandidatePosterior:
    """The model's posterior of ``answers``; workers beyond the fitted ones get the median skill."""
    if isinstance(model, TaxonomySkillModel):
        extended = np.full(answers.n_workers, float(np.median(skill)) if len(skill) else 0.7)
        extended[: min(len(skill), answers.n_workers)] = skill[: answers.n_workers]
        return model.score(answers, skill=extended)
    return model.score(answers)


def _gold_of(gold: Gold, n_items: int) -> np.ndarray:
    out = np.full(n_items, -1, dtype=np.int64)
    out[gold.items] = gold.labels
    return out


def _gold_series(answers: Answers, gold: Gold) -> pd.Series | None:
    if not len(gold):
        return None
    return pd.Series(answers.labels.decode(gold.labels), index=answers.items[gold.items])


def prefix_states(answers: Answers, items: np.ndarray, max_overlap: int) -> tuple[Answers, np.ndarray]:
    """Virtual items: item g after its first j answers (in array order), j = 1..min(n_g, max_overlap).

    Returns the answers of the virtual items (soft answers of g copied to each of its states) and,
    per virtual item, the code of the item it is a state of."""
    items = np.unique(items)
    local_of = np.full(answers.n_items, -1, dtype=np.int64)
    local_of[items] = np.arange(len(items))
    rows = np.flatnonzero(local_of[answers.item] >= 0)
    rows = rows[np.argsort(local_of[answers.item[rows]], kind="stable")]
    local = local_of[answers.item[rows]]
    per_item = np.bincount(local, minlength=len(items))
    rank = np.arange(len(rows)) - np.searchsorted(local, local)
    n_states = np.minimum(per_item, max_overlap)
    offset = np.cumsum(n_states) - n_states
    copies = np.maximum(n_states[local] - rank, 0)  # the answer of rank r is in states j = r+1 .. n_states
    answer = np.repeat(rows, copies)
    j = np.repeat(rank, copies) + _ranks(copies)
    virtual = np.repeat(offset[local], copies) + j
    soft = None
    if answers.soft is not None:
        soft_local = local_of[answers.soft.item]
        soft_rows = np.flatnonzero(soft_local >= 0)
        soft_copies = n_states[soft_local[soft_rows]]
        source = np.repeat(soft_rows, soft_copies)
        soft = SoftAnswers(
            item=(np.repeat(offset[soft_local[soft_rows]], soft_copies) + _ranks(soft_copies)).astype(np.int32),
            worker=answers.soft.worker[source],
            probs=answers.soft.probs[source],
        )
    states = replace(
        answers,
        item=virtual.astype(np.int32),
        worker=answers.worker[answer],
        label=answers.label[answer],
        items=pd.RangeIndex(int(n_states.sum())),
        weight=None if answers.weight is None else answers.weight[answer],
        time=None,
        soft=soft,
    )
    return states, np.repeat(items, n_states)


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., c-1 for each count c, concatenated."""
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
