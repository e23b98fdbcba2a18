"""The periodic full refit, as array computations on everything stored for a project.

Skills: ``DynamicConsensus.fit(skills="gold")`` (the taxonomy skill model's EM over all answers
with gold and reviewers' decisions clamped, annotator accuracy from gold with a prior), each model
version's temperature learned like a worker's reliability. Calibrator: a ``TopLabelCalibrator``
fitted on the prefix states of the gold items (the item after its first 1, 2, ... answers, as the
stopping rule sees it) scored by the online posterior with cross-fitted skills, so that the loop's
calibrated 0.97 means 97% right. Branch skills (taxonomies): ``BranchSkills`` on the gold and reviewed labels.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.answers import Answers
from crowdloop.consensus import BranchSkills, ConsensusPolicy, DynamicConsensus, SkillBook, SkillRules
from crowdloop.consensus.engine import prefix_states
from crowdloop.errors import InputError
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service.online import OnlineConsensus, Opinions

MIN_CALIBRATION_STATES = 100
"""Gold prefix states needed before the refit calibrates the online decision; fewer, or states at a
single answer count, leave it on the raw posterior (whose gold-based skills are honest on their own)."""


@dataclass(frozen=True)
class StoredAnswers:
    """The human answers of a project (database ids and label codes) and the model rows."""

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    truth_item: np.ndarray  # gold items and reviewed items ...
    truth_label: np.ndarray  # ... and their labels
    soft: pd.DataFrame  # columns version, item, label, prob (top labels of each prediction)


@dataclass(frozen=True)
class RefitResult:
    skill_model: str
    annotators: np.ndarray  # database ids
    answers: np.ndarray  # answers of each in the refit
    skill: np.ndarray  # their refit skill
    temperatures: dict[int, float]  # model version id -> temperature
    calibrator: TopLabelCalibrator | None
    typical_skill: float
    branch_skills: dict[int, dict[str, float]]  # annotator id -> {branch code: skill}


def refit(stored: StoredAnswers, labels: LabelSpace, policy: ConsensusPolicy, rules: SkillRules) -> RefitResult | None:
    """Fit skills, temperatures, calibrator and branch skills (None: no answers yet)."""
    if not len(stored.item):
        return None
    items, item_code = np.unique(stored.item, return_inverse=True)
    workers, worker_code = np.unique(stored.annotator, return_inverse=True)
    answers = Answers(
        item=item_code.astype(np.int32),
        worker=worker_code.astype(np.int32),
        label=stored.label.astype(np.int32),
        items=pd.Index(items),
        workers=pd.Index(workers),
        labels=labels,
    )
    soft = stored.soft[np.isin(stored.soft["item"].to_numpy(), items)] if len(stored.soft) else stored.soft
    versions = sorted(soft["version"].unique().tolist()) if len(soft) else []
    with_soft = answers
    for version in versions:
        rows = soft[soft["version"] == version]
        row_of, row_items = pd.factorize(rows["item"])
        matrix = sp.csr_matrix(
            (rows["prob"].to_numpy(np.float64), (row_of, rows["label"].to_numpy(np.int64))),
            shape=(len(row_items), len(labels)),
        )
        sums = np.asarray(matrix.sum(axis=1)).ravel()
        matrix = sp.csr_matrix(sp.diags(1.0 / np.maximum(sums, 1e-12)) @ matrix)  # top labels renormalised
        with_soft = with_soft.with_soft(f"model:{version}", row_items.to_numpy(), matrix)
    known = np.isin(stored.truth_item, items)
    gold = pd.Series(labels.decode(stored.truth_label[known]), index=pd.Index(stored.truth_item[known]))
    # skills from gold: with many items answered once, the EM has no disagreement to learn from and
    # takes every annotator for better than gold shows; the EM still picks and fits the model
    engine = DynamicConsensus(policy, rules=rules, skills="gold").fit(with_soft, gold if len(gold) else None)
    n_answers = np.bincount(answers.worker, minlength=answers.n_workers)
    skill = np.asarray(engine.skill_, dtype=np.float64)[: answers.n_workers]
    temperatures_series = getattr(engine.model_, "soft_temperatures_", None)
    if temperatures_series is None:
        temperatures_series = getattr(engine.model_, "temperatures_", pd.Series(dtype=np.float64))
    temperatures = {
        int(str(name).split(":", 1)[1]): float(value)
        for name, value in temperatures_series.items()
        if str(name).startswith("model:")
    }
    book = SkillBook(answers.n_workers, rules)
    book.refresh(skill, n_answers)
    online_skill = book.accuracy()
    typical = float(np.median(online_skill))
    calibrator = _calibrator(answers, soft, temperatures, gold, labels, policy, book, typical)
    branch = _branch_skills(answers, gold, labels, online_skill)
    return RefitResult(
        skill_model=engine.kind_,
        annotators=workers,
        answers=n_answers,
        skill=skill,
        temperatures=temperatures,
        calibrator=calibrator,
        typical_skill=typical,
        branch_skills=branch,
    )


def _calibrator(
    answers: Answers,
    soft: pd.DataFrame,
    temperatures: dict[int, float],
    gold: pd.Series,
    labels: LabelSpace,
    policy: ConsensusPolicy,
    book: SkillBook,
    typical: float,
) -> TopLabelCalibrator | None:
    r"""Fitted on the gold items' prefix states under the online posterior (None: too little gold).

    Cross-fitted: the gold items fall in two halves, and an answer on an item of one half is
    weighed with its annotator's gold accuracy on the other half, $(m\mu + c_w^{(-f)}) / (m +
    n_w^{(-f)})$ (the skills the loop uses are gold accuracies too, ``skills="gold"``). Scoring a gold
    item with skills that counted its own answers would make them look more reliable than a new
    item's; leaving just that answer out would make right answers look less reliable than wrong
    ones (with few gold answers each, the curve would even slope down)."""
    if not len(gold):
        return None
    gold_codes = answers.items.get_indexer(gold.index)
    truth = np.full(answers.n_items, -1, dtype=np.int64)
    truth[gold_codes] = labels.encode(gold.to_numpy())
    states, state_item = prefix_states(answers, gold_codes, policy.max_overlap)
    # the model rows of each gold item go with every one of its states
    state_of = pd.DataFrame({"state": np.arange(len(state_item)), "item": answers.items.to_numpy()[state_item]})
    rows = soft.merge(state_of, on="item") if len(soft) else soft
    frame = None
    if len(rows):
        frame = pd.DataFrame(
            {
                "row": rows["state"].to_numpy() * (max(temperatures, default=0) + 1) + rows["version"].to_numpy(),
                "item": rows["state"].to_numpy(),
                "label": rows["label"].to_numpy(),
                "prob": rows["prob"].to_numpy(),
                "temperature": rows["version"].map(temperatures).fillna(1.0).to_numpy(),
            }
        )
    rules = book.rules
    fold = np.full(answers.n_items, -1, dtype=np.int64)
    fold[gold_codes] = np.random.default_rng(0).permutation(len(gold_codes)) % 2
    on_gold = fold[answers.item] >= 0
    key = answers.worker[on_gold].astype(np.int64) * 2 + fold[answers.item[on_gold]]
    correct = labels.credit(answers.label[on_gold], truth[answers.item[on_gold]])
    right_in = np.bincount(key, weights=correct, minlength=2 * answers.n_workers).reshape(-1, 2)
    total_in = np.bincount(key, minlength=2 * answers.n_workers).reshape(-1, 2)
    other = 1 - fold[state_item[states.item]]  # the half the state's item is not in
    m, mu = rules.prior_strength, rules.prior_mean
    skill = (m * mu + right_in[states.worker, other]) / (m + total_in[states.worker, other])
    opinions = Opinions.of(states.n_items, states.item, states.label, skill, frame)
    online = OnlineConsensus(labels, policy, rules, typical_skill=typical)
    label, raw = online.raw(opinions)
    right = label == truth[state_item]
    counts = opinions.counts()
    if len(raw) < MIN_CALIBRATION_STATES or len(np.unique(counts)) < 2:
        return None  # a curve from fewer states, or from one answer count only, would be guesswork
    calibrator = TopLabelCalibrator(features=("confidence", "n_answers"))
    with contextlib.suppress(InputError):  # all of it right, or all wrong: stay raw
        return calibrator.fit(raw, right, n_answers=counts)
    return None


def _branch_skills(
    answers: Answers, gold: pd.Series, labels: LabelSpace, skill: np.ndarray
) -> dict[int, dict[str, float]]:
    if not isinstance(labels, Taxonomy) or not len(gold):
        return {}
    truth = np.full(answers.n_items, -1, dtype=np.int64)
    truth[answers.items.get_indexer(gold.index)] = labels.encode(gold.to_numpy())
    branches = BranchSkills().fit(answers, truth, skill)
    codes = [str(int(c)) for c in branches.branches_]
    return {
        int(worker): dict(zip(codes, branches.skill_[w].round(6).tolist(), strict=True))
        for w, worker in enumerate(answers.workers)
    }
