r"""Diverse batches on a feature space: greedy k-center (core-set) and k-means++ seeding.

Core-set (Sener & Savarese, ICLR 2018): choose the batch $S$ so that every pool point is close to
some labelled or chosen point, i.e. minimise $\max_i \min_{j \in L \cup S} \lVert x_i - x_j \rVert$;
the greedy 2-approximation adds, one at a time, the point farthest from its nearest centre.
k-means++ seeding (Arthur & Vassilvitskii, SODA 2007; the batch rule of BADGE, Ash et al., ICLR
2020) draws the next point with probability proportional to $D(x)^2$, its squared distance to the
nearest centre, so a batch spreads out without always taking outliers.

Features may be dense or sparse (TF-IDF rows); squared distances are
$\lVert a \rVert^2 + \lVert b \rVert^2 - 2 a \cdot b$, computed ``chunk_size`` rows at a time so
memory stays O(chunk x centres). Labelled points are the initial centres (none on a cold start).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crowdloop.errors import ConfigError, InputError

CHUNK_ROWS = 4096


def squared_norms(features: np.ndarray | sp.spmatrix) -> np.ndarray:
    if sp.issparse(features):
        return np.asarray(features.multiply(features).sum(axis=1), dtype=np.float64).ravel()
    features = np.asarray(features, dtype=np.float64)
    return np.einsum("ij,ij->i", features, features)


def nearest_squared_distance(
    features: np.ndarray | sp.spmatrix,
    centers: np.ndarray | sp.spmatrix,
    *,
    norms: np.ndarray | None = None,
    chunk_size: int = CHUNK_ROWS,
) -> np.ndarray:
    """For every row of ``features``, the squared distance to its nearest row of ``centers``
    (``inf`` when there are no centres)."""
    n = features.shape[0]
    if centers.shape[0] == 0:
        return np.full(n, np.inf)
    if centers.shape[1] != features.shape[1]:
        raise InputError(f"centres have {centers.shape[1]} features, the pool {features.shape[1]}")
    norms = squared_norms(features) if norms is None else norms
    center_norms = squared_norms(centers)
    centers_t = centers.T.tocsc() if sp.issparse(centers) else np.asarray(centers, dtype=np.float64).T
    out = np.empty(n)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        dots = features[start:stop] @ centers_t
        dots = dots.toarray() if sp.issparse(dots) else np.asarray(dots)
        dist = norms[start:stop, None] + center_norms[None, :] - 2.0 * dots
        out[start:stop] = dist.min(axis=1)
    return np.maximum(out, 0.0)


def _distance_to_row(features, norms: np.ndarray, row: int) -> np.ndarray:
    center = features[row]
    dots = features @ (center.T if sp.issparse(center) else center)
    dots = dots.toarray().ravel() if sp.issparse(dots) else np.asarray(dots).ravel()
    return np.maximum(norms + norms[row] - 2.0 * dots, 0.0)


def _check(features, batch_size: int) -> int:
    if features.ndim != 2:
        raise InputError(f"features have shape {features.shape}, expected (n, d)")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 0:
        raise ConfigError(f"batch size must be a non-negative integer, got {batch_size!r}")
    return min(int(batch_size), features.shape[0])


def k_center_greedy(
    features: np.ndarray | sp.spmatrix,
    batch_size: int,
    labeled_features: np.ndarray | sp.spmatrix | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Row indices of a core-set batch: each pick is the point farthest from every centre so far
    (the labelled points, then the picks). With no labelled points the first pick is random."""
    batch_size = _check(features, batch_size)
    rng = np.random.default_rng(random_state)
    features, norms, nearest = _start(features, labeled_features)
    picks = np.empty(batch_size, dtype=np.int64)
    for t in range(batch_size):  # greedy: one pass over the pool per pick
        row = int(rng.integers(features.shape[0])) if np.isinf(nearest).all() else int(np.argmax(nearest))
        picks[t] = row
        nearest = np.minimum(nearest, _distance_to_row(features, norms, row))
        nearest[picks[: t + 1]] = -1.0  # never pick a row twice
    return picks


def kmeans_plus_plus(
    features: np.ndarray | sp.spmatrix,
    batch_size: int,
    labeled_features: np.ndarray | sp.spmatrix | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Row indices drawn by k-means++ seeding: each pick with probability proportional to the
    squared distance to the nearest centre (labelled points and earlier picks)."""
    batch_size = _check(features, batch_size)
    rng = np.random.default_rng(random_state)
    features, norms, nearest = _start(features, labeled_features)
    picks = np.empty(batch_size, dtype=np.int64)
    chosen = np.zeros(features.shape[0], dtype=bool)
    for t in range(batch_size):
        weight = np.where(chosen, 0.0, nearest)
        if np.isinf(weight).any():  # no centre yet: uniform over the remaining rows
            weight = np.where(chosen, 0.0, 1.0)
        elif weight.sum() <= 0:  # every remaining row sits on a centre: uniform
            weight = (~chosen).astype(np.float64)
        row = int(rng.choice(features.shape[0], p=weight / weight.sum()))
        picks[t] = row
        chosen[row] = True
        nearest = np.minimum(nearest, _distance_to_row(features, norms, row))
    return picks


def _start(
    features: np.ndarray | sp.spmatrix, labeled_features: np.ndarray | sp.spmatrix | None
) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray, np.ndarray]:
    """The pool as CSR or float64, its squared row norms, and each row's squared distance to the
    nearest labelled point (infinite with none)."""
    features = features.tocsr() if sp.issparse(features) else np.asarray(features, dtype=np.float64)
    norms = squared_norms(features)
    if labeled_features is not None and labeled_features.shape[0]:
        return features, norms, nearest_squared_distance(features, labeled_features, norms=norms)
    return features, norms, np.full(features.shape[0], np.inf)
