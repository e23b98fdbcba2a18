"""Active learning: strategies on generated pools whose right answer is known."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import cohen_kappa_score

from crowdloop.active import (
    Committee,
    DensityWeighted,
    DiverseBatch,
    QueryByCommittee,
    StabilizingPredictions,
    TextFeatures,
    UncertaintySampling,
    cohen_kappa,
    entropy,
    k_center_greedy,
    kl_to_consensus,
    kmeans_plus_plus,
    labels_to_reach,
    least_confidence,
    make_strategy,
    margin,
    relabel_or_new,
    relabel_or_new_scores,
    run_active_learning,
    score_pool,
    select_from_pool,
    top_batch,
    vote_entropy,
)
from crowdloop.aggregation import MajorityVote
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError, InputError
from crowdloop.models import TextClassifier

# --- uncertainty scores against hand-computed values ------------------------------------------

PROBS = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [0.9, 0.05, 0.05], [1.0, 0.0, 0.0]])


def test_scores_match_hand_computed_values():
    np.testing.assert_allclose(least_confidence(PROBS), [0.5, 0.6, 0.1, 0.0])
    np.testing.assert_allclose(margin(PROBS), [1.0, 0.9, 0.15, 0.0])
    h = [np.log(2), -(0.4 * np.log(0.4) + 2 * 0.3 * np.log(0.3)), -(0.9 * np.log(0.9) + 2 * 0.05 * np.log(0.05)), 0]
    np.testing.assert_allclose(entropy(PROBS), h)


def test_measures_disagree_where_they_should():
    # margin prefers the two-way tie, least confidence and entropy the flat three-way row
    assert UncertaintySampling("margin").select(1, probs=PROBS).tolist() == [0]
    assert UncertaintySampling("least_confidence").select(1, probs=PROBS).tolist() == [1]
    assert UncertaintySampling("entropy").select(1, probs=PROBS).tolist() == [1]


@pytest.mark.parametrize("measure", ["least_confidence", "margin", "entropy"])
def test_strategy_picks_the_uncertain_items(measure):
    rng = np.random.default_rng(0)
    n, k = 500, 5
    confident = rng.dirichlet(np.full(k, 0.05), size=n)
    confident = 0.02 / k + 0.98 * np.eye(k)[confident.argmax(axis=1)]
    uncertain = rng.choice(n, 20, replace=False)
    confident[uncertain] = rng.dirichlet(np.full(k, 20.0), size=20)  # close to uniform
    picked = UncertaintySampling(measure).select(20, probs=confident)
    assert set(picked.tolist()) == set(uncertain.tolist())


def test_top_batch_orders_best_first_and_breaks_ties_by_row():
    assert top_batch(np.array([0.1, 0.9, 0.5, 0.9, np.nan]), 3).tolist() == [1, 3, 2]
    assert top_batch(np.array([0.3]), 5).tolist() == [0]
    with pytest.raises(ConfigError):
        top_batch(np.array([0.3]), -1)


def test_bad_probabilities_and_names_are_rejected():
    with pytest.raises(InputError, match="shape"):
        margin(np.ones(3))
    with pytest.raises(InputError, match="non-negative"):
        entropy(np.array([[1.5, -0.5]]))
    with pytest.raises(ConfigError, match="unknown strategy 'best'"):
        make_strategy("best")
    with pytest.raises(InputError, match="needs probs"):
        make_strategy("margin").select(3)


# --- query by committee -------------------------------------------------------------------------


def test_qbc_picks_the_items_the_committee_disagrees_on():
    rng = np.random.default_rng(1)
    members, n, k = 5, 200, 4
    truth = rng.integers(k, size=n)
    agree = 0.05 + 0.8 * np.eye(k)[truth]
    committee = np.repeat(agree[None], members, axis=0)
    disputed = rng.choice(n, 10, replace=False)
    for m in range(members):  # each member is sure, but of a different class
        committee[m, disputed] = 0.05 + 0.8 * np.eye(k)[(truth[disputed] + m) % k]
    for measure in ("vote_entropy", "kl"):
        picked = QueryByCommittee(measure).select(10, probs=committee)
        assert set(picked.tolist()) == set(disputed.tolist())
    assert vote_entropy(committee)[disputed].min() > 1.0
    np.testing.assert_allclose(kl_to_consensus(committee)[np.setdiff1d(np.arange(n), disputed)], 0, atol=1e-12)


def test_committee_of_text_models_aligns_its_columns():
    texts = [f"{w} item {i}" for i in range(10) for w in ("apple", "pear", "car")]
    labels = [w for i in range(10) for w in ("fruit", "fruit2", "car")]
    committee = Committee(TextClassifier(cv=2), n_members=3, random_state=0).fit(texts, labels)
    probs = committee.predict_proba(["apple thing", "car thing"])
    assert probs.shape == (3, 2, 3)
    np.testing.assert_allclose(probs.sum(axis=2), 1)
    assert committee.label_space_.decode(probs.mean(axis=0).argmax(axis=1)).tolist() == ["fruit", "car"]


# --- diversity ----------------------------------------------------------------------------------


def clusters(sizes, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=20, size=(len(sizes), 2))
    X = np.concatenate([c + spread * rng.normal(size=(s, 2)) for c, s in zip(centers, sizes, strict=True)])
    return X, np.repeat(np.arange(len(sizes)), sizes)


def test_coreset_covers_every_cluster_even_the_small_ones():
    X, cluster = clusters([600, 80, 20, 6, 3])
    picked = k_center_greedy(X, 5, random_state=0)
    assert sorted(cluster[picked].tolist()) == [0, 1, 2, 3, 4]
    # random sampling of 5 misses the small clusters: the test is not vacuous
    assert len(set(cluster[np.random.default_rng(0).choice(len(X), 5, replace=False)])) < 5


def test_coreset_goes_where_the_labels_are_not():
    X, cluster = clusters([300, 300, 300, 40, 40])
    labeled = X[np.isin(cluster, [0, 1, 2])][::50]
    picked = k_center_greedy(X, 2, labeled_features=labeled)
    assert sorted(cluster[picked].tolist()) == [3, 4]


def test_kmeans_plus_plus_spreads_and_sparse_equals_dense():
    X, cluster = clusters([400, 100, 50, 20, 10])
    picked = kmeans_plus_plus(X, 5, random_state=3)
    assert sorted(cluster[picked].tolist()) == [0, 1, 2, 3, 4]
    assert len(set(picked.tolist())) == 5
    shifted = X - X.min(axis=0) + 1  # sparse path on the same geometry
    dense = k_center_greedy(shifted, 8, random_state=0)
    np.testing.assert_array_equal(k_center_greedy(sp.csr_matrix(shifted), 8, random_state=0), dense)


def test_diverse_batch_with_a_margin_prefilter_stays_among_the_uncertain():
    X, _ = clusters([200, 200, 200])
    rng = np.random.default_rng(0)
    probs = np.tile([0.98, 0.02], (600, 1))
    unsure = rng.choice(600, 60, replace=False)
    probs[unsure] = [0.5, 0.5]
    picked = DiverseBatch("coreset", prefilter="margin", candidate_factor=10).select(6, probs=probs, features=X)
    assert set(picked.tolist()) <= set(unsure.tolist())


# --- density ------------------------------------------------------------------------------------


def test_density_weighting_prefers_the_uncertain_item_in_the_crowd():
    # rows 0-49 are one dense topic, row 50 an outlier; rows 0 and 50 are equally uncertain
    X = sp.csr_matrix(np.vstack([np.tile([1.0, 0.0, 0.0], (50, 1)), [[0.0, 0.0, 1.0]]]))
    probs = np.tile([0.95, 0.05], (51, 1))
    probs[[0, 50]] = [0.5, 0.5]
    strategy = DensityWeighted("entropy")
    assert strategy.select(1, probs=probs, features=X).tolist() == [0]
    expected = [round(50 / 51, 3), round(1 / 51, 3)]
    assert strategy.similarity(X).round(3)[[0, 50]].tolist() == expected  # unfitted: the rows are the pool
    fitted = DensityWeighted("entropy").partial_fit(X[:20]).partial_fit(X[20:])  # chunk by chunk
    assert fitted.similarity(X[[0, 50]]).round(3).tolist() == expected


# --- chunked scoring ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["random", "least_confidence", "margin", "entropy", "qbc", "qbc_kl", "density", "margin+coreset"]
)
def test_chunked_scores_equal_unchunked(name):
    rng = np.random.default_rng(7)
    X = sp.random(3000, 40, density=0.1, format="csr", random_state=7, dtype=np.float64)
    W = rng.normal(size=(3, 40, 6))

    def predict(part):
        logits = np.stack([part @ w for w in W]) if name.startswith("qbc") else part @ W[0]
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    strategy = make_strategy(name)
    whole = score_pool(strategy, X, predict_proba=predict, chunk_size=10**6, random_state=5)
    chunked = score_pool(make_strategy(name), X, predict_proba=predict, chunk_size=251, random_state=5)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)
    first, _ = select_from_pool(make_strategy(name), X, 30, predict_proba=predict, chunk_size=10**6, random_state=5)
    second, _ = select_from_pool(make_strategy(name), X, 30, predict_proba=predict, chunk_size=97, random_state=5)
    np.testing.assert_array_equal(first, second)


# --- relabel or a new item ----------------------------------------------------------------------


def crowd():
    frame = pd.DataFrame(
        {
            "task": ["a"] * 3 + ["b"] * 2 + ["c"] * 3,
            "worker": ["w1", "w2", "w3", "w1", "w2", "w1", "w2", "w3"],
            "label": ["x", "x", "x", "x", "y", "y", "y", "y"],
        }
    )
    return Answers.from_frame(frame)


def test_a_disputed_label_beats_a_confident_new_item_and_an_unsure_new_item_beats_a_settled_one():
    answers = crowd()
    aggregator = MajorityVote().fit(answers)
    labeled_probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.1, 0.9]])  # model agrees with a and c
    pool_probs = np.array([[0.97, 0.03], [0.52, 0.48]])  # "new-sure", "new-unsure"
    ranked = relabel_or_new(aggregator, answers, labeled_probs, ["new-sure", "new-unsure"], pool_probs)
    order = ranked["task"].tolist()
    assert order.index("b") < order.index("new-sure")  # relabel the 1-1 split before a sure new item
    assert order.index("new-unsure") < order.index("a")  # a new unsure item before a unanimous one
    assert ranked.set_index("task").loc["b", "kind"] == "relabel"
    assert ranked.set_index("task").loc["new-sure", "kind"] == "new"


def test_relabel_scores_follow_the_formula():
    model = np.array([[0.5, 0.5], [0.8, 0.2]])
    labeled, pool = relabel_or_new_scores(
        np.array([0, 0]), np.array([0.5, 1.0]), model, np.array([[0.9, 0.1]]), np.array([2, 3]), 0.5, 1.0
    )
    np.testing.assert_allclose(labeled, [1 - (0.5 + 1.0 * 0.5) / 2.0, 1 - (0.8 + 1.5 * 1.0) / 2.5])
    np.testing.assert_allclose(pool, [1 - (0.9 + 0.5 / 2) / 1.5])
    with pytest.raises(InputError, match="shapes"):
        relabel_or_new_scores(np.array([0, 0]), np.array([0.5, 1.0]), model[:1], model, np.array([2, 3]), 0.5, 1.0)


def test_a_split_crowd_is_relabelled_even_when_the_em_posterior_is_sure():
    rng = np.random.default_rng(4)
    truth = rng.integers(3, size=40)
    rows = [(f"t{i}", w, int(truth[i])) for i in range(40) for w in ("a", "b", "c")]
    rows[:3] = [("t0", "a", 0), ("t0", "b", 1), ("t0", "c", 2)]  # a three-way split
    answers = Answers.from_frame(pd.DataFrame(rows, columns=["task", "worker", "label"]))
    from crowdloop.aggregation import DawidSkene

    aggregator = DawidSkene().fit(answers)
    model = np.full((40, 3), 0.1) + 0.7 * np.eye(3)[aggregator.posterior_.labels()]
    ranked = relabel_or_new(aggregator, answers, model, ["new"], np.array([[0.9, 0.05, 0.05]]))
    assert ranked["task"].iloc[0] == "t0"


# --- stopping -------------------------------------------------------------------------------------


def test_kappa_matches_scikit_learn():
    rng = np.random.default_rng(2)
    a, b = rng.integers(4, size=300), rng.integers(4, size=300)
    b[:200] = a[:200]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(["x", "x"], ["x", "x"]) == 1.0


def test_the_stopping_rule_fires_on_stable_predictions_only():
    rng = np.random.default_rng(3)
    base = rng.integers(5, size=1000)
    rule = StabilizingPredictions(threshold=0.99, window=3)
    noisy = [np.where(rng.random(1000) < 0.2, rng.integers(5, size=1000), base) for _ in range(4)]
    assert not any(rule.update(p) for p in noisy)  # predictions still changing: ~16% flip per round
    stable = [rule.update(base) for _ in range(4)]
    assert stable == [False, False, False, True]  # the first is still a change; then three kappas of 1.0
    assert rule.kappas_[-3:] == [1.0, 1.0, 1.0]
    with pytest.raises(InputError, match="stop set changed size"):
        rule.update(base[:10])


# --- the loop ---------------------------------------------------------------------------------------


def product_pool(n, seed):
    """Titles of 4 categories; a quarter are 'hard' (the category word is missing)."""
    rng = np.random.default_rng(seed)
    words = {"shoe": ["sneaker", "boot", "sandal"], "phone": ["mobile", "smartphone", "android"],
             "lamp": ["bulb", "light", "led"], "mug": ["cup", "ceramic", "coffee"]}  # fmt: skip
    fillers = ["red", "blue", "large", "small", "pro", "new", "classic", "set", "pack", "premium"]
    cats = np.array(list(words))[rng.integers(4, size=n)]
    titles = []
    for i, c in enumerate(cats):
        parts = list(rng.choice(fillers, 3))
        if i % 4:
            parts.insert(int(rng.integers(3)), str(rng.choice(words[c])))
        else:  # a faint signal only: one letter pattern of the category
            parts.append(c[:2] + str(rng.integers(10)))
        titles.append(" ".join(parts))
    return np.array(titles, dtype=object), cats


def test_the_loop_records_a_learning_curve_that_stops_on_a_stable_model():
    texts, labels = product_pool(400, 0)
    test_texts, test_labels = product_pool(200, 1)
    curve = run_active_learning(
        texts, labels, "margin", [20, 60, 120, 180, 240], test_texts=test_texts, test_labels=test_labels,
        model_factory=lambda: TextClassifier(cv=2), stopping=StabilizingPredictions(0.95, 2), random_state=0,
    )  # fmt: skip
    frame = curve.curve
    assert frame["labels"].tolist() == [20, 60, 120, 180, 240]
    assert list(frame.columns[:2]) == ["labels", "accuracy"]
    assert len(set(curve.order.tolist())) == 240
    assert frame["accuracy"].iloc[-1] > 0.9 > frame["accuracy"].iloc[0] - 0.2
    assert frame["stop"].iloc[-1] and not frame["stop"].iloc[1]
    assert labels_to_reach(frame, frame["accuracy"].iloc[-1]) <= 240


def test_a_cold_start_spreads_over_the_pool_and_bad_schedules_fail():
    texts, labels = product_pool(200, 2)
    curve = run_active_learning(
        texts, labels, "random", [8, 16], test_texts=texts[:50], test_labels=labels[:50], cold_start="kmeans++",
        model_factory=lambda: TextClassifier(cv=2),
    )  # fmt: skip
    assert curve.curve["labels"].tolist() == [8, 16]
    with pytest.raises(ConfigError, match="increase"):
        run_active_learning(texts, labels, "margin", [20, 10], test_texts=texts, test_labels=labels)
    with pytest.raises(ConfigError, match="pool has 200"):
        run_active_learning(texts, labels, "margin", [20, 500], test_texts=texts, test_labels=labels)


def test_text_features_are_unit_rows():
    features = TextFeatures().fit_transform(["red shoe", "blue shoe", "red lamp"])
    np.testing.assert_allclose(np.asarray(features.multiply(features).sum(axis=1)).ravel(), 1, rtol=1e-6)


def test_a_million_item_pool_is_scored_in_bounded_memory():
    import tracemalloc

    n, k, chunk = 1_000_000, 40, 20_000

    table = np.random.default_rng(0).dirichlet(np.ones(k), size=97)

    def predict(part):  # a deterministic model of the item numbers: no (n, K) array ever exists
        return table[part % 97]

    tracemalloc.start()
    try:
        rows, scores = select_from_pool(make_strategy("margin"), np.arange(n), 100, predict_proba=predict,
                                        chunk_size=chunk)  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    full_matrix = n * k * 8  # 320 MB: the whole pool's probabilities
    assert peak < 24 * n + 20 * chunk * k * 8  # the scores, their ranking and a few chunks (about 60 MB)
    assert peak < full_matrix / 4
    assert len(scores) == n and len(rows) == 100
    sample = np.sort(rows[:5])
    np.testing.assert_allclose(scores[sample], margin(predict(sample)))


# --- the learning-curve forecast as a stopping rule ---------------------------------------------

from crowdloop.active.stopping import (  # noqa: E402
    NOT_WORTH_ITS_PRICE,
    SMALL_GAIN,
    TARGET_REACHED,
    CombinedStopping,
    LearningCurveForecast,
)
from crowdloop.planning import CostModel, labels_for, power_law  # noqa: E402


def first_stop(rule, n, acc, n_eval, step):
    """The first round at which ``rule`` says stop on the curve ``n, acc`` (None if never)."""
    return next((i for i, (k, a) in enumerate(zip(n, acc, strict=True)) if rule.update(
        labels=int(k), accuracy=float(a), n_eval=n_eval, next_batch=step)), None)  # fmt: skip


def measured(n, a, b, c, n_eval, seed):
    return np.random.default_rng(seed).binomial(n_eval, power_law(n, a, b, c)) / n_eval


STEP, N = 250, np.arange(250, 4001, 250)
TRUE_GAIN = power_law(N + STEP, 0.9, 2.0, 0.5) - power_law(N, 0.9, 2.0, 0.5)


def test_the_forecast_stops_where_the_true_gain_falls_below_the_minimum():
    star = int(np.argmax(TRUE_GAIN < 0.003))  # round 7: 3,000 labels
    for seed in range(3):
        rule = LearningCurveForecast(0.003, n_boot=30)
        stop = first_stop(rule, N, measured(N, 0.9, 2.0, 0.5, 100_000, seed), 100_000, STEP)
        assert stop in (star, star + 1)
        assert rule.fired == SMALL_GAIN and rule.gain_.high < 0.003
        assert rule.record()["forecast_gain"] == pytest.approx(TRUE_GAIN[stop], rel=0.3)


def test_the_forecast_does_not_stop_early_on_a_noisy_rising_curve():
    n = np.arange(100, 1501, 100)
    gain = power_law(n + 100, 0.95, 1.2, 0.35) - power_law(n, 0.95, 1.2, 0.35)
    for seed in range(3):  # 300 test items: each point is off by about 0.025
        stop = first_stop(LearningCurveForecast(0.003, n_boot=30), n, measured(n, 0.95, 1.2, 0.35, 300, seed), 300, 100)
        assert stop is None or gain[stop] < 2 * 0.003


def test_the_money_criterion_and_the_target():
    # 250 labels at 0.10 cost 25; an accuracy point worth 100 pays for a gain of 0.0025 or more
    star = int(np.argmax(TRUE_GAIN < 0.0025))
    rule = LearningCurveForecast(None, point_value=100, costs=CostModel(price_per_label=0.1), n_boot=30)
    stop = first_stop(rule, N, measured(N, 0.9, 2.0, 0.5, 100_000, 0), 100_000, STEP)
    assert stop in (star, star + 1) and rule.fired == NOT_WORTH_ITS_PRICE and rule.batch_price == 25
    reached = float(labels_for(0.85, 0.9, 2.0, 0.5))  # 1,600 labels
    rule = LearningCurveForecast(None, target=0.85, n_boot=30)
    stop = first_stop(rule, N, measured(N, 0.9, 2.0, 0.5, 5000, 1), 5000, STEP)
    assert stop is not None and N[stop] >= reached and rule.fired == TARGET_REACHED
    assert rule.record()["forecast_accuracy_low"] >= 0.85
    short = LearningCurveForecast(None, target=0.85, n_boot=30)  # levels off at 0.84: never reached
    assert first_stop(short, N, measured(N, 0.84, 2.0, 0.5, 5000, 1), 5000, STEP) is None
    with pytest.raises(ConfigError, match="needs min_gain"):
        LearningCurveForecast(None)
    with pytest.raises(InputError, match="must grow"):
        short.update(labels=5, accuracy=0.5)


def test_combined_stopping_stops_on_either_rule_or_on_both():
    stable = np.zeros(50)
    rows = [(int(k), float(a)) for k, a in zip(N[:8], measured(N[:8], 0.9, 2.0, 0.5, 100_000, 0), strict=True)]
    either = CombinedStopping(StabilizingPredictions(0.99, 2), LearningCurveForecast(0.003, n_boot=20))
    both = CombinedStopping(StabilizingPredictions(0.99, 2), LearningCurveForecast(0.003, n_boot=20), mode="all")
    fired = []
    for k, a in rows:
        fired.append((either.update(stable, labels=k, accuracy=a), both.update(stable, labels=k, accuracy=a)))
        if len(fired) == 3:  # predictions stable after 3 rounds, the curve still rising
            assert fired[2] == (True, False) and either.fired == "stable predictions" and both.fired == ""
    assert both.should_stop and both.fired == f"stable predictions; {SMALL_GAIN}"  # round 7: 3,000 labels
    assert set(either.record()) == {"kappa", "forecast_gain", "forecast_gain_high", "forecast_accuracy_low"}
    with pytest.raises(ConfigError, match="mode"):
        CombinedStopping(StabilizingPredictions(), mode="most")


def test_the_loop_reports_which_rule_stopped_it_and_can_stop_early():
    texts, labels = product_pool(300, 0)
    test_texts, test_labels = product_pool(150, 1)
    rule = CombinedStopping(StabilizingPredictions(0.95, 2), LearningCurveForecast(0.5, n_boot=10, min_points=3))
    curve = run_active_learning(
        texts, labels, "margin", [20, 40, 60, 80, 100, 120], test_texts=test_texts, test_labels=test_labels,
        model_factory=lambda: TextClassifier(cv=2), stopping=rule, stop_early=True, random_state=0,
    )  # fmt: skip
    assert curve.stop_round == 2 and SMALL_GAIN in curve.stop_rule  # a gain of 0.5 per batch: never forecast
    assert curve.curve["labels"].tolist() == [20, 40, 60] and len(curve.order) == 60
    assert {"kappa", "forecast_gain_high", "stop_rule"} <= set(curve.curve.columns)
