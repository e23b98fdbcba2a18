"""Hierarchical mode, plug-in estimators, precomputed probabilities and out-of-fold honesty."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.models import HierarchicalClassifier, TextClassifier, align_proba, ancestor_proba, out_of_fold_proba
from crowdloop.models.branch_probs import deepest_confident
from crowdloop.models.protocol import PrecomputedProba, check_classifier, fit_model, predict_aligned

BRANCHES = {"Audio": ["headphones", "speaker"], "Home": ["lamp", "rug"], "Wear": ["shirt", "boots"]}
NOISE = ["blue", "black", "premium", "classic", "new", "pro", "set", "pack", "large", "mini"]


def branch_titles(n_per_leaf=30, seed=0):
    """Titles that name their branch's keywords but not which leaf: the leaf is a coin flip between
    the two children, the branch is certain."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for branch, words in BRANCHES.items():
        for _ in range(2 * n_per_leaf):
            title = [*words, *rng.choice(NOISE, 3, replace=False)]
            rng.shuffle(title)
            texts.append(" ".join(title))
            labels.append(f"{branch} > {rng.choice(['A', 'B'])}")
    return np.array(texts, dtype=object), np.array(labels, dtype=object)


def test_unsure_leaf_gives_sure_branch():
    texts, labels = branch_titles(n_per_leaf=60, seed=0)
    test_texts, test_labels = branch_titles(n_per_leaf=10, seed=1)
    model = HierarchicalClassifier(TextClassifier()).fit(texts, labels)
    assert model.depths_ == [1, 2]
    probs = model.predict_proba(test_texts)
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    assert np.median(probs.max(axis=1)) < 0.8  # the leaf is a coin flip ...
    assert (model.predict(test_texts) == test_labels).mean() < 0.7
    taxonomy = model.taxonomy_
    tax_probs = align_proba(probs, model.classes_, taxonomy)
    top = ancestor_proba(tax_probs, taxonomy, 1)
    assert top.max(axis=1).min() > 0.9  # ... and the branch is sure
    truth_top = taxonomy.ancestor_at(taxonomy.encode(test_labels), 1)
    assert (top.argmax(axis=1) == truth_top).all()
    # the top-level marginal of the path score is the top head's own distribution
    np.testing.assert_allclose(top, model.level_proba(test_texts)[0], atol=1e-9)
    node, confidence = deepest_confident(tax_probs, taxonomy, 0.9)
    assert (node >= 0).all() and (confidence >= 0.9).all()
    assert (taxonomy.ancestor_at(node, 1) == truth_top).all()  # always on the right branch
    assert (taxonomy.depth[node] == 1).mean() > 0.7  # and mostly stopping there


def test_hierarchical_learns_leaves_when_they_are_separable():
    rng = np.random.default_rng(3)
    leaves = {"Audio > Headphones": "earbuds", "Audio > Speakers": "soundbar", "Home > Lamps": "lantern",
              "Home > Rugs": "carpet", "Wear > Shirts": "polo", "Wear": "scarf"}  # fmt: skip
    labels = np.array(list(leaves) * 25, dtype=object)
    texts = np.array([f"{leaves[c]} {' '.join(rng.choice(NOISE, 2))}" for c in labels], dtype=object)
    model = HierarchicalClassifier(TextClassifier(), depths=None).fit(texts, labels)
    assert (model.predict(texts[:30]) == labels[:30]).all()
    assert model.predict(["scarf new"]).tolist() == ["Wear"]  # a label at an inner node of the tree


def test_hierarchical_rejects_bad_depths():
    texts, labels = branch_titles(n_per_leaf=5)
    with pytest.raises(ConfigError, match="depths"):
        HierarchicalClassifier(TextClassifier(cv=2), depths=(0,)).fit(texts, labels)


def test_deepest_confident_walks_up_to_threshold():
    tax = Taxonomy.from_paths(["A > x", "A > y", "B"])  # codes: A, B, A > x, A > y
    probs = np.array([[0.0, 0.05, 0.9, 0.05], [0.0, 0.1, 0.45, 0.45], [0.0, 0.5, 0.3, 0.2]])
    node, conf = deepest_confident(probs, tax, 0.8)
    assert tax.decode(node[:2]).tolist() == ["A > x", "A"]
    assert node[2] == -1 and conf[2] == pytest.approx(0.5)
    np.testing.assert_allclose(conf[:2], [0.9, 0.9])


