import numpy as np
import pandas as pd
import pytest

from crowdloop.aggregation import DawidSkene
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError, InputError
from crowdloop.quality import (
    annotator_report,
    confident_joint,
    consensus_model_disagreements,
    find_label_errors,
    label_quality_scores,
    per_class_thresholds,
    review_list,
    wilson_interval,
)


def noisy_probs(n=900, k=4, flips=45, seed=0):
    """A model right about ~90% of items, with ambiguity, and ``flips`` labels changed at random."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    logits = rng.normal(0, 1.0, (n, k))
    logits[np.arange(n), truth] += rng.uniform(2.5, 5.0, n)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = truth.copy()
    flipped = rng.choice(n, flips, replace=False)
    labels[flipped] = (truth[flipped] + rng.integers(1, k, flips)) % k
    return labels, probs, np.isin(np.arange(n), flipped)


def test_per_class_thresholds_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 2])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.3, 0.2, 0.5], [0.1, 0.1, 0.8]]
    )
    # t0 = (0.8 + 0.4) / 2, t1 = (0.7 + 0.6 + 0.2) / 3, t2 = 0.8
    assert per_class_thresholds(labels, probs) == pytest.approx([0.6, 0.5, 0.8])
    # item 1: p1 = 0.5 >= t1 -> (0, 1); item 4: p2 = 0.5 < 0.8, p0 = 0.3 < 0.6, p1 = 0.2 < 0.5 -> not counted
    joint = confident_joint(labels, probs, calibrate=False)
    assert joint.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    calibrated = confident_joint(labels, probs)
    assert calibrated.sum(axis=1) == pytest.approx([2, 3, 1])
    assert calibrated[1, 1] == pytest.approx(3)


def test_a_class_nobody_has_gets_no_confident_items():
    probs = np.array([[0.5, 0.1, 0.4], [0.6, 0.1, 0.3], [0.1, 0.1, 0.8]])
    thresholds = per_class_thresholds(np.array([0, 0, 2]), probs)
    assert np.isinf(thresholds[1]) and thresholds[0] == pytest.approx(0.55)


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both", "confident_learning"])
def test_planted_errors_are_found(filter_by):
    labels, probs, flipped = noisy_probs()
    found = find_label_errors(labels, probs, filter_by=filter_by)
    precision = (found & flipped).sum() / found.sum()
    recall = (found & flipped).sum() / flipped.sum()
    assert recall >= 0.65 and precision >= 0.85, (precision, recall)


def test_a_clean_set_flags_little():
    labels, probs, _ = noisy_probs(flips=0)
    truth_is_argmax = probs.argmax(axis=1) == labels
    found = find_label_errors(labels, probs)
    assert found.mean() <= 0.05
    assert not (found & truth_is_argmax).any()  # an item the model agrees with is never flagged


def test_one_planted_error_is_ranked_first():
    labels, probs, _ = noisy_probs(flips=0, seed=3)
    confident = np.flatnonzero((probs.max(axis=1) > 0.9) & (probs.argmax(axis=1) == labels))[0]
    labels[confident] = (labels[confident] + 1) % probs.shape[1]
    ranked = find_label_errors(labels, probs, rank_by="self_confidence")
    assert ranked[0] == confident
    scores = label_quality_scores(labels, probs, "self_confidence")[ranked]
    assert np.all(np.diff(scores) >= 0)


def test_scores_are_in_unit_interval_and_margin_by_hand():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    margin = label_quality_scores(np.array([0, 0]), probs, "normalized_margin")
    assert margin == pytest.approx([(0.3 + 1) / 2, (-0.5 + 1) / 2])
    combined = label_quality_scores(np.array([0, 0]), probs, "combined")
    assert combined == pytest.approx([(0.6 + 0.65) / 2, (0.2 + 0.25) / 2])


def test_bad_input_is_named():
    probs = np.array([[0.5, 0.5], [0.7, 0.2]])
    with pytest.raises(InputError, match="sum to 1") as info:
        find_label_errors([0, 1], probs)
    assert "row 2" in str(info.value)
    with pytest.raises(InputError, match="outside"):
        find_label_errors([0, 2], np.array([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(InputError, match="2 labels but 1"):
        find_label_errors([0, 1], np.array([[0.5, 0.5]]))
    with pytest.raises(ConfigError, match="unknown filter"):
        find_label_errors([0, 1], np.array([[0.5, 0.5], [0.5, 0.5]]), filter_by="nope")


def test_review_list_budget_flagged_first_and_reasons():
    labels, probs, _ = noisy_probs()
    classes = np.array(["a", "b", "c", "d"], dtype=object)
    review = review_list(classes[labels], probs, classes, items=[f"t{i}" for i in range(len(labels))], budget=80)
    assert len(review) == 80
    assert list(review.columns) == ["item", "given_label", "suggested_label", "score", "reason", "flagged"]
    scores = label_quality_scores(labels, probs, "self_confidence")
    assert review["score"].tolist() == pytest.approx(np.sort(scores)[:80], abs=1e-6)  # lowest first
    mask = find_label_errors(labels, probs)
    positions = pd.Index(review["item"]).get_indexer([f"t{i}" for i in np.flatnonzero(mask)])
    assert review["flagged"].sum() == (positions >= 0).sum()
    default = review_list(classes[labels], probs, classes)
    assert len(default) == mask.sum()  # without a budget: as many as confident learning flags
    assert (review["given_label"] != review["suggested_label"]).all()
    assert review["reason"].str.contains("model gives the label").all()
    with pytest.raises(InputError, match="no probability column"):
        review_list(np.array(["a", "z"]), probs[:2], classes)


def test_wilson_interval_contains_the_proportion():
    low, high = wilson_interval(np.array([0, 5, 10]), np.array([10, 10, 10]))
    assert low[0] == 0 and high[2] == pytest.approx(1)
    assert low[1] < 0.5 < high[1]


def planted_crowd(seed=0):
    """300 items, K=4; 10 good workers (90% right), one spammer (uniform), one biased (says 1 for 0)."""
    rng = np.random.default_rng(seed)
    n, k = 300, 4
    truth = rng.integers(0, k, n)
    rows = []
    for item in range(n):
        for worker in rng.choice(12, 4, replace=False):
            if worker == 10:
                label = rng.integers(0, k)
            elif worker == 11 and truth[item] == 0:
                label = 1
            else:
                label = truth[item] if rng.random() < 0.9 else rng.integers(0, k)
            rows.append((item, f"w{worker}", int(label)))
    return pd.DataFrame(rows, columns=["task", "worker", "label"]), truth


def test_annotator_checks_find_the_spammer_and_the_biased_worker():
    frame, _ = planted_crowd()
    answers = Answers.from_frame(frame)
    posterior = DawidSkene().fit(answers).posterior_
    report = annotator_report(answers, posterior).set_index("worker")
    assert report.loc["w10", "flag"] == "spammer"
    assert report.loc["w11", "flag"] == "biased"
    assert report.loc["w11", "top_confusion"] == "0 -> 1"
    assert "where the crowd says 0" in report.loc["w11", "reason"]
    good = report.drop(["w10", "w11"])
    assert (good["flag"] == "").all()
    assert (good["agreement_low"] > report.loc["w10", "agreement_high"]).all()
    assert report.index[:2].tolist() in (["w10", "w11"], ["w11", "w10"])


def test_consensus_model_disagreement_ranks_the_planted_item_first():
    rng = np.random.default_rng(1)
    n, k = 50, 3
    consensus = rng.dirichlet(np.ones(k) * 0.3, n)
    model = consensus.copy()
    model[7] = [0.0, 0.0, 0.0]
    top = consensus[7].argmax()
    consensus[7] = np.eye(k)[top] * 0.98 + 0.01
    model[7] = np.eye(k)[(top + 1) % k] * 0.97 + 0.01
    out = consensus_model_disagreements(consensus, model, items=[f"t{i}" for i in range(n)], classes=list("abc"))
    assert out.iloc[0]["item"] == "t7"
    assert out.iloc[0]["model_on_consensus"] == pytest.approx(0.01)
    assert len(out) == 1  # every other item: the model agrees with the crowd
    with pytest.raises(InputError, match="shape"):
        consensus_model_disagreements(consensus, model[:10], items=range(n), classes=list("abc"))
