import numpy as np
import pandas as pd
import pytest

from crowdloop.errors import ConfigError
from crowdloop.simulation.crowds import synthetic_crowd


def test_deterministic_for_a_seed() -> None:
    first = synthetic_crowd(500, 3, 40, 4, random_state=7)
    again = synthetic_crowd(500, 3, 40, 4, random_state=7)
    other = synthetic_crowd(500, 3, 40, 4, random_state=8)
    pd.testing.assert_frame_equal(first[0], again[0])
    pd.testing.assert_series_equal(first[1], again[1])
    assert not first[0].equals(other[0])


def test_shapes_and_distinct_workers() -> None:
    answers, truth = synthetic_crowd(2_000, 5, 50, 6, random_state=0)
    assert list(answers.columns) == ["task", "worker", "label"]
    assert len(answers) == 10_000 and len(truth) == 2_000
    assert answers.groupby("task").size().eq(5).all()
    assert not answers.duplicated(["task", "worker"]).any()
    assert set(answers["label"].unique()) <= set(range(6)) and set(truth.unique()) <= set(range(6))
    per_worker = answers["worker"].value_counts()
    assert per_worker.max() > 4 * per_worker.median()  # a skewed workload


def test_archetypes_behave() -> None:
    answers, truth = synthetic_crowd(20_000, 3, 200, 4, random_state=1)
    correct = answers["label"].to_numpy() == truth.to_numpy()[answers["task"].to_numpy()]
    kind = answers["worker"].str.split("-").str[0].to_numpy()
    accuracy = {name: correct[kind == name].mean() for name in ("good", "sloppy", "spammer")}
    assert accuracy["good"] > 0.8
    assert 0.5 < accuracy["sloppy"] < 0.7
    assert accuracy["spammer"] < 0.4
    # errors are class-conditional: wrong answers favour the neighbouring classes
    wrong = ~correct & (kind != "spammer")
    distance = np.abs(answers["label"].to_numpy() - truth.to_numpy()[answers["task"].to_numpy()])[wrong]
    assert (distance == 1).mean() > 0.5


def test_rejects_impossible_crowds() -> None:
    with pytest.raises(ConfigError):
        synthetic_crowd(10, 5, 3, 2)
    with pytest.raises(ConfigError):
        synthetic_crowd(10, 3, 10, 1)


def test_product_crowd_archetypes_collude_and_specialise() -> None:
    from crowdloop.labels import Taxonomy
    from crowdloop.simulation.taxonomy_crowd import PRODUCT_ARCHETYPES, Archetype, simulate_taxonomy_crowd

    paths = [f"{top} > {top}{leaf}" for top in "ABCD" for leaf in range(4)]
    taxonomy = Taxonomy.from_paths(paths)
    truth = np.random.default_rng(0).choice(paths, 3000)
    frame, given = simulate_taxonomy_crowd(
        taxonomy, n_workers=40, answers_per_item=5, archetypes=PRODUCT_ARCHETYPES, truth=truth, inner_share=0.0
    )
    assert given.tolist() == truth.tolist() and len(frame) == 15_000
    frame["kind"] = frame["worker"].str.split("-").str[0]
    frame["right"] = frame["label"].to_numpy() == truth[frame["task"].to_numpy()]
    accuracy = frame.groupby("kind")["right"].mean()
    assert accuracy["expert"] > accuracy["good"] > accuracy["sloppy"] > accuracy["colluding"] > accuracy["spammer"]
    ring = frame[(frame["kind"] == "colluding") & ~frame["right"]]
    shared = ring.groupby("task")["label"].nunique()
    assert len(shared[ring.groupby("task").size() > 1]) and (shared[ring.groupby("task").size() > 1] == 1).all()
    wrong = frame[~frame["right"] & (frame["kind"] != "spammer")]
    same_branch = wrong["label"].str[0].to_numpy() == truth[wrong["task"].to_numpy()].astype(str).astype("U1")
    assert same_branch.mean() > 0.6  # wrong answers are mostly siblings

    flat = (Archetype("even", 1.0, 40.0, 10.0),)
    spread, _ = simulate_taxonomy_crowd(taxonomy, n_workers=10, answers_per_item=3, archetypes=flat, truth=truth,
                                        inner_share=0.0, branch_spread=1.5, random_state=1)  # fmt: skip
    spread["right"] = spread["label"].to_numpy() == truth[spread["task"].to_numpy()]
    spread["branch"] = truth[spread["task"].to_numpy()].astype("U1")
    by_branch = spread.groupby(["worker", "branch"])["right"].mean().unstack()
    assert (by_branch.max(axis=1) - by_branch.min(axis=1)).mean() > 0.15  # per-branch skill differs
    with pytest.raises(ConfigError, match="branch_spread"):
        simulate_taxonomy_crowd(taxonomy, branch_spread=-1.0)