# ------------------------------------------------------------------------------------------ plug-in models


def test_any_sklearn_estimator_plugs_in():
    texts, labels = branch_titles(seed=4)
    pipeline = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500))
    assert check_classifier(pipeline) is pipeline
    probs = out_of_fold_proba(pipeline, texts, labels, n_folds=3)
    assert probs.shape == (len(texts), 6)
    model = HierarchicalClassifier(pipeline).fit(texts, labels)  # as the head of the hierarchical mode
    assert model.predict(texts[:1])[0].split(" > ")[0] == labels[0].split(" > ")[0]
    space = LabelSpace(sorted(set(labels)))
    aligned = predict_aligned(fit_model(pipeline, texts, labels), texts, space)
    np.testing.assert_allclose(aligned.sum(axis=1), 1)


def test_weights_need_a_model_that_takes_them():
    class NoWeights(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict_proba(self, X):
            return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))

    texts, labels = branch_titles(n_per_leaf=3)
    fit_model(NoWeights(), texts, labels, np.ones(len(texts)))  # all ones: fine
    with pytest.raises(ConfigError, match="sample_weight"):
        fit_model(NoWeights(), texts, labels, np.full(len(texts), 0.5))
    with pytest.raises(ConfigError, match="predict_proba"):
        check_classifier(object())


def test_precomputed_probabilities_plug_in():
    table = pd.DataFrame({"a": [0.9, 0.2, 0.5], "b": [0.1, 0.8, 0.5]}, index=["i1", "i2", "i3"])
    model = PrecomputedProba(table).fit()
    space = LabelSpace(["b", "a", "c"])
    np.testing.assert_allclose(predict_aligned(model, ["i2", "i1"], space), [[0.8, 0.2, 0], [0.1, 0.9, 0]])
    long = table.stack().rename("probability").rename_axis(["task", "label"]).reset_index()
    np.testing.assert_allclose(PrecomputedProba.from_long(long).fit().predict_proba(["i3"]), [[0.5, 0.5]])
    oof = out_of_fold_proba(PrecomputedProba(table), ["i1", "i2", "i3"], ["a", "b", "a"], n_folds=3)
    np.testing.assert_allclose(oof, table.to_numpy())  # plugs in wherever a model does
    with pytest.raises(InputError, match="no precomputed probabilities for 'zz'"):
        model.predict_proba(["i1", "zz"])
    with pytest.raises(InputError, match="row 2"):
        PrecomputedProba(pd.DataFrame({"a": [1.0, 0.7], "b": [0.0, 0.7]})).fit()


# ------------------------------------------------------------------------------------------ OOF honesty


class Memorizer(ClassifierMixin, BaseEstimator):
    """Remembers every training text's label; a text it never saw gets the uniform distribution."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.memory_ = dict(zip(X, y, strict=True))
        return self

    def predict_proba(self, X):
        out = np.full((len(X), len(self.classes_)), 1 / len(self.classes_))
        for row, text in enumerate(X):
            if text in self.memory_:
                out[row] = np.asarray(self.classes_ == self.memory_[text], dtype=float)
        return out


def test_out_of_fold_never_echoes_the_training_label():
    rng = np.random.default_rng(5)
    texts = np.array([f"item{i}" for i in range(600)], dtype=object)
    labels = rng.choice(list("abc"), 600)  # random labels: nothing to learn
    in_sample = Memorizer().fit(texts, labels).predict_proba(texts)
    assert (in_sample.argmax(axis=1) == np.searchsorted(list("abc"), labels)).all()  # echoes
    oof = out_of_fold_proba(Memorizer(), texts, labels, n_folds=5)
    np.testing.assert_allclose(oof, 1 / 3)  # never saw the item: no opinion, so chance accuracy
    # duplicates are kept in one fold by groups: a memorizer cannot read the copy's label either
    dup_texts = np.r_[texts[:300], texts[:300]]
    dup_labels = np.r_[labels[:300], labels[:300]]
    oof = out_of_fold_proba(Memorizer(), dup_texts, dup_labels, n_folds=5, groups=dup_texts)
    np.testing.assert_allclose(oof, 1 / 3)
