"""Auto-labeling: a threshold chosen on gold whose accuracy on new items holds at the stated confidence."""

import numpy as np
import pytest

from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.models.autolabel import (
    MIN_ITEMS,
    Pool,
    autolabel,
    automation_stratum,
    chance_errors_for,
    choose_threshold,
    clopper_pearson_lower,
    fewest_passing,
    point_estimate_threshold,
)


def population(n, rng):
    """Confidences and correctness where P(right | c) = c ** 0.6: a model a little underconfident."""
    confidence = rng.beta(6, 1, n)
    return confidence, rng.random(n) < confidence**0.6


def true_accuracy_above(threshold):
    """E[c^0.6 | c >= t] for c ~ Beta(6, 1) (density 6 c^5): exact, so the check has no noise."""
    if not np.isfinite(threshold):
        return 1.0
    t = threshold
    return (6 / 6.6 * (1 - t**6.6)) / (1 - t**6)


def test_clopper_pearson_matches_known_values():
    assert clopper_pearson_lower(np.array([59]), np.array([59]), 0.05)[0] == pytest.approx(0.05 ** (1 / 59))
    assert clopper_pearson_lower(np.array([0]), np.array([10]), 0.05)[0] == 0.0
    assert clopper_pearson_lower(np.array([90]), np.array([100]), 0.05)[0] == pytest.approx(0.8363, abs=1e-3)


@pytest.mark.parametrize(
    ("target", "min_items", "chance_errors"), [(0.95, 200, 0), (0.97, 200, 0), (0.95, 0, 0), (0.95, 0, 1), (0.97, 0, 1)]
)
def test_threshold_meets_target_at_stated_confidence_in_repeated_simulation(target, min_items, chance_errors):
    rng = np.random.default_rng(0)
    ours, baseline, shares = [], [], []
    for _ in range(300):
        confidence, correct = population(1000, rng)
        choice = choose_threshold(
            confidence, correct, target=target, confidence_level=0.9, min_items=min_items, chance_errors=chance_errors
        )
        ours.append(true_accuracy_above(choice.threshold) < target)
        baseline.append(true_accuracy_above(point_estimate_threshold(confidence, correct, target)) < target)
        shares.append(1 - choice.threshold**6 if np.isfinite(choice.threshold) else 0.0)
    assert np.mean(ours) <= 0.1 + 0.03  # fails at most 1 - confidence_level of the time (+ noise of 300 runs)
    assert np.mean(baseline) > 0.3  # the point estimate misses the target far more often
    assert np.mean(shares) > 0.15  # and ours still automates a real share


def good_model(n, rng):
    """A clearly good model: 80% easy items (confidence ~0.99, right 99% of the time), 20% hard ones
    (confidence 0.3-0.8, right 70% of the time)."""
    easy = rng.random(n) < 0.8
    confidence = np.where(easy, rng.uniform(0.98, 1.0, n), rng.uniform(0.3, 0.8, n))
    return confidence, rng.random(n) < np.where(easy, 0.99, 0.7)


def test_start_at_min_items_automates_a_good_models_easy_items_where_the_smallest_start_does_not():
    rng = np.random.default_rng(2)
    confidence, correct = good_model(500, rng)
    correct[np.argmax(confidence)] = False  # one miss among the most confident: 58/59 fails at 0.95
    old = choose_threshold(confidence, correct, 0.95, 0.95, n_steps=100, min_items=0, chance_errors=0)
    new = choose_threshold(confidence, correct, 0.95, 0.95)
    assert old.threshold == np.inf and old.steps["n"].iloc[0] == 59
    assert new.steps["n"].iloc[0] == fewest_passing(0.95, 0.95, chance_errors_for(500, 0.95, 0.95)) == 181
    assert new.lower_bound >= 0.95
    automated = new.automate(confidence)
    assert automated.mean() > 0.7 and correct[automated].mean() >= 0.95  # the easy items, as right as promised
    nothing_old, nothing_new = [], []
    for _ in range(200):  # and in repeated draws, not only in a planted case
        confidence, correct = good_model(500, rng)
        old = choose_threshold(confidence, correct, n_steps=100, min_items=0, chance_errors=0)
        nothing_old.append(np.isinf(old.threshold))
        nothing_new.append(np.isinf(choose_threshold(confidence, correct).threshold))
    assert np.mean(nothing_old) > 0.3 and np.mean(nothing_new) < 0.12  # 5+ misses in 200 at 99% still stop it


