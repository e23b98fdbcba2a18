import numpy as np
import pytest

from crowdloop.errors import ConfigError, InputError
from crowdloop.planning import CostModel, fit_learning_curve, labels_for, measure_learning_curve, plan, power_law

A, B, C = 0.91, 2.4, 0.45
N = np.array([100, 200, 400, 800, 1600, 3200])
N_EVAL = 4000


def measured_curve(seed=0):
    """Accuracy of a known power law as a held-out set of N_EVAL items would measure it."""
    rng = np.random.default_rng(seed)
    return rng.binomial(N_EVAL, power_law(N, A, B, C)) / N_EVAL


def test_a_known_power_law_is_recovered_and_its_forecast_is_inside_the_interval():
    curve = fit_learning_curve(N, measured_curve(), n_eval=N_EVAL, n_boot=100)
    assert curve.asymptote.low <= A <= curve.asymptote.high
    assert curve.a == pytest.approx(A, abs=0.03)
    truth_at_20k = float(power_law(20_000, A, B, C))
    at_20k = curve.accuracy_at(20_000)
    assert at_20k.low <= truth_at_20k <= at_20k.high
    assert at_20k.high - at_20k.low < 0.05
    target = 0.85
    needed_true = float(labels_for(target, A, B, C))
    needed = curve.labels_for(target)
    assert needed.low <= needed_true <= needed.high
    assert needed.estimate == pytest.approx(needed_true, rel=0.35)


def test_the_interval_covers_the_truth_over_seeds():
    truth = float(labels_for(0.85, A, B, C))
    covered = [
        fit_learning_curve(N, measured_curve(seed), n_eval=N_EVAL, n_boot=100).labels_for(0.85) for seed in range(10)
    ]
    hits = sum(i.low <= truth <= i.high for i in covered)
    assert hits >= 7  # a 90% interval; 10 seeds


def test_points_bootstrap_without_evaluation_sizes():
    curve = fit_learning_curve(N, power_law(N, A, B, C), n_boot=40)
    assert curve.a == pytest.approx(A, abs=1e-3) and curve.c == pytest.approx(C, abs=1e-2)
    assert curve.replicates.shape[1] == 3


def test_a_target_above_the_asymptote_cannot_be_bought():
    curve = fit_learning_curve(N, measured_curve(), n_eval=N_EVAL, n_boot=50)
    assert not curve.reaches(0.95)
    assert curve.labels_for(0.95).estimate == float("inf")
    result = plan(curve, 0.95)
    assert result.recommendation == "change the model"
    assert "levels off" in result.reason


def test_the_cost_recommendation_flips_at_the_break_even_price():
    curve = fit_learning_curve(N, measured_curve(), n_eval=N_EVAL, n_boot=50)
    costs = CostModel(price_per_label=1.0, annotator_hour_price=8.0, engineer_hour_ratio=12.0, engineer_hours=40)
    assert costs.model_change_cost == 40 * 12 * 8
    extra = curve.labels_for(0.85).estimate - N.max()
    break_even = costs.model_change_cost / extra
    cheap = plan(curve, 0.85, CostModel(break_even * 0.9, 8.0, 12.0, 40))
    dear = plan(curve, 0.85, CostModel(break_even * 1.1, 8.0, 12.0, 40))
    assert cheap.recommendation == "add data" and dear.recommendation == "change the model"
    assert cheap.data_cost.estimate == pytest.approx(extra * break_even * 0.9)
    # a dearer engineer makes data the better buy again
    assert plan(curve, 0.85, CostModel(break_even * 1.1, 8.0, 15.0, 40)).recommendation == "add data"
    assert plan(curve, 0.80).recommendation == "target reached"


def test_bad_curves_are_rejected():
    with pytest.raises(InputError, match="3 or more"):
        fit_learning_curve([100, 200], [0.5, 0.6])
    with pytest.raises(InputError, match=r"point 2.*accuracy"):
        fit_learning_curve([100, 200, 300], [0.5, 1.6, 0.7])
    with pytest.raises(InputError, match="label count"):
        fit_learning_curve([0, 200, 300], [0.5, 0.6, 0.7])
    with pytest.raises(ConfigError):
        CostModel(price_per_label=-1)
    with pytest.raises(ConfigError):
        fit_learning_curve(N, measured_curve(), n_boot=5).labels_for(1.5)


def generated_items(n=600, seed=0):
    rng = np.random.default_rng(seed)
    words = {c: [f"{c}{i}" for i in range(30)] for c in "abcd"}
    shared = [f"s{i}" for i in range(60)]
    labels = rng.choice(list("abcd"), n)
    texts = [" ".join([*rng.choice(words[y], 2), *rng.choice(shared, 4)]) for y in labels]
    return np.array(texts, dtype=object), labels


def test_measuring_a_curve_on_growing_subsets():
    texts, labels = generated_items()
    curve = measure_learning_curve(texts, labels, sizes=[20, 60, 200, 480], random_state=0)
    assert curve["labels"].tolist() == [20, 60, 200, 480]
    assert (curve["n_eval"] == 120).all()
    assert curve["accuracy"].iloc[-1] > curve["accuracy"].iloc[0]
    assert curve["accuracy"].iloc[-1] > 0.9
    with pytest.raises(ConfigError, match="sizes"):
        measure_learning_curve(texts, labels, sizes=[10, 5000])


def test_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from crowdloop.planning.plot import plot_learning_curve

    curve = fit_learning_curve(N, measured_curve(), n_eval=N_EVAL, n_boot=30)
    path = plot_learning_curve(curve, tmp_path / "curve.png", target=0.85)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    import sys

    from crowdloop.planning.plot import plot_learning_curve

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    curve = fit_learning_curve(N, measured_curve(), n_eval=N_EVAL, n_boot=5)
    with pytest.raises(ConfigError, match=r"crowdloop\[plot\]"):
        plot_learning_curve(curve, tmp_path / "c.png")


def test_points_off_the_power_law_widen_the_interval():
    exact = fit_learning_curve(N, power_law(N, A, B, C), n_eval=N_EVAL, n_boot=60)
    assert exact.noise_scale == 1.0
    kinked = power_law(N, A, B, C) + np.array([0.0, 0.02, -0.02, 0.02, -0.02, 0.0])
    off = fit_learning_curve(N, kinked, n_eval=N_EVAL, n_boot=60)
    assert off.noise_scale > 2
    width = lambda i: i.high - i.low  # noqa: E731
    assert width(off.accuracy_at(20_000)) > 2 * width(exact.accuracy_at(20_000))
