"""Taxonomy helpers for a model's probabilities: an unsure leaf can still be a sure branch."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crowdloop.errors import ConfigError, InputError
from crowdloop.labels import Taxonomy


def ancestor_proba(probs: np.ndarray | sp.spmatrix, taxonomy: Taxonomy, depth: int) -> np.ndarray | sp.csr_matrix:
    """Probabilities summed up to ``depth`` (1 = top level): column c's mass moves to its ancestor at
    that depth (a shallower node keeps its own), so P(branch) = sum of P(node) over the branch's nodes.

    ``probs`` is (n, K) over the taxonomy's codes (``align_proba`` puts a model's columns there); the
    result has the same shape and type (dense or CSR) with mass only on nodes at depth <= ``depth``.

    >>> tax = Taxonomy.from_paths(["A > x", "A > y", "B"])  # codes: A, B, A > x, A > y
    >>> ancestor_proba(np.array([[0.0, 0.4, 0.35, 0.25]]), tax, 1).round(2).tolist()
    [[0.6, 0.4, 0.0, 0.0]]
    """
    if not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ConfigError(f"depth must be an integer >= 1, got {depth!r}")
    n_labels = len(taxonomy)
    if probs.ndim != 2 or probs.shape[1] != n_labels:
        raise InputError(f"probabilities have shape {probs.shape}, expected (n, {n_labels} taxonomy labels)")
    codes = np.arange(n_labels)
    up = sp.csr_matrix((np.ones(n_labels), (codes, taxonomy.ancestor_at(codes, depth))), shape=(n_labels, n_labels))
    if sp.issparse(probs):
        return sp.csr_matrix(probs @ up)
    return np.asarray(np.asarray(probs, dtype=np.float64) @ up)


def deepest_confident(probs: np.ndarray, taxonomy: Taxonomy, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the deepest node on the path of the most probable label whose branch probability
    (``ancestor_proba``) reaches ``threshold``, and that probability; -1 and the top-level
    probability when not even the top level does. ``probs`` is dense (n, K) on the taxonomy's codes.

    >>> tax = Taxonomy.from_paths(["A > x", "A > y", "B"])
    >>> node, conf = deepest_confident(np.array([[0.0, 0.1, 0.45, 0.45]]), tax, 0.8)
    >>> tax.decode(node).tolist(), conf.round(2).tolist()
    (['A'], [0.9])
    """
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}")
    probs = np.asarray(probs, dtype=np.float64)
    rows = np.arange(len(probs))
    top = probs.argmax(axis=1)
    node = np.full(len(probs), -1, dtype=np.int64)
    conf = ancestor_proba(probs, taxonomy, 1)[rows, taxonomy.ancestor_at(top, 1)]
    for depth in range(1, taxonomy.max_depth + 1):  # a loop over depths (at most a handful), not items
        at = taxonomy.ancestor_at(top, depth)
        mass = ancestor_proba(probs, taxonomy, depth)[rows, at]
        sure = (mass >= threshold) & (taxonomy.depth[at] == depth)
        node, conf = np.where(sure, at, node), np.where(sure, mass, conf)
    return node, conf
