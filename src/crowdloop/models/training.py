"""Training sets for retraining: gold + accepted consensus labels + pseudo-labels, real and synthetic.

A training set is a frame with one row per item: ``item``, ``text``, ``label``, ``weight`` (the
``sample_weight`` of the fit), ``source`` (``gold``, ``accepted`` or ``pseudo``; an item takes the
label of the first source that has it, in that order) and ``synthetic`` (generated items, e.g. by
templates or a language model, which may train the model but never grade it).

Pseudo-labels (Lee, ICML-W 2013; self-training, Yarowsky 1995): the model's own label on an
unlabeled item whose confidence reaches a threshold, added with a weight below 1 (by default
its confidence), so that a wrong pseudo-label costs less than a wrong human label.

``evaluate`` is the one place metrics are computed for a training set, and it drops synthetic
items: a model is never graded on data made to look like what it learned.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from crowdloop.aggregation.calibration import expected_calibration_error
from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import LabelSpace
from crowdloop.models.protocol import ProbabilisticClassifier, fit_model, predict_aligned

SOURCES: tuple[str, ...] = ("gold", "accepted", "pseudo")
COLUMNS: tuple[str, ...] = ("item", "text", "label", "weight", "source", "synthetic")


def _series(values: Mapping | pd.Series | None, name: str) -> pd.Series:
    if values is None:
        return pd.Series(dtype=object)
    series = values if isinstance(values, pd.Series) else pd.Series(dict(values), dtype=object)
    series.index = series.index.astype(str)
    if series.index.duplicated().any():
        raise InputError(f"item {series.index[series.index.duplicated()][0]!r} is listed twice", source=name)
    missing = series.isna().to_numpy()
    if missing.any():
        raise InputError(f"item {series.index[missing][0]!r} has no label", source=name)
    return series


def pseudo_labels(
    probs: np.ndarray, classes: Sequence[Hashable] | np.ndarray, items: Sequence[Hashable], threshold: float
) -> pd.DataFrame:
    """The model's top label and confidence for the items whose confidence is at least ``threshold``
    (a frame indexed by item with ``label`` and ``confidence``)."""
    if not 0 < threshold <= 1:
        raise ConfigError(f"the pseudo-label threshold must be in (0, 1], got {threshold!r}")
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    keep = confidence >= threshold
    labels = np.asarray(classes, dtype=object)[probs.argmax(axis=1)]
    index = pd.Index(np.asarray(items, dtype=object)[keep]).astype(str)
    return pd.DataFrame({"label": labels[keep], "confidence": confidence[keep]}, index=index)


def training_set(
    texts: Mapping[Hashable, str] | pd.Series,
    *,
    gold: Mapping | pd.Series | None = None,
    accepted: Mapping | pd.Series | None = None,
    pseudo: pd.DataFrame | None = None,
    pseudo_weight: float | None = None,
    synthetic: Mapping | pd.Series | Sequence[Hashable] | None = None,
) -> pd.DataFrame:
    """One row per labelled item (see the module docstring). ``texts`` maps every item to its text;
    ``pseudo`` is ``pseudo_labels``' frame, weighted by ``pseudo_weight`` or, when None, by each
    item's confidence; ``synthetic`` lists the synthetic items (or maps items to a flag)."""
    texts = _series(texts, "texts")
    parts = []
    for source, labels in (("gold", _series(gold, "gold")), ("accepted", _series(accepted, "accepted"))):
        parts.append(pd.DataFrame({"label": labels.to_numpy(dtype=object), "weight": 1.0, "source": source},
                                  index=labels.index))  # fmt: skip
    if pseudo is not None and len(pseudo):
        if not {"label", "confidence"} <= set(pseudo.columns):
            raise InputError("pseudo-labels need columns label and confidence", source="pseudo")
        if pseudo_weight is not None and not 0 < pseudo_weight <= 1:
            raise ConfigError(f"pseudo_weight must be in (0, 1], got {pseudo_weight!r}")
        weight = pseudo["confidence"].to_numpy(np.float64) if pseudo_weight is None else pseudo_weight
        parts.append(pd.DataFrame({"label": pseudo["label"].to_numpy(dtype=object), "weight": weight,
                                   "source": "pseudo"}, index=pseudo.index.astype(str)))  # fmt: skip
    frame = pd.concat(parts)
    frame = frame[~frame.index.duplicated(keep="first")]  # gold, then accepted, then pseudo
    if frame.empty:
        raise InputError("no labelled items", hint="Give gold, accepted consensus labels or pseudo-labels.")
    unknown = ~frame.index.isin(texts.index)
    if unknown.any():
        raise InputError(
            f"item {frame.index[unknown][0]!r} has a label but no text", source=frame["source"][unknown].iloc[0]
        )
    if synthetic is None:
        flags = pd.Series(False, index=frame.index)
    elif isinstance(synthetic, Mapping | pd.Series):
        flags = _series(synthetic, "synthetic").astype(bool).reindex(frame.index, fill_value=False)
    else:
        flags = pd.Series(frame.index.isin(pd.Index(list(synthetic)).astype(str)), index=frame.index)
    frame = frame.assign(text=texts.reindex(frame.index).to_numpy(dtype=object), synthetic=flags.to_numpy(bool))
    return frame.rename_axis("item").reset_index()[list(COLUMNS)]


