import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from crowdloop.answers import Answers
from crowdloop.errors import ConfigError, InputError, UnknownLabelError
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.models import TextClassifier, align_proba, ancestor_proba, normalize_text, out_of_fold_proba
from crowdloop.models.text import group_folds

KEYWORDS = {
    "Audio > Headphones": ["headphones", "earbuds", "headset"],
    "Audio > Speakers": ["speaker", "soundbar", "subwoofer"],
    "Clothing > Shirts": ["shirt", "polo", "tee"],
    "Clothing > Shoes": ["sneakers", "boots", "sandals"],
    "Home > Lamps": ["lamp", "lantern", "bulb"],
    "Home > Rugs": ["rug", "carpet", "mat"],
}
NOISE = ["blue", "black", "premium", "classic", "new", "pro", "set", "pack", "large", "mini", "acme", "zeta"]


def titles(n_per_class=40, ambiguous=0.0, seed=0):
    """Titles made of a category keyword and noise words; with ``ambiguous`` a share of titles also
    carries a keyword of a random other category (so the model can be unsure, and sometimes wrong)."""
    rng = np.random.default_rng(seed)
    cats = list(KEYWORDS)
    texts, labels = [], []
    for _ in range(n_per_class):
        for cat in cats:
            words = [rng.choice(KEYWORDS[cat]), *rng.choice(NOISE, 3, replace=False)]
            if rng.random() < ambiguous:
                words.append(rng.choice(KEYWORDS[cats[rng.integers(len(cats))]]))
            rng.shuffle(words)
            texts.append(" ".join(words))
            labels.append(cat)
    return np.array(texts, dtype=object), np.array(labels, dtype=object)


def random_words(n, seed):
    rng = np.random.default_rng(seed)
    return np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 10)) for _ in range(n)], dtype=object)


# ------------------------------------------------------------------------------------------ the classifier


def test_learns_separable_categories():
    texts, labels = titles(seed=0)
    test_texts, test_labels = titles(n_per_class=10, seed=1)
    model = TextClassifier().fit(texts, labels)
    assert model.fit(texts, labels) is model
    assert sorted(model.classes_) == sorted(KEYWORDS)
    assert (model.predict(test_texts) == test_labels).mean() > 0.95
    probs = model.predict_proba(test_texts)
    assert probs.shape == (len(test_texts), len(KEYWORDS))
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    assert np.isfinite(model.temperature_) and model.temperature_ > 0


@pytest.mark.parametrize("calibration", ["temperature", "sigmoid"])
def test_confidence_tracks_correctness(calibration):
    texts, labels = titles(n_per_class=50, ambiguous=0.5, seed=2)
    test_texts, test_labels = titles(n_per_class=30, ambiguous=0.5, seed=3)
    probs = TextClassifier(calibration=calibration).fit(texts, labels).predict_proba(test_texts)
    classes = np.array(sorted(KEYWORDS), dtype=object)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    confidence, right = probs.max(axis=1), classes[probs.argmax(axis=1)] == test_labels
    assert 0.6 < right.mean() < 0.98  # the ambiguous titles make real mistakes
    assert confidence[right].mean() > confidence[~right].mean() + 0.1
    assert abs(confidence.mean() - right.mean()) < 0.1  # neither wildly over- nor underconfident


def test_feature_and_svm_parameters_reach_the_fit():
    texts, labels = titles(n_per_class=20, seed=5)
    model = TextClassifier(word_ngrams=(1, 1), char_ngrams=(3, 3), sublinear_tf=False, class_weight="balanced")
    model.fit(texts, labels)
    word, char = (dict(model.vectorizer_.transformer_list)[k] for k in ("word", "char"))
    assert all(" " not in w for w in word.vocabulary_)  # unigrams only
    assert {len(g) for g in char.vocabulary_} == {3} and not word.sublinear_tf
    assert model.estimator_.class_weight == "balanced"
    assert (model.predict(texts) == labels).mean() > 0.95


