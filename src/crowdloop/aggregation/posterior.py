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
        best, top = row_argmax(self.probs)
        return np.where(top > 0, best, -1).astype(np.int32)

    def confidence(self) -> np.ndarray:
        """The probability of the most probable label."""
        return np.asarray(self.probs.max(axis=1).toarray()).ravel() if self.is_sparse else row_max(self.probs)

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


SHORT_ROWS = 64
"""Up to this many columns, row reductions run column by column: NumPy reduces a short last axis
one row at a time (``x.max(axis=1)`` on 1M x 10 takes ~10x longer than K passes over columns)."""


def row_max(x: np.ndarray) -> np.ndarray:
    """The maximum of each row of a dense 2-D array."""
    if x.shape[1] > SHORT_ROWS or x.shape[1] == 0:
        return x.max(axis=1)
    out = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        np.maximum(out, x[:, k], out=out)
    return out


def row_argmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a dense 2-D array the column of the maximum (the lowest on ties) and the maximum."""
    if x.shape[1] > SHORT_ROWS:
        best = x.argmax(axis=1)
        return best.astype(np.int32), np.take_along_axis(x, best[:, None], axis=1).ravel()
    best = np.zeros(x.shape[0], dtype=np.int32)
    top = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        better = x[:, k] > top
        best[better] = k
        np.maximum(top, x[:, k], out=top)
    return best, top


def row_sum(x: np.ndarray) -> np.ndarray:
    """The sum of each row of a dense 2-D array (``einsum``: fast on short rows too)."""
    return np.einsum("ij->i", x)


def normalize_rows(scores: np.ndarray | sp.csr_matrix) -> np.ndarray | sp.csr_matrix:
    """Rows divided by their sums (rows summing to 0 stay 0)."""
    sums = np.asarray(scores.sum(axis=1)).ravel() if sp.issparse(scores) else row_sum(scores)
    inverse = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64), where=sums > 0)
    if sp.issparse(scores):
        return sp.csr_matrix(sp.diags(inverse) @ scores)
    return scores * inverse[:, None]


SOFTMAX_BLOCK_CELLS = 1 << 18
"""Rows are normalised in blocks of about this many cells (1 MB of float32), so that the several
passes of a softmax run in cache rather than through memory."""


def softmax_in_place(log_scores: np.ndarray) -> np.ndarray:
    """Turn unnormalised log probabilities into probabilities per row, in place, stably (shifted by
    the row maximum). Returns the log normaliser of each row (float64).

    Probabilities below ``e^floor`` (about 1e-33 in float32) are raised to it: never subnormal
    numbers, whose arithmetic is ~100x slower on x86 and would slow every later product."""
    n, k = log_scores.shape
    floor = np.log(np.finfo(log_scores.dtype).tiny) + 12
    log_normaliser = np.empty(n)
    step = max(SOFTMAX_BLOCK_CELLS // max(k, 1), 1)
    for start in range(0, n, step):
        block = log_scores[start : start + step]
        shift = row_max(block)
        np.subtract(block, shift[:, None], out=block)
        np.maximum(block, floor, out=block)
        np.exp(block, out=block)
        sums = row_sum(block)
        np.multiply(block, (1.0 / sums)[:, None].astype(block.dtype, copy=False), out=block)
        log_normaliser[start : start + step] = np.log(sums, dtype=np.float64) + shift
    return log_normaliser


def softmax_rows(log_scores: np.ndarray) -> np.ndarray:
    """exp(log_scores) normalised per row, computed stably (shifted by the row maximum)."""
    probs = np.array(log_scores, dtype=np.result_type(log_scores, np.float32))
    softmax_in_place(probs)
    return probs


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
