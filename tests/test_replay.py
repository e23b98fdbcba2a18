from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crowdloop.answers import Answers
from crowdloop.consensus.control import TypicalSkill, outlook
from crowdloop.consensus.engine import DynamicConsensus
from crowdloop.consensus.policy import ConsensusPolicy, Prices
from crowdloop.errors import ConfigError
from crowdloop.simulation.crowds import WorkerArchetype, synthetic_crowd
from crowdloop.simulation.replay import METRICS, fixed_overlap, make_plan, replay, truth_codes

OVERLAP = 7


@pytest.fixture(scope="module")
def crowd() -> tuple[Answers, pd.Series]:
    frame, truth = synthetic_crowd(3_000, OVERLAP, 80, 3, random_state=11)
    return Answers.from_frame(frame), truth


@pytest.fixture(scope="module")
def result(crowd: tuple[Answers, pd.Series]):
    answers, truth = crowd
    policy = DynamicConsensus(ConsensusPolicy(target=0.95, max_overlap=OVERLAP))
    return replay(answers, truth, policy, gold_share=0.2, seeds=(0, 1), fixed_methods=("mv",))


def test_stops_early_and_matches_fixed_overlap(result) -> None:
    s = result.summary["mean"]
    assert s["answers_per_item"] < 0.75 * OVERLAP  # easy items stop early
    assert set(METRICS) <= set(result.per_seed.columns)
    mv_all = result.fixed_summary().query("n == @OVERLAP")["accuracy"].iloc[0]
    assert s["accuracy"] >= mv_all - 0.02
    assert s["accuracy_expert"] >= s["accuracy"]
    assert 0 <= s["escalation_rate"] <= 1 and abs(s["accepted_share"] + s["escalation_rate"] - 1) < 1e-9


def test_accepted_items_are_calibrated(result) -> None:
    accepted = result.per_seed["accepted_accuracy"]
    assert (result.per_seed["n_accepted"] > 500).all()
    assert accepted.mean() >= result.target - 0.02


def test_deterministic_for_a_seed(crowd: tuple[Answers, pd.Series]) -> None:
    answers, truth = crowd
    small = answers.subset(answers.item < 600)
    policy = DynamicConsensus(ConsensusPolicy(target=0.9, max_overlap=OVERLAP), skills="gold", calibrate=False)
    first = replay(small, truth, policy, seeds=(3,))
    again = replay(small, truth, policy, seeds=(3,))
    other = replay(small, truth, policy, seeds=(4,))
    pd.testing.assert_frame_equal(first.per_seed, again.per_seed)
    assert not first.per_seed.drop(columns="seed").equals(other.per_seed.drop(columns="seed"))


def test_gold_items_are_excluded(crowd: tuple[Answers, pd.Series]) -> None:
    answers, truth = crowd
    codes = truth_codes(answers, truth)
    plan = make_plan(answers, codes, 0.25, seed=0)
    assert plan.gold.sum() == 750 and not (plan.gold & plan.evaluated).any()
    assert plan.evaluated.sum() == 2_250
    # random orders: each item's ranks are 0..n-1, and two seeds differ
    ranks = pd.Series(plan.rank).groupby(answers.item).agg(["min", "max", "nunique"])
    assert (ranks["min"] == 0).all() and (ranks["max"] == OVERLAP - 1).all() and (ranks["nunique"] == OVERLAP).all()
    assert not np.array_equal(plan.rank, make_plan(answers, codes, 0.25, seed=1).rank)
    # the gold overhead is reported apart, and evaluated items only count what they were paid
    policy = DynamicConsensus(ConsensusPolicy(target=0.9, max_overlap=OVERLAP), skills="gold", calibrate=False)
    small = answers.subset(answers.item < 400)
    out = replay(small, truth, policy, gold_share=0.25, seeds=(0,)).per_seed.iloc[0]
    assert out["n_evaluated"] == 300
    assert out["gold_answers_per_item"] == pytest.approx(100 * OVERLAP / 300)
    assert out["answers_per_item"] <= OVERLAP


def test_fixed_overlap_curve_rises(crowd: tuple[Answers, pd.Series]) -> None:
    answers, truth = crowd
    small = answers.subset(answers.item < 1_000)
    curve = fixed_overlap(small, truth, ("mv", "ds"), seeds=(0,))
    mv = curve[curve["method"] == "mv"].set_index("n")
    assert list(mv.index) == list(range(1, OVERLAP + 1))
    assert mv.loc[OVERLAP, "accuracy"] > mv.loc[1, "accuracy"] + 0.05
    assert mv.loc[OVERLAP, "answers_per_item"] == OVERLAP


def test_bad_parameters(crowd: tuple[Answers, pd.Series]) -> None:
    answers, truth = crowd
    with pytest.raises(ConfigError):
        replay(answers, truth, DynamicConsensus(), gold_share=1.0)
    with pytest.raises(ConfigError):
        replay(answers, truth, "majority")  # type: ignore[arg-type]