def mix_synthetic(frame: pd.DataFrame, ratio: float, random_state: int | None = 0) -> pd.DataFrame:
    """Every real row and a random sample of synthetic rows making up a share ``ratio`` of the result
    (0 = real only); too few synthetic rows for that share is a ``ConfigError``."""
    if "synthetic" not in frame.columns:
        raise InputError("the training set has no 'synthetic' column", hint="Mark which items are synthetic.")
    if not 0 <= ratio < 1:
        raise ConfigError(f"the synthetic ratio must be in [0, 1), got {ratio!r}")
    synthetic = frame["synthetic"].to_numpy(bool)
    n_real = int((~synthetic).sum())
    wanted = round(ratio / (1 - ratio) * n_real)
    if wanted > synthetic.sum():
        raise ConfigError(f"a synthetic share of {ratio:g} next to {n_real} real items needs {wanted} synthetic "
                          f"items; there are {int(synthetic.sum())}")  # fmt: skip
    rng = np.random.default_rng(random_state)
    chosen = rng.choice(np.flatnonzero(synthetic), size=wanted, replace=False)
    keep = ~synthetic
    keep[chosen] = True
    return frame[keep].reset_index(drop=True)


def train(model: ProbabilisticClassifier, frame: pd.DataFrame) -> ProbabilisticClassifier:
    """A clone of ``model`` fitted on a training set's texts, labels and weights."""
    return fit_model(clone(model), frame["text"].to_numpy(object), frame["label"].to_numpy(object),
                     frame["weight"].to_numpy(np.float64))  # fmt: skip


def evaluate(model: ProbabilisticClassifier, frame: pd.DataFrame, n_bins: int = 15) -> dict[str, float]:
    """``evaluate_proba`` of a fitted model's probabilities on ``frame``'s real items."""
    real = _real(frame)
    labels = LabelSpace.from_values(np.r_[real["label"].to_numpy(object), np.asarray(model.classes_, dtype=object)])
    probs = predict_aligned(model, real["text"].to_numpy(object), labels)
    return _metrics(probs, labels.encode(real["label"].to_numpy(object)), len(frame) - len(real), n_bins)


def evaluate_proba(probs: np.ndarray, labels: LabelSpace, frame: pd.DataFrame, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, ECE (top label, ``n_bins`` uniform bins) and counts of probabilities ``probs`` (one row
    per row of ``frame``, columns on ``labels``) on the *real* items of ``frame`` (columns ``label``,
    ``synthetic``): the synthetic ones are left out. A frame without the ``synthetic`` column, or
    with no real item, is an ``InputError``."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) != len(frame):
        raise InputError(f"{len(probs)} rows of probabilities for {len(frame)} items")
    real = _real(frame)
    keep = ~frame["synthetic"].to_numpy(bool)
    return _metrics(probs[keep], labels.encode(real["label"].to_numpy(object)), len(frame) - len(real), n_bins)


def _real(frame: pd.DataFrame) -> pd.DataFrame:
    if "synthetic" not in frame.columns:
        raise InputError("cannot evaluate: the frame has no 'synthetic' column",
                         hint="Mark synthetic items (False for real ones); metrics count real items only.")  # fmt: skip
    real = frame[~frame["synthetic"].to_numpy(bool)]
    if real.empty:
        raise InputError("cannot evaluate: every item is synthetic", hint="Metrics need real items.")
    return real


def _metrics(probs: np.ndarray, truth: np.ndarray, n_left_out: int, n_bins: int) -> dict[str, float]:
    correct = probs.argmax(axis=1) == truth
    return {
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(probs.max(axis=1), correct, n_bins=n_bins),
        "n_real": len(truth),
        "n_synthetic_left_out": n_left_out,
    }
