import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from crowdloop.aggregation import DawidSkene, MajorityVote, Posterior, Wawa
from crowdloop.aggregation.calibration import (
    CalibratedAggregator,
    TopLabelCalibrator,
    cross_fitted_confidence,
    expected_calibration_error,
    recalibrate,
    reliability_table,
    selective_accuracy,
)
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError, InputError


def crowd(n_items=600, n_workers=30, per_item=5, k=3, hard=0.25, seed=0):
    """A crowd whose errors are correlated: on "hard" items most workers agree on the same wrong
    label, so Dawid-Skene (which assumes independent answers) is confidently wrong there."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    decoy = (truth + rng.integers(1, k, n_items)) % k
    is_hard = rng.random(n_items) < hard
    skill = rng.uniform(0.6, 0.95, n_workers)
    item = np.repeat(np.arange(n_items), per_item)
    worker = np.concatenate([rng.choice(n_workers, per_item, replace=False) for _ in range(n_items)])
    right = rng.random(len(item)) < np.where(is_hard[item], 0.35, skill[worker])
    noise = (truth[item] + rng.integers(1, k, len(item))) % k
    wrong = np.where(is_hard[item] & (rng.random(len(item)) < 0.85), decoy[item], noise)
    label = np.where(right, truth[item], wrong)
    frame = pd.DataFrame({"task": item, "worker": worker, "label": label})
    return frame, pd.Series(truth, index=np.arange(n_items))


# ---------------------------------------------------------------------------------------------- measuring


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_ece_of_a_calibrated_confidence_is_near_zero_and_of_an_overconfident_one_large(strategy):
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.4, 1.0, 20_000)
    correct = rng.random(20_000) < confidence
    assert expected_calibration_error(confidence, correct, strategy=strategy) < 0.015
    overconfident = np.minimum(confidence + 0.2, 1.0)
    assert expected_calibration_error(overconfident, correct, strategy=strategy) > 0.15


def test_reliability_table_bins():
    table = reliability_table([0.1, 0.55, 0.6, 0.95, 1.0], [False, True, False, True, True], n_bins=10)
    assert table["count"].tolist() == [1, 2, 2]
    assert table["accuracy"].tolist() == [0.0, 0.5, 1.0]
    np.testing.assert_allclose(table["gap"], table["confidence"] - table["accuracy"])
    assert table["bin"].iloc[-1].right == 1.0  # confidence 1.0 falls in the last bin
    ece = expected_calibration_error([0.1, 0.55, 0.6, 0.95, 1.0], [False, True, False, True, True], n_bins=10)
    assert ece == pytest.approx((0.1 + 2 * 0.075 + 2 * 0.025) / 5)


def test_selective_accuracy():
    table = selective_accuracy([0.5, 0.92, 0.96, 0.99], [False, True, False, True], thresholds=(0.9, 0.97, 0.999))
    assert table["count"].tolist() == [3, 1, 0]
    assert table["accuracy"].iloc[0] == pytest.approx(2 / 3)
    assert np.isnan(table["accuracy"].iloc[2])


def test_measuring_rejects_bad_input():
    with pytest.raises(InputError):
        expected_calibration_error([0.5, 1.2], [True, False])
    with pytest.raises(InputError):
        expected_calibration_error([0.5], [True, False])
    with pytest.raises(ConfigError):
        expected_calibration_error([0.5], [True], strategy="log")


# ---------------------------------------------------------------------------------------------- calibrator


@pytest.mark.parametrize("method", ["smooth", "platt", "isotonic"])
def test_calibrator_fixes_a_known_miscalibration(method):
    rng = np.random.default_rng(2)

    def sample(n):
        logit = rng.normal(4.0, 3.0, n)  # raw confidences pile up near 1
        raw = 1 / (1 + np.exp(-logit))
        truth = 1 / (1 + np.exp(-(logit / 3 + 0.2)))  # the truth is much less sure
        return raw, rng.random(n) < truth

    raw, correct = sample(3000)
    calibrator = TopLabelCalibrator(method=method).fit(raw, correct)
    test_raw, test_correct = sample(20_000)
    calibrated = calibrator.predict(test_raw)
    assert expected_calibration_error(test_raw, test_correct) > 0.1
    assert expected_calibration_error(calibrated, test_correct) < 0.02
    assert np.all(np.diff(calibrated[np.argsort(test_raw)]) >= -1e-12)  # monotone in the raw confidence


def test_calibrator_with_features_and_extreme_confidences():
    rng = np.random.default_rng(3)
    n = 2000
    n_answers = rng.integers(1, 10, n)
    raw = np.where(rng.random(n) < 0.5, 1 - 1e-15, rng.uniform(0.5, 1, n))
    correct = rng.random(n) < np.clip(0.5 + 0.05 * n_answers, 0, 0.98)
    calibrator = TopLabelCalibrator(features=("confidence", "n_answers")).fit(raw, correct, n_answers=n_answers)
    out = calibrator.predict(raw, n_answers=n_answers)
    assert np.isfinite(out).all() and out.max() < 1.0
    assert expected_calibration_error(out, correct) < 0.03
    with pytest.raises(ConfigError, match="n_answers"):
        calibrator.predict(raw)


def _overconfident_after_few_answers(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """A crowd posterior whose accuracy turns with the answer count: a raw .999 is right 99.9% of the
    time at five answers and 85% at two, a raw .9 60% at five (a torn vote) and 80% at two. No
    linear score of the two orders these four states as their accuracy does."""
    n_answers = rng.choice([2, 5], n)
    raw = rng.choice([0.9, 0.999], n)
    truth = np.where(raw > 0.99, np.where(n_answers == 5, 0.999, 0.85), np.where(n_answers == 5, 0.6, 0.8))
    return raw, rng.random(n) < truth, n_answers


def test_a_curve_per_answer_count_follows_an_accuracy_that_one_curve_pools() -> None:
    raw, correct, n_answers = _overconfident_after_few_answers(np.random.default_rng(5), 4000)
    pooled = TopLabelCalibrator(features=("confidence", "n_answers")).fit(raw, correct, n_answers=n_answers)
    per_count = TopLabelCalibrator(features=("confidence", "n_answers"), per_answer_count=True)
    per_count.fit(raw, correct, n_answers=n_answers)
    sure = np.full(2, 0.999)
    few_many = np.array([2, 5])
    assert per_count.predict(sure, n_answers=few_many) == pytest.approx([0.85, 0.999], abs=0.02)
    assert per_count.predict(sure, n_answers=few_many, quantile=0.2)[1] > 0.97
    assert np.abs(pooled.predict(sure, n_answers=few_many) - [0.85, 0.999]).max() > 0.05  # one curve cannot
    assert per_count.predict(sure, n_answers=few_many, pooled=True) == pytest.approx(
        pooled.predict(sure, n_answers=few_many)
    )
    stored = TopLabelCalibrator.from_dict(json.loads(json.dumps(per_count.to_dict())))
    assert stored.predict(sure, n_answers=few_many, quantile=0.2) == pytest.approx(
        per_count.predict(sure, n_answers=few_many, quantile=0.2)
    )
    with pytest.raises(ConfigError, match="per_answer_count"):
        TopLabelCalibrator(per_answer_count=True).fit(raw, correct)


def test_the_cautious_curve_does_not_depend_on_the_order_of_the_gold() -> None:
    raw, correct, n_answers = _overconfident_after_few_answers(np.random.default_rng(6), 3000)
    order = np.random.default_rng(0).permutation(len(raw))
    fits = [
        TopLabelCalibrator(features=("confidence", "n_answers"), per_answer_count=True).fit(
            raw[rows], correct[rows], n_answers=n_answers[rows]
        )
        for rows in (np.arange(len(raw)), order)
    ]
    grid, counts = np.repeat([0.5, 0.9, 0.99, 0.999], 2), np.tile([2, 5], 4)
    first, second = (fit.predict(grid, n_answers=counts, quantile=0.2) for fit in fits)
    assert first == pytest.approx(second, abs=1e-9)


def test_a_decision_on_a_few_items_does_not_revisit_every_gold_state(monkeypatch) -> None:
    """The cautious floor of a curve depends on the gold alone: computed once per fit and quantile,
    not over every gold state on each decision (what a submit paid in the service)."""
    from crowdloop.aggregation import calibration

    raw, correct, n_answers = _overconfident_after_few_answers(np.random.default_rng(7), 3000)
    fitted = TopLabelCalibrator(features=("confidence", "n_answers"), per_answer_count=True)
    fitted.fit(raw, correct, n_answers=n_answers)
    few, counts = np.array([0.9, 0.99, 0.999]), np.array([2, 5, 9])
    first = fitted.predict(few, n_answers=counts, quantile=0.2)
    sizes: list[int] = []
    real = calibration._cautious

    def counting(calibrated, evidence, quantile):
        sizes.append(np.size(calibrated))
        return real(calibrated, evidence, quantile)

    monkeypatch.setattr(calibration, "_cautious", counting)
    again = fitted.predict(few, n_answers=counts, quantile=0.2)
    assert again == pytest.approx(first)
    assert sizes and max(sizes) <= len(few)
    fitted.fit(raw[:2000], correct[:2000], n_answers=n_answers[:2000])  # a new fit: new floors
    refitted = fitted.predict(few, n_answers=counts, quantile=0.2)
    assert max(sizes) > len(few)
    fresh = TopLabelCalibrator(features=("confidence", "n_answers"), per_answer_count=True)
    assert refitted == pytest.approx(
        fresh.fit(raw[:2000], correct[:2000], n_answers=n_answers[:2000]).predict(few, n_answers=counts, quantile=0.2)
    )


@pytest.mark.parametrize(
    ("confidence", "correct", "message"),
    [([], [], "no items"), ([0.9], [True], "got 1"), ([0.9, 0.8, 0.99], [True, True, True], "all 3 gold items")],
)
def test_calibrator_degenerate_gold_is_a_clear_error(confidence, correct, message):
    with pytest.raises(InputError, match=message):
        TopLabelCalibrator().fit(confidence, correct)


def test_calibrator_parameters_are_checked():
    with pytest.raises(ConfigError):
        TopLabelCalibrator(method="beta").fit([0.6, 0.9], [True, False])
    with pytest.raises(ConfigError):
        TopLabelCalibrator(features=("price",)).fit([0.6, 0.9], [True, False])
    with pytest.raises(ConfigError, match="not fitted"):
        TopLabelCalibrator().predict([0.5])


# ---------------------------------------------------------------------------------------------- cross-fitting


def test_cross_fitting_does_not_clamp_held_out_gold():
    frame, truth = crowd(n_items=200, seed=4)
    answers = Answers.from_frame(frame)
    gold = truth.iloc[:60].copy()
    # every worker says 0 on item 0: a clamped item would be "right" with confidence 1
    frame.loc[frame["task"] == 0, "label"] = 0
    gold.loc[0] = 2
    answers = Answers.from_frame(frame)
    for model in (MajorityVote(), DawidSkene()):
        cross = cross_fitted_confidence(model, answers, gold, n_folds=5, random_state=0)
        assert cross.index.tolist() == gold.index.tolist()
        assert sorted(cross["fold"].unique()) == [0, 1, 2, 3, 4]
        assert cross.loc[0, "label"] == 0 and not cross.loc[0, "correct"]
        assert (cross["confidence"] < 1 - 1e-6).any()
        assert cross["correct"].mean() < 1


def test_cross_fitting_is_deterministic_and_checks_its_input():
    frame, truth = crowd(n_items=150, seed=5)
    gold = truth.iloc[:40]
    a = cross_fitted_confidence(DawidSkene(), frame, gold, random_state=7)
    b = cross_fitted_confidence(DawidSkene(), frame, gold, random_state=7)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(InputError, match="at least 2"):
        cross_fitted_confidence(DawidSkene(), frame, truth.iloc[:1])
    with pytest.raises(ConfigError):
        cross_fitted_confidence(DawidSkene(), frame, gold, n_folds=1)


# ---------------------------------------------------------------------------------------------- the wrapper


def _check_wrapper(model, truth, gold):
    probas = model.probas_
    dense = probas.sparse.to_dense() if hasattr(probas, "sparse") else probas
    assert (model.labels_ == model.base_.labels_).all()
    assert (dense.idxmax(axis=1) == model.labels_).all()
    np.testing.assert_allclose(dense.max(axis=1), model.confidence_)
    assert (model.confidence_.loc[gold.index] == 1.0).all()
    assert (model.raw_confidence_.loc[gold.index] == 1.0).all()
    held = truth.drop(gold.index)
    correct = model.labels_.loc[held.index].to_numpy() == held.to_numpy()
    raw = expected_calibration_error(model.raw_confidence_.loc[held.index], correct)
    calibrated = expected_calibration_error(model.confidence_.loc[held.index], correct)
    return raw, calibrated


@pytest.mark.parametrize("base", [MajorityVote(), Wawa(), DawidSkene()])
def test_wrapper_calibrates_any_aggregator(base):
    frame, truth = crowd(n_items=1500, seed=6)
    gold = truth.sample(500, random_state=0)
    model = CalibratedAggregator(base, random_state=0).fit(frame, gold)
    raw, calibrated = _check_wrapper(model, truth, gold)
    assert calibrated < 0.05
    np.testing.assert_allclose(model.probas_.sum(axis=1), 1.0)
    assert len(model.cross_fitted_) == 500 and "calibrated" in model.cross_fitted_
    assert {"bin", "count", "confidence", "accuracy"} <= set(model.reliability_before_.columns)
    if isinstance(base, DawidSkene):  # EM is overconfident on correlated errors; calibration fixes it
        assert raw > 0.1 and calibrated < raw / 2
        assert model.ece_after_ < model.ece_before_ / 2


class SparseMajorityVote(MajorityVote):
    """Majority vote with its posterior stored as CSR (as large label spaces are)."""

    def _fit(self, answers, gold):
        return Posterior(sp.csr_matrix(super()._fit(answers, gold).probs))


def test_wrapper_with_sparse_posteriors():
    frame, truth = crowd(n_items=1500, seed=8)
    gold = truth.sample(500, random_state=1)
    model = CalibratedAggregator(SparseMajorityVote(), random_state=0).fit(frame, gold)
    assert model.posterior_.is_sparse
    raw, calibrated = _check_wrapper(model, truth, gold)
    assert calibrated < raw
    assert (model.probas_.sparse.to_dense().sum(axis=1) <= 1 + 1e-9).all()


def test_wrapper_degenerate_gold():
    frame, truth = crowd(n_items=100, seed=9)
    with pytest.raises(InputError, match="needs gold"):
        CalibratedAggregator(MajorityVote()).fit(frame)
    with pytest.raises(InputError, match="at least 2"):
        CalibratedAggregator(MajorityVote()).fit(frame, truth.iloc[:1])
    easy = frame.assign(label=truth.loc[frame["task"]].to_numpy())  # every answer right: gold all right
    with pytest.raises(InputError, match="all 30 gold items are right"):
        CalibratedAggregator(MajorityVote()).fit(easy, truth.iloc[:30])


def test_recalibrate_keeps_the_top_label():
    probs = np.array([[0.5, 0.45, 0.05, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.3, 0.3, 0.2, 0.2]])
    out = recalibrate(Posterior(probs), np.array([0.3, 0.9, 0.5, 0.1]))
    np.testing.assert_allclose(out.probs.sum(axis=1), [1, 1, 0, 1])
    assert out.labels().tolist() == [0, 0, -1, 0]
    np.testing.assert_allclose(out.confidence(), [0.3, 0.9, 0.0, 0.25])  # at least 1/K
    np.testing.assert_allclose(out.probs[1, 1:], 0.1 / 3)
    sparse = recalibrate(Posterior(sp.csr_matrix(probs)), np.array([0.3, 0.9, 0.5, 0.1]))
    assert sparse.labels().tolist() == [0, 0, -1, 0]
    np.testing.assert_allclose(sparse.confidence(), [0.3, 0.9, 0.0, 0.25])
    # a top label that is not the first one stays on top when c falls to 1/K (no uniform tie)
    low = recalibrate(Posterior(np.array([[0.2, 0.3, 0.5]])), np.array([0.1]))
    assert low.labels().tolist() == [2] and low.probs[0, 2] > low.probs[0, :2].max()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_cautious_confidence_never_falls_as_the_evidence_grows(seed):
    """The cautious value (a lower quantile given the gold behind each step) is monotone in the
    raw confidence: a small top step, whose interval is wide, claims at least what the larger
    step below it proved. Before, it fell by 4-7 points there, and the decision judged that more
    agreeing answers could not reach a target the answers before them had nearly reached."""
    rng = np.random.default_rng(seed)
    raw = 1 - 10 ** -rng.uniform(0.3, 6, 400)
    n_answers = rng.integers(1, 4, 400)
    right = rng.random(400) < 0.5 + 0.49 * np.log10(1 / (1 - raw)) / 6
    calibrator = TopLabelCalibrator(features=("confidence", "n_answers")).fit(raw, right, n_answers=n_answers)
    grid = 1 - 10 ** -np.linspace(0.3, 9, 400)
    for n in (1, 2, 3):
        cautious = calibrator.predict(grid, n_answers=np.full(len(grid), n), quantile=0.2)
        assert (np.diff(cautious) >= -1e-9).all()
        assert (cautious <= calibrator.predict(grid, n_answers=np.full(len(grid), n)) + 1e-9).all()
