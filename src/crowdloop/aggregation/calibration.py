r"""Honest posteriors: measure calibration against gold and recalibrate the top label on gold.

A posterior is *calibrated* when, among the items whose top label has confidence $c$, a share $c$
is right: $P(\hat z_i = z_i \mid \hat c_i = c) = c$. EM posteriors are not: Dawid-Skene multiplies
the likelihoods of an item's answers as if they were independent given the true label, so a few
agreeing answers drive $\hat c$ to $0.9999\ldots$ while real workers share mistakes (hard items,
copied answers, the same misreading), and the real accuracy at that confidence is far lower.

Measuring (functional entry points on plain arrays, in the style of cleanlab):

- ``expected_calibration_error``: $\mathrm{ECE} = \sum_b \frac{n_b}{n}\,|\bar y_b - \bar c_b|$ over
  confidence bins $b$ (uniform-width or equal-count), $\bar c_b$ the mean confidence and
  $\bar y_b$ the accuracy of the bin (Naeini et al., AAAI 2015; Guo et al., ICML 2017);
- ``reliability_table``: the bins themselves (count, mean confidence, accuracy, gap);
- ``selective_accuracy``: share and accuracy of the items whose confidence reaches a threshold
  (what dynamic consensus relies on: accept an item once its confidence reaches the target).

Recalibrating (``TopLabelCalibrator``): a map from the raw top-label confidence, optionally with
cheap item features (number of answers, margin to the second label), to the probability that the
top label is right, fitted on gold items:

- ``"platt"``: Platt scaling (Platt 1999) on the logit of the confidence,
  $P(\text{right}) = \sigma(a\,\operatorname{logit}\hat c + b + w^\top x)$. Smooth, two
  parameters, hard to overfit; assumes the miscalibration is a straight line on the logit scale.
  Platt's smoothed targets $t_+ = \frac{N_+ + 1}{N_+ + 2}$, $t_- = \frac{1}{N_- + 2}$ keep the fit
  finite when the classes separate.
- ``"isotonic"``: isotonic regression of correctness on the score (Zadrozny & Elkan, KDD 2002):
  any monotone map, fitted by pool-adjacent-violators. Flexible but a step function whose steps
  are the raw accuracies of small blocks: with few gold items the top block is often "all right",
  and calibrated 1.0 is exactly the overconfidence we are removing.
- ``"smooth"`` (default): a monotone combination of the two. Isotonic blocks on the Platt score
  $s$ (so the features enter too), each block's accuracy shrunk toward the Platt prediction as a
  Beta prior worth ``prior_strength`` gold items,
  $\tilde y_b = \frac{k_b + m\,\bar p_b}{n_b + m}$ ($k_b$ of $n_b$ right, $\bar p_b$ the block's
  mean Platt probability), then made monotone again by a weighted isotonic fit and interpolated
  linearly between blocks. Large blocks follow the data (isotonic), small ones the smooth curve
  (Platt); on the benchmark (``bench/bench_calibration.py``) it is the best or close to the best
  of the three on every dataset.

Raw EM confidences pile up at $1 - 10^{-12}$; everything is done on the logit scale with the
confidence clipped to $[\epsilon, 1 - \epsilon]$ (``clip``).

Cross-fitting (``cross_fitted_confidence``): gold items are clamped during EM, so their posterior is
1 and says nothing about calibration. The gold is split into folds; for each fold the aggregator is
refitted with the *other* folds clamped and this fold's items free, which gives honest raw
confidences for every gold item from a model that used almost all the gold (Chernozhukov et al.,
2018, for the name; K-fold cross-validated predictions in general). The calibrator is fitted on
those.

``CalibratedAggregator`` wraps any aggregator: base fit with all gold clamped, cross-fitted gold,
calibrator, and the recalibrated posterior, with reliability before and after.

References:

- J. Platt. Probabilistic outputs for support vector machines and comparisons to regularized
  likelihood methods. *Advances in Large Margin Classifiers*, 1999.
- B. Zadrozny and C. Elkan. Transforming classifier scores into accurate multiclass probability
  estimates. *KDD*, 2002.
- C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger. On calibration of modern neural networks.
  *ICML*, 2017.
- M. P. Naeini, G. Cooper and M. Hauskrecht. Obtaining well calibrated probabilities using
  Bayesian binning. *AAAI*, 2015.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import betaincinv, expit
from sklearn.base import BaseEstimator, clone
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from crowdloop.aggregation.base import Aggregator, Gold, TrueLabels
from crowdloop.aggregation.posterior import Posterior
from crowdloop.answers import Answers, as_answers
from crowdloop.errors import ConfigError, InputError

BinStrategy = Literal["uniform", "quantile"]
CalibrationMethod = Literal["smooth", "platt", "isotonic"]
FEATURES: tuple[str, ...] = ("confidence", "n_answers", "margin")
"""Item features a calibrator may use: the raw top-label confidence (always), the number of answers
of the item (log scale) and the margin between the top two labels' probabilities."""

