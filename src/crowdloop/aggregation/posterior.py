"""Posteriors over the true label: dense ``(n_items, K)`` for small K, sparse CSR for large K."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from crowdloop.labels import Taxonomy

DENSE_CELLS_MAX = 20_000_000
"""Above this many cells (items x labels) a posterior is kept sparse (the top labels per item)."""


def fits_dense(n_items: int, n_labels: int) -> bool:
    return n_items * n_labels <= DENSE_CELLS_MAX


@dataclass(frozen=True, eq=False)
class Posterior:
    """P(true label = k | answers) for every item; ``probs`` rows sum to 1 (or 0 for an item
    nobody answered, which then has no label: code -1)."""

    probs: np.ndarray | sp.csr_matrix

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.probs)

    @property
    def shape(self) -> tuple[int, int]:
        return self.probs.shape

    def labels(self) -> np.ndarray:
        """The most probable label of each item (the lowest code on ties; -1 when empty)."""
        if self.is_sparse:  # vectorised (scipy's sparse argmax loops over rows in Python)
            codes, values = top_of_csr(self.probs, 1)
            return np.where(values[:, 0] > 0, codes[:, 0], -1).astype(np.int32)
        best = np.asarray(self.probs.argmax(axis=1)).ravel().astype(np.int32)
        return np.where(self.confidence() > 0, best, -1).astype(np.int32)

    def confidence(self) -> np.ndarray:
        """The probability of the most probable label."""
        return np.asarray(self.probs.max(axis=1).toarray() if self.is_sparse else self.probs.max(axis=1)).ravel()

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable labels per item: codes (-1 where fewer) and probabilities."""
        n_labels = self.shape[1]
        k = min(k, n_labels)
        if not self.is_sparse:
            order = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
            probs = np.take_along_axis(self.probs, order, axis=1)
            return np.where(probs > 0, order, -1).astype(np.int32), probs
        return top_of_csr(self.probs, k)

    def dense(self) -> np.ndarray:
        return self.probs.toarray() if self.is_sparse else self.probs


def top_of_csr(matrix: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row the ``k`` largest stored entries of a CSR matrix: (columns, values), -1/0 padded."""
    matrix = matrix.tocsr()
    n = matrix.shape[0]
    lengths = np.diff(matrix.indptr)
    row = np.repeat(np.arange(n), lengths)
    order = np.lexsort((matrix.indices, -matrix.data, row))
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], lengths)
    keep = rank < k
    codes = np.full((n, k), -1, dtype=np.int32)
    values = np.zeros((n, k))
    codes[row[keep], rank[keep]] = matrix.indices[order][keep]
    values[row[keep], rank[keep]] = matrix.data[order][keep]
    return codes, values


def normalize_rows(scores: np.ndarray | sp.csr_matrix) -> np.ndarray | sp.csr_matrix:
    """Rows divided by their sums (rows summing to 0 stay 0)."""
    sums = np.asarray(scores.sum(axis=1)).ravel()
    inverse = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64), where=sums > 0)
    if sp.issparse(scores):
        return sp.csr_matrix(sp.diags(inverse) @ scores)
    return scores * inverse[:, None]


def softmax_rows(log_scores: np.ndarray) -> np.ndarray:
    """exp(log_scores) normalised per row, computed stably (shifted by the row maximum)."""
    shifted = np.exp(log_scores - log_scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def clamp_gold(probs: np.ndarray, gold_items: np.ndarray, gold_labels: np.ndarray) -> np.ndarray:
    """Set the rows of gold items to their one-hot true labels (in place; returns ``probs``)."""
    if len(gold_items):
        probs[gold_items] = 0.0
        probs[gold_items, gold_labels] = 1.0
    return probs


@dataclass(frozen=True)
class CandidatePosterior:
    """A sparse posterior with the mass of the labels nobody proposed: candidate ``j`` is label
    ``c_label[j]`` of item ``c_item[j]`` (sorted by item, rows ``indptr[i]:indptr[i+1]``) with
    probability ``prob[j]``; ``unproposed[i]`` is the mass left on all other labels of item i."""

    c_item: np.ndarray
    c_label: np.ndarray
    prob: np.ndarray
    unproposed: np.ndarray
    indptr: np.ndarray

    @classmethod
    def from_dense(cls, probs: np.ndarray) -> CandidatePosterior:
        """Every label a candidate (a small label space: nothing is left unproposed)."""
        n, k = probs.shape
        return cls(
            c_item=np.repeat(np.arange(n), k),
            c_label=np.tile(np.arange(k), n),
            prob=probs.ravel(),
            unproposed=np.zeros(n),
            indptr=np.arange(0, n * k + 1, k),
        )

    def top(self) -> tuple[np.ndarray, np.ndarray]:
        """Per item the most probable candidate (code, -1 for none) and its probability."""
        return _segment_argmax(self.c_label, self.prob, self.c_item, len(self.unproposed))

    def ancestor_top(self, taxonomy: Taxonomy, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Per item the most probable node at ``depth`` (mass summed over the candidates below
        it; a shallower candidate counts for itself) and its probability."""
        node = taxonomy.ancestor_at(self.c_label, depth).astype(np.int64)
        k = len(taxonomy)
        keys, inverse = np.unique(self.c_item * k + node, return_inverse=True)
        mass = np.bincount(inverse, weights=self.prob)
        return _segment_argmax(keys % k, mass, keys // k, len(self.unproposed))


def _segment_argmax(
    labels: np.ndarray, values: np.ndarray, segment: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per segment (sorted ids) the label of the largest value (lowest label on ties) and the value."""
    best_label = np.full(n, -1, dtype=np.int64)
    best_value = np.zeros(n)
    if len(values):
        order = np.lexsort((labels, -values, segment))
        first = np.ones(len(order), dtype=bool)
        first[1:] = segment[order][1:] != segment[order][:-1]
        winners = order[first]
        best_label[segment[winners]] = labels[winners]
        best_value[segment[winners]] = values[winners]
    return best_label, best_value