def test_the_walk_starts_where_the_errors_of_the_surest_half_of_the_gold_can_pass():
    """One start for the service and the command: the walk tolerates the chance errors that
    ``min(MIN_ITEMS, START_SHARE * n)`` gold items could hold and starts at the fewest with which they
    pass. 210 gold items at .97, 80% (the service's level): the surest 105 could hold one, which can
    pass from 99; 600 hold three (from 183); explicit values keep their meaning."""

    def first(n_gold, target, level, **kwargs):
        confidence = np.linspace(1, 0.5, n_gold)  # distinct: each count is a threshold
        choice = choose_threshold(confidence, np.ones(n_gold, dtype=bool), target, level, **kwargs)
        return int(choice.steps["n"].iloc[0])

    assert first(210, 0.97, 0.8) == 99 and chance_errors_for(210, 0.97, 0.8) == 1
    assert first(600, 0.97, 0.8) == fewest_passing(0.97, 0.8, 3) == 183 and chance_errors_for(600, 0.97, 0.8) == 3
    assert MIN_ITEMS == 200 and first(2000, 0.97, 0.8) == 183
    assert first(500, 0.98, 0.95, min_items=200, chance_errors=0) == 200  # explicit: as asked
    assert first(500, 0.95, 0.95, min_items=0, chance_errors=0) == 59  # the bench's "start at n0"
    assert first(186, 0.97, 0.8) == 53 and chance_errors_for(186, 0.97, 0.8) == 0  # 93: too few for one
    assert first(100, 0.97, 0.8) == 53 and chance_errors_for(100, 0.97, 0.8) == 0  # half is 50: too few
    assert np.isinf(choose_threshold(np.linspace(1, 0.5, 52), np.ones(52, bool), 0.97, 0.8).threshold)  # too few


def test_a_sure_wrong_gold_item_inside_the_surest_half_no_longer_stops_a_small_gold():
    """186 gold items (the Flipkart sample's), the model right on its surest 120 but the 70th. Started
    at the surest half (93 items, too few to hold one error), the walk failed at once; started at the
    53 surest, where the same no-error test is decided on fewer items, it proves the threshold of the
    surest 53 to 69, and no walk the old start won is lost (errors only accumulate down the ranking)."""
    rng = np.random.default_rng(5)
    confidence = np.sort(rng.uniform(0, 1, 186))[::-1]
    correct = np.r_[np.ones(120, bool), rng.random(66) < 0.6]
    correct[69] = False
    before = choose_threshold(confidence, correct, 0.97, 0.8, min_items=93, chance_errors=0)
    now = choose_threshold(confidence, correct, 0.97, 0.8)
    assert before.threshold == np.inf
    assert now.lower_bound >= 0.97 and 53 <= now.n_gold <= 69
    trials, won_before, won_now = np.random.default_rng(6), 0, 0
    for _ in range(200):
        right = trials.random(186) < np.where(np.arange(186) < 110, 0.992, 0.7)
        old = choose_threshold(confidence, right, 0.97, 0.8, min_items=93, chance_errors=0)
        new = choose_threshold(confidence, right, 0.97, 0.8)
        won_before, won_now = won_before + np.isfinite(old.threshold), won_now + np.isfinite(new.threshold)
        assert np.isinf(old.threshold) or np.isfinite(new.threshold)  # what the old start won, the new wins
    assert won_now > won_before


def test_fewest_passing_sample_sizes():
    assert fewest_passing(0.95, 0.95) == 59 and fewest_passing(0.97, 0.8) == 53
    assert fewest_passing(0.97, 0.8, 1) == 99  # 98/99 passes at 80%, 97/98 does not
    assert clopper_pearson_lower(np.array([98]), np.array([99]), 0.2)[0] >= 0.97
    assert clopper_pearson_lower(np.array([97]), np.array([98]), 0.2)[0] < 0.97
    assert chance_errors_for(200, 0.97, 0.8) == 1 and chance_errors_for(197, 0.97, 0.8) == 0
    assert chance_errors_for(366, 0.97, 0.8) == 3 and chance_errors_for(364, 0.97, 0.8) == 2
    with pytest.raises(ConfigError, match="chance_errors"):
        choose_threshold([0.9], [True], 0.9, chance_errors=-1)


