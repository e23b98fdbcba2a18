"""Pre-labels: top-k suggestions, hiding a share of them, and estimating the anchoring they cause."""

import numpy as np
import pytest

from crowdloop.errors import ConfigError, InputError
from crowdloop.models.prelabels import anchoring_effect, hide_mask, top_k
from crowdloop.simulation.suggestions import simulate_suggestion_answers


def test_top_k_lists_the_most_probable_labels_in_order():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    frame = top_k(probs, ["a", "b", "c"], k=2, items=["x", "y"])
    assert frame["item"].tolist() == ["x", "x", "y", "y"]
    assert frame["rank"].tolist() == [1, 2, 1, 2]
    assert frame["label"].tolist() == ["b", "c", "a", "c"]
    np.testing.assert_allclose(frame["probability"], [0.6, 0.3, 0.5, 0.3])
    assert len(top_k(probs, ["a", "b", "c"], k=10)) == 6  # k beyond K: all labels
    rng = np.random.default_rng(0)
    big = rng.dirichlet(np.ones(50), 200)
    frame = top_k(big, np.arange(50), k=5)
    expected = np.sort(big, axis=1)[:, ::-1][:, :5].ravel()
    np.testing.assert_allclose(frame["probability"], expected)
    with pytest.raises(ConfigError):
        top_k(probs, ["a", "b", "c"], k=0)
    with pytest.raises(InputError):
        top_k(probs, ["a", "b"], k=1)


def test_hide_mask_hides_the_stated_share():
    mask = hide_mask(1000, 0.15, random_state=3)
    assert mask.sum() == 150
    assert not np.array_equal(mask, hide_mask(1000, 0.15, random_state=4))
    with pytest.raises(ConfigError):
        hide_mask(10, 1.5)


def suggestions(n, k, model_accuracy, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    suggested = np.where(rng.random(n) < model_accuracy, truth, (truth + rng.integers(1, k, n)) % k)
    return truth, suggested


@pytest.mark.parametrize("planted", [0.0, 0.25, 0.5])
def test_anchoring_estimator_recovers_a_planted_bias(planted):
    truth, suggested = suggestions(3000, 8, 0.75, seed=1)
    answers = simulate_suggestion_answers(truth, suggested, 8, anchoring=planted, hide_rate=0.3, accuracy=0.8,
                                          speedup=0.6, random_state=2)  # fmt: skip
    assert answers["shown"].mean() == pytest.approx(0.7, abs=0.001)
    effect = anchoring_effect(answers).set_index("measure")
    rate = effect.loc["anchoring rate on wrong suggestions"]
    assert rate["low"] <= planted <= rate["high"]  # the interval covers the planted bias
    assert abs(rate["effect"] - planted) < 0.05
    wrong = effect.loc["agreement with a wrong suggestion"]
    if planted > 0:
        assert wrong["low"] > 0  # the harm is detected ...
        assert effect.loc["median seconds (ratio shown / hidden)", "high"] < 1  # ... and so is the speed-up
    else:
        assert wrong["low"] <= 0 <= wrong["high"]  # no bias planted: none claimed


def test_anchoring_interval_covers_at_its_level():
    hits = 0
    for seed in range(40):
        truth, suggested = suggestions(800, 6, 0.7, seed=100 + seed)
        answers = simulate_suggestion_answers(truth, suggested, 6, anchoring=0.3, hide_rate=0.4, random_state=seed)
        rate = anchoring_effect(answers, n_boot=500).set_index("measure").loc["anchoring rate on wrong suggestions"]
        hits += rate["low"] <= 0.3 <= rate["high"]
    assert hits >= 34  # 95% intervals: about 38 of 40 expected


def test_anchoring_needs_hidden_items():
    truth, suggested = suggestions(50, 4, 0.8, seed=0)
    answers = simulate_suggestion_answers(truth, suggested, 4, hide_rate=0.0)
    with pytest.raises(InputError, match="hidden"):
        anchoring_effect(answers)
    with pytest.raises(InputError, match="suggested"):
        anchoring_effect(answers.drop(columns="suggested"))
