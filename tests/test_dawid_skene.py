"""Dawid-Skene family (full, one-coin, class-conditional) on crowds generated with a fixed seed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crowdloop.aggregation.dawid_skene import ClassConditionalDawidSkene, DawidSkene, OneCoinDawidSkene
from crowdloop.aggregation.registry import method_class
from crowdloop.aggregation.voting import MajorityVote
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError
from crowdloop.simulation.crowds import synthetic_crowd

MODELS = [DawidSkene, OneCoinDawidSkene, ClassConditionalDawidSkene]


def make_crowd(
    n_items: int = 400, n_workers: int = 30, k: int = 3, per_item: int = 5, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Answers of workers with varied one-coin skills (experts, average workers, spammers and a few
    adversaries), wrong answers uniform over the other labels. Returns (frame, truth, skills)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    skill = np.concatenate(
        [
            rng.uniform(0.85, 0.95, n_workers // 3),
            rng.uniform(0.5, 0.7, n_workers // 3),
            np.full(n_workers - 2 * (n_workers // 3) - 2, 1.0 / k),
            [0.1, 0.1],
        ]
    )
    item = np.repeat(np.arange(n_items), per_item)
    worker = np.concatenate([rng.choice(n_workers, per_item, replace=False) for _ in range(n_items)])
    right = rng.random(len(item)) < skill[worker]
    wrong = (truth[item] + rng.integers(1, k, len(item))) % k
    label = np.where(right, truth[item], wrong)
    frame = pd.DataFrame({"task": [f"t{i}" for i in item], "worker": [f"w{w}" for w in worker], "label": label})
    index = pd.Index([f"t{i}" for i in range(n_items)], name="task")
    return frame, pd.Series(truth, index=index), pd.Series(skill, index=[f"w{w}" for w in range(n_workers)])


def accuracy(labels: pd.Series, truth: pd.Series) -> float:
    return float((labels.reindex(truth.index) == truth).mean())


@pytest.fixture(scope="module")
def crowd() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    return make_crowd()


@pytest.mark.parametrize("model", MODELS)
def test_beats_majority_vote_and_learns_skills(model, crowd) -> None:
    frame, truth, skill = crowd
    mv = accuracy(MajorityVote().fit_predict(frame), truth)
    fitted = model().fit(frame)
    assert accuracy(fitted.labels_, truth) > mv + 0.03
    learned = fitted.skills_.reindex(skill.index)
    assert np.corrcoef(learned, skill)[0, 1] > 0.9
    assert learned[skill.index[:10]].min() > learned[skill.index[-2:]].max()  # experts above adversaries


def test_one_coin_skills_are_accuracies(crowd) -> None:
    frame, _, skill = crowd
    learned = OneCoinDawidSkene().fit(frame).skills_.reindex(skill.index)
    assert np.abs(learned - skill).mean() < 0.08  # sampling noise of ~70 answers a worker: about .05


def test_class_conditional_learns_per_class_accuracy() -> None:
    rng = np.random.default_rng(3)
    n_items, n_workers, k = 600, 12, 3
    truth = rng.integers(0, k, n_items)
    # every worker is good on classes 0 and 1 and poor on class 2
    per_class = np.tile([0.9, 0.9, 0.4], (n_workers, 1))
    item = np.repeat(np.arange(n_items), 5)
    worker = np.concatenate([rng.choice(n_workers, 5, replace=False) for _ in range(n_items)])
    right = rng.random(len(item)) < per_class[worker, truth[item]]
    label = np.where(right, truth[item], (truth[item] + rng.integers(1, k, len(item))) % k)
    frame = pd.DataFrame({"task": item, "worker": worker, "label": label})
    model = ClassConditionalDawidSkene().fit(frame)
    means = model.class_skills_.mean()
    assert means[0] > 0.8 and means[1] > 0.8 and means[2] < 0.55
    assert method_class("ccds") is ClassConditionalDawidSkene
    assert method_class("onecoin") is OneCoinDawidSkene


@pytest.mark.parametrize("model", MODELS)
def test_gold_is_clamped_and_helps(model) -> None:
    frame, truth, skill = make_crowd(n_items=300, per_item=3, seed=1)
    gold = truth.iloc[:100]
    rest = truth.iloc[100:]
    plain = model().fit(frame)
    with_gold = model().fit(frame, true_labels=gold)
    assert (with_gold.labels_[gold.index] == gold).all()
    assert np.allclose(with_gold.probas_.loc[gold.index].max(axis=1), 1.0)
    assert accuracy(with_gold.labels_, rest) >= accuracy(plain.labels_, rest)
    error = (with_gold.skills_.reindex(skill.index) - skill).abs().mean()
    assert error <= (plain.skills_.reindex(skill.index) - skill).abs().mean() + 1e-9


def _model_rows(truth: pd.Series, k: int, accuracy_: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    guess = np.where(rng.random(len(truth)) < accuracy_, truth, (truth + rng.integers(1, k, len(truth))) % k)
    rows = np.full((len(truth), k), 0.1 / (k - 1))
    rows[np.arange(len(truth)), guess] = 0.9
    return rows


@pytest.mark.parametrize("model", MODELS)
def test_soft_answers_good_model_helps_noise_is_ignored(model) -> None:
    frame, truth, _ = make_crowd(n_items=300, per_item=3, seed=2)
    answers = Answers.from_frame(frame)
    base = accuracy(model().fit_predict(answers), truth)
    good = answers.with_soft("model", truth.index, _model_rows(truth, 3, 0.9, seed=5))
    fitted = model().fit(good)
    assert accuracy(fitted.labels_, truth) > base + 0.03
    assert fitted.temperatures_["model"] > 0.5
    noise = np.random.default_rng(6).dirichlet(np.ones(3), size=len(truth))
    noisy = model().fit(answers.with_soft("random", truth.index, noise))
    assert noisy.temperatures_["random"] < 0.3
    assert accuracy(noisy.labels_, truth) >= base - 0.01
    assert np.isfinite(noisy.skills_["random"])


DEGENERATE = {
    "one item": pd.DataFrame({"task": [1, 1, 1], "worker": ["a", "b", "c"], "label": ["x", "y", "x"]}),
    "one worker": pd.DataFrame({"task": [1, 2, 3], "worker": ["a", "a", "a"], "label": ["x", "y", "x"]}),
    "one class": pd.DataFrame({"task": [1, 1, 2, 2], "worker": ["a", "b", "a", "b"], "label": ["x"] * 4}),
    "all agree": pd.DataFrame({"task": [1, 1, 2, 2], "worker": ["a", "b", "a", "b"], "label": list("xxyy")}),
    "tie": pd.DataFrame({"task": [1, 1, 2, 2], "worker": ["a", "b", "a", "b"], "label": list("xyyx")}),
    "single answer": pd.DataFrame({"task": [1, 1, 1, 2, 2, 2, 3], "worker": list("abcabcd"), "label": list("xxyyyxy")}),
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_input(model, case) -> None:
    frame = DEGENERATE[case]
    fitted = model().fit(frame)
    assert fitted.labels_.notna().all()
    probas = fitted.probas_.to_numpy()
    assert np.isfinite(probas).all() and np.allclose(probas.sum(axis=1), 1.0)
    assert np.isfinite(fitted.errors_.to_numpy()).all()
    if case == "all agree":
        assert fitted.labels_.tolist() == ["x", "y"]
    if case == "one class":
        assert fitted.labels_.tolist() == ["x", "x"]
    if case == "tie":  # symmetric data: deterministic, the same on a second fit
        assert fitted.labels_.equals(model().fit(frame).labels_)


@pytest.mark.parametrize("model", MODELS)
def test_crowd_kit_compatible_outputs(model, crowd) -> None:
    frame, _, _ = crowd
    fitted = model().fit(frame)
    assert isinstance(fitted.labels_, pd.Series) and fitted.labels_.index.name == "task"
    assert set(fitted.labels_.index) == set(frame["task"])
    assert np.allclose(fitted.probas_.sum(axis=1), 1.0)
    assert fitted.probas_.index.equals(fitted.labels_.index)
    assert list(fitted.errors_.index.names) == ["worker", "label"]
    assert list(fitted.errors_.columns) == [0, 1, 2]
    assert fitted.priors_.sum() == pytest.approx(1.0)
    assert fitted.fit_predict(frame).equals(fitted.labels_)
    assert fitted.fit_predict_proba(frame).equals(fitted.probas_)


def test_one_coin_errors_are_built_from_skills(crowd) -> None:
    frame, _, _ = crowd
    model = OneCoinDawidSkene().fit(frame)
    errors = model.errors_
    observed = errors.index.get_level_values("label").to_numpy()
    values = errors.to_numpy()
    correct = values[np.arange(len(errors)), observed]
    skills = model.skills_[errors.index.get_level_values("worker")].to_numpy()
    assert np.allclose(correct, skills)
    wrong = np.where(np.arange(3)[None, :] == observed[:, None], np.nan, values)
    assert np.allclose(wrong[~np.isnan(wrong)].reshape(len(errors), 2), ((1 - skills) / 2)[:, None])


def test_one_coin_stays_stable_on_biased_crowd() -> None:
    """Workers who over-use label 0: crowd-kit's one-coin model (learned class prior, no skill
    prior) drifts to labelling nearly everything 0; the default stays near the truth."""
    rng = np.random.default_rng(4)
    n_items, n_workers, k = 400, 20, 4
    truth = rng.integers(0, k, n_items)
    item = np.repeat(np.arange(n_items), 7)
    worker = np.concatenate([rng.choice(n_workers, 7, replace=False) for _ in range(n_items)])
    right = rng.random(len(item)) < 0.55
    biased = rng.random(len(item)) < 0.6
    wrong = np.where(biased, 0, (truth[item] + rng.integers(1, k, len(item))) % k)
    frame = pd.DataFrame({"task": item, "worker": worker, "label": np.where(right, truth[item], wrong)})
    truth_series = pd.Series(truth)
    mv = accuracy(MajorityVote().fit_predict(frame), truth_series)
    crowdkit_like = OneCoinDawidSkene(skill_prior=(0, 0), class_prior="learn").fit(frame)
    default = OneCoinDawidSkene().fit(frame)
    assert accuracy(default.labels_, truth_series) >= mv - 0.01
    assert accuracy(default.labels_, truth_series) > accuracy(crowdkit_like.labels_, truth_series) + 0.05


def test_crowdkit_stopping_rule_and_params() -> None:
    frame, _, _ = make_crowd(n_items=200, seed=7)
    likelihood = DawidSkene().fit(frame)
    crowdkit = DawidSkene(stopping="crowdkit").fit(frame)
    assert np.all(np.diff(likelihood.loss_history_) >= -1e-9)  # EM never lowers the likelihood
    assert crowdkit.n_iter_ >= 1 and len(crowdkit.loss_history_) == crowdkit.n_iter_
    for bad in (
        DawidSkene(stopping="never"),
        DawidSkene(prior_accuracy=0.0),
        DawidSkene(prior_errors="pooled"),
        OneCoinDawidSkene(skill_prior=(-1, 0)),
        ClassConditionalDawidSkene(class_prior="flat"),
        OneCoinDawidSkene(n_iter=0),
    ):
        with pytest.raises(ConfigError):
            bad.fit(frame)


def test_deterministic(crowd) -> None:
    frame, _, _ = crowd
    for model in MODELS:
        a, b = model().fit(frame), model().fit(frame)
        assert a.probas_.equals(b.probas_)


def test_row_reductions_match_numpy_on_short_and_long_rows():
    from crowdloop.aggregation.posterior import row_argmax, row_max, row_sum

    rng = np.random.default_rng(5)
    for k in (1, 3, 10, 80):
        x = rng.integers(0, 4, (500, k)).astype(np.float32)  # many ties
        best, top = row_argmax(x)
        np.testing.assert_array_equal(best, x.argmax(axis=1))  # ties to the lowest column
        np.testing.assert_array_equal(top, x.max(axis=1))
        np.testing.assert_array_equal(row_max(x), x.max(axis=1))
        np.testing.assert_allclose(row_sum(x), x.sum(axis=1))


def test_blockwise_softmax_matches_scipy_and_never_goes_subnormal(monkeypatch):
    from scipy.special import logsumexp, softmax

    import crowdloop.aggregation.posterior as posterior

    monkeypatch.setattr(posterior, "SOFTMAX_BLOCK_CELLS", 64)  # many blocks, a ragged last one
    rng = np.random.default_rng(6)
    x = rng.normal(0, 40, (1001, 7))
    x[0] = [-5000, 0, 0, -1, -200, 3, -2]
    for dtype in (np.float64, np.float32):
        probs = x.astype(dtype)
        log_normaliser = posterior.softmax_in_place(probs)
        np.testing.assert_allclose(probs, softmax(x, axis=1), atol=1e-5 if dtype == np.float32 else 1e-12)
        np.testing.assert_allclose(log_normaliser, logsumexp(x, axis=1), rtol=1e-5)
        assert probs.min() >= np.finfo(dtype).tiny  # no subnormal numbers to slow later products


def test_pair_counts_and_codes_match_a_direct_count():
    from crowdloop.aggregation.em import AnswerPairs, _dense_unique

    frame = make_crowd(n_items=300, n_workers=12, k=4, per_item=3, seed=7)[0]
    answers = Answers.from_frame(frame)
    pairs = AnswerPairs(answers)
    probs = np.random.default_rng(7).dirichlet(np.ones(4), answers.n_items)
    counts = pairs.counts(probs)
    expected = np.zeros((len(pairs), 4))
    key = answers.worker.astype(np.int64) * 4 + answers.label
    row = np.searchsorted(pairs.worker.astype(np.int64) * 4 + pairs.label, key)
    np.add.at(expected, row, probs[answers.item])
    np.testing.assert_allclose(counts, expected, rtol=1e-5)
    for n_keys in (50, 10**9):  # counted and sorted paths
        keys = np.random.default_rng(8).integers(0, 50, 200)
        unique, inverse = _dense_unique(keys, n_keys)
        np.testing.assert_array_equal(unique[inverse], keys)
        np.testing.assert_array_equal(unique, np.unique(keys))


def test_prior_keeps_dawid_skene_above_majority_vote_on_small_sparse_crowds(small_sparse_crowd) -> None:
    ours, crowdkit, majority = [], [], []
    for seed in range(6):
        frame, truth = small_sparse_crowd(seed)
        ours.append(accuracy(DawidSkene().fit_predict(frame), truth))
        # crowd-kit 1.4.2's fit, answer for answer: no prior, its stopping rule
        crowdkit.append(accuracy(DawidSkene(prior_strength=0, stopping="crowdkit").fit_predict(frame), truth))
        majority.append(accuracy(MajorityVote().fit_predict(frame), truth))
    ours, crowdkit, majority = map(np.array, (ours, crowdkit, majority))
    assert crowdkit.mean() < majority.mean() - 0.02  # the maximum-likelihood fit loses to majority vote
    assert (ours >= crowdkit).all()
    assert (ours >= majority - 0.01).all() and ours.mean() > majority.mean() + 0.005


@pytest.mark.parametrize("seed", [102, 103])
def test_the_prior_keeps_sparse_crowds_near_majority_vote(seed: int) -> None:
    """On sparse crowds (500 items, 3 answers each, 200 workers: 7.5 answers per worker) the stated
    accuracy on the prior's diagonal anchors the fit; a prior centred wholly on the crowd's
    confusion fell 12 and 4 points below majority vote on these two."""
    frame, truth = synthetic_crowd(500, 3, 200, 4, random_state=seed)
    majority = accuracy(MajorityVote().fit_predict(frame), truth)
    assert accuracy(DawidSkene().fit_predict(frame), truth) >= majority - 0.015


def test_the_prior_spreads_wrong_answers_as_the_crowd_does() -> None:
    """A worker's prior row keeps the stated accuracy on the diagonal and spreads the rest as the
    crowd errs on that class: a worker seen once errs, where unseen, like the crowd, not uniformly."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 600)
    # on class-0 items the crowd answers 1 a third of the time and never 2; elsewhere it is right
    rows = [(i, f"w{w}", int(t or (rng.random() < 1 / 3))) for i, t in enumerate(truth) for w in range(5)]
    item = int(np.flatnonzero(truth == 0)[0])
    answers = Answers.from_frame(pd.DataFrame([*rows, (item, "new", 0)], columns=["task", "worker", "label"]))
    new = answers.subset(answers.worker == answers.workers.get_loc("new"))
    unseen = replace(new, item=np.repeat(new.item, 2), worker=np.repeat(new.worker, 2), label=np.array([1, 2]))
    # P(answer l | true 0) for the pairs the new worker never used: s m_l0 / (n_w0 + s), s = 2K = 6
    n_w0 = 1.0  # its one answer is on a class-0 item
    crowd = np.exp(DawidSkene().fit(answers).answer_log_likelihood(unseen)[:, 0])
    assert crowd == pytest.approx([6 * 0.3 / (n_w0 + 6), 0.0], abs=0.01)
    uniform = np.exp(DawidSkene(prior_errors="uniform").fit(answers).answer_log_likelihood(unseen)[:, 0])
    assert uniform == pytest.approx([6 * 0.15 / (n_w0 + 6)] * 2, abs=0.01)


def test_dirichlet_prior_is_a_posterior_mode_centred_on_the_prior_accuracy() -> None:
    frame = pd.DataFrame({"task": ["a", "a", "a"], "worker": ["x", "y", "z"], "label": [0, 0, 1]})
    model = DawidSkene(prior_accuracy=0.8, prior_strength=4).fit(frame)
    assert DawidSkene().fit(frame).errors_.loc[("z", 1), 0] > 0
    # worker z answered 1 once; its row for a true 0 item: (P(z=0) * 1 + 4 * .2 / 1) / (P(z=0) + 4)
    p0 = model.probas_.loc["a", 0]
    assert model.errors_.loc[("z", 1), 0] == pytest.approx((p0 + 0.8) / (p0 + 4), rel=1e-4)
    # without answers, the prior alone: a worker is right with the prior accuracy
    assert model.errors_.loc[("x", 0), 1] == pytest.approx(0.8 / ((1 - p0) + 4), rel=1e-4)
    for bad in (DawidSkene(prior_accuracy=1.0), DawidSkene(prior_strength=-1)):
        with pytest.raises(ConfigError):
            bad.fit(frame)
