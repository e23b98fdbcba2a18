"""Scoring a large pool in chunks within bounded memory.

A pool of a million titles never needs a million-row probability matrix: the model predicts
``chunk_size`` items at a time, the strategy scores that chunk (every score is row-wise), and only
the scores (8 bytes an item) are kept. Peak memory is O(chunk_size x (K + features per row)) plus
the scores. Strategies that need a statistic of the whole pool (``DensityWeighted``'s centroid) get
a first pass over the chunks; diverse batches (``DiverseBatch``) score the pool by their prefilter,
then featurize only the candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from crowdloop.active.strategies import DensityWeighted, DiverseBatch, Strategy, top_batch
from crowdloop.errors import ConfigError, InputError

CHUNK_SIZE = 20_000

PredictProba = Callable[[Any], np.ndarray]
Featurize = Callable[[Any], np.ndarray | sp.spmatrix]


def chunks(n: int, chunk_size: int) -> list[slice]:
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return [slice(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def _inputs(strategy: Strategy, part: Any, predict_proba: PredictProba | None, featurize: Featurize | None):
    needs = strategy.needs
    probs = features = None
    if needs & {"probs", "committee"}:
        if predict_proba is None:
            raise InputError(f"strategy {strategy.name!r} needs a model: give predict_proba")
        probs = predict_proba(part)
    if "features" in needs:
        features = featurize(part) if featurize is not None else part
    return probs, features


def score_pool(
    strategy: Strategy,
    pool: Any,
    *,
    predict_proba: PredictProba | None = None,
    featurize: Featurize | None = None,
    chunk_size: int = CHUNK_SIZE,
    random_state: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Scores (n,) of every pool item, computed ``chunk_size`` items at a time.

    ``pool`` is anything sliceable with a length (an array of texts, a sparse feature matrix);
    ``predict_proba(part)`` gives the model's (or committee's) probabilities of a slice and
    ``featurize(part)`` its features (default: the slice itself). The same ``random_state``
    gives the same scores whatever the chunk size.
    """
    n = pool.shape[0] if hasattr(pool, "shape") else len(pool)
    parts = chunks(n, chunk_size)
    rng = np.random.default_rng(random_state)
    if isinstance(strategy, DensityWeighted):  # first pass: the pool's centroid
        strategy.reset()
        for part in parts:
            strategy.partial_fit(featurize(pool[part]) if featurize is not None else pool[part])
    out = np.empty(n)
    for part in parts:
        if isinstance(strategy, DiverseBatch) and strategy.prefilter is None:
            out[part] = 0.0
            continue
        probs, features = _inputs(strategy, pool[part], predict_proba, featurize)
        out[part] = strategy.score(probs, features, n=part.stop - part.start, rng=rng)
    return out


def select_from_pool(
    strategy: Strategy,
    pool: Any,
    batch_size: int,
    *,
    predict_proba: PredictProba | None = None,
    featurize: Featurize | None = None,
    labeled_features: np.ndarray | sp.spmatrix | None = None,
    chunk_size: int = CHUNK_SIZE,
    random_state: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The next batch from a pool scored in chunks: (rows best first, the score of every pool item).

    A strategy that is not ``rowwise`` (and not a ``DiverseBatch``) sees the whole pool's
    probabilities at once (its scores are reported as nan).

    For a ``DiverseBatch`` the candidates (by its prefilter, or a random sample) are featurized
    together and spread by core-set or k-means++ around ``labeled_features``.
    """
    rng = np.random.default_rng(random_state)
    if not strategy.rowwise and not isinstance(strategy, DiverseBatch):
        n = pool.shape[0] if hasattr(pool, "shape") else len(pool)
        inputs = [_inputs(strategy, pool[part], predict_proba, featurize) for part in chunks(n, chunk_size)]
        probs = np.concatenate([p for p, _ in inputs]) if inputs and inputs[0][0] is not None else None
        features = _stack([f for _, f in inputs]) if inputs and inputs[0][1] is not None else None
        rows = strategy.select(
            batch_size, probs=probs, features=features, labeled_features=labeled_features, random_state=rng
        )
        return np.asarray(rows, dtype=np.int64), np.full(n, np.nan)
    pool_scores = score_pool(
        strategy, pool, predict_proba=predict_proba, featurize=featurize, chunk_size=chunk_size, random_state=rng
    )
    if not isinstance(strategy, DiverseBatch):
        return top_batch(pool_scores, batch_size), pool_scores
    rows = strategy.candidates(pool_scores, batch_size, rng)
    rows = np.arange(len(pool_scores)) if rows is None else rows
    features = featurize(pool[rows]) if featurize is not None else pool[rows]
    return rows[strategy.spread(features, batch_size, labeled_features, rng)], pool_scores


def _stack(parts: list) -> np.ndarray | sp.spmatrix:
    return sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)
