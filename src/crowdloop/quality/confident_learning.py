r"""Confident learning: label errors from out-of-fold probabilities (Northcutt, Jiang & Chuang, JAIR 2021).

Given labels $\tilde y_i$ and cross-fitted probabilities $\hat p_{ik}$ (a model that never saw item
$i$'s label, e.g. ``crowdloop.models.out_of_fold_proba``):

- *per-class thresholds*: $t_k = \frac{1}{|\{i: \tilde y_i = k\}|} \sum_{i: \tilde y_i = k} \hat p_{ik}$,
  the mean self-confidence of the items labelled $k$ (a class the model is timid about gets a low bar);
- *confident joint*: item $i$ is counted in cell $(\tilde y_i, k^*_i)$ with
  $k^*_i = \arg\max_{k:\ \hat p_{ik} \ge t_k} \hat p_{ik}$ (items above no threshold are not counted);
  calibrated so that row $j$ sums to the number of items labelled $j$ and the total to $n$;
- *pruning*: ``"confident_learning"`` flags the off-diagonal items of the joint; ``"prune_by_class"``
  flags, for each class $j$, the $\sum_{k \ne j} C_{jk}$ items labelled $j$ with the lowest
  self-confidence; ``"prune_by_noise_rate"`` flags, for each off-diagonal cell, the $C_{jk}$ items
  labelled $j$ with the largest margin $\hat p_{ik} - \hat p_{ij}$; ``"both"`` the intersection of the
  last two. Items the model predicts as their given label are never flagged by the pruning rules.

Scores rank the review: ``"self_confidence"`` $\hat p_{i\tilde y_i}$, ``"normalized_margin"``
$\hat p_{i\tilde y_i} - \max_{k \ne \tilde y_i} \hat p_{ik}$ (mapped to [0, 1]), ``"combined"``
their mean. A low score means a likely error.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from crowdloop.errors import ConfigError, InputError

Filter = Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning"]
FILTERS: tuple[str, ...] = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning")
Score = Literal["self_confidence", "normalized_margin", "combined"]
SCORES: tuple[str, ...] = ("self_confidence", "normalized_margin", "combined")
PROBABILITY_TOLERANCE = 1e-3


def check_labels_probs(labels: Sequence[int] | np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer labels in ``0..K-1`` and an (n, K) array of rows summing to 1, or ``InputError``."""
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] < 2:
        raise InputError(f"pred_probs must be an (n, K >= 2) array, got shape {probs.shape}", source="pred_probs")
    codes = np.asarray(labels).ravel()
    if len(codes) != probs.shape[0]:
        raise InputError(f"{len(codes)} labels but {probs.shape[0]} probability rows", source="labels")
    if not np.issubdtype(codes.dtype, np.integer):
        raise InputError("labels must be integer codes 0..K-1", source="labels", hint="Encode them with a LabelSpace.")
    bad = np.flatnonzero((codes < 0) | (codes >= probs.shape[1]))
    if bad.size:
        raise InputError(f"label outside 0..{probs.shape[1] - 1}", source="labels", rows=(bad + 1).tolist(), unit="row")
    off = (
        ~np.isfinite(probs).all(axis=1)
        | (probs < 0).any(axis=1)
        | (np.abs(probs.sum(axis=1) - 1) > PROBABILITY_TOLERANCE)
    )
    if off.any():
        rows = (np.flatnonzero(off) + 1).tolist()
        raise InputError("probabilities must be non-negative and sum to 1", source="pred_probs", rows=rows, unit="row")
    return codes.astype(np.intp), probs


