"""The floor of a model's rows, learned from gold and from the conflicts a reviewer settled: a
model sure of a wrong label cannot keep outvoting people who agree on the right one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crowdloop.aggregation.base import Gold
from crowdloop.answers import Answers
from crowdloop.consensus import ConsensusPolicy
from crowdloop.consensus.decider import Opinions
from crowdloop.consensus.fitting import fit_decision
from crowdloop.labels import LabelSpace

K, N = 20, 800
POLICY = ConsensusPolicy(target=0.95, max_overlap=3)


def _project(seed: int = 0) -> tuple[Answers, Gold, Gold, pd.DataFrame, np.ndarray]:
    """Two answers per item from 85% annotators; a model .99 sure and right on most items and
    .9999 sure of a wrong label on 1.5% of them (the truth at 1e-9: another convention of the
    data). Gold: 100 random items, none of them among those 1.5% (seed 0). Reviewed: the items
    where the two people agreed against the model, with the model's rows (the conflicts)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, N)
    workers = rng.integers(0, 30, (N, 2))
    right = rng.random((N, 2)) < 0.85
    wrong_label = (truth[:, None] + rng.integers(1, K, (N, 2))) % K
    labels = np.where(right, truth[:, None], wrong_label)
    frame = pd.DataFrame({"task": np.repeat(np.arange(N), 2), "worker": workers.ravel(), "label": labels.ravel()})
    answers = Answers.from_frame(frame, labels=LabelSpace(list(range(K))))
    sure_wrong = rng.random(N) < 0.015
    top = np.where(sure_wrong, (truth + 1) % K, truth)
    probs = np.full((N, K), 1e-9)
    probs[~sure_wrong] = 0.01 / (K - 1)
    probs[np.arange(N), top] = np.where(sure_wrong, 1 - 1e-9 * (K - 1), 0.99)
    answers = answers.with_soft("model", answers.items, probs, temperature=1.0)
    codes = answers.labels.encode(truth)
    gold_items = rng.choice(N, 100, replace=False)
    gold = Gold(gold_items, codes[gold_items])
    agree = (labels[:, 0] == labels[:, 1]) & (labels[:, 0] != top)
    reviewed_items = np.setdiff1d(np.flatnonzero(agree), gold_items)
    reviewed = Gold(reviewed_items, codes[reviewed_items])
    conflicts = pd.DataFrame(
        [(i, k, probs[i, k], 1.0) for i in reviewed_items for k in np.argsort(-probs[i])[:10]],
        columns=["item", "label", "prob", "temperature"],
    )
    return answers, gold, reviewed, conflicts, top


def test_the_conflicts_a_reviewer_settled_bound_what_a_model_row_says_against_people() -> None:
    answers, gold, reviewed, conflicts, top = _project()
    assert len(reviewed.items) >= 8  # the model's confident errors, found where people disagreed with it
    without = fit_decision(answers, gold, POLICY, reviewed=reviewed)
    learned = fit_decision(answers, gold, POLICY, reviewed=reviewed, conflicts=conflicts)
    assert without.model_floor < 1e-5 < 1e-3 < learned.model_floor  # the gold alone never saw the model wrong
    # two 85% annotators who agree against a row .9999 sure of another label
    i = int(reviewed.items[0])
    row = {"row": np.zeros(K, dtype=np.int64), "item": np.zeros(K, dtype=np.int64), "label": np.arange(K),
           "prob": np.where(np.arange(K) == top[i], 1 - 1e-9 * (K - 1), 1e-9), "temperature": np.ones(K)}  # fmt: skip
    people = int(reviewed.labels[0])
    opinions = Opinions.of(1, [0, 0], [people, people], [0.85, 0.85], row)
    assert int(without.decider(answers.labels, POLICY).posterior(opinions).top()[0][0]) == top[i]
    assert int(learned.decider(answers.labels, POLICY).posterior(opinions).top()[0][0]) == people


def test_a_model_right_wherever_people_checked_it_keeps_its_weight() -> None:
    """No conflicts, and gold the model is right on: the floor stays small."""
    answers, gold, _, _, top = _project(seed=1)
    honest = gold.items[top[gold.items] == gold.labels]
    model = fit_decision(answers, Gold(honest, gold.labels[np.isin(gold.items, honest)]), POLICY)
    assert model.model_floor < 0.01
