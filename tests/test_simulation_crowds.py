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