def per_class_thresholds(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """$t_k$: the mean of $\\hat p_{ik}$ over the items labelled $k$ (``inf`` for a class nobody has,
    so that no item is confidently counted in it).

    >>> per_class_thresholds(np.array([0, 0, 1]), np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]))
    array([0.7, 0.8])
    """
    labels, probs = check_labels_probs(labels, pred_probs)
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    sums = np.bincount(labels, weights=probs[np.arange(len(labels)), labels], minlength=k)
    return np.divide(sums, counts, out=np.full(k, np.inf), where=counts > 0)


def confident_assignment(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """$k^*_i$: the most probable class among those whose threshold item $i$ reaches (-1: none)."""
    labels, probs = check_labels_probs(labels, pred_probs)
    above = probs >= per_class_thresholds(labels, probs)[None, :] - 1e-12
    masked = np.where(above, probs, -1.0)
    best = masked.argmax(axis=1)
    return np.where(above.any(axis=1), best, -1)


def confident_joint(labels: np.ndarray, pred_probs: np.ndarray, *, calibrate: bool = True) -> np.ndarray:
    """The (K, K) confident joint $C_{\\tilde y, y^*}$ (rows: given label, columns: likely true label).

    Calibrated (the default): each row rescaled to the number of items with that given label."""
    labels, probs = check_labels_probs(labels, pred_probs)
    k = probs.shape[1]
    assigned = confident_assignment(labels, probs)
    counted = assigned >= 0
    joint = np.bincount(labels[counted] * k + assigned[counted], minlength=k * k).reshape(k, k).astype(np.float64)
    if not calibrate:
        return joint
    label_counts = np.bincount(labels, minlength=k).astype(np.float64)
    row = joint.sum(axis=1)
    return joint * np.divide(label_counts, row, out=np.zeros(k), where=row > 0)[:, None]


def label_quality_scores(labels: np.ndarray, pred_probs: np.ndarray, score: Score = "normalized_margin") -> np.ndarray:
    """Per item a score in [0, 1]: low means the given label is likely wrong (see the module doc)."""
    if score not in SCORES:
        raise ConfigError(f"unknown score {score!r}; use one of {', '.join(SCORES)}")
    labels, probs = check_labels_probs(labels, pred_probs)
    rows = np.arange(len(labels))
    self_conf = probs[rows, labels]
    if score == "self_confidence":
        return self_conf
    others = probs.copy()
    others[rows, labels] = -np.inf
    margin = (self_conf - others.max(axis=1) + 1.0) / 2.0
    return margin if score == "normalized_margin" else (self_conf + margin) / 2.0


def find_label_errors(
    labels: Sequence[int] | np.ndarray,
    pred_probs: np.ndarray,
    *,
    filter_by: Filter = "prune_by_noise_rate",
    rank_by: Score | None = None,
    frac_noise: float = 1.0,
    min_examples_per_class: int = 1,
) -> np.ndarray:
    """Likely label errors among integer ``labels`` (0..K-1) given out-of-fold ``pred_probs`` (n, K).

    Returns a boolean mask (n,) or, with ``rank_by``, the flagged indices sorted from the most to the
    least likely error by that score. ``frac_noise`` scales the number of items each rule prunes;
    no class is pruned below ``min_examples_per_class`` items.

    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.9], [0.2, 0.8], [0.95, 0.05]])
    >>> find_label_errors([0, 0, 0, 1, 1, 1], probs, rank_by="self_confidence").tolist()
    [5]
    """
    if filter_by not in FILTERS:
        raise ConfigError(f"unknown filter {filter_by!r}; use one of {', '.join(FILTERS)}")
    if not 0 < frac_noise <= 1:
        raise ConfigError(f"frac_noise must be in (0, 1], got {frac_noise!r}")
    labels, probs = check_labels_probs(labels, pred_probs)
    if filter_by == "confident_learning":
        assigned = confident_assignment(labels, probs)
        mask = (assigned >= 0) & (assigned != labels)
    else:
        prune = _prune_counts(labels, probs, frac_noise, min_examples_per_class)
        if filter_by == "prune_by_class":
            mask = _prune_by_class(labels, probs, prune.sum(axis=1))
        elif filter_by == "prune_by_noise_rate":
            mask = _prune_by_noise_rate(labels, probs, prune)
        else:
            mask = _prune_by_class(labels, probs, prune.sum(axis=1)) & _prune_by_noise_rate(labels, probs, prune)
        mask &= probs.argmax(axis=1) != labels
    if rank_by is None:
        return mask
    flagged = np.flatnonzero(mask)
    scores = label_quality_scores(labels, probs, rank_by)[flagged]
    return flagged[np.argsort(scores, kind="stable")]


def _prune_counts(labels: np.ndarray, probs: np.ndarray, frac_noise: float, keep: int) -> np.ndarray:
    """How many items of given label j to prune toward class k (off-diagonal of the calibrated
    joint, rounded, scaled by ``frac_noise``), capped so each class keeps ``keep`` items."""
    joint = confident_joint(labels, probs)
    np.fill_diagonal(joint, 0.0)
    counts = np.rint(joint * frac_noise)
    label_counts = np.bincount(labels, minlength=probs.shape[1])
    room = np.maximum(label_counts - keep, 0)
    total = counts.sum(axis=1)
    scale = np.divide(room, total, out=np.ones_like(total), where=total > room)
    return np.floor(counts * np.minimum(scale, 1.0)[:, None]).astype(np.int64)


def _ranks_within(groups: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Rank (0 = smallest key) of every row within its group."""
    order = np.lexsort((key, groups))
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    lengths = np.diff(np.r_[starts, len(order)])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, lengths)
    return rank


def _prune_by_class(labels: np.ndarray, probs: np.ndarray, per_class: np.ndarray) -> np.ndarray:
    rank = _ranks_within(labels, probs[np.arange(len(labels)), labels])
    return rank < per_class[labels]


def _prune_by_noise_rate(labels: np.ndarray, probs: np.ndarray, prune: np.ndarray) -> np.ndarray:
    """For every cell (j, k) with a count c > 0: the c items labelled j with the largest p_k - p_j."""
    mask = np.zeros(len(labels), dtype=bool)
    given, target = np.nonzero(prune)
    if not len(given):
        return mask
    # candidate pairs (item, cell): every item labelled j against every cell of row j
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], given)
    ends = np.searchsorted(labels[order], given, side="right")
    sizes = ends - starts
    cell = np.repeat(np.arange(len(given)), sizes)
    offset = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    item = order[np.repeat(starts, sizes) + offset]
    margin = probs[item, target[cell]] - probs[item, given[cell]]
    rank = _ranks_within(cell, -margin)
    mask[item[rank < prune[given, target][cell]]] = True
    return mask


def review_list(
    labels: Sequence[Hashable] | np.ndarray,
    pred_probs: np.ndarray,
    classes: Sequence[Hashable] | np.ndarray,
    *,
    items: Sequence[Hashable] | pd.Index | None = None,
    budget: int | None = None,
    filter_by: Filter = "prune_by_noise_rate",
    rank_by: Score = "self_confidence",
) -> pd.DataFrame:
    """The ranked review list: ``item, given_label, suggested_label, score, reason, flagged``.

    ``labels`` are the user's labels and ``classes`` the label of each probability column. The list
    holds the ``budget`` items with the lowest ``rank_by`` score (default: as many as confident
    learning flags with ``filter_by``, its estimate of the number of errors); ``flagged`` says which
    of them the filter itself flags (``attrs["flagged"]``: how many it flags in all). Measured on
    Flipkart titles with injected noise (``bench/bench_label_errors.py``), the lowest
    self-confidences at a given budget hold more errors than the filter's own set of that size.
    """
    classes = np.asarray(classes, dtype=object)
    codes = pd.Index(classes).get_indexer(pd.Index(np.asarray(labels, dtype=object)))
    unknown = np.flatnonzero(codes < 0)
    if unknown.size:
        raise InputError(
            f"label {np.asarray(labels, dtype=object)[unknown[0]]!r} has no probability column",
            source="labels", rows=(unknown + 1).tolist(), unit="row",
        )  # fmt: skip
    if budget is not None and not (isinstance(budget, (int, np.integer)) and budget >= 0):
        raise ConfigError(f"budget must be an integer >= 0, got {budget!r}")
    codes, probs = check_labels_probs(codes, pred_probs)
    items = pd.Index(np.arange(len(codes)) if items is None else items)
    mask = find_label_errors(codes, probs, filter_by=filter_by)
    scores = label_quality_scores(codes, probs, rank_by)
    ranked = np.argsort(scores, kind="stable")[: int(mask.sum()) if budget is None else budget]
    flagged = mask[ranked]
    others = probs[ranked].copy()
    others[np.arange(len(ranked)), codes[ranked]] = -np.inf
    suggested = others.argmax(axis=1)
    p_given, p_suggested = probs[ranked, codes[ranked]], probs[ranked, suggested]
    reason = (
        "model gives the label " + np.char.mod("%.2f", p_given) + ", "
        + classes[suggested].astype(str) + " " + np.char.mod("%.2f", p_suggested)
    )  # fmt: skip
    prefix = np.where(flagged, "confident learning: ", "low score: ")
    review = pd.DataFrame(
        {
            "item": items[ranked],
            "given_label": classes[codes[ranked]],
            "suggested_label": classes[suggested],
            "score": np.round(scores[ranked], 6),
            "reason": np.char.add(prefix, reason.astype(str)),
            "flagged": flagged,
        }
    )
    review.attrs["flagged"] = int(mask.sum())  # flagged in all, listed or not
    return review
