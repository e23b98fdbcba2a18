"""Where wrong answers land: one-coin Dawid-Skene without a sibling share, a learned share of
siblings in a taxonomy, and what that does to the posterior of a state a uniform spread gets wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdloop.aggregation.base import Gold
from crowdloop.answers import Answers
from crowdloop.consensus import ConsensusPolicy
from crowdloop.consensus.decider import Decider, Opinions
from crowdloop.consensus.fitting import fit_decision
from crowdloop.consensus.wrong_answers import WrongAnswers
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.simulation.taxonomies import synthetic_taxonomy
from crowdloop.simulation.taxonomy_crowd import Archetype, simulate_taxonomy_crowd

POLICY = ConsensusPolicy(target=0.95, max_overlap=5)
LINGERIE = Taxonomy.from_paths(
    [
        "Lingerie", *(f"Lingerie > {k}" for k in ("bras", "briefs", "sleepwear", "swimwear")),
        "Tools", "Tools > drills", "Tools > saws", "Kitchen", "Kitchen > pans", "Kitchen > knives",
    ]
)  # fmt: skip
STORE = Taxonomy.from_paths([*LINGERIE.labels, *(f"Aisle {a} > shelf {b}" for a in range(20) for b in range(5))])


@pytest.mark.parametrize("labels", [LabelSpace(list("abcde")), LINGERIE])
def test_without_a_sibling_share_a_wrong_answer_lands_anywhere_alike(labels) -> None:
    shape = WrongAnswers(labels)
    k = len(labels)
    answered, truth = np.meshgrid(np.arange(k), np.arange(k))
    other = answered != truth
    assert np.allclose(shape.log_probability(answered[other], truth[other]), -np.log(k - 1))


def test_a_learned_share_puts_wrong_answers_on_siblings() -> None:
    shape = WrongAnswers(LINGERIE, 0.8)
    bras, briefs, drills = (LINGERIE.encode([f"{name}"])[0] for name in ("Lingerie > bras", "Lingerie > briefs",
                                                                          "Tools > drills"))  # fmt: skip
    sibling, elsewhere = np.exp(shape.log_probability(np.array([briefs, drills]), np.array([bras, bras])))
    assert sibling == pytest.approx(0.8 / 3) and elsewhere == pytest.approx(0.2 / (len(LINGERIE) - 1 - 3))


def _crowd(error_mix: tuple[float, float, float], seed: int = 0) -> tuple[Answers, Gold]:
    taxonomy = Taxonomy.from_paths(synthetic_taxonomy(300, roots=6, max_depth=3, seed=seed))
    frame, truth = simulate_taxonomy_crowd(
        taxonomy, n_items=1500, n_workers=40, answers_per_item=3, archetypes=(Archetype("annotator", 1.0, 7.0, 3.0),),
        error_mix=error_mix, inner_share=0.0, random_state=seed,
    )  # fmt: skip
    answers = Answers.from_frame(frame, labels=taxonomy)
    gold = np.arange(150)
    return answers, Gold(gold, taxonomy.encode(truth.iloc[gold].to_numpy()))


def _siblings_among_wrong(answers: Answers, gold: Gold) -> float:
    """The share of wrong answers on gold items whose label has siblings that name one."""
    truth = np.full(answers.n_items, -1)
    truth[gold.items] = gold.labels
    shape = WrongAnswers(answers.labels)
    on_gold = truth[answers.item] >= 0
    label, true = answers.label[on_gold], truth[answers.item[on_gold]]
    wrong = (label != true) & (shape.children[shape.parent[label]] > 1)
    return float((shape.parent[label[wrong]] == shape.parent[true[wrong]]).mean())


@pytest.mark.parametrize("error_mix", [(1.0, 0.0, 0.0), (0.5, 0.0, 0.5), (0.0, 0.0, 1.0)])
def test_em_learns_how_often_a_wrong_answer_names_a_sibling(error_mix) -> None:
    answers, gold = _crowd(error_mix)
    share = fit_decision(answers, gold, POLICY).sibling_share
    assert share == pytest.approx(_siblings_among_wrong(answers, gold), abs=0.08)


def test_a_flat_label_space_has_no_sibling_share() -> None:
    frame = pd.DataFrame({"task": [0, 0, 1, 1], "worker": ["u", "v", "u", "v"], "label": ["a", "a", "b", "a"]})
    answers = Answers.from_frame(frame)
    assert fit_decision(answers, Gold(np.array([0]), np.array([0])), POLICY).sibling_share is None


@pytest.mark.parametrize("share", [None, 0.7])
def test_a_vague_answer_backs_every_child_of_what_it_named(share) -> None:
    """Someone says "Lingerie" (right, but vague), a 30%-accurate annotator says "bras": the vague
    answer backs briefs, sleepwear and swimwear as well as bras, so bras stays a guess."""
    vague, bras = LINGERIE.encode(["Lingerie", "Lingerie > bras"])
    decider = Decider(LINGERIE, POLICY, typical_skill=0.7, sibling_share=share)
    label, confidence = decider.raw(Opinions.of(1, [0, 0], [vague, bras], [0.9, 0.3]))
    assert label[0] == bras and confidence[0] < 0.6


def test_two_poor_annotators_agreeing_on_a_leaf_do_not_rule_out_its_siblings() -> None:
    """Two 40%-accurate annotators both say "bras" among 120 labels. Spread evenly over the other
    labels, two wrong answers agree by chance once in thousands, so bras is near certain; when
    wrong answers are mostly siblings, two of them naming the same sibling is common."""
    bras = STORE.encode(["Lingerie > bras"])[0]
    opinions = Opinions.of(1, [0, 0], [bras, bras], [0.4, 0.4])
    spread = Decider(STORE, POLICY, typical_skill=0.7).raw(opinions)[1][0]
    shaped = Decider(STORE, POLICY, typical_skill=0.7, sibling_share=0.7).raw(opinions)[1][0]
    assert spread > 0.95 and shaped < 0.85
