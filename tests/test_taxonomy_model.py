import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from crowdloop.aggregation.registry import method_class
from crowdloop.aggregation.taxonomy_model import RELATIONS, TaxonomySkillModel, TreeShape
from crowdloop.aggregation.voting import MajorityVote
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.simulation import Archetype, simulate_taxonomy_crowd


def _taxonomy(branching: tuple[int, ...] = (4, 4, 4)) -> Taxonomy:
    """A regular tree: 4 top-level nodes, 4 children each, 4 leaves under each of those (84 nodes)."""
    paths = [""]
    for level, width in enumerate(branching):
        paths = [f"{p} > L{level}{c}" if p else f"L{level}{c}" for p in paths for c in range(width)]
    return Taxonomy.from_paths(paths)


TAX = _taxonomy()


def _accuracy(labels: pd.Series, truth: pd.Series) -> float:
    return float((labels.reindex(truth.index).to_numpy() == truth.to_numpy()).mean())


def _crowd(**kwargs):
    options = {"n_items": 600, "n_workers": 40, "answers_per_item": 3, "random_state": 1} | kwargs
    return simulate_taxonomy_crowd(TAX, **options)


def test_relation_sizes_partition_the_other_labels_and_match_brute_force():
    shape = TreeShape.of(TAX)
    k = len(TAX)
    assert shape.sizes.shape == (k, len(RELATIONS))
    assert (shape.sizes.sum(axis=1) == k - 1).all()
    true, answered = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    relation = shape.relation(true.ravel(), answered.ravel()).reshape(k, k)
    assert (np.diag(relation) == -1).all()
    brute = np.stack([(relation == r).sum(axis=1) for r in range(len(RELATIONS))], axis=1)
    np.testing.assert_array_equal(brute, shape.sizes)
    leaf = TAX.code("L00 > L10 > L20")
    assert RELATIONS[relation[leaf, TAX.code("L00 > L10 > L21")]] == "sibling"
    assert RELATIONS[relation[leaf, TAX.code("L00 > L10")]] == "parent"
    assert RELATIONS[relation[leaf, TAX.code("L00 > L11 > L20")]] == "cousin"
    assert RELATIONS[relation[leaf, TAX.code("L01 > L10 > L20")]] == "stranger"


def test_beats_majority_vote_when_wrong_answers_are_siblings():
    answers, truth = _crowd(error_mix=(1.0, 0.0, 0.0), inner_share=0.0)
    model = TaxonomySkillModel(taxonomy=TAX).fit(answers)
    mv = MajorityVote().fit(Answers.from_frame(answers, labels=TAX))
    assert _accuracy(model.labels_, truth) > _accuracy(mv.labels_, truth) + 0.05
    assert model.rho_.drop(["parent", "ancestor"]).idxmax() == "sibling"
    assert model.rho_["sibling"] > 0.4  # the rest: spammers, who answer at random


def test_spammers_get_low_skills():
    answers, _ = _crowd(n_items=800)
    skills = TaxonomySkillModel(taxonomy=TAX).fit(answers).skills_
    kind = skills.index.str.split("-").str[0]
    assert skills[kind == "spammer"].max() < 0.3
    assert skills[kind == "good"].mean() > skills[kind == "sloppy"].mean() > skills[kind == "spammer"].mean() + 0.2


def test_an_inner_node_answer_is_evidence_for_the_leaf_below():
    frame = pd.DataFrame(
        {
            "task": [1, 1, 1],
            "worker": ["a", "b", "c"],
            "label": ["L00 > L10 > L20", "L01 > L10 > L20", "L00 > L10"],
        }
    )
    # the other workers' track record: equally skilled, so only the inner-node answer breaks the tie
    history = pd.DataFrame(
        {
            "task": np.repeat(np.arange(100, 140), 2),
            "worker": np.tile(["a", "b"], 40),
            "label": "L02 > L10 > L20",
        }
    )
    model = TaxonomySkillModel(taxonomy=TAX).fit(pd.concat([frame, history]))
    assert model.labels_[1] == "L00 > L10 > L20"
    probas = model.probas_.loc[1]
    assert probas["L00 > L10 > L20"] > probas["L01 > L10 > L20"]


