"""Sibling errors in a taxonomy: the share of wrong answers among the truth's siblings is learned
from the answers, and the posterior that knows it is more honest than one-coin's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from crowdloop import Answers, LabelSpace, Taxonomy
from crowdloop.aggregation.base import Gold
from crowdloop.consensus import ConsensusPolicy
from crowdloop.consensus.fitting import fit_decision
from crowdloop.consensus.siblings import SiblingErrors, estimate_share
from crowdloop.simulation.taxonomies import synthetic_taxonomy
from crowdloop.simulation.taxonomy_crowd import Archetype, simulate_taxonomy_crowd

POLICY = ConsensusPolicy(target=0.95, max_overlap=3)
NO_SPAMMERS = (Archetype("good", 0.6, 17.0, 3.0), Archetype("sloppy", 0.4, 6.0, 4.0))


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_paths(synthetic_taxonomy(300, roots=6, seed=2))


def crowd(taxonomy: Taxonomy, error_mix: tuple[float, float, float]) -> tuple[Answers, np.ndarray]:
    frame, truth = simulate_taxonomy_crowd(
        taxonomy, n_items=1_500, n_workers=40, answers_per_item=3, error_mix=error_mix, inner_share=0.0,
        archetypes=NO_SPAMMERS, random_state=5,
    )  # fmt: skip
    answers = Answers.from_frame(frame, labels=taxonomy)
    return answers, taxonomy.encode(truth.reindex(answers.items).to_numpy())


def test_the_share_is_learned_from_the_answers(taxonomy: Taxonomy) -> None:
    sibling_crowd, truth = crowd(taxonomy, (1.0, 0.0, 0.0))
    random_crowd, random_truth = crowd(taxonomy, (0.0, 0.0, 1.0))
    learned = estimate_share(taxonomy, sibling_crowd.label, truth[sibling_crowd.item], np.ones(sibling_crowd.n_answers))
    weight = np.ones(random_crowd.n_answers)
    none = estimate_share(taxonomy, random_crowd.label, random_truth[random_crowd.item], weight)
    assert learned > 0.5 and none < 0.1  # the simulated "sibling" falls back to a cousin or anything where none exists
    assert estimate_share(LabelSpace(["a", "b"]), np.array([0]), np.array([1]), np.ones(1)) == 0.0
    assert SiblingErrors.of(LabelSpace(["a", "b"]), 0.5) is None and SiblingErrors.of(taxonomy, 0.0) is None


def test_a_posterior_that_knows_sibling_errors_is_more_honest(taxonomy: Taxonomy) -> None:
    """Wrong answers all among siblings (two annotators may agree on the same wrong sibling): at
    the same raw confidence, one-coin (share 0) claims more than it delivers; the fitted share
    keeps confident items right."""
    answers, truth = crowd(taxonomy, (1.0, 0.0, 0.0))
    gold_items = np.arange(0, answers.n_items, 10)
    model = fit_decision(answers, Gold(gold_items, truth[gold_items]), POLICY, calibrate=False)
    assert model.sibling_share > 0.5
    assert "among the truth's siblings" in model.confidence_note()
    opinions = model.opinions(answers)
    open_ = np.ones(answers.n_items, dtype=bool)
    open_[gold_items] = False
    gaps = {}
    for name, share in (("siblings", model.sibling_share), ("one-coin", 0.0)):
        label, raw = replace(model, sibling_share=share).decider(taxonomy, POLICY).raw(opinions)
        confident = open_ & (raw >= 0.95)
        gaps[name] = float(raw[confident].mean() - (label == truth)[confident].mean())
    assert gaps["siblings"] < gaps["one-coin"] - 0.005
    assert gaps["siblings"] < 0.02