MIN_STRATUM = 30
"""Gold states an answer count needs for a curve of its own (``per_answer_count``)."""

_TIE_SHRINK = 1e-9
"""Other labels are kept strictly below the calibrated top label so that it stays the argmax."""


# --------------------------------------------------------------------------------------------------
# measuring


def _check_pair(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    correct = np.asarray(correct).ravel()
    if confidence.shape != correct.shape:
        raise InputError(f"confidence has {confidence.size} values but correct has {correct.size}")
    if confidence.size == 0:
        raise InputError("no items to measure calibration on", hint="Give at least one gold item.")
    if not np.isfinite(confidence).all() or confidence.min() < 0 or confidence.max() > 1:
        raise InputError("confidence must be a probability in [0, 1]")
    return confidence, correct.astype(np.float64)


def _bin_index(confidence: np.ndarray, n_bins: int, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """Bin of every confidence and the bin edges (``n_bins + 1`` of them, fewer when quantiles tie)."""
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1)))
        edges[0], edges[-1] = 0.0, 1.0
        edges = np.unique(edges)
    else:
        raise ConfigError(f"unknown binning strategy {strategy!r}; use 'uniform' or 'quantile'")
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, len(edges) - 2)
    return index, edges


def reliability_table(
    confidence: np.ndarray | Sequence[float],
    correct: np.ndarray | Sequence[bool],
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> pd.DataFrame:
    r"""The reliability diagram as a table: one row per non-empty confidence bin.

    Columns: ``bin`` (the interval, left-closed), ``count``, ``confidence`` (mean confidence
    $\bar c_b$), ``accuracy`` ($\bar y_b$, the share of right top labels) and ``gap``
    ($\bar c_b - \bar y_b$: positive means overconfident). ``strategy="uniform"`` uses ``n_bins``
    equal-width bins on $[0, 1]$; ``"quantile"`` equal-count bins (ties merge bins).

    >>> reliability_table([0.6, 0.7, 0.95, 0.99], [True, False, True, True], n_bins=4)[["count", "accuracy"]]
       count  accuracy
    0      2       0.5
    1      2       1.0
    """
    confidence, correct = _check_pair(confidence, correct)
    index, edges = _bin_index(confidence, n_bins, strategy)
    n = len(edges) - 1
    count = np.bincount(index, minlength=n)
    mean_conf = np.bincount(index, weights=confidence, minlength=n)
    accuracy = np.bincount(index, weights=correct, minlength=n)
    used = count > 0
    mean_conf = mean_conf[used] / count[used]
    accuracy = accuracy[used] / count[used]
    bins = pd.IntervalIndex.from_arrays(edges[:-1][used], edges[1:][used], closed="left")
    return pd.DataFrame(
        {"bin": bins, "count": count[used], "confidence": mean_conf, "accuracy": accuracy, "gap": mean_conf - accuracy}
    )


def expected_calibration_error(
    confidence: np.ndarray | Sequence[float],
    correct: np.ndarray | Sequence[bool],
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> float:
    r"""Expected calibration error $\sum_b \frac{n_b}{n}|\bar y_b - \bar c_b|$ (Naeini et al. 2015;
    Guo et al. 2017): the mean gap between confidence and accuracy, bins weighted by their size.

    ``confidence`` is the probability given to the predicted label, ``correct`` whether that label is
    the true one. 0 is perfect; an aggregator that says 0.99 and is right 90% of the time has
    ECE 0.09. Binned ECE is biased upward by about $\sqrt{\bar c(1-\bar c)/n_b}$ per bin for small
    samples; quantile bins keep every bin populated.

    >>> round(expected_calibration_error([0.9] * 10, [True] * 9 + [False]), 6)
    0.0
    """
    table = reliability_table(confidence, correct, n_bins=n_bins, strategy=strategy)
    return float((table["count"] * table["gap"].abs()).sum() / table["count"].sum())


def selective_accuracy(
    confidence: np.ndarray | Sequence[float],
    correct: np.ndarray | Sequence[bool],
    thresholds: Sequence[float] = (0.9, 0.95, 0.97),
) -> pd.DataFrame:
    """Per threshold t: how many items have confidence >= t (``count``, ``share``), their mean
    confidence (what the posterior claims for them) and their accuracy (NaN when none): what
    accepting items at target t delivers. Calibrated means ``accuracy`` ~ ``confidence``."""
    confidence, correct = _check_pair(confidence, correct)
    t = np.asarray(thresholds, dtype=np.float64)
    accepted = confidence[None, :] >= t[:, None]
    count = accepted.sum(axis=1)
    right = (accepted * correct[None, :]).sum(axis=1)
    claimed = (accepted * confidence[None, :]).sum(axis=1)
    accuracy = np.divide(right, count, out=np.full(len(t), np.nan), where=count > 0)
    claimed = np.divide(claimed, count, out=np.full(len(t), np.nan), where=count > 0)
    return pd.DataFrame(
        {"threshold": t, "count": count, "share": count / len(confidence), "confidence": claimed, "accuracy": accuracy}
    )


# --------------------------------------------------------------------------------------------------
# features of a posterior


def top_label_features(posterior: Posterior, n_answers: np.ndarray | None = None) -> pd.DataFrame:
    """Per item: ``label`` (top code, -1 if none), ``confidence``, ``margin`` (top minus second
    probability) and ``n_answers`` (when given): the inputs of a ``TopLabelCalibrator``."""
    _, probs = posterior.top(2)
    second = probs[:, 1] if probs.shape[1] > 1 else np.zeros(len(probs))
    frame = pd.DataFrame({"label": posterior.labels(), "confidence": probs[:, 0], "margin": probs[:, 0] - second})
    if n_answers is not None:
        frame["n_answers"] = np.asarray(n_answers, dtype=np.float64)
    return frame


def answers_per_item(answers: Answers) -> np.ndarray:
    """Hard plus soft answers per item."""
    counts = answers.answers_per_item().astype(np.float64)
    if answers.soft is not None:
        counts += np.bincount(answers.soft.item, minlength=answers.n_items)
    return counts


# --------------------------------------------------------------------------------------------------
# the calibrator


class TopLabelCalibrator(BaseEstimator):
    r"""Maps a raw top-label confidence (and optional item features) to the probability that the top
    label is right, fitted on gold items. See the module docstring for the three methods.

    Parameters:
        method: ``"smooth"`` (isotonic shrunk toward Platt, monotone; the default), ``"platt"`` or
            ``"isotonic"``.
        features: which of ``FEATURES`` enter the Platt score; ``"confidence"`` always does (as
            $\operatorname{logit}(\hat c)$); ``"n_answers"`` enters as $\log(1 + n)$, ``"margin"``
            as is. Isotonic uses the confidence only.
        clip: confidences are clipped to $[\epsilon, 1-\epsilon]$ before the logit.
        prior_strength: for ``"smooth"``, how many gold items the Platt curve is worth in each
            isotonic block.
        C: inverse L2 penalty of the logistic fit (on standardised features); large = Platt's
            unpenalised fit.
        per_answer_count: with ``"n_answers"`` among the features and a monotone method, one curve
            per answer count that has at least ``MIN_STRATUM`` gold states, each block shrunk toward
            the pooled Platt curve (a hierarchical fit); other counts use the pooled curve. One
            monotone curve on a linear score cannot follow an accuracy that depends on the answer
            count in any other way: a crowd posterior that is overconfident after a few answers and
            honest after many pools both into its top step, which then claims too little for the one
            and too much for the other.

    Fitted: ``n_gold_``, ``n_right_``, ``platt_`` (the logistic model), ``isotonic_`` (the pooled
    isotonic model, None for ``"platt"``), ``strata_curves_`` and ``strata_evidence_`` (rows
    ``(n, score, value)`` of the per-count curves and of the gold behind their steps).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> raw = rng.uniform(0.5, 1.0, 2000)
    >>> right = rng.random(2000) < 0.5 + (raw - 0.5) / 2  # raw claims more than it delivers
    >>> calibrated = TopLabelCalibrator().fit(raw, right).predict(raw)
    >>> expected_calibration_error(raw, right) > 0.1, expected_calibration_error(calibrated, right) < 0.03
    (True, True)
    """

    def __init__(
        self,
        method: CalibrationMethod = "smooth",
        features: Sequence[str] = ("confidence",),
        clip: float = 1e-9,
        prior_strength: float = 10.0,
        C: float = 100.0,
        per_answer_count: bool = False,
    ) -> None:
        self.method = method
        self.features = features
        self.clip = clip
        self.prior_strength = prior_strength
        self.C = C
        self.per_answer_count = per_answer_count

    def _check_params(self) -> None:
        if self.method not in ("smooth", "platt", "isotonic"):
            raise ConfigError(f"unknown calibration method {self.method!r}; use 'smooth', 'platt' or 'isotonic'")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ConfigError(f"unknown calibration feature {unknown[0]!r}; use some of: {', '.join(FEATURES)}")
        if not 0 < self.clip < 0.5:
            raise ConfigError(f"clip must be in (0, 0.5), got {self.clip!r}")
        if not self.prior_strength >= 0:
            raise ConfigError(f"prior_strength must be >= 0, got {self.prior_strength!r}")
        if not self.C > 0:
            raise ConfigError(f"C must be > 0, got {self.C!r}")
        if self.per_answer_count and ("n_answers" not in self.features or self.method == "platt"):
            raise ConfigError("per_answer_count needs the 'n_answers' feature and a monotone method")

    def _design(self, confidence: np.ndarray, n_answers: np.ndarray | None, margin: np.ndarray | None) -> np.ndarray:
        c = np.clip(np.asarray(confidence, dtype=np.float64).ravel(), self.clip, 1 - self.clip)
        columns = [np.log(c) - np.log1p(-c)]
        for name, values in (("n_answers", n_answers), ("margin", margin)):
            if name not in self.features:
                continue
            if values is None:
                raise ConfigError(f"the calibrator uses feature {name!r}: pass {name}=")
            values = np.asarray(values, dtype=np.float64).ravel()
            columns.append(np.log1p(values) if name == "n_answers" else values)
        return np.column_stack(columns)

    def fit(
        self,
        confidence: np.ndarray | Sequence[float],
        correct: np.ndarray | Sequence[bool],
        *,
        n_answers: np.ndarray | None = None,
        margin: np.ndarray | None = None,
    ) -> TopLabelCalibrator:
        """Fit on gold items: raw top-label ``confidence`` and whether the top label was ``correct``.

        Needs at least two gold items with both outcomes (a right and a wrong top label): with only
        right ones nothing says how often a confident label is wrong, and any fitted curve would be
        made up.
        """
        self._check_params()
        confidence, y = _check_pair(confidence, correct)
        n, right = len(y), int(y.sum())
        if n < 2:
            raise InputError(
                f"calibration needs gold items; got {n}", source="gold", hint="Add gold (true labels) for more items."
            )
        if right in (0, n):
            raise InputError(
                f"all {n} gold items are {'right' if right else 'wrong'}: nothing to calibrate against",
                source="gold",
                hint="Calibration needs gold items with both right and wrong top labels; add gold for more items.",
            )
        x = self._design(confidence, n_answers, margin)
        self.mean_, self.scale_ = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-12)
        z = (x - self.mean_) / self.scale_
        # Platt's smoothed targets as sample weights: each item appears as right (weight t) and wrong.
        target = np.where(y > 0, (right + 1.0) / (right + 2.0), 1.0 / (n - right + 2.0))
        self.platt_ = LogisticRegression(C=self.C, max_iter=1000).fit(
            np.vstack([z, z]), np.r_[np.ones(n), np.zeros(n)], sample_weight=np.r_[target, 1.0 - target]
        )
        self.coef_, self.intercept_ = self.platt_.coef_[0], float(self.platt_.intercept_[0])
        self.isotonic_ = None
        if self.method != "platt":
            score = self._curve_score(z)
            platt = self._platt(z)
            self.isotonic_, curve = self._monotone_curve(score, y, platt)
            self.curve_x_, self.curve_y_, self.evidence_scores_, self.evidence_ = curve
            curves, evidence = [], []
            if self.per_answer_count:
                count = np.asarray(n_answers, dtype=np.float64).ravel()
                values, sizes = np.unique(count, return_counts=True)
                for value in values[sizes >= MIN_STRATUM]:
                    mine = count == value
                    _, (x, fitted, scores, behind) = self._monotone_curve(score[mine], y[mine], platt[mine])
                    curves.append(np.column_stack([np.full(len(x), value), x, fitted]))
                    evidence.append(np.column_stack([np.full(len(scores), value), scores, behind]))
            self.strata_curves_ = np.vstack(curves) if curves else np.empty((0, 3))
            self.strata_evidence_ = np.vstack(evidence) if evidence else np.empty((0, 3))
        self.n_gold_, self.n_right_ = n, right
        self._curve_cache = None
        return self

    def _monotone_curve(
        self, score: np.ndarray, y: np.ndarray, platt: np.ndarray
    ) -> tuple[IsotonicRegression, tuple[np.ndarray, ...]]:
        """The isotonic fit of ``y`` on ``score`` (for ``"smooth"`` each block shrunk toward the mean
        ``platt`` probability of its gold and made monotone again), and the curve as arrays: its
        thresholds and values, and the gold scores in order with the gold behind each one's step
        (for ``predict(quantile=...)``)."""
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, y)
        if self.method == "smooth":
            _, block = np.unique(np.round(iso.predict(score), 12), return_inverse=True)
            size = np.bincount(block)
            prior = np.bincount(block, weights=platt) / size
            shrunk = (np.bincount(block, weights=y) + self.prior_strength * prior) / (size + self.prior_strength)
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, shrunk[block])
        order = np.argsort(score, kind="stable")
        # a step is a run of equal values (rounded: the fit's last bits depend on the gold's order)
        _, step = np.unique(np.round(iso.predict(score[order]), 12), return_inverse=True)
        evidence = np.bincount(step)[step] + (self.prior_strength if self.method == "smooth" else 0.0)
        return iso, (iso.X_thresholds_, iso.y_thresholds_, score[order], evidence)

    _FITTED = ("mean_", "scale_", "coef_", "intercept_", "curve_x_", "curve_y_", "evidence_scores_", "evidence_",
               "strata_curves_", "strata_evidence_", "n_gold_", "n_right_")  # fmt: skip

    def to_dict(self) -> dict:
        """The fitted calibrator as plain data (JSON): its parameters and the fitted arrays."""
        if not hasattr(self, "coef_"):
            raise ConfigError("the calibrator is not fitted; call fit() on gold items first")
        fitted = {name: getattr(self, name) for name in self._FITTED if hasattr(self, name)}
        return {
            "params": {**self.get_params(), "features": list(self.features)},
            "fitted": {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in fitted.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> TopLabelCalibrator:
        """A calibrator from ``to_dict``'s data (no code is loaded: numbers only)."""
        try:
            calibrator = cls(**{**data["params"], "features": tuple(data["params"]["features"])})
            calibrator._check_params()
            for name, value in data["fitted"].items():
                if name not in cls._FITTED:
                    raise ConfigError(f"unknown fitted attribute {name!r}")
                setattr(calibrator, name, value if name in ("intercept_", "n_gold_", "n_right_")
                        else np.asarray(value, dtype=np.float64))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a stored calibrator: {exc}") from exc
        return calibrator

    def _score(self, z: np.ndarray) -> np.ndarray:
        """The logistic model's log-odds $w^\top z + b$ (its ``decision_function``, without the
        input checks that cost more than the product for one item)."""
        return z @ self.coef_ + self.intercept_

    def _curve_score(self, z: np.ndarray) -> np.ndarray:
        """What the monotone curve is a function of: the Platt score (``"smooth"``) or the logit of
        the confidence (``"isotonic"``), rounded to 1e-9 so that states equal but for the order their
        sums were taken in tie exactly (and the fit does not depend on the order of the gold)."""
        return np.round(self._score(z) if self.method == "smooth" else z[:, 0], 9)

    def _platt(self, z: np.ndarray) -> np.ndarray:
        return expit(self._score(z))

    def predict(
        self,
        confidence: np.ndarray | Sequence[float],
        *,
        n_answers: np.ndarray | None = None,
        margin: np.ndarray | None = None,
        quantile: float | None = None,
        pooled: bool = False,
    ) -> np.ndarray:
        """Calibrated probability that the top label is right, per item.

        ``pooled``: the pooled curve even where an answer count has its own (``per_answer_count``),
        for states unlike the gold states the per-count curves were fitted on.

        With ``quantile`` (e.g. 0.2), a cautious value instead of the estimate: that quantile of
        the Beta posterior of the accuracy $p$ of items like this one, given the $n$ gold items
        behind its step of the curve, $\\mathrm{Beta}(p n + \frac12, (1 - p) n + \frac12)$. With
        much gold it is the estimate; with little, lower, so a decision to stop at a target holds
        even where the calibration rests on a few dozen gold items.

        Beyond the highest score the gold reached (gold items answered fewer times than the items
        being decided, say) the curve is extrapolated monotonically along the Platt curve $P$: from
        the last step $(x_T, y_T)$, $y = y_T + (1 - y_T) (P(s) - P(x_T)) / (1 - P(x_T))$ with
        $P(s) = \\sigma(s)$ of the score $s$ (for ``"smooth"`` the Platt probability), so more
        agreeing answers keep raising the confidence towards 1 instead of stopping at the last
        step."""
        if not hasattr(self, "coef_"):
            raise ConfigError("the calibrator is not fitted; call fit() on gold items first")
        z = (self._design(confidence, n_answers, margin) - self.mean_) / self.scale_
        if self.method == "platt":
            calibrated, evidence = self._platt(z), np.full(len(z), float(self.n_gold_))
            return calibrated if quantile is None else _cautious(calibrated, evidence, quantile)
        score = self._curve_score(z)
        pooled_curve, own_curves = self._curves()
        calibrated = pooled_curve.at(score, quantile)
        if own_curves and not pooled:
            count = np.asarray(n_answers, dtype=np.float64).ravel()
            for value in np.intersect1d(list(own_curves), count):
                mine = count == value
                calibrated[mine] = own_curves[float(value)].at(score[mine], quantile)
        return calibrated

    def _curves(self) -> tuple[MonotoneCurve, dict[float, MonotoneCurve]]:
        """The pooled curve and each answer count's (``per_answer_count``), built once per fit: their
        cautious floors are computed on the first decision that asks and kept."""
        if getattr(self, "_curve_cache", None) is None:
            pooled = MonotoneCurve(self.curve_x_, self.curve_y_, self.evidence_scores_, self.evidence_)
            strata = getattr(self, "strata_curves_", np.empty((0, 3)))
            behind = getattr(self, "strata_evidence_", np.empty((0, 3)))
            own = {
                float(value): MonotoneCurve(*strata[strata[:, 0] == value, 1:].T, *behind[behind[:, 0] == value, 1:].T)
                for value in np.unique(strata[:, 0])
            }
            self._curve_cache = (pooled, own)
        return self._curve_cache

    def predict_frame(self, features: pd.DataFrame) -> np.ndarray:
        """``predict`` on a frame with columns ``confidence`` (and ``n_answers``, ``margin``)."""
        return self.predict(
            features["confidence"].to_numpy(),
            n_answers=features["n_answers"].to_numpy() if "n_answers" in features else None,
            margin=features["margin"].to_numpy() if "margin" in features else None,
        )

    def fit_frame(self, features: pd.DataFrame, correct: np.ndarray | pd.Series) -> TopLabelCalibrator:
        """``fit`` on a frame with columns ``confidence`` (and ``n_answers``, ``margin``)."""
        return self.fit(
            features["confidence"].to_numpy(),
            np.asarray(correct),
            n_answers=features["n_answers"].to_numpy() if "n_answers" in features else None,
            margin=features["margin"].to_numpy() if "margin" in features else None,
        )


@dataclass
class MonotoneCurve:
    """A fitted monotone calibration curve: its thresholds ``x`` and values ``y``, and the gold
    scores in order with the gold behind each one's step (``evidence``). ``floors`` keeps the
    cautious floor per quantile (``cautious_floor``): it depends on the gold alone, and computing
    it over every gold state on each decision cost the service most of a submit's time."""

    x: np.ndarray
    y: np.ndarray
    gold_scores: np.ndarray
    evidence: np.ndarray
    floors: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

    def at(self, score: np.ndarray, quantile: float | None) -> np.ndarray:
        """The curve at ``score``: its estimate, or with ``quantile`` its cautious value
        (``TopLabelCalibrator.predict``), extrapolated beyond the last step along the score."""
        # the fitted step function itself (IsotonicRegression.predict interpolates the same thresholds,
        # after input checks that cost more than the lookup for one item)
        calibrated = np.interp(score, self.x, self.y)
        x_top, y_top = self.x[-1], self.y[-1]
        if quantile is not None:
            behind = self.evidence[np.clip(np.searchsorted(self.gold_scores, score), 0, len(self.evidence) - 1)]
            floor = self.cautious_floor(quantile)
            below = np.searchsorted(self.gold_scores, score, side="right") - 1  # gold at or below
            proven = np.where(below >= 0, floor[np.maximum(below, 0)], 0.0)
            calibrated = np.maximum(_cautious(calibrated, behind, quantile), proven)
            y_top = float(floor[-1])
        beyond = score > x_top
        if beyond.any():  # from the (cautious) last step towards 1 along the score
            platt, platt_top = expit(score[beyond]), float(expit(x_top))
            lift = np.clip((platt - platt_top) / max(1 - platt_top, 1e-12), 0.0, 1.0)
            calibrated[beyond] = np.maximum(calibrated[beyond], y_top + (1 - y_top) * lift)
        return calibrated

    def cautious_floor(self, quantile: float) -> np.ndarray:
        """At each gold score (in order), the highest cautious value of the steps at or below it.
        The curve assumes accuracy rises with the score, so what a step's gold proves holds above
        it too: a small step above a large one (wider interval) never claims less than the large
        one proved, and more agreeing answers never lower the cautious confidence."""
        if quantile not in self.floors:
            steps = np.interp(self.gold_scores, self.x, self.y)
            self.floors[quantile] = np.maximum.accumulate(_cautious(steps, self.evidence, quantile))
        return self.floors[quantile]


def _cautious(calibrated: np.ndarray, evidence: np.ndarray, quantile: float) -> np.ndarray:
    """The ``quantile`` of $\\mathrm{Beta}(p n + \\frac12, (1 - p) n + \\frac12)$: the accuracy $p$
    as far as $n$ gold items support it."""
    return betaincinv(calibrated * evidence + 0.5, (1 - calibrated) * evidence + 0.5, quantile)


# --------------------------------------------------------------------------------------------------
# cross-fitting


def _gold_series(gold: Mapping[Hashable, Hashable] | pd.Series | None) -> pd.Series:
    if gold is None:
        return pd.Series(dtype=object)
    return gold if isinstance(gold, pd.Series) else pd.Series(dict(gold), dtype=object)


def _folds(n: int, n_folds: int, random_state: int | np.random.Generator | None) -> np.ndarray:
    """Fold of each of ``n`` items: a random permutation dealt round-robin (sizes differ by <= 1)."""
    folds = np.empty(n, dtype=np.int32)
    folds[np.random.default_rng(random_state).permutation(n)] = np.arange(n) % n_folds
    return folds


def cross_fitted_confidence(
    aggregator: Aggregator,
    answers: Answers | pd.DataFrame,
    gold: Mapping[Hashable, Hashable] | pd.Series,
    n_folds: int = 5,
    random_state: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Honest raw confidences for gold items: for each of ``n_folds`` folds of the gold, refit a
    clone of ``aggregator`` with the other folds clamped and this fold's items free, and read this
    fold's posteriors.

    Returns a frame indexed by the gold tasks with ``truth``, ``label`` (the predicted label),
    ``confidence``, ``margin``, ``n_answers``, ``correct`` and ``fold``. Costs ``n_folds`` fits.
    Fewer than 2 gold items is an ``InputError``; with fewer gold items than folds, one fold per item.
    """
    answers = as_answers(answers)
    gold = _gold_series(gold)
    items, truth = answers.encode_gold(gold)
    if len(items) < 2:
        raise InputError(
            f"cross-fitting needs at least 2 gold items; got {len(items)}",
            source="gold",
            hint="Add gold (true labels) for more items.",
        )
    if pd.Index(items).duplicated().any():
        raise InputError("an item is gold twice", source="gold")
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ConfigError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    n_folds = min(n_folds, len(items))
    folds = _folds(len(items), n_folds, random_state)
    counts = answers_per_item(answers)
    parts = []
    for f in range(n_folds):
        held = folds == f
        model = clone(aggregator).fit(answers, gold.iloc[~held])
        features = top_label_features(model.posterior_, counts).iloc[items[held]]
        parts.append(features.assign(fold=f, truth=truth[held]).set_index(answers.items[items[held]]))
    frame = pd.concat(parts).reindex(answers.items[items])
    frame["correct"] = frame["label"].to_numpy() == frame["truth"].to_numpy()
    decode = answers.labels.decode
    frame["truth"] = decode(frame["truth"].to_numpy())
    frame["label"] = np.where(frame["label"] >= 0, decode(np.maximum(frame["label"].to_numpy(), 0)), None)
    frame.index.name = "task"
    return frame[["truth", "label", "confidence", "margin", "n_answers", "correct", "fold"]]


def recalibrate(posterior: Posterior, confidence: np.ndarray) -> Posterior:
    r"""The posterior with each item's top-label probability replaced by ``confidence`` and the other
    labels rescaled to share $1 - c$ in their old proportions.

    The top label stays the most probable: $c$ is raised to just above $1/K$, and when a rescaled
    label would overtake the top one the rest is blended toward uniform over the other labels
    (dense) or capped just below $c$ (sparse). A dense row whose other labels had no mass spreads
    $1 - c$ uniformly; a sparse one keeps only its stored labels (the row sums to less than 1: the
    remainder belongs to labels the sparse posterior does not store). Empty rows stay empty.
    """
    n_items, k = posterior.shape
    top = posterior.labels()
    old = posterior.confidence()
    has = top >= 0
    # at least 1/K, and just above it, so that the others' uniform share stays below c
    floor = 1.0 / (1.0 + (k - 1) * (1 - _TIE_SHRINK))
    c = np.where(has, np.clip(np.asarray(confidence, dtype=np.float64), floor, 1.0), 0.0)
    cap = c * (1 - _TIE_SHRINK)
    if posterior.is_sparse:
        probs = posterior.probs.tocsr(copy=True)
        row = np.repeat(np.arange(n_items), np.diff(probs.indptr))
        is_top = probs.indices == top[row]
        scale = np.divide(1 - c, 1 - old, out=np.zeros(n_items), where=old < 1)
        probs.data = np.where(is_top, c[row], np.minimum(probs.data * scale[row], cap[row]))
        probs.eliminate_zeros()
        return Posterior(probs)
    probs = np.array(posterior.probs, dtype=np.float64)
    rows = np.flatnonzero(has)
    rest = probs[rows]
    rest[np.arange(len(rows)), top[rows]] = 0.0
    if k == 1:
        return Posterior(probs)
    uniform = 1.0 / (k - 1)
    total = rest.sum(axis=1)
    q = np.divide(rest, total[:, None], out=np.full_like(rest, uniform), where=total[:, None] > 0)
    q[np.arange(len(rows)), top[rows]] = 0.0
    q /= q.sum(axis=1, keepdims=True)
    peak = q.max(axis=1)
    cr = c[rows]
    limit = np.divide(cap[rows], 1 - cr, out=np.full(len(rows), np.inf), where=cr < 1)
    lam = np.clip(np.divide(limit - uniform, peak - uniform, out=np.ones(len(rows)), where=peak > uniform), 0, 1)
    blended = lam[:, None] * q + (1 - lam[:, None]) * uniform
    blended[np.arange(len(rows)), top[rows]] = 0.0
    new = (1 - cr)[:, None] * blended
    new[np.arange(len(rows)), top[rows]] = cr
    probs[rows] = new
    return Posterior(probs)


# --------------------------------------------------------------------------------------------------
# the wrapper


class CalibratedAggregator(Aggregator):
    r"""Any aggregator with its top-label confidence calibrated on gold.

    ``fit(data, true_labels)``: (1) fits a clone of ``aggregator`` with all gold clamped
    (``base_``); (2) cross-fits it (``cross_fitted_confidence``) for honest raw confidences of the
    gold items; (3) fits ``calibrator`` on them; (4) replaces every non-gold item's top-label
    probability by the calibrated one (``recalibrate``). Gold items stay clamped (confidence 1).
    Costs ``n_folds + 1`` fits of the base aggregator.

    Fitted: ``labels_`` (the base's labels), ``probas_`` and ``posterior_`` (recalibrated),
    ``confidence_`` (calibrated top-label probability, Series task -> float), ``raw_confidence_``,
    ``base_``, ``calibrator_``, ``cross_fitted_`` (the gold frame with ``calibrated``: out-of-fold
    calibrated confidence, the calibrator refitted without the item's fold), ``reliability_before_``
    and ``reliability_after_`` (reliability tables of the cross-fitted gold, raw and out-of-fold
    calibrated), ``ece_before_``, ``ece_after_``, ``skills_`` (the base's, when it has them).

    >>> import pandas as pd
    >>> from crowdloop.aggregation import MajorityVote
    >>> df = pd.DataFrame({"task": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5], "worker": list("ababababab"),
    ...                    "label": list("xxxyyyyxxx")})
    >>> model = CalibratedAggregator(MajorityVote(), n_folds=2).fit(df, {1: "x", 2: "y", 3: "y", 4: "x"})
    >>> model.labels_.tolist(), model.confidence_[1]
    (['x', 'y', 'y', 'x', 'x'], np.float64(1.0))
    """

    def __init__(
        self,
        aggregator: Aggregator | None = None,
        calibrator: TopLabelCalibrator | None = None,
        n_folds: int = 5,
        random_state: int | None = 0,
        n_bins: int = 15,
        strategy: BinStrategy = "uniform",
    ) -> None:
        self.aggregator = aggregator
        self.calibrator = calibrator
        self.n_folds = n_folds
        self.random_state = random_state
        self.n_bins = n_bins
        self.strategy = strategy

    def fit(self, data: Answers | pd.DataFrame, true_labels: TrueLabels = None) -> CalibratedAggregator:
        """Fit the base aggregator and the calibrator on ``true_labels`` (gold: task -> label)."""
        super().fit(data, true_labels)
        self.labels_ = self.base_.labels_.copy()
        return self

    def _base(self) -> Aggregator:
        if self.aggregator is not None:
            return self.aggregator
        from crowdloop.aggregation.dawid_skene import DawidSkene

        return DawidSkene()

    def _fit(self, answers: Answers, gold: Gold) -> Posterior:
        if len(gold) == 0:
            raise InputError(
                "calibration needs gold; got none",
                source="gold",
                hint="Pass true_labels (task -> label) for some items, e.g. honeypots or expert reviews.",
            )
        gold_series = pd.Series(answers.labels.decode(gold.labels), index=answers.items[gold.items], dtype=object)
        base = clone(self._base()).fit(answers, gold_series)
        cross = cross_fitted_confidence(base, answers, gold_series, self.n_folds, self.random_state)
        calibrator = clone(self.calibrator) if self.calibrator is not None else TopLabelCalibrator()
        features = cross[[c for c in ("confidence", "n_answers", "margin")]]
        calibrator.fit_frame(features, cross["correct"].to_numpy())
        out_of_fold = np.empty(len(cross))
        for f in np.unique(cross["fold"]):
            held = (cross["fold"] == f).to_numpy()
            try:
                part = clone(calibrator).fit_frame(features[~held], cross["correct"].to_numpy()[~held])
                out_of_fold[held] = part.predict_frame(features[held])
            except InputError:  # the other folds are all right (or all wrong): use the full fit
                out_of_fold[held] = calibrator.predict_frame(features[held])
        cross["calibrated"] = out_of_fold
        raw = top_label_features(base.posterior_, answers_per_item(answers))
        calibrated = calibrator.predict_frame(raw)
        calibrated[gold.items] = 1.0
        calibrated[raw["label"].to_numpy() < 0] = 0.0
        posterior = recalibrate(base.posterior_, calibrated)

        self.base_ = base
        self.calibrator_ = calibrator
        self.cross_fitted_ = cross
        correct = cross["correct"].to_numpy()
        opts = {"n_bins": self.n_bins, "strategy": self.strategy}
        self.reliability_before_ = reliability_table(cross["confidence"].to_numpy(), correct, **opts)
        self.reliability_after_ = reliability_table(out_of_fold, correct, **opts)
        self.ece_before_ = expected_calibration_error(cross["confidence"].to_numpy(), correct, **opts)
        self.ece_after_ = expected_calibration_error(out_of_fold, correct, **opts)
        items = answers.items.rename("task")
        self.raw_confidence_ = pd.Series(raw["confidence"].to_numpy(), index=items, name="raw_confidence")
        self.confidence_ = pd.Series(posterior.confidence(), index=items, name="confidence")
        if hasattr(base, "skills_"):
            self.skills_ = base.skills_
        return posterior