def test_inner_node_answers_help_on_a_simulated_crowd():
    answers, truth = _crowd(inner_share=0.3, random_state=3)
    inner = ~TAX.is_leaf[TAX.encode(answers["label"].to_numpy())]
    with_inner = _accuracy(TaxonomySkillModel(taxonomy=TAX).fit(answers).labels_, truth)
    without = _accuracy(TaxonomySkillModel(taxonomy=TAX).fit(answers[~inner]).labels_.reindex(truth.index), truth)
    assert inner.mean() > 0.15
    assert with_inner > without


def test_flat_label_space_works_from_two_to_many_labels():
    for k in (2, 7, 300):
        space = LabelSpace([f"c{i}" for i in range(k)])
        answers, truth = simulate_taxonomy_crowd(space, n_items=500, n_workers=30, random_state=k)
        model = TaxonomySkillModel().fit(Answers.from_frame(answers, labels=space))
        mv = MajorityVote().fit(Answers.from_frame(answers, labels=space))
        assert _accuracy(model.labels_, truth) >= _accuracy(mv.labels_, truth)
        assert model.rho_["top-level"] == pytest.approx(1.0)
    assert _accuracy(model.labels_, truth) > 0.85


def test_gold_clamps_items_and_informs_skills():
    answers, truth = _crowd(n_items=300)
    gold = truth.iloc[:60]
    model = TaxonomySkillModel(taxonomy=TAX).fit(answers, true_labels=gold)
    assert (model.labels_[gold.index] == gold).all()
    assert np.allclose(model.posterior_.confidence()[:60], 1.0)
    # a gold label nobody answered still becomes the item's label
    odd = pd.Series({0: "L03 > L13 > L23"})
    clamped = TaxonomySkillModel(taxonomy=TAX).fit(answers, true_labels=odd)
    assert clamped.labels_[0] == "L03 > L13 > L23"
    # gold alone (the same answers on every item) tells the good worker from the liar
    frame = pd.DataFrame(
        {
            "task": np.repeat(np.arange(20), 2),
            "worker": np.tile(["honest", "liar"], 20),
            "label": np.tile(["L00 > L10 > L20", "L00 > L10 > L21"], 20),
        }
    )
    truth_first = pd.Series("L00 > L10 > L20", index=range(10))
    fitted = TaxonomySkillModel(taxonomy=TAX).fit(frame, true_labels=truth_first)
    assert fitted.skills_["honest"] > 0.8 > 0.2 > fitted.skills_["liar"]
    assert (fitted.labels_ == "L00 > L10 > L20").all()


def test_soft_answers_take_part_with_a_learned_temperature():
    frame, truth = _crowd(n_items=400, answers_per_item=2, random_state=5)
    answers = Answers.from_frame(frame, labels=TAX)
    rng = np.random.default_rng(0)
    true_codes = TAX.encode(truth.reindex(answers.items).to_numpy())
    k, n = len(TAX), answers.n_items
    # a good model: 70% of its mass on the truth, the rest on a random label (a top-2 sparse row)
    other = rng.integers(0, k, size=n)
    other = np.where(other == true_codes, (other + 1) % k, other)
    good = sp.csr_matrix(
        (np.r_[np.full(n, 0.7), np.full(n, 0.3)], (np.r_[np.arange(n), np.arange(n)], np.r_[true_codes, other])),
        shape=(n, k),
    )
    noise = sp.csr_matrix((np.ones(n), (np.arange(n), rng.integers(0, k, size=n))), shape=(n, k))
    base = _accuracy(TaxonomySkillModel().fit(answers).labels_, truth)
    with_good = TaxonomySkillModel().fit(answers.with_soft("model", answers.items, good))
    assert _accuracy(with_good.labels_, truth) > base + 0.03
    with_noise = TaxonomySkillModel().fit(answers.with_soft("noise", answers.items, noise))
    assert _accuracy(with_noise.labels_, truth) >= base - 0.02
    assert with_noise.soft_temperatures_["noise"] < with_good.soft_temperatures_["model"]
    assert with_good.skills_["model"] > with_noise.skills_["noise"]


