"""GLAD, MACE and Zero-Based Skill on crowds generated here with a fixed seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from crowdloop.aggregation.glad import GLAD
from crowdloop.aggregation.mace import MACE
from crowdloop.aggregation.registry import method_class
from crowdloop.aggregation.voting import MajorityVote
from crowdloop.aggregation.zero_based_skill import ZeroBasedSkill
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError, InputError

MODELS = [GLAD, MACE, ZeroBasedSkill]
LABELS = ["cat", "dog", "fox", "owl"]


@dataclass
class Crowd:
    frame: pd.DataFrame
    truth: pd.Series
    good: list[str]
    spammers: list[str]
    easy: pd.Index
    hard: pd.Index


def make_crowd(seed: int = 7, n_items: int = 500, per_item: int = 5) -> Crowd:
    """Good workers (accuracy .85 on easy items), mediocre ones (.55) and spammers who answer their
    favourite label 80% of the time; on hard items everyone's accuracy drops towards chance."""
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    kinds = ["good"] * 10 + ["mediocre"] * 10 + ["spammer"] * 8
    n_workers = len(kinds)
    accuracy = np.array([{"good": 0.85, "mediocre": 0.55, "spammer": 0.0}[kind] for kind in kinds])
    favourite = rng.integers(0, k, n_workers)
    truth = rng.integers(0, k, n_items)
    hard = rng.random(n_items) < 0.4
    item = np.repeat(np.arange(n_items), per_item)
    worker = np.concatenate([rng.choice(n_workers, per_item, replace=False) for _ in range(n_items)])
    right = accuracy[worker] * np.where(hard[item], 0.45, 1.0)
    right = right + (1 - right) / k * (accuracy[worker] > 0)
    label = np.where(rng.random(len(item)) < right, truth[item], (truth[item] + rng.integers(1, k, len(item))) % k)
    spam = np.array(kinds)[worker] == "spammer"
    spam_label = np.where(rng.random(len(item)) < 0.8, favourite[worker], rng.integers(0, k, len(item)))
    label = np.where(spam, spam_label, label)
    tasks = np.array([f"t{i:03d}" for i in range(n_items)])
    workers = np.array([f"w{j:02d}" for j in range(n_workers)])
    names = np.array(LABELS)
    frame = pd.DataFrame({"task": tasks[item], "worker": workers[worker], "label": names[label]})
    return Crowd(
        frame=frame,
        truth=pd.Series(names[truth], index=tasks),
        good=[w for w, kind in zip(workers, kinds, strict=True) if kind == "good"],
        spammers=[w for w, kind in zip(workers, kinds, strict=True) if kind == "spammer"],
        easy=pd.Index(tasks[~hard]),
        hard=pd.Index(tasks[hard]),
    )


@pytest.fixture(scope="module")
def crowd() -> Crowd:
    return make_crowd()


@pytest.fixture(scope="module")
def fits(crowd: Crowd) -> dict[type, object]:
    """Each model fitted once with its default parameters on the crowd (shared by the tests)."""
    return {model: model().fit(crowd.frame) for model in MODELS}


def accuracy(labels: pd.Series, truth: pd.Series) -> float:
    return float((labels.reindex(truth.index) == truth).mean())


@pytest.mark.parametrize("model", MODELS)
def test_beats_majority_vote(crowd: Crowd, fits: dict, model: type) -> None:
    baseline = accuracy(MajorityVote().fit_predict(crowd.frame), crowd.truth)
    ours = accuracy(fits[model].labels_, crowd.truth)
    assert ours >= baseline + 0.03, (baseline, ours)


@pytest.mark.parametrize("model", MODELS)
def test_skills_separate_good_workers_from_spammers(crowd: Crowd, fits: dict, model: type) -> None:
    skills = fits[model].skills_
    assert skills.loc[crowd.good].min() > skills.loc[crowd.spammers].max()


def test_mace_flags_spammers_with_low_competence(crowd: Crowd, fits: dict) -> None:
    mace = fits[MACE]
    assert mace.skills_.loc[crowd.spammers].max() < 0.2
    assert mace.skills_.loc[crowd.good].min() > 0.5
    # a spammer's strategy puts most of its weight on the favourite label
    rows = mace.workers_.get_indexer(crowd.spammers)
    assert (mace.thetas_[rows].max(axis=1) > 0.5).all()


