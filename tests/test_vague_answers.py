"""How right answers are worded: the label itself or a vaguer ancestor, learned by EM, and what
that does to a category that has children of its own."""

from __future__ import annotations

import numpy as np
import pytest

from crowdloop.aggregation.base import Gold
from crowdloop.answers import Answers
from crowdloop.consensus import ConsensusPolicy
from crowdloop.consensus.decider import Decider, Opinions
from crowdloop.consensus.fitting import fit_decision
from crowdloop.consensus.vague_answers import VagueAnswers
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.simulation.taxonomies import synthetic_taxonomy
from crowdloop.simulation.taxonomy_crowd import Archetype, simulate_taxonomy_crowd

DECOR = Taxonomy.from_paths(
    ["Decor", "Decor > Showpieces", "Decor > Showpieces > Ethnic", "Decor > Showpieces > Figurines", "Decor > Lamps",
     "Decor > Clocks", "Toys", "Toys > Cars", "Toys > Dolls"]
)  # fmt: skip


@pytest.mark.parametrize("share", [0.05, 0.3])
def test_a_right_answer_names_the_truth_or_one_of_its_ancestors(share) -> None:
    wording = VagueAnswers(DECOR, share)
    ancestors = DECOR.depth - 1
    total = np.exp(wording.log_exact) + ancestors * np.exp(wording.log_ancestor)
    assert np.allclose(total, 1.0)
    assert np.allclose(np.exp(wording.log_exact[ancestors == 0]), 1.0)  # a top level has nothing vaguer


def test_without_a_share_or_a_taxonomy_every_label_on_the_path_is_alike() -> None:
    for wording in (VagueAnswers(DECOR), VagueAnswers(LabelSpace(list("abc")), 0.3)):
        assert np.allclose(wording.log_exact, 0.0) and np.allclose(wording.log_ancestor[wording.depth > 1], 0.0)


def _crowd(inner_share: float, seed: int = 0) -> tuple[Answers, Gold, float]:
    taxonomy = Taxonomy.from_paths(synthetic_taxonomy(300, roots=6, max_depth=3, seed=seed))
    frame, truth = simulate_taxonomy_crowd(
        taxonomy, n_items=1500, n_workers=40, answers_per_item=3, archetypes=(Archetype("annotator", 1.0, 8.0, 2.0),),
        inner_share=inner_share, random_state=seed,
    )  # fmt: skip
    answers = Answers.from_frame(frame, labels=taxonomy)
    known = taxonomy.encode(truth.to_numpy())
    answered, true = answers.label, known[answers.item]
    deep = taxonomy.depth[true] > 1
    on_path = (taxonomy.lca_depth(answered, true) == taxonomy.depth[answered]) & deep
    vague = float((on_path & (answered != true)).sum() / on_path.sum())  # the crowd's share, counted on the truth
    gold = np.arange(150)
    return answers, Gold(gold, known[gold]), vague


@pytest.mark.parametrize("inner_share", [0.0, 0.1, 0.3])
def test_em_learns_how_often_a_right_answer_names_an_ancestor(inner_share) -> None:
    answers, gold, vague = _crowd(inner_share)
    learned = fit_decision(answers, gold, ConsensusPolicy(target=0.95, max_overlap=5)).vague_share
    assert learned == pytest.approx(vague, rel=0.15, abs=0.01)  # within 15% of the crowd's own share


def test_people_who_all_name_a_category_outweigh_a_model_that_prefers_a_child_of_it() -> None:
    """Three annotators say "Decor > Showpieces", which is a category of its own and has children;
    the model prefers the child "Ethnic". Counted as right about every child alike, the answers
    are no evidence against the child, so the item stays on the model's label, which no one named,
    and goes to an expert; with vague answers rare, people who meant the child would have named it."""
    showpieces, ethnic = DECOR.encode(["Decor > Showpieces", "Decor > Showpieces > Ethnic"])
    probs = np.full(len(DECOR), 0.02)
    probs[[ethnic, showpieces]] = [0.6, 0.26]
    probs /= probs.sum()
    row = {"row": np.zeros(len(DECOR), dtype=np.int64), "item": np.zeros(len(DECOR), dtype=np.int64),
           "label": np.arange(len(DECOR)), "prob": probs, "temperature": np.ones(len(DECOR))}  # fmt: skip
    opinions = Opinions.of(1, [0, 0, 0], [showpieces] * 3, [0.85] * 3, row)
    policy = ConsensusPolicy(target=0.95, max_overlap=3, partial=False)  # a leaf or the category itself
    alike = Decider(DECOR, policy, typical_skill=0.85, calibrator=None).decide(opinions)
    assert int(alike.label[0]) == ethnic and alike.status[0] != "accepted"
    worded = Decider(DECOR, policy, typical_skill=0.85, calibrator=None, vague_share=0.1).decide(opinions)
    assert (worded.status[0], int(worded.label[0])) == ("accepted", showpieces)