def test_value_of_information_stop_saves_answers(crowd: tuple[Answers, pd.Series], result) -> None:
    answers, truth = crowd
    # keep asking while any answer might help (no expert) against stopping once a label is expected
    # to cost more answers to finish than it is worth (3 answers)
    keep = DynamicConsensus(ConsensusPolicy(target=0.97, max_overlap=OVERLAP, escalate_early=False))
    stop = DynamicConsensus(ConsensusPolicy(target=0.97, max_overlap=OVERLAP, escalate_early=False, label_value=3))
    kept = replay(answers, truth, keep, seeds=(0,)).per_seed.iloc[0]
    stopped = replay(answers, truth, stop, seeds=(0,)).per_seed.iloc[0]
    assert stopped["answers_per_item"] < kept["answers_per_item"] - 0.25
    assert stopped["accuracy_expert"] >= kept["accuracy"] - 0.015  # the stopped ones go to an expert
    assert stopped["accepted_accuracy"] >= 0.97 - 0.015


def test_costed_lookahead_escalates_when_the_expert_is_cheaper() -> None:
    policy = ConsensusPolicy(target=0.95, max_overlap=6, prices=Prices(crowd=1.0, expert=10.0))
    raw = np.array([0.96, 0.9, 0.6, 0.5])
    ahead = outlook(raw, 1 - raw, np.full(4, 2), np.ones(4, dtype=bool), policy, 0.8, 2, lambda r, n: r)
    assert ahead.reached.tolist() == [True, False, False, False]
    assert ahead.go_on[1:].all() and np.isfinite(ahead.needed[1:]).all()
    assert ahead.expected_answers[1] < ahead.expected_answers[3]  # near the target: fewer answers to go
    assert ahead.expert_probability[1] < ahead.expert_probability[3]
    cheap = replace(policy, prices=Prices(crowd=1.0, expert=1.5))
    assert not outlook(raw, 1 - raw, np.full(4, 2), np.ones(4, dtype=bool), cheap, 0.8, 2, lambda r, n: r).go_on[3]
    weak = outlook(raw, 1 - raw, np.full(4, 2), np.ones(4, dtype=bool), policy, 0.55, 2, lambda r, n: r)
    assert not weak.go_on[2:].any() and np.isinf(weak.needed[2:]).all()  # out of reach with such skills
    with pytest.raises(ConfigError, match="label_value"):
        ConsensusPolicy(label_value=0)


def test_unknown_crowd_is_explored_not_escalated() -> None:
    """Cold start (stated prior 0.7, no task with two answers, two labels, target 0.97, an expert at
    10): at the point estimate the expert is cheaper after the first answer, so every task would be
    escalated and the crowd's accuracy never learned. Integrated over the prior's spread, going on
    pays; once 500 tasks have shown the crowd is 0.7, the decision is the point estimate's again."""
    policy = ConsensusPolicy(target=0.97, max_overlap=5, prices=Prices(crowd=1.0, expert=10.0))
    raw = np.full(3, 0.7)
    args = (raw, 1 - raw, np.ones(3, dtype=int), np.ones(3, dtype=bool), policy)
    assert not outlook(*args, 0.7, 2, lambda r, n: r).go_on.any()
    unknown = outlook(*args, TypicalSkill(0.7, evidence=4.0), 2, lambda r, n: r)
    assert unknown.go_on.all() and (unknown.expert_probability < 1).all()
    assert not outlook(*args, TypicalSkill(0.7, evidence=500.0), 2, lambda r, n: r).go_on.any()
    assert outlook(*args, TypicalSkill(0.93, evidence=500.0), 2, lambda r, n: r).go_on.all()


@pytest.mark.parametrize(("skill", "most_escalated"), [((18.0, 1.0), False), ((6.0, 4.0), True)])
def test_cold_start_learns_the_crowd_before_escalating(skill: tuple[float, float], most_escalated: bool) -> None:
    """No gold, the default policy (prior 0.7, target 0.97, an expert at 10): a good crowd (0.95)
    is learned from its agreement and settles most tasks itself; a poor one (0.6) is found out
    and sent to the expert after a few answers rather than explored to ``max_overlap``."""
    good = (WorkerArchetype("only", 1.0, *skill),)
    frame, truth = synthetic_crowd(600, 5, 40, 2, archetypes=good, class_noise=0.0, bias_share=0.0, random_state=3)
    policy = DynamicConsensus(ConsensusPolicy(max_overlap=5))
    s = replay(frame, truth, policy, gold_share=0.0, seeds=(0,)).summary["mean"]
    if most_escalated:
        assert s["escalation_rate"] > 0.5 and s["answers_per_item"] < 3.5
    else:
        assert s["escalation_rate"] < 0.1 and s["accepted_accuracy"] >= 0.95 and s["answers_per_item"] < 3.5