def test_mace_em_method_and_determinism(crowd: Crowd) -> None:
    a = MACE(method="em", n_restarts=3, random_state=3).fit(crowd.frame)
    b = MACE(method="em", n_restarts=3, random_state=3).fit(crowd.frame)
    np.testing.assert_array_equal(a.probas_.to_numpy(), b.probas_.to_numpy())
    np.testing.assert_array_equal(a.spamming_, b.spamming_)
    baseline = accuracy(MajorityVote().fit_predict(crowd.frame), crowd.truth)
    assert accuracy(a.labels_, crowd.truth) > baseline
    np.testing.assert_allclose(a.spamming_.sum(axis=1), 1.0)
    np.testing.assert_allclose(a.thetas_.sum(axis=1), 1.0)


def unbalanced_crowd(seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Binary items, 12% positive, 3 answers each: 24 careful workers (right 92% of the time) and 6
    who answer "yes" 60% of the time whatever the item (the shape of the product-matching crowds)."""
    rng = np.random.default_rng(seed)
    n_items, per_item, n_careful, n_workers = 1500, 3, 24, 30
    truth = (rng.random(n_items) < 0.12).astype(int)
    item = np.repeat(np.arange(n_items), per_item)
    worker = np.concatenate([rng.choice(n_workers, per_item, replace=False) for _ in range(n_items)])
    careful = np.where(rng.random(len(item)) < 0.92, truth[item], 1 - truth[item])
    label = np.where(worker < n_careful, careful, (rng.random(len(item)) < 0.6).astype(int))
    names = np.array(["no", "yes"])
    frame = pd.DataFrame({"task": item, "worker": worker, "label": names[label]})
    return frame, pd.Series(names[truth])


@pytest.mark.parametrize("seed", [0, 1])
def test_mace_learns_the_class_prior_on_unbalanced_classes(seed: int) -> None:
    frame, truth = unbalanced_crowd(seed)
    baseline = accuracy(MajorityVote().fit_predict(frame), truth)
    mace = MACE().fit(frame)
    assert accuracy(mace.labels_, truth) > baseline + 0.02
    assert mace.priors_["no"] == pytest.approx(0.88, abs=0.03)
    # the paper's uniform prior explains the careful workers' many "no" as spam
    uniform = MACE(class_prior="uniform").fit(frame)
    assert accuracy(uniform.labels_, truth) < baseline
    assert (uniform.priors_ == 0.5).all()


def test_glad_betas_rank_hard_items_below_easy_ones(crowd: Crowd, fits: dict) -> None:
    glad = fits[GLAD]
    betas = glad.betas_
    assert betas.loc[crowd.hard].mean() < betas.loc[crowd.easy].mean() - 0.2
    # the probability that a random hard item is ranked below a random easy one
    hard, easy = betas.loc[crowd.hard].to_numpy(), betas.loc[crowd.easy].to_numpy()
    assert (hard[:, None] < easy[None, :]).mean() > 0.7
    assert glad.alphas_.loc[crowd.good].mean() > glad.alphas_.loc[crowd.spammers].mean() + 1.0


def test_glad_crowdkit_stopping_follows_crowdkits_schedule(crowd: Crowd) -> None:
    """crowd-kit's schedule: stop once its loss improves by less than tol, and answer with the
    posterior that fed the last M-step, i.e. what a run capped at that round answers."""
    early = GLAD(stopping="crowdkit").fit(crowd.frame)
    steps = np.diff(early.loss_history_)
    assert early.n_iter_ == len(early.loss_history_) < 100
    assert steps[-1] < early.tol and (steps[:-1] >= early.tol).all()
    capped = GLAD(stopping="crowdkit", n_iter=early.n_iter_).fit(crowd.frame)
    pd.testing.assert_frame_equal(capped.probas_, early.probas_)
    # one round answers with the first posterior, the E-step at the prior means, where every
    # answer weighs the same: majority vote's labels wherever the vote is not tied
    one = GLAD(stopping="crowdkit", n_iter=1).fit(crowd.frame)
    majority = MajorityVote().fit(crowd.frame)
    untied = majority.probas_.max(axis=1) > 0.5
    assert (one.labels_[untied] == majority.labels_[untied]).all()


def test_glad_converged_fit_beats_crowdkits_early_stop_on_glad_shaped_crowds() -> None:
    """On crowds with item difficulty and spammers (three answers per item) EM run to convergence
    labels more items right than crowd-kit's stopping rule, which halts after a few rounds."""
    converged, early = [], []
    for seed in range(4):
        sample = make_crowd(seed=seed, per_item=3)
        converged.append(accuracy(GLAD().fit_predict(sample.frame), sample.truth))
        early.append(accuracy(GLAD(stopping="crowdkit").fit_predict(sample.frame), sample.truth))
    assert np.mean(converged) > np.mean(early) + 0.01, (converged, early)


@pytest.mark.parametrize("model", MODELS)
def test_crowd_kit_shaped_outputs(crowd: Crowd, fits: dict, model: type) -> None:
    fitted = fits[model]
    assert fitted.labels_.index.name == "task"
    assert set(fitted.labels_.index) == set(crowd.truth.index)
    assert set(fitted.labels_.unique()) <= set(LABELS)
    assert list(fitted.probas_.columns) == LABELS
    np.testing.assert_allclose(fitted.probas_.sum(axis=1), 1.0)
    assert (fitted.probas_.idxmax(axis=1) == fitted.labels_).all()
    assert fitted.skills_.index.name == "worker" and len(fitted.skills_) == 28
    assert np.isfinite(fitted.skills_).all() and fitted.skills_.between(0, 1).all()


def test_model_specific_attributes(fits: dict) -> None:
    glad = fits[GLAD]
    assert glad.alphas_.name == "alpha" and glad.alphas_.index.name == "worker" and len(glad.alphas_) == 28
    assert glad.betas_.name == "beta" and glad.betas_.index.name == "task" and len(glad.betas_) == 500
    np.testing.assert_allclose(glad.priors_.to_numpy(), 0.25)
    assert glad.n_iter_ == len(glad.loss_history_) <= 100
    assert np.all(np.diff(glad.loss_history_[1:]) > -1e-3)
    mace = fits[MACE]
    assert mace.spamming_.shape == (28, 2) and mace.thetas_.shape == (28, 4)
    assert mace.spamming_.sum(axis=1).max() <= 1.0  # variational weights are sub-normalised
    zbs = fits[ZeroBasedSkill]
    assert 1 <= zbs.n_iter_ <= 100


@pytest.mark.parametrize("model", MODELS)
def test_answers_and_frame_give_the_same_result(crowd: Crowd, fits: dict, model: type) -> None:
    from_frame = fits[model].probas_
    from_answers = model().fit(Answers.from_frame(crowd.frame)).probas_
    pd.testing.assert_frame_equal(from_frame, from_answers)


def two_camps(n_items: int = 60) -> pd.DataFrame:
    """Three workers always right, three always wrong (the other label): symmetric without gold."""
    rows = []
    for i in range(n_items):
        true = "yes" if i % 2 else "no"
        wrong = "no" if i % 2 else "yes"
        rows += [(f"t{i:02d}", f"right{j}", true) for j in range(3)]
        rows += [(f"t{i:02d}", f"wrong{j}", wrong) for j in range(3)]
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


@pytest.mark.parametrize("model", MODELS)
def test_gold_clamps_its_items_and_informs_skills(model: type) -> None:
    frame = two_camps()
    truth = pd.Series(["yes" if i % 2 else "no" for i in range(60)], index=[f"t{i:02d}" for i in range(60)])
    gold = truth.iloc[:8]
    fitted = model().fit(frame, true_labels=gold)
    assert (fitted.labels_.loc[gold.index] == gold).all()
    np.testing.assert_array_equal(fitted.probas_.loc[gold.index].max(axis=1), 1.0)
    assert (fitted.labels_ == truth).all()
    assert fitted.skills_.loc[["right0", "right1", "right2"]].min() > fitted.skills_.loc[["wrong0", "wrong1"]].max()
    # gold against the crowd: the gold label wins on its item
    contrary = pd.Series({"t01": "no"})
    assert model().fit(frame, true_labels=contrary).labels_.loc["t01"] == "no"


@pytest.mark.parametrize("model", MODELS)
def test_soft_answers_vote(crowd: Crowd, fits: dict, model: type) -> None:
    answers = Answers.from_frame(crowd.frame)
    rng = np.random.default_rng(1)
    codes = answers.labels.encode(crowd.truth.to_numpy())
    probs = np.full((len(codes), 4), 0.1)
    probs[np.arange(len(codes)), codes] = 0.7
    noisy = rng.random(len(codes)) < 0.15  # the model errs on 15% of items
    probs[noisy] = np.roll(probs[noisy], 1, axis=1)
    with_model = answers.with_soft("model", crowd.truth.index, probs)
    plain = accuracy(fits[model].labels_, crowd.truth)
    helped = (MACE(n_restarts=3) if model is MACE else model()).fit(with_model)
    assert accuracy(helped.labels_, crowd.truth) >= plain + 0.03
    assert "model" in helped.skills_.index and np.isfinite(helped.skills_.loc["model"])
    # an item only the model has seen gets the model's label
    extra = with_model.with_soft("model", ["new"], np.array([[0.05, 0.05, 0.85, 0.05]]), unknown_items="add")
    assert (MACE(n_restarts=1) if model is MACE else model()).fit(extra).labels_.loc["new"] == "fox"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("t", "a", "x"), ("t", "b", "x"), ("t", "c", "y")], {"t": "x"}),  # one item
        ([("t1", "a", "x"), ("t2", "a", "y"), ("t3", "a", "y")], {"t1": "x", "t2": "y", "t3": "y"}),  # one worker
        ([("t1", "a", "x"), ("t1", "b", "x"), ("t2", "a", "x")], {"t1": "x", "t2": "x"}),  # one class present
        ([("t1", "a", "x"), ("t1", "b", "x"), ("t1", "c", "y"), ("t2", "a", "y"), ("t2", "b", "y")], None),
        ([("t1", "a", "x"), ("t1", "b", "x"), ("t2", "a", "y"), ("t2", "b", "y")], {"t1": "x", "t2": "y"}),  # agree
    ],
)
def test_degenerate_input(model: type, rows: list[tuple[str, str, str]], expected: dict[str, str] | None) -> None:
    frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
    fitted = model().fit(frame)
    assert np.isfinite(fitted.probas_.to_numpy()).all()
    np.testing.assert_allclose(fitted.probas_.sum(axis=1), 1.0)
    assert np.isfinite(fitted.skills_.to_numpy()).all()
    if expected is not None:
        assert fitted.labels_.to_dict() == expected