def test_one_sure_wrong_gold_item_no_longer_vetoes_the_walk_on_a_projects_gold():
    """200 gold items as a project through the service has them: the model right on its surest 130
    but one, near the top (a gold label it disputes), and unsure below. Started at the 53 surest
    the walk fails at once and automates nothing; started where one error can pass, it proves the
    threshold of the 130."""
    rng = np.random.default_rng(4)
    confidence = np.sort(rng.uniform(0, 1, 200))[::-1]
    correct = np.r_[np.ones(130, bool), rng.random(70) < 0.6]
    correct[2] = False
    strict = choose_threshold(confidence, correct, 0.97, 0.8, min_items=0, chance_errors=0)
    tolerant = choose_threshold(
        confidence, correct, 0.97, 0.8, min_items=0, chance_errors=chance_errors_for(200, 0.97, 0.8)
    )
    assert strict.threshold == np.inf and strict.steps["n"].iloc[0] == 53
    assert tolerant.steps["n"].iloc[0] == 99 and tolerant.lower_bound >= 0.97
    assert 120 <= tolerant.n_gold <= 135


def test_sequence_depends_on_confidence_only():
    rng = np.random.default_rng(3)
    confidence, correct = good_model(1000, rng)
    a = choose_threshold(confidence, correct, min_items=300, n_steps=7).steps
    b = choose_threshold(confidence, ~correct, min_items=300, n_steps=7).steps
    assert a["threshold"].tolist() == b["threshold"].tolist() and a["n"].tolist() == b["n"].tolist()
    assert a["n"].iloc[0] == 300 and a["n"].iloc[-1] == 1000 and len(a) == 8


def test_choice_reports_its_evidence():
    rng = np.random.default_rng(1)
    confidence, correct = population(2000, rng)
    choice = choose_threshold(confidence, correct, target=0.95, confidence_level=0.95)
    above = confidence >= choice.threshold
    assert choice.n_gold == above.sum()
    assert choice.gold_accuracy == pytest.approx(correct[above].mean())
    assert choice.lower_bound >= 0.95 and choice.gold_accuracy >= choice.lower_bound
    assert choice.steps["rejected"].is_monotonic_decreasing  # the walk stops at the first failure
    assert (choice.automate(confidence) == above).all()


def test_too_little_gold_automates_nothing():
    choice = choose_threshold(np.full(20, 0.99), np.ones(20, bool), target=0.95, confidence_level=0.95)
    assert choice.threshold == np.inf and not choice.automate(np.array([1.0])).any()  # 20 < 59 needed
    assert point_estimate_threshold(np.full(20, 0.99), np.ones(20, bool), 0.95) == pytest.approx(0.99)


def test_bad_input_is_rejected():
    with pytest.raises(InputError, match="no gold"):
        choose_threshold([], [], 0.9)
    with pytest.raises(InputError, match="3 confidences but 2"):
        choose_threshold([0.9, 0.8, 0.7], [True, False], 0.9)
    with pytest.raises(ConfigError, match="target"):
        choose_threshold([0.9], [True], 1.2)
    with pytest.raises(ConfigError, match="min_items"):
        choose_threshold([0.9], [True], 0.9, min_items=-1)


def test_autolabel_splits_items():
    probs = np.array([[0.97, 0.03], [0.4, 0.6], [0.1, 0.9]])
    done, ask = autolabel(probs, ["a", "b"], ["x", "y", "z"], threshold=0.9)
    assert done["item"].tolist() == ["x", "z"] and done["label"].tolist() == ["a", "b"]
    assert ask["item"].tolist() == ["y"] and ask["suggestion"].tolist() == ["b"]


