r"""The default text classifier: TF-IDF word and character n-grams, a linear SVM, temperature scaling.

Features (Joachims, ECML 1998; the usual strong baseline for short product titles): word 1-2 grams
(single characters kept: sizes, model numbers) and ``char_wb`` 2-5 grams, both TF-IDF with sublinear
tf ($1 + \log tf$), L2-normalised, side by side.
The linear model is scikit-learn's ``LinearSVC`` (liblinear, one-vs-rest; Fan et al., JMLR 2008):
it trains in time linear in (rows x classes), the only shape that stays fast at 1,000 classes (a
multinomial logistic regression with lbfgs needs dense ``features x classes`` matrices per step).

Probabilities a vote can use: an SVM's margins are not probabilities, so they are calibrated by
*temperature scaling* (Guo et al., ICML 2017): $p(k \mid x) = \operatorname{softmax}_k(f_k(x)/T)$
with one temperature $T$ fitted by maximum likelihood on cross-fitted margins (``cv`` folds of
distinct texts, so a duplicate title never calibrates its own copy), then the SVM is refitted on all
data. ``calibration="sigmoid"`` or ``"isotonic"`` instead use scikit-learn's ``CalibratedClassifierCV``
on the same folds (one-vs-rest Platt scaling, Platt 1999, or isotonic regression, Zadrozny & Elkan
2002, averaged over the fold models). Measured (``bench/bench_text_model.py --calibrations
temperature sigmoid``, same fit time):
temperature beats sigmoid on Flipkart in leaf accuracy (.894 vs .871), log-loss (.62 vs .70) and
ECE (.064 vs .141), and on Myntra in accuracy and ECE (.015 vs .028; log-loss .18 vs .15).

Rows with the same text and label are merged with a sample weight (the SVM's loss is a weighted sum,
so the fit is the same, and catalogues repeat titles a lot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from crowdloop.errors import ConfigError, InputError

Calibration = Literal["temperature", "sigmoid", "isotonic"]
CALIBRATIONS: tuple[str, ...] = ("temperature", "sigmoid", "isotonic")


def normalize_text(texts: Sequence[str] | np.ndarray | pd.Series) -> np.ndarray:
    """Lower-cased texts with runs of whitespace collapsed: the key that groups duplicate titles."""
    series = pd.Series(np.asarray(texts, dtype=object)).astype(str)
    return series.str.lower().str.split().str.join(" ").to_numpy(dtype=object)


def group_folds(groups: np.ndarray, n_folds: int, random_state: int | None) -> np.ndarray:
    """The fold (0..n_folds-1) of every row: distinct groups dealt round-robin in a seeded random order,
    so every row of a group lands in the same fold and fold sizes (in groups) differ by at most one."""
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), sort=False)
    order = np.random.default_rng(random_state).permutation(len(uniques))
    fold_of_group = np.empty(len(uniques), dtype=np.int64)
    fold_of_group[order] = np.arange(len(uniques)) % n_folds
    return fold_of_group[codes]


def check_texts_labels(texts: object, labels: object, *, source: str = "texts") -> tuple[np.ndarray, np.ndarray]:
    """Texts and labels as object arrays of equal length; empty or missing ones raise ``InputError``."""
    texts = _as_texts(texts, source=source)
    if labels is None:
        raise InputError("labels are missing", source=source, hint="Give one label per text.")
    labels = np.asarray(labels, dtype=object).ravel()
    if len(texts) != len(labels):
        raise InputError(
            f"{len(texts)} texts but {len(labels)} labels", source=source, hint="Give exactly one label per text."
        )
    missing = pd.isna(pd.Series(labels)).to_numpy()
    if missing.any():
        raise InputError("missing label", source=source, rows=(np.flatnonzero(missing) + 1).tolist(), unit="row")
    return texts, labels


def check_sample_weight(sample_weight: object, n: int) -> np.ndarray:
    """Row weights as floats (all 1 when None); not one finite positive number per row raises ``InputError``."""
    if sample_weight is None:
        return np.ones(n)
    weight = np.asarray(sample_weight, dtype=np.float64).ravel()
    if len(weight) != n:
        raise InputError(f"{n} texts but {len(weight)} sample weights", hint="Give one weight per text.")
    bad = ~(np.isfinite(weight) & (weight > 0))
    if bad.any():
        raise InputError("sample weight must be a positive number", rows=(np.flatnonzero(bad) + 1).tolist(), unit="row")
    return weight


def _as_texts(texts: object, *, source: str = "texts") -> np.ndarray:
    if texts is None or isinstance(texts, str):
        raise InputError("expected a sequence of texts", source=source, hint="Pass a list or array of strings.")
    array = np.asarray(texts, dtype=object).ravel()
    if len(array) == 0:
        raise InputError("there are no texts", source=source, hint="Give at least two labelled texts.")
    series = pd.Series(array)
    empty = (series.isna() | series.astype(str).str.strip().eq("")).to_numpy()
    if empty.any():
        raise InputError(
            "empty text", source=source, rows=(np.flatnonzero(empty) + 1).tolist(), unit="row",
            hint="Drop the items without text or give them a title.",
        )  # fmt: skip
    return series.astype(str).to_numpy(dtype=object)


class TextClassifier(ClassifierMixin, BaseEstimator):
    r"""TF-IDF (word 1-2 + char_wb 2-5 grams, sublinear tf) + linear SVM with calibrated probabilities.

    Parameters
    ----------
    C : regularisation of the SVM (inverse strength; liblinear's C).
    calibration : ``"temperature"`` (default: one temperature on cross-fitted margins, then a refit on
        all data), ``"sigmoid"`` or ``"isotonic"`` (``CalibratedClassifierCV``, averaged fold models).
    cv : folds used to calibrate (distinct normalised texts never straddle folds).
    char_min_df : minimum document frequency of a character n-gram (words keep every n-gram).
    word_ngrams, char_ngrams : the n-gram ranges of the word and ``char_wb`` vocabularies.
    sublinear_tf : ``1 + log tf`` instead of raw counts.
    class_weight : the SVM's per-class loss weights (``None`` or ``"balanced"``).
    max_features : cap on each vocabulary (``None``: no cap).
    random_state : seed of the calibration folds.

    Fitted attributes: ``classes_``, ``vectorizer_``, ``estimator_`` (the SVM fitted on all data, or the
    ``CalibratedClassifierCV``), ``temperature_`` (``nan`` unless ``calibration="temperature"``).
    A class with one example is learned like any other; when there is a single class every
    probability is 1.

    >>> model = TextClassifier(cv=2).fit(["red apple", "green apple", "blue car", "fast car"], list("aabb"))
    >>> model.predict(["apple pie", "car wash"]).tolist()
    ['a', 'b']
    """

    def __init__(
        self,
        C: float = 0.5,
        calibration: Calibration = "temperature",
        cv: int = 3,
        char_min_df: int = 2,
        max_features: int | None = None,
        random_state: int | None = 0,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
        sublinear_tf: bool = True,
        class_weight: Literal["balanced"] | None = None,
    ) -> None:
        self.C = C
        self.calibration = calibration
        self.cv = cv
        self.char_min_df = char_min_df
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.sublinear_tf = sublinear_tf
        self.class_weight = class_weight
        self.max_features = max_features
        self.random_state = random_state

    def _check_params(self) -> None:  # one place, as scikit-learn does
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(f"unknown calibration {self.calibration!r}; use one of {', '.join(CALIBRATIONS)}")
        if not (isinstance(self.cv, (int, np.integer)) and self.cv >= 2):
            raise ConfigError(f"cv must be an integer >= 2, got {self.cv!r}")
        if not (np.isfinite(self.C) and self.C > 0):
            raise ConfigError(f"C must be a positive number, got {self.C!r}")

    def make_vectorizer(self, n_texts: int) -> FeatureUnion:
        """The unfitted word + char TF-IDF union for ``n_texts`` training texts (``char_min_df`` applies
        only when it cannot empty a tiny vocabulary)."""
        common = {"sublinear_tf": self.sublinear_tf, "dtype": np.float32, "max_features": self.max_features}
        min_df = self.char_min_df if self.char_min_df > 1 and n_texts >= 2 * self.char_min_df else 1
        word = TfidfVectorizer(ngram_range=tuple(self.word_ngrams), token_pattern=r"(?u)\b\w+\b", **common)
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(self.char_ngrams), min_df=min_df, **common)
        return FeatureUnion([("word", word), ("char", char)])

    def fit(
        self,
        texts: Sequence[str] | np.ndarray,
        labels: Sequence | np.ndarray,
        sample_weight: Sequence[float] | np.ndarray | None = None,
    ) -> TextClassifier:
        """Learn the vocabulary, the SVM and the calibration from ``texts`` and their ``labels``;
        ``sample_weight`` (one positive number per text, default 1) weighs each row's loss."""
        self._check_params()
        texts, labels = check_texts_labels(texts, labels)
        row_weight = check_sample_weight(sample_weight, len(texts))
        try:
            codes, classes = pd.factorize(pd.Series(labels), sort=True)
        except TypeError:  # labels of mixed types cannot be sorted: first-seen order
            codes, classes = pd.factorize(pd.Series(labels), sort=False)
        self.classes_ = np.asarray(classes, dtype=object)
        self.temperature_ = float("nan")
        self.vectorizer_ = self.make_vectorizer(len(texts)).fit(texts)
        if len(self.classes_) == 1:
            self.estimator_ = None
            return self
        # merge rows with the same text and label (weights keep the SVM objective unchanged)
        pair = pd.factorize(pd.Series(texts) + "\x00" + pd.Series(codes).astype(str))[0]
        first = np.unique(pair, return_index=True)[1]
        weight = np.bincount(pair, weights=row_weight)
        X = self.vectorizer_.transform(texts[first])
        y = codes[first]
        groups = normalize_text(texts[first])
        n_folds = min(self.cv, len(pd.unique(groups)))
        folds = group_folds(groups, n_folds, self.random_state) if n_folds >= 2 else None
        if self.calibration == "temperature":
            self.estimator_ = self.make_svm().fit(X, y, sample_weight=weight)
            if folds is not None:
                self.temperature_ = self._fit_temperature(X, y, weight, folds)
            else:
                self.temperature_ = 1.0
        else:
            splits = (
                []
                if folds is None
                else [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(n_folds)]
            )
            splits = [(train, test) for train, test in splits if len(np.unique(y[train])) >= 2]
            if splits:
                self.estimator_ = CalibratedClassifierCV(self.make_svm(), method=self.calibration, cv=splits)
                self.estimator_.fit(X, y, sample_weight=weight)
            else:  # too little data to calibrate: plain softmax of the margins
                self.estimator_ = self.make_svm().fit(X, y, sample_weight=weight)
                self.temperature_ = 1.0
        return self

    def make_svm(self) -> LinearSVC:
        """The unfitted linear SVM."""
        return LinearSVC(C=self.C, tol=1e-3, class_weight=self.class_weight, random_state=self.random_state)

    def _fit_temperature(self, X, y: np.ndarray, weight: np.ndarray, folds: np.ndarray) -> float:
        """The temperature minimising the weighted log-loss of softmax(margins / T) on cross-fitted margins;
        items whose class their fold's model never saw are left out (no temperature can help them)."""
        n_classes = len(self.classes_)
        margins = np.full((len(y), n_classes), np.nan)
        for f in np.unique(folds):
            train, test = folds != f, folds == f
            seen = np.unique(y[train])
            if len(seen) < 2:
                continue
            margins[np.ix_(np.flatnonzero(test), seen)] = _margins(
                self.make_svm().fit(X[train], y[train], sample_weight=weight[train]), X[test]
            )
        usable = np.isfinite(margins[np.arange(len(y)), y])
        if not usable.any():
            return 1.0
        scores = np.where(np.isfinite(margins[usable]), margins[usable], -np.inf)
        target, w = y[usable], weight[usable]

        def loss(log_t: float) -> float:
            logp = log_softmax(scores / np.exp(log_t), axis=1)
            return float(-(w * logp[np.arange(len(target)), target]).sum() / w.sum())

        return float(np.exp(minimize_scalar(loss, bounds=(-6.0, 4.0), method="bounded").x))

    def decision_function(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        """The SVM margins (n, K) of the model fitted on all data (temperature calibration only)."""
        X = self.vectorizer_.transform(_as_texts(texts))
        if self.estimator_ is None:
            return np.zeros((X.shape[0], 1))
        if not isinstance(self.estimator_, LinearSVC):
            raise ConfigError("decision_function needs calibration='temperature'")
        return _margins(self.estimator_, X)

    def predict_proba(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n, K), columns in the order of ``classes_``; rows sum to 1."""
        X = self.vectorizer_.transform(_as_texts(texts))
        if self.estimator_ is None:
            return np.ones((X.shape[0], 1))
        if isinstance(self.estimator_, LinearSVC):
            return softmax(_margins(self.estimator_, X) / self.temperature_, axis=1)
        probs = np.zeros((X.shape[0], len(self.classes_)))
        probs[:, self.estimator_.classes_] = self.estimator_.predict_proba(X)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str] | np.ndarray) -> np.ndarray:
        """The most probable class of every text."""
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]


def _margins(svm: LinearSVC, X) -> np.ndarray:
    """Margins with one column per class the SVM knows (a binary SVM's single margin m becomes (0, m))."""
    scores = svm.decision_function(X)
    if scores.ndim == 1:
        scores = np.column_stack([np.zeros_like(scores), scores])
    return scores