def test_worker_who_answered_once_keeps_a_prior_like_skill(crowd: Crowd) -> None:
    frame = pd.concat([crowd.frame, pd.DataFrame({"task": ["t000"], "worker": ["newcomer"], "label": ["owl"]})])
    glad = GLAD().fit(frame)
    assert -1.0 < glad.alphas_.loc["newcomer"] < 2.0  # one answer barely moves it from the prior mean 1
    mace = MACE().fit(frame)
    assert 0.05 < mace.skills_.loc["newcomer"] < 0.95


def test_zbs_predict_on_new_answers(crowd: Crowd, fits: dict) -> None:
    zbs = fits[ZeroBasedSkill]
    part = crowd.frame[crowd.frame.task.isin(crowd.truth.index[:50])]
    pd.testing.assert_series_equal(zbs.predict(part), zbs.labels_.loc[sorted(part.task.unique())], check_names=False)
    assert list(zbs.predict_proba(part).columns) == LABELS
    with pytest.raises(InputError, match="no fitted skill"):
        zbs.predict(pd.DataFrame({"task": ["t1"], "worker": ["stranger"], "label": ["cat"]}))


def test_registry_and_parameter_validation() -> None:
    assert method_class("glad") is GLAD and method_class("mace") is MACE and method_class("zbs") is ZeroBasedSkill
    frame = two_camps(4)
    bad_models = (
        MACE(method="gibbs"),
        MACE(n_restarts=0),
        MACE(class_prior="flat"),
        GLAD(m_step_max_iter=0),
        GLAD(stopping="never"),
    )
    for bad in (*bad_models, ZeroBasedSkill(lr_init=0)):
        with pytest.raises(ConfigError):
            bad.fit(frame)
    with pytest.raises(ConfigError, match="labels_priors"):
        GLAD(labels_priors=pd.Series({"yes": 1.0})).fit(frame)


def test_glad_priors_steer_the_answer() -> None:
    frame = pd.DataFrame({"task": ["t", "t"], "worker": ["a", "b"], "label": ["x", "y"]})
    leaning = GLAD(labels_priors=pd.Series({"x": 0.2, "y": 0.8})).fit(frame)
    assert leaning.labels_.loc["t"] == "y"
    trusted = GLAD(alphas_priors_mean=pd.Series({"a": 3.0, "b": 0.0})).fit(frame)
    assert trusted.labels_.loc["t"] == "x"
