"""A model's temperature as a voter: learned honestly from a thin crowd, from gold, or stated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from crowdloop.aggregation.auto import choose_method
from crowdloop.aggregation.dawid_skene import DawidSkene, OneCoinDawidSkene
from crowdloop.aggregation.em import completed_rows
from crowdloop.answers import Answers, Temperature
from crowdloop.errors import ConfigError, InputError
from crowdloop.simulation.crowds import synthetic_crowd, synthetic_model_probs

TRUE_TEMPERATURE = 1 / 1.3


def _crowd(n_items: int, per_item: int, seed: int = 0) -> tuple[Answers, np.ndarray, np.ndarray]:
    frame, truth = synthetic_crowd(n_items, per_item, n_items // 100, 10, random_state=seed)
    probs = synthetic_model_probs(truth.to_numpy(), 10, overconfidence=1.3, random_state=seed + 1)
    return Answers.from_frame(frame), truth.to_numpy(), probs


def _accuracy(model, truth: np.ndarray, items: np.ndarray | None = None) -> float:
    items = np.arange(len(truth)) if items is None else items
    return float((model.labels_.reindex(items).to_numpy() == truth[items]).mean())


def test_synthetic_model_is_calibrated_at_its_true_temperature() -> None:
    truth = np.random.default_rng(0).choice(10, 20_000, p=(p := 1 / np.arange(1, 11) ** 0.5) / p.sum())
    probs = synthetic_model_probs(truth, 10, overconfidence=1.0, random_state=1)
    assert abs((probs.argmax(axis=1) == truth).mean() - 0.75) < 0.02
    assert abs(probs.max(axis=1).mean() - (probs.argmax(axis=1) == truth).mean()) < 0.01


@pytest.mark.parametrize(("per_item", "model"), [(1, OneCoinDawidSkene), (3, DawidSkene)])
def test_learned_temperature_is_near_the_truth_on_a_thin_crowd(per_item, model) -> None:
    # fitting the model to the crowd's posterior by cross-entropy gave 0.27-0.48 here
    answers, truth, probs = _crowd(5_000, per_item)
    fitted = model().fit(answers.with_soft("model", np.arange(len(truth)), probs))
    assert abs(fitted.temperatures_["model"] - TRUE_TEMPERATURE) < 0.1
    pinned = model().fit(answers.with_soft("model", np.arange(len(truth)), probs, temperature=TRUE_TEMPERATURE))
    assert _accuracy(fitted, truth) >= _accuracy(pinned, truth) - 0.01


def test_gold_teaches_the_temperature_where_the_crowd_model_cannot() -> None:
    # a full confusion matrix per worker fitted on one answer per item overrates the model (~1.5)
    answers, truth, probs = _crowd(4_000, 1)
    with_model = answers.with_soft("model", np.arange(len(truth)), probs)
    gold = pd.Series(truth[:400], index=np.arange(400))
    plain, taught = DawidSkene().fit(with_model), DawidSkene().fit(with_model, gold)
    rest = np.arange(400, len(truth))
    assert abs(taught.temperatures_["model"] - TRUE_TEMPERATURE) < 0.15
    assert abs(taught.temperatures_["model"] - TRUE_TEMPERATURE) < abs(plain.temperatures_["model"] - TRUE_TEMPERATURE)
    assert _accuracy(taught, truth, rest) > _accuracy(plain, truth, rest)


def test_a_little_gold_joins_the_crowd_rather_than_replacing_it() -> None:
    answers, truth, probs = _crowd(3_000, 3)
    with_model = answers.with_soft("model", np.arange(len(truth)), probs)
    few = DawidSkene().fit(with_model, pd.Series(truth[:5], index=np.arange(5)))
    assert abs(few.temperatures_["model"] - TRUE_TEMPERATURE) < 0.1


def test_a_useless_model_is_still_silenced() -> None:
    answers, truth, _ = _crowd(2_000, 3)
    noise = np.random.default_rng(3).dirichlet(np.ones(10), size=len(truth))
    fitted = DawidSkene().fit(answers.with_soft("noise", np.arange(len(truth)), noise))
    assert fitted.temperatures_["noise"] < 0.1


def test_stated_and_bounded_temperatures_are_kept() -> None:
    answers, truth, probs = _crowd(2_000, 3)
    items = np.arange(len(truth))
    stated = DawidSkene().fit(answers.with_soft("model", items, probs, temperature=1.0))
    assert stated.temperatures_["model"] == 1.0
    bounded = DawidSkene().fit(answers.with_soft("model", items, probs, temperature=(0.9, 2.0)))
    assert bounded.temperatures_["model"] == pytest.approx(0.9)
    assert Temperature.parse("1") == Temperature(value=1.0)
    assert Temperature.parse("0.5:2") == Temperature(bounds=(0.5, 2.0))
    assert Temperature.parse("learn") == Temperature()
    with pytest.raises(ConfigError):
        Temperature.parse("warm")
    with pytest.raises(ConfigError):
        Temperature(bounds=(2.0, 1.0))


def test_auto_weighs_a_model_beside_one_answer_per_item() -> None:
    answers, truth, probs = _crowd(1_000, 1)
    assert choose_method(answers)[0] == "mv"
    assert choose_method(answers.with_soft("model", np.arange(len(truth)), probs))[0] == "onecoin"


def test_with_soft_takes_the_labels_from_the_columns() -> None:
    frame = pd.DataFrame({"task": ["a", "a", "b"], "worker": ["u", "v", "u"], "label": ["cat", "dog", "dog"]})
    answers = Answers.from_frame(frame)
    probs = pd.DataFrame([[0.2, 0.7, 0.1], [0.1, 0.1, 0.8]], columns=["dog", "cat", "bird"])
    # before: "probabilities have shape (2, 3), expected (2 items, 2 labels)"
    soft = answers.with_soft("model", ["a", "b"], probs)
    assert soft.labels.labels == ["bird", "cat", "dog"]
    assert soft.to_frame()["label"].tolist() == ["cat", "dog", "dog"]
    assert np.allclose(soft.soft.probs.toarray(), [[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]])
    again = soft.with_soft("other", ["a"], pd.DataFrame([[0.5, 0.5]], columns=["fish", "dog"]))
    assert again.labels.labels == ["bird", "cat", "dog", "fish"]
    assert np.allclose(again.soft.probs.toarray()[0], [0.1, 0.7, 0.2, 0.0])
    assert again.to_frame()["label"].tolist() == ["cat", "dog", "dog"]
    assert DawidSkene().fit(again).probas_.shape == (2, 4)
    with pytest.raises(InputError, match="labels="):
        answers.with_soft("model", ["a", "b"], probs.to_numpy())


def test_with_soft_renormalises_rounded_rows_and_refuses_what_is_not_a_distribution() -> None:
    frame = pd.DataFrame({"task": ["a", "b"], "worker": ["u", "u"], "label": [0, 1]})
    answers = Answers.from_frame(frame)
    rounded = answers.with_soft("model", ["a", "b"], np.array([[0.333, 0.666], [0.5, 0.5]]))
    assert np.allclose(rounded.soft.probs.sum(axis=1), 1.0)
    with pytest.raises(InputError, match="sum to 1"):
        answers.with_soft("model", ["a", "b"], np.array([[0.3, 0.5], [0.5, 0.5]]))
    with pytest.raises(InputError, match="not a number"):
        answers.with_soft("model", ["a", "b"], np.array([[np.nan, 1.0], [0.5, 0.5]]))


def test_partial_rows_keep_what_their_top_labels_leave() -> None:
    """A model's top labels only: kept as given (no renormalising), the rest of each row read as
    shared by the labels left out; more than 1 is still refused."""
    frame = pd.DataFrame({"task": ["a", "b"], "worker": ["u", "u"], "label": [0, 1]})
    answers = Answers.from_frame(frame).with_labels([0, 1, 2, 3])
    top = sp.csr_matrix(np.array([[0.6, 0.2, 0.0, 0.0], [0.0, 0.9, 0.0, 0.0]]))
    partial = answers.with_soft("model", ["a", "b"], top, partial=True)
    assert np.allclose(partial.soft.probs.toarray(), top.toarray())
    assert np.allclose(completed_rows(partial.soft.probs), [[0.6, 0.2, 0.1, 0.1], [0.1 / 3, 0.9, 0.1 / 3, 0.1 / 3]])
    with pytest.raises(InputError, match="sum to at most 1"):
        answers.with_soft("model", ["a", "b"], np.array([[0.7, 0.5, 0, 0], [0.5, 0.5, 0, 0]]), partial=True)


def test_the_taxonomy_model_keeps_a_stated_temperature() -> None:
    from crowdloop.aggregation.taxonomy_model import TaxonomySkillModel

    answers, truth, probs = _crowd(1_000, 3)
    items = np.arange(len(truth))
    stated = TaxonomySkillModel().fit(answers.with_soft("model", items, probs, temperature=1.0))
    assert stated.soft_temperatures_["model"] == 1.0
    bounded = TaxonomySkillModel().fit(answers.with_soft("model", items, probs, temperature=(1.5, 3.0)))
    assert 1.5 <= bounded.soft_temperatures_["model"] <= 3.0