def test_deterministic_for_random_state():
    texts, labels = titles(n_per_class=20, ambiguous=0.3, seed=4)
    a = TextClassifier(random_state=7).fit(texts, labels).predict_proba(texts)
    b = TextClassifier(random_state=7).fit(texts, labels).predict_proba(texts)
    np.testing.assert_array_equal(a, b)


def test_two_classes_singletons_and_one_class():
    texts, labels = titles(n_per_class=15, seed=5)
    pick = np.isin(labels, ["Audio > Speakers", "Home > Rugs"])
    two = TextClassifier().fit(texts[pick], labels[pick])
    assert two.predict_proba(texts[pick]).shape == (pick.sum(), 2)
    assert (two.predict(texts[pick]) == labels[pick]).mean() > 0.95

    # a class with a single example is still a class, and its own keyword finds it
    texts2 = np.append(texts, "vintage gramophone")
    labels2 = np.append(labels, "Audio > Gramophones")
    model = TextClassifier().fit(texts2, labels2)
    assert "Audio > Gramophones" in model.classes_
    assert model.predict(["gramophone vintage"])[0] == "Audio > Gramophones"

    one = TextClassifier().fit(["a red shirt", "a blue shirt"], ["shirt", "shirt"])
    np.testing.assert_array_equal(one.predict_proba(["anything"]), [[1.0]])


def test_bad_input_raises_clear_errors():
    with pytest.raises(InputError, match="3 texts but 2 labels"):
        TextClassifier().fit(["a b", "c d", "e f"], ["x", "y"])
    with pytest.raises(InputError, match=r"row 2: empty text"):
        TextClassifier().fit(["a b", "  ", "e f"], ["x", "y", "x"])
    with pytest.raises(InputError, match="no texts"):
        TextClassifier().fit([], [])
    with pytest.raises(InputError, match="missing label"):
        TextClassifier().fit(["a b", "c d"], ["x", None])
    with pytest.raises(InputError, match="sequence of texts"):
        TextClassifier().fit("a single string", ["x"])
    with pytest.raises(ConfigError, match="calibration"):
        TextClassifier(calibration="magic").fit(["a b", "c d"], ["x", "y"])
    with pytest.raises(InputError, match="4 texts but 3 groups"):
        out_of_fold_proba(TextClassifier(), ["a", "b", "c", "d"], list("xyxy"), n_folds=2, groups=[1, 2, 3])
    with pytest.raises(InputError, match="cannot fill"):
        out_of_fold_proba(TextClassifier(), ["a", "b", "c", "d"], list("xyxy"), n_folds=3, groups=[1, 1, 2, 2])


# ------------------------------------------------------------------------------------------ out of fold


def test_out_of_fold_never_sees_its_own_label():
    # every text is a unique random token with a random label: a model fitted on the items memorises
    # them, a cross-fitted one can only guess
    n, k = 240, 4
    texts = random_words(n, seed=6)
    labels = np.random.default_rng(6).integers(0, k, n)
    in_fold = TextClassifier(C=10.0).fit(texts, labels).predict(texts)
    assert (in_fold == labels).mean() > 0.95
    oof = out_of_fold_proba(TextClassifier(C=10.0), texts, labels, n_folds=4)
    assert oof.shape == (n, k)
    np.testing.assert_allclose(oof.sum(axis=1), 1)
    assert (oof.argmax(axis=1) == labels).mean() < 0.45
    assert oof[np.arange(n), labels].mean() < 0.4