def test_items_only_a_model_saw_get_its_labels():
    frame = pd.DataFrame({"task": [1, 1], "worker": ["a", "b"], "label": ["L00 > L10 > L20", "L00 > L10 > L20"]})
    answers = Answers.from_frame(frame, labels=TAX)
    probs = sp.csr_matrix(([0.9, 0.1], ([0, 0], [TAX.code("L01 > L11"), TAX.code("L02")])), shape=(1, len(TAX)))
    model = TaxonomySkillModel().fit(answers.with_soft("model", ["new"], probs, unknown_items="add"))
    assert model.labels_.to_dict() == {1: "L00 > L10 > L20", "new": "L01 > L11"}


def test_memory_shape_is_sparse_and_never_k_by_k():
    answers, _ = _crowd()
    model = TaxonomySkillModel(taxonomy=TAX).fit(answers)
    k = len(TAX)
    assert model.posterior_.is_sparse
    assert model.posterior_.shape == (600, k)
    assert model.posterior_.probs.nnz <= len(answers)
    assert np.allclose(np.asarray(model.posterior_.probs.sum(axis=1)).ravel(), 1.0)
    assert len(model.rho_) == len(RELATIONS) and len(model.priors_) == k
    assert len(model.skills_) == answers["worker"].nunique()
    for name, value in vars(model).items():
        size = value.size if hasattr(value, "size") else getattr(value, "nnz", 0)
        if isinstance(value, pd.DataFrame):
            size = value.shape[0] * value.shape[1]
        assert size < k * k, name
    assert isinstance(model.probas_.dtypes.iloc[0], pd.SparseDtype)


def test_deterministic_and_registered():
    answers, _ = _crowd(n_items=200)
    first = TaxonomySkillModel(taxonomy=TAX).fit(answers)
    second = TaxonomySkillModel(taxonomy=TAX).fit(answers)
    assert first.labels_.equals(second.labels_)
    assert np.array_equal(first.posterior_.probs.toarray(), second.posterior_.probs.toarray())
    assert method_class("taxonomy") is TaxonomySkillModel
    assert first.n_iter_ <= 100 and len(first.loss_history_) == first.n_iter_


def test_degenerate_inputs():
    one = pd.DataFrame({"task": ["t"], "worker": ["w"], "label": ["L00"]})
    assert TaxonomySkillModel(taxonomy=TAX).fit_predict(one).tolist() == ["L00"]
    single_label = pd.DataFrame({"task": [1, 2, 2], "worker": ["a", "a", "b"], "label": ["x", "x", "x"]})
    model = TaxonomySkillModel().fit(single_label)
    assert model.labels_.tolist() == ["x", "x"]
    assert np.isfinite(model.skills_).all()
    agree = pd.DataFrame({"task": [1, 1, 2, 2], "worker": ["a", "b", "a", "b"], "label": ["p", "p", "q", "q"]})
    assert TaxonomySkillModel().fit_predict(agree).tolist() == ["p", "q"]
    weighted = Answers.from_frame(agree.assign(weight=[0.0, 1.0, 1.0, 0.0]), weight="weight")
    assert TaxonomySkillModel().fit_predict(weighted).tolist() == ["p", "q"]
    for bad in (
        {"n_iter": 0},
        {"tol": -1.0},
        {"skill_prior_strength": -1.0},
        {"prior_smoothing": 0.0},
        {"soft_top": 0},
    ):
        with pytest.raises(ConfigError):
            TaxonomySkillModel(**bad).fit(agree)


def test_simulation_is_deterministic_and_shaped_like_a_crowd():
    first, truth = simulate_taxonomy_crowd(TAX, n_items=300, n_workers=20, answers_per_item=4, random_state=7)
    second, _ = simulate_taxonomy_crowd(TAX, n_items=300, n_workers=20, answers_per_item=4, random_state=7)
    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == ["task", "worker", "label"] and len(first) == 1200
    assert not first.duplicated(["task", "worker"]).any()
    assert truth.isin(TAX.labels).all() and TAX.is_leaf[TAX.encode(truth.to_numpy())].mean() > 0.85
    perfect = [Archetype("oracle", 1.0, 1000.0, 0.001)]
    exact, truth = simulate_taxonomy_crowd(TAX, n_items=100, n_workers=5, archetypes=perfect, inner_share=0.0)
    assert (exact["label"].to_numpy() == truth.to_numpy()[exact["task"].to_numpy()]).all()
    with pytest.raises(ConfigError):
        simulate_taxonomy_crowd(TAX, n_items=10, n_workers=2, answers_per_item=3)