def test_autolabel_splits_by_a_choice_made_for_a_pool_only_in_its_proven_strata():
    """Gold of label a only; the pool also holds items the model is as sure are b: those go to humans."""
    gold_conf = np.linspace(0.999, 0.95, 300)
    pool = Pool(np.array([0.99, 0.99, 0.5]), np.array([0, 1, 0]))
    choice = choose_threshold(gold_conf, np.ones(300, dtype=bool), 0.95, stratum=np.zeros(300, int), pool=pool)
    probs = np.array([[0.99, 0.01], [0.01, 0.99], [0.5, 0.5]])
    assert choice.threshold <= 0.99 and choice.strata.tolist() == [0]
    done, ask = autolabel(probs, ["a", "b"], ["x", "y", "z"], choice, pool.stratum)
    assert done["item"].tolist() == ["x"] and ask["item"].tolist() == ["y", "z"]
    assert autolabel(probs, ["a", "b"], ["x", "y", "z"], choice.threshold)[0]["item"].tolist() == ["x", "y"]
    with pytest.raises(ConfigError, match="stratum"):
        autolabel(probs, ["a", "b"], ["x", "y", "z"], choice)


def test_automation_stratum_is_the_top_level_branch_or_the_label():
    taxonomy = Taxonomy.from_paths(["Home > Lamps", "Home > Rugs", "Wear > Shoes"])
    codes = taxonomy.encode(["Home > Lamps", "Home > Rugs", "Wear > Shoes", "Home"])
    assert taxonomy.decode(automation_stratum(taxonomy, codes)).tolist() == ["Home", "Home", "Wear", "Home"]
    assert automation_stratum(LabelSpace(["a", "b"]), [1, 0]).tolist() == [1, 0]


def test_the_proof_is_reweighted_to_the_items_the_model_would_label() -> None:
    """Gold drawn like every item proves a threshold; but the items left for the model are 40% of
    a label it is confidently wrong about half the time (two gold items show it, one wrong). Tested
    on the gold as it is, that pool is labelled at .8; reweighted to the pool, the proof fails and
    nothing is labelled. A pool drawn like the gold gets the plain threshold."""
    conf_a = np.linspace(0.9, 0.999, 600)
    gold_conf = np.r_[conf_a, 0.995, 0.996]
    gold_right = np.r_[np.arange(600) >= 3, True, False]  # three errors at the lowest confidences
    gold_stratum = np.r_[np.zeros(600, dtype=int), 1, 1]
    plain = choose_threshold(gold_conf, gold_right, 0.95)
    assert np.isfinite(plain.threshold)
    shifted = Pool(np.r_[conf_a, np.full(400, 0.995)], np.r_[np.zeros(600, dtype=int), np.ones(400, dtype=int)])
    pool_right = np.r_[np.ones(600, dtype=bool), np.arange(400) % 2 == 0]
    labelled = plain.automate(shifted.confidence)
    assert labelled.sum() > 300 and pool_right[labelled].mean() < 0.85
    reweighted = choose_threshold(gold_conf, gold_right, 0.95, stratum=gold_stratum, pool=shifted)
    assert not reweighted.automate(shifted.confidence, shifted.stratum).any()
    alike = Pool(gold_conf, gold_stratum)
    same = choose_threshold(gold_conf, gold_right, 0.95, stratum=gold_stratum, pool=alike)
    assert same.threshold == plain.threshold and same.effective_n == pytest.approx(same.n_gold)
    assert (same.automate(alike.confidence, alike.stratum) == plain.automate(alike.confidence)).all()


def test_a_reweighted_proof_starts_where_its_effective_size_could_pass() -> None:
    """Gold of two strata, alike and all right; the pool is 90% of one. Reweighted, 99 gold items
    (the fewest an all-right sample passes with at .97, 95%) are worth 60: a walk that starts at
    99 fails at once, whatever the gold says. The weights are known before any label is looked at,
    so the walk starts where the effective size reaches 99, and the gold proves the threshold."""
    gold_conf = np.linspace(0.999, 0.9, 300)
    gold_stratum = np.arange(300) % 2
    pool = Pool(np.linspace(0.999, 0.9, 1000), (np.arange(1000) % 10 == 0).astype(int))
    choice = choose_threshold(gold_conf, np.ones(300, dtype=bool), 0.97, min_items=0, stratum=gold_stratum, pool=pool)
    assert np.isfinite(choice.threshold) and choice.lower_bound >= 0.97
    assert choice.steps["effective_n"].iloc[0] >= 99 and choice.steps["n"].iloc[0] > 150
    assert set(choice.strata.tolist()) == {0, 1} and choice.automate(pool.confidence, pool.stratum).all()