def test_groups_keep_duplicates_in_one_fold():
    n, copies = 90, 3
    distinct = random_words(n, seed=8)
    texts = np.repeat(distinct, copies)
    texts = np.array([t.upper() if i % 3 == 0 else f" {t} " for i, t in enumerate(texts)], dtype=object)
    labels = np.repeat(np.random.default_rng(8).integers(0, 3, n), copies)
    groups = normalize_text(texts)
    folds = group_folds(groups, 5, random_state=0)
    assert pd.Series(folds).groupby(groups).nunique().max() == 1
    assert np.bincount(folds).min() >= copies * (n // 5)
    leaky = out_of_fold_proba(TextClassifier(C=10.0), texts, labels, n_folds=5)
    honest = out_of_fold_proba(TextClassifier(C=10.0), texts, labels, n_folds=5, groups=groups)
    assert (leaky.argmax(axis=1) == labels).mean() > 0.9  # copies in the training folds give the label away
    assert (honest.argmax(axis=1) == labels).mean() < 0.55


def test_out_of_fold_aligns_to_label_space_and_feeds_answers():
    texts, labels = titles(n_per_class=20, seed=9)
    texts = np.append(texts, "vintage gramophone")
    labels = np.append(labels, "Audio > Gramophones")  # a singleton: its fold never saw its class
    space = LabelSpace(["Other", *sorted(set(labels))])
    oof = out_of_fold_proba(TextClassifier(), texts, labels, n_folds=3, label_space=space, random_state=1)
    assert oof.shape == (len(texts), len(space))
    np.testing.assert_allclose(oof.sum(axis=1), 1)
    assert np.all(oof[:, space.code("Other")] == 0)
    assert oof[-1, space.code("Audio > Gramophones")] == 0
    assert (space.decode(oof.argmax(axis=1))[:-1] == labels[:-1]).mean() > 0.9
    again = out_of_fold_proba(TextClassifier(), texts, labels, n_folds=3, label_space=space, random_state=1)
    np.testing.assert_array_equal(oof, again)

    frame = pd.DataFrame({"task": np.arange(len(texts)), "worker": "w1", "label": labels})
    answers = Answers.from_frame(frame, labels=space).with_soft("model", np.arange(len(texts)), oof)
    assert answers.soft is not None and answers.soft.probs.shape == (len(texts), len(space))
    with pytest.raises(UnknownLabelError):
        out_of_fold_proba(TextClassifier(), texts, labels, n_folds=3, label_space=LabelSpace(["x", "y"]))


def test_align_proba():
    space = LabelSpace(["a", "b", "c"])
    out = align_proba(np.array([[0.3, 0.7]]), ["c", "a"], space)
    np.testing.assert_allclose(out, [[0.7, 0.0, 0.3]])
    with pytest.raises(InputError, match="shape"):
        align_proba(np.array([[1.0]]), ["a", "b"], space)


# ------------------------------------------------------------------------------------------ taxonomy


def test_ancestor_proba_sums_leaves_up():
    tax = Taxonomy.from_paths(["A > x > 1", "A > x > 2", "A > y", "B"])
    leaves = ["A > x > 1", "A > x > 2", "A > y", "B"]
    probs = align_proba(np.array([[0.3, 0.3, 0.1, 0.3], [0.0, 0.0, 0.0, 1.0]]), leaves, tax)
    top = ancestor_proba(probs, tax, 1)
    np.testing.assert_allclose(top[:, tax.code("A")], [0.7, 0.0])
    np.testing.assert_allclose(top[:, tax.code("B")], [0.3, 1.0])
    assert top.sum(axis=1).tolist() == pytest.approx([1, 1])
    level2 = ancestor_proba(probs, tax, 2)
    np.testing.assert_allclose(level2[0, [tax.code("A > x"), tax.code("A > y"), tax.code("B")]], [0.6, 0.1, 0.3])
    np.testing.assert_allclose(ancestor_proba(probs, tax, 9), probs)  # deeper than the tree: unchanged
    # an unsure leaf, a sure branch
    assert probs[0].max() <= 0.3 and top[0].max() == pytest.approx(0.7)
    sparse = ancestor_proba(sp.csr_matrix(probs), tax, 1)
    assert sp.issparse(sparse)
    np.testing.assert_allclose(sparse.toarray(), top)
    with pytest.raises(ConfigError):
        ancestor_proba(probs, tax, 0)
    with pytest.raises(InputError, match="shape"):
        ancestor_proba(probs[:, :3], tax, 1)
