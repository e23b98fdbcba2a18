"""The costed lookahead (``consensus.control.outlook``) and the decisions built on it stay what
they were when the recursion ran one skill node at a time: on a grid of item states, label
counts, beliefs about the crowd's skill, policies and calibrators, every decision (reached, go on,
answers needed, status, answers to order) is the same and every expected value agrees to 1e-9.

The reference (``data/control_reference.json``) was written by the per-node recursion (one
``_recursion`` call per quantile node of the typical skill, commit 383f460); its decisions with a
fitted calibrator were written again when the cautious confidence was made monotone (the outlook
rows, which use a calibrator function, came out the same), and its priorities when the priority
became a share of the most one answer can give (``consensus.priority``; the order the same);
``python tests/test_control.py`` writes it again from the code as it is, for a change of
decisions made on purpose."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.consensus import ConsensusPolicy
from crowdloop.consensus.control import TypicalSkill, outlook
from crowdloop.consensus.decider import Decider, Opinions
from crowdloop.consensus.policy import Prices
from crowdloop.labels import LabelSpace, Taxonomy

REFERENCE = Path(__file__).parent / "data" / "control_reference.json"
BENCH = ConsensusPolicy(target=0.9, min_overlap=1, max_overlap=3)
POLICIES = {
    "bench": BENCH,
    "strict": ConsensusPolicy(target=0.97, max_overlap=5),
    "no expert": ConsensusPolicy(target=0.95, max_overlap=5, escalate_early=False),
    "label value": ConsensusPolicy(target=0.97, max_overlap=5, escalate_early=False, label_value=3),
    "two at least": ConsensusPolicy(target=0.9, min_overlap=2, max_overlap=6),
    "cheap expert": replace(BENCH, max_overlap=4, prices=Prices(crowd=1.0, expert=1.5)),
}
SKILLS = {
    "0.55": 0.55,
    "0.8": 0.8,
    "0.95": 0.95,
    "0.7 of 4": TypicalSkill(0.7, 4.0),
    "0.75 of 30": TypicalSkill(0.75, 30.0),
    "0.85 of 300": TypicalSkill(0.85, 300.0),
    "0.8 of 1e5": TypicalSkill(0.8, 1e5),  # narrower than the resolution: one node
}


def shrink(raw: np.ndarray, n: np.ndarray) -> np.ndarray:
    """A calibrator of the flat (raw, answers) arrays: raw confidence shrunk, less with more answers."""
    return raw * (1 - 0.08 / (n + 1))


def outlook_cases() -> list[tuple[str, str, int, str]]:
    """(policy, skill, labels, calibrator): every skill and label count, two policies each."""
    names = list(POLICIES)
    cases = []
    for i, skill in enumerate(SKILLS):
        for j, k in enumerate((2, 5, 34)):
            for policy in (names[(i + j) % len(names)], names[(i + j + 3) % len(names)]):
                cases.append((policy, skill, k, "shrink" if (i + j) % 2 else "none"))
    return cases


def item_states(policy: ConsensusPolicy, seed: int, n: int = 40) -> tuple[np.ndarray, ...]:
    """``n`` items: raw and runner-up confidence, answers (0 to max_overlap) and whether labelled;
    the last quarter repeats states of the others, as items in the same state do in a batch."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.05, 0.999, n)
    second = (1 - raw) * rng.uniform(0, 1, n)
    answers = rng.integers(0, policy.max_overlap + 1, n)
    has_label = (answers > 0) | (rng.random(n) < 0.3)  # an item with model votes only has a label
    again = rng.integers(0, n - n // 4, n // 4)
    return tuple(np.concatenate([x[: n - n // 4], x[again]]) for x in (raw, second, answers, has_label))


def outlook_rows() -> list[dict]:
    rows = []
    for seed, (policy_name, skill_name, k, calibrator) in enumerate(outlook_cases()):
        policy = POLICIES[policy_name]
        raw, second, answers, has_label = item_states(policy, seed)
        calibrate = shrink if calibrator == "shrink" else (lambda r, n: r)
        ahead = outlook(raw, second, answers, has_label, policy, SKILLS[skill_name], k, calibrate)
        rows.append({
            "case": [policy_name, skill_name, k, calibrator],
            "reached": ahead.reached.tolist(),
            "go_on": ahead.go_on.tolist(),
            "needed": [None if np.isinf(v) else int(v) for v in ahead.needed],
            "expected_answers": ahead.expected_answers.tolist(),
            "expert_probability": ahead.expert_probability.tolist(),
            "stop_cost": ahead.stop_cost,
        })  # fmt: skip
    return rows


def taxonomy() -> Taxonomy:
    return Taxonomy.from_paths([f"{a}" for a in "ABC"] + [f"{a} > {a}{b}" for a in "ABC" for b in range(4)])


def calibrator() -> TopLabelCalibrator:
    rng = np.random.default_rng(5)
    raw = rng.uniform(0.3, 1.0, 400)
    count = rng.integers(1, 5, 400)
    right = rng.random(400) < raw**1.5
    return TopLabelCalibrator(features=("confidence", "n_answers")).fit(raw, right, n_answers=count)


def decider_cases() -> list[tuple[str, str, bool]]:
    return [(policy, skill, fitted) for policy in ("bench", "strict") for skill in ("0.75 of 30", "0.8")
            for fitted in (False, True)]  # fmt: skip


def decision_rows() -> list[dict]:
    """``Decider.decide`` on a batch of items of a taxonomy answered by annotators of mixed skill."""
    labels = taxonomy()
    fitted = calibrator()
    rows = []
    for seed, (policy_name, skill_name, with_calibrator) in enumerate(decider_cases()):
        rng = np.random.default_rng(100 + seed)
        n_items = 120
        counts = rng.integers(0, POLICIES[policy_name].max_overlap + 1, n_items)
        item = np.repeat(np.arange(n_items), counts)
        truth = rng.integers(0, len(labels), n_items)
        skill = rng.uniform(0.5, 0.95, len(item))
        right = rng.random(len(item)) < skill
        label = np.where(right, truth[item], rng.integers(0, len(labels), len(item)))
        belief = SKILLS[skill_name]
        mean, evidence = (belief.mean, belief.evidence) if isinstance(belief, TypicalSkill) else (belief, np.inf)
        decider = Decider(
            labels,
            POLICIES[policy_name],
            typical_skill=mean,
            skill_evidence=evidence,
            calibrator=fitted if with_calibrator else None,
        )
        table = decider.decide(Opinions.of(n_items, item, label, skill))
        rows.append({
            "case": [policy_name, skill_name, with_calibrator],
            "status": table.status.tolist(),
            "label": table.label.tolist(),
            "next": table.next.tolist(),
            "confidence": table.confidence.tolist(),
            "expected": table.expected.tolist(),
            "expert": table.expert.tolist(),
            "priority": table.priority.tolist(),
        })  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


EXACT = {"case", "reached", "go_on", "needed", "status", "label", "next"}


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for new, old in zip(got, want, strict=True):
        assert new["case"] == old["case"]
        for name, value in old.items():
            if name in EXACT:
                assert new[name] == value, (old["case"], name)
            else:
                np.testing.assert_allclose(new[name], value, rtol=1e-9, atol=1e-12, err_msg=f"{old['case']} {name}")


def test_the_lookahead_decides_as_before_on_a_grid_of_states(reference: dict) -> None:
    assert_same(outlook_rows(), reference["outlook"])


def test_an_item_alone_is_judged_as_in_a_batch(reference: dict) -> None:
    for seed, (policy_name, skill_name, k, calibrator) in enumerate(outlook_cases()[:8]):
        policy = POLICIES[policy_name]
        calibrate = shrink if calibrator == "shrink" else (lambda r, n: r)
        want = reference["outlook"][seed]
        for i, state in enumerate(zip(*item_states(policy, seed), strict=True)):
            alone = outlook(*(np.array([v]) for v in state), policy, SKILLS[skill_name], k, calibrate)
            assert [bool(alone.go_on[0]), bool(alone.reached[0])] == [want["go_on"][i], want["reached"][i]]
            assert (None if np.isinf(alone.needed[0]) else int(alone.needed[0])) == want["needed"][i]
            assert alone.expected_answers[0] == pytest.approx(want["expected_answers"][i], rel=1e-9, abs=1e-12)


def test_the_decider_decides_as_before_on_a_taxonomy_with_and_without_a_calibrator(reference: dict) -> None:
    assert_same(decision_rows(), reference["decisions"])


def test_the_grid_reaches_every_kind_of_decision(reference: dict) -> None:
    """The reference is worth comparing with: it holds reached and open items, items going on and
    stopped, finite and unreachable targets, and every status."""
    flat = {name: [v for row in reference["outlook"] for v in row[name]] for name in ("reached", "go_on", "needed")}
    assert any(flat["reached"]) and not all(flat["reached"])
    assert any(flat["go_on"]) and not all(flat["go_on"])
    assert None in flat["needed"] and any(v is not None and v > 0 for v in flat["needed"])
    statuses = {s for row in reference["decisions"] for s in row["status"]}
    assert statuses == {"accepted", "more", "escalated"}
    assert len({tuple(row["case"][1:3]) for row in reference["outlook"]}) == len(SKILLS) * 3


if __name__ == "__main__":  # write the reference from the code as it is
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps({"outlook": outlook_rows(), "decisions": decision_rows()}) + "\n")
    sys.exit(0)


def test_a_young_calibrator_is_gold_still_coming_in_not_a_target_out_of_reach() -> None:
    """A calibrator from 120 gold states whose cautious value never reaches .97 (its estimate
    does): items go on rather than to the expert, since the gold answered meanwhile narrows the
    caution. Judged on the cautious value, the items with one and two answers were escalated."""
    rng = np.random.default_rng(0)
    answers = rng.integers(1, 4, 120)
    raw = np.where(answers >= 2, 1 - 10 ** -rng.uniform(3, 6, 120), rng.uniform(0.5, 0.99, 120))
    right = rng.random(120) < np.where(answers >= 2, 0.985, 0.75)
    young = TopLabelCalibrator(features=("confidence", "n_answers")).fit(raw, right, n_answers=answers)
    grid = 1 - 10 ** -np.linspace(2, 9, 50)
    assert (young.predict(grid, n_answers=np.full(50, 3), quantile=0.2) < 0.97).all()
    policy = ConsensusPolicy(target=0.97, min_overlap=1, max_overlap=3)
    decider = Decider(LabelSpace([f"l{i}" for i in range(30)]), policy, typical_skill=0.85, calibrator=young)
    decided = decider.decide(Opinions.of(3, [1, 2, 2], [0, 4, 4], [0.85] * 3))
    assert list(decided.status) == ["more", "more", "more"]
