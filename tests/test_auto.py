"""``auto``: the model chosen by cross-fitting, on held-out answers or on held-out gold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdloop.aggregation.auto import CANDIDATES, _answer_folds, choose_method, select_method
from crowdloop.aggregation.registry import method_class
from crowdloop.answers import Answers
from crowdloop.errors import InputError
from crowdloop.labels import LabelSpace
from crowdloop.simulation.crowds import synthetic_crowd


def accuracy(labels: pd.Series, truth: pd.Series) -> float:
    return float((labels.reindex(truth.index) == truth).mean())


def skilled_crowd(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Workers from experts to spammers with their own confusions: a skill model pays off."""
    return synthetic_crowd(1500, 5, 60, 3, random_state=seed)


def identical_workers(seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Majority vote's own model: 200 workers, all right 70% of the time, errors uniform, 3 answers
    per item (a worker gives 6 answers: too few for a confusion matrix to be worth its cells)."""
    rng = np.random.default_rng(seed)
    n_items, n_workers, k, per_item = 400, 200, 4, 3
    truth = rng.integers(0, k, n_items)
    item = np.repeat(np.arange(n_items), per_item)
    worker = np.concatenate([rng.choice(n_workers, per_item, replace=False) for _ in range(n_items)])
    wrong = (truth[item] + rng.integers(1, k, len(item))) % k
    label = np.where(rng.random(len(item)) < 0.7, truth[item], wrong)
    return pd.DataFrame({"task": item, "worker": worker, "label": label}), pd.Series(truth)


def _accuracy_of(name: str, frame: pd.DataFrame, truth: pd.Series) -> float:
    return accuracy(method_class(name)().fit_predict(frame), truth)


@pytest.mark.parametrize("case", ["skilled", "sparse 0", "sparse 1", "identical 0", "identical 1"])
def test_never_picks_a_model_that_loses_to_majority_vote(case: str, small_sparse_crowd) -> None:
    kind, _, seed = case.partition(" ")
    make = {"skilled": skilled_crowd, "sparse": small_sparse_crowd, "identical": identical_workers}[kind]
    frame, truth = make(int(seed or 0))
    selection = select_method(Answers.from_frame(frame))
    assert set(selection.scores) == set(CANDIDATES) and "held-out" in selection.reason
    assert _accuracy_of(selection.method, frame, truth) >= _accuracy_of("mv", frame, truth) - 0.01


def test_held_out_likelihood_prefers_the_model_that_generated_the_answers() -> None:
    frame, _ = skilled_crowd()
    assert select_method(Answers.from_frame(frame)).method != "mv"  # skills differ: mv explains worse
    for seed in (0, 1):
        frame, _ = identical_workers(seed)
        scores = select_method(Answers.from_frame(frame)).scores
        assert scores["mv"] > scores["ds"]  # a confusion per worker only overfits


def test_folds_hold_out_no_item_entirely() -> None:
    frame = pd.DataFrame(
        {"task": [1, 1, 2, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4], "worker": list("abcdeabcdefgh"), "label": [0] * 13}
    )
    answers = Answers.from_frame(frame)
    fold = _answer_folds(answers, 5, np.random.default_rng(0))
    assert (fold[answers.item == answers.items.get_loc(3)] == -1).all()  # a single answer stays
    for f in range(5):
        kept = np.bincount(answers.item[fold != f], minlength=answers.n_items)
        assert (kept >= 1).all()
    counts = np.bincount(fold[fold >= 0], minlength=5)
    assert counts.max() - counts.min() <= 3


def test_gold_decides_when_given_and_is_checked() -> None:
    frame, truth = skilled_crowd(1)
    gold = truth.iloc[:80]
    selection = select_method(Answers.from_frame(frame), gold)
    assert "held-out gold (80 items" in selection.reason
    assert all(0 <= score <= 1 for score in selection.scores.values())
    assert selection.scores[selection.method] == max(selection.scores.values())
    assert _accuracy_of(selection.method, frame, truth) >= _accuracy_of("mv", frame, truth) - 0.01
    assert choose_method(Answers.from_frame(frame), gold) == (selection.method, selection.reason)
    with pytest.raises(InputError, match="not among the answered items"):
        choose_method(Answers.from_frame(frame), pd.Series({"nope": 1}))


def test_shape_rules_come_first() -> None:
    one = pd.DataFrame({"task": [1, 2, 3], "worker": ["a", "b", "c"], "label": ["x", "y", "x"]})
    assert choose_method(Answers.from_frame(one))[0] == "mv"
    many = LabelSpace([f"c{i}" for i in range(60)])
    frame = pd.DataFrame({"task": [1, 1], "worker": ["a", "b"], "label": ["c1", "c2"]})
    assert choose_method(Answers.from_frame(frame, labels=many))[0] == "taxonomy"
